package site

import (
	"bytes"
	"html/template"

	"github.com/microcosm-cc/bluemonday"
	"github.com/yuin/goldmark"
	"github.com/yuin/goldmark/extension"
)

var (
	md = goldmark.New(goldmark.WithExtensions(extension.GFM))
	// sanitiser allows what user-generated content needs (formatting,
	// links, images, code) and nothing that runs: no script, no event
	// handlers, no javascript: or data: URLs, no style; links open with
	// rel="nofollow noopener".
	sanitiser = func() *bluemonday.Policy {
		p := bluemonday.UGCPolicy()
		p.RequireNoFollowOnLinks(true)
		p.RequireNoReferrerOnLinks(true)
		p.AddTargetBlankToFullyQualifiedLinks(false)
		p.AllowURLSchemes("http", "https", "mailto")
		return p
	}()
)

// Markdown renders CommonMark (with GitHub's tables and strikethrough) and
// sanitises the result: the one place where a string becomes trusted HTML.
func Markdown(src string) template.HTML {
	var out bytes.Buffer
	if err := md.Convert([]byte(src), &out); err != nil {
		return template.HTML(template.HTMLEscapeString(src)) // #nosec: escaped
	}
	return template.HTML(sanitiser.SanitizeBytes(out.Bytes())) // #nosec: sanitised
}

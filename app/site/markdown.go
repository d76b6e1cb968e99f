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
	html := sanitiser.SanitizeBytes(out.Bytes())
	// Code blocks and tables scroll sideways when wide: a keyboard must be
	// able to focus them to scroll (WCAG 2.1.1). In sanitised HTML a "<"
	// of the text is "&lt;", so these are the elements themselves.
	html = bytes.ReplaceAll(html, []byte("<pre>"), []byte(`<pre tabindex="0">`))
	html = bytes.ReplaceAll(html, []byte("<table>"), []byte(`<table tabindex="0">`))
	return template.HTML(html) // #nosec: sanitised
}

package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/cdp"
	cdpcss "github.com/chromedp/cdproto/css"
	"github.com/chromedp/cdproto/dom"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fontSet is the fonts one browser of the suites renders with. Each
// browser is given a fontconfig file of its own (FONTCONFIG_FILE) whose one
// directory holds links to exactly the set's files (a regular and a bold
// face of a sans, a serif and a monospace family: not the light, condensed
// or other faces a machine may have beside them), keeps its cache in the
// test's temp dir and sends the generic families, and the named ones the
// style sheet asks for, to the set's faces. Fontconfig then knows no other
// font, so what else the machine has installed, or a person's
// ~/.config/fontconfig, changes nothing. The layout must fit a wide set and
// a narrow one.
type fontSet struct {
	name              string
	sans, serif, mono string // families
	// files: the set's faces, by file, each with the Debian package that
	// has it (alternatives by "|": the first one apt knows; scripts/deps.sh
	// holds the same table) and its PostScript name.
	files []fontFile
}

type fontFile struct{ path, pkg, postScript string }

// face is the PostScript name of the set's face of a kind (sans, serif,
// mono) at a CSS weight: files are listed regular then bold for each kind
// in that order, and CSS draws weights up to 500 with the regular face,
// 600 and up with the bold one, when a family has only those two.
func (f fontSet) face(kind string, weight int) string {
	i := map[string]int{"sans": 0, "serif": 2, "mono": 4}[kind]
	if weight >= 600 {
		i++
	}
	return f.files[i].postScript
}

const (
	dejavu     = "/usr/share/fonts/truetype/dejavu/"
	liberation = "/usr/share/fonts/truetype/liberation/"
)

var (
	// wideFonts: DejaVu Sans is about 10 % wider than Arial's metrics (what
	// Debian's chromium pulls in, and many Linux desktops' default).
	wideFonts = fontSet{name: "DejaVu (wide)", sans: "DejaVu Sans", serif: "DejaVu Serif", mono: "DejaVu Sans Mono", files: []fontFile{
		{dejavu + "DejaVuSans.ttf", "fonts-dejavu-core", "DejaVuSans"},
		{dejavu + "DejaVuSans-Bold.ttf", "fonts-dejavu-core", "DejaVuSans-Bold"},
		{dejavu + "DejaVuSerif.ttf", "fonts-dejavu-core", "DejaVuSerif"},
		{dejavu + "DejaVuSerif-Bold.ttf", "fonts-dejavu-core", "DejaVuSerif-Bold"},
		// Debian 13 moved the monospace faces to a package of their own.
		{dejavu + "DejaVuSansMono.ttf", "fonts-dejavu-mono|fonts-dejavu-core", "DejaVuSansMono"},
		{dejavu + "DejaVuSansMono-Bold.ttf", "fonts-dejavu-mono|fonts-dejavu-core", "DejaVuSansMono-Bold"},
	}}
	// narrowFonts: Liberation Sans has Arial's metrics (Windows' and
	// macOS's common sans-serif widths).
	narrowFonts = fontSet{name: "Liberation (narrow)", sans: "Liberation Sans", serif: "Liberation Serif", mono: "Liberation Mono", files: []fontFile{
		{liberation + "LiberationSans-Regular.ttf", "fonts-liberation", "LiberationSans"},
		{liberation + "LiberationSans-Bold.ttf", "fonts-liberation", "LiberationSans-Bold"},
		{liberation + "LiberationSerif-Regular.ttf", "fonts-liberation", "LiberationSerif"},
		{liberation + "LiberationSerif-Bold.ttf", "fonts-liberation", "LiberationSerif-Bold"},
		{liberation + "LiberationMono-Regular.ttf", "fonts-liberation", "LiberationMono"},
		{liberation + "LiberationMono-Bold.ttf", "fonts-liberation", "LiberationMono-Bold"},
	}}
	fontSets = []fontSet{wideFonts, narrowFonts}
)

// Families the style sheet names, by the face of the set they are sent
// to; any other name falls back to sans-serif (and, with only the set's
// files known, to one of its faces whatever happens).
var (
	serifFamilies = []string{"serif", "Georgia", "Titillium Web", "Times New Roman", "Times"}
	monoFamilies  = []string{"monospace", "ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "Courier New", "Courier"}
	sansFamilies  = []string{"sans-serif", "sans", "system-ui", "-apple-system", "Segoe UI", "Roboto", "Helvetica Neue", "Helvetica", "Arial"}
)

// fontconfig writes the set's fontconfig file, and the directory of links
// to its files, under dir and returns the file's path; the test fails
// (skips off CI) with the install command when a file is missing.
func (f fontSet) fontconfig(t *testing.T, dir string) string {
	t.Helper()
	fonts := filepath.Join(dir, "fonts")
	require.NoError(t, os.MkdirAll(fonts, 0o755))
	for _, ff := range f.files {
		if _, err := os.Stat(ff.path); err != nil {
			msg := fmt.Sprintf("the %s fonts are missing (%s): apt-get install %s (make test installs it)", f.name, ff.path, strings.ReplaceAll(ff.pkg, "|", " or "))
			if os.Getenv("CI") != "" {
				t.Fatal(msg)
			}
			t.Skip(msg)
		}
		require.NoError(t, os.Symlink(ff.path, filepath.Join(fonts, filepath.Base(ff.path))))
	}
	var b strings.Builder
	b.WriteString("<?xml version=\"1.0\"?>\n<!DOCTYPE fontconfig SYSTEM \"urn:fontconfig:fonts.dtd\">\n<fontconfig>\n")
	fmt.Fprintf(&b, "  <dir>%s</dir>\n  <cachedir>%s</cachedir>\n", fonts, filepath.Join(dir, "fontconfig-cache"))
	// A request that names no family this file knows (Chromium's system-ui
	// asks with none) ends with sans-serif, as fontconfig's own
	// 49-sansserif.conf does; before the aliases, so they apply to it.
	b.WriteString("  <match target=\"pattern\"><edit name=\"family\" mode=\"append_last\"><string>sans-serif</string></edit></match>\n")
	// Rendered as Debian's (and most desktops') defaults do: antialiased,
	// slight hinting (10-hinting-slight.conf), so advances stay fractional
	// as people see them; full hinting rounds every glyph's width.
	b.WriteString("  <match target=\"font\"><edit name=\"antialias\" mode=\"assign\"><bool>true</bool></edit>" +
		"<edit name=\"hinting\" mode=\"assign\"><bool>true</bool></edit><edit name=\"hintstyle\" mode=\"assign\"><const>hintslight</const></edit>" +
		"<edit name=\"rgba\" mode=\"assign\"><const>none</const></edit></match>\n")
	for face, names := range map[string][]string{f.sans: sansFamilies, f.serif: serifFamilies, f.mono: monoFamilies} {
		for _, n := range names {
			fmt.Fprintf(&b, "  <alias binding=\"same\"><family>%s</family><prefer><family>%s</family></prefer></alias>\n", n, face)
		}
	}
	b.WriteString("</fontconfig>\n")
	path := filepath.Join(dir, "fonts.conf")
	require.NoError(t, os.WriteFile(path, []byte(b.String()), 0o644))
	return path
}

// browserOptions are the Chromium flags of every browser the suites start:
// headless, no network of its own, English, its own profile, and the
// font set's fontconfig.
func browserOptions(t *testing.T, exe string, fonts fontSet) []chromedp.ExecAllocatorOption {
	t.Helper()
	dir := t.TempDir()
	return append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(exe), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.Flag("lang", "en-US"), chromedp.UserDataDir(filepath.Join(dir, "profile")),
		chromedp.Env("FONTCONFIG_FILE="+fonts.fontconfig(t, dir), "LANG=C.UTF-8", "TZ=UTC"),
		chromedp.WindowSize(1200, 900))
}

// newBrowser starts Chromium with fonts; it stops with the test.
func newBrowser(t *testing.T, exe string, fonts fontSet) context.Context {
	t.Helper()
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), browserOptions(t, exe, fonts)...)
	t.Cleanup(cancelAlloc)
	browser, cancelBrowser := chromedp.NewContext(alloc)
	t.Cleanup(cancelBrowser)
	require.NoError(t, chromedp.Do(browser, chromedp.Navigate("about:blank")), "start Chromium (%s fonts)", fonts.name)
	return browser
}

// platformFonts names, for each selector, the faces the browser drew the
// text of its first match with, by PostScript name (a family's bold or
// light face has its own), from DevTools' CSS.getPlatformFontsForNode.
func platformFonts(ctx context.Context, sels ...string) ([][]string, error) {
	if _, err := chromedp.Call(ctx, dom.Enable, dom.EnableParams{}); err != nil {
		return nil, err
	}
	if _, err := chromedp.Call(ctx, cdpcss.Enable, cdp.Empty{}); err != nil {
		return nil, err
	}
	doc, err := chromedp.Call(ctx, dom.GetDocument, dom.GetDocumentParams{})
	if err != nil {
		return nil, err
	}
	var out [][]string
	for _, sel := range sels {
		n, err := chromedp.Call(ctx, dom.QuerySelector, dom.QuerySelectorParams{NodeID: doc.Root.NodeID, Selector: sel})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", sel, err)
		}
		res, err := chromedp.Call(ctx, cdpcss.GetPlatformFontsForNode, cdpcss.GetPlatformFontsForNodeParams{NodeID: n.NodeID})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", sel, err)
		}
		var names []string
		for _, f := range res.Fonts {
			names = append(names, f.PostScriptName)
		}
		out = append(out, names)
	}
	return out, nil
}

// The suites draw with the fonts they set, whatever the machine has: every
// font-family the site's style sheet declares, and the generic families,
// at every weight the style sheet uses, are drawn with the set's own face
// (its regular or bold sans, serif or monospace), never another file.
func TestBrowsersDrawWithTheFontsTheTestsSet(t *testing.T) {
	exe := chromium(t)
	sheet, err := os.ReadFile(filepath.Join("..", "..", "site", "assets", "site.css"))
	require.NoError(t, err)
	var stacks []string
	for _, m := range regexp.MustCompile(`font-family:\s*([^;}]+)`).FindAllStringSubmatch(string(sheet), -1) {
		stacks = append(stacks, strings.TrimSpace(m[1]))
	}
	require.NotEmpty(t, stacks, "the style sheet declares its fonts")
	stacks = append(stacks, "sans-serif", "serif", "monospace", "system-ui")
	weights := []int{300, 400, 500, 600, 700}
	for _, m := range regexp.MustCompile(`font-weight:\s*(\d+)`).FindAllStringSubmatch(string(sheet), -1) {
		w, _ := strconv.Atoi(m[1])
		require.Contains(t, weights, w, "a weight the style sheet uses is checked")
	}
	var page strings.Builder
	page.WriteString(`<!doctype html><html lang="en"><head><title>Fonts</title></head><body>`)
	var sels []string
	for i, s := range stacks {
		for _, w := range weights {
			id := fmt.Sprintf("f%d-%d", i, w)
			sels = append(sels, "#"+id)
			fmt.Fprintf(&page, `<p id="%s" style="font-family: %s; font-weight: %d">The quick brown fox, 0123456789 ♥ “—”</p>`, id, strings.ReplaceAll(s, `"`, "&quot;"), w)
		}
	}
	page.WriteString(`</body></html>`)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte(page.String()))
	}))
	defer srv.Close()
	for _, fonts := range fontSets {
		t.Run(fonts.name, func(t *testing.T) {
			ctx := newBrowser(t, exe, fonts)
			require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(srv.URL), chromedp.WaitVisible(css(sels[len(sels)-1]))))
			drawn, err := platformFonts(ctx, sels...)
			require.NoError(t, err)
			n := 0
			for _, s := range stacks {
				kind := "sans"
				switch {
				case strings.Contains(s, "monospace"):
					kind = "mono"
				case strings.HasSuffix(s, "serif") && !strings.HasSuffix(s, "sans-serif"):
					kind = "serif"
				}
				for _, w := range weights {
					assert.Equal(t, []string{fonts.face(kind, w)}, drawn[n], "font-family: %s; font-weight: %d", s, w)
					n++
				}
			}
		})
	}
}

// make test installs the font sets: scripts/deps.sh names each file of
// each set and its package.
func TestMakeTestInstallsTheFontSets(t *testing.T) {
	deps, err := os.ReadFile(filepath.Join("..", "..", "..", "scripts", "deps.sh"))
	require.NoError(t, err)
	for _, f := range fontSets {
		for _, ff := range f.files {
			assert.Regexp(t, `(?m)^  \[`+regexp.QuoteMeta(ff.path)+`\]="?`+regexp.QuoteMeta(ff.pkg)+`"?$`, string(deps), "scripts/deps.sh installs the %s fonts", f.name)
		}
	}
}

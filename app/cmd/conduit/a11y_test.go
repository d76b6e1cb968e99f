package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// axeSource is axe-core (npm, package.json), read once.
var axeSource = sync.OnceValues(func() ([]byte, error) {
	return os.ReadFile(filepath.Join("..", "..", "..", "node_modules", "axe-core", "axe.min.js"))
})

// axeScript is the axe-core engine, or the test skipped (failed on CI)
// saying how to get it.
func axeScript(t *testing.T) string {
	t.Helper()
	b, err := axeSource()
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("axe-core is missing (%v): run `make tools` (npm ci)", err)
		}
		t.Skipf("axe-core is missing (%v): run `make tools` (npm ci)", err)
	}
	return string(b)
}

// axeViolation is one rule axe-core found broken, with where.
type axeViolation struct {
	ID     string `json:"id"`
	Impact string `json:"impact"`
	Help   string `json:"help"`
	Nodes  []struct {
		Target  []any  `json:"target"`
		Summary string `json:"failureSummary"`
	} `json:"nodes"`
}

func (v axeViolation) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s (%s): %s", v.ID, v.Impact, v.Help)
	for i, n := range v.Nodes {
		if i == 3 {
			fmt.Fprintf(&b, "\n      … and %d more", len(v.Nodes)-3)
			break
		}
		fmt.Fprintf(&b, "\n      %v: %s", n.Target, strings.ReplaceAll(n.Summary, "\n", " "))
	}
	return b.String()
}

// audit runs axe-core's WCAG 2.x A/AA rules (and its best practices) on
// the page p shows, and returns the serious and critical violations. The
// script goes in through DevTools (Runtime.evaluate), which the page's
// Content-Security-Policy does not govern: the site itself ships no script.
func (p *person) audit(script string) []axeViolation {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 20*time.Second)
	defer cancel()
	yes := true
	awaitPromise := func(e *runtime.EvaluateParams) { e.AwaitPromise = &yes }
	_, err := chromedp.Run(ctx, chromedp.Evaluate[bool](script+";true", awaitPromise))
	require.NoError(p.t, err, "inject axe-core")
	out, err := chromedp.Run(ctx, chromedp.Evaluate[string](`axe.run(document, {
		runOnly: {type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"]},
		resultTypes: ["violations"]
	}).then(r => JSON.stringify(r.violations))`, awaitPromise))
	require.NoError(p.t, err, "run axe-core")
	var all []axeViolation
	require.NoError(p.t, json.Unmarshal([]byte(out), &all))
	var bad []axeViolation
	for _, v := range all {
		if v.Impact == "serious" || v.Impact == "critical" {
			bad = append(bad, v)
		}
	}
	return bad
}

// The audit finds what it is there to find: a page with known faults
// fails it (a broken harness would pass every screen).
func TestAuditFindsKnownFaults(t *testing.T) {
	exe := chromium(t)
	script := axeScript(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = io.WriteString(w, `<!doctype html><html lang="en"><head><title>Faults</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head><body>
<header><a class="brand" href="/">conduit</a><ul class="nav"><li>Home</li><li style="display:block;width:2000px">Wide</li>
<li style="margin-top:-1em">Overlapping</li></ul></header>
<main><p style="color:#ccc">Low contrast text</p><input type="text" name="nolabel">
<a href="/x"><img src="/x.png"></a>
<p style="width:100px;overflow:hidden;white-space:nowrap">A sentence too long for its box is cut off</p>
<p style="width:100px;white-space:nowrap">A sentence that spills out of its narrow box</p>
<div style="overflow-x:auto;width:100px"><p style="width:2000px">Prose in a box that scrolls sideways</p></div>
<pre style="overflow-x:auto;width:100px">a line of code may scroll inside its own box, as wide as it likes to be</pre>
<div><button style="float:right;height:120px">Floating</button></div></main>
<footer>Footer</footer></body></html>`)
	}))
	defer srv.Close()
	ctx := newBrowser(t, exe, wideFonts)
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(srv.URL)))
	p := &person{t: t, name: "auditor", ctx: ctx}
	var ids []string
	for _, v := range p.audit(script) {
		ids = append(ids, v.ID)
	}
	assert.Subset(t, ids, []string{"color-contrast", "label", "image-alt", "link-name"})
	bad, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](layoutScript))
	require.NoError(t, err)
	all := strings.Join(bad, "\n")
	assert.Contains(t, all, "scrolls sideways")
	assert.Contains(t, all, "past the edge: <li style=\"display:block;width:2000px\">")
	assert.Contains(t, all, "navigation items overlap: Wide / Overlapping")
	assert.Contains(t, all, "cut off: <p style=\"width:100px;overflow:hidden")
	assert.Contains(t, all, "overlaps the footer")
	assert.Contains(t, all, "spills out of its box: <p style=\"width:100px;white-space:nowrap\">")
	assert.Contains(t, all, "past the edge: <p style=\"width:2000px\">", "only code and tables may scroll in two dimensions")
	assert.NotContains(t, all, "<pre", "code scrolling inside its own box is fine")

	// The second font set's browser finds the same faults in a copy of the page.
	html, err := chromedp.Run(ctx, chromedp.Evaluate[string](snapshotScript))
	require.NoError(t, err)
	other := newOtherFonts(t, exe, srv.URL, narrowFonts)
	again, err := other.layout(html, desktop)
	require.NoError(t, err)
	assert.Contains(t, strings.Join(again, "\n"), "scrolls sideways")
	assert.Contains(t, strings.Join(again, "\n"), "spills out of its box")
}

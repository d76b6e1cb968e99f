package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var screenshots = flag.String("screenshots", "", "directory to write a PNG of each screen into (make screenshots)")

// chromium finds the browser: Debian's chromium, or Google Chrome.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("no Chromium: apt-get install chromium (make test installs it)")
	}
	t.Skip("no Chromium installed: apt-get install chromium")
	return ""
}

// person is one visitor in their own browser context (own cookies).
type person struct {
	t    *testing.T
	name string
	ctx  context.Context
	base string
	dir  string // where failing steps leave their evidence
	n    *int
	mu   *sync.Mutex
}

// step runs actions (each bounded to 10 s); a failure saves the page's
// screenshot and HTML under the test's temp dir and names them.
func (p *person) step(name string, actions ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	p.mu.Lock()
	*p.n++
	n := *p.n
	p.mu.Unlock()
	ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		base := filepath.Join(p.dir, fmt.Sprintf("%02d-%s-%s", n, p.name, strings.ReplaceAll(name, " ", "-")))
		sctx, scancel := context.WithTimeout(p.ctx, 5*time.Second)
		defer scancel()
		if png, serr := chromedp.Run(sctx, chromedp.FullScreenshot(100)); serr == nil {
			_ = os.WriteFile(base+".png", png, 0o644)
		}
		if html, herr := chromedp.Run(sctx, chromedp.OuterHTML(chromedp.CSS("html"))); herr == nil {
			_ = os.WriteFile(base+".html", []byte(html), 0o644)
		}
		p.t.Fatalf("%s: step %q failed: %v\n  evidence: %s.png, %s.html", p.name, name, err, base, base)
	}
}

func (p *person) text(sel string) string {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	require.NoError(p.t, err, "%s: text of %s", p.name, sel)
	return s
}

func (p *person) location() string {
	p.t.Helper()
	s, err := chromedp.Run(p.ctx, chromedp.Location())
	require.NoError(p.t, err)
	return s
}

// shot saves the current screen as docs/screenshots/<name>.png when the
// test runs for make screenshots.
func (p *person) shot(name string) {
	p.t.Helper()
	if *screenshots == "" {
		return
	}
	ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	require.NoError(p.t, err)
	require.NoError(p.t, os.WriteFile(filepath.Join(*screenshots, name+".png"), png, 0o644))
}

func css(s string) chromedp.CSS { return chromedp.CSS(s) }

// visit navigates and waits for the page's main element.
func visit(url string) chromedp.Action[chromedp.Void] {
	return chromedp.Navigate(url)
}

func typeInto(sel, value string) chromedp.Action[chromedp.Void] {
	return chromedp.SendKeys(css(sel), value)
}

// The RealWorld flows, in a real browser against conduit local (web with
// the WAF → api → FerretDB): two people sign up, one publishes markdown
// with tags, the other finds it by tag, favorites it, follows the author
// and comments; the author edits and deletes; settings change the bio and
// the password, and sign-in works with the new one; an article full of
// XSS renders inert.
func TestBrowserFlows(t *testing.T) {
	exe := chromium(t)
	inst := start(t, t.TempDir(), nil)
	base := "http://" + inst.web
	if *screenshots != "" {
		require.NoError(t, os.MkdirAll(*screenshots, 0o755))
	}

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(exe), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.WindowSize(1200, 900))
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	browser, cancelBrowser := chromedp.NewContext(alloc)
	defer cancelBrowser()
	require.NoError(t, chromedp.Do(browser, chromedp.Navigate("about:blank")), "start Chromium")

	var dialogs []string
	var dmu sync.Mutex
	n := 0
	var mu sync.Mutex
	newPerson := func(name string) *person {
		ctx, cancel := chromedp.NewContext(browser, chromedp.WithNewBrowserContext())
		t.Cleanup(cancel)
		require.NoError(t, chromedp.Listen(ctx, func(ev any) {
			if d, ok := ev.(*page.EventJavascriptDialogOpening); ok {
				dmu.Lock()
				dialogs = append(dialogs, name+": "+d.Message)
				dmu.Unlock()
			}
		}))
		return &person{t: t, name: name, ctx: ctx, base: base, dir: t.TempDir(), n: &n, mu: &mu}
	}
	alice, bob := newPerson("alice"), newPerson("bob")

	alice.step("home", visit(base+"/"), chromedp.WaitVisible(css(".home-page")))
	assert.Contains(t, alice.text(".banner"), "A place to share your knowledge.")
	alice.shot("home-empty")
	alice.step("sign-up page", chromedp.Click(css(`a[href="/register"]`)), chromedp.WaitVisible(css(`input[placeholder="Username"]`)))
	alice.shot("register")
	alice.step("sign up",
		typeInto(`input[placeholder="Username"]`, "alice"), typeInto(`input[placeholder="Email"]`, "alice@example.com"),
		typeInto(`input[placeholder="Password"]`, "alice-password-1"), chromedp.Click(css(`button[type="submit"]`)),
		chromedp.WaitVisible(css(`a[href="/profile/alice"]`)))
	assert.Contains(t, alice.text(".navbar"), "New Article")
	assert.Contains(t, alice.text(".navbar"), "Settings")

	markdown := "## How it works\n\nDragons need **patience** and `code`:\n\n```go\nfmt.Println(\"<script>not run</script>\")\n```\n"
	alice.step("editor", chromedp.Click(css(`a[href="/editor"]`)), chromedp.WaitVisible(css(`input[placeholder="Article Title"]`)))
	alice.shot("editor")
	alice.step("publish",
		typeInto(`input[placeholder="Article Title"]`, "How to train your dragon"),
		typeInto(`input[placeholder="What's this article about?"]`, "Ever wonder how?"),
		chromedp.SetValue(css(`textarea[placeholder="Write your article (in markdown)"]`), markdown),
		typeInto(`input[placeholder="Enter tags"]`, "dragons training"),
		chromedp.Click(css(`button[type="submit"]`)), chromedp.WaitVisible(css(".article-page")))
	assert.Equal(t, base+"/article/how-to-train-your-dragon", alice.location())
	assert.Contains(t, alice.text(".markdown h2"), "How it works", "markdown is rendered")
	assert.Contains(t, alice.text(".markdown strong"), "patience")
	assert.Contains(t, alice.text(".markdown pre"), "<script>not run</script>", "code stays text")

	bob.step("sign up",
		visit(base+"/register"), typeInto(`input[placeholder="Username"]`, "bob"), typeInto(`input[placeholder="Email"]`, "bob@example.com"),
		typeInto(`input[placeholder="Password"]`, "bob-password-12"), chromedp.Click(css(`button[type="submit"]`)),
		chromedp.WaitVisible(css(`a[href="/profile/bob"]`)))
	bob.step("find by tag", chromedp.Click(css(`.sidebar a[href="/?tag=dragons"]`)), chromedp.WaitVisible(css(`.preview-link`)))
	assert.Contains(t, bob.text(".feed-toggle"), "# dragons")
	assert.Contains(t, bob.text(".preview-link h1"), "How to train your dragon")
	bob.shot("home-tag")
	bob.step("open the article", chromedp.Click(css(`.preview-link`)), chromedp.WaitVisible(css(".article-page")))
	bob.step("favorite", chromedp.Click(css(`.banner form[action$="/favorite"] button`)), chromedp.WaitVisible(css(`.banner form[action$="/unfavorite"]`)))
	assert.Contains(t, bob.text(".banner form[action$=\"/unfavorite\"] button"), "(1)")
	bob.step("follow", chromedp.Click(css(`.banner form[action$="/follow"] button`)), chromedp.WaitVisible(css(`.banner form[action$="/unfollow"]`)))
	bob.step("comment",
		typeInto(`textarea[placeholder="Write a comment..."]`, "Great read — try <b>this</b>"),
		chromedp.Click(css(`.comment-form button`)), chromedp.WaitVisible(css(`.comment .card-text`)))
	assert.Equal(t, "Great read — try <b>this</b>", bob.text(".comment .card-text"), "comments are text")
	assert.Contains(t, bob.text(".comment .card-footer"), "Delete", "bob may delete his comment")
	bob.shot("article")
	bob.step("your feed", visit(base+"/?feed=your"), chromedp.WaitVisible(css(`.preview-link`)))
	assert.Contains(t, bob.text(".feed-toggle .active"), "Your Feed")
	bob.step("favorites", visit(base+"/profile/bob/favorites"), chromedp.WaitVisible(css(`.preview-link`)))
	assert.Contains(t, bob.text(".articles-toggle .active"), "Favorited Articles")
	bob.shot("profile-favorites")

	alice.step("sees the comment without its delete button", visit(base+"/article/how-to-train-your-dragon"), chromedp.WaitVisible(css(`.comment .card-text`)))
	assert.NotContains(t, alice.text(".comments"), "Delete", "only its author sees a comment's delete button")
	alice.step("edit",
		chromedp.Click(css(`.banner a[href="/editor/how-to-train-your-dragon"]`)), chromedp.WaitVisible(css(`input[placeholder="Article Title"]`)),
		chromedp.SetValue(css(`input[placeholder="What's this article about?"]`), "A gentler way"),
		chromedp.Click(css(`button[type="submit"]`)), chromedp.WaitVisible(css(".article-page")))
	alice.step("profile", visit(base+"/profile/alice"), chromedp.WaitVisible(css(".preview-link")))
	assert.Contains(t, alice.text(".preview-link p"), "A gentler way")
	assert.Contains(t, alice.text(".articles-toggle .active"), "My Articles")
	alice.shot("profile")
	alice.step("delete",
		visit(base+"/article/how-to-train-your-dragon"), chromedp.WaitVisible(css(".article-page")),
		chromedp.Click(css(`.banner form[action$="/delete"] button`)), chromedp.WaitVisible(css(".home-page")))
	alice.step("gone", visit(base+"/article/how-to-train-your-dragon"), chromedp.WaitVisible(css(".error-page")))
	assert.Contains(t, alice.text(".error-page h1"), "Not found")

	alice.step("settings", visit(base+"/settings"), chromedp.WaitVisible(css(`textarea[placeholder="Short bio about you"]`)))
	alice.shot("settings")
	alice.step("change bio and password",
		chromedp.SetValue(css(`textarea[placeholder="Short bio about you"]`), "I train dragons."),
		typeInto(`input[placeholder="New Password"]`, "alice-password-2"),
		typeInto(`input[placeholder^="Current Password"]`, "alice-password-1"),
		chromedp.Click(css(`button[type="submit"]`)), chromedp.WaitVisible(css(".profile-page")))
	assert.Contains(t, alice.text(".user-info p"), "I train dragons.")
	alice.step("sign out",
		visit(base+"/settings"), chromedp.WaitVisible(css(`form[action="/logout"] button`)),
		chromedp.Click(css(`form[action="/logout"] button`)), chromedp.WaitVisible(css(`a[href="/login"]`)))
	alice.step("old password refused",
		visit(base+"/login"), typeInto(`input[placeholder="Email"]`, "alice@example.com"), typeInto(`input[placeholder="Password"]`, "alice-password-1"),
		chromedp.Click(css(`button[type="submit"]`)), chromedp.WaitVisible(css(".error-messages")))
	assert.Contains(t, alice.text(".error-messages"), "email or password is invalid")
	assert.Equal(t, "alice@example.com", func() string {
		v, err := chromedp.Run(alice.ctx, chromedp.Value(css(`input[placeholder="Email"]`)))
		require.NoError(t, err)
		return v
	}(), "what was typed is kept")
	alice.shot("login")
	alice.step("new password works",
		chromedp.SetValue(css(`input[placeholder="Password"]`), "alice-password-2"),
		chromedp.Click(css(`button[type="submit"]`)), chromedp.WaitVisible(css(`a[href="/profile/alice"]`)))

	xss := "<script>alert('script')</script>\n\n<img src=x onerror=\"alert('onerror')\">\n\n[click me](javascript:alert('link'))\n\n<svg onload=\"alert('svg')\"></svg>"
	alice.step("publish XSS",
		visit(base+"/editor"), chromedp.WaitVisible(css(`input[placeholder="Article Title"]`)),
		typeInto(`input[placeholder="Article Title"]`, "Hostile markdown"),
		typeInto(`input[placeholder="What's this article about?"]`, "It should do nothing"),
		chromedp.SetValue(css(`textarea[placeholder="Write your article (in markdown)"]`), xss),
		chromedp.Click(css(`button[type="submit"]`)), chromedp.WaitVisible(css(".article-page")))
	bob.step("read XSS", visit(base+"/article/hostile-markdown"), chromedp.WaitVisible(css(".markdown")))
	bob.step("home with the XSS article", visit(base+"/"), chromedp.WaitVisible(css(".preview-link")))
	bob.shot("home")
	time.Sleep(300 * time.Millisecond)
	dmu.Lock()
	assert.Empty(t, dialogs, "no script ran")
	dmu.Unlock()
	html, err := chromedp.Run(bob.ctx, chromedp.OuterHTML(chromedp.CSS("html")))
	require.NoError(t, err)
	assert.False(t, regexp.MustCompile(`(?i)onerror|onload|javascript:`).MatchString(html), "no handler or javascript: URL reaches the page")
	if errors.Is(context.Cause(bob.ctx), context.Canceled) {
		t.Fatal("the browser went away")
	}
}

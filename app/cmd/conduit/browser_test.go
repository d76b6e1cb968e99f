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

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var screenshots = flag.String("screenshots", "", "directory to write a PNG of each screen into (make screenshots)")

// chromium finds the browser: Debian's chromium, started as its own binary
// (/usr/bin/chromium is a script that adds the flags in /etc/chromium.d,
// whatever this machine put there), or Google Chrome. A snap's browser is
// refused: it sees neither the test's /tmp nor its fontconfig.
func chromium(t *testing.T) string {
	t.Helper()
	found := ""
	for _, name := range []string{"/usr/lib/chromium/chromium", "chromium", "google-chrome", "google-chrome-stable"} {
		p, err := exec.LookPath(name)
		if err != nil {
			continue
		}
		if real, err := filepath.EvalSymlinks(p); err == nil && strings.HasPrefix(real, "/snap/") {
			t.Fatalf("%s is a snap (%s), which cannot see the test's files: install Debian's chromium or Google Chrome", p, real)
		}
		found = p
		break
	}
	if found != "" {
		return found
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

	fonts fontSet     // what ctx's browser draws with
	other *otherFonts // the second font set's browser, for check (none: only ctx's)
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

// Screen sizes every screen is checked at: a desktop window, a phone
// (iPhone 14/15: 390 × 844 CSS pixels), the narrowest width WCAG 2.2's
// Reflow (SC 1.4.10) asks for (320 px), and a 1280 × 1024 desktop zoomed
// to 200 % and to 400 % (640 × 512 and 320 × 256 CSS px, no mobile
// viewport).
var (
	desktop  = size{"desktop", 1200, 900, false}
	phone    = size{"phone", 390, 844, true}
	narrow   = size{"narrow", 320, 640, true}
	zoomed2x = size{"200% zoom", 640, 512, false}
	zoomed   = size{"400% zoom", 320, 256, false}
	sizes    = []size{desktop, phone, narrow, zoomed2x, zoomed}
)

type size struct {
	name          string
	width, height int64
	mobile        bool
}

// at shows the page at z.
func at(z size) chromedp.Action[chromedp.Void] {
	if z.mobile {
		return chromedp.EmulateViewport(z.width, z.height, chromedp.EmulateScale(2), chromedp.EmulateMobile)
	}
	return chromedp.EmulateViewport(z.width, z.height)
}

// shot saves the current screen as docs/screenshots/<name>.png (and
// <name>-phone.png) when the test runs for make screenshots.
func (p *person) shot(name string) {
	p.t.Helper()
	if *screenshots == "" {
		return
	}
	ctx, cancel := context.WithTimeout(p.ctx, 20*time.Second)
	defer cancel()
	for _, z := range []size{desktop, phone} {
		file := name
		if z != desktop {
			file += "-" + z.name
		}
		require.NoError(p.t, chromedp.Do(ctx, at(z)))
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // 100: PNG (below it, JPEG)
		require.NoError(p.t, err)
		require.NoError(p.t, os.WriteFile(filepath.Join(*screenshots, file+".png"), png, 0o644))
	}
	require.NoError(p.t, chromedp.Do(ctx, at(desktop)))
}

// layoutScript lists what is wrong with the page's layout at the current
// width (WCAG 2.2 SC 1.4.10, Reflow): a page wider than the screen; any
// box past the left or right edge, unless it is inside code or a table
// that scrolls in a box of its own which itself fits (the one content
// Reflow lets scroll in two dimensions); text that spills out of its own
// box, or is cut off by a box that hides what overflows it (form fields
// scroll their value); navigation items drawn over one another or over
// the logo (the navigation may wrap); a control below the footer's top
// (floats not cleared).
const layoutScript = `(() => {
  const bad = [];
  const de = document.documentElement;
  const width = de.clientWidth;
  if (de.scrollWidth > width + 1) bad.push("the page scrolls sideways: " + de.scrollWidth + " > " + width);
  const what = el => el.outerHTML.slice(0, 100);
  const fits = r => r.left >= -1 && r.right <= width + 1;
  const scrollsOnItsOwn = el => {
    const box = el.closest("pre, table");
    if (!box) return false;
    const o = getComputedStyle(box).overflowX;
    return (o === "auto" || o === "scroll") && fits(box.getBoundingClientRect());
  };
  for (const el of document.body.querySelectorAll("*")) {
    if (el.closest(".visually-hidden, .skip-link, script, style")) continue;
    const r = el.getBoundingClientRect();
    if (r.width === 0 && r.height === 0) continue;
    const inside = scrollsOnItsOwn(el);
    if (!fits(r) && !inside) bad.push("past the edge: " + what(el));
    // Form fields scroll their own value (the caret moves through it).
    if (el.matches("input, textarea, select") || inside) continue;
    const cs = getComputedStyle(el);
    const hides = v => v === "hidden" || v === "clip";
    const spills = el.scrollWidth > el.clientWidth + 1 && el.clientWidth > 0;
    if ((hides(cs.overflowX) || cs.textOverflow === "ellipsis") && spills) bad.push("cut off: " + what(el));
    else if (cs.overflowX === "visible" && spills && cs.display !== "inline" && el.children.length === 0) bad.push("spills out of its box: " + what(el));
  }
  const boxes = [...document.querySelectorAll("header .brand, header .nav > li")].map(e => [e, e.getBoundingClientRect()]);
  for (let i = 0; i < boxes.length; i++) for (let j = i + 1; j < boxes.length; j++) {
    const [a, ra] = boxes[i], [b, rb] = boxes[j];
    if (ra.left < rb.right - 1 && rb.left < ra.right - 1 && ra.top < rb.bottom - 1 && rb.top < ra.bottom - 1)
      bad.push("navigation items overlap: " + a.textContent.trim() + " / " + b.textContent.trim());
  }
  const footer = document.querySelector("footer").getBoundingClientRect();
  for (const el of document.querySelectorAll("main a, main button, main input, main textarea")) {
    const r = el.getBoundingClientRect();
    if (r.width === 0 && r.height === 0) continue;
    if (r.bottom > footer.top + 1) bad.push("overlaps the footer: " + what(el));
  }
  return [...new Set(bad)];
})()`

// snapshotScript is the document as the person sees it, for the second
// font set's browser: the page's HTML with what was typed into its fields
// written into the copy (outerHTML alone has only their first values).
const snapshotScript = `(() => {
  const copy = document.documentElement.cloneNode(true);
  const live = document.querySelectorAll("input, textarea, select");
  copy.querySelectorAll("input, textarea, select").forEach((el, i) => {
    if (el.tagName === "TEXTAREA") el.textContent = live[i].value;
    else if (el.tagName === "SELECT") [...el.options].forEach((o, j) => o.toggleAttribute("selected", live[i].options[j].selected));
    else if (el.type === "checkbox" || el.type === "radio") el.toggleAttribute("checked", live[i].checked);
    else el.setAttribute("value", live[i].value);
  });
  return "<!doctype html>" + copy.outerHTML;
})()`

// check audits the screen p shows, as name, at every size: axe-core's
// serious and critical violations (desktop and phone), and the layout at
// every size under both font sets: in p's browser (the wide set), then
// the same document again in the suite's second browser (the narrow set).
func (p *person) check(name string) {
	p.t.Helper()
	script := axeScript(p.t)
	ctx, cancel := context.WithTimeout(p.ctx, 60*time.Second)
	defer cancel()
	var doc string
	for _, z := range sizes {
		require.NoError(p.t, chromedp.Do(ctx, at(z)))
		if z == desktop || z == phone {
			for _, v := range p.audit(script) {
				p.t.Errorf("%s (%s, %s): %s", name, z.name, p.name, v)
			}
		}
		bad, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](layoutScript))
		require.NoError(p.t, err)
		for _, b := range bad {
			p.t.Errorf("%s (%s, %s, %s fonts): layout: %s", name, z.name, p.name, p.fonts.name, b)
		}
		if doc == "" {
			doc, err = chromedp.Run(ctx, chromedp.Evaluate[string](snapshotScript))
			require.NoError(p.t, err)
		}
	}
	require.NoError(p.t, chromedp.Do(ctx, at(desktop)))
	if p.other == nil {
		return
	}
	for _, z := range sizes {
		bad, err := p.other.layout(doc, z)
		require.NoError(p.t, err, "%s: the layout under the %s fonts", name, p.other.fonts.name)
		for _, b := range bad {
			p.t.Errorf("%s (%s, %s, %s fonts): layout: %s", name, z.name, p.name, p.other.fonts.name, b)
		}
	}
}

// otherFonts is the suite's second browser, drawing with the other font
// set: check shows it each screen's document as the first browser has it
// (same origin, so the same style sheet) and runs the layout checks again.
type otherFonts struct {
	ctx   context.Context
	fonts fontSet
	mu    sync.Mutex
}

func newOtherFonts(t *testing.T, exe, base string, fonts fontSet) *otherFonts {
	t.Helper()
	ctx := newBrowser(t, exe, fonts)
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(base+"/robots.txt")))
	return &otherFonts{ctx: ctx, fonts: fonts}
}

// layout draws doc at z and returns what layoutScript finds.
func (o *otherFonts) layout(doc string, z size) ([]string, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	ctx, cancel := context.WithTimeout(o.ctx, 20*time.Second)
	defer cancel()
	tree, err := chromedp.Call(ctx, page.GetFrameTree, cdp.Empty{})
	if err != nil {
		return nil, err
	}
	if _, err := chromedp.Call(ctx, page.SetDocumentContent, page.SetDocumentContentParams{FrameID: tree.FrameTree.Frame.ID, HTML: doc}); err != nil {
		return nil, err
	}
	yes := true
	styled := `Promise.all([...document.querySelectorAll('link[rel=stylesheet]')].map(l => l.sheet ? 0 :
	  new Promise((ok, fail) => { l.addEventListener("load", ok); l.addEventListener("error", () => fail(new Error("style sheet " + l.href + " did not load"))); })))
	  .then(() => document.fonts.ready).then(() => true)`
	if err := chromedp.Do(ctx, at(z), chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := chromedp.Evaluate[bool](styled, func(e *runtime.EvaluateParams) { e.AwaitPromise = &yes })(ctx, t)
		return err
	})); err != nil {
		return nil, err
	}
	return chromedp.Run(ctx, chromedp.Evaluate[[]string](layoutScript))
}

func css(s string) chromedp.CSS { return chromedp.CSS(s) }

// visit navigates and waits for the page's main element.
func visit(url string) chromedp.Action[chromedp.Void] {
	return chromedp.Navigate(url)
}

func typeInto(sel, value string) chromedp.Action[chromedp.Void] {
	return chromedp.SendKeys(css(sel), value)
}

// browserSuite starts conduit local and Chromium; people get their own
// browser context (own cookies). Scripts the page runs are recorded by
// the dialogs they open (alert): the site must run none.
type browserSuite struct {
	t       *testing.T
	base    string
	browser context.Context // draws with wideFonts
	other   *otherFonts     // draws the same screens with narrowFonts
	n       int
	mu      sync.Mutex
	dmu     sync.Mutex
	dialogs []string
}

func newBrowserSuite(t *testing.T) *browserSuite {
	t.Helper()
	exe := chromium(t)
	inst := start(t, t.TempDir(), nil)
	if *screenshots != "" {
		require.NoError(t, os.MkdirAll(*screenshots, 0o755))
	}
	base := "http://" + inst.web
	return &browserSuite{t: t, base: base, browser: newBrowser(t, exe, wideFonts), other: newOtherFonts(t, exe, base, narrowFonts)}
}

func (b *browserSuite) person(name string) *person {
	t := b.t
	ctx, cancel := chromedp.NewContext(b.browser, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	require.NoError(t, chromedp.Listen(ctx, func(ev any) {
		if d, ok := ev.(*page.EventJavascriptDialogOpening); ok {
			b.dmu.Lock()
			b.dialogs = append(b.dialogs, name+": "+d.Message)
			b.dmu.Unlock()
		}
	}))
	return &person{t: t, name: name, ctx: ctx, base: b.base, dir: t.TempDir(), n: &b.n, mu: &b.mu, fonts: wideFonts, other: b.other}
}

// value is the current value of the form field sel.
func (p *person) value(sel string) string {
	p.t.Helper()
	v, err := chromedp.Run(p.ctx, chromedp.Value(css(sel)))
	require.NoError(p.t, err)
	return v
}

// focused describes the element that has the focus.
func (p *person) focused() string {
	p.t.Helper()
	v, err := chromedp.Run(p.ctx, chromedp.Evaluate[string](`(document.activeElement.id || document.activeElement.className || document.activeElement.tagName)`))
	require.NoError(p.t, err)
	return v
}

func (p *person) title() string {
	p.t.Helper()
	v, err := chromedp.Run(p.ctx, chromedp.Title())
	require.NoError(p.t, err)
	return v
}

// signUp registers name through the form.
func (p *person) signUp(name, password string) {
	p.t.Helper()
	p.step("sign up", visit(p.base+"/register"), chromedp.WaitVisible(css("#username")),
		typeInto("#username", name), typeInto("#email", name+"@example.com"),
		typeInto("#password", password), chromedp.Click(css(`form button[type="submit"]`)),
		chromedp.WaitVisible(css(`header a[href="/profile/`+name+`"]`)))
}

// publish writes an article through the editor; tags go one per line.
func (p *person) publish(title, description, body string, tags ...string) {
	p.t.Helper()
	actions := []chromedp.Action[chromedp.Void]{visit(p.base + "/editor"), chromedp.WaitVisible(css("#title")),
		typeInto("#title", title), typeInto("#description", description), chromedp.SetValue(css("#body"), body)}
	for _, tag := range tags {
		actions = append(actions, typeInto("#tags", tag+"\r"))
	}
	actions = append(actions, chromedp.Click(css(`form button[type="submit"]`)), chromedp.WaitVisible(css(".article-page")))
	p.step("publish "+title, actions...)
}

// The RealWorld flows, in a real browser against conduit local (web with
// the WAF → api → FerretDB): two people sign up, one publishes markdown
// with tags, the other finds it by tag, favorites it, follows the author
// and comments; the author edits and deletes; settings change the bio and
// the password, and sign-in works with the new one; an article full of
// XSS renders inert. Every screen is audited on the way (axe-core, the
// layout at three widths).
func TestBrowserFlows(t *testing.T) {
	b := newBrowserSuite(t)
	base := b.base
	alice, bob := b.person("alice"), b.person("bob")

	alice.step("home", visit(base+"/"), chromedp.WaitVisible(css(".home-page")))
	assert.Contains(t, alice.text(".banner"), "A place to share your knowledge.")
	alice.check("home, empty")
	alice.shot("home-empty")
	alice.step("sign-up page", chromedp.Click(css(`header a[href="/register"]`)), chromedp.WaitVisible(css("#username")))
	assert.Contains(t, alice.text(".form-page"), "At least 12 characters", "the password rule shows before the first submit")
	alice.check("sign up")
	alice.shot("register")
	alice.signUp("alice", "alice-password-1")
	assert.Contains(t, alice.text("header"), "New Article")
	assert.Contains(t, alice.text("header"), "Settings")

	markdown := "## How it works\n\nDragons need **patience** and `code`:\n\n```go\nfmt.Println(\"<script>not run</script>\", \"a line long enough to scroll sideways on a phone, and then some more\")\n```\n\n> Wise words\n\n| wing | span |\n|---|---|\n| left | 4 m |\n"
	alice.step("editor", chromedp.Click(css(`header a[href="/editor"]`)), chromedp.WaitVisible(css("#title")))
	alice.check("editor")
	alice.shot("editor")
	alice.publish("How to train your dragon", "Ever wonder how?", markdown, "dragons", "training")
	assert.Equal(t, base+"/article/how-to-train-your-dragon", alice.location())
	assert.Contains(t, alice.text(".flash"), "published")
	assert.Contains(t, alice.text(".markdown h2"), "How it works", "markdown is rendered")
	assert.Contains(t, alice.text(".markdown strong"), "patience")
	assert.Contains(t, alice.text(".markdown pre"), "<script>not run</script>", "code stays text")
	assert.Contains(t, alice.text(".article-content .tag-list"), "dragons")
	assert.Contains(t, alice.text(".article-content .tag-list"), "training")
	alice.check("article, the author's")

	anon := b.person("anonymous")
	anon.step("article, signed out", visit(base+"/article/how-to-train-your-dragon"), chromedp.WaitVisible(css(".article-page")))
	anon.check("article, signed out")
	anon.step("profile, signed out", visit(base+"/profile/alice"), chromedp.WaitVisible(css(".profile-page")))
	anon.check("profile, signed out")
	anon.step("sign in", visit(base+"/login"), chromedp.WaitVisible(css("#email")))
	anon.check("sign in")

	bob.signUp("bob", "bob-password-12")
	bob.step("find by tag", chromedp.Click(css(`.sidebar a[href="/?tag=dragons"]`)), chromedp.WaitVisible(css(`.preview-link`)))
	assert.Contains(t, bob.text(".feed-toggle"), "dragons")
	assert.Contains(t, bob.text(".preview-link h2"), "How to train your dragon")
	assert.Equal(t, "Articles tagged “dragons” — Conduit", bob.title())
	bob.check("home, a tag")
	bob.shot("home-tag")
	bob.step("open the article", chromedp.Click(css(`.preview-link`)), chromedp.WaitVisible(css(".article-page")))
	bob.step("favorite", chromedp.Click(css(`.banner form[action$="/favorite"] button`)), chromedp.WaitVisible(css(`.banner form[action$="/unfavorite"]`)))
	assert.Contains(t, bob.text(".banner form[action$=\"/unfavorite\"] button"), "(1")
	bob.step("follow", chromedp.Click(css(`.banner form[action$="/follow"] button`)), chromedp.WaitVisible(css(`.banner form[action$="/unfollow"]`)))
	bob.step("comment",
		typeInto("#comment", "Great read — try <b>this</b>"),
		chromedp.Click(css(`.comment-form button`)), chromedp.WaitVisible(css(`.comment .card-text`)))
	assert.Equal(t, "Great read — try <b>this</b>", bob.text(".comment .card-text"), "comments are text")
	assert.Contains(t, bob.text(".comment .card-footer"), "Delete", "bob may delete his comment")
	bob.check("article, a reader's")
	bob.shot("article")
	bob.step("your feed", visit(base+"/?feed=your"), chromedp.WaitVisible(css(`.preview-link`)))
	assert.Contains(t, bob.text(`.feed-toggle [aria-current="page"]`), "Your Feed")
	bob.check("home, your feed")
	bob.step("favorites", visit(base+"/profile/bob/favorites"), chromedp.WaitVisible(css(`.preview-link`)))
	assert.Contains(t, bob.text(`.articles-toggle [aria-current="page"]`), "Favorited Articles")
	bob.check("profile, favorites")
	bob.shot("profile-favorites")

	alice.step("sees the comment without its delete link", visit(base+"/article/how-to-train-your-dragon"), chromedp.WaitVisible(css(`.comment .card-text`)))
	assert.NotContains(t, alice.text(".comments"), "Delete", "only its author sees a comment's delete link")
	alice.step("edit",
		chromedp.Click(css(`.banner a[href="/editor/how-to-train-your-dragon"]`)), chromedp.WaitVisible(css("#title")),
		chromedp.SetValue(css("#description"), "A gentler way"))
	assert.Equal(t, "dragons\ntraining", alice.value("#tags"), "the editor shows the tags, one per line")
	alice.check("editor, an article")
	alice.step("change a tag and save",
		chromedp.SetValue(css("#tags"), "dragons\nflying"),
		chromedp.Click(css(`form button[type="submit"]`)), chromedp.WaitVisible(css(".article-page")))
	assert.Contains(t, alice.text(".flash"), "updated")
	assert.Contains(t, alice.text(".article-content .tag-list"), "flying", "an edit changes the tags")
	assert.NotContains(t, alice.text(".article-content .tag-list"), "training")
	alice.step("profile", visit(base+"/profile/alice"), chromedp.WaitVisible(css(".preview-link")))
	assert.Contains(t, alice.text(".preview-link p"), "A gentler way")
	assert.Contains(t, alice.text(`.articles-toggle [aria-current="page"]`), "My Articles")
	alice.check("profile, one's own")
	alice.shot("profile")

	alice.step("settings", visit(base+"/settings"), chromedp.WaitVisible(css("#bio")))
	alice.check("settings")
	alice.shot("settings")
	alice.step("change bio and password",
		chromedp.SetValue(css("#bio"), "I train dragons."),
		typeInto("#password", "alice-password-2"),
		typeInto("#currentPassword", "alice-password-1"),
		chromedp.Click(css(`form[action="/settings"] button[type="submit"]`)), chromedp.WaitVisible(css(".profile-page")))
	assert.Contains(t, alice.text(".user-info p"), "I train dragons.")
	assert.Contains(t, alice.text(".flash"), "saved")
	alice.step("sign out",
		visit(base+"/settings"), chromedp.WaitVisible(css(`form[action="/logout"] button`)),
		chromedp.Click(css(`form[action="/logout"] button`)), chromedp.WaitVisible(css(`header a[href="/register"]`)))
	assert.Contains(t, alice.text(".flash"), "signed out")
	alice.step("old password refused",
		visit(base+"/login"), chromedp.WaitVisible(css("#email")), typeInto("#email", "alice@example.com"), typeInto("#password", "alice-password-1"),
		chromedp.Click(css(`form button[type="submit"]`)), chromedp.WaitVisible(css(".error-summary")))
	assert.Contains(t, alice.text(".error-summary"), "Email or password is invalid")
	assert.Equal(t, "alice@example.com", alice.value("#email"), "what was typed is kept")
	assert.Equal(t, "error-summary", alice.focused(), "the focus is on what went wrong")
	assert.Equal(t, "Error: Sign in — Conduit", alice.title())
	alice.check("sign in, refused")
	alice.shot("login")
	alice.step("new password works",
		chromedp.SetValue(css("#password"), "alice-password-2"),
		chromedp.Click(css(`form button[type="submit"]`)), chromedp.WaitVisible(css(`header a[href="/profile/alice"]`)))

	xss := "<script>alert('script')</script>\n\n<img src=x onerror=\"alert('onerror')\">\n\n[click me](javascript:alert('link'))\n\n<svg onload=\"alert('svg')\"></svg>"
	alice.publish("Hostile markdown", "It should do nothing", xss)
	bob.step("read XSS", visit(base+"/article/hostile-markdown"), chromedp.WaitVisible(css(".markdown")))
	bob.step("home with the XSS article", visit(base+"/?feed=global"), chromedp.WaitVisible(css(".preview-link")))
	bob.check("home, global feed")
	bob.shot("home")
	time.Sleep(300 * time.Millisecond)
	b.dmu.Lock()
	assert.Empty(t, b.dialogs, "no script ran")
	b.dmu.Unlock()
	html, err := chromedp.Run(bob.ctx, chromedp.OuterHTML(chromedp.CSS("html")))
	require.NoError(t, err)
	assert.False(t, regexp.MustCompile(`(?i)onerror|onload|javascript:`).MatchString(html), "no handler or javascript: URL reaches the page")

	alice.step("delete asks first",
		visit(base+"/article/how-to-train-your-dragon"), chromedp.WaitVisible(css(".article-page")),
		chromedp.Click(css(`.banner a[href$="/delete"]`)), chromedp.WaitVisible(css(".confirm-page")))
	assert.Contains(t, alice.text(".confirm-page"), "How to train your dragon")
	alice.check("delete an article?")
	alice.step("cancel keeps it", chromedp.Click(css(`.confirm-page a`)), chromedp.WaitVisible(css(".article-page")))
	alice.step("delete",
		chromedp.Click(css(`.banner a[href$="/delete"]`)), chromedp.WaitVisible(css(".confirm-page")),
		chromedp.Click(css(`.confirm-page button`)), chromedp.WaitVisible(css(".profile-page")))
	assert.Contains(t, alice.text(".flash"), "deleted", "it says it is done")
	assert.Equal(t, base+"/profile/alice", alice.location())
	alice.step("gone", visit(base+"/article/how-to-train-your-dragon"), chromedp.WaitVisible(css(".error-page")))
	assert.Contains(t, alice.text(".error-page h1"), "Not found")
	alice.check("not found")
	if errors.Is(context.Cause(bob.ctx), context.Canceled) {
		t.Fatal("the browser went away")
	}
}

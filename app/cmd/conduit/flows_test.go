package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// apiCall sends one JSON request to the site's /api/ and decodes the
// answer into out (when not nil); it returns the status.
func apiCall(t *testing.T, base, method, path, token string, in, out any) int {
	t.Helper()
	body, err := json.Marshal(in)
	require.NoError(t, err)
	req, err := http.NewRequest(method, base+path, bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Token "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	if out != nil {
		_ = json.NewDecoder(resp.Body).Decode(out)
	}
	return resp.StatusCode
}

// seedUser registers name over the api and returns its token.
func seedUser(t *testing.T, base, name string) string {
	t.Helper()
	var out struct{ User struct{ Token string } }
	st := apiCall(t, base, "POST", "/api/users", "", map[string]any{"user": map[string]any{
		"username": name, "email": name + "@example.com", "password": name + "-password-1"}}, &out)
	require.Equal(t, http.StatusCreated, st)
	return out.User.Token
}

// seedArticle publishes an article over the api and returns its slug.
func seedArticle(t *testing.T, base, token, title string) string {
	t.Helper()
	var out struct{ Article struct{ Slug string } }
	st := apiCall(t, base, "POST", "/api/articles", token, map[string]any{"article": map[string]any{
		"title": title, "description": "About " + title, "body": "Body of " + title, "tagList": []string{"seed"}}}, &out)
	require.Equal(t, http.StatusCreated, st)
	return out.Article.Slug
}

// signIn signs p in through the form at the page it is on.
func (p *person) signIn(name string) {
	p.t.Helper()
	p.step("sign in", chromedp.WaitVisible(css("#email")), typeInto("#email", name+"@example.com"), typeInto("#password", name+"-password-1"),
		chromedp.Click(css(`form button[type="submit"]`)), chromedp.WaitVisible(css(`header a[href="/profile/`+name+`"]`)))
}

// The flows that keep people's place, one subtest each, in one browser.
func TestSiteFlowsKeepPeoplesPlace(t *testing.T) {
	b := newBrowserSuite(t)
	base := b.base
	authorToken := seedUser(t, base, "author")
	var slugs []string
	for i := range 25 {
		slugs = append(slugs, seedArticle(t, base, authorToken, fmt.Sprintf("Seeded article %02d", i)))
	}
	seedUser(t, base, "reader")
	seedUser(t, base, "loner")

	t.Run("sign-in returns to where the person was going, on this site only", func(t *testing.T) {
		p := b.person("reader")
		p.t = t
		p.step("open the editor signed out", visit(base+"/editor"), chromedp.WaitVisible(css("#email")))
		assert.Equal(t, base+"/login?next=%2Feditor", p.location())
		p.signIn("reader")
		assert.Equal(t, base+"/editor", p.location(), "back to the editor")

		q := b.person("reader-2")
		q.t = t
		q.step("an article's sign-in link", visit(base+"/article/"+slugs[0]), chromedp.Click(css(`.comments a[href^="/login"]`)), chromedp.WaitVisible(css("#email")))
		q.signIn("reader")
		assert.Equal(t, base+"/article/"+slugs[0]+"#comments", q.location(), "back to the comments")

		for _, evil := range []string{"//evil.test/x", "/%09/evil.test/x", "/\\evil.test", "https://evil.test/", "/%5Cevil.test"} {
			e := b.person("reader-evil")
			e.t = t
			e.step("sign in with next="+evil, visit(base+"/login?next="+evil))
			e.signIn("reader")
			assert.Equal(t, base+"/", e.location(), "next=%s stays on the site", evil)
		}
	})

	t.Run("signed-in people skip the sign-in and sign-up forms", func(t *testing.T) {
		p := b.person("reader")
		p.t = t
		p.step("sign-in page", visit(base+"/login"))
		p.signIn("reader")
		for path, want := range map[string]string{"/login": "/", "/register": "/", "/login?next=%2Fsettings": "/settings"} {
			p.step("visit "+path, visit(base+path), chromedp.WaitVisible(css("main")))
			assert.Equal(t, base+want, p.location(), path)
		}
	})

	t.Run("signed-in people land on their feed when they follow someone", func(t *testing.T) {
		p := b.person("reader")
		p.t = t
		p.step("sign-in page", visit(base+"/login"))
		p.signIn("reader")
		p.step("follow the author", visit(base+"/profile/author"), chromedp.Click(css(`form[action$="/follow"] button`)), chromedp.WaitVisible(css(`form[action$="/unfollow"]`)))
		p.step("home", visit(base+"/"), chromedp.WaitVisible(css(".preview-link")))
		assert.Equal(t, "Your Feed", p.text(`.feed-toggle [aria-current="page"]`))
		assert.Equal(t, "Your feed — Conduit", p.title())
		p.check("home, signed in")

		l := b.person("loner")
		l.t = t
		l.step("sign-in page", visit(base+"/login"))
		l.signIn("loner")
		l.step("home", visit(base+"/"), chromedp.WaitVisible(css(".preview-link")))
		assert.Equal(t, "Global Feed", l.text(`.feed-toggle [aria-current="page"]`), "someone who follows nobody sees everyone's")
	})

	t.Run("favorite and follow from a list return to the item", func(t *testing.T) {
		p := b.person("reader")
		p.t = t
		p.step("sign-in page", visit(base+"/login"))
		p.signIn("reader")
		target := slugs[8] // the 17th newest: far down the first page
		p.step("global feed", visit(base+"/?feed=global"), chromedp.WaitVisible(css("#article-"+target)))
		label, err := chromedp.Run(p.ctx, chromedp.Evaluate[string](`document.querySelector("#article-`+target+` form button").textContent.replace(/\s+/g, " ").trim()`))
		require.NoError(t, err)
		assert.Contains(t, label, "0 favorites; add “Seeded article 08” to your favorites", "the ♥ button says what it does")
		p.step("favorite it", chromedp.Click(css("#article-"+target+" form button")), chromedp.WaitVisible(css("#article-"+target+` form[action$="/unfavorite"]`)))
		assert.Equal(t, base+"/?feed=global#article-"+target, p.location(), "back at the item")
		y, err := chromedp.Run(p.ctx, chromedp.Evaluate[float64](`window.scrollY`))
		require.NoError(t, err)
		assert.Positive(t, y, "scrolled to the item, not the top")
		p.step("page 2", visit(base+"/?feed=global&page=2"), chromedp.WaitVisible(css(".preview-link")))
		assert.Equal(t, "Global feed, page 2 — Conduit", p.title(), "each page has its own title")
	})

	t.Run("a rejected comment stays on an address that opens again", func(t *testing.T) {
		p := b.person("reader")
		p.t = t
		p.step("sign-in page", visit(base+"/login"))
		p.signIn("reader")
		p.step("comment blank", visit(base+"/article/"+slugs[1]), chromedp.WaitVisible(css("#comment")),
			typeInto("#comment", "   "), chromedp.Click(css(".comment-form button")), chromedp.WaitVisible(css(".error-summary")))
		assert.Equal(t, base+"/article/"+slugs[1], p.location(), "the article's own address")
		assert.Contains(t, p.text("#comment-error"), "Write a comment")
		assert.Equal(t, "error-summary", p.focused())
		assert.Contains(t, p.title(), "Error: ")
		p.check("article, comment refused")
		p.step("open the address again", visit(p.location()), chromedp.WaitVisible(css(".article-page")))
		assert.NotContains(t, p.text("main"), "There is a problem", "a plain GET of the same address shows the article")

		p.step("comment", typeInto("#comment", "Kind words"), chromedp.Click(css(".comment-form button")), chromedp.WaitVisible(css(".comment")))
		assert.Contains(t, p.text(".flash"), "posted")
		p.step("delete asks first", chromedp.Click(css(".comment .mod-options")), chromedp.WaitVisible(css(".confirm-page")))
		assert.Contains(t, p.text(".confirm-page blockquote"), "Kind words")
		p.check("delete a comment?")
		p.step("delete", chromedp.Click(css(".confirm-page button")), chromedp.WaitVisible(css(".article-page")))
		assert.Contains(t, p.text(".flash"), "deleted")
		assert.NotContains(t, p.text(".comments"), "Kind words")
	})

	t.Run("rules show before the first submit and messages name fields as shown", func(t *testing.T) {
		p := b.person("reader")
		p.t = t
		p.step("sign-up page", visit(base+"/register"), chromedp.WaitVisible(css("#password")))
		assert.Contains(t, p.text("#password-hint"), "At least 12 characters")
		assert.Contains(t, p.text("#username-hint"), "at most 64")
		p.step("sign-in page", visit(base+"/login"))
		p.signIn("reader")
		p.step("change the email without the password", visit(base+"/settings"), chromedp.WaitVisible(css("#email")),
			chromedp.SetValue(css("#email"), "new-reader@example.com"),
			chromedp.Click(css(`form[action="/settings"] button[type="submit"]`)), chromedp.WaitVisible(css(".error-summary")))
		msg := p.text("#currentPassword-error")
		assert.True(t, strings.HasPrefix(msg, "Current password "), "spoken as the label shows it: %q", msg)
		assert.NotContains(t, p.text("main"), "currentPassword")
		invalid, err := chromedp.Run(p.ctx, chromedp.Evaluate[string](`document.getElementById("currentPassword").getAttribute("aria-invalid") + " " + document.getElementById("currentPassword").getAttribute("aria-describedby")`))
		require.NoError(t, err)
		assert.Equal(t, "true currentPassword-hint currentPassword-error", invalid)
		p.check("settings, refused")
		p.step("the summary links to the field", chromedp.Click(css(`.error-summary a[href="#currentPassword"]`)))
		assert.Equal(t, "currentPassword", p.focused())
	})

	t.Run("long words, names, tags, links and code wrap or scroll inside their own box", func(t *testing.T) {
		name := "a_username_as_long_as_the_site_allows_with_nowhere_to_break_it.1" // 64, the most there is
		require.Len(t, name, 64)
		token := seedUser(t, base, name)
		word := "Pneumonoultramicroscopicsilicovolcanoconiosis-and-hyphenless-runs-of-letters-like-thisoneherethatgoesonandon"
		link := "https://example.com/a/path/that/goes/on/and/on/without/a/single/space/" + strings.Repeat("segment/", 12) + "end"
		tags := []string{
			"a-tag-as-long-as-a-tag-may-be-sixty-four-characters-with-nospace",
			"another-tag-as-long-as-they-come-sixty-four-characters-no-breaks",
		}
		for _, tag := range tags {
			require.Len(t, tag, 64)
		}
		body := "A word longer than a phone: " + word + ".\n\nA link: <" + link + "> and [its text](" + link + ").\n\n" +
			"Inline code: `" + strings.Repeat("identifier_", 12) + "`.\n\n```\n" + strings.Repeat("code ", 40) + "\n```\n\n" +
			"| " + strings.Repeat("column | ", 12) + "\n|" + strings.Repeat("---|", 12) + "\n| " + strings.Repeat("cell | ", 12) + "\n"
		var art struct{ Article struct{ Slug string } }
		require.Equal(t, http.StatusCreated, apiCall(t, base, "POST", "/api/articles", token, map[string]any{"article": map[string]any{
			"title": word, "description": link, "body": body, "tagList": tags}}, &art))
		slug := art.Article.Slug
		require.Equal(t, http.StatusOK, apiCall(t, base, "POST", "/api/articles/"+slug+"/comments", token,
			map[string]any{"comment": map[string]any{"body": "See " + link + " and " + word}}, nil))
		require.Equal(t, http.StatusOK, apiCall(t, base, "PUT", "/api/user", token,
			map[string]any{"user": map[string]any{"bio": word + " " + link}}, nil))

		p := b.person("long")
		p.t = t
		p.step("sign-in page", visit(base+"/login"), chromedp.WaitVisible(css("#email")), typeInto("#email", name+"@example.com"),
			typeInto("#password", name+"-password-1"), chromedp.Click(css(`form button[type="submit"]`)),
			chromedp.WaitVisible(css(`header a[href="/profile/`+name+`"]`)))
		for _, screen := range []struct{ name, path, sel string }{
			{"home, a long article", "/?feed=global", ".preview-link"},
			{"home, a long tag", "/?tag=" + tags[0], ".preview-link"},
			{"article, long everything", "/article/" + slug, ".comment"},
			{"profile, a long name", "/profile/" + name, ".preview-link"},
			{"editor, a long article", "/editor/" + slug, "#title"},
			{"settings, a long name", "/settings", "#bio"},
		} {
			p.step(screen.name, visit(base+screen.path), chromedp.WaitVisible(css(screen.sel)))
			p.check(screen.name)
		}
		p.step("the article at 320 px", visit(base+"/article/"+slug), chromedp.WaitVisible(css(".markdown pre")), at(narrow))
		boxes, err := chromedp.Run(p.ctx, chromedp.Evaluate[[]string](`[".markdown pre", ".markdown table"].map(s => {
		  const e = document.querySelector(s); return s + (e.scrollWidth > e.clientWidth ? " scrolls" : " fits") })`))
		require.NoError(t, err)
		assert.Equal(t, []string{".markdown pre scrolls", ".markdown table scrolls"}, boxes, "code and tables keep their lines and scroll in their own box")
		require.NoError(t, chromedp.Do(p.ctx, at(desktop)))
	})

	t.Run("an edit that meets another keeps what was typed, takes what it never touched, and says so", func(t *testing.T) {
		slug := seedArticle(t, base, authorToken, "Edited in two tabs")
		one, two := b.person("author"), b.person("author-2")
		one.t, two.t = t, t
		for _, p := range []*person{one, two} {
			p.step("sign in", visit(base+"/login"))
			p.signIn("author")
			p.step("open the editor", visit(base+"/editor/"+slug), chromedp.WaitVisible(css("#title")))
		}
		one.step("save in the first tab", chromedp.SetValue(css("#description"), "Saved first"),
			chromedp.Click(css(`form button[type="submit"]`)), chromedp.WaitVisible(css(".article-page")))
		two.step("save in the second", chromedp.SetValue(css("#body"), "Typed in the second tab"),
			chromedp.Click(css(`form button[type="submit"]`)), chromedp.WaitVisible(css(".error-summary")))
		assert.Contains(t, two.text(".error-summary"), "your changes were not saved")
		assert.Contains(t, two.text(".error-summary"), "Description was changed in the saved version: the form now shows it")
		assert.Equal(t, "Saved first", two.value("#description"), "a field this tab never touched takes the saved value")
		assert.Equal(t, "Typed in the second tab", two.value("#body"), "what was typed is kept")
		assert.Equal(t, "error-summary", two.focused())
		two.check("editor, an edit that met another")
		two.step("save it over the other, knowingly", chromedp.Click(css(`form button[type="submit"]`)), chromedp.WaitVisible(css(".article-page")))
		assert.Contains(t, two.text(".markdown"), "Typed in the second tab")
		var got struct {
			Article struct{ Description, Body string }
		}
		resp, err := http.Get(base + "/api/articles/" + slug)
		require.NoError(t, err)
		defer resp.Body.Close()
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&got))
		assert.Equal(t, "Saved first", got.Article.Description, "the first tab's change stays: saving the second did not undo it")
		assert.Equal(t, "Typed in the second tab", got.Article.Body)
	})

	t.Run("a form sent twice writes once", func(t *testing.T) {
		p := b.person("reader")
		p.t = t
		p.step("sign in", visit(base+"/login"))
		p.signIn("reader")
		// The same form data posted twice from the page (a double click, a
		// browser sending the POST again): one article, one comment.
		twice := `(async () => {
		  const form = document.querySelector("form[method=post]:not([action='/logout'])");
		  const send = () => fetch(form.action, {method: "POST", body: new URLSearchParams(new FormData(form)), redirect: "manual"}).then(r => r.type === "opaqueredirect" ? 303 : r.status);
		  return [await send(), await send()].join(",");
		})()`
		p.step("write an article", visit(base+"/editor"), chromedp.WaitVisible(css("#title")),
			typeInto("#title", "Sent twice"), typeInto("#description", "d"), chromedp.SetValue(css("#body"), "b"))
		yes := true
		statuses, err := chromedp.Run(p.ctx, chromedp.Evaluate[string](twice, func(e *runtime.EvaluateParams) { e.AwaitPromise = &yes }))
		require.NoError(t, err)
		assert.Equal(t, "303,303", statuses, "both answered as published")
		var list struct{ ArticlesCount int }
		resp, err := http.Get(base + "/api/articles?author=reader")
		require.NoError(t, err)
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&list))
		resp.Body.Close()
		assert.Equal(t, 1, list.ArticlesCount, "one article")

		p.step("open it", visit(base+"/article/sent-twice"), chromedp.WaitVisible(css("#comment")), typeInto("#comment", "Said once"))
		statuses, err = chromedp.Run(p.ctx, chromedp.Evaluate[string](strings.Replace(twice, `form[method=post]:not([action='/logout'])`, `form.comment-form`, 1),
			func(e *runtime.EvaluateParams) { e.AwaitPromise = &yes }))
		require.NoError(t, err)
		assert.Equal(t, "303,303", statuses)
		var comments struct{ Comments []any }
		resp, err = http.Get(base + "/api/articles/sent-twice/comments")
		require.NoError(t, err)
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&comments))
		resp.Body.Close()
		assert.Len(t, comments.Comments, 1, "one comment")
	})

	t.Run("Enter in the tags field adds a tag and never publishes", func(t *testing.T) {
		p := b.person("reader")
		p.t = t
		p.step("sign-in page", visit(base+"/login"))
		p.signIn("reader")
		p.step("type tags with Enter", visit(base+"/editor"), chromedp.WaitVisible(css("#tags")),
			typeInto("#title", "Tags by Enter"), typeInto("#description", "d"), chromedp.SetValue(css("#body"), "b"),
			typeInto("#tags", "first tag\r"), typeInto("#tags", "second\r"), typeInto("#tags", "third, fourth"))
		assert.Equal(t, base+"/editor", p.location(), "Enter did not submit")
		p.step("publish", chromedp.Click(css(`form button[type="submit"]`)), chromedp.WaitVisible(css(".article-page")))
		assert.Equal(t, "first tag\nfourth\nsecond\nthird", p.text(".article-content .tag-list"))
	})
}

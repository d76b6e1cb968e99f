package site_test

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"webstack/app/httpapi"
	"webstack/app/localdb"
	"webstack/app/site"
	"webstack/app/store"
)

// apiServer is the real api on an embedded FerretDB.
func apiServer(t *testing.T) *httptest.Server {
	t.Helper()
	ctx := context.Background()
	db, err := localdb.Start(ctx, "127.0.0.1:0", t.TempDir(), nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Stop(context.Background()) })
	st, err := store.Connect(ctx, db.URI, "conduit")
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close(context.Background()) })
	require.NoError(t, st.Migrate(ctx))
	tokens, err := httpapi.NewTokens(httpapi.Secret(strings.Repeat("k", 32)), time.Hour)
	require.NoError(t, err)
	srv := httptest.NewServer(httpapi.New(st, tokens, slog.New(slog.DiscardHandler), httpapi.Options{BcryptCost: 4}))
	t.Cleanup(srv.Close)
	return srv
}

func siteServer(t *testing.T, upstream string, https bool) *httptest.Server {
	t.Helper()
	u, err := url.Parse(upstream)
	require.NoError(t, err)
	s, err := site.New(site.Options{Upstream: u, HTTPS: func(*http.Request) bool { return https }})
	require.NoError(t, err)
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return srv
}

// browser is a cookie-keeping client that does not follow redirects.
type browser struct {
	t    *testing.T
	base string
	c    *http.Client
}

func newBrowser(t *testing.T, base string) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, base: base, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func (b *browser) get(path string) (*http.Response, string) {
	b.t.Helper()
	resp, err := b.c.Get(b.base + path)
	require.NoError(b.t, err)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

// post submits a form the way the page's own form would: with the CSRF
// token the page carries.
func (b *browser) post(formPage, action string, fields url.Values) (*http.Response, string) {
	b.t.Helper()
	_, page := b.get(formPage)
	m := csrfRE.FindStringSubmatch(page)
	require.NotNil(b.t, m, "no CSRF field on %s", formPage)
	fields.Set("csrf", m[1])
	return b.postRaw(action, fields, nil)
}

func (b *browser) postRaw(action string, fields url.Values, header map[string]string) (*http.Response, string) {
	b.t.Helper()
	req, _ := http.NewRequest("POST", b.base+action, strings.NewReader(fields.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := b.c.Do(req)
	require.NoError(b.t, err)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

func signUp(t *testing.T, b *browser, name string) {
	t.Helper()
	resp, body := b.post("/register", "/register", url.Values{"username": {name}, "email": {name + "@example.com"}, "password": {"correct-horse-battery"}})
	require.Equal(t, http.StatusSeeOther, resp.StatusCode, body)
}

func TestSignUpSetsASessionCookieOnlyTheServerReads(t *testing.T) {
	for _, https := range []bool{false, true} {
		b := newBrowser(t, siteServer(t, apiServer(t).URL, https).URL)
		resp, body := b.post("/register", "/register", url.Values{"username": {"alice"}, "email": {"alice@example.com"}, "password": {"correct-horse-battery"}})
		require.Equal(t, http.StatusSeeOther, resp.StatusCode, body)
		assert.Equal(t, "/", resp.Header.Get("Location"))
		name := "conduit_session"
		if https {
			name = "__Host-conduit_session" // only this host, over HTTPS, can set it
		}
		var session *http.Cookie
		for _, c := range resp.Cookies() {
			if c.Name == name {
				session = c
			}
		}
		require.NotNil(t, session, "cookie %s", name)
		assert.Equal(t, "/", session.Path)
		assert.Empty(t, session.Domain)
		assert.True(t, session.HttpOnly, "no script reads the token")
		assert.Equal(t, http.SameSiteLaxMode, session.SameSite)
		assert.Equal(t, https, session.Secure, "Secure exactly when the visitor's side is HTTPS")
		_, home := b.get("/")
		assert.Contains(t, home, `href="/profile/alice"`, "signed in: the nav shows the user")
		assert.Contains(t, home, "Your Feed")
		if https {
			assert.NotEmpty(t, resp.Header.Get("Strict-Transport-Security"))
		}
	}
}

func TestFormsWithoutTheirTokenOrFromAnotherSiteAreRefused(t *testing.T) {
	b := newBrowser(t, siteServer(t, apiServer(t).URL, false).URL)
	signUp(t, b, "bob")
	fields := url.Values{"title": {"t"}, "description": {"d"}, "body": {"b"}}
	resp, body := b.postRaw("/editor", fields, nil)
	assert.Equal(t, http.StatusForbidden, resp.StatusCode, "no token")
	assert.Contains(t, body, "Form expired")
	fields.Set("csrf", strings.Repeat("A", 43))
	resp, _ = b.postRaw("/editor", fields, nil)
	assert.Equal(t, http.StatusForbidden, resp.StatusCode, "a token that is not the visitor's")
	_, page := b.get("/editor")
	fields.Set("csrf", csrfRE.FindStringSubmatch(page)[1])
	resp, _ = b.postRaw("/editor", fields, map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"})
	assert.Equal(t, http.StatusForbidden, resp.StatusCode, "a form posted from another site")
	resp, _ = b.postRaw("/editor", fields, nil)
	assert.Equal(t, http.StatusSeeOther, resp.StatusCode, "the same form from the site itself")
}

func TestValidationErrorsShowOnTheFormWithWhatWasTyped(t *testing.T) {
	srv := siteServer(t, apiServer(t).URL, false)
	signUp(t, newBrowser(t, srv.URL), "carol")
	b := newBrowser(t, srv.URL)
	resp, body := b.post("/register", "/register", url.Values{"username": {"carol"}, "email": {"other@example.com"}, "password": {"correct-horse-battery"}})
	assert.Equal(t, http.StatusUnprocessableEntity, resp.StatusCode)
	assert.Contains(t, body, "has already been taken")
	assert.Contains(t, body, `value="other@example.com"`, "the email typed is kept")
	assert.NotContains(t, body, "correct-horse-battery", "the password is not echoed")

	signUp(t, b, "dave")
	resp, body = b.post("/editor", "/editor", url.Values{"title": {"Kept title"}, "description": {""}, "body": {"kept body"}})
	assert.Equal(t, http.StatusUnprocessableEntity, resp.StatusCode)
	assert.Contains(t, body, "Description can&#39;t be empty")
	assert.Contains(t, body, `value="Kept title"`)
	assert.Contains(t, body, ">kept body</textarea>")
}

func TestAnExpiredOrForgedSessionGoesToSignIn(t *testing.T) {
	srv := siteServer(t, apiServer(t).URL, false)
	b := newBrowser(t, srv.URL)
	u, _ := url.Parse(srv.URL)
	for path, login := range map[string]string{"/": "/login", "/settings": "/login?next=%2Fsettings",
		"/article/anything": "/login?next=%2Farticle%2Fanything", "/profile/anyone": "/login?next=%2Fprofile%2Fanyone"} {
		b.c.Jar.SetCookies(u, []*http.Cookie{{Name: "conduit_session", Value: "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.forged"}, {Name: "conduit_user", Value: "mallory"}})
		resp, _ := b.get(path)
		assert.Equal(t, http.StatusSeeOther, resp.StatusCode, path)
		assert.Equal(t, login, resp.Header.Get("Location"), "%s: signing in comes back here", path)
	}
	resp, _ := b.get("/")
	assert.Equal(t, http.StatusOK, resp.StatusCode, "the forged cookie was cleared")
}

func TestUnknownArticlesAndProfilesAre404Pages(t *testing.T) {
	b := newBrowser(t, siteServer(t, apiServer(t).URL, false).URL)
	for _, path := range []string{"/article/no-such-article", "/profile/nobody", "/no/such/page"} {
		resp, body := b.get(path)
		assert.Equal(t, http.StatusNotFound, resp.StatusCode, path)
		assert.Contains(t, resp.Header.Get("Content-Type"), "text/html")
		assert.Contains(t, body, "Back to the home page")
	}
}

// An api that does not answer gives a 503 page within the api timeout
// (2 s); the site serves again as soon as it answers.
func TestAnUnavailableAPIIsA503PageAndTheSiteRecovers(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	go func() { // accepts, never answers
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	b := newBrowser(t, siteServer(t, "http://"+addr, false).URL)
	start := time.Now()
	resp, body := b.get("/")
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	assert.Less(t, time.Since(start), 2500*time.Millisecond)
	assert.Equal(t, "2", resp.Header.Get("Retry-After"))
	assert.Contains(t, body, "Service unavailable")
	ln.Close()

	api := apiServer(t)
	// The same address now answers: the api comes back on it.
	proxy := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, _ := url.Parse(api.URL + r.URL.RequestURI())
		resp, err := http.Get(u.String())
		if err != nil {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		w.Header().Set("Content-Type", resp.Header.Get("Content-Type"))
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
	})}
	ln2, err := net.Listen("tcp", addr)
	require.NoError(t, err)
	go func() { _ = proxy.Serve(ln2) }()
	defer proxy.Close()
	resp, _ = b.get("/")
	assert.Equal(t, http.StatusOK, resp.StatusCode, "recovered without a restart")
}

func TestPagesCarryStrictSecurityHeadersAndAssetsAreImmutable(t *testing.T) {
	b := newBrowser(t, siteServer(t, apiServer(t).URL, false).URL)
	resp, body := b.get("/")
	assert.Equal(t, site.ContentSecurityPolicy, resp.Header.Get("Content-Security-Policy"))
	assert.Contains(t, site.ContentSecurityPolicy, "default-src 'none'")
	assert.NotContains(t, site.ContentSecurityPolicy, "unsafe-inline")
	assert.Contains(t, site.ContentSecurityPolicy, "frame-ancestors 'none'")
	assert.Equal(t, "DENY", resp.Header.Get("X-Frame-Options"))
	assert.Equal(t, "same-origin", resp.Header.Get("Referrer-Policy"))
	assert.Empty(t, resp.Header.Get("Strict-Transport-Security"), "no HSTS over plain HTTP")
	assert.NotContains(t, body, "<script", "no script at all")
	css := regexp.MustCompile(`href="(/assets/site\.[0-9a-f]{12}\.css)"`).FindStringSubmatch(body)
	require.NotNil(t, css, "content-hashed stylesheet")
	resp, _ = b.get(css[1])
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "public, max-age=31536000, immutable", resp.Header.Get("Cache-Control"))
	assert.Contains(t, resp.Header.Get("Content-Type"), "text/css")
	resp, _ = b.get("/assets/site.000000000000.css")
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)
}

func TestMarkdownRendersInert(t *testing.T) {
	tests := []struct {
		name, src string
		mustNot   []string
		must      []string
	}{
		{"script tag", "hi <script>alert(1)</script>", []string{"<script"}, []string{"hi"}},
		{"event handler", `<img src="x" onerror="alert(1)">`, []string{"onerror"}, nil},
		{"javascript link", "[click](javascript:alert(1))", []string{"javascript:"}, nil},
		{"javascript link, entity-encoded", `<a href="&#106;avascript:alert(1)">x</a>`, []string{"avascript:"}, nil},
		{"data URL", "[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)", []string{"data:"}, nil},
		{"iframe", `<iframe src="https://evil.example"></iframe>`, []string{"<iframe"}, nil},
		{"style", `<p style="background:url(javascript:alert(1))">x</p>`, []string{"style=", "javascript:"}, nil},
		{"svg", `<svg onload="alert(1)"><script>alert(1)</script></svg>`, []string{"<svg", "onload", "<script"}, nil},
		{"code block keeps code as text", "```html\n<script>alert(1)</script>\n```", []string{"<script>"}, []string{"&lt;script&gt;"}},
		{"wide blocks can take the focus", "```\ncode\n```\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n<pre>raw</pre>", []string{"<pre>"}, []string{`<pre tabindex="0">`, `<table tabindex="0">`}},
		{"plain markdown", "# Title\n\n**bold** and [a link](https://example.com)", nil, []string{"<h1", "<strong>bold</strong>", `href="https://example.com"`, `rel="nofollow noreferrer"`}},
	}
	for _, tt := range tests {
		out := strings.ToLower(string(site.Markdown(tt.src)))
		for _, s := range tt.mustNot {
			assert.NotContains(t, out, strings.ToLower(s), "%s: %s", tt.name, out)
		}
		for _, s := range tt.must {
			assert.Contains(t, out, strings.ToLower(s), "%s: %s", tt.name, out)
		}
	}
}

func TestPagesAndStylesheetAreCompressedWhenTheClientTakesGzip(t *testing.T) {
	srv := siteServer(t, apiServer(t).URL, false)
	get := func(path, accept string) *http.Response {
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		req.Header.Set("Accept-Encoding", accept)
		resp, err := http.DefaultTransport.RoundTrip(req) // no transparent decompression
		require.NoError(t, err)
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	tests := []struct {
		accept string
		gzip   bool
	}{
		{"gzip, deflate, br", true},
		{"br;q=1, gzip;q=0.5", true},
		{"*", true},
		{"gzip;q=0", false},
		{"identity", false},
		{"", false},
	}
	home := get("/", "")
	body, _ := io.ReadAll(home.Body)
	css := regexp.MustCompile(`href="(/assets/site\.[0-9a-f]{12}\.css)"`).FindStringSubmatch(string(body))[1]
	for _, tt := range tests {
		for _, path := range []string{"/", css} {
			resp := get(path, tt.accept)
			assert.Equal(t, http.StatusOK, resp.StatusCode)
			assert.Contains(t, resp.Header.Values("Vary"), "Accept-Encoding", path)
			if !tt.gzip {
				assert.Empty(t, resp.Header.Get("Content-Encoding"), "%s with %q", path, tt.accept)
				continue
			}
			assert.Equal(t, "gzip", resp.Header.Get("Content-Encoding"), "%s with %q", path, tt.accept)
			zr, err := gzip.NewReader(resp.Body)
			require.NoError(t, err)
			plain, err := io.ReadAll(zr)
			require.NoError(t, err)
			assert.Equal(t, resp.Header.Get("Content-Length"), strconv.Itoa(int(resp.ContentLength)))
			assert.NotEmpty(t, plain)
		}
	}
}

// The CSRF token a page carries is different in every response (masked
// with a fresh pad), so a compressed page's length says nothing about it;
// each masked form is accepted, a tampered one is not.
func TestTheFormTokenChangesEveryResponseAndEachWorks(t *testing.T) {
	b := newBrowser(t, siteServer(t, apiServer(t).URL, false).URL)
	signUp(t, b, "erin")
	_, one := b.get("/editor")
	_, two := b.get("/editor")
	t1, t2 := csrfRE.FindStringSubmatch(one)[1], csrfRE.FindStringSubmatch(two)[1]
	assert.NotEqual(t, t1, t2)
	for i, tok := range []string{t1, t2} {
		resp, _ := b.postRaw("/editor", url.Values{"csrf": {tok}, "title": {fmt.Sprintf("Token %d", i)}, "description": {"d"}, "body": {"b"}}, nil)
		assert.Equal(t, http.StatusSeeOther, resp.StatusCode, "masked token %d", i)
	}
	tampered := []byte(t1)
	tampered[len(tampered)-2] ^= 1
	resp, _ := b.postRaw("/editor", url.Values{"csrf": {string(tampered)}, "title": {"Tampered"}, "description": {"d"}, "body": {"b"}}, nil)
	assert.Equal(t, http.StatusForbidden, resp.StatusCode)
}

func TestRobotsTxtAndDescriptions(t *testing.T) {
	api := apiServer(t)
	b := newBrowser(t, siteServer(t, api.URL, false).URL)
	resp, body := b.get("/robots.txt")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, resp.Header.Get("Content-Type"), "text/plain")
	assert.Contains(t, body, "User-agent: *")
	assert.Contains(t, body, "Disallow: /*/delete")
	signUp(t, b, "frank")
	resp, _ = b.post("/editor", "/editor", url.Values{"title": {"Described"}, "description": {"A line about <it>"}, "body": {"b"}})
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	titles := map[string]bool{}
	for path, description := range map[string]string{
		"/":                  "a place to share your knowledge",
		"/article/described": "A line about &lt;it&gt;",
		"/profile/frank":     "Articles by frank on Conduit.",
		"/settings":          "a place to share your knowledge",
	} {
		_, page := b.get(path)
		assert.Contains(t, page, `<meta name="description" content="`, path)
		assert.Regexp(t, `<meta name="description" content="[^"]*`+regexp.QuoteMeta(description), page, path)
		title := regexp.MustCompile(`<title>([^<]*)</title>`).FindStringSubmatch(page)[1]
		assert.False(t, titles[title], "%s shares its title %q", path, title)
		titles[title] = true
	}
}

// ASVS 4.2.2 / 3.5: the CSRF token is the session's (a token from before
// sign-in is refused after it, and one session's token does not work for
// another); a form post whose Origin is this host on another scheme is
// refused.
func TestTheCSRFTokenIsBoundToTheSessionAndTheOriginToTheScheme(t *testing.T) {
	srv := siteServer(t, apiServer(t).URL, false)
	b := newBrowser(t, srv.URL)
	_, page := b.get("/register")
	before := csrfRE.FindStringSubmatch(page)[1]
	signUp(t, b, "gina")
	resp, _ := b.postRaw("/editor", url.Values{"csrf": {before}, "title": {"t"}, "description": {"d"}, "body": {"b"}}, nil)
	assert.Equal(t, http.StatusForbidden, resp.StatusCode, "the token from before sign-in is void after it")

	other := newBrowser(t, srv.URL)
	signUp(t, other, "hank")
	_, page = other.get("/editor")
	hanks := csrfRE.FindStringSubmatch(page)[1]
	resp, _ = b.postRaw("/editor", url.Values{"csrf": {hanks}, "title": {"t"}, "description": {"d"}, "body": {"b"}}, nil)
	assert.Equal(t, http.StatusForbidden, resp.StatusCode, "another session's token")

	_, page = b.get("/editor")
	mine := csrfRE.FindStringSubmatch(page)[1]
	host := strings.TrimPrefix(srv.URL, "http://")
	resp, _ = b.postRaw("/editor", url.Values{"csrf": {mine}, "title": {"Scheme"}, "description": {"d"}, "body": {"b"}}, map[string]string{"Origin": "https://" + host})
	assert.Equal(t, http.StatusForbidden, resp.StatusCode, "the same host on another scheme is another origin")
	resp, _ = b.postRaw("/editor", url.Values{"csrf": {mine}, "title": {"Scheme"}, "description": {"d"}, "body": {"b"}}, map[string]string{"Origin": "http://" + host})
	assert.Equal(t, http.StatusSeeOther, resp.StatusCode, "this very origin")
}

// ASVS 3.3.1: signing out on the site ends the session on the server: the
// old cookie, replayed, no longer opens anything.
func TestSignOutEndsTheSessionForTheOldCookieToo(t *testing.T) {
	srv := siteServer(t, apiServer(t).URL, false)
	b := newBrowser(t, srv.URL)
	signUp(t, b, "ivan")
	u, _ := url.Parse(srv.URL)
	var old []*http.Cookie
	for _, c := range b.c.Jar.Cookies(u) {
		if c.Name == "conduit_session" || c.Name == "conduit_user" {
			old = append(old, c)
		}
	}
	require.Len(t, old, 2)
	resp, _ := b.post("/settings", "/logout", url.Values{})
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	_, home := b.get("/")
	assert.Contains(t, home, "You are signed out.")

	replay := newBrowser(t, srv.URL)
	replay.c.Jar.SetCookies(u, old)
	resp, _ = replay.get("/settings")
	assert.Equal(t, http.StatusSeeOther, resp.StatusCode)
	assert.Equal(t, "/login?next=%2Fsettings", resp.Header.Get("Location"), "the old cookie opens nothing")
}

// Two tabs open the settings; the first saves a bio, the second (opened
// before) a picture and a username: nothing of the second is saved, its
// page is 409, keeps the picture and the username typed, takes the saved
// bio (the second tab never touched it, so saving again must not undo the
// first tab's change) and says so, and names the current version, so that
// sending it again saves over the other knowingly — the picture and the
// username, and the first tab's bio stays.
func TestASettingsFormThatMeetsAnotherChangeKeepsWhatWasTyped(t *testing.T) {
	api := apiServer(t)
	site := siteServer(t, api.URL, false)
	b := newBrowser(t, site.URL)
	signUp(t, b, "twotabs")
	value := func(page, name string) string {
		if m := regexp.MustCompile(`name="` + name + `"[^>]*? value="([^"]*)"`).FindStringSubmatch(page); m != nil {
			return html.UnescapeString(m[1])
		}
		return ""
	}
	hidden := func(page, name string) string {
		v := value(page, name)
		require.NotEmpty(t, v, "the form has its %s", name)
		return v
	}
	bioRE := regexp.MustCompile(`(?s)<textarea[^>]*name="bio"[^>]*>(.*?)</textarea>`)
	formOf := func(page string) url.Values {
		bio := bioRE.FindStringSubmatch(page)
		require.NotNil(t, bio)
		return url.Values{"csrf": {hidden(page, "csrf")}, "version": {hidden(page, "version")}, "shown": {hidden(page, "shown")},
			"username": {hidden(page, "username")}, "email": {hidden(page, "email")}, "image": {value(page, "image")}, "bio": {html.UnescapeString(strings.TrimPrefix(bio[1], "\n"))}}
	}
	_, one := b.get("/settings")
	_, two := b.get("/settings")
	first, second := formOf(one), formOf(two)
	first.Set("bio", "from the first tab")
	resp, body := b.postRaw("/settings", first, nil)
	require.Equal(t, http.StatusSeeOther, resp.StatusCode, body)

	second.Set("image", "https://example.com/second.png")
	second.Set("username", "twotabs2")
	second.Set("email", "TwoTabs@example.com")
	second.Set("currentPassword", "typed")
	resp, body = b.postRaw("/settings", second, nil)
	assert.Equal(t, http.StatusConflict, resp.StatusCode)
	assert.Contains(t, body, "so your changes were not saved")
	assert.Contains(t, body, "Passwords are not kept")
	assert.Contains(t, body, "Short bio was changed in the saved version: the form now shows it")
	assert.NotContains(t, body, "Profile picture URL is now", "a field only this tab changed is not a conflict")
	assert.NotContains(t, body, "Email is now", "the same address in another case is not a change")
	assert.NotContains(t, body, "Email was changed", "the same address in another case is not a change")
	assert.Contains(t, body, `value="https://example.com/second.png"`, "what was typed is kept")
	assert.Contains(t, body, `value="twotabs2"`, "what was typed is kept")
	assert.Contains(t, body, "from the first tab", "the bio this tab never touched shows the saved one")
	assert.NotEqual(t, second.Get("version"), hidden(body, "version"), "the form now names the current version")

	_, page := b.get("/profile/twotabs")
	assert.Contains(t, page, "from the first tab", "the first tab's change stays")
	assert.NotContains(t, page, "second.png", "nothing of the second was saved")

	again := formOf(body)
	resp, body = b.postRaw("/settings", again, nil)
	require.Equal(t, http.StatusSeeOther, resp.StatusCode, body)
	_, page = b.get("/profile/twotabs2")
	assert.Contains(t, page, "second.png", "sent again, it saves over the other")
	assert.Contains(t, page, "from the first tab", "and the first tab's bio stays")

	_, page = b.get("/settings")
	noVersion := formOf(page)
	noVersion.Del("version")
	noVersion.Set("bio", "unversioned")
	resp, body = b.postRaw("/settings", noVersion, nil)
	assert.Equal(t, http.StatusConflict, resp.StatusCode, "a form that names no version is shown against the saved settings")
	assert.Contains(t, body, "so your changes were not saved")
}

// A long thread is shown a page at a time: the article's page has the
// first 100 comments and a link to the later ones, which link back; a
// comment of a later page is deleted from there.
func TestALongThreadIsShownAPageAtATime(t *testing.T) {
	api := apiServer(t)
	web := siteServer(t, api.URL, false)
	call := func(method, path, token, body string) map[string]any {
		req, _ := http.NewRequest(method, api.URL+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("Authorization", "Token "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		require.Less(t, resp.StatusCode, 300, "%s %s: %v", method, path, out)
		return out
	}
	b := newBrowser(t, web.URL)
	signUp(t, b, "writer")
	token := call("POST", "/api/users/login", "", `{"user":{"email":"writer@example.com","password":"correct-horse-battery"}}`)["user"].(map[string]any)["token"].(string)
	call("POST", "/api/articles", token, `{"article":{"title":"Long thread","description":"d","body":"b"}}`)
	for i := range 102 {
		call("POST", "/api/articles/long-thread/comments", token, fmt.Sprintf(`{"comment":{"body":"comment number %03d"}}`, i))
	}
	_, page := b.get("/article/long-thread")
	assert.Contains(t, page, "comment number 099")
	assert.NotContains(t, page, "comment number 100")
	assert.NotContains(t, page, `class="count"`, "no count that would be the page's only")
	later := regexp.MustCompile(`<a rel="next" href="(/article/long-thread\?comments=[0-9]+-[0-9]+)#comments">Later comments</a>`).FindStringSubmatch(page)
	require.NotNil(t, later, "a link to the later comments")
	_, page = b.get(later[1])
	assert.Contains(t, page, "comment number 100")
	assert.Contains(t, page, "comment number 101")
	assert.NotContains(t, page, "comment number 099")
	assert.Contains(t, page, `<a href="/article/long-thread#comments">First comments</a>`)
	assert.NotContains(t, page, "Later comments")
	del := regexp.MustCompile(`href="(/article/long-thread/comments/[0-9]+/delete\?from=[0-9-]+)"`).FindAllStringSubmatch(page, -1)
	require.Len(t, del, 2, "the later page's comments can be deleted from it")
	resp, confirm := b.get(del[1][1])
	require.Equal(t, http.StatusOK, resp.StatusCode, confirm)
	assert.Contains(t, confirm, "comment number 101", "the confirmation quotes the comment of the later page")
}

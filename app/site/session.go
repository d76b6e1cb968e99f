package site

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"webstack/app/observe"
)

// Cookies. The session cookie holds the api's token (HttpOnly: no script
// can read it; SameSite=Lax: other sites' forms do not carry it). The user
// cookie holds the username the navigation shows; it grants nothing (every
// action is the api's, with the token). Over HTTPS every cookie is Secure
// and named with the __Host- prefix, which browsers accept only from this
// host over HTTPS with Path=/ and no Domain: a sibling subdomain or a
// plain-HTTP page cannot plant one.
//
// CSRF: a signed-in visitor's forms carry a token derived from their
// session token (bound to the session: a new one at every sign-in, none
// after sign-out); a visitor who is not signed in gets a random one in the
// csrf cookie (the sign-in and sign-up forms), which sign-in and sign-out
// replace. Either way the field is masked afresh in each response.
const (
	sessionCookie = "conduit_session"
	userCookie    = "conduit_user"
	csrfCookie    = "conduit_csrf"
	sessionTTL    = 12 * time.Hour // the api's default session lifetime
)

// jar reads and writes one request's cookies under their names for its
// scheme.
type jar struct {
	w      http.ResponseWriter
	r      *http.Request
	secure bool
}

func (s *Site) jar(w http.ResponseWriter, r *http.Request) jar {
	return jar{w: w, r: r, secure: s.opts.HTTPS(r)}
}

func (j jar) name(base string) string {
	if j.secure {
		return "__Host-" + base
	}
	return base
}

func (j jar) get(base string) string {
	c, err := j.r.Cookie(j.name(base))
	if err != nil {
		return ""
	}
	return c.Value
}

func (j jar) set(base, value string, maxAge time.Duration, sameSite http.SameSite) {
	http.SetCookie(j.w, &http.Cookie{Name: j.name(base), Value: value, Path: "/", HttpOnly: true, Secure: j.secure,
		SameSite: sameSite, MaxAge: int(maxAge.Seconds())})
}

func (j jar) del(base string, sameSite http.SameSite) { j.set(base, "", -time.Second, sameSite) }

// signIn keeps the api's token and the username, and drops the anonymous
// CSRF token (the session's own takes over).
func (j jar) signIn(token, username string) {
	j.set(sessionCookie, token, sessionTTL, http.SameSiteLaxMode)
	j.set(userCookie, username, sessionTTL, http.SameSiteLaxMode)
	j.del(csrfCookie, http.SameSiteStrictMode)
}

// clearSession forgets the session and the CSRF token.
func (j jar) clearSession() {
	j.del(sessionCookie, http.SameSiteLaxMode)
	j.del(userCookie, http.SameSiteLaxMode)
	j.del(csrfCookie, http.SameSiteStrictMode)
}

// sessionCSRF is the CSRF token of the session with token.
func sessionCSRF(token string) string {
	sum := sha256.Sum256([]byte("conduit-csrf\x00" + token))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

var (
	usernameRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)
	csrfRE     = regexp.MustCompile(`^[A-Za-z0-9_-]{43}$`)
)

// visitor is who is looking: their token and username when signed in, and
// their CSRF token.
type visitor struct {
	token, username, csrf string
	// formToken is csrf masked afresh for this response (what its forms
	// carry): a compressed page never shows the same bytes for the
	// secret twice, so its size says nothing about it (BREACH).
	formToken string
}

func (v visitor) signedIn() bool { return v.token != "" }

// base is what every page's view carries.
type base struct {
	Title       string
	Description string
	Nav         string // which navigation link is active
	Me          string // the signed-in username, or ""
	CSRF        string // the masked CSRF token forms carry
	Here        string // this page's path, where sign-in returns to
	Flash       string // what the last action did, if it redirected here
	Failed      bool   // a form on this page was refused
	// FormKey is this page view's idempotency key: its forms carry it, and
	// the site sends it to the api (Idempotency-Key), so that a form sent
	// twice (a double click, the browser sending a POST again) writes once.
	// Every page view has its own: a form shown again after a refusal is a
	// new request.
	FormKey string
}

// SignInHref is the navigation's sign-in link: back here afterwards.
func (b base) SignInHref() string {
	if b.Nav == "login" || b.Nav == "register" {
		return "/login"
	}
	return loginURL(b.Here)
}

// visitorOf reads the visitor's cookies, and gives a visitor who is not
// signed in a CSRF token if they have none yet.
func (s *Site) visitorOf(w http.ResponseWriter, r *http.Request) visitor {
	var v visitor
	j := s.jar(w, r)
	if t := j.get(sessionCookie); t != "" {
		v.token = t
		if u := j.get(userCookie); usernameRE.MatchString(u) {
			v.username = u
		}
		v.csrf = sessionCSRF(t)
	} else if c := j.get(csrfCookie); csrfRE.MatchString(c) {
		v.csrf = c
	} else {
		b := make([]byte, 32)
		_, _ = rand.Read(b)
		v.csrf = base64.RawURLEncoding.EncodeToString(b)
		j.set(csrfCookie, v.csrf, 0, http.SameSiteStrictMode)
	}
	v.formToken = maskToken(v.csrf)
	return v
}

// maskToken is tok XORed with a random pad, after the pad: a different
// string each time for the same token.
func maskToken(tok string) string {
	raw, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return ""
	}
	out := make([]byte, 2*len(raw))
	_, _ = rand.Read(out[:len(raw)])
	for i, b := range raw {
		out[len(raw)+i] = b ^ out[i]
	}
	return base64.RawURLEncoding.EncodeToString(out)
}

// unmaskToken undoes maskToken; "" when s is not a masked token.
func unmaskToken(s string) string {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) != 64 {
		return ""
	}
	pad, x := b[:32], b[32:]
	raw := make([]byte, 32)
	for i := range raw {
		raw[i] = x[i] ^ pad[i]
	}
	return base64.RawURLEncoding.EncodeToString(raw)
}

// page is what every page's view carries, for v: the title (unique per
// page; "Error: " is added for a refused form), the description search
// engines show, and the message a redirect left.
func (s *Site) page(w http.ResponseWriter, r *http.Request, v visitor, nav, title string) base {
	return base{Title: title, Nav: nav, Me: v.username, CSRF: v.formToken, Here: r.URL.RequestURI(),
		Flash: s.jar(w, r).takeFlash(), Description: defaultDescription, FormKey: rand.Text()}
}

// defaultDescription is a page's meta description unless it has its own.
const defaultDescription = "Conduit: a place to share your knowledge. Read articles, follow their authors, write your own."

// form parses a POST and checks its CSRF field against the cookie. A
// mismatch answers 403 and returns false.
func (s *Site) form(w http.ResponseWriter, r *http.Request) (visitor, bool) {
	v := s.visitorOf(w, r)
	if err := r.ParseForm(); err != nil {
		s.errorPage(w, r, http.StatusBadRequest, "Bad request", "The form could not be read.")
		return v, false
	}
	sent := unmaskToken(r.PostForm.Get("csrf"))
	if sent == "" || subtle.ConstantTimeCompare([]byte(sent), []byte(v.csrf)) != 1 {
		s.errorPage(w, r, http.StatusForbidden, "Form expired", "This form is out of date or did not come from this site. Reload the page and try again.")
		return v, false
	}
	return v, true
}

// mustSignIn sends a visitor who is not signed in to the sign-in page,
// which sends them back here (a page) or to the page the form was on.
func mustSignIn(w http.ResponseWriter, r *http.Request, v visitor) bool {
	if v.signedIn() {
		return true
	}
	back := r.URL.RequestURI()
	if r.Method != http.MethodGet {
		back = safeNext(r.PostForm.Get("next"))
	}
	http.Redirect(w, r, loginURL(back), http.StatusSeeOther)
	return false
}

// loginURL is the sign-in page that returns to back (a same-site path).
func loginURL(back string) string {
	if back = safeNext(back); back == "" || back == "/" {
		return "/login"
	}
	return "/login?next=" + url.QueryEscape(back)
}

// next is where to go after a form: its same-site "next" path, or def.
func next(r *http.Request, def string) string {
	if n := safeNext(r.PostForm.Get("next")); n != "" {
		return n
	}
	return def
}

// safeNext returns n if it is a path on this site, else "". Browsers read
// "//host", "/\host" and "/\t/host" (they drop tabs and newlines, and
// treat "\" as "/", per the WHATWG URL standard) as another site's
// address, so a path must start with one "/" and hold no backslash and
// no control or space character at all.
func safeNext(n string) string {
	if len(n) == 0 || len(n) > 512 || n[0] != '/' || strings.HasPrefix(n, "//") {
		return ""
	}
	for _, c := range n {
		if c <= ' ' || c == '\\' || c == 0x7f {
			return ""
		}
	}
	u, err := url.Parse(n)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil {
		return ""
	}
	return n
}

// Flash messages: what the page after a redirect tells the visitor
// happened. The cookie holds a key, never text, so nothing another site
// sets can put words on the page.
const flashCookie = "conduit_flash"

var flashes = map[string]string{
	"article-deleted": "The article was deleted.",
	"comment-deleted": "The comment was deleted.",
	"comment-posted":  "Your comment was posted.",
	"settings-saved":  "Your settings were saved.",
	"signed-out":      "You are signed out.",
	"signed-out-here": "You are signed out on this device. The server could not be told just now: the session ends by itself after 30 minutes unused.",
	"published":       "The article was published.",
	"updated":         "The article was updated.",
}

// flash sets the message the next page shows.
func (j jar) flash(key string) { j.set(flashCookie, key, time.Minute, http.SameSiteLaxMode) }

// takeFlash returns the message for this request, and clears it.
func (j jar) takeFlash() string {
	key := j.get(flashCookie)
	if key == "" {
		return ""
	}
	j.del(flashCookie, http.SameSiteLaxMode)
	return flashes[key]
}

func requestID(r *http.Request) string { return observe.RequestID(r.Context()) }

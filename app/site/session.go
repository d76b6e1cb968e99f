package site

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"regexp"
	"time"

	"webstack/app/observe"
)

// Cookies. The session cookie holds the api's token (HttpOnly: no script
// can read it; SameSite=Lax: other sites' forms do not carry it; Secure on
// HTTPS). The user cookie holds the username the navigation shows; it
// grants nothing (every action is the api's, with the token). The CSRF
// cookie pairs with a hidden field in every form.
const (
	sessionCookie = "conduit_session"
	userCookie    = "conduit_user"
	csrfCookie    = "conduit_csrf"
	sessionTTL    = 72 * time.Hour // the api's token lifetime
)

var (
	usernameRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)
	csrfRE     = regexp.MustCompile(`^[A-Za-z0-9_-]{43}$`)
)

// visitor is who is looking: their token and username when signed in, and
// their CSRF token.
type visitor struct {
	token, username, csrf string
}

func (v visitor) signedIn() bool { return v.token != "" }

// base is what every page's view carries.
type base struct {
	Title string
	Nav   string // which navigation link is active
	Me    string // the signed-in username, or ""
	CSRF  string
}

func cookie(name, value string, secure bool, maxAge time.Duration, sameSite http.SameSite) *http.Cookie {
	return &http.Cookie{Name: name, Value: value, Path: "/", HttpOnly: true, Secure: secure, SameSite: sameSite, MaxAge: int(maxAge.Seconds())}
}

// visitorOf reads the visitor's cookies and gives them a CSRF token if they
// have none yet.
func (s *Site) visitorOf(w http.ResponseWriter, r *http.Request) visitor {
	var v visitor
	if c, err := r.Cookie(sessionCookie); err == nil && c.Value != "" {
		v.token = c.Value
		if u, err := r.Cookie(userCookie); err == nil && usernameRE.MatchString(u.Value) {
			v.username = u.Value
		}
	}
	if c, err := r.Cookie(csrfCookie); err == nil && csrfRE.MatchString(c.Value) {
		v.csrf = c.Value
	} else {
		b := make([]byte, 32)
		_, _ = rand.Read(b)
		v.csrf = base64.RawURLEncoding.EncodeToString(b)
		http.SetCookie(w, cookie(csrfCookie, v.csrf, s.opts.HTTPS(r), 0, http.SameSiteStrictMode))
	}
	return v
}

func (s *Site) base(w http.ResponseWriter, r *http.Request, nav string) base {
	v := s.visitorOf(w, r)
	return base{Nav: nav, Me: v.username, CSRF: v.csrf}
}

// signIn keeps the api's token and the username.
func signIn(w http.ResponseWriter, secure bool, token, username string) {
	http.SetCookie(w, cookie(sessionCookie, token, secure, sessionTTL, http.SameSiteLaxMode))
	http.SetCookie(w, cookie(userCookie, username, secure, sessionTTL, http.SameSiteLaxMode))
}

func clearSession(w http.ResponseWriter, secure bool) {
	http.SetCookie(w, cookie(sessionCookie, "", secure, -time.Second, http.SameSiteLaxMode))
	http.SetCookie(w, cookie(userCookie, "", secure, -time.Second, http.SameSiteLaxMode))
}

// form parses a POST and checks its CSRF field against the cookie. A
// mismatch answers 403 and returns false.
func (s *Site) form(w http.ResponseWriter, r *http.Request) (visitor, bool) {
	v := s.visitorOf(w, r)
	if err := r.ParseForm(); err != nil {
		s.errorPage(w, r, http.StatusBadRequest, "Bad request", "The form could not be read.")
		return v, false
	}
	sent := r.PostForm.Get("csrf")
	if sent == "" || subtle.ConstantTimeCompare([]byte(sent), []byte(v.csrf)) != 1 {
		s.errorPage(w, r, http.StatusForbidden, "Form expired", "This form is out of date or did not come from this site. Reload the page and try again.")
		return v, false
	}
	return v, true
}

// mustSignIn sends a visitor who is not signed in to the sign-in page.
func mustSignIn(w http.ResponseWriter, r *http.Request, v visitor) bool {
	if v.signedIn() {
		return true
	}
	http.Redirect(w, r, "/login", http.StatusSeeOther)
	return false
}

// next is where to go after a form: a local path from the form, or def.
func next(r *http.Request, def string) string {
	n := r.PostForm.Get("next")
	if len(n) > 1 && n[0] == '/' && n[1] != '/' && n[1] != '\\' && len(n) < 512 {
		return n
	}
	if n == "/" {
		return n
	}
	return def
}

func requestID(r *http.Request) string { return observe.RequestID(r.Context()) }

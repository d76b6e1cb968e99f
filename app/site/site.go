// Package site is the Conduit web application the web tier serves: every
// RealWorld screen rendered on the server from the api's answers, with
// plain forms that work without JavaScript (POST, then redirect), a session
// cookie holding the api's token, CSRF protection on every form, sanitised
// markdown and a strict Content-Security-Policy. It talks to the api tier
// over HTTP, never to the database.
package site

import (
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"webstack/app/observe"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed assets
var assetFS embed.FS

// Options configures the site.
type Options struct {
	// Upstream is the api tier's base URL. Required.
	Upstream *url.URL
	// Transport carries the api calls. Defaults to http.DefaultTransport.
	Transport http.RoundTripper
	// APITimeout bounds each api call; past it the page says the service is
	// unavailable. Defaults to 2s.
	APITimeout time.Duration
	// PageSize is how many articles a list page shows. Defaults to 20.
	PageSize int
	// HTTPS reports whether the visitor reached the site over HTTPS (then
	// cookies are Secure and HSTS is sent). Defaults to r.TLS != nil.
	HTTPS func(r *http.Request) bool
	// Log receives the failures that are the server's. Defaults to discard.
	Log *slog.Logger
}

// Site serves the pages and their assets.
type Site struct {
	opts   Options
	api    *client
	pages  map[string]*template.Template
	assets map[string]asset // by hashed path, /assets/site.<hash>.css
	names  map[string]string
	mux    *http.ServeMux
	cop    *http.CrossOriginProtection

	// previews are rendered article previews as anonymous visitors see
	// them, keyed by everything they show: html/template's escaping is
	// most of a list page's CPU, and most visitors see the same previews.
	previewsMu sync.Mutex
	previews   map[string]template.HTML
}

// maxPreviews bounds the preview cache (about 1 KiB each).
const maxPreviews = 10_000

// anonymousPreview returns p rendered, from the cache when the same
// article was shown the same way before. p must be for an anonymous
// visitor: nothing in it is specific to anyone.
func (s *Site) anonymousPreview(p previewView) (template.HTML, error) {
	key := strings.Join(append([]string{p.Slug, p.Title, p.Description, p.Author, p.Avatar, p.CreatedISO, strconv.Itoa(p.FavoritesCount), p.Next}, p.TagList...), "\x00")
	s.previewsMu.Lock()
	h, ok := s.previews[key]
	s.previewsMu.Unlock()
	if ok {
		return h, nil
	}
	var b strings.Builder
	if err := s.pages["home"].ExecuteTemplate(&b, "preview", p); err != nil {
		return "", err
	}
	h = template.HTML(b.String()) // html/template's own output, escaped for where it is inserted (between elements)
	s.previewsMu.Lock()
	if len(s.previews) >= maxPreviews {
		clear(s.previews)
	}
	s.previews[key] = h
	s.previewsMu.Unlock()
	return h, nil
}

type asset struct {
	body, gzipped []byte // gzipped is nil when it would not be smaller
	contentType   string
}

// New builds the site.
func New(opts Options) (*Site, error) {
	if opts.Upstream == nil {
		return nil, errors.New("site: upstream URL is required")
	}
	if opts.Transport == nil {
		opts.Transport = http.DefaultTransport
	}
	if opts.APITimeout == 0 {
		opts.APITimeout = 2 * time.Second
	}
	if opts.PageSize == 0 {
		opts.PageSize = 20
	}
	if opts.HTTPS == nil {
		opts.HTTPS = func(r *http.Request) bool { return r.TLS != nil }
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	s := &Site{opts: opts, previews: map[string]template.HTML{}, api: newClient(opts.Upstream, opts.Transport, opts.APITimeout),
		assets: map[string]asset{}, names: map[string]string{}, mux: http.NewServeMux(), cop: http.NewCrossOriginProtection()}
	if err := s.loadAssets(); err != nil {
		return nil, err
	}
	if err := s.loadTemplates(); err != nil {
		return nil, err
	}
	s.routes()
	return s, nil
}

// loadAssets names every asset by its content: a changed file is a new URL,
// so assets can be cached for a year.
func (s *Site) loadAssets() error {
	return fs.WalkDir(assetFS, "assets", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := assetFS.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(body)
		name := path.Base(p)
		ext := path.Ext(name)
		hashed := "/assets/" + strings.TrimSuffix(name, ext) + "." + hex.EncodeToString(sum[:])[:12] + ext
		ct := map[string]string{".css": "text/css; charset=utf-8", ".svg": "image/svg+xml", ".js": "text/javascript; charset=utf-8"}[ext]
		a := asset{body: body, contentType: ct}
		if z := gzipped(body); len(body) >= minCompress && len(z) < len(body) {
			a.gzipped = z
		}
		s.assets[hashed] = a
		s.names[name] = hashed
		return nil
	})
}

// displayDate is how pages show a date.
func displayDate(t time.Time) string { return t.Format("January 2, 2006") }

// avatar is the picture to show for a profile image URL (ours when none).
func (s *Site) avatar(image *string) string {
	if image != nil && *image != "" {
		return *image
	}
	return s.names["avatar.svg"]
}

func (s *Site) loadTemplates() error {
	funcs := template.FuncMap{
		"asset": func(name string) (string, error) {
			if p, ok := s.names[name]; ok {
				return p, nil
			}
			return "", fmt.Errorf("no asset %s", name)
		},
		"date": displayDate,
	}
	base, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html")
	if err != nil {
		return fmt.Errorf("site: templates: %w", err)
	}
	s.pages = map[string]*template.Template{}
	for _, name := range []string{"home", "form", "settings", "article", "profile", "error", "confirm"} {
		t, err := template.Must(base.Clone()).ParseFS(templateFS, "templates/"+name+".html")
		if err != nil {
			return fmt.Errorf("site: template %s: %w", name, err)
		}
		s.pages[name] = t
	}
	return nil
}

func (s *Site) routes() {
	m := s.mux
	m.HandleFunc("GET /assets/{name}", s.serveAsset)
	m.HandleFunc("GET /{$}", s.home)
	m.HandleFunc("GET /robots.txt", s.robots)
	m.HandleFunc("GET /login", s.loginPage)
	m.HandleFunc("POST /login", s.login)
	m.HandleFunc("GET /register", s.registerPage)
	m.HandleFunc("POST /register", s.register)
	m.HandleFunc("POST /logout", s.logout)
	m.HandleFunc("GET /settings", s.settingsPage)
	m.HandleFunc("POST /settings", s.settings)
	m.HandleFunc("GET /editor", s.editorPage)
	m.HandleFunc("POST /editor", s.publish)
	m.HandleFunc("GET /editor/{slug}", s.editorPage)
	m.HandleFunc("POST /editor/{slug}", s.publish)
	m.HandleFunc("GET /article/{slug}", s.articlePage)
	m.HandleFunc("POST /article/{slug}", s.addComment)
	m.HandleFunc("GET /article/{slug}/delete", s.confirmDeleteArticle)
	m.HandleFunc("POST /article/{slug}/delete", s.deleteArticle)
	m.HandleFunc("POST /article/{slug}/favorite", s.favorite)
	m.HandleFunc("POST /article/{slug}/unfavorite", s.favorite)
	m.HandleFunc("POST /article/{slug}/comments", s.addComment)
	m.HandleFunc("GET /article/{slug}/comments/{id}/delete", s.confirmDeleteComment)
	m.HandleFunc("POST /article/{slug}/comments/{id}/delete", s.deleteComment)
	m.HandleFunc("GET /profile/{username}", s.profilePage)
	m.HandleFunc("GET /profile/{username}/favorites", s.profilePage)
	m.HandleFunc("POST /profile/{username}/follow", s.follow)
	m.HandleFunc("POST /profile/{username}/unfollow", s.follow)
	m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.errorPage(w, r, http.StatusNotFound, "Page not found", "There is nothing at this address.")
	})
}

// Route names a request's route for metrics: the pattern it matched.
func (s *Site) Route(r *http.Request) string {
	_, pattern := s.mux.Handler(r)
	if pattern == "" || pattern == "/" {
		return "page: unmatched"
	}
	return "page: " + pattern
}

// ServeHTTP implements http.Handler: security headers, cross-origin
// protection for every form post, then the routes.
func (s *Site) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.secureHeaders(w, r)
	if err := s.cop.Check(r); err != nil || !s.sameOrigin(r) {
		s.errorPage(w, r, http.StatusForbidden, "Request refused", "A form on another site tried to send this request. If it was you, reload the page and try again.")
		return
	}
	s.mux.ServeHTTP(w, r)
}

// sameOrigin reports whether a form post's Origin, when the browser sends
// one, is this site's exactly: scheme and host. (http.CrossOriginProtection
// trusts Sec-Fetch-Site, and without it compares the Origin's host only: a
// page on http://<this host> could post to https://<this host>.)
func (s *Site) sameOrigin(r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return true
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true // not a browser's cross-origin post: the CSRF token decides
	}
	scheme := "http"
	if s.opts.HTTPS(r) {
		scheme = "https"
	}
	return origin == scheme+"://"+r.Host
}

// ContentSecurityPolicy of every page: nothing but the site's own
// stylesheet and images (avatars are https URLs), no script at all, no
// framing, forms only to the site. connect-src 'self' lets tools that read
// the site from inside a page (Lighthouse fetches /robots.txt that way)
// reach it; with no script allowed, nothing of the site's can use it.
const ContentSecurityPolicy = "default-src 'none'; style-src 'self'; img-src 'self' https: http:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

func (s *Site) serveAsset(w http.ResponseWriter, r *http.Request) {
	a, ok := s.assets[r.URL.Path]
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", a.contentType)
	w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	if a.gzipped == nil {
		w.Header().Set("Content-Length", strconv.Itoa(len(a.body)))
		_, _ = w.Write(a.body)
		return
	}
	writeBody(w, r, http.StatusOK, a.body, a.gzipped)
}

// render writes a page with its view.
func (s *Site) render(w http.ResponseWriter, r *http.Request, status int, name string, v any) {
	// The page is rendered whole before anything is sent: one write with
	// its length, and a failure shows a plain error instead of half a page.
	buf := pagePool.Get().(*bytes.Buffer)
	defer func() {
		if buf.Cap() <= 1<<20 {
			buf.Reset()
			pagePool.Put(buf)
		}
	}()
	if err := s.pages[name].ExecuteTemplate(buf, "layout", v); err != nil {
		s.opts.Log.LogAttrs(r.Context(), slog.LevelError, "render page", slog.String("page", name), slog.Any("error", err))
		http.Error(w, "This page could not be shown. Please try again.", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	writeBody(w, r, status, buf.Bytes(), nil)
}

// pagePool recycles the buffers pages are rendered into.
var pagePool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// errorView is the error page.
type errorView struct {
	base
	Heading, Message, RequestID string
}

func (s *Site) errorPage(w http.ResponseWriter, r *http.Request, status int, heading, message string) {
	v := errorView{base: s.page(w, r, s.visitorOf(w, r), "", heading), Heading: heading, Message: message}
	if status >= 500 || status == http.StatusForbidden {
		v.RequestID = requestID(r)
	}
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "2")
	}
	s.render(w, r, status, "error", v)
}

// secureHeaders are every page's: no script, no framing, no sniffing, no
// referrer beyond the site, HTTPS only once seen over HTTPS.
func (s *Site) secureHeaders(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", ContentSecurityPolicy)
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	if s.opts.HTTPS(r) {
		h.Set("Strict-Transport-Security", observe.HSTS)
	}
}

// Refused answers a request the web tier refused before inspecting it (too
// long, a body where none belongs, too deep): a page saying why.
func (s *Site) Refused(w http.ResponseWriter, r *http.Request, status int, why string) {
	s.secureHeaders(w, r)
	s.errorPage(w, r, status, "Request refused", sentence(why)+".")
}

// Blocked answers a request the web application firewall refused: a
// readable page with the request id to quote, with every page's headers.
func (s *Site) Blocked(w http.ResponseWriter, r *http.Request, status int) {
	s.secureHeaders(w, r)
	s.errorPage(w, r, status, "Request blocked", "The web application firewall refused this request because it looks like an attack. If you think it should have gone through, tell us the request id below.")
}

// fail turns an api failure into what the visitor sees: an expired or
// forged session goes to the sign-in page; a missing article or profile is
// a 404; an api that does not answer is a 503 (the site recovers by itself
// when it does again); the visitor's own cancellation is nothing.
func (s *Site) fail(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, context.Canceled) && r.Context().Err() != nil:
		return
	case hasStatus(err, http.StatusUnauthorized):
		s.jar(w, r).clearSession()
		back := ""
		if r.Method == http.MethodGet {
			back = r.URL.RequestURI()
		}
		http.Redirect(w, r, loginURL(back), http.StatusSeeOther)
	case hasStatus(err, http.StatusNotFound):
		s.errorPage(w, r, http.StatusNotFound, "Not found", "There is no such article or profile.")
	case hasStatus(err, http.StatusForbidden):
		s.errorPage(w, r, http.StatusForbidden, "Not allowed", "Only its author may change this.")
	case hasStatus(err, http.StatusTooManyRequests):
		s.errorPage(w, r, http.StatusTooManyRequests, "Too many attempts", "Wait a little and try again.")
	case errors.Is(err, errUnavailable):
		s.opts.Log.LogAttrs(r.Context(), slog.LevelWarn, "api unavailable", slog.String("request_id", requestID(r)), slog.Any("error", err))
		s.errorPage(w, r, http.StatusServiceUnavailable, "Service unavailable", "Conduit cannot reach its service just now. Try again in a moment.")
	default:
		s.opts.Log.LogAttrs(r.Context(), slog.LevelError, "page failed", slog.String("request_id", requestID(r)), slog.Any("error", err))
		s.errorPage(w, r, http.StatusInternalServerError, "Something went wrong", "The page could not be shown.")
	}
}

// hasStatus reports whether any api answer in err (several, when a page
// made calls at once) had status.
func hasStatus(err error, status int) bool {
	if ae, ok := err.(*apiError); ok {
		return ae.Status == status
	}
	switch e := err.(type) {
	case interface{ Unwrap() []error }:
		for _, c := range e.Unwrap() {
			if hasStatus(c, status) {
				return true
			}
		}
	case interface{ Unwrap() error }:
		return hasStatus(e.Unwrap(), status)
	}
	return false
}

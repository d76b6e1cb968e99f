// Package httpapi serves the RealWorld Conduit API over HTTP: routing,
// authentication, request decoding, and the one place where domain errors
// become HTTP statuses.
package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"net/netip"
	"sync/atomic"
	"time"

	"webstack/app/conduit"
	"webstack/app/observe"
)

// Store is the persistence the API needs. A viewer is the signed-in user
// (nil when nobody is): stores flag articles and profiles as the viewer
// sees them, and show a viewer their own writes.
type Store interface {
	Ping(ctx context.Context) error
	CreateUser(ctx context.Context, u *conduit.User) error
	UserByEmail(ctx context.Context, email string) (*conduit.User, error)
	UserByUsername(ctx context.Context, viewer *conduit.User, username string) (*conduit.User, error)
	// User reads the signed-in user as they are now, on any instance:
	// their credential version, their last write.
	User(ctx context.Context, id string) (*conduit.User, error)
	// Wrote records, before a viewer's write, that they are writing: their
	// next reads must show it, whichever instance serves them.
	Wrote(ctx context.Context, viewer *conduit.User) error
	UpdateUser(ctx context.Context, old, u *conduit.User) error
	Follow(ctx context.Context, follower, followee string) error
	Unfollow(ctx context.Context, follower, followee string) error
	Profile(ctx context.Context, viewer, u *conduit.User) (conduit.Profile, error)
	CreateArticle(ctx context.Context, a *conduit.Article) error
	ArticleBySlug(ctx context.Context, viewer *conduit.User, slug string) (*conduit.Article, error)
	ArticleByID(ctx context.Context, viewer *conduit.User, id string) (*conduit.Article, error)
	ArticleOwner(ctx context.Context, viewer *conduit.User, slug string) (id, authorID string, err error)
	UpdateArticle(ctx context.Context, a *conduit.Article) error
	DeleteArticle(ctx context.Context, a *conduit.Article) error
	Favorite(ctx context.Context, user string, a *conduit.Article) error
	Unfavorite(ctx context.Context, user string, a *conduit.Article) error
	ListArticles(ctx context.Context, viewer *conduit.User, f conduit.ArticleFilter) ([]conduit.Article, int, error)
	Feed(ctx context.Context, viewer *conduit.User, limit, offset int) ([]conduit.Article, int, error)
	AddComment(ctx context.Context, articleID string, c *conduit.Comment) error
	Comments(ctx context.Context, viewer *conduit.User, slug string, p conduit.CommentPage) ([]conduit.Comment, *conduit.CommentCursor, error)
	Comment(ctx context.Context, slug string, id int64) (*conduit.Comment, error)
	DeleteComment(ctx context.Context, slug string, id int64) error
	Tags(ctx context.Context, viewer *conduit.User) ([]string, error)
	// WithRequest marks ctx as one request's (the store may share reads
	// between its calls).
	WithRequest(ctx context.Context) context.Context
	// Sessions (sign-in to sign-out) and quotas (uses per window).
	StartSession(ctx context.Context, s *conduit.Session) error
	Session(ctx context.Context, id string) (*conduit.Session, error)
	TouchSession(ctx context.Context, id string, now time.Time) error
	EndSession(ctx context.Context, id string) error
	Take(ctx context.Context, key string, limit int, window time.Duration, now time.Time) (bool, time.Duration, error)
}

// Options configures the API.
type Options struct {
	// AllowedOrigins for CORS; "*" allows any. Defaults to ["*"].
	AllowedOrigins []string
	// MaxBodyBytes bounds request bodies. Defaults to 1 MiB.
	MaxBodyBytes int64
	// DBTimeout bounds each request's database work, so that a database
	// outage answers 503 quickly instead of hanging. Defaults to 1.5s.
	DBTimeout time.Duration
	// IdempotencyLease is how long the first request with an idempotency
	// key holds it: its copies meanwhile are 409; after it, with no answer
	// kept, the next copy runs. Default 10 s (the web tier's deadline).
	IdempotencyLease time.Duration
	// BcryptCost for password hashes. Defaults to bcrypt.DefaultCost.
	BcryptCost int
	// Password throttling (see throttle.go): failed password checks
	// allowed per account from one client address, per client address,
	// and per account from anywhere, in each window. Defaults: 5, 50, 500,
	// 15 minutes.
	LoginFailuresPerAccount, LoginFailuresPerClient, LoginFailuresPerAccountAnywhere int
	LoginWindow                                                                      time.Duration
	// PasswordChecksPerAccount and PasswordChecksPerClient are the budgets
	// of password checks, successes included, per account and per client
	// address in each window (see throttle.go). Defaults: 30, 300.
	PasswordChecksPerAccount, PasswordChecksPerClient int
	// Quotas bound what one account may write (see quotas.go).
	Quotas Quotas
	// SessionIdle is how long a session may go unused before it ends
	// (ASVS 3.3.2). Defaults to 30 minutes. The absolute lifetime is the
	// tokens' TTL.
	SessionIdle time.Duration
	// TrustedProxies are the peers whose X-Forwarded-Proto is believed
	// (the web tier, the internal load balancer): HSTS goes on answers to
	// requests that arrived over HTTPS.
	TrustedProxies []netip.Prefix
}

// API is the Conduit HTTP handler.
type API struct {
	store    Store
	tokens   *Tokens
	opts     Options
	log      *slog.Logger
	draining atomic.Bool
	mux      *http.ServeMux
	throttle *throttle
	now      func() time.Time
}

// New builds the API.
func New(store Store, tokens *Tokens, log *slog.Logger, opts Options) *API {
	if len(opts.AllowedOrigins) == 0 {
		opts.AllowedOrigins = []string{"*"}
	}
	if opts.MaxBodyBytes == 0 {
		opts.MaxBodyBytes = 1 << 20
	}
	if opts.DBTimeout == 0 {
		opts.DBTimeout = 1500 * time.Millisecond
	}
	if opts.IdempotencyLease == 0 {
		opts.IdempotencyLease = 10 * time.Second
	}
	if opts.LoginFailuresPerAccount == 0 {
		opts.LoginFailuresPerAccount = 5
	}
	if opts.LoginFailuresPerClient == 0 {
		opts.LoginFailuresPerClient = 50
	}
	if opts.LoginFailuresPerAccountAnywhere == 0 {
		opts.LoginFailuresPerAccountAnywhere = 500
	}
	opts.Quotas = Quotas{
		Registrations:      opts.Quotas.Registrations.or(defaultQuotas.Registrations),
		Articles:           opts.Quotas.Articles.or(defaultQuotas.Articles),
		Comments:           opts.Quotas.Comments.or(defaultQuotas.Comments),
		CommentsPerArticle: opts.Quotas.CommentsPerArticle.or(defaultQuotas.CommentsPerArticle),
	}
	if opts.SessionIdle == 0 {
		opts.SessionIdle = 30 * time.Minute
	}
	if opts.PasswordChecksPerAccount == 0 {
		opts.PasswordChecksPerAccount = 30
	}
	if opts.PasswordChecksPerClient == 0 {
		opts.PasswordChecksPerClient = 300
	}
	if opts.LoginWindow == 0 {
		opts.LoginWindow = 15 * time.Minute
	}
	a := &API{store: store, tokens: tokens, opts: opts, log: log, mux: http.NewServeMux(), now: time.Now,
		throttle: newThrottle(opts.LoginFailuresPerAccount, opts.LoginFailuresPerClient, opts.LoginFailuresPerAccountAnywhere,
			opts.PasswordChecksPerAccount, opts.PasswordChecksPerClient, opts.LoginWindow)}
	a.routes()
	return a
}

// Drain makes /readyz fail, so load balancers stop sending new requests
// while in-flight ones finish.
func (a *API) Drain() { a.draining.Store(true) }

func (a *API) routes() {
	m := a.mux
	m.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	m.HandleFunc("GET /readyz", a.ready)

	m.Handle("POST /api/users", a.handle(a.register, public))
	m.Handle("POST /api/users/login", a.handle(a.login, public))
	m.Handle("POST /api/users/logout", a.handle(a.signOut, required))
	m.Handle("GET /api/user", a.handle(a.currentUser, required))
	m.Handle("PUT /api/user", a.handle(a.updateUser, required))

	m.Handle("GET /api/profiles/{username}", a.handle(a.profile, optional))
	m.Handle("POST /api/profiles/{username}/follow", a.handle(a.follow, required))
	m.Handle("DELETE /api/profiles/{username}/follow", a.handle(a.unfollow, required))

	m.Handle("GET /api/articles", a.handle(a.listArticles, optional))
	m.Handle("GET /api/articles/feed", a.handle(a.feed, required))
	m.Handle("POST /api/articles", a.handle(a.createArticle, required))
	m.Handle("GET /api/articles/{slug}", a.handle(a.getArticle, optional))
	m.Handle("PUT /api/articles/{slug}", a.handle(a.updateArticle, required))
	m.Handle("DELETE /api/articles/{slug}", a.handle(a.deleteArticle, required))
	m.Handle("POST /api/articles/{slug}/favorite", a.handle(a.favorite, required))
	m.Handle("DELETE /api/articles/{slug}/favorite", a.handle(a.unfavorite, required))
	m.Handle("GET /api/articles/{slug}/comments", a.handle(a.listComments, optional))
	m.Handle("POST /api/articles/{slug}/comments", a.handle(a.addComment, required))
	m.Handle("DELETE /api/articles/{slug}/comments/{id}", a.handle(a.deleteComment, required))

	m.Handle("GET /api/tags", a.handle(a.tags, optional))
	m.Handle("/api/", a.handle(func(w http.ResponseWriter, r *http.Request, _ *conduit.User) error {
		return conduit.Errorf(conduit.CodeNotFound, "no such endpoint")
	}, public))
}

// ServeHTTP implements http.Handler, with CORS around the routes.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// An API answer is data, never a document: nothing in it may load,
	// run or be framed, whatever a browser makes of it.
	h := w.Header()
	h.Set("Content-Security-Policy", ContentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	if observe.HTTPS(r, a.opts.TrustedProxies) {
		h.Set("Strict-Transport-Security", HSTS)
	}
	if origin := r.Header.Get("Origin"); origin != "" && a.originAllowed(origin) {
		h := w.Header()
		if a.opts.AllowedOrigins[0] == "*" {
			h.Set("Access-Control-Allow-Origin", "*")
		} else {
			h.Set("Access-Control-Allow-Origin", origin)
			h.Add("Vary", "Origin")
		}
		h.Set("Access-Control-Expose-Headers", "ETag, Idempotent-Replayed")
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			h.Set("Access-Control-Allow-Methods", "GET, POST, PUT, DELETE, OPTIONS")
			h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, X-Requested-With, If-Match, Idempotency-Key")
			h.Set("Access-Control-Max-Age", "600")
			w.WriteHeader(http.StatusNoContent)
			return
		}
	}
	a.mux.ServeHTTP(w, r)
}

// ContentSecurityPolicy is every API answer's: nothing allowed.
const ContentSecurityPolicy = "default-src 'none'; frame-ancestors 'none'"

// HSTS is the Strict-Transport-Security of answers over HTTPS (a year):
// observe.HSTS, every tier's.
const HSTS = observe.HSTS

func (a *API) originAllowed(origin string) bool {
	for _, o := range a.opts.AllowedOrigins {
		if o == "*" || o == origin {
			return true
		}
	}
	return false
}

// Route names the matched route of r (its pattern), for metrics and logs.
func Route(r *http.Request) string {
	if r.Pattern != "" {
		return r.Pattern
	}
	return "unmatched"
}

func (a *API) ready(w http.ResponseWriter, r *http.Request) {
	if a.draining.Load() {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "draining"})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), time.Second)
	defer cancel()
	if err := a.store.Ping(ctx); err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "database unavailable"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

type authMode int

const (
	public   authMode = iota
	optional          // a viewer if there is a token
	required          // a viewer
)

type handlerFunc func(w http.ResponseWriter, r *http.Request, me *conduit.User) error

// handle wraps a handler with authentication, the database deadline and
// error mapping.
func (a *API) handle(h handlerFunc, mode authMode) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		client := r.Context()
		ctx, cancel := context.WithTimeout(a.store.WithRequest(client), a.opts.DBTimeout)
		defer cancel()
		r = r.WithContext(ctx)
		var me *conduit.User
		var err error
		if mode != public {
			var token string
			me, token, err = a.authenticate(r, mode)
			if token != "" {
				r = r.WithContext(context.WithValue(r.Context(), tokenKey{}, token))
			}
			if err == nil && me != nil && r.Method != http.MethodGet && r.Method != http.MethodHead {
				err = a.store.Wrote(r.Context(), me) // before the write, and before the reads it makes
			}
		}
		serve := func(w http.ResponseWriter, r *http.Request) {
			err := h(w, r, me)
			switch {
			case err == nil:
			case client.Err() != nil:
				// The client went away: nobody to answer, and not a server
				// error (the middleware counts it as 499).
			default:
				a.writeError(w, r, err)
			}
		}
		var key string
		if err == nil {
			key, err = idempotencyKey(r)
		}
		switch {
		case err != nil && client.Err() == nil:
			a.writeError(w, r, err)
		case err != nil:
		case key != "":
			a.idempotent(w, r, me, key, serve)
		default:
			serve(w, r)
		}
	})
}

package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"webstack/app/httpapi"
	"webstack/app/waf"
	"webstack/internal/awsarn"
)

// Settings are everything one role of conduit is configured with. Each is a
// flag with a CONDUIT_* environment twin (the flag wins); every value is
// validated once, here, so the server starts only with settings it can use.
// Secrets are never values here except --jwt-secret for local use: on AWS
// the settings name Secrets Manager ARNs, resolved at start (resolve).
type Settings struct {
	Role     string
	LogLevel slog.Level
	// LogFile, when set, receives the logs too (they always go to stderr),
	// rotated past LogFileMaxBytes: what a log shipper follows.
	LogFile   string
	AdminAddr string
	// CheckOnly validates the settings and exits (--check-config).
	CheckOnly bool
	// MaxBodyBytes bounds request bodies.
	MaxBodyBytes int64

	// web and local
	WebAddr  string
	WAF      waf.Mode
	Upstream *url.URL // web only; local wires its own api
	// TrustedProxies are the peers (the load balancer) whose
	// X-Forwarded-Proto and X-Forwarded-For the web tier believes.
	TrustedProxies []netip.Prefix
	// TLSSecretARN (web) is a Secrets Manager secret holding the
	// certificate and key WebAddr serves HTTPS with; RedirectAddr then
	// answers plain HTTP with a redirect to HTTPS.
	TLSSecretARN string
	RedirectAddr string

	// api and local
	APIAddr     string
	CORSOrigins []string

	// api
	MongoURI     string
	MongoDB      string
	JWTSecret    string // prefer JWTSecretARN
	JWTSecretARN string
	DBHost       string // DocumentDB; replaces MongoURI when set
	DBPort       int
	DBCAFile     string
	DBMaxPool    int
	DBSecretARN  string

	// SessionIdle and SessionLifetime end sessions (api, local).
	SessionIdle, SessionLifetime time.Duration
	// Quotas bound what one account (address, for sign-ups) writes.
	Quotas httpapi.Quotas
	// AdminPublic lets --admin-addr listen beyond loopback (an explicit,
	// named opt-out: /metrics and pprof have no login).
	AdminPublic bool

	// local
	MongoAddr string
	DataDir   string
}

// roles that take a setting.
const (
	rAPI   = 1 << iota // conduit api
	rWeb               // conduit web
	rLocal             // conduit local
)

var roleBits = map[string]int{"api": rAPI, "web": rWeb, "local": rLocal}

// setting is one flag and its environment twin.
type setting struct {
	flag, env, def, help string
	roles                int
	set                  func(s *Settings, v string) error
}

var hostRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$`)

// settings is the table of every setting; defaults live here only.
func settings() []setting {
	addr := func(dst func(*Settings) *string) func(*Settings, string) error {
		return func(s *Settings, v string) error {
			host, port, err := net.SplitHostPort(v)
			if err != nil {
				return fmt.Errorf("%q is not host:port", v)
			}
			if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
				return fmt.Errorf("%q: port %q is not 0..65535", v, port)
			}
			if host != "" && net.ParseIP(host) == nil && !hostRE.MatchString(host) {
				return fmt.Errorf("%q: %q is not a host", v, host)
			}
			*dst(s) = v
			return nil
		}
	}
	arn := func(dst func(*Settings) *string) func(*Settings, string) error {
		return func(s *Settings, v string) error {
			if v != "" && !awsarn.IsSecret(v) {
				return fmt.Errorf("%q is not a Secrets Manager secret ARN", v)
			}
			*dst(s) = v
			return nil
		}
	}
	duration := func(dst func(*Settings) *time.Duration, lo, hi time.Duration) func(*Settings, string) error {
		return func(s *Settings, v string) error {
			d, err := time.ParseDuration(v)
			if err != nil || d < lo || d > hi {
				return fmt.Errorf("%q: use a duration from %s to %s", v, lo, hi)
			}
			*dst(s) = d
			return nil
		}
	}
	quota := func(dst func(*Settings) *httpapi.Quota) func(*Settings, string) error {
		return func(s *Settings, v string) error {
			if v == "off" {
				*dst(s) = httpapi.Quota{Limit: -1}
				return nil
			}
			n, w, ok := strings.Cut(v, "/")
			limit, err := strconv.Atoi(n)
			window, werr := time.ParseDuration(w)
			if !ok || err != nil || werr != nil || limit < 1 || window < time.Minute || window > 31*24*time.Hour {
				return fmt.Errorf("%q: use N/window, e.g. 30/1h (window 1m to 744h), or off", v)
			}
			*dst(s) = httpapi.Quota{Limit: limit, Window: window}
			return nil
		}
	}
	return []setting{
		{"log-level", "CONDUIT_LOG_LEVEL", "info", "log level: debug, info, warn, error", rAPI | rWeb | rLocal, func(s *Settings, v string) error {
			return s.LogLevel.UnmarshalText([]byte(v))
		}},
		{"log-file", "CONDUIT_LOG_FILE", "", "also write the logs to this file (absolute path), rotated at 32 MiB to <file>.1", rAPI | rWeb | rLocal, func(s *Settings, v string) error {
			if v != "" && !filepath.IsAbs(v) {
				return fmt.Errorf("%q is not an absolute path", v)
			}
			s.LogFile = v
			return nil
		}},
		{"admin-addr", "CONDUIT_ADMIN_ADDR", "127.0.0.1:9090", "admin listener serving /metrics and pprof, which have no login: loopback only unless --insecure-admin-public", rAPI | rWeb | rLocal, addr(func(s *Settings) *string { return &s.AdminAddr })},
		{"insecure-admin-public", "CONDUIT_INSECURE_ADMIN_PUBLIC", "false", "let --admin-addr listen on a non-loopback address (metrics and pprof readable by anyone who reaches it)", rAPI | rWeb | rLocal, func(s *Settings, v string) (err error) {
			s.AdminPublic, err = strconv.ParseBool(v)
			return err
		}},
		{"session-idle", "CONDUIT_SESSION_IDLE", "30m", "a session unused this long ends (sign in again)", rAPI | rLocal, duration(func(s *Settings) *time.Duration { return &s.SessionIdle }, time.Minute, 24*time.Hour)},
		{"session-lifetime", "CONDUIT_SESSION_LIFETIME", "12h", "a session ends this long after sign-in, used or not (the token's lifetime)", rAPI | rLocal, duration(func(s *Settings) *time.Duration { return &s.SessionLifetime }, 5*time.Minute, 30*24*time.Hour)},
		{"quota-registrations", "CONDUIT_QUOTA_REGISTRATIONS", "20/1h", "sign-ups per client address per window (N/window; off: none)", rAPI | rLocal, quota(func(s *Settings) *httpapi.Quota { return &s.Quotas.Registrations })},
		{"quota-articles", "CONDUIT_QUOTA_ARTICLES", "30/1h", "articles per account per window", rAPI | rLocal, quota(func(s *Settings) *httpapi.Quota { return &s.Quotas.Articles })},
		{"quota-comments", "CONDUIT_QUOTA_COMMENTS", "120/1h", "comments per account per window", rAPI | rLocal, quota(func(s *Settings) *httpapi.Quota { return &s.Quotas.Comments })},
		{"quota-comments-per-article", "CONDUIT_QUOTA_COMMENTS_PER_ARTICLE", "50/24h", "comments per account on one article per window (its author: unbounded)", rAPI | rLocal, quota(func(s *Settings) *httpapi.Quota { return &s.Quotas.CommentsPerArticle })},
		{"max-body-bytes", "CONDUIT_MAX_BODY_BYTES", "1048576", "largest request body accepted, bytes", rAPI | rWeb | rLocal, func(s *Settings, v string) error {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 1<<10 || n > 64<<20 {
				return fmt.Errorf("%q: use 1024..67108864 bytes", v)
			}
			s.MaxBodyBytes = n
			return nil
		}},
		{"web-addr", "CONDUIT_WEB_ADDR", "127.0.0.1:8080", "public listen address", rWeb | rLocal, addr(func(s *Settings) *string { return &s.WebAddr })},
		{"waf", "CONDUIT_WAF", "on", "WAF mode: on, detect or off", rWeb | rLocal, func(s *Settings, v string) (err error) {
			s.WAF, err = waf.ParseMode(v)
			return err
		}},
		{"upstream", "CONDUIT_UPSTREAM", "http://127.0.0.1:8081", "api tier base URL", rWeb, func(s *Settings, v string) error {
			u, err := url.Parse(v)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return fmt.Errorf("%q is not an absolute URL", v)
			}
			s.Upstream = u
			return nil
		}},
		{"trusted-proxies", "CONDUIT_TRUSTED_PROXIES", "", "comma-separated CIDRs of the proxies (load balancer, web tier) whose X-Forwarded-* headers are believed", rWeb | rAPI | rLocal, func(s *Settings, v string) error {
			s.TrustedProxies = nil
			for _, c := range strings.Split(v, ",") {
				if c = strings.TrimSpace(c); c == "" {
					continue
				}
				p, err := netip.ParsePrefix(c)
				if err != nil || p.Masked() != p {
					return fmt.Errorf("%q is not a CIDR", c)
				}
				s.TrustedProxies = append(s.TrustedProxies, p)
			}
			return nil
		}},
		{"api-addr", "CONDUIT_API_ADDR", "127.0.0.1:8081", "API listen address (local: any free loopback port)", rAPI | rLocal, addr(func(s *Settings) *string { return &s.APIAddr })},
		{"cors-origins", "CONDUIT_CORS_ORIGINS", "*", "comma-separated allowed CORS origins", rAPI | rLocal, func(s *Settings, v string) error {
			s.CORSOrigins = nil
			for _, o := range strings.Split(v, ",") {
				if o = strings.TrimSpace(o); o != "" {
					s.CORSOrigins = append(s.CORSOrigins, o)
				}
			}
			if len(s.CORSOrigins) == 0 {
				return errors.New("empty: use * or a list of origins")
			}
			return nil
		}},
		{"mongo-uri", "CONDUIT_MONGO_URI", "mongodb://127.0.0.1:27017/", "MongoDB URI (on AWS use --db-host)", rAPI, func(s *Settings, v string) error {
			if !strings.HasPrefix(v, "mongodb://") && !strings.HasPrefix(v, "mongodb+srv://") {
				return errors.New("not a mongodb:// URI")
			}
			s.MongoURI = v
			return nil
		}},
		{"mongo-db", "CONDUIT_MONGO_DB", "conduit", "database name", rAPI, func(s *Settings, v string) error {
			if v == "" || strings.ContainsAny(v, "/\\. \"$") {
				return fmt.Errorf("%q is not a database name", v)
			}
			s.MongoDB = v
			return nil
		}},
		{"jwt-secret", "CONDUIT_JWT_SECRET", "", "JWT signing secret, at least 32 bytes (on AWS use --jwt-secret-arn)", rAPI, func(s *Settings, v string) error {
			if v != "" && len(v) < 32 {
				return fmt.Errorf("%d bytes: use at least 32", len(v))
			}
			s.JWTSecret = v
			return nil
		}},
		{"jwt-secret-arn", "CONDUIT_JWT_SECRET_ARN", "", "Secrets Manager ARN of the JWT signing secret", rAPI, arn(func(s *Settings) *string { return &s.JWTSecretARN })},
		{"db-host", "CONDUIT_DB_HOST", "", "DocumentDB cluster endpoint; when set, replaces --mongo-uri", rAPI, func(s *Settings, v string) error {
			if v != "" && !hostRE.MatchString(v) {
				return fmt.Errorf("%q is not a host name", v)
			}
			s.DBHost = v
			return nil
		}},
		{"db-port", "CONDUIT_DB_PORT", "27017", "DocumentDB port", rAPI, func(s *Settings, v string) error {
			p, err := strconv.Atoi(v)
			if err != nil || p < 1 || p > 65535 {
				return fmt.Errorf("%q is not a TCP port", v)
			}
			s.DBPort = p
			return nil
		}},
		{"db-ca-file", "CONDUIT_DB_CA_FILE", "/etc/conduit/global-bundle.pem", "CA bundle DocumentDB's TLS certificate is checked against", rAPI, func(s *Settings, v string) error {
			if !filepath.IsAbs(v) {
				return fmt.Errorf("%q is not an absolute path", v)
			}
			s.DBCAFile = v
			return nil
		}},
		{"db-max-pool", "CONDUIT_DB_MAX_POOL", "100", "connections to each database server at most (on AWS: the stack's connection budget)", rAPI | rLocal, func(s *Settings, v string) error {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 1000 {
				return fmt.Errorf("%q: want an integer from 1 to 1000", v)
			}
			s.DBMaxPool = n
			return nil
		}},
		{"tls-secret-arn", "CONDUIT_TLS_SECRET_ARN", "", "Secrets Manager ARN of a JSON {certificate, privateKey} (PEM) the web listener serves HTTPS with", rWeb, arn(func(s *Settings) *string { return &s.TLSSecretARN })},
		{"redirect-addr", "CONDUIT_REDIRECT_ADDR", "", "with tls-secret-arn: a plain HTTP listener that redirects to HTTPS (e.g. 0.0.0.0:80)", rWeb, func(s *Settings, v string) error {
			if v == "" {
				s.RedirectAddr = ""
				return nil
			}
			if _, _, err := net.SplitHostPort(v); err != nil {
				return fmt.Errorf("want host:port: %w", err)
			}
			s.RedirectAddr = v
			return nil
		}},
		{"db-secret-arn", "CONDUIT_DB_SECRET_ARN", "", "Secrets Manager ARN of DocumentDB's managed master user secret", rAPI, arn(func(s *Settings) *string { return &s.DBSecretARN })},
		{"mongo-addr", "CONDUIT_MONGO_ADDR", "", "embedded database on TCP at this loopback address, open to every local process (default: a Unix socket in the 0700 data directory)", rLocal, func(s *Settings, v string) error {
			if v == "" {
				s.MongoAddr = ""
				return nil
			}
			host, _, err := net.SplitHostPort(v)
			if err != nil {
				return fmt.Errorf("want host:port: %w", err)
			}
			if ip, err := netip.ParseAddr(host); err != nil || !ip.IsLoopback() {
				return fmt.Errorf("%s: the embedded database has no login; listen on loopback only", v)
			}
			s.MongoAddr = v
			return nil
		}},
		{"data-dir", "CONDUIT_DATA_DIR", "./.data", "data directory (created if missing)", rLocal, func(s *Settings, v string) error {
			if v == "" {
				return errors.New("empty")
			}
			s.DataDir = v
			return nil
		}},
	}
}

const usage = `usage: conduit <api|web|local|version> [flags]   (conduit <role> -h lists the flags)`

// parseSettings reads the settings of role from args and env (KEY=value
// pairs, as os.Environ). Every problem is reported at once, each with its
// flag and environment variable; a CONDUIT_* variable that is not a
// setting of role is an error too (a typo would otherwise go unnoticed).
// loopbackAddr reports whether addr (host:port) listens on loopback only.
func loopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

func parseSettings(role string, args, env []string, stderr io.Writer) (*Settings, error) {
	bit, ok := roleBits[role]
	if !ok {
		return nil, fmt.Errorf("unknown role %q\n%s", role, usage)
	}
	envs := map[string]string{}
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, "CONDUIT_") {
			envs[k] = v
		}
	}
	s := &Settings{Role: role}
	fs := flag.NewFlagSet("conduit "+role, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.BoolVar(&s.CheckOnly, "check-config", false, "validate the settings and exit")
	values := map[string]string{}
	var known []string
	var table []setting
	for _, st := range settings() {
		if st.roles&bit == 0 {
			continue
		}
		table = append(table, st)
		known = append(known, st.env)
		v := st.def
		if role == "local" && st.flag == "api-addr" {
			v = "127.0.0.1:0" // only web talks to it
		}
		if e, ok := envs[st.env]; ok {
			v = e
		}
		values[st.flag] = v
		def := st.def
		if def == "" {
			def = `""`
		}
		fs.Func(st.flag, fmt.Sprintf("%s (default %s; env %s)", st.help, def, st.env), func(v string) error {
			values[st.flag] = v
			return nil
		})
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q\n%s", fs.Args(), usage)
	}
	var errs []error
	for k := range envs {
		if !slices.Contains(known, k) {
			errs = append(errs, fmt.Errorf("%s is not a setting of conduit %s (it takes %s)", k, role, strings.Join(known, ", ")))
		}
	}
	for _, st := range table {
		if err := st.set(s, values[st.flag]); err != nil {
			errs = append(errs, fmt.Errorf("--%s (%s): %w", st.flag, st.env, err))
		}
	}
	if !s.AdminPublic && !loopbackAddr(s.AdminAddr) {
		errs = append(errs, fmt.Errorf("--admin-addr (CONDUIT_ADMIN_ADDR) %q listens beyond loopback, and /metrics and pprof have no login: use 127.0.0.1:<port>, or say --insecure-admin-public", s.AdminAddr))
	}
	if role == "api" {
		if s.DBHost != "" && s.DBSecretARN == "" {
			errs = append(errs, errors.New("--db-host needs --db-secret-arn (CONDUIT_DB_SECRET_ARN)"))
		}
		if s.JWTSecret == "" && s.JWTSecretARN == "" {
			errs = append(errs, errors.New("the api needs --jwt-secret-arn (CONDUIT_JWT_SECRET_ARN) or --jwt-secret (CONDUIT_JWT_SECRET)"))
		}
	}
	slices.SortFunc(errs, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("conduit %s: invalid settings:\n%w", role, err)
	}
	return s, nil
}

// Command conduit is the webstack application server, in one of three roles:
//
//	conduit api    the RealWorld Conduit API on MongoDB/DocumentDB
//	conduit web    the public tier: OWASP CRS WAF in front of a reverse proxy to the api
//	conduit local  web → api → an embedded FerretDB, all on loopback
//
// Every flag has an environment twin (CONDUIT_*); `conduit <role> -h` lists them.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"webstack/app/httpapi"
	"webstack/app/localdb"
	"webstack/app/observe"
	"webstack/app/secrets"
	"webstack/app/store"
	"webstack/app/waf"
	"webstack/app/web"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "conduit:", err)
		}
		os.Exit(1)
	}
}

const usage = `usage: conduit <api|web|local|version> [flags]   (conduit <role> -h lists the flags)`

// version is set at build time: -ldflags "-X main.version=…" (make build).
var version = "dev"

// run starts the role named by args[0] and serves until ctx is cancelled.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New(usage)
	}
	role, args := args[0], args[1:]
	if role == "version" {
		fmt.Fprintln(stdout, version)
		return nil
	}
	fs := flag.NewFlagSet("conduit "+role, flag.ContinueOnError)
	fs.SetOutput(stderr)
	env := func(name, def string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return def
	}
	str := func(name, envName, def, help string) *string {
		return fs.String(name, env(envName, def), help+" (env "+envName+")")
	}
	c := &settings{}
	c.logLevel = str("log-level", "CONDUIT_LOG_LEVEL", "info", "log level: debug, info, warn, error")
	c.adminAddr = str("admin-addr", "CONDUIT_ADMIN_ADDR", "127.0.0.1:9090", "admin listener serving /metrics")
	hasAPI, hasWeb := role == "api" || role == "local", role == "web" || role == "local"
	if !hasAPI && !hasWeb {
		return fmt.Errorf("unknown role %q\n%s", role, usage)
	}
	if hasWeb {
		c.webAddr = str("web-addr", "CONDUIT_WEB_ADDR", "127.0.0.1:8080", "public listen address")
		c.wafMode = str("waf", "CONDUIT_WAF", "on", "WAF mode: on, detect or off")
	}
	if hasAPI {
		apiDefault := "127.0.0.1:8081"
		if role == "local" {
			apiDefault = "127.0.0.1:0" // any free loopback port: only web talks to it
		}
		c.apiAddr = str("api-addr", "CONDUIT_API_ADDR", apiDefault, "API listen address")
		c.origins = str("cors-origins", "CONDUIT_CORS_ORIGINS", "*", "comma-separated allowed CORS origins")
	}
	switch role {
	case "api":
		c.mongoURI = str("mongo-uri", "CONDUIT_MONGO_URI", "mongodb://127.0.0.1:27017/", "MongoDB/DocumentDB URI (DocumentDB: tls=true&tlsCAFile=…&replicaSet=rs0&retryWrites=false)")
		c.mongoDB = str("mongo-db", "CONDUIT_MONGO_DB", "conduit", "database name")
		c.jwtSecret = str("jwt-secret", "CONDUIT_JWT_SECRET", "", "JWT signing secret, at least 32 bytes (prefer --jwt-secret-arn)")
		c.jwtSecretArn = str("jwt-secret-arn", "CONDUIT_JWT_SECRET_ARN", "", "Secrets Manager ARN of the JWT signing secret")
		c.dbHost = str("db-host", "CONDUIT_DB_HOST", "", "DocumentDB cluster endpoint; when set, replaces --mongo-uri")
		c.dbPort = fs.Int("db-port", 27017, "DocumentDB port (env CONDUIT_DB_PORT)")
		c.dbCAFile = str("db-ca-file", "CONDUIT_DB_CA_FILE", "/etc/conduit/global-bundle.pem", "CA bundle DocumentDB's TLS certificate is checked against")
		c.dbSecretArn = str("db-secret-arn", "CONDUIT_DB_SECRET_ARN", "", "Secrets Manager ARN of DocumentDB's managed master user secret")
	case "web":
		c.upstream = str("upstream", "CONDUIT_UPSTREAM", "http://127.0.0.1:8081", "api tier base URL")
	case "local":
		c.mongoAddr = str("mongo-addr", "CONDUIT_MONGO_ADDR", "127.0.0.1:0", "embedded database listen address (loopback)")
		c.dataDir = str("data-dir", "CONDUIT_DATA_DIR", "./.data", "data directory (created if missing)")
	}
	c.maxBody = fs.Int64("max-body-bytes", 1<<20, "largest request body accepted (env CONDUIT_MAX_BODY_BYTES)")
	if v := getenv("CONDUIT_MAX_BODY_BYTES"); v != "" {
		if _, err := fmt.Sscan(v, c.maxBody); err != nil {
			return fmt.Errorf("CONDUIT_MAX_BODY_BYTES %q: %w", v, err)
		}
	}
	if v := getenv("CONDUIT_DB_PORT"); v != "" && c.dbPort != nil {
		if _, err := fmt.Sscan(v, c.dbPort); err != nil {
			return fmt.Errorf("CONDUIT_DB_PORT %q: %w", v, err)
		}
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*c.logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level})).With("role", role, "version", version)
	return (&server{settings: c, log: log, stdout: stdout}).run(ctx, role)
}

type settings struct {
	logLevel, adminAddr, apiAddr, webAddr, mongoAddr, mongoURI, mongoDB *string
	jwtSecret, origins, upstream, wafMode, dataDir                      *string
	jwtSecretArn, dbHost, dbCAFile, dbSecretArn                         *string
	dbPort                                                              *int
	maxBody                                                             *int64
}

type server struct {
	*settings
	log    *slog.Logger
	stdout io.Writer
}

// component is something started that must be stopped, in reverse order.
type component struct {
	name string
	stop func(context.Context) error
}

func (s *server) run(ctx context.Context, role string) (err error) {
	var stops []component
	errc := make(chan error, 4)
	defer func() {
		// Shut down in reverse order of start: the web tier stops taking
		// requests first, the database goes last.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
		defer cancel()
		for i := len(stops) - 1; i >= 0; i-- {
			if e := stops[i].stop(sctx); e != nil {
				err = errors.Join(err, fmt.Errorf("stop %s: %w", stops[i].name, e))
			}
		}
	}()
	gatherers := prometheus.Gatherers{observe.ProcessRegistry()}

	if role == "local" {
		if s.mongoURI, err = s.startLocalDB(ctx, &stops); err != nil {
			return err
		}
		mongoDB := "conduit"
		s.mongoDB = &mongoDB
	}
	if role == "api" || role == "local" {
		metrics, addr, err := s.startAPI(ctx, &stops, errc)
		if err != nil {
			return err
		}
		gatherers = append(gatherers, metrics.Registry)
		if role == "local" {
			upstream := "http://" + addr
			s.upstream = &upstream
		}
	}
	if role == "web" || role == "local" {
		metrics, addr, err := s.startWeb(&stops, errc)
		if err != nil {
			return err
		}
		gatherers = append(gatherers, metrics.Registry)
		if role == "local" {
			fmt.Fprintf(s.stdout, "conduit local: serving http://%s/api (WAF %s)\n", addr, *s.wafMode)
		}
	}
	if err := s.startAdmin(&stops, errc, gatherers); err != nil {
		return err
	}
	select {
	case <-ctx.Done():
		s.log.Info("shutting down")
		return nil
	case err := <-errc:
		return err
	}
}

func (s *server) startLocalDB(ctx context.Context, stops *[]component) (*string, error) {
	dir := filepath.Join(*s.dataDir, "ferretdb")
	db, err := localdb.Start(ctx, *s.mongoAddr, dir, s.log.With("component", "ferretdb"))
	if err != nil {
		return nil, err
	}
	*stops = append(*stops, component{"embedded database", db.Stop})
	uri := db.URI
	if !strings.Contains(uri, "?") {
		uri += "?retryWrites=false"
	}
	s.log.Info("embedded database started", "dir", dir)
	return &uri, nil
}

// fromSecretsManager resolves what the api reads from AWS Secrets Manager at
// start: DocumentDB's credentials (building the connection string) and the
// JWT key. Only ARNs are configured; values never touch disk or environment.
func (s *server) fromSecretsManager(ctx context.Context) error {
	if s.dbHost == nil || (*s.dbHost == "" && *s.jwtSecretArn == "") {
		return nil
	}
	if *s.dbHost != "" && *s.dbSecretArn == "" {
		return errors.New("--db-host needs --db-secret-arn (CONDUIT_DB_SECRET_ARN)")
	}
	client, err := secrets.New(ctx)
	if err != nil {
		return err
	}
	if *s.dbHost != "" {
		cred, err := client.DatabaseCredentials(ctx, *s.dbSecretArn)
		if err != nil {
			return err
		}
		uri := store.DocumentDBURI(*s.dbHost, *s.dbPort, cred.Username, string(cred.Password), *s.dbCAFile)
		s.mongoURI = &uri
	}
	if *s.jwtSecretArn != "" {
		v, err := client.Get(ctx, *s.jwtSecretArn)
		if err != nil {
			return err
		}
		jwt := string(v)
		s.jwtSecret = &jwt
	}
	return nil
}

// jwtSecretFor returns the configured secret or, in local mode, the one kept
// in the data directory (created on first start).
func (s *server) jwtSecretFor() (httpapi.Secret, error) {
	if s.jwtSecret != nil && *s.jwtSecret != "" {
		return httpapi.Secret(*s.jwtSecret), nil
	}
	if s.dataDir == nil {
		return nil, errors.New("--jwt-secret (CONDUIT_JWT_SECRET) is required")
	}
	path := filepath.Join(*s.dataDir, "jwt-secret")
	if b, err := os.ReadFile(path); err == nil && len(b) >= 32 {
		return httpapi.Secret(strings.TrimSpace(string(b))), nil
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return nil, fmt.Errorf("generate jwt secret: %w", err)
	}
	secret := hex.EncodeToString(raw)
	if err := os.MkdirAll(*s.dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	if err := os.WriteFile(path, []byte(secret), 0o600); err != nil {
		return nil, fmt.Errorf("keep jwt secret: %w", err)
	}
	return httpapi.Secret(secret), nil
}

func (s *server) startAPI(ctx context.Context, stops *[]component, errc chan<- error) (*observe.Metrics, string, error) {
	if err := s.fromSecretsManager(ctx); err != nil {
		return nil, "", err
	}
	secret, err := s.jwtSecretFor()
	if err != nil {
		return nil, "", err
	}
	tokens, err := httpapi.NewTokens(secret, 72*time.Hour)
	if err != nil {
		return nil, "", err
	}
	metrics := observe.NewMetrics("api")
	st, err := store.Connect(ctx, *s.mongoURI, *s.mongoDB)
	if err != nil {
		return nil, "", err
	}
	st.Observe = metrics.ObserveDB
	*stops = append(*stops, component{"database client", st.Close})
	mctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := st.Migrate(mctx); err != nil {
		return nil, "", fmt.Errorf("prepare database: %w", err)
	}
	api := httpapi.New(st, tokens, s.log, httpapi.Options{AllowedOrigins: strings.Split(*s.origins, ","), MaxBodyBytes: *s.maxBody})
	handler := metrics.Middleware(s.log, httpapi.Route, api)
	addr, err := s.serve("api", *s.apiAddr, handler, stops, errc, api.Drain)
	return metrics, addr, err
}

func (s *server) startWeb(stops *[]component, errc chan<- error) (*observe.Metrics, string, error) {
	mode, err := waf.ParseMode(*s.wafMode)
	if err != nil {
		return nil, "", err
	}
	up, err := url.Parse(*s.upstream)
	if err != nil || up.Scheme == "" || up.Host == "" {
		return nil, "", fmt.Errorf("--upstream %q is not an absolute URL", *s.upstream)
	}
	metrics := observe.NewMetrics("web")
	w, err := waf.New(mode, *s.maxBody)
	if err != nil {
		return nil, "", err
	}
	w.OnBlock = metrics.WAFBlocked
	h, err := web.New(w, s.log, web.Options{Upstream: up, MaxBodyBytes: *s.maxBody})
	if err != nil {
		return nil, "", err
	}
	addr, err := s.serve("web", *s.webAddr, metrics.Middleware(s.log, web.Route, h), stops, errc, nil)
	return metrics, addr, err
}

func (s *server) startAdmin(stops *[]component, errc chan<- error, g prometheus.Gatherers) error {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
	_, err := s.serve("admin", *s.adminAddr, mux, stops, errc, nil)
	return err
}

// serve listens on addr and serves h with timeouts; on shutdown it calls
// drain first (readiness fails), then lets in-flight requests finish.
func (s *server) serve(name, addr string, h http.Handler, stops *[]component, errc chan<- error, drain func()) (string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("%s listen on %s: %w", name, addr, err)
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("%s server: %w", name, err)
		}
	}()
	*stops = append(*stops, component{name + " server", func(ctx context.Context) error {
		if drain != nil {
			drain()
		}
		return srv.Shutdown(ctx)
	}})
	bound := ln.Addr().String()
	s.log.Info("listening", "server", name, "addr", bound)
	fmt.Fprintf(s.stdout, "%s listening on http://%s\n", name, bound)
	return bound, nil
}

package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
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

// server runs one role: what it starts, in order, and how it stops.
type server struct {
	*Settings
	log     *slog.Logger
	stdout  io.Writer
	localDB *localdb.DB // local mode's embedded database
	// reloaders read again what may change behind a running server (the
	// JWT keys, the web certificate): every SecretsRefresh, and on SIGHUP.
	reloaders []func(context.Context)
}

// SecretsRefresh is how often secrets that rotate under a running server
// are read again (a Secrets Manager read each: about 44,000 a month per
// instance and secret, $0.22). SIGHUP reads them at once.
const SecretsRefresh = time.Minute

// JWTGrace is how long tokens signed with the JWT secret's previous
// version stay valid after a new one is put (from the new version's
// creation): rotating the secret signs nobody out at once, and retires the
// old key for good a day later.
const JWTGrace = 24 * time.Hour

// reload runs every reloader.
func (s *server) reload(ctx context.Context) {
	for _, r := range s.reloaders {
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		r(rctx)
		cancel()
	}
}

// reloadEvery reloads every interval and on SIGHUP until ctx ends.
func (s *server) reloadEvery(ctx context.Context, interval time.Duration) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			s.log.Info("SIGHUP: reading secrets again")
			s.reload(ctx)
		case <-t.C:
			s.reload(ctx)
		}
	}
}

// component is something started that must be stopped, in reverse order.
type component struct {
	name string
	stop func(context.Context) error
}

func (s *server) run(ctx context.Context) (err error) {
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

	var dbURI store.URIFunc
	if s.Role == "local" {
		uri, err := s.startLocalDB(ctx, &stops)
		if err != nil {
			return err
		}
		dbURI = fixedURI(uri)
	}
	upstream := s.Upstream
	if s.Role == "api" || s.Role == "local" {
		res, err := s.resolve(ctx)
		if err != nil {
			return err
		}
		if dbURI == nil {
			dbURI = res.dbURI
		}
		metrics, addr, err := s.startAPI(ctx, res.jwt, dbURI, &stops, errc)
		if err != nil {
			return err
		}
		gatherers = append(gatherers, metrics.Registry)
		upstream = &url.URL{Scheme: "http", Host: addr}
	}
	webAddr := ""
	if s.Role == "web" || s.Role == "local" {
		metrics, addr, err := s.startWeb(upstream, &stops, errc)
		if err != nil {
			return err
		}
		gatherers = append(gatherers, metrics.Registry)
		webAddr = addr
	}
	if err := s.startAdmin(&stops, errc, gatherers); err != nil {
		return err
	}
	if s.Role == "local" { // once everything listens
		fmt.Fprintf(s.stdout, "conduit local: serving http://%s/ (WAF %s)\n", webAddr, s.WAF)
	}
	if len(s.reloaders) > 0 {
		rctx, stopReload := context.WithCancel(ctx)
		defer stopReload()
		go s.reloadEvery(rctx, SecretsRefresh)
	}
	select {
	case <-ctx.Done():
		s.log.Info("shutting down")
		return nil
	case err := <-errc:
		return err
	}
}

func fixedURI(uri string) store.URIFunc {
	return func(context.Context, string) (string, error) { return uri, nil }
}

func (s *server) startLocalDB(ctx context.Context, stops *[]component) (string, error) {
	dir := filepath.Join(s.DataDir, "ferretdb")
	db, err := localdb.Start(ctx, s.MongoAddr, dir, s.log.With("component", "ferretdb"))
	if err != nil {
		return "", err
	}
	*stops = append(*stops, component{"embedded database", db.Stop})
	s.localDB = db
	uri := db.URI
	if !strings.Contains(uri, "?") {
		uri += "?retryWrites=false"
	}
	s.log.Info("embedded database started", "dir", dir)
	return uri, nil
}

// resolved are what the api reads at start and keeps apart from its
// settings: the JWT key, and how to reach the database with credentials
// that may rotate.
type resolved struct {
	jwt   httpapi.Secret
	dbURI store.URIFunc
}

// resolve reads the api's secrets: from AWS Secrets Manager when settings
// name ARNs (values never touch disk or environment), from the settings
// otherwise, and in local mode from the data directory (the JWT key is
// generated there once).
func (s *server) resolve(ctx context.Context) (*resolved, error) {
	r := &resolved{jwt: httpapi.Secret(s.JWTSecret)}
	if s.MongoURI != "" {
		r.dbURI = fixedURI(s.MongoURI)
	}
	var client *secrets.Client
	if s.JWTSecretARN != "" || s.DBHost != "" {
		var err error
		if client, err = secrets.New(ctx); err != nil {
			return nil, err
		}
	}
	if s.DBHost != "" {
		r.dbURI = s.documentDB(client)
	}
	switch {
	case s.JWTSecretARN != "":
		v, err := client.Get(ctx, s.JWTSecretARN)
		if err != nil {
			return nil, err
		}
		r.jwt = httpapi.Secret(v)
	case len(r.jwt) == 0 && s.Role == "local":
		v, err := localJWTSecret(s.DataDir)
		if err != nil {
			return nil, err
		}
		r.jwt = v
	}
	return r, nil
}

// documentDB builds DocumentDB connection strings from its managed
// secret. When the database has just refused the current value, the
// secret is being rotated: DocumentDB's password already changed but the
// new value is still AWSPENDING, so that is tried.
func (s *server) documentDB(client *secrets.Client) store.URIFunc {
	build := func(ctx context.Context, stage string) (string, error) {
		cred, err := client.DatabaseCredentials(ctx, s.DBSecretARN, stage)
		if err != nil {
			return "", err
		}
		return store.DocumentDBURI(s.DBHost, s.DBPort, cred.Username, string(cred.Password), s.DBCAFile), nil
	}
	return func(ctx context.Context, rejected string) (string, error) {
		uri, err := build(ctx, secrets.Current)
		if err != nil || uri != rejected {
			return uri, err
		}
		if pending, err := build(ctx, secrets.Pending); err == nil {
			return pending, nil
		}
		return uri, nil
	}
}

// followJWTSecret keeps tokens' keys those of the JWT secret: its current
// version signs, the previous one verifies until JWTGrace after the
// current one was made. The keys are read now, every SecretsRefresh, on
// SIGHUP, and when a token names a key this instance does not know yet
// (another instance read the new version first): so a `pulumi up` that
// puts a new secret signs nobody out and no instance refuses the tokens of
// another.
func (s *server) followJWTSecret(ctx context.Context, tokens *httpapi.Tokens) error {
	client, err := secrets.New(ctx)
	if err != nil {
		return err
	}
	load := func(ctx context.Context) error {
		cur, err := client.GetVersion(ctx, s.JWTSecretARN, secrets.Current)
		if err != nil {
			return err
		}
		prev, err := client.GetVersion(ctx, s.JWTSecretARN, secrets.Previous)
		if err != nil && !secrets.IsNotFound(err) {
			return err
		}
		before := tokens.CurrentKeyID()
		if err := tokens.Rotate(httpapi.Secret(cur.Value), httpapi.Secret(prev.Value), cur.Created.Add(JWTGrace)); err != nil {
			return fmt.Errorf("JWT secret %s: %w", s.JWTSecretARN, err)
		}
		if after := tokens.CurrentKeyID(); after != before {
			s.log.Info("JWT signing key changed", "kid", after, "previous_kid", before, "previous_valid_until", cur.Created.Add(JWTGrace))
		}
		return nil
	}
	if err := load(ctx); err != nil {
		return err
	}
	reload := func(ctx context.Context) {
		if err := load(ctx); err != nil {
			s.log.Warn("read the JWT secret again", "error", err)
		}
	}
	tokens.Refresh = func() {
		rctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		reload(rctx)
	}
	s.reloaders = append(s.reloaders, reload)
	return nil
}

// localJWTSecret returns the key kept in the data directory, created on
// first start.
func localJWTSecret(dataDir string) (httpapi.Secret, error) {
	path := filepath.Join(dataDir, "jwt-secret")
	if b, err := os.ReadFile(path); err == nil && len(strings.TrimSpace(string(b))) >= 32 {
		return httpapi.Secret(strings.TrimSpace(string(b))), nil
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return nil, fmt.Errorf("generate jwt secret: %w", err)
	}
	secret := hex.EncodeToString(raw)
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	if err := os.WriteFile(path, []byte(secret), 0o600); err != nil {
		return nil, fmt.Errorf("keep jwt secret: %w", err)
	}
	return httpapi.Secret(secret), nil
}

func (s *server) startAPI(ctx context.Context, jwt httpapi.Secret, dbURI store.URIFunc, stops *[]component, errc chan<- error) (*observe.Metrics, string, error) {
	tokens, err := httpapi.NewTokens(jwt, s.SessionLifetime)
	if err != nil {
		return nil, "", err
	}
	if s.JWTSecretARN != "" {
		if err := s.followJWTSecret(ctx, tokens); err != nil {
			return nil, "", err
		}
	}
	metrics := observe.NewMetrics("api")
	database := s.MongoDB
	if database == "" {
		database = "conduit"
	}
	// No writer bound, locally either: the local engine keeps each
	// document's writes atomic and lets others run at once, as DocumentDB
	// does (SQLite's one writer makes the others wait, or answer busy,
	// which the store retries).
	st, err := store.Open(ctx, database, dbURI, store.Options{MaxPool: s.DBMaxPool})
	if err != nil {
		return nil, "", err
	}
	st.Observe = metrics.ObserveDB
	st.OnError = metrics.DBError
	st.OnCommand = metrics.DBCommand
	st.OnRotate = func() { s.log.Info("database credentials rotated: reconnected") }
	st.OnIndexBuild = func(built int, err error) {
		if err != nil {
			s.log.Warn("index builds stopped; the next instance's start or a Repair round goes on", "built", built, "err", err)
			return
		}
		s.log.Info("index builds done", "built", built)
	}
	st.OnContract = func(layout int) {
		s.log.Info("data layout contracted: releases of an earlier layout no longer start", "layout", layout)
	}
	*stops = append(*stops, component{"database client", st.Close})
	mctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := st.Migrate(mctx); err != nil {
		return nil, "", fmt.Errorf("prepare database: %w", err)
	}
	if s.localDB != nil {
		// Every collection exists now: index their _id lookups before the
		// first request rather than under load (see localdb.IndexIDs).
		if err := s.localDB.IndexIDs(mctx); err != nil {
			return nil, "", fmt.Errorf("prepare database: %w", err)
		}
	}
	// Writes a crash or a failover interrupted are finished in the
	// background (see store.Repair); every instance runs it, and claims
	// each interrupted write before finishing it.
	rctx, stopRepair := context.WithCancel(context.WithoutCancel(ctx))
	go st.RepairEvery(rctx, store.DefaultIntentGrace/2, func(n int, err error) {
		if err != nil {
			s.log.Warn("finish interrupted writes", "error", err, "finished", n)
			return
		}
		s.log.Info("finished interrupted writes", "count", n)
	})
	*stops = append(*stops, component{"interrupted-write repair", func(context.Context) error { stopRepair(); return nil }})
	// The api's proxies: the configured ones (the web tier's subnets, the
	// internal load balancer's); in local mode also the web tier in front
	// of it on loopback.
	trusted := s.TrustedProxies
	if s.Role == "local" {
		trusted = append(slices.Clone(trusted), netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128"))
	}
	api := httpapi.New(st, tokens, s.log, httpapi.Options{AllowedOrigins: s.CORSOrigins, MaxBodyBytes: s.MaxBodyBytes, TrustedProxies: trusted,
		SessionIdle: s.SessionIdle, Quotas: s.Quotas})
	handler := metrics.Middleware(s.log, httpapi.Route, trusted, api)
	addr, err := s.serve("api", s.APIAddr, handler, stops, errc, api.Drain)
	return metrics, addr, err
}

func (s *server) startWeb(upstream *url.URL, stops *[]component, errc chan<- error) (*observe.Metrics, string, error) {
	metrics := observe.NewMetrics("web")
	w, err := waf.New(s.WAF, s.MaxBodyBytes)
	if err != nil {
		return nil, "", err
	}
	w.OnBlock = metrics.WAFBlocked
	h, err := web.New(w, s.log, web.Options{Upstream: upstream, MaxBodyBytes: s.MaxBodyBytes, TrustedProxies: s.TrustedProxies})
	if err != nil {
		return nil, "", err
	}
	handler := metrics.Middleware(s.log, h.Route, s.TrustedProxies, h)
	if s.TLSSecretARN == "" {
		addr, err := s.serve("web", s.WebAddr, handler, stops, errc, nil)
		return metrics, addr, err
	}
	certs, err := s.followWebCertificate(context.Background())
	if err != nil {
		return nil, "", err
	}
	addr, err := s.serveTLS("web", s.WebAddr, handler, certs, stops, errc)
	if err != nil {
		return nil, "", err
	}
	if s.RedirectAddr != "" {
		if _, err := s.serve("redirect", s.RedirectAddr, web.RedirectToHTTPS(addr), stops, errc, nil); err != nil {
			return nil, "", err
		}
	}
	return metrics, addr, err
}

// followWebCertificate reads the web listener's certificate and key from
// Secrets Manager (the web role's own grant), and again every
// SecretsRefresh and on SIGHUP: a certificate renewed in the secret is
// served from then on, without a restart. A secret that no longer parses
// leaves the one being served in place (and says so).
func (s *server) followWebCertificate(ctx context.Context) (func(*tls.ClientHelloInfo) (*tls.Certificate, error), error) {
	client, err := secrets.New(ctx)
	if err != nil {
		return nil, err
	}
	var current atomic.Pointer[tls.Certificate]
	load := func(ctx context.Context) error {
		v, err := client.Get(ctx, s.TLSSecretARN)
		if err != nil {
			return err
		}
		cert, err := web.ParseCertificateSecret(v)
		if err != nil {
			return err
		}
		if old := current.Load(); old == nil || !bytes.Equal(old.Certificate[0], cert.Certificate[0]) {
			current.Store(&cert)
			if leaf, err := x509.ParseCertificate(cert.Certificate[0]); err == nil {
				s.log.Info("web certificate loaded", "serial", leaf.SerialNumber.String(), "not_after", leaf.NotAfter)
			}
		}
		return nil
	}
	if err := load(ctx); err != nil {
		return nil, err
	}
	s.reloaders = append(s.reloaders, func(ctx context.Context) {
		if err := load(ctx); err != nil {
			s.log.Error("read the web certificate again; serving the one loaded before", "error", err)
		}
	})
	return func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return current.Load(), nil }, nil
}

func (s *server) startAdmin(stops *[]component, errc chan<- error, g prometheus.Gatherers) error {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
	// Profiles for an operator on the instance (the admin listener is
	// loopback-only by default; Session Manager is the way in).
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	_, err := s.serve("admin", s.AdminAddr, mux, stops, errc, nil)
	return err
}

// serve listens on addr and serves h with timeouts; on shutdown it calls
// drain first (readiness fails), then lets in-flight requests finish.
func (s *server) serve(name, addr string, h http.Handler, stops *[]component, errc chan<- error, drain func()) (string, error) {
	return s.listenAndServe(name, addr, h, nil, stops, errc, drain)
}

// serveTLS is serve over TLS 1.2+ with cert (HTTP/1.1: the framing guard
// reads the decrypted stream).
func (s *server) serveTLS(name, addr string, h http.Handler, cert func(*tls.ClientHelloInfo) (*tls.Certificate, error), stops *[]component, errc chan<- error) (string, error) {
	cfg := &tls.Config{GetCertificate: cert, MinVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"}}
	return s.listenAndServe(name, addr, h, cfg, stops, errc, nil)
}

// envName is a flag's CONDUIT_* twin.
func envName(flag string) string {
	return "CONDUIT_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// listenFlags name the flag that moves each listener.
var listenFlags = map[string]string{"web": "web-addr", "api": "api-addr", "admin": "admin-addr", "redirect": "redirect-addr"}

func (s *server) listenAndServe(name, addr string, h http.Handler, tlsCfg *tls.Config, stops *[]component, errc chan<- error, drain func()) (string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		if flag, ok := listenFlags[name]; ok {
			return "", fmt.Errorf("%s listen on %s: %w: move it with --%s (%s)", name, addr, err, flag, envName(flag))
		}
		return "", fmt.Errorf("%s listen on %s: %w", name, addr, err)
	}
	if name == "web" || name == "redirect" {
		// The public listeners: one address holds a bounded number of
		// connections (the load balancer, trusted, is exempt).
		ln = web.ConnsPerAddress(ln, web.MaxConnsPerAddress, s.TrustedProxies)
	}
	scheme := "http"
	if tlsCfg != nil {
		ln, scheme = tls.NewListener(ln, tlsCfg), "https"
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
	ln = web.FramingGuard(srv, ln)
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
	fmt.Fprintf(s.stdout, "%s listening on %s://%s\n", name, scheme, bound)
	return bound, nil
}

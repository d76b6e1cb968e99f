// Package observe provides what every role of the server shares for
// observability: request ids, structured access logs and Prometheus metrics.
package observe

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"net/http"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// RequestIDHeader carries the request id from web to api and back to the client.
const RequestIDHeader = "X-Request-Id"

// StatusClientClosed is the status recorded for a request whose client
// went away before the answer (nginx's 499).
const StatusClientClosed = 499

// ClientGone reports whether err is the request's own cancellation: the
// client went away, which is not a server error.
func ClientGone(r *http.Request, err error) bool {
	return r.Context().Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, r.Context().Err()))
}

var validID = regexp.MustCompile(`^[A-Za-z0-9._-]{8,64}$`)

type ctxKey struct{}

// requestInfo is what the middleware learns of a request, for handlers.
type requestInfo struct {
	id, client string
}

// RequestID returns the request id stored in ctx (this server's own).
func RequestID(ctx context.Context) string {
	ri, _ := ctx.Value(ctxKey{}).(requestInfo)
	return ri.id
}

// Client returns the client's address stored in ctx (see ClientIP).
func Client(ctx context.Context) string {
	ri, _ := ctx.Value(ctxKey{}).(requestInfo)
	return ri.client
}

// HSTS is the Strict-Transport-Security every tier sends on answers over
// HTTPS: a year, subdomains included.
const HSTS = "max-age=31536000; includeSubDomains"

// trusts reports whether a is one of the trusted proxies.
func trusts(trusted []netip.Prefix, a netip.Addr) bool {
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// FromTrustedProxy reports whether r's peer is one of the trusted proxies
// (whose X-Forwarded-* headers are believed).
func FromTrustedProxy(r *http.Request, trusted []netip.Prefix) bool {
	peer, err := netip.ParseAddrPort(r.RemoteAddr)
	return err == nil && trusts(trusted, peer.Addr().Unmap())
}

// HTTPS reports whether r reached the edge over HTTPS: this server's own
// TLS, or a trusted proxy's X-Forwarded-Proto.
func HTTPS(r *http.Request, trusted []netip.Prefix) bool {
	return r.TLS != nil || r.Header.Get("X-Forwarded-Proto") == "https" && FromTrustedProxy(r, trusted)
}

// ClientIP is the address of the client behind r: its peer, unless the
// peer is a trusted proxy, then the rightmost X-Forwarded-For hop that is
// not a trusted proxy (each proxy appends the peer it saw, so hops to the
// left of an untrusted one may be forged).
func ClientIP(r *http.Request, trusted []netip.Prefix) string {
	peer, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	addr := peer.Addr().Unmap()
	if !trusts(trusted, addr) {
		return addr.String()
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break // a malformed hop: stop believing the header here
		}
		addr = a.Unmap()
		if !trusts(trusted, addr) {
			break
		}
	}
	return addr.String()
}

// methods are the HTTP methods metrics name; any other is "other".
var methods = map[string]bool{"GET": true, "HEAD": true, "POST": true, "PUT": true, "PATCH": true, "DELETE": true, "OPTIONS": true}

// methodLabel and statusLabel keep label values in closed sets: a client
// must not be able to make new time series.
func methodLabel(m string) string {
	if methods[m] {
		return m
	}
	return "other"
}

func statusLabel(code int) string {
	if code == StatusClientClosed {
		return "499"
	}
	if code < 100 || code > 599 {
		return "other"
	}
	return strconv.Itoa(code/100) + "xx"
}

// NewID returns a random request id.
func NewID() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Metrics are the server's Prometheus metrics, on their own registry.
type Metrics struct {
	Registry   *prometheus.Registry
	requests   *prometheus.CounterVec
	latency    *prometheus.HistogramVec
	db         *prometheus.HistogramVec
	dbCommands *prometheus.CounterVec
	wafBlocked *prometheus.CounterVec
	canceled   prometheus.Counter
	// For CloudWatch (its agent keeps counters and summaries and drops
	// histograms), without labels beyond role: every label value is a
	// billed custom metric there. The summary's count is the number of
	// answers.
	serverErrors prometheus.Counter
	quantiles    prometheus.Summary
	dbErrors     prometheus.Counter
}

// SlowRequest is how long a request may take before it is logged at INFO;
// faster ones that succeed are logged at DEBUG (INFO stays quiet under
// normal load).
const SlowRequest = 500 * time.Millisecond

// NewMetrics registers the metrics of one role, labelled role=<role>.
func NewMetrics(role string) *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "conduit_http_requests_total", ConstLabels: prometheus.Labels{"role": role}, Help: "HTTP requests by route, method (known ones, else other) and status class.",
		}, []string{"route", "method", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "conduit_http_request_duration_seconds", ConstLabels: prometheus.Labels{"role": role}, Help: "HTTP request latency by route and status.",
			Buckets: []float64{.001, .0025, .005, .01, .02, .05, .1, .25, .5, 1, 2.5},
		}, []string{"route", "method", "status"}),
		db: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "conduit_db_operation_duration_seconds", ConstLabels: prometheus.Labels{"role": role}, Help: "Database operation latency by operation.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .02, .05, .1, .25, 1},
		}, []string{"op"}),
		dbCommands: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "conduit_db_commands_total", ConstLabels: prometheus.Labels{"role": role},
			Help: "Commands sent to the database, as the driver puts them on the wire, by command (known ones, else other).",
		}, []string{"command"}),
		wafBlocked: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "conduit_waf_blocked_total", ConstLabels: prometheus.Labels{"role": role}, Help: "Requests the WAF blocked, by rule id.",
		}, []string{"rule"}),
		canceled: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "conduit_http_client_canceled_total", ConstLabels: prometheus.Labels{"role": role},
			Help: "Requests whose client went away before the answer (not server errors; recorded with status 499).",
		}),
	}
	m.serverErrors = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "conduit_http_server_errors_total", ConstLabels: prometheus.Labels{"role": role}, Help: "HTTP answers with a 5xx status (not 499: a client that went away).",
	})
	m.quantiles = prometheus.NewSummary(prometheus.SummaryOpts{
		Name: "conduit_http_latency_seconds", ConstLabels: prometheus.Labels{"role": role}, Help: "HTTP latency: p99 over the last minute, and the count of answers.",
		Objectives: map[float64]float64{0.99: 0.001}, MaxAge: time.Minute, AgeBuckets: 3,
	})
	m.dbErrors = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "conduit_db_errors_total", ConstLabels: prometheus.Labels{"role": role}, Help: "Database operations that failed (unavailable, timed out, refused, internal).",
	})
	m.Registry.MustRegister(m.requests, m.latency, m.db, m.dbCommands, m.wafBlocked, m.canceled, m.serverErrors, m.quantiles, m.dbErrors)
	return m
}

// ProcessRegistry holds the Go runtime and process collectors, which exist
// once per process whatever roles it runs.
func ProcessRegistry() *prometheus.Registry {
	r := prometheus.NewRegistry()
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return r
}

// ObserveDB records one database operation.
func (m *Metrics) ObserveDB(op string, d time.Duration) {
	m.db.WithLabelValues(op).Observe(d.Seconds())
}

// dbCommandNames are the database commands metrics name; any other is
// "other" (a closed set, like every label here).
var dbCommandNames = map[string]bool{"find": true, "getMore": true, "insert": true, "update": true, "delete": true,
	"findAndModify": true, "aggregate": true, "count": true, "ping": true, "createIndexes": true, "listIndexes": true,
	"listCollections": true, "create": true, "killCursors": true, "endSessions": true}

// DBCommand counts one command sent to the database.
func (m *Metrics) DBCommand(name string) {
	if !dbCommandNames[name] {
		name = "other"
	}
	m.dbCommands.WithLabelValues(name).Inc()
}

// DBError counts one failed database operation.
func (m *Metrics) DBError(string, error) { m.dbErrors.Inc() }

// WAFBlocked counts one blocked request.
func (m *Metrics) WAFBlocked(rule int) { m.wafBlocked.WithLabelValues(strconv.Itoa(rule)).Inc() }

// Middleware gives every request an id of this server's own (a client's
// well-formed X-Request-Id is logged beside it as client_request_id, never
// used as ours), echoes it in the response, learns the client's address
// (ClientIP with trusted proxies), and logs and measures every request.
// route names the request's route for labels and must return values from
// a closed set (patterns, never raw paths); methods and statuses are
// reduced to closed sets here.
func (m *Metrics) Middleware(log *slog.Logger, route func(*http.Request) string, trusted []netip.Prefix, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		clientID := r.Header.Get(RequestIDHeader)
		if !validID.MatchString(clientID) {
			clientID = ""
		}
		id := NewID()
		r.Header.Del(RequestIDHeader)
		w.Header().Set(RequestIDHeader, id)
		client := ClientIP(r, trusted)
		r = r.WithContext(context.WithValue(r.Context(), ctxKey{}, requestInfo{id: id, client: client}))
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r)
		rt := route(r)
		code := rec.status
		if r.Context().Err() != nil && (!rec.wrote || code >= 500) {
			// The client went away: whatever was (not) written, it is
			// not a failure of this server.
			code = StatusClientClosed
			m.canceled.Inc()
		}
		status := statusLabel(code)
		method := methodLabel(r.Method)
		d := time.Since(start)
		m.requests.WithLabelValues(rt, method, status).Inc()
		m.latency.WithLabelValues(rt, method, status).Observe(d.Seconds())
		m.quantiles.Observe(d.Seconds())
		failed := code >= 500 && code != StatusClientClosed
		if failed {
			m.serverErrors.Inc()
		}
		level := slog.LevelDebug
		if failed || d >= SlowRequest {
			level = slog.LevelInfo
		}
		attrs := []slog.Attr{slog.String("request_id", id), slog.String("client", client), slog.String("method", method), slog.String("route", rt),
			slog.Int("status", code), slog.Duration("duration", d), slog.Int64("bytes", rec.bytes)}
		if clientID != "" {
			attrs = append(attrs, slog.String("client_request_id", clientID))
		}
		if code == http.StatusTooManyRequests {
			level = max(level, slog.LevelWarn)
		}
		log.LogAttrs(r.Context(), level, "request", attrs...)
	})
}

type statusRecorder struct {
	http.ResponseWriter
	status int
	bytes  int64
	wrote  bool
}

func (s *statusRecorder) WriteHeader(code int) {
	if !s.wrote {
		s.status, s.wrote = code, true
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	s.wrote = true
	n, err := s.ResponseWriter.Write(b)
	s.bytes += int64(n)
	return n, err
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

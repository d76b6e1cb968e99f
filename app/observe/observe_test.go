package observe

import (
	"bytes"
	"context"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The metrics CloudWatch gets count server errors only (not a client that
// went away), and INFO carries only failed or slow requests.
func TestMiddlewareCountsServerErrorsAndLogsOnlyWhatMatters(t *testing.T) {
	for _, tc := range []struct {
		name       string
		status     int
		delay      time.Duration
		cancel     bool
		serverErrs float64
		logged     bool
	}{
		{"ok", 200, 0, false, 0, false},
		{"not found", 404, 0, false, 0, false},
		{"server error", 503, 0, false, 1, true},
		{"slow", 200, SlowRequest + 10*time.Millisecond, false, 0, true},
		{"client gone", 500, 0, true, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := NewMetrics("web")
			var logs bytes.Buffer
			log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
			h := m.Middleware(log, func(*http.Request) string { return "GET /x" }, nil, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				time.Sleep(tc.delay)
				w.WriteHeader(tc.status)
			}))
			ctx, cancel := context.WithCancel(context.Background())
			if tc.cancel {
				cancel()
			}
			defer cancel()
			h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/x", nil).WithContext(ctx))
			assert.Equal(t, tc.serverErrs, testutil.ToFloat64(m.serverErrors))
			assert.Equal(t, 1, testutil.CollectAndCount(m.quantiles))
			assert.Equal(t, tc.logged, strings.Contains(logs.String(), `"msg":"request"`), logs.String())
			m.DBError("op", nil)
			assert.Equal(t, 1.0, testutil.ToFloat64(m.dbErrors))
		})
	}
}

// series counts the time series in m's registry.
func series(t *testing.T, m *Metrics) int {
	t.Helper()
	fams, err := m.Registry.Gather()
	require.NoError(t, err)
	n := 0
	for _, f := range fams {
		n += len(f.GetMetric())
	}
	return n
}

// No client input becomes a label value: after one request of each kind,
// 1,000 requests with random methods and paths add no time series.
func TestClientsCannotMakeNewTimeSeries(t *testing.T) {
	m := NewMetrics("web")
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/articles/{slug}", func(w http.ResponseWriter, r *http.Request) {})
	route := func(r *http.Request) string {
		if r.Pattern != "" {
			return r.Pattern
		}
		return "unmatched"
	}
	srv := httptest.NewServer(m.Middleware(slog.New(slog.DiscardHandler), route, nil, mux))
	defer srv.Close()
	do := func(method, path string) {
		req, err := http.NewRequest(method, srv.URL+path, nil)
		require.NoError(t, err)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
	}
	rnd := func(n int) string {
		const letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
		b := make([]byte, n)
		for i := range b {
			b[i] = letters[rand.IntN(len(letters))]
		}
		return string(b)
	}
	do("GET", "/api/articles/x")  // a route
	do("GET", "/nowhere")         // unmatched
	do("POST", "/api/articles/x") // a known method, not allowed
	do("BREW", "/api/articles/x") // an unknown method
	before := series(t, m)
	for i := range 1000 {
		do(rnd(1+rand.IntN(200)), "/"+rnd(1+i%50)+"/"+strconv.Itoa(i))
	}
	do(strings.Repeat("X", 60<<10), "/api/articles/"+rnd(10))
	assert.Equal(t, before, series(t, m), "random methods and paths made new series")
}

func TestTheClientIsTheRightmostHopNoTrustedProxyAdded(t *testing.T) {
	alb := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/16")}
	tests := []struct {
		name, peer, xff string
		trusted         []netip.Prefix
		want            string
	}{
		{"direct, a forged header ignored", "203.0.113.9:4000", "1.2.3.4", alb, "203.0.113.9"},
		{"behind the ALB", "10.0.1.5:4000", "198.51.100.7", alb, "198.51.100.7"},
		{"a forged hop to the left of the real one", "10.0.1.5:4000", "1.2.3.4, 198.51.100.7", alb, "198.51.100.7"},
		{"ALB then web then internal ALB", "10.0.2.9:4000", "198.51.100.7, 10.0.1.5, 10.0.3.3", alb, "198.51.100.7"},
		{"nobody trusted", "10.0.1.5:4000", "198.51.100.7", nil, "10.0.1.5"},
		{"garbage hop", "10.0.1.5:4000", "not-an-ip", alb, "10.0.1.5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = tt.peer
			r.Header.Set("X-Forwarded-For", tt.xff)
			assert.Equal(t, tt.want, ClientIP(r, tt.trusted))
		})
	}
}

// Request ids are this server's: a client's is logged beside it, never
// taken as ours (it could collide with, or impersonate, another's).
func TestRequestIDsAreTheServersOwn(t *testing.T) {
	var logs bytes.Buffer
	m := NewMetrics("api")
	var seen string
	h := m.Middleware(slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})), func(*http.Request) string { return "GET /x" }, nil,
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { seen = RequestID(r.Context()) }))
	r := httptest.NewRequest("GET", "/x", nil)
	r.Header.Set(RequestIDHeader, "client-chosen-id-1")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	assert.NotEqual(t, "client-chosen-id-1", seen)
	assert.Equal(t, seen, rec.Header().Get(RequestIDHeader))
	assert.Contains(t, logs.String(), `"client_request_id":"client-chosen-id-1"`)
	assert.Contains(t, logs.String(), `"request_id":"`+seen+`"`)
}

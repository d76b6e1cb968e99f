package observe

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
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
			h := m.Middleware(log, func(*http.Request) string { return "GET /x" }, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
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

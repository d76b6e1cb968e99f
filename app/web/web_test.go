package web_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"webstack/app/observe"
	"webstack/app/waf"
	"webstack/app/web"
)

// fakeAPI answers the two calls of an empty home page.
func fakeAPI(t *testing.T) *url.URL {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/api/articles":
			_, _ = io.WriteString(w, `{"articles":[],"articlesCount":0}`)
		case "/api/tags":
			_, _ = io.WriteString(w, `{"tags":[]}`)
		default:
			w.WriteHeader(http.StatusNotFound)
			_, _ = io.WriteString(w, `{"errors":{"body":["not found"]}}`)
		}
	}))
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	return u
}

func handler(t *testing.T, trusted ...string) http.Handler {
	t.Helper()
	w, err := waf.New(waf.On, 1<<20)
	require.NoError(t, err)
	var prefixes []netip.Prefix
	for _, p := range trusted {
		prefixes = append(prefixes, netip.MustParsePrefix(p))
	}
	log := slog.New(slog.DiscardHandler)
	h, err := web.New(w, log, web.Options{Upstream: fakeAPI(t), TrustedProxies: prefixes})
	require.NoError(t, err)
	return observe.NewMetrics("web").Middleware(log, h.Route, nil, h) // as the server mounts it: request ids
}

// Behind the ALB the visitor's side is HTTPS; the web tier believes the
// ALB's X-Forwarded-Proto, and only from a trusted peer.
func TestForwardedProtoIsBelievedOnlyFromTheLoadBalancer(t *testing.T) {
	tests := []struct {
		name    string
		trusted []string
		peer    string
		secure  bool
	}{
		{"from the ALB's network", []string{"10.0.0.0/16"}, "10.0.3.7:41000", true},
		{"from anywhere else", []string{"10.0.0.0/16"}, "203.0.113.9:41000", false},
		{"nobody trusted (dev)", nil, "10.0.3.7:41000", false},
	}
	for _, tt := range tests {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = tt.peer
		r.Header.Set("X-Forwarded-Proto", "https")
		r.Header.Set("User-Agent", "Mozilla/5.0")
		rec := httptest.NewRecorder()
		handler(t, tt.trusted...).ServeHTTP(rec, r)
		require.Equal(t, http.StatusOK, rec.Code, tt.name)
		cookie := rec.Header().Get("Set-Cookie")
		assert.Equal(t, tt.secure, strings.Contains(cookie, "; Secure"), "%s: %s", tt.name, cookie)
		assert.Equal(t, tt.secure, rec.Header().Get("Strict-Transport-Security") != "", tt.name)
	}
}

// The WAF blocks pages too; the visitor sees a readable page with the
// request id, an api client the JSON error it expects.
func TestBlockedRequestsGetAPageOrJSON(t *testing.T) {
	h := handler(t)
	for path, ctype := range map[string]string{"/?tag=%3Cscript%3Ealert(1)%3C%2Fscript%3E": "text/html", "/api/articles?tag=%3Cscript%3Ealert(1)%3C%2Fscript%3E": "application/json"} {
		r := httptest.NewRequest("GET", path, nil)
		r.Header.Set("User-Agent", "Mozilla/5.0")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		assert.Equal(t, http.StatusForbidden, rec.Code, path)
		assert.Contains(t, rec.Header().Get("Content-Type"), ctype, path)
		if ctype == "text/html" {
			assert.Contains(t, rec.Body.String(), "Request blocked")
			assert.Contains(t, rec.Body.String(), "Request id")
		}
	}
	r := httptest.NewRequest("GET", "/healthz", nil)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	assert.Equal(t, http.StatusOK, rec.Code, "the load balancer's health check still answers")
}

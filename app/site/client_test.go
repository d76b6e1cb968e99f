package site

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"webstack/app/observe"
)

// The tag list is asked for at most once per tagsTTL, and a failure is not
// remembered.
func TestClientKeepsTheTagListBriefly(t *testing.T) {
	var calls atomic.Int32
	fail := atomic.Bool{}
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if fail.Load() {
			http.Error(w, `{"errors":{"body":["down"]}}`, http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte(`{"tags":["go","dragons"]}`))
	}))
	t.Cleanup(api.Close)
	base, err := url.Parse(api.URL)
	require.NoError(t, err)
	c := newClient(base, http.DefaultTransport, time.Second)
	ctx := context.Background()

	for range 3 {
		tags, err := c.tags(ctx, "")
		require.NoError(t, err)
		assert.Equal(t, []string{"go", "dragons"}, tags)
	}
	assert.Equal(t, int32(1), calls.Load())

	c.tagsAt = time.Now().Add(-tagsTTL) // the list has aged
	fail.Store(true)
	_, err = c.tags(ctx, "")
	require.Error(t, err)
	fail.Store(false)
	tags, err := c.tags(ctx, "")
	require.NoError(t, err)
	assert.Equal(t, []string{"go", "dragons"}, tags)
	assert.Equal(t, int32(3), calls.Load())

	// A signed-in visitor's list is never the kept one.
	_, err = c.tags(ctx, "token")
	require.NoError(t, err)
	assert.Equal(t, int32(4), calls.Load())
}

// The api sees the visitor's address, not the web tier's: its sign-in
// throttle counts per visitor, and its logs name them.
func TestAPICallsCarryTheVisitorsAddress(t *testing.T) {
	var got atomic.Value
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.Store(r.Header.Get("X-Forwarded-For"))
		_, _ = w.Write([]byte(`{"tags":[]}`))
	}))
	t.Cleanup(api.Close)
	base, err := url.Parse(api.URL)
	require.NoError(t, err)
	c := newClient(base, http.DefaultTransport, time.Second)
	var seen context.Context
	h := observe.NewMetrics("web").Middleware(slog.New(slog.DiscardHandler), func(*http.Request) string { return "page" },
		[]netip.Prefix{netip.MustParsePrefix("10.0.0.0/16")}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { seen = r.Context() }))
	r := httptest.NewRequest("GET", "/", nil)
	r.RemoteAddr = "10.0.1.5:40000" // the ALB
	r.Header.Set("X-Forwarded-For", "198.51.100.7")
	h.ServeHTTP(httptest.NewRecorder(), r)
	_, err = c.tags(seen, "")
	require.NoError(t, err)
	assert.Equal(t, "198.51.100.7", got.Load())
}

// A form sent twice carries one idempotency key; while the first copy
// runs, the api answers the second 409 with Retry-After: the site waits
// and sends it again, and gives the person the first copy's answer — not
// an error page. Other 409s (a conflict) are answered at once.
func TestAFormWhoseKeyIsHeldWaitsForTheFirstAnswer(t *testing.T) {
	defer func(w time.Duration) { keyHeldWait = w }(keyHeldWait)
	keyHeldWait = 10 * time.Millisecond
	var calls atomic.Int32
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := calls.Add(1)
		switch {
		case r.Header.Get("Idempotency-Key") == "":
			w.WriteHeader(http.StatusConflict)
			_, _ = w.Write([]byte(`{"errors":{"body":["slug has already been taken"]}}`))
		case n < 3:
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusConflict)
			_, _ = w.Write([]byte(`{"errors":{"body":["a request with this Idempotency-Key is still running"]}}`))
		default:
			w.WriteHeader(http.StatusCreated)
			_, _ = w.Write([]byte(`{"article":{"slug":"once","title":"Once"}}`))
		}
	}))
	t.Cleanup(api.Close)
	base, err := url.Parse(api.URL)
	require.NoError(t, err)
	c := newClient(base, http.DefaultTransport, 2*time.Second)
	a, err := c.saveArticle(context.Background(), http.MethodPost, "/api/articles", "token", http.Header{"Idempotency-Key": {"k"}}, map[string]any{"title": "Once"})
	require.NoError(t, err)
	assert.Equal(t, "once", a.Slug)
	assert.Equal(t, int32(3), calls.Load(), "sent again until the first copy's answer came")

	calls.Store(0)
	_, err = c.saveArticle(context.Background(), http.MethodPost, "/api/articles", "token", http.Header{}, map[string]any{"title": "Once"})
	var ae *apiError
	require.ErrorAs(t, err, &ae)
	assert.Equal(t, http.StatusConflict, ae.Status)
	assert.Equal(t, int32(1), calls.Load(), "a conflict without a held key is answered at once")
}

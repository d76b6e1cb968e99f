package site

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
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

package store

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"webstack/app/conduit"
)

func TestCacheFillRunsOnceForConcurrentMisses(t *testing.T) {
	c := newTTLCache[int](time.Minute, 10)
	var loads atomic.Int32
	release := make(chan struct{})
	load := func(context.Context) (int, error) {
		loads.Add(1)
		<-release
		return 42, nil
	}
	var wg sync.WaitGroup
	results := make([]int, 16)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, err := c.fill(context.Background(), "k", load)
			assert.NoError(t, err)
			results[i] = v
		}()
	}
	require.Eventually(t, func() bool { return loads.Load() == 1 }, time.Second, time.Millisecond)
	time.Sleep(10 * time.Millisecond) // let every waiter join the flight
	close(release)
	wg.Wait()
	assert.Equal(t, int32(1), loads.Load())
	for _, v := range results {
		assert.Equal(t, 42, v)
	}
	// Within the ttl the value is served without a load.
	v, err := c.fill(context.Background(), "k", func(context.Context) (int, error) { return 7, nil })
	require.NoError(t, err)
	assert.Equal(t, 42, v)
}

// A value is served for its ttl, counted from when its read began, and
// read again after.
func TestCacheValuesExpire(t *testing.T) {
	c := newTTLCache[int](50*time.Millisecond, 10)
	n := 0
	load := func(context.Context) (int, error) { n++; return n, nil }
	v, err := c.fill(context.Background(), "k", load)
	require.NoError(t, err)
	assert.Equal(t, 1, v)
	v, _ = c.fill(context.Background(), "k", load)
	assert.Equal(t, 1, v, "fresh enough")
	time.Sleep(60 * time.Millisecond)
	v, _ = c.fill(context.Background(), "k", load)
	assert.Equal(t, 2, v, "expired: read again")

	none := newTTLCache[int](0, 10)
	v, _ = none.fill(context.Background(), "k", load)
	w, _ := none.fill(context.Background(), "k", load)
	assert.Equal(t, v+1, w, "a ttl of 0 keeps nothing")
}

func TestCacheFillOutlivesTheRequestThatStartedIt(t *testing.T) {
	c := newTTLCache[int](time.Minute, 10)
	release := make(chan struct{})
	loadCtxErr := make(chan error, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err := c.fill(ctx, "k", func(lctx context.Context) (int, error) {
		<-release
		loadCtxErr <- lctx.Err() // nil: the request's deadline does not stop the fill
		return 42, nil
	})
	assert.Equal(t, conduit.CodeUnavailable, conduit.CodeOf(err), "the waiter's own deadline answers 503")
	close(release)
	require.Eventually(t, func() bool { c.mu.Lock(); defer c.mu.Unlock(); _, ok := c.m["k"]; return ok }, time.Second, time.Millisecond)
	assert.NoError(t, <-loadCtxErr)
	v, err := c.fill(context.Background(), "k", func(context.Context) (int, error) { return 0, errors.New("must not load again") })
	require.NoError(t, err)
	assert.Equal(t, 42, v)
}

func TestCacheFillDoesNotCacheErrors(t *testing.T) {
	c := newTTLCache[int](time.Minute, 10)
	_, err := c.fill(context.Background(), "k", func(context.Context) (int, error) { return 0, errors.New("boom") })
	require.Error(t, err)
	v, err := c.fill(context.Background(), "k", func(context.Context) (int, error) { return 5, nil })
	require.NoError(t, err)
	assert.Equal(t, 5, v)
}

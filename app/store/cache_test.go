package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"webstack/app/conduit"
)

func TestCacheFillRunsOnceForConcurrentMisses(t *testing.T) {
	c := newTTLCache[int](time.Minute, 10, nil)
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
	c := newTTLCache[int](50*time.Millisecond, 10, nil)
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

	none := newTTLCache[int](0, 10, nil)
	v, _ = none.fill(context.Background(), "k", load)
	w, _ := none.fill(context.Background(), "k", load)
	assert.Equal(t, v+1, w, "a ttl of 0 keeps nothing")
}

// A key people asked for before (its value expired) is read again
// detached from the request that found it stale: the value is kept for the
// requests after it even when that one gave up.
func TestCacheFillOutlivesTheRequestThatStartedIt(t *testing.T) {
	c := newTTLCache[int](300*time.Millisecond, 10, nil)
	_, err := c.fill(context.Background(), "k", func(context.Context) (int, error) { return 1, nil })
	require.NoError(t, err)
	time.Sleep(310 * time.Millisecond) // expired, still known
	release := make(chan struct{})
	loadCtxErr := make(chan error, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err = c.fill(ctx, "k", func(lctx context.Context) (int, error) {
		<-release
		loadCtxErr <- lctx.Err() // nil: the request's deadline does not stop the fill
		return 42, nil
	})
	assert.Equal(t, conduit.CodeUnavailable, conduit.CodeOf(err), "the waiter's own deadline answers 503")
	close(release)
	assert.NoError(t, <-loadCtxErr)
	require.Eventually(t, func() bool {
		v, err := c.fill(context.Background(), "k", func(context.Context) (int, error) { return 0, errors.New("must not load again") })
		return err == nil && v == 42
	}, time.Second, time.Millisecond)
}

func TestCacheFillDoesNotCacheErrors(t *testing.T) {
	c := newTTLCache[int](time.Minute, 10, nil)
	_, err := c.fill(context.Background(), "k", func(context.Context) (int, error) { return 0, errors.New("boom") })
	require.Error(t, err)
	v, err := c.fill(context.Background(), "k", func(context.Context) (int, error) { return 5, nil })
	require.NoError(t, err)
	assert.Equal(t, 5, v)
}

// A key nobody asked for lately is read under the request's own deadline:
// a caller who asks for many distinct keys and gives up at once leaves no
// query running behind it.
func TestCacheFillOfAnUnknownKeyEndsWithItsRequest(t *testing.T) {
	c := newTTLCache[int](time.Minute, 10, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	loadErr := make(chan error, 1)
	_, err := c.fill(ctx, "new", func(lctx context.Context) (int, error) {
		<-lctx.Done()
		loadErr <- lctx.Err()
		return 0, lctx.Err()
	})
	assert.Equal(t, conduit.CodeUnavailable, conduit.CodeOf(err))
	select {
	case err := <-loadErr:
		assert.ErrorIs(t, err, context.DeadlineExceeded, "the load ended with the request")
	case <-time.After(time.Second):
		t.Fatal("the load of an unknown key outlived its request")
	}
}

// At most maxDetachedFills loads run detached at once, across a store's
// caches; past that a stale key is read under its request's deadline.
func TestCacheDetachedFillsAreBounded(t *testing.T) {
	fills := make(chan struct{}, maxDetachedFills)
	a := newTTLCache[int](10*time.Millisecond, 100, fills)
	b := newTTLCache[int](10*time.Millisecond, 100, fills)
	keys := maxDetachedFills + 3
	for i := range keys {
		_, err := a.fill(context.Background(), fmt.Sprint(i), func(context.Context) (int, error) { return i, nil })
		require.NoError(t, err)
	}
	_, err := b.fill(context.Background(), "b", func(context.Context) (int, error) { return 0, nil })
	require.NoError(t, err)
	time.Sleep(20 * time.Millisecond) // all stale

	release := make(chan struct{})
	var detached, attached atomic.Int32
	var started sync.WaitGroup
	load := func(lctx context.Context) (int, error) {
		if _, ok := lctx.Deadline(); ok && time.Until(must(lctx.Deadline())) > time.Second {
			detached.Add(1)
		} else {
			attached.Add(1)
		}
		started.Done()
		select {
		case <-release:
		case <-lctx.Done():
		}
		return 1, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	var wg sync.WaitGroup
	started.Add(keys + 1)
	for i := range keys {
		wg.Add(1)
		go func() { defer wg.Done(); _, _ = a.fill(ctx, fmt.Sprint(i), load) }()
	}
	wg.Add(1)
	go func() { defer wg.Done(); _, _ = b.fill(ctx, "b", load) }()
	started.Wait()
	assert.Equal(t, int32(maxDetachedFills), detached.Load(), "detached fills, both caches together")
	assert.Equal(t, int32(keys+1-maxDetachedFills), attached.Load(), "the others ran under their requests")
	close(release)
	wg.Wait()
	require.Eventually(t, func() bool { return len(fills) == 0 }, time.Second, time.Millisecond, "every slot given back")
}

func must[T any](v T, _ bool) T { return v }

// A full cache lets its least recently used key go, one at a time: many
// distinct keys push out the oldest, never everyone's.
func TestCacheEvictsTheLeastRecentlyUsed(t *testing.T) {
	c := newTTLCache[int](time.Minute, 3, nil)
	loads := map[string]int{}
	get := func(k string) {
		_, err := c.fill(context.Background(), k, func(context.Context) (int, error) { loads[k]++; return 0, nil })
		require.NoError(t, err)
	}
	get("a")
	get("b")
	get("c")
	get("a") // a is now the most recently used
	get("d") // b goes
	get("a")
	get("c")
	get("d")
	assert.Equal(t, map[string]int{"a": 1, "b": 1, "c": 1, "d": 1}, loads, "a, c and d stayed")
	get("b")
	assert.Equal(t, 2, loads["b"], "b was the one evicted")
	for i := range 1000 { // a flood of distinct keys
		get(fmt.Sprint("flood", i))
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	assert.Equal(t, 3, c.len())
	assert.Len(t, c.m, 3)
}

// A cache with a byte budget lets its least recently used values go until
// what it holds fits, whatever their count.
func TestCacheKeepsToItsByteBudget(t *testing.T) {
	c := newTTLCache[string](time.Minute, 1000, nil).bounded(10_000, func(v string) int { return len(v) })
	for i := range 50 {
		v := strings.Repeat("x", 1000)
		_, err := c.fill(context.Background(), fmt.Sprint(i), func(context.Context) (string, error) { return v, nil })
		require.NoError(t, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	assert.LessOrEqual(t, c.bytes, 10_000)
	assert.Equal(t, 10, c.len(), "the newest ten")
	_, ok := c.m["49"]
	assert.True(t, ok)
	_, ok = c.m["39"]
	assert.False(t, ok)
}

// A burst of distinct keys, each asked for twice, churns the probation
// segment only: the keys everyone keeps asking for stay cached (issue #30
// item 3; helper-10 F2: asking twice used to protect any key).
func TestABurstOfDistinctKeysDoesNotPushOutWhatEveryoneAsksFor(t *testing.T) {
	c := newTTLCache[int](time.Minute, 100, nil)
	loads := map[string]int{}
	get := func(k string) {
		_, err := c.fill(context.Background(), k, func(context.Context) (int, error) { loads[k]++; return 0, nil })
		require.NoError(t, err)
	}
	popular := []string{"home", "tags", "feed-of-many"}
	for _, k := range popular {
		get(k)
		get(k) // asked for again: protected
	}
	for range 10 { // everyone keeps asking for them
		for _, k := range popular {
			get(k)
		}
	}
	for i := range 5000 { // 2,000 random tags, and more, each asked for twice
		get(fmt.Sprint("tag=", i))
		get(fmt.Sprint("tag=", i))
		if i%50 == 0 { // while everyone goes on browsing
			for _, k := range popular {
				get(k)
			}
		}
	}
	for _, k := range popular {
		get(k)
		assert.Equal(t, 1, loads[k], "%s was read once and is still cached", k)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	assert.LessOrEqual(t, c.len(), 100)
}

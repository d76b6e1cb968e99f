package store

import (
	"context"
	"sync"
	"time"

	"webstack/app/conduit"
)

// ttlCache keeps values read for nobody in particular for ttl: a read it
// answers is at most ttl older than the replica it came from, which lags
// anyway. There is nothing to invalidate and nothing shared to check, so
// instances need not know of each other's writes; the people who wrote
// read the primary (see Options.ReadYourWrites), never this.
type ttlCache[V any] struct {
	ttl      time.Duration
	max      int
	mu       sync.Mutex
	m        map[string]ttlEntry[V]
	inflight map[string]*flight[V]
}

type ttlEntry[V any] struct {
	at time.Time
	v  V
}

// flight is one fill under way; its waiters share its result.
type flight[V any] struct {
	done chan struct{}
	v    V
	err  error
}

// fillTimeout bounds a cache fill. It is longer than a request's database
// budget on purpose: a cold query that outlasts the request which started
// it still completes and is cached, so the requests after it are served,
// instead of every one of them starting the same query and timing out.
const fillTimeout = 30 * time.Second

func newTTLCache[V any](ttl time.Duration, max int) *ttlCache[V] {
	return &ttlCache[V]{ttl: ttl, max: max, m: map[string]ttlEntry[V]{}, inflight: map[string]*flight[V]{}}
}

// fill returns key's value: cached if read less than ttl ago, else from
// load, run once however many requests ask at the same time. load runs
// detached from ctx (bounded by fillTimeout) and its result is cached even
// when the request that started it has gone; a waiter whose ctx ends
// first gets ctx's error. With ttl <= 0 nothing is kept, but concurrent
// asks still share one load.
func (c *ttlCache[V]) fill(ctx context.Context, key string, load func(context.Context) (V, error)) (V, error) {
	c.mu.Lock()
	if e, ok := c.m[key]; ok && time.Since(e.at) < c.ttl {
		c.mu.Unlock()
		return e.v, nil
	}
	f, ok := c.inflight[key]
	if !ok {
		f = &flight[V]{done: make(chan struct{})}
		c.inflight[key] = f
		start := time.Now()
		go func() {
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), fillTimeout)
			defer cancel()
			f.v, f.err = load(fctx)
			c.mu.Lock()
			if f.err == nil && c.ttl > 0 {
				c.putLocked(key, start, f.v)
			}
			delete(c.inflight, key)
			c.mu.Unlock()
			close(f.done)
		}()
	}
	c.mu.Unlock()
	select {
	case <-f.done:
		return f.v, f.err
	case <-ctx.Done():
		var zero V
		return zero, conduit.Unavailable(ctx.Err())
	}
}

// putLocked keeps v as read at at (when its read started: a value is as old
// as the query that read it).
func (c *ttlCache[V]) putLocked(key string, at time.Time, v V) {
	if _, ok := c.m[key]; !ok && len(c.m) >= c.max {
		for k, e := range c.m { // expired entries go first
			if time.Since(e.at) >= c.ttl {
				delete(c.m, k)
			}
		}
		if len(c.m) >= c.max {
			clear(c.m)
		}
	}
	c.m[key] = ttlEntry[V]{at: at, v: v}
}

// caches are a store's, for reads that tolerate lag (see ttlCache).
type caches struct {
	articles *ttlCache[articleDoc]         // by slug
	lists    *ttlCache[listPage]           // by filter and page
	comments *ttlCache[[]commentDoc]       // by article id
	users    *ttlCache[userDoc]            // by id
	names    *ttlCache[userDoc]            // by usernameKey
	tags     *ttlCache[[]string]           // one key
	batches  *ttlCache[map[string]userDoc] // users read together, by their ids joined
}

type listPage struct {
	docs  []articleDoc
	total int
}

func newCaches(ttl time.Duration) caches {
	return caches{
		articles: newTTLCache[articleDoc](ttl, 20_000), lists: newTTLCache[listPage](ttl, 2_000),
		comments: newTTLCache[[]commentDoc](ttl, 5_000), users: newTTLCache[userDoc](ttl, 50_000),
		names: newTTLCache[userDoc](ttl, 50_000), tags: newTTLCache[[]string](ttl, 4),
		batches: newTTLCache[map[string]userDoc](ttl, 1_000),
	}
}

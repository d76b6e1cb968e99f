package store

import (
	"container/list"
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
//
// It holds at most max keys (and, bounded, maxBytes), in two segments (a
// segmented LRU): a new key enters on probation; a key asked for again is
// protected (at most protectedShare of the cache; when that is full, only
// past a key found less often: see touchLocked). The least recently used
// key on probation goes first, so a burst of distinct keys — a client
// asking for 2,000 random tags — churns probation only and never pushes
// out the keys everyone asks for. An expired entry stays until it goes: it
// says the key was asked for before (see fill).
type ttlCache[V any] struct {
	ttl      time.Duration
	max      int
	maxBytes int           // with size: the most bytes its values hold (0: no bound)
	size     func(V) int   // a value's bytes, about
	bytes    int           // held now
	fills    chan struct{} // detached fills under way, shared by a store's caches (see fill)
	mu       sync.Mutex
	m        map[string]*list.Element // of *ttlEntry[V]
	finds    int                      // since the hits were last halved
	lru      *list.List               // on probation, most recently used first
	hot      *list.List               // protected, most recently used first
	inflight map[string]*flight[V]
}

// protectedShare is the part of a cache's keys that may be protected.
const protectedShare = 0.8

type ttlEntry[V any] struct {
	key   string
	at    time.Time
	v     V
	bytes int
	hot   bool // in the protected segment
	hits  int  // times found lately (every entry's halved each agePeriod finds)
}

// flight is one fill under way; its waiters share its result.
type flight[V any] struct {
	done chan struct{}
	v    V
	err  error
}

// fillTimeout bounds a detached cache fill. It is longer than a request's
// database budget on purpose: a cold query of a key people keep asking for
// that outlasts the request which started it still completes and is
// cached, so the requests after it are served, instead of every one of
// them starting the same query and timing out.
const fillTimeout = 30 * time.Second

// maxDetachedFills is how many detached fills a store runs at a time,
// across its caches: past it, a fill runs under its request's deadline.
// Each holds at most one database connection for up to fillTimeout
// (see internal/stack's connection budget).
const maxDetachedFills = 8

func newTTLCache[V any](ttl time.Duration, max int, fills chan struct{}) *ttlCache[V] {
	if fills == nil {
		fills = make(chan struct{}, maxDetachedFills)
	}
	return &ttlCache[V]{ttl: ttl, max: max, fills: fills, m: map[string]*list.Element{}, lru: list.New(), hot: list.New(),
		inflight: map[string]*flight[V]{}}
}

// fill returns key's value: cached if read less than ttl ago, else from
// load, run once however many requests ask at the same time.
//
// A key that was cached before (its entry expired but still held) is
// loaded detached from ctx, bounded by fillTimeout, and its result is
// cached even when the request that started it has gone — while fewer
// than maxDetachedFills run. Any other load (a key nobody asked for
// lately, or all detached slots taken) runs under ctx: a caller who asks
// for many distinct keys, or gives up at once, leaves no work behind it.
// A waiter whose ctx ends first gets ctx's error. With ttl <= 0 nothing
// is kept, but concurrent asks still share one load.
func (c *ttlCache[V]) fill(ctx context.Context, key string, load func(context.Context) (V, error)) (V, error) {
	c.mu.Lock()
	if v, ok := c.getLocked(key); ok {
		c.mu.Unlock()
		return v, nil
	}
	_, known := c.m[key]
	f, ok := c.inflight[key]
	if !ok {
		f = &flight[V]{done: make(chan struct{})}
		c.inflight[key] = f
		start := time.Now()
		lctx, cancel := ctx, context.CancelFunc(func() {})
		detached := false
		if known {
			select {
			case c.fills <- struct{}{}:
				detached = true
				lctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), fillTimeout)
			default:
			}
		}
		go func() {
			defer cancel()
			f.v, f.err = load(lctx)
			if detached {
				<-c.fills
			}
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

// getLocked is key's value if it was read less than ttl ago; a key found
// again may be protected (touchLocked).
func (c *ttlCache[V]) getLocked(key string) (V, bool) {
	if el, ok := c.m[key]; ok {
		if e := el.Value.(*ttlEntry[V]); time.Since(e.at) < c.ttl {
			e.hits++
			if c.finds++; c.finds >= agePeriod*c.max {
				c.ageLocked()
			}
			c.touchLocked(el)
			return e.v, true
		}
	}
	var zero V
	return zero, false
}

// touchLocked moves a key found again to the front of its segment, and
// one on probation into the protected segment while it has room — when it
// is full, only past the protected key it would push out if it was found
// more often lately (every key's count is halved each agePeriod × max
// finds, so a key that was popular once does not stay for ever). A caller
// asking for each of many keys twice cannot push out the keys everyone
// keeps asking for.
func (c *ttlCache[V]) touchLocked(el *list.Element) {
	e := el.Value.(*ttlEntry[V])
	if e.hot {
		c.hot.MoveToFront(el)
		return
	}
	limit := max(1, int(float64(c.max)*protectedShare))
	if c.hot.Len() >= limit {
		victim := c.hot.Back().Value.(*ttlEntry[V])
		if e.hits <= victim.hits {
			c.lru.MoveToFront(el)
			return
		}
		back := c.hot.Back()
		c.hot.Remove(back)
		victim.hot = false
		c.m[victim.key] = c.lru.PushFront(victim)
	}
	c.lru.Remove(el)
	e.hot = true
	c.m[e.key] = c.hot.PushFront(e)
}

// agePeriod is how many finds per key of the cache's size pass between
// two halvings of every key's count.
const agePeriod = 10

// ageLocked halves every key's count of finds.
func (c *ttlCache[V]) ageLocked() {
	c.finds = 0
	for _, el := range c.m {
		el.Value.(*ttlEntry[V]).hits /= 2
	}
}

// putLocked keeps v as read at at (when its read started: a value is as old
// as the query that read it): a new key on probation, a known one where it
// is; then the least recently used go, probation first, while the cache
// is over its keys or its bytes.
func (c *ttlCache[V]) putLocked(key string, at time.Time, v V) {
	n := 0
	if c.size != nil {
		n = c.size(v)
	}
	if el, ok := c.m[key]; ok {
		e := el.Value.(*ttlEntry[V])
		c.bytes += n - e.bytes
		e.at, e.v, e.bytes = at, v, n
		if e.hot {
			c.hot.MoveToFront(el)
		} else {
			c.lru.MoveToFront(el)
		}
	} else {
		c.m[key] = c.lru.PushFront(&ttlEntry[V]{key: key, at: at, v: v, bytes: n})
		c.bytes += n
	}
	for c.len() > 1 && (c.len() > c.max || c.maxBytes > 0 && c.bytes > c.maxBytes) {
		seg := c.lru
		if seg.Len() == 0 {
			seg = c.hot
		}
		last := seg.Back()
		seg.Remove(last)
		e := last.Value.(*ttlEntry[V])
		delete(c.m, e.key)
		c.bytes -= e.bytes
	}
}

// len is how many keys c holds.
func (c *ttlCache[V]) len() int { return c.lru.Len() + c.hot.Len() }

// bounded gives c a budget of maxBytes, each value's bytes as size says.
func (c *ttlCache[V]) bounded(maxBytes int, size func(V) int) *ttlCache[V] {
	c.maxBytes, c.size = maxBytes, size
	return c
}

// caches are a store's, for reads that tolerate lag (see ttlCache).
type caches struct {
	articles *ttlCache[articleDoc]         // by slug
	lists    *ttlCache[[]articleDoc]       // by filter and page
	counts   *ttlCache[int]                // by filter: a list's count, whatever the page
	comments *ttlCache[commentPage]        // by article id and page
	users    *ttlCache[userDoc]            // by id
	names    *ttlCache[userDoc]            // by usernameKey
	tags     *ttlCache[[]tagUse]           // one key
	batches  *ttlCache[map[string]userDoc] // users read together, by their ids joined
}

func newCaches(ttl time.Duration) caches {
	fills := make(chan struct{}, maxDetachedFills)
	return caches{
		articles: newTTLCache[articleDoc](ttl, 20_000, fills).bounded(cacheBytes, articleBytes),
		lists: newTTLCache[[]articleDoc](ttl, 2_000, fills).bounded(cacheBytes, func(docs []articleDoc) int {
			n := 0
			for _, d := range docs {
				n += articleBytes(d)
			}
			return n
		}),
		counts: newTTLCache[int](ttl, 2_000, fills),
		comments: newTTLCache[commentPage](ttl, 5_000, fills).bounded(cacheBytes, func(p commentPage) int {
			n := 0
			for _, d := range p.docs {
				n += 200 + len(d.Body)
			}
			return n
		}),
		users: newTTLCache[userDoc](ttl, 50_000, fills), names: newTTLCache[userDoc](ttl, 50_000, fills),
		tags: newTTLCache[[]tagUse](ttl, 4, fills), batches: newTTLCache[map[string]userDoc](ttl, 1_000, fills),
	}
}

// cacheBytes is the most the caches of articles, lists and comments each
// hold: a thread page is up to 100 comments of 16 Ki characters, an
// article up to 64 KiB of body, so their counts alone would let them grow
// to gigabytes.
const cacheBytes = 64 << 20

// articleBytes is about what an article holds.
func articleBytes(d articleDoc) int {
	n := 300 + len(d.Slug) + len(d.Title) + len(d.Description) + len(d.Body)
	for _, t := range d.TagList {
		n += len(t) + 16
	}
	return n
}

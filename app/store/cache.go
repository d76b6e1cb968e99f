package store

import (
	"context"
	"fmt"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"webstack/app/conduit"
)

// gens are the data generations, in one small document (meta "gens") that
// every write which changes what readers see increments after it writes:
//
//	articles  the lists and the tags (an article written, deleted, renamed,
//	          favorited)
//	users     a user: profile, credentials, follows, favorites
//
// Every request reads them once, by _id from the primary: the cheapest
// query any engine has, whatever the data size. Whatever a process cached
// is used only while the generation it was read at is still current, so
// every api instance sees every other's completed writes at once, and a
// requester always sees their own. Count is the number of articles.
type gens struct {
	Articles int64 `bson:"articles"`
	Users    int64 `bson:"users"`
	Count    int   `bson:"count"`
}

type gensKey struct{}

// gensMemo holds a request's generations once read: as the primary says
// them, and as the lag-tolerant handle does (a replica's generations match
// a replica's data, so what is read there is cached under them and
// refreshed when the replica catches up).
type gensMemo struct {
	mu     sync.Mutex
	byRead [2]*gens // [fresh]
}

// WithRequest marks ctx as one request: the generations are read once for
// all of its store calls.
func (s *Store) WithRequest(ctx context.Context) context.Context {
	return context.WithValue(ctx, gensKey{}, &gensMemo{})
}

// gens returns the primary's generations (one read per request).
func (s *Store) gens(ctx context.Context) (gens, error) { return s.gensOf(ctx, true) }

// gensOf returns the generations as the primary says them (fresh), or
// as the lag-tolerant handle did at most Options.LagTolerance ago: reads
// for nobody in particular accept the lag a replica has anyway, and then
// cost no database call while the caches hold.
func (s *Store) gensOf(ctx context.Context, fresh bool) (gens, error) {
	if !fresh && s.opts.LagTolerance > 0 {
		s.lag.mu.Lock()
		g, at := s.lag.g, s.lag.at
		s.lag.mu.Unlock()
		if time.Since(at) < s.opts.LagTolerance {
			return g, nil
		}
	}
	i := 0
	if fresh {
		i = 1
	}
	memo, _ := ctx.Value(gensKey{}).(*gensMemo)
	if memo != nil {
		memo.mu.Lock()
		defer memo.mu.Unlock()
		if g := memo.byRead[i]; g != nil {
			return *g, nil
		}
	}
	var g gens
	err := s.findOne(ctx, s.listColl("meta", fresh), "meta.find", "gens", &g)
	if errNotFound(err) {
		err = nil
	}
	if err != nil {
		return gens{}, err
	}
	if memo != nil {
		memo.byRead[i] = &g
	}
	if !fresh {
		s.lag.mu.Lock()
		s.lag.g, s.lag.at = g, time.Now()
		s.lag.mu.Unlock()
	}
	return g, nil
}

// lagGens are the generations lag-tolerant reads were last checked
// against, and when they were read.
type lagGens struct {
	mu sync.Mutex
	g  gens
	at time.Time
}

// bump moves generations on after a write; count moves the article count.
func (s *Store) bump(ctx context.Context, articles, users bool, count int) error {
	defer s.observe("meta.bump", time.Now())
	inc := bson.D{}
	for _, f := range []struct {
		on   bool
		name string
	}{{articles, "articles"}, {users, "users"}} {
		if f.on {
			inc = append(inc, bson.E{Key: f.name, Value: int64(1)})
		}
	}
	if count != 0 {
		inc = append(inc, bson.E{Key: "count", Value: count})
	}
	_, err := s.coll("meta").UpdateOne(context.WithoutCancel(ctx), bson.D{{Key: "_id", Value: "gens"}},
		bson.D{{Key: "$inc", Value: inc}}, optsUpsert)
	if memo, _ := ctx.Value(gensKey{}).(*gensMemo); memo != nil {
		memo.mu.Lock()
		memo.byRead = [2]*gens{} // the rest of this request reads them again
		memo.mu.Unlock()
	}
	return s.wrap("bump generations", err)
}

// genCache is a bounded map of values each read at a generation; a value
// is returned only for the generation asked for. fresh and lag-tolerant
// reads are cached apart (their keys differ), so a signed-in viewer never
// gets what a lagging replica answered.
type genCache[V any] struct {
	max      int
	mu       sync.Mutex
	m        map[string]genEntry[V]
	inflight map[string]*flight[V]
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

type genEntry[V any] struct {
	gen int64
	v   V
}

func newGenCache[V any](max int) *genCache[V] {
	return &genCache[V]{max: max, m: map[string]genEntry[V]{}, inflight: map[string]*flight[V]{}}
}

// fill returns the value for key at gen: from the cache, else from load,
// run once however many requests ask at the same time. load runs detached
// from ctx (bounded by fillTimeout) and its result is cached even when the
// request that started it has gone; a waiter whose ctx ends first gets
// ctx's error.
func (c *genCache[V]) fill(ctx context.Context, key string, gen int64, load func(context.Context) (V, error)) (V, error) {
	if v, ok := c.get(key, gen); ok {
		return v, nil
	}
	id := fmt.Sprintf("%s@%d", key, gen)
	c.mu.Lock()
	f, ok := c.inflight[id]
	if !ok {
		f = &flight[V]{done: make(chan struct{})}
		c.inflight[id] = f
		go func() {
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), fillTimeout)
			defer cancel()
			f.v, f.err = load(fctx)
			if f.err == nil {
				c.put(key, gen, f.v)
			}
			c.mu.Lock()
			delete(c.inflight, id)
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

// get returns the value of key read at gen or later: what was read at a
// later generation shows every write up to gen too.
func (c *genCache[V]) get(key string, gen int64) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[key]
	if !ok || e.gen < gen {
		var zero V
		return zero, false
	}
	return e.v, true
}

// put keeps v as key's value read at gen, unless what is there was read
// later.
func (c *genCache[V]) put(key string, gen int64, v V) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[key]
	if ok && e.gen > gen {
		return
	}
	if !ok && len(c.m) >= c.max {
		for k, e := range c.m { // what an older generation left goes first
			if e.gen < gen {
				delete(c.m, k)
			}
		}
		if len(c.m) >= c.max {
			c.m = map[string]genEntry[V]{}
		}
	}
	c.m[key] = genEntry[V]{gen: gen, v: v}
}

// caches are a store's: users by id (and their keys), list pages, tags and
// article ids by slug. Articles and threads are not cached: each is one
// read by _id.
type caches struct {
	users *genCache[conduit.User]
	keys  *genCache[string] // "usernames:<key>" / "emails:<key>" → user id
	lists *genCache[listPage]
	tags  *genCache[[]string]
	slugs *genCache[string] // "<fresh>|<slug>" → article id
	// batches are users read together (ids joined): what lets requests
	// that miss the same users at once share one query.
	batches *genCache[[]conduit.User]
}

type listPage struct {
	docs  []articleDoc
	total int
}

func newCaches() caches {
	return caches{
		users: newGenCache[conduit.User](50_000), keys: newGenCache[string](100_000),
		lists: newGenCache[listPage](1_000), tags: newGenCache[[]string](2), slugs: newGenCache[string](100_000),
		batches: newGenCache[[]conduit.User](256),
	}
}

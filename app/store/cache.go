package store

import (
	"sync"
	"time"

	"webstack/app/conduit"
)

// profileCache keeps users by id for a short time: authors shown beside
// articles and comments, and a requester's own user on write paths.
//
// Invalidation: a change made through this process replaces or drops the
// entry at once; a change made through another api instance is seen when
// the entry expires (ttl). So an author's new bio may show up to ttl late on
// other instances, and a password change stops old tokens on other
// instances' write paths up to ttl late. Nothing that needs a viewer's own
// latest state reads it from here: the requests that flag articles and
// authors read the viewer's user document from the primary.
type profileCache struct {
	ttl time.Duration
	mu  sync.Mutex
	m   map[string]profileEntry
}

type profileEntry struct {
	u    conduit.User
	full bool // the whole user document, not just the profile fields
	at   time.Time
}

func newProfileCache(ttl time.Duration) *profileCache {
	return &profileCache{ttl: ttl, m: map[string]profileEntry{}}
}

// get returns a fresh entry; with full, only a whole user document.
func (c *profileCache) get(id string, full bool) (conduit.User, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[id]
	if !ok || time.Since(e.at) > c.ttl || full && !e.full {
		return conduit.User{}, false
	}
	return e.u, true
}

func (c *profileCache) put(u conduit.User, full bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) > 100_000 {
		c.m = map[string]profileEntry{}
	}
	c.m[u.ID] = profileEntry{u: u, full: full, at: time.Now()}
}

func (c *profileCache) drop(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, id)
}

// listCache keeps the results of list queries (pages of article summaries
// and their total, and the tag list), each stamped with the generation of
// the articles (meta.gen) it was read at. An entry is used only while the
// database still says that generation, which every write that changes a
// list moves on: so a cached list is never older than the last completed
// write, on any instance.
type listCache struct {
	max int
	mu  sync.Mutex
	m   map[string]listEntry
}

type listEntry struct {
	gen   int64
	docs  []articleDoc
	total int
	tags  []string
}

func newListCache(max int) *listCache { return &listCache{max: max, m: map[string]listEntry{}} }

func (c *listCache) get(key string, gen int64) (listEntry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[key]
	return e, ok && e.gen == gen
}

func (c *listCache) put(key string, e listEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= c.max {
		for k, old := range c.m { // drop what an older generation left
			if old.gen < e.gen {
				delete(c.m, k)
			}
		}
		if len(c.m) >= c.max {
			c.m = map[string]listEntry{}
		}
	}
	c.m[key] = e
}

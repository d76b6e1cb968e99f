package store

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"

	"webstack/app/conduit"
	"webstack/app/localdb"
	"webstack/app/store/storetest"
	"webstack/internal/mongowire"
)

// shape is a query as the index planner sees it: the collection, which
// fields the filter compares by equality ($in counts), by range, or
// otherwise, and the sort.
type shape struct {
	coll     string
	eq, rng  []string
	residual []string
	sort     bson.D
}

func (s shape) String() string {
	var parts []string
	for _, f := range s.eq {
		parts = append(parts, f+"=")
	}
	for _, f := range s.rng {
		parts = append(parts, f+"<>")
	}
	for _, f := range s.residual {
		parts = append(parts, f+"?")
	}
	out := s.coll + " {" + strings.Join(parts, ", ") + "}"
	if len(s.sort) > 0 {
		var keys []string
		for _, k := range s.sort {
			keys = append(keys, fmt.Sprintf("%s:%v", k.Key, k.Value))
		}
		out += " sort {" + strings.Join(keys, ", ") + "}"
	}
	return out
}

// shapeOf reads the filter and sort of a command that reads or writes by
// a query (find, a countDocuments aggregate, update, delete,
// findAndModify); ok is false for others.
func shapeOf(cmd bson.Raw) ([]shape, bool) {
	name := mongowire.Command(cmd)
	coll, _ := cmd.Lookup(name).StringValueOK()
	var filters []bson.Raw
	var sortDoc bson.Raw
	switch name {
	case "find":
		filters = append(filters, cmd.Lookup("filter").Document())
		sortDoc, _ = cmd.Lookup("sort").DocumentOK()
	case "findAndModify":
		filters = append(filters, cmd.Lookup("query").Document())
		sortDoc, _ = cmd.Lookup("sort").DocumentOK()
	case "aggregate":
		stages, _ := cmd.Lookup("pipeline").Array().Values()
		if len(stages) == 0 {
			return nil, false
		}
		m, ok := stages[0].Document().Lookup("$match").DocumentOK()
		if !ok {
			return nil, false
		}
		filters = append(filters, m)
	case "update", "delete":
		// The statements are in the body or in a document sequence; the
		// driver sends one statement per command here, in the body when
		// it is small: both are read by the caller (see observe).
		key := map[string]string{"update": "updates", "delete": "deletes"}[name]
		arr, ok := cmd.Lookup(key).ArrayOK()
		if !ok {
			return nil, false
		}
		vals, _ := arr.Values()
		for _, v := range vals {
			filters = append(filters, v.Document().Lookup("q").Document())
		}
	default:
		return nil, false
	}
	var out []shape
	for _, f := range filters {
		s := shape{coll: coll}
		els, _ := f.Elements()
		for _, e := range els {
			switch op := operator(e.Value()); op {
			case "", "$eq", "$in":
				s.eq = append(s.eq, e.Key())
			case "$gt", "$gte", "$lt", "$lte":
				s.rng = append(s.rng, e.Key())
			default:
				s.residual = append(s.residual, e.Key())
			}
		}
		if sortDoc != nil {
			_ = bson.Unmarshal(sortDoc, &s.sort)
		}
		out = append(out, s)
	}
	return out, true
}

// operator is the query operator of a filter value ("" for a plain value).
func operator(v bson.RawValue) string {
	d, ok := v.DocumentOK()
	if !ok {
		return ""
	}
	els, err := d.Elements()
	if err != nil || len(els) == 0 || !strings.HasPrefix(els[0].Key(), "$") {
		return ""
	}
	if len(els) > 1 {
		return "$multi"
	}
	return els[0].Key()
}

// servedBy names the index that serves s, as MongoDB's and DocumentDB's
// planners choose one: the filter's equality fields lead the index (in any
// order), a range field follows them, and the sort is the keys after the
// equalities (all in the index's direction, or all reversed); fields past
// an index-served prefix are filtered on the documents the index found.
// "" when none does.
func servedBy(s shape, ixs []index) string {
	if slices.Contains(s.eq, "_id") {
		return "_id_" // a lookup (or a few) by _id: any sort is of those few
	}
	if len(s.eq) == 0 && len(s.rng) == 0 && len(s.sort) == 0 {
		if len(s.residual) == 0 {
			return "_id_ (count of every document)"
		}
		return ""
	}
	for _, ix := range ixs {
		if ix.coll != s.coll {
			continue
		}
		keys := ix.keys
		i := 0
		for i < len(keys) && slices.Contains(s.eq, keys[i].Key) {
			i++
		}
		usedEq := i
		if len(s.eq) > 0 && usedEq == 0 {
			continue // walking it would read documents the filter drops
		}
		if i < len(keys) && slices.Contains(s.rng, keys[i].Key) && len(s.sort) == 0 {
			i++
		}
		if i == 0 && len(s.sort) == 0 {
			continue // the index does not start with anything the query has
		}
		if len(s.sort) > 0 && !sortMatches(keys[usedEq:], s.sort) {
			continue
		}
		return ix.coll + "." + ix.name
	}
	return ""
}

// sortMatches reports whether keys begin with sort, all in the same
// direction or all reversed.
func sortMatches(keys, sort bson.D) bool {
	if len(keys) < len(sort) {
		return false
	}
	same, reversed := true, true
	for i, k := range sort {
		if keys[i].Key != k.Key {
			return false
		}
		a, _ := direction(keys[i].Value)
		b, _ := direction(k.Value)
		same = same && a == b
		reversed = reversed && a == -b
	}
	return same || reversed
}

// Every query the store sends — every find, count, update, delete and
// findAndModify, as seen on the wire while every store operation runs —
// is served by an index Migrate makes. A query that would scan a
// collection or sort it in memory fails this test; the list it logs is
// the index-per-query table of docs/benchmarks.md.
func TestEveryQueryIsServedByAnIndex(t *testing.T) {
	ctx := context.Background()
	db, err := localdb.Start(ctx, "127.0.0.1:0", t.TempDir(), nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Stop(context.Background()) })
	proxy, err := storetest.NewFaultProxy(strings.TrimSuffix(strings.TrimPrefix(db.URI, "mongodb://"), "/"), 1)
	require.NoError(t, err)
	t.Cleanup(func() { _ = proxy.Close() })
	var mu sync.Mutex
	seen := map[string]shape{}
	proxy.Observe = func(cmd bson.Raw) {
		shapes, ok := shapeOf(cmd)
		if !ok {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		for _, s := range shapes {
			if s.coll == "meta" {
				continue // Migrate's own bookkeeping, by _id
			}
			seen[s.String()] = s
		}
	}
	uri := "mongodb://" + proxy.Addr + "/"
	st, err := Open(ctx, "conduit", func(context.Context, string) (string, error) { return uri, nil },
		Options{IntentGrace: time.Millisecond, LagTolerance: -1})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close(context.Background()) })
	require.NoError(t, st.Migrate(ctx))
	exerciseEveryOperation(t, st)

	var lines []string
	for desc, s := range seen {
		by := servedBy(s, indexes())
		assert.NotEmpty(t, by, "no index serves %s", desc)
		lines = append(lines, fmt.Sprintf("%-70s %s", desc, by))
	}
	sort.Strings(lines)
	t.Logf("queries and the indexes that serve them:\n%s", strings.Join(lines, "\n"))
	assert.GreaterOrEqual(t, len(seen), 20, "the exercise reached every kind of query")
}

// exerciseEveryOperation calls every store operation, as fresh viewers
// and anonymously, with every list filter.
func exerciseEveryOperation(t *testing.T, st *Store) {
	ctx := context.Background()
	alice := &conduit.User{Username: "Alice", Email: "alice@example.com", PasswordHash: "x"}
	bob := &conduit.User{Username: "bob", Email: "bob@example.com", PasswordHash: "x"}
	require.NoError(t, st.CreateUser(ctx, alice))
	require.NoError(t, st.CreateUser(ctx, bob))
	assert.Equal(t, conduit.CodeConflict, conduit.CodeOf(st.CreateUser(ctx, &conduit.User{Username: "ALICE", Email: "x@example.com"})))
	_, err := st.UserByEmail(ctx, "ALICE@example.com")
	require.NoError(t, err)
	now := time.Now().UTC()
	a := &conduit.Article{Slug: "a", Title: "A", Description: "d", Body: "b", TagList: []string{"go"}, AuthorID: bob.ID, CreatedAt: now, UpdatedAt: now}
	require.NoError(t, st.CreateArticle(ctx, a))
	b := &conduit.Article{Slug: "b", Title: "B", Description: "d", Body: "b", TagList: []string{"go", "aws"}, AuthorID: alice.ID, CreatedAt: now, UpdatedAt: now}
	require.NoError(t, st.CreateArticle(ctx, b))
	require.NoError(t, st.Follow(ctx, alice.ID, bob.ID))
	require.NoError(t, st.Favorite(ctx, alice.ID, a))
	c := &conduit.Comment{AuthorID: alice.ID, Body: "hi", CreatedAt: now, UpdatedAt: now}
	require.NoError(t, st.AddComment(ctx, a.ID, c))
	for _, viewer := range []*conduit.User{nil, alice} {
		for _, f := range []conduit.ArticleFilter{{}, {Tag: "go"}, {Author: "bob"}, {Favorited: "alice"}, {Favorited: "alice", Tag: "go"}, {Tag: "go", Author: "bob"}} {
			f.Limit = 20
			_, _, err := st.ListArticles(ctx, viewer, f)
			require.NoError(t, err)
		}
		_, err := st.ArticleBySlug(ctx, viewer, "a")
		require.NoError(t, err)
		_, _, err = st.Comments(ctx, viewer, "a", conduit.CommentPage{Limit: conduit.MaxLimit})
		require.NoError(t, err)
		_, err = st.Tags(ctx, viewer)
		require.NoError(t, err)
		u, err := st.UserByUsername(ctx, viewer, "BOB")
		require.NoError(t, err)
		_, err = st.Profile(ctx, viewer, u)
		require.NoError(t, err)
	}
	_, _, err = st.Feed(ctx, alice, 20, 0)
	require.NoError(t, err)
	fresh := &conduit.User{ID: alice.ID, LastWrite: time.Now()}
	_, _, err = st.Comments(ctx, fresh, "a", conduit.CommentPage{Limit: 1, After: &conduit.CommentCursor{At: now, ID: 1}})
	require.NoError(t, err)
	_, err = st.Tags(ctx, fresh)
	require.NoError(t, err)
	got, err := st.Comment(ctx, "a", c.ID)
	require.NoError(t, err)
	require.NoError(t, st.DeleteComment(ctx, "a", got.ID))
	require.NoError(t, st.Unfavorite(ctx, alice.ID, a))
	require.NoError(t, st.Unfollow(ctx, alice.ID, bob.ID))
	renamed := *alice
	renamed.Username, renamed.Email, renamed.PasswordHash, renamed.Cred = "alicia", "alicia@example.com", "y", 1
	require.NoError(t, st.UpdateUser(ctx, alice, &renamed))
	require.NoError(t, st.Wrote(ctx, &conduit.User{ID: bob.ID}))
	a.Slug, a.Title = "a2", "A2"
	require.NoError(t, st.UpdateArticle(ctx, a))
	require.NoError(t, st.DeleteArticle(ctx, b))
	_, err = st.begin(ctx, intentDoc{Kind: intentRecountFavorites, AID: a.ID})
	require.NoError(t, err)
	time.Sleep(5 * time.Millisecond)
	_, err = st.Repair(ctx)
	require.NoError(t, err)
	sess := &conduit.Session{ID: "s1", UserID: alice.ID, Seen: now, Expires: now.Add(time.Hour)}
	require.NoError(t, st.StartSession(ctx, sess))
	_, err = st.Session(ctx, "s1")
	require.NoError(t, err)
	require.NoError(t, st.TouchSession(ctx, "s1", now))
	require.NoError(t, st.EndSession(ctx, "s1"))
	_, err = st.SweepSessions(ctx, now)
	require.NoError(t, err)
	_, _, err = st.Take(ctx, "articles/"+alice.ID, 10, time.Hour, now)
	require.NoError(t, err)
	_, err = st.SweepQuotas(ctx, now)
	require.NoError(t, err)
}

package store

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"

	"webstack/app/conduit"
)

// wire is what one request sent to the database: its commands by name
// and their bytes, both ways.
type wire struct {
	commands       map[string]int
	sent, received int
}

// measure runs f and returns the database work it did.
func measure(t *testing.T, st *Store, f func() error) wire {
	t.Helper()
	var mu sync.Mutex
	w := wire{commands: map[string]int{}}
	st.OnWire = func(name string, sent, received int) {
		mu.Lock()
		defer mu.Unlock()
		if sent > 0 {
			w.commands[name]++
		}
		w.sent += sent
		w.received += received
	}
	defer func() { st.OnWire = nil }()
	require.NoError(t, f())
	mu.Lock()
	defer mu.Unlock()
	return w
}

// scaleFixture is a store holding an article with n comments and a person
// with n favorites (their newest 30 of articles that exist, the others of
// articles deleted since: the favorites' own index is what a list walks).
func scaleFixture(t *testing.T, n int) (st *Store, art *conduit.Article, fan *conduit.User) {
	t.Helper()
	ctx := context.Background()
	st, _, bob, art := fixture(t, Options{LagTolerance: -1})
	fan = &conduit.User{Username: "fan", Email: "fan@example.com", PasswordHash: "x"}
	require.NoError(t, st.CreateUser(ctx, fan))
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	seedComments(t, st, art, bob.ID, n, base, 0)
	db := st.cur.Load().db
	for i := 0; i < n; i += 1000 {
		favs := make([]any, 0, 1000)
		for j := i; j < min(n, i+1000); j++ {
			aid := fmt.Sprintf("%024x", j+1)
			created := base.Add(time.Duration(j) * time.Minute)
			if j >= n-30 {
				a := &conduit.Article{Slug: fmt.Sprintf("fav-%d", n-j), Title: "t", Description: "d", Body: "b", TagList: []string{"go"},
					AuthorID: bob.ID, CreatedAt: created, UpdatedAt: created}
				require.NoError(t, st.CreateArticle(ctx, a))
				aid = a.ID
			}
			favs = append(favs, bson.D{{Key: "_id", Value: pair(fan.ID, aid)}, {Key: "ver", Value: int64(1)}, {Key: "uid", Value: fan.ID},
				{Key: "aid", Value: aid}, {Key: "articleCreatedAt", Value: created}})
		}
		_, err := db.Collection("favorites").InsertMany(ctx, favs)
		require.NoError(t, err)
	}
	return st, art, fan
}

// Every request's database work has a fixed bound, whatever the data's
// size: at 100 comments on one article and 100 favorites by one person,
// and at 100,000 of each (SCALE_N sets another), each request sends the
// same commands with the same bytes — from 100, or from the bound of the
// one scan a request makes (favorited= with a tag: the person's newest
// 1,000 favorites) — and a deletion takes one batch of each sweep. About
// 8 s of it is seeding 100,000 of each; it runs beside the others.
func TestRequestWorkDoesNotGrowWithTheData(t *testing.T) {
	t.Parallel()
	big := 100_000
	if v := os.Getenv("SCALE_N"); v != "" {
		var err error
		big, err = strconv.Atoi(v)
		require.NoError(t, err)
	}
	ctx := context.Background()
	type request struct {
		name string
		// from is the size from which the work stays the same: 100, or
		// the bound of a scan the request makes (it grows up to there).
		from int
		run  func(st *Store, art *conduit.Article, fan *conduit.User) error
	}
	requests := []request{
		{"GET comments (first page)", 100, func(st *Store, art *conduit.Article, _ *conduit.User) error {
			_, _, err := st.Comments(ctx, nil, art.Slug, conduit.CommentPage{Limit: 20})
			return err
		}},
		{"GET comments (a page after a cursor)", 100, func(st *Store, art *conduit.Article, _ *conduit.User) error {
			first, next, err := st.Comments(ctx, nil, art.Slug, conduit.CommentPage{Limit: 10})
			if err != nil || next == nil || len(first) != 10 {
				return fmt.Errorf("first page: %d comments, next %v, %v", len(first), next, err)
			}
			_, _, err = st.Comments(ctx, nil, art.Slug, conduit.CommentPage{Limit: 20, After: next})
			return err
		}},
		{"GET articles?favorited=", 100, func(st *Store, _ *conduit.Article, fan *conduit.User) error {
			_, _, err := st.ListArticles(ctx, nil, conduit.ArticleFilter{Favorited: fan.Username, Limit: 10, Offset: 5})
			return err
		}},
		{"GET articles?favorited=&tag=", conduit.MaxFavoritedScan, func(st *Store, _ *conduit.Article, fan *conduit.User) error {
			_, _, err := st.ListArticles(ctx, nil, conduit.ArticleFilter{Favorited: fan.Username, Tag: "go", Limit: 10})
			return err
		}},
		{"POST comment", 100, func(st *Store, art *conduit.Article, fan *conduit.User) error {
			c := &conduit.Comment{AuthorID: fan.ID, Body: "one more", CreatedAt: time.Now().UTC(), UpdatedAt: time.Now().UTC()}
			return st.AddComment(ctx, art.ID, c)
		}},
		{"favorite (a person with many favorites)", 100, func(st *Store, art *conduit.Article, fan *conduit.User) error {
			return st.Favorite(ctx, fan.ID, art)
		}},
	}
	type result struct {
		work  []wire
		sweep wire
	}
	run := func(n int) result {
		start := time.Now()
		st, art, fan := scaleFixture(t, n)
		t.Logf("seeded %d comments and %d favorites in %s", n, n, time.Since(start).Round(time.Millisecond))
		var r result
		for _, q := range requests {
			r.work = append(r.work, measure(t, st, func() error { return q.run(st, art, fan) }))
		}
		r.sweep = measure(t, st, func() error { return st.DeleteArticle(ctx, art) })
		return r
	}
	at := map[int]result{100: run(100), conduit.MaxFavoritedScan: run(conduit.MaxFavoritedScan), big: run(big)}
	large := at[big]
	for i, q := range requests {
		base := at[q.from].work[i]
		assert.Equal(t, base.commands, large.work[i].commands, "%s: the same commands at %d as at %d", q.name, big, q.from)
		assert.Equal(t, base.sent, large.work[i].sent, "%s: the same bytes sent", q.name)
		assert.Equal(t, base.received, large.work[i].received, "%s: the same bytes received", q.name)
		assert.NotContains(t, large.work[i].commands, "getMore", "%s: no cursor is left open", q.name)
		t.Logf("%-42s from %6d: %v, %d bytes sent, %d received", q.name, q.from, large.work[i].commands, large.work[i].sent, large.work[i].received)
	}
	// A deletion takes one batch of each sweep, and leaves the rest to
	// Repair: never more work than the small one did.
	small := at[100].sweep
	for name, n := range large.sweep.commands {
		assert.LessOrEqual(t, n, small.commands[name], "DELETE article: %s commands at %d", name, big)
	}
	assert.Less(t, large.sweep.received, 128<<10, "DELETE article: one batch of each sweep")
	assert.Less(t, large.sweep.sent, 128<<10)
	t.Logf("%-42s %v, %d bytes sent, %d received", "DELETE article", large.sweep.commands, large.sweep.sent, large.sweep.received)
}

package store

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"webstack/app/conduit"
	"webstack/app/localdb"
)

// laggingStore is a store whose lag-tolerant reads go to a replica that
// never catches up: a database the writes never reach.
func laggingStore(t *testing.T) *Store {
	t.Helper()
	ctx := context.Background()
	db, err := localdb.Start(ctx, "127.0.0.1:0", t.TempDir(), nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Stop(context.Background()) })
	st, err := Connect(ctx, db.URI, "conduit")
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close(context.Background()) })
	c := st.cur.Load()
	c.reads, c.single = c.client.Database("replica-that-lags"), false
	return st
}

// A person who publishes, favorites, follows or comments sees it on their
// next request, whichever api instance serves it: their reads go to the
// primary. Anonymous lists may lag (here: forever).
func TestReadersSeeTheirOwnWritesWhenReplicasLag(t *testing.T) {
	st := laggingStore(t)
	req := func() context.Context { return st.WithRequest(context.Background()) }
	alice := &conduit.User{Username: "alice", Email: "alice@example.com", PasswordHash: "x"}
	bob := &conduit.User{Username: "bob", Email: "bob@example.com", PasswordHash: "x"}
	require.NoError(t, st.CreateUser(req(), alice))
	require.NoError(t, st.CreateUser(req(), bob))
	now := time.Now().UTC()
	art := &conduit.Article{Slug: "bobs-post", Title: "Bob's post", Description: "d", Body: "b", TagList: []string{"t"}, AuthorID: bob.ID, CreatedAt: now, UpdatedAt: now}
	require.NoError(t, st.CreateArticle(req(), art))

	viewer := func(u *conduit.User) *conduit.User {
		v, err := st.User(req(), u.ID)
		require.NoError(t, err)
		return v
	}
	// Bob publishes and is redirected to his article: he sees it.
	got, err := st.ArticleBySlug(req(), viewer(bob), "bobs-post")
	require.NoError(t, err)
	assert.Equal(t, "Bob's post", got.Title)
	list, total, err := st.ListArticles(req(), viewer(bob), conduit.ArticleFilter{Limit: 20})
	require.NoError(t, err)
	assert.Equal(t, 1, total)
	assert.Len(t, list, 1)
	// Nobody signed in reads the lagging replica.
	_, err = st.ArticleBySlug(req(), nil, "bobs-post")
	assert.Equal(t, conduit.CodeNotFound, conduit.CodeOf(err), "the anonymous read went to the replica")

	// Alice favorites, follows and comments; each shows on her next read.
	require.NoError(t, st.Favorite(req(), alice.ID, got))
	got, err = st.ArticleBySlug(req(), viewer(alice), "bobs-post")
	require.NoError(t, err)
	assert.True(t, got.Favorited)
	assert.Equal(t, 1, got.FavoritesCount)
	require.NoError(t, st.Follow(req(), alice.ID, bob.ID))
	feed, n, err := st.Feed(req(), viewer(alice), 20, 0)
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	require.Len(t, feed, 1)
	assert.True(t, feed[0].Author.Following)
	c := &conduit.Comment{AuthorID: alice.ID, Body: "first", CreatedAt: now, UpdatedAt: now}
	require.NoError(t, st.AddComment(req(), "bobs-post", c))
	comments, err := st.Comments(req(), viewer(alice), "bobs-post")
	require.NoError(t, err)
	require.Len(t, comments, 1)
	assert.Equal(t, "first", comments[0].Body)
	mine, _, err := st.ListArticles(req(), viewer(alice), conduit.ArticleFilter{Favorited: "alice", Limit: 20})
	require.NoError(t, err)
	assert.Len(t, mine, 1, "her favorites list")
}

// strictStore opens a store on uri whose every read checks the
// generations (no lag tolerance).
func strictStore(t *testing.T, uri string) *Store {
	t.Helper()
	st, err := Open(context.Background(), "conduit", func(context.Context, string) (string, error) { return uri, nil }, Options{LagTolerance: -1})
	require.NoError(t, err)
	return st
}

// A cached list is never older than the last completed write: a write on
// "another instance" (a second store on the same database) moves the
// generations, and this store reads again.
func TestCachesSeeOtherInstancesWrites(t *testing.T) {
	ctx := context.Background()
	db, err := localdb.Start(ctx, "127.0.0.1:0", t.TempDir(), nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Stop(context.Background()) })
	one := strictStore(t, db.URI)
	two, err := Connect(ctx, db.URI, "conduit")
	require.NoError(t, err)
	u := &conduit.User{Username: "u", Email: "u@example.com", PasswordHash: "x"}
	require.NoError(t, one.CreateUser(one.WithRequest(ctx), u))
	tags, err := one.Tags(one.WithRequest(ctx), nil)
	require.NoError(t, err)
	assert.Empty(t, tags)
	_, n, err := one.ListArticles(one.WithRequest(ctx), nil, conduit.ArticleFilter{Limit: 20})
	require.NoError(t, err)
	assert.Zero(t, n)

	now := time.Now().UTC()
	require.NoError(t, two.CreateArticle(two.WithRequest(ctx), &conduit.Article{Slug: "s", Title: "t", Description: "d", Body: "b", TagList: []string{"go"}, AuthorID: u.ID, CreatedAt: now, UpdatedAt: now}))
	tags, err = one.Tags(one.WithRequest(ctx), nil)
	require.NoError(t, err)
	assert.Equal(t, []string{"go"}, tags)
	list, n, err := one.ListArticles(one.WithRequest(ctx), nil, conduit.ArticleFilter{Limit: 20})
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	require.Len(t, list, 1)
	assert.Equal(t, "u", list[0].Author.Username)

	// A profile change made by the other instance shows at once.
	changed := *u
	changed.Bio = "new bio"
	require.NoError(t, two.UpdateUser(two.WithRequest(ctx), u, &changed))
	list, _, err = one.ListArticles(one.WithRequest(ctx), nil, conduit.ArticleFilter{Limit: 20})
	require.NoError(t, err)
	assert.Equal(t, "new bio", list[0].Author.Bio)

	// Comments found by slug follow a rename and a deletion made by the
	// other instance, though the article id behind the slug was cached.
	c := &conduit.Comment{AuthorID: u.ID, Body: "hi", CreatedAt: now, UpdatedAt: now}
	require.NoError(t, one.AddComment(one.WithRequest(ctx), "s", c))
	comments, err := one.Comments(one.WithRequest(ctx), nil, "s")
	require.NoError(t, err)
	require.Len(t, comments, 1)
	a, err := two.ArticleBySlug(two.WithRequest(ctx), nil, "s")
	require.NoError(t, err)
	a.Slug = "s2"
	require.NoError(t, two.UpdateArticle(two.WithRequest(ctx), "s", a))
	_, err = one.Comments(one.WithRequest(ctx), nil, "s")
	assert.Equal(t, conduit.CodeNotFound, conduit.CodeOf(err))
	assert.Equal(t, conduit.CodeNotFound, conduit.CodeOf(one.AddComment(one.WithRequest(ctx), "s", c)))
	comments, err = one.Comments(one.WithRequest(ctx), nil, "s2")
	require.NoError(t, err)
	assert.Len(t, comments, 1)
	require.NoError(t, two.DeleteArticle(two.WithRequest(ctx), a))
	_, err = one.Comments(one.WithRequest(ctx), nil, "s2")
	assert.Equal(t, conduit.CodeNotFound, conduit.CodeOf(err))
}

// With the default lag tolerance, a signed-in viewer sees another
// instance's write at once; an anonymous reader within the tolerance.
func TestAnonymousReadsLagAtMostTheTolerance(t *testing.T) {
	ctx := context.Background()
	db, err := localdb.Start(ctx, "127.0.0.1:0", t.TempDir(), nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Stop(context.Background()) })
	one, err := Connect(ctx, db.URI, "conduit")
	require.NoError(t, err)
	two := strictStore(t, db.URI)
	u := &conduit.User{Username: "u", Email: "u@example.com", PasswordHash: "x"}
	require.NoError(t, two.CreateUser(two.WithRequest(ctx), u))
	count := func(viewer *conduit.User) int {
		_, n, err := one.ListArticles(one.WithRequest(ctx), viewer, conduit.ArticleFilter{Limit: 20})
		require.NoError(t, err)
		return n
	}
	tags := func() []string {
		tags, err := one.Tags(one.WithRequest(ctx), nil)
		require.NoError(t, err)
		return tags
	}
	require.Zero(t, count(nil)) // cached, with the generations it was read at
	require.Empty(t, tags())
	now := time.Now().UTC()
	written := time.Now()
	require.NoError(t, two.CreateArticle(two.WithRequest(ctx), &conduit.Article{Slug: "s", Title: "t", TagList: []string{"go"}, AuthorID: u.ID, CreatedAt: now, UpdatedAt: now}))

	assert.Equal(t, 1, count(u), "a signed-in viewer reads fresh")
	if time.Since(written) < DefaultLagTolerance/2 {
		assert.Zero(t, count(nil), "anonymous reads may lag")
	}
	assert.Eventually(t, func() bool { return count(nil) == 1 && len(tags()) == 1 }, 2*DefaultLagTolerance, 50*time.Millisecond,
		"anonymous reads catch up within the tolerance")
}

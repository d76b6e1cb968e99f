package store

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"webstack/app/conduit"
)

// laggingStore is a store whose lag-tolerant reads go to a replica that
// never catches up: a database the writes never reach.
func laggingStore(t *testing.T) *Store {
	t.Helper()
	st, _ := newLocal(t, Options{})
	require.NoError(t, st.Migrate(context.Background()))
	c := st.cur.Load()
	c.reads, c.single = c.client.Database("replica-that-lags"), false
	return st
}

// A person who publishes, favorites, follows or comments sees it on their
// next request, whichever api instance serves it: for a while after their
// last write their reads go to the primary. Anonymous visitors, and people
// who have not written lately, read the replica (here: forever behind).
func TestReadersSeeTheirOwnWritesWhenReplicasLag(t *testing.T) {
	st := laggingStore(t)
	ctx := context.Background()
	alice := &conduit.User{Username: "alice", Email: "alice@example.com", PasswordHash: "x"}
	bob := &conduit.User{Username: "bob", Email: "bob@example.com", PasswordHash: "x"}
	require.NoError(t, st.CreateUser(ctx, alice))
	require.NoError(t, st.CreateUser(ctx, bob))
	now := time.Now().UTC()
	art := &conduit.Article{Slug: "bobs-post", Title: "Bob's post", Description: "d", Body: "b", TagList: []string{"t"}, AuthorID: bob.ID, CreatedAt: now, UpdatedAt: now}
	require.NoError(t, st.Wrote(ctx, bob))
	require.NoError(t, st.CreateArticle(ctx, art))

	// The viewer as the api reads them on each request: from the primary.
	viewer := func(u *conduit.User) *conduit.User {
		v, err := st.User(ctx, u.ID)
		require.NoError(t, err)
		return v
	}
	// Bob publishes and is redirected to his article: he sees it.
	got, err := st.ArticleBySlug(ctx, viewer(bob), "bobs-post")
	require.NoError(t, err)
	assert.Equal(t, "Bob's post", got.Title)
	list, total, err := st.ListArticles(ctx, viewer(bob), conduit.ArticleFilter{Limit: 20})
	require.NoError(t, err)
	assert.Equal(t, 1, total)
	assert.Len(t, list, 1)
	tags, err := st.Tags(ctx, viewer(bob))
	require.NoError(t, err)
	assert.Equal(t, []string{"t"}, tags)
	// Nobody signed in reads the lagging replica; nor does someone whose
	// last write is older than the window.
	_, err = st.ArticleBySlug(ctx, nil, "bobs-post")
	assert.Equal(t, conduit.CodeNotFound, conduit.CodeOf(err), "the anonymous read went to the replica")
	idle := viewer(alice)
	idle.LastWrite = time.Now().Add(-2 * DefaultReadYourWrites)
	_, err = st.ArticleBySlug(ctx, idle, "bobs-post")
	assert.Equal(t, conduit.CodeNotFound, conduit.CodeOf(err), "a reader who has not written lately reads the replica")

	// Alice favorites, follows and comments; each shows on her next read.
	me := viewer(alice)
	require.NoError(t, st.Wrote(ctx, me))
	require.NoError(t, st.Favorite(ctx, alice.ID, got))
	got, err = st.ArticleBySlug(ctx, viewer(alice), "bobs-post")
	require.NoError(t, err)
	assert.True(t, got.Favorited)
	assert.Equal(t, 1, got.FavoritesCount)
	require.NoError(t, st.Follow(ctx, alice.ID, bob.ID))
	feed, n, err := st.Feed(ctx, viewer(alice), 20, 0)
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	require.Len(t, feed, 1)
	assert.True(t, feed[0].Author.Following)
	c := &conduit.Comment{AuthorID: alice.ID, Body: "first", CreatedAt: now, UpdatedAt: now}
	require.NoError(t, st.AddComment(ctx, art.ID, c))
	comments, _, err := st.Comments(ctx, viewer(alice), "bobs-post", conduit.CommentPage{Limit: conduit.MaxLimit})
	require.NoError(t, err)
	require.Len(t, comments, 1)
	assert.Equal(t, "first", comments[0].Body)
	mine, n, err := st.ListArticles(ctx, viewer(alice), conduit.ArticleFilter{Favorited: "alice", Limit: 20})
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	assert.Len(t, mine, 1, "her favorites list")
	p, err := st.Profile(ctx, viewer(alice), viewer(bob))
	require.NoError(t, err)
	assert.True(t, p.Following)
}

// A write made on another instance (a second store on the same database)
// shows to anonymous readers within the lag tolerance, and to the person
// who made it at once; a password change voids the old credential version
// on every instance at once (the viewer is read on the primary).
func TestOtherInstancesWritesShowWithinTheTolerance(t *testing.T) {
	ctx := context.Background()
	one, db := newLocal(t, Options{})
	require.NoError(t, one.Migrate(ctx))
	two, err := Connect(ctx, db.URI, "conduit")
	require.NoError(t, err)
	t.Cleanup(func() { _ = two.Close(ctx) })
	u := &conduit.User{Username: "u", Email: "u@example.com", PasswordHash: "x"}
	require.NoError(t, two.CreateUser(ctx, u))
	count := func(viewer *conduit.User) int {
		_, n, err := one.ListArticles(ctx, viewer, conduit.ArticleFilter{Limit: 20})
		require.NoError(t, err)
		return n
	}
	tags := func() []string {
		tags, err := one.Tags(ctx, nil)
		require.NoError(t, err)
		return tags
	}
	require.Zero(t, count(nil)) // cached now
	require.Empty(t, tags())
	written := time.Now()
	now := time.Now().UTC()
	require.NoError(t, two.CreateArticle(ctx, &conduit.Article{Slug: "s", Title: "t", TagList: []string{"go"}, AuthorID: u.ID, CreatedAt: now, UpdatedAt: now}))

	author, err := one.User(ctx, u.ID)
	require.NoError(t, err)
	assert.Equal(t, 1, count(author), "the author reads fresh")
	if time.Since(written) < DefaultLagTolerance/2 {
		assert.Zero(t, count(nil), "anonymous reads may lag")
	}
	assert.Eventually(t, func() bool { return count(nil) == 1 && len(tags()) == 1 }, 2*DefaultLagTolerance, 50*time.Millisecond,
		"anonymous reads catch up within the tolerance")

	changed := *author
	changed.PasswordHash, changed.Cred = "y", author.Cred+1
	require.NoError(t, two.UpdateUser(ctx, author, &changed))
	again, err := one.User(ctx, u.ID)
	require.NoError(t, err)
	assert.Equal(t, changed.Cred, again.Cred, "the other instance sees the new credential version at once")
}

// Every write is followed by the whole read-your-writes window, however
// the writes fall: one made just before a write that costs no record is
// not left with what remains of the window the record started (a burst of
// writes still costs one record per window).
func TestEveryWriteIsFollowedByTheWholeWindow(t *testing.T) {
	ctx := context.Background()
	const window = 2 * time.Second
	st, _ := newLocal(t, Options{ReadYourWrites: window})
	require.NoError(t, st.Migrate(ctx))
	var updates atomic.Int32
	st.OnCommand = func(name string) {
		if name == "update" {
			updates.Add(1)
		}
	}
	u := &conduit.User{Username: "writer", Email: "writer@example.com", PasswordHash: "x"}
	require.NoError(t, st.CreateUser(ctx, u))
	u, err := st.User(ctx, u.ID)
	require.NoError(t, err)
	u.LastWrite, u.FreshUntil = time.Time{}, time.Time{} // long ago

	require.NoError(t, st.Wrote(ctx, u))
	assert.Equal(t, int32(1), updates.Load(), "the first write is recorded")
	time.Sleep(window * 3 / 8) // within half a window: the old code skipped the record too
	second := time.Now()
	require.NoError(t, st.Wrote(ctx, u)) // a burst: no record
	assert.Equal(t, int32(1), updates.Load(), "a write within the recorded window costs nothing")
	again, err := st.User(ctx, u.ID) // as the next request reads the viewer
	require.NoError(t, err)
	// Past where the old record ended (5/8 of a window after the second
	// write), well before where the new one does (13/8).
	time.Sleep(time.Until(second.Add(window * 3 / 4)))
	assert.True(t, st.fresh(again), "three quarters of a window after the second write, its reads still go to the primary")
}

package store

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"

	"webstack/app/conduit"
	"webstack/app/store/storetest"
)

// seedComments inserts n comments on art directly (many at a time), the
// first at start, one millisecond apart but for ties: every tie-th shares
// the time of the one before it.
func seedComments(t *testing.T, st *Store, art *conduit.Article, author string, n int, start time.Time, tie int) {
	t.Helper()
	ctx := context.Background()
	at := start.UTC().Truncate(time.Millisecond)
	for i := 0; i < n; i += 1000 {
		docs := make([]any, 0, 1000)
		for j := i; j < min(n, i+1000); j++ {
			if tie == 0 || j%tie != 0 {
				at = at.Add(time.Millisecond)
			}
			docs = append(docs, commentDoc{ID: commentKey(int64(j + 1)), AID: art.ID, AuthorID: author, Body: fmt.Sprint("comment ", j),
				CreatedAt: at, UpdatedAt: at})
		}
		_, err := st.cur.Load().db.Collection("comments").InsertMany(ctx, docs)
		require.NoError(t, err)
	}
}

// Pages of comments follow the cursor in (time, id) order: every comment
// once, ties of one millisecond included, whatever is added meanwhile.
func TestCommentPagesFollowTheirCursor(t *testing.T) {
	ctx := context.Background()
	st, alice, _, art := fixture(t, Options{LagTolerance: -1})
	seedComments(t, st, art, alice.ID, 11, time.Now().Add(-time.Hour), 3)
	var seen []int64
	var after *conduit.CommentCursor
	for pages := 0; ; pages++ {
		require.Less(t, pages, 10)
		list, next, err := st.Comments(ctx, nil, art.Slug, conduit.CommentPage{Limit: 4, After: after})
		require.NoError(t, err)
		for _, c := range list {
			seen = append(seen, c.ID)
		}
		if pages == 0 {
			// A comment added after the first page comes at the end.
			c := &conduit.Comment{AuthorID: alice.ID, Body: "late", CreatedAt: time.Now().UTC(), UpdatedAt: time.Now().UTC()}
			require.NoError(t, st.AddComment(ctx, art.ID, c))
		}
		if next == nil {
			assert.LessOrEqual(t, len(list), 4)
			break
		}
		assert.Len(t, list, 4, "a page before the last is full")
		after = next
	}
	require.Len(t, seen, 12, "every comment once")
	for i := range 11 {
		assert.Equal(t, int64(i+1), seen[i], "in order of time, then id")
	}
}

// An article takes conduit.MaxCommentsPerArticle comments, its author's
// included: of two racing for the last place one gets it and the other's
// comment is taken back; a deletion gives no place back.
func TestAnArticleTakesABoundedNumberOfComments(t *testing.T) {
	ctx := context.Background()
	st, alice, bob, art := fixture(t, Options{LagTolerance: -1})
	_, err := st.coll("articles").UpdateOne(ctx, byID(art.ID), set(bson.E{Key: "comments", Value: conduit.MaxCommentsPerArticle - 1}))
	require.NoError(t, err)

	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, who := range []*conduit.User{alice, bob} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &conduit.Comment{AuthorID: who.ID, Body: "last?", CreatedAt: time.Now().UTC(), UpdatedAt: time.Now().UTC()}
			errs[i] = st.AddComment(ctx, art.ID, c)
		}()
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		if err == nil {
			ok++
		} else {
			assert.Equal(t, conduit.CodeConflict, conduit.CodeOf(err), "%v", err)
			assert.Contains(t, err.Error(), "limit")
		}
	}
	assert.Equal(t, 1, ok, "one of the two took the last place")
	list, _, err := st.Comments(ctx, nil, art.Slug, conduit.CommentPage{Limit: 10})
	require.NoError(t, err)
	require.Len(t, list, 1, "the other's comment was taken back")

	c := &conduit.Comment{AuthorID: bob.ID, Body: "the author too", CreatedAt: time.Now().UTC(), UpdatedAt: time.Now().UTC()}
	assert.Equal(t, conduit.CodeConflict, conduit.CodeOf(st.AddComment(ctx, art.ID, c)), "the author is bounded too")

	require.NoError(t, st.DeleteComment(ctx, art.Slug, list[0].ID))
	assert.Equal(t, conduit.CodeConflict, conduit.CodeOf(st.AddComment(ctx, art.ID, c)),
		"a deletion gives no place back (a decrement sent twice would count too few)")
	var d struct {
		Comments int `bson:"comments"`
	}
	require.NoError(t, st.findOne(ctx, st.coll("articles"), "t", byID(art.ID), &d))
	assert.GreaterOrEqual(t, d.Comments, conduit.MaxCommentsPerArticle, "full: the count past the bound says so too")
	list, _, err = st.Comments(ctx, nil, art.Slug, conduit.CommentPage{Limit: 10})
	require.NoError(t, err)
	assert.Empty(t, list, "no comment past the bound was kept")
}

// Deleting an article with more comments and favorites than a batch
// answers after one batch of each; Repair sweeps the rest.
func TestDeletingALargeArticleGoesInBoundedSteps(t *testing.T) {
	ctx := context.Background()
	st, alice, bob, art := fixture(t, Options{LagTolerance: -1, IntentGrace: time.Millisecond, LateWrites: time.Millisecond})
	comments, favorites := 2*sweepBatch+7, sweepBatch+3
	seedComments(t, st, art, alice.ID, comments, time.Now().Add(-time.Hour), 0)
	favs := make([]any, favorites)
	for i := range favs {
		uid := fmt.Sprintf("u%05d", i)
		favs[i] = bson.D{{Key: "_id", Value: pair(uid, art.ID)}, {Key: "ver", Value: int64(1)}, {Key: "uid", Value: uid}, {Key: "aid", Value: art.ID},
			{Key: "articleCreatedAt", Value: art.CreatedAt}}
	}
	_, err := st.cur.Load().db.Collection("favorites").InsertMany(ctx, favs)
	require.NoError(t, err)

	var commands int
	st.OnCommand = func(string) { commands++ }
	require.NoError(t, st.DeleteArticle(ctx, art))
	st.OnCommand = nil
	assert.LessOrEqual(t, commands, 10, "the request's commands do not grow with the article")
	_, err = st.ArticleBySlug(ctx, &conduit.User{ID: bob.ID, LastWrite: time.Now()}, art.Slug)
	assert.Equal(t, conduit.CodeNotFound, conduit.CodeOf(err), "the article is gone at once")
	left := func(coll string) int64 {
		n, err := st.cur.Load().db.Collection(coll).CountDocuments(ctx, bson.D{{Key: "aid", Value: art.ID}})
		require.NoError(t, err)
		return n
	}
	assert.EqualValues(t, comments-sweepBatch, left("comments"), "one batch of comments went with the request")
	assert.EqualValues(t, favorites-sweepBatch, left("favorites"), "one batch of favorites too")

	time.Sleep(5 * time.Millisecond)
	for range 3 {
		_, err = st.Repair(ctx)
		require.NoError(t, err)
	}
	assert.Zero(t, left("comments"), "Repair swept the rest")
	assert.Zero(t, left("favorites"))
	n, err := st.cur.Load().db.Collection("intents").CountDocuments(ctx, bson.D{{Key: "aid", Value: art.ID}, {Key: "settling", Value: bson.D{{Key: "$ne", Value: true}}}})
	require.NoError(t, err)
	assert.Zero(t, n, "the deletion's intent is done")
}

// An account follows at most conduit.MaxFollowing people; following one of
// them again still works, and the feed reads no more than that.
func TestFollowingIsBounded(t *testing.T) {
	ctx := context.Background()
	st, alice, bob, _ := fixture(t, Options{LagTolerance: -1})
	seedFollows(t, st, alice.ID, conduit.MaxFollowing-1)
	require.NoError(t, st.Follow(ctx, alice.ID, bob.ID), "the last place")
	require.NoError(t, st.Follow(ctx, alice.ID, bob.ID), "following again is no new place")
	err := st.Follow(ctx, alice.ID, "one-too-many")
	assert.Equal(t, conduit.CodeConflict, conduit.CodeOf(err), "%v", err)
	require.NoError(t, st.Unfollow(ctx, alice.ID, bob.ID))
	require.NoError(t, st.Follow(ctx, alice.ID, "one-too-many"), "an unfollow frees a place")
	list, total, err := st.Feed(ctx, alice, 20, 0)
	require.NoError(t, err)
	assert.Empty(t, list, "bob's post is not in the feed: alice unfollowed him")
	assert.Zero(t, total)
}

// A list's count is cached by its filter, whatever the page: paging
// through a tag's list counts it once.
func TestListCountsAreCachedWhateverThePage(t *testing.T) {
	ctx := context.Background()
	st, _, _, _ := fixture(t, Options{LagTolerance: time.Minute})
	counts := 0
	st.OnCommand = func(name string) {
		if name == "count" || name == "aggregate" {
			counts++
		}
	}
	for _, offset := range []int{0, 20, 40, 0} {
		_, total, err := st.ListArticles(ctx, nil, conduit.ArticleFilter{Tag: "go", Limit: 20, Offset: offset})
		require.NoError(t, err)
		assert.Equal(t, 1, total)
	}
	assert.Equal(t, 1, counts, "one count for four pages")
}

// An account keeps conduit.MaxSessions live sessions: a sign-in past it
// ends the oldest, and their holder is told why; the others are untouched.
func TestAnAccountKeepsABoundedNumberOfSessions(t *testing.T) {
	ctx := context.Background()
	st, alice, bob, _ := fixture(t, Options{LagTolerance: -1})
	start := time.Now().UTC()
	for i := range conduit.MaxSessions + 2 {
		at := start.Add(time.Duration(i) * time.Second)
		require.NoError(t, st.StartSession(ctx, &conduit.Session{ID: fmt.Sprintf("a%02d", i), UserID: alice.ID, Seen: at, Expires: at.Add(time.Hour)}))
	}
	require.NoError(t, st.StartSession(ctx, &conduit.Session{ID: "b", UserID: bob.ID, Seen: start, Expires: start.Add(time.Hour)}))
	for i := range conduit.MaxSessions + 2 {
		_, err := st.Session(ctx, fmt.Sprintf("a%02d", i))
		if i < 2 {
			assert.Equal(t, conduit.CodeUnauthorized, conduit.CodeOf(err), "session %d: the oldest ended", i)
			assert.Contains(t, err.Error(), "signed in on more than 20 devices")
		} else {
			assert.NoError(t, err, "session %d lives", i)
		}
	}
	_, err := st.Session(ctx, "b")
	assert.NoError(t, err, "another account's session is not counted")
}

// Accounts made in bulk cannot set everyone's tags: the tags of accounts
// younger than TagAccountAge rank after every established account's (they
// fill a new site's empty places only), among the newest TagScan articles
// (issue #30, low).
func TestYoungAccountsDoNotSetTheTags(t *testing.T) {
	ctx := context.Background()
	st, _ := newLocal(t, Options{LagTolerance: -1})
	require.NoError(t, st.Migrate(ctx))
	now := time.Now().UTC()
	post := func(name string, since time.Time, tag string) {
		u := &conduit.User{Username: name, Email: name + "@example.com", PasswordHash: "x"}
		require.NoError(t, st.CreateUser(ctx, u))
		a := &conduit.Article{Slug: name + "-post", Title: "t", Description: "d", Body: "b", TagList: []string{tag},
			AuthorID: u.ID, AuthorSince: since, CreatedAt: now, UpdatedAt: now}
		require.NoError(t, st.CreateArticle(ctx, a))
	}
	post("established", now.Add(-48*time.Hour), "real")
	post("before-it-was-kept", time.Time{}, "older")
	for i := range 5 {
		post(fmt.Sprintf("throwaway%d", i), now.Add(-time.Hour), "spam")
	}
	tags, err := st.Tags(ctx, nil)
	require.NoError(t, err)
	assert.Equal(t, []string{"older", "real", "spam"}, tags,
		"five accounts of an hour come after every established account's tag, however many they are")
}

// Two follows racing for the last place cannot both keep it (the count
// comes after the follow; helper-8 L11).
func TestTwoFollowsForTheLastPlaceDoNotBothKeepIt(t *testing.T) {
	ctx := context.Background()
	st, alice, _, _ := fixture(t, Options{LagTolerance: -1})
	seedFollows(t, st, alice.ID, conduit.MaxFollowing-1)
	var wg sync.WaitGroup
	for _, who := range []string{"x-one", "x-two"} {
		wg.Go(func() { _ = st.Follow(ctx, alice.ID, who) })
	}
	wg.Wait()
	n, err := st.cur.Load().db.Collection("follows").CountDocuments(ctx, bson.D{{Key: "follower", Value: alice.ID}})
	require.NoError(t, err)
	assert.LessOrEqual(t, n, int64(conduit.MaxFollowing), "never past the bound")
}

// At the bound, following someone followed already takes no new place: it
// is answered as set, never turned off (helper-11: a repeat follow racing
// a new one must not undo an acknowledged follow).
func TestARepeatFollowAtTheBoundKeepsTheFollow(t *testing.T) {
	ctx := context.Background()
	st, alice, bob, _ := fixture(t, Options{LagTolerance: -1})
	// The bound, bob among them, and one past it (as a race of the old
	// code could leave).
	seedFollows(t, st, alice.ID, conduit.MaxFollowing-1, bob.ID, "over")
	require.NoError(t, st.Follow(ctx, alice.ID, bob.ID), "a repeat follow")
	p, err := st.Profile(ctx, &conduit.User{ID: alice.ID, LastWrite: time.Now()}, bob)
	require.NoError(t, err)
	assert.True(t, p.Following, "still following")
}

// A keyed comment's copy that runs again at the bound finds the comment
// the first copy made and counted, and answers as the first did: it does
// not count it once more and take it back (helper-11).
func TestAKeyedCommentsCopyAtTheBoundKeepsTheComment(t *testing.T) {
	ctx := context.Background()
	st, alice, _, art := fixture(t, Options{LagTolerance: -1})
	_, err := st.coll("articles").UpdateOne(ctx, byID(art.ID), set(bson.E{Key: "comments", Value: conduit.MaxCommentsPerArticle - 1}))
	require.NoError(t, err)
	first := time.Now().UTC().Truncate(time.Millisecond)
	k := conduit.RequestKey{ID: "key-at-the-bound", First: first}
	c := &conduit.Comment{AuthorID: alice.ID, Body: "the last one", CreatedAt: first, UpdatedAt: first}
	require.NoError(t, st.AddComment(conduit.WithRequestKey(ctx, k), art.ID, c))
	k.Again = true
	again := &conduit.Comment{AuthorID: alice.ID, Body: "the last one", CreatedAt: first, UpdatedAt: first}
	require.NoError(t, st.AddComment(conduit.WithRequestKey(ctx, k), art.ID, again), "the copy is answered as the first")
	assert.Equal(t, c.ID, again.ID)
	list, _, err := st.Comments(ctx, nil, art.Slug, conduit.CommentPage{Limit: 10})
	require.NoError(t, err)
	require.Len(t, list, 1, "the comment stays")
}

// seedFollows makes follower follow n made-up people directly (many at a
// time), and the extra followees named.
func seedFollows(t *testing.T, st *Store, follower string, n int, extra ...string) {
	t.Helper()
	docs := make([]any, 0, n+len(extra))
	for i := range n {
		extra = append(extra, fmt.Sprintf("someone%04d", i))
	}
	for _, id := range extra {
		docs = append(docs, bson.D{{Key: "_id", Value: pair(follower, id)}, {Key: "ver", Value: int64(1)}, {Key: "follower", Value: follower}, {Key: "followee", Value: id}})
	}
	_, err := st.cur.Load().db.Collection("follows").InsertMany(context.Background(), docs)
	require.NoError(t, err)
}

// A follow whose write's reply is lost (sent again, it meets its own
// write) is still counted against the bound: what the follow found is its
// first read, not the re-read of its own write (helper-13).
func TestAFollowWhoseReplyIsLostIsStillBounded(t *testing.T) {
	ctx := context.Background()
	st, proxy, alice, bob, _ := proxiedFixture(t, Options{LagTolerance: -1})
	seedFollows(t, st, alice.ID, conduit.MaxFollowing)
	err := st.Follow(ctx, alice.ID, bob.ID)
	require.Equal(t, conduit.CodeConflict, conduit.CodeOf(err), "at the bound: one too many, turned off again (%v)", err)
	// (The first follow above was refused; a follow of a pair turned off is
	// a replace of its tombstone: its reply is lost next.)
	proxy.InjectNext([]storetest.Fault{storetest.LoseReply}, "update")
	err = st.Follow(ctx, alice.ID, bob.ID)
	assert.Equal(t, conduit.CodeConflict, conduit.CodeOf(err), "%v", err)
	p, err := st.Profile(ctx, &conduit.User{ID: alice.ID, LastWrite: time.Now()}, bob)
	require.NoError(t, err)
	assert.False(t, p.Following, "not kept past the bound")
}

package store

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"

	"webstack/app/conduit"
	"webstack/app/store/storetest"
)

// fixture is a migrated store with two people and an article.
func fixture(t *testing.T, opts Options) (*Store, *conduit.User, *conduit.User, *conduit.Article) {
	t.Helper()
	ctx := context.Background()
	st, _ := newLocal(t, opts)
	require.NoError(t, st.Migrate(ctx))
	alice := &conduit.User{Username: "alice", Email: "alice@example.com", PasswordHash: "x"}
	bob := &conduit.User{Username: "bob", Email: "bob@example.com", PasswordHash: "x"}
	require.NoError(t, st.CreateUser(ctx, alice))
	require.NoError(t, st.CreateUser(ctx, bob))
	now := time.Now().UTC()
	art := &conduit.Article{Slug: "post", Title: "Post", Description: "d", Body: "b", TagList: []string{"go", "aws"}, AuthorID: bob.ID, CreatedAt: now, UpdatedAt: now}
	require.NoError(t, st.CreateArticle(ctx, art))
	return st, alice, bob, art
}

func favoritesCount(t *testing.T, st *Store, viewer *conduit.User) int {
	t.Helper()
	a, err := st.ArticleBySlug(context.Background(), viewer, "post")
	require.NoError(t, err)
	return a.FavoritesCount
}

// A write that stopped between its steps (a crash, a failover, a client
// that gave up) leaves its intent; Repair finishes it, and nothing else is
// needed for the data to converge.
func TestInterruptedWritesConverge(t *testing.T) {
	ctx := context.Background()
	for name, interrupt := range map[string]func(t *testing.T, st *Store, alice *conduit.User, art *conduit.Article){
		"a favorite whose recount never ran": func(t *testing.T, st *Store, alice *conduit.User, art *conduit.Article) {
			_, err := st.begin(ctx, intentDoc{Kind: intentRecountFavorites, AID: art.ID})
			require.NoError(t, err)
			require.NoError(t, st.insertNew(ctx, "favorites", "favorite", pair(alice.ID, art.ID),
				bson.D{{Key: "_id", Value: pair(alice.ID, art.ID)}, {Key: "uid", Value: alice.ID}, {Key: "aid", Value: art.ID},
					{Key: "articleCreatedAt", Value: art.CreatedAt}}, nil))
		},
		"a deletion that removed the article only": func(t *testing.T, st *Store, alice *conduit.User, art *conduit.Article) {
			require.NoError(t, st.Favorite(ctx, alice.ID, art))
			c := &conduit.Comment{AuthorID: alice.ID, Body: "hi", CreatedAt: time.Now().UTC(), UpdatedAt: time.Now().UTC()}
			require.NoError(t, st.AddComment(ctx, art.ID, c))
			_, err := st.begin(ctx, intentDoc{Kind: intentDeleteArticle, AID: art.ID})
			require.NoError(t, err)
			_, err = st.coll("articles").DeleteOne(ctx, byID(art.ID))
			require.NoError(t, err)
		},
	} {
		t.Run(name, func(t *testing.T) {
			st, alice, _, art := fixture(t, Options{LagTolerance: -1, IntentGrace: time.Millisecond})
			interrupt(t, st, alice, art)
			time.Sleep(5 * time.Millisecond)
			n, err := st.Repair(ctx)
			require.NoError(t, err)
			assert.Equal(t, 1, n, "one interrupted write finished")
			n, err = st.Repair(ctx)
			require.NoError(t, err)
			assert.Zero(t, n, "and none left")
			st.assertConsistent(t)
		})
	}
}

// assertConsistent checks, straight in the database, every counter
// against what it counts and that nothing refers to a missing article.
func (s *Store) assertConsistent(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	articles, err := findAll[articleDoc](ctx, s, s.coll("articles"), "t", bson.D{})
	require.NoError(t, err)
	used := map[string]bool{}
	ids := map[string]bool{}
	for _, a := range articles {
		ids[a.ID] = true
		n, err := s.count(ctx, s.coll("favorites"), "t", bson.D{{Key: "aid", Value: a.ID}}, 0)
		require.NoError(t, err)
		assert.Equal(t, n, a.FavoritesCount, "favoritesCount of %s", a.Slug)
		assert.False(t, a.FavDirty, "no favorite of %s left uncounted", a.Slug)
		for _, tg := range a.TagList {
			used[tg] = true
		}
	}
	tags, err := s.Tags(ctx, &conduit.User{LastWrite: time.Now()})
	require.NoError(t, err)
	assert.ElementsMatch(t, slices.Collect(maps.Keys(used)), tags, "the tags are those the articles use")
	n, err := findAll[intentDoc](ctx, s, s.coll("intents"), "t", bson.D{{Key: "settling", Value: bson.D{{Key: "$ne", Value: true}}}})
	require.NoError(t, err)
	assert.Empty(t, n, "no write left unfinished (settling ones are finished, waiting for a late copy)")
	for _, coll := range []string{"favorites", "comments"} {
		docs, err := findAll[struct {
			AID string `bson:"aid"`
		}](ctx, s, s.coll(coll), "t", bson.D{})
		require.NoError(t, err)
		for _, d := range docs {
			assert.True(t, ids[d.AID], "%s of a deleted article", coll)
		}
	}
}

// Two recounts of one counter at once cannot commit out of order: one
// that counted before a change and sets after it finds the version moved,
// and leaves the count to the change's own recount.
func TestRecountsCommitInOrder(t *testing.T) {
	ctx := context.Background()
	st, alice, bob, art := fixture(t, Options{LagTolerance: -1})
	require.NoError(t, st.Favorite(ctx, bob.ID, art))

	counted := make(chan struct{})
	resume := make(chan struct{})
	var once sync.Once
	st.afterCount = func() {
		once.Do(func() {
			close(counted) // the slow recount has counted 1…
			<-resume       // …and sets only after alice's favorite is in and counted
		})
	}
	var slow sync.WaitGroup
	slow.Go(func() {
		_, err := st.markAndRecount(ctx, art.ID)
		assert.NoError(t, err)
	})
	<-counted
	other, err := Connect(ctx, st.cur.Load().uri, "conduit") // another instance
	require.NoError(t, err)
	t.Cleanup(func() { _ = other.Close(ctx) })
	require.NoError(t, other.Favorite(ctx, alice.ID, art))
	close(resume)
	slow.Wait()
	assert.Equal(t, 2, favoritesCount(t, st, nil), "the stale count of 1 was not set over the newer 2")
	st.assertConsistent(t)
}

// Many people favoriting one article at once, through two instances, all
// succeed (recounts never wait for each other) and the count is theirs.
func TestAPopularArticleTakesConcurrentFavorites(t *testing.T) {
	ctx := context.Background()
	st, _, _, art := fixture(t, Options{LagTolerance: -1})
	other, err := Connect(ctx, st.cur.Load().uri, "conduit")
	require.NoError(t, err)
	t.Cleanup(func() { _ = other.Close(ctx) })
	const people = 24
	var wg sync.WaitGroup
	for i := range people {
		wg.Go(func() {
			u := &conduit.User{Username: fmt.Sprintf("fan%d", i), Email: fmt.Sprintf("fan%d@example.com", i), PasswordHash: "x"}
			require.NoError(t, st.CreateUser(ctx, u))
			a := *art
			inst := []*Store{st, other}[i%2]
			assert.NoError(t, inst.Favorite(ctx, u.ID, &a))
		})
	}
	wg.Wait()
	assert.Equal(t, people, favoritesCount(t, st, nil))
	st.assertConsistent(t)
	intents, err := st.coll("intents").CountDocuments(ctx, bson.D{})
	require.NoError(t, err)
	assert.Zero(t, intents, "24 favorites of one article leave no intent")
	var d articleDoc
	require.NoError(t, st.coll("articles").FindOne(ctx, byID(art.ID), &d))
	assert.False(t, d.FavSettle.IsZero(), "and one settling time, on the article")
}

// A comment is added by the article's id, which the caller read a moment
// before (maybe from the cache): an article deleted meanwhile answers "not
// found" and keeps no comment; a renamed one still takes it.
func TestACommentOnAnArticleThatIsGoneIsNotKept(t *testing.T) {
	ctx := context.Background()
	st, alice, bob, art := fixture(t, Options{})
	id, author, err := st.ArticleOwner(ctx, alice, "post")
	require.NoError(t, err)
	assert.Equal(t, art.ID, id)
	assert.Equal(t, bob.ID, author)

	art.Slug, art.Title = "post-renamed", "Post renamed"
	require.NoError(t, st.UpdateArticle(ctx, art))
	c := &conduit.Comment{AuthorID: alice.ID, Body: "after the rename", CreatedAt: time.Now().UTC(), UpdatedAt: time.Now().UTC()}
	require.NoError(t, st.AddComment(ctx, id, c), "the id survives the rename")

	require.NoError(t, st.DeleteArticle(ctx, art))
	c = &conduit.Comment{AuthorID: alice.ID, Body: "too late", CreatedAt: time.Now().UTC(), UpdatedAt: time.Now().UTC()}
	err = st.AddComment(ctx, id, c)
	var ce *conduit.Error
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, conduit.CodeNotFound, ce.Code)
	n, err := st.coll("comments").CountDocuments(ctx, bson.D{{Key: "aid", Value: id}})
	require.NoError(t, err)
	assert.Zero(t, n, "no comment stays under a deleted article")
}

// proxiedFixture is fixture behind a fault proxy.
func proxiedFixture(t *testing.T, opts Options) (*Store, *storetest.FaultProxy, *conduit.User, *conduit.User, *conduit.Article) {
	t.Helper()
	ctx := context.Background()
	st, proxy := newProxied(t, opts, 5)
	alice := &conduit.User{Username: "alice", Email: "alice@example.com", PasswordHash: "x"}
	bob := &conduit.User{Username: "bob", Email: "bob@example.com", PasswordHash: "x"}
	require.NoError(t, st.CreateUser(ctx, alice))
	require.NoError(t, st.CreateUser(ctx, bob))
	now := time.Now().UTC()
	art := &conduit.Article{Slug: "post", Title: "Post", Description: "d", Body: "b", AuthorID: bob.ID, CreatedAt: now, UpdatedAt: now}
	require.NoError(t, st.CreateArticle(ctx, art))
	return st, proxy, alice, bob, art
}

// lateOpts: intents are taken after 100 ms, settle after 2.5 s; a late
// write lands 1.5 s after it was sent, long after its 300 ms request.
// (Tests wait for what they look at — the proxy says when a held write
// landed, Repair is asked until the intent settled — not for times.)
var lateOpts = Options{IntentGrace: 100 * time.Millisecond, LateWrites: 2500 * time.Millisecond}

const lateBy = 1500 * time.Millisecond

// landed waits until the proxy's held write has reached the database.
func landed(t *testing.T, proxy *storetest.FaultProxy, n int) {
	t.Helper()
	require.Eventually(t, func() bool { return proxy.Landed() >= n }, lateBy+5*time.Second, 10*time.Millisecond, "the held write lands")
}

// settled asks Repair until no intent is left (the settling runs done).
func settled(t *testing.T, st *Store) {
	t.Helper()
	ctx := context.Background()
	require.Eventually(t, func() bool {
		_, err := st.Repair(ctx)
		require.NoError(t, err)
		left, err := findAll[intentDoc](ctx, st, st.coll("intents"), "t", bson.D{})
		require.NoError(t, err)
		due, err := findAll[articleDoc](ctx, st, st.coll("articles"), "t", bson.D{{Key: "favSettle", Value: bson.D{{Key: "$exists", Value: true}}}})
		require.NoError(t, err)
		return len(left) == 0 && len(due) == 0
	}, lateOpts.LateWrites+5*time.Second, 100*time.Millisecond, "the intents and the favorites settle")
}

// A favorite whose insert the server holds past its request (503), past
// Repair's recount of the interrupted write, and applies after: the count
// was made without it. The intent, settling, counts again once late writes
// have landed, so the count ends right.
func TestAFavoriteThatLandsAfterItsRecountIsCounted(t *testing.T) {
	ctx := context.Background()
	st, proxy, alice, _, art := proxiedFixture(t, lateOpts)
	favoriteHeld(t, st, proxy, alice, art)
	time.Sleep(200 * time.Millisecond)
	n, err := st.Repair(ctx) // the interrupted write: recounted before the late insert lands
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	require.Zero(t, proxy.Landed(), "(the held insert must land after this recount: a slower machine needs a longer Late)")
	assert.Zero(t, favoritesCount(t, st, &conduit.User{LastWrite: time.Now()}), "counted before the favorite landed")

	landed(t, proxy, 1)
	var fav bson.Raw
	require.NoError(t, st.coll("favorites").FindOne(ctx, byID(pair(alice.ID, art.ID)), &fav), "the late insert landed")
	settled(t, st)
	assert.Equal(t, 1, favoritesCount(t, st, &conduit.User{LastWrite: time.Now()}), "the late favorite is counted")
}

// favoriteHeld is alice's favorite of art whose insert the server holds
// (Late) past the request, which gives up.
func favoriteHeld(t *testing.T, st *Store, proxy *storetest.FaultProxy, alice *conduit.User, art *conduit.Article) {
	t.Helper()
	proxy.Late = lateBy
	lateInsertInto(proxy, "favorites")
	rctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	err := st.Favorite(rctx, alice.ID, art)
	cancel()
	require.Error(t, err, "the request gave up on the held insert")
	proxy.Observe = nil
}

// lateInsertInto makes the proxy hold the next insert into coll (Late).
// (Observe runs before the proxy picks a command's fault.)
func lateInsertInto(proxy *storetest.FaultProxy, coll string) {
	var once sync.Once
	proxy.Observe = func(cmd bson.Raw) {
		if c, _ := cmd.Lookup("insert").StringValueOK(); c == coll {
			once.Do(func() { proxy.InjectNext([]storetest.Fault{storetest.Late}, "insert") })
		}
	}
}

// A comment whose insert the server holds past its request and applies
// after the article's deletion swept its comments: the deletion, settling,
// sweeps again, and no comment stays under the deleted article.
func TestACommentThatLandsAfterItsArticlesDeletionGoes(t *testing.T) {
	ctx := context.Background()
	st, proxy, alice, _, art := proxiedFixture(t, lateOpts)
	proxy.Late = lateBy
	lateInsertInto(proxy, "comments")
	rctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	c := &conduit.Comment{AuthorID: alice.ID, Body: "held by the server", CreatedAt: time.Now().UTC(), UpdatedAt: time.Now().UTC()}
	err := st.AddComment(rctx, art.ID, c)
	cancel()
	require.Error(t, err, "the request gave up on the held insert")
	proxy.Observe = nil
	require.NoError(t, st.DeleteArticle(ctx, art), "deleted before the held comment lands")
	require.Zero(t, proxy.Landed(), "(the held insert must land after the deletion: a slower machine needs a longer Late)")

	count := func() int64 {
		n, err := st.coll("comments").CountDocuments(ctx, bson.D{{Key: "aid", Value: art.ID}})
		require.NoError(t, err)
		return n
	}
	landed(t, proxy, 1)
	require.Equal(t, int64(1), count(), "the held comment landed, under the deleted article")
	settled(t, st)
	assert.Zero(t, count(), "the deletion, settling, removed it")
}

// A comment whose article cannot be found after the insert (its count on
// the article, a findAndModify, fails: the database is failing over) is
// not answered as saved: whether it stays depends on whether the article
// does, which is unknown.
func TestACommentWhoseArticleCannotBeReadBackIsNotASuccess(t *testing.T) {
	ctx := context.Background()
	st, proxy, alice, _, art := proxiedFixture(t, Options{})
	proxy.Inject(1, []storetest.Fault{storetest.NotPrimary}, "findAndModify")
	rctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	c := &conduit.Comment{AuthorID: alice.ID, Body: "unsure", CreatedAt: time.Now().UTC(), UpdatedAt: time.Now().UTC()}
	err := st.AddComment(rctx, art.ID, c)
	proxy.Heal()
	require.Error(t, err)
	assert.Equal(t, conduit.CodeUnavailable, conduit.CodeOf(err), "503: try again")
}

// Repair does not stop at an intent whose steps fail: the others are
// finished, the error is reported, and the sweeps still run.
func TestRepairGoesOnPastAnIntentThatFails(t *testing.T) {
	ctx := context.Background()
	st, alice, _, art := fixture(t, Options{IntentGrace: 50 * time.Millisecond, LateWrites: time.Hour})
	old := time.Now().UTC().Add(-time.Minute)
	_, err := st.coll("intents").InsertOne(ctx, intentDoc{ID: "0-broken", Kind: "no-such-kind", At: old.Add(-time.Second)})
	require.NoError(t, err)
	require.NoError(t, st.insertNew(ctx, "favorites", "t", pair(alice.ID, art.ID), bson.D{{Key: "_id", Value: pair(alice.ID, art.ID)},
		{Key: "uid", Value: alice.ID}, {Key: "aid", Value: art.ID}, {Key: "articleCreatedAt", Value: art.CreatedAt}, {Key: "at", Value: old}}, nil))
	_, err = st.coll("intents").InsertOne(ctx, intentDoc{ID: "1-recount", Kind: intentRecountFavorites, AID: art.ID, At: old})
	require.NoError(t, err)
	n, err := st.Repair(ctx)
	require.Error(t, err, "the broken intent is reported")
	assert.Contains(t, err.Error(), "no-such-kind")
	assert.Equal(t, 1, n, "and the one after it is finished")
	assert.Equal(t, 1, favoritesCount(t, st, &conduit.User{LastWrite: time.Now()}))
}

// An article whose insert's reply was lost, and which someone favorited
// before the insert sent again read it back, is the article created (not
// "the _id is taken": a 500).
func TestAnArticleChangedBeforeItsInsertIsReadBackIsCreated(t *testing.T) {
	ctx := context.Background()
	st, proxy, _, bob, _ := proxiedFixture(t, Options{})
	inserts := 0
	proxy.Observe = func(cmd bson.Raw) {
		if c, _ := cmd.Lookup("insert").StringValueOK(); c != "articles" {
			return
		}
		inserts++
		switch inserts {
		case 1: // applied, its reply lost
			proxy.InjectNext([]storetest.Fault{storetest.LoseReply}, "insert")
		case 2: // before the copy sent again: someone favorites it
			_, err := st.coll("articles").UpdateOne(ctx, bson.D{{Key: "slug", Value: "second"}},
				bson.D{{Key: "$set", Value: bson.D{{Key: "favoritesCount", Value: 1}}}, {Key: "$inc", Value: bson.D{{Key: "favVer", Value: int64(1)}}}})
			assert.NoError(t, err)
		}
	}
	now := time.Now().UTC()
	art := &conduit.Article{Slug: "second", Title: "Second", Description: "d", Body: "b", AuthorID: bob.ID, CreatedAt: now, UpdatedAt: now}
	require.NoError(t, st.CreateArticle(ctx, art), "its own first copy, favorited since, is the article")
	proxy.Observe = nil
	assert.Equal(t, 2, inserts, "the insert was sent again")
	got, err := st.ArticleBySlug(ctx, nil, "second")
	require.NoError(t, err)
	assert.Equal(t, art.ID, got.ID)
}

// An edit held by the server past its request (the client gave up, sent it
// again, and then made another edit) lands naming the version it was made
// to, which has moved on: it changes nothing, and the later edit stays.
// Its reply lost instead, the edit sent again finds itself applied.
func TestALateCopyOfAnEditDoesNotUndoALaterOne(t *testing.T) {
	ctx := context.Background()
	st, proxy, _, _, art := proxiedFixture(t, Options{})
	require.Equal(t, int64(1), art.Version)
	edit := func(title string, fault storetest.Fault, timeout time.Duration) error {
		a, err := st.ArticleByID(ctx, nil, art.ID)
		require.NoError(t, err)
		a.Title, a.UpdatedAt = title, time.Now().UTC()
		if fault != storetest.None {
			proxy.InjectNext([]storetest.Fault{fault}, "update")
		}
		rctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		return st.UpdateArticle(rctx, a)
	}
	proxy.Late = lateBy
	require.Error(t, edit("A", storetest.Late, 300*time.Millisecond), "held: the request gives up")
	require.NoError(t, edit("A", storetest.None, time.Second), "sent again")
	require.NoError(t, edit("B", storetest.None, time.Second), "the next edit")
	require.Zero(t, proxy.Landed(), "(the held edit must land after the next: a slower machine needs a longer Late)")
	landed(t, proxy, 1)
	got, err := st.ArticleByID(ctx, nil, art.ID)
	require.NoError(t, err)
	assert.Equal(t, "B", got.Title, "the late copy of A changed nothing")
	assert.Equal(t, int64(3), got.Version)

	require.NoError(t, edit("C", storetest.LoseReply, time.Second), "its reply lost, the edit sent again finds itself")
	got, err = st.ArticleByID(ctx, nil, art.ID)
	require.NoError(t, err)
	assert.Equal(t, "C", got.Title)
	assert.Equal(t, int64(4), got.Version)
}

// A deletion whose delete the server holds past its request, while the
// author edits the article: the held delete lands naming the version it
// read, and the edited article stays — and so does Repair's run of the
// deletion's intent.
func TestALateDeletionDoesNotUndoALaterEdit(t *testing.T) {
	ctx := context.Background()
	st, proxy, alice, _, art := proxiedFixture(t, lateOpts)
	proxy.Late = lateBy
	var once sync.Once
	proxy.Observe = func(cmd bson.Raw) {
		if c, _ := cmd.Lookup("delete").StringValueOK(); c == "articles" {
			once.Do(func() { proxy.InjectNext([]storetest.Fault{storetest.Late}, "delete") })
		}
	}
	rctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	err := st.DeleteArticle(rctx, art)
	cancel()
	require.Error(t, err, "the request gave up on the held delete")
	proxy.Observe = nil

	edited, err := st.ArticleByID(ctx, nil, art.ID)
	require.NoError(t, err)
	edited.Body, edited.UpdatedAt = "kept, after the author's edit", time.Now().UTC()
	require.NoError(t, st.UpdateArticle(ctx, edited), "the author edits it")
	require.Zero(t, proxy.Landed(), "(the held delete must land after the edit: a slower machine needs a longer Late)")
	landed(t, proxy, 1)
	settled(t, st)
	got, err := st.ArticleByID(ctx, alice, art.ID)
	require.NoError(t, err, "the edited article stays")
	assert.Equal(t, "kept, after the author's edit", got.Body)
}

// A favorite of an article deleted meanwhile (the reader's page was
// stale), whose insert the server holds past its request and past Repair's
// run of its intent, and after the deletion settled: with no article to
// carry a settling time, the favorite's intent settles, and the favorite
// that lands late is removed then — none is left naming the deleted
// article.
func TestAFavoriteThatLandsAfterItsArticlesDeletionGoes(t *testing.T) {
	ctx := context.Background()
	st, proxy, alice, _, art := proxiedFixture(t, lateOpts)
	require.NoError(t, st.DeleteArticle(ctx, art))
	settled(t, st) // the deletion settled before the favorite came
	favoriteHeld(t, st, proxy, alice, art)
	time.Sleep(200 * time.Millisecond)
	_, err := st.Repair(ctx) // the interrupted favorite: its article is gone
	require.NoError(t, err)
	require.Zero(t, proxy.Landed(), "(the held insert must land after Repair's run: a slower machine needs a longer Late)")
	landed(t, proxy, 1)
	settled(t, st)
	n, err := st.coll("favorites").CountDocuments(ctx, bson.D{{Key: "aid", Value: art.ID}})
	require.NoError(t, err)
	assert.Zero(t, n, "no favorite names the deleted article")
}

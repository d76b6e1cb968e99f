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
		n, err := s.count(ctx, s.coll("favorites"), "t", bson.D{{Key: "aid", Value: a.ID}})
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
	n, err := findAll[intentDoc](ctx, s, s.coll("intents"), "t", bson.D{})
	require.NoError(t, err)
	assert.Empty(t, n, "no write left unfinished")
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

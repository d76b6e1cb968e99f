package store

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"webstack/app/conduit"
)

// A keyed request's copies make the same ids, so the first copy's insert,
// held by the server past its request, lands on an id a later copy made —
// and, when the person has deleted that since, must not bring it back: a
// comment's deletion leaves a tombstone the late insert meets; an
// article's deletion, settling, removes an earlier version that landed
// after it (versions only move on).
func TestALateCopyOfAKeyedCreateDoesNotBringBackADeletion(t *testing.T) {
	t.Run("comment", func(t *testing.T) {
		t.Parallel()
		ctx := context.Background()
		st, proxy, alice, _, art := proxiedFixture(t, lateOpts)
		kctx := conduit.WithRequestKey(ctx, conduit.RequestKey{ID: "comment-key", First: time.Now().UTC().Truncate(time.Millisecond)})
		proxy.Late = lateBy
		lateInsertInto(proxy, "comments")
		rctx, cancel := context.WithTimeout(kctx, 300*time.Millisecond)
		err := st.AddComment(rctx, art.ID, &conduit.Comment{AuthorID: alice.ID, Body: "held"})
		cancel()
		require.Error(t, err, "the request gave up on the held insert")
		proxy.Observe = nil
		c := &conduit.Comment{AuthorID: alice.ID, Body: "held"}
		require.NoError(t, st.AddComment(kctx, art.ID, c), "the copy runs again and makes the same comment")
		require.NoError(t, st.DeleteComment(ctx, art.Slug, c.ID), "the person deletes it")
		require.Zero(t, proxy.Landed(), "(the held insert must land after the deletion: a slower machine needs a longer Late)")
		landed(t, proxy, 1)
		settled(t, st)
		_, err = st.Comment(ctx, art.Slug, c.ID)
		assert.Equal(t, conduit.CodeNotFound, conduit.CodeOf(err), "the deleted comment stays deleted")
		list, _, err := st.Comments(ctx, &conduit.User{ID: alice.ID, LastWrite: time.Now()}, art.Slug, conduit.CommentPage{Limit: conduit.MaxLimit})
		require.NoError(t, err)
		assert.Empty(t, list)
	})
	t.Run("article", func(t *testing.T) {
		t.Parallel()
		ctx := context.Background()
		st, proxy, alice, _, _ := proxiedFixture(t, lateOpts)
		kctx := conduit.WithRequestKey(ctx, conduit.RequestKey{ID: "article-key", First: time.Now().UTC().Truncate(time.Millisecond)})
		proxy.Late = lateBy
		lateInsertInto(proxy, "articles")
		made := func() *conduit.Article {
			return &conduit.Article{Slug: "keyed", Title: "Keyed", Description: "d", Body: "first", TagList: []string{"k"}, AuthorID: alice.ID}
		}
		rctx, cancel := context.WithTimeout(kctx, 300*time.Millisecond)
		err := st.CreateArticle(rctx, made())
		cancel()
		require.Error(t, err, "the request gave up on the held insert")
		proxy.Observe = nil
		a := made()
		require.NoError(t, st.CreateArticle(kctx, a), "the copy runs again and makes the same article")
		for _, body := range []string{"edited", "edited again"} {
			a.Body = body
			require.NoError(t, st.UpdateArticle(ctx, a))
		}
		require.Equal(t, int64(3), a.Version)
		require.NoError(t, st.DeleteArticle(ctx, a), "the author deletes version 3")
		require.Zero(t, proxy.Landed(), "(the held insert must land after the deletion: a slower machine needs a longer Late)")
		landed(t, proxy, 1)
		_, err = st.ArticleByID(ctx, alice, a.ID)
		require.NoError(t, err, "(the held insert landed: version 1 is back for now)")
		settled(t, st)
		_, err = st.ArticleByID(ctx, alice, a.ID)
		assert.Equal(t, conduit.CodeNotFound, conduit.CodeOf(err), "the deletion, settling, removed the late version 1")
	})
}

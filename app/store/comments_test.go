package store

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"webstack/app/conduit"
	"webstack/app/localdb"
)

// A full thread refuses a comment with a clear error and keeps exactly what
// it had; a deletion makes room again.
func TestThreadsHoldABoundedNumberOfComments(t *testing.T) {
	ctx := context.Background()
	db, err := localdb.Start(ctx, "127.0.0.1:0", t.TempDir(), nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Stop(context.Background()) })
	st, err := Open(ctx, "conduit", func(context.Context, string) (string, error) { return db.URI, nil }, Options{MaxComments: 2})
	require.NoError(t, err)
	req := func() context.Context { return st.WithRequest(ctx) }
	u := &conduit.User{Username: "u", Email: "u@example.com", PasswordHash: "x"}
	require.NoError(t, st.CreateUser(req(), u))
	now := time.Now().UTC()
	require.NoError(t, st.CreateArticle(req(), &conduit.Article{Slug: "s", Title: "t", AuthorID: u.ID, CreatedAt: now, UpdatedAt: now}))
	add := func(body string) (*conduit.Comment, error) {
		c := &conduit.Comment{AuthorID: u.ID, Body: body, CreatedAt: now, UpdatedAt: now}
		return c, st.AddComment(req(), "s", c)
	}
	bodies := func() []string {
		list, err := st.Comments(req(), nil, "s")
		require.NoError(t, err)
		var out []string
		for _, c := range list {
			out = append(out, c.Body)
		}
		return out
	}

	first, err := add("one")
	require.NoError(t, err)
	_, err = add("two")
	require.NoError(t, err)
	_, err = add("three")
	assert.Equal(t, conduit.CodeInvalid, conduit.CodeOf(err))
	assert.Equal(t, []string{"one", "two"}, bodies())

	require.NoError(t, st.DeleteComment(req(), "s", first.ID))
	require.NoError(t, st.DeleteComment(req(), "s", first.ID), "deleting twice changes nothing")
	_, err = add("four")
	require.NoError(t, err)
	assert.Equal(t, []string{"two", "four"}, bodies())

	// The text is bounded too, whatever the count.
	st.opts.MaxComments = 1 << 20
	defer func(was int) { maxThreadBytes = was }(maxThreadBytes)
	maxThreadBytes = 4 * conduit.MaxComment
	big := strings.Repeat("x", conduit.MaxComment)
	for range maxThreadBytes/conduit.MaxComment - 1 {
		_, err = add(big)
		require.NoError(t, err)
	}
	_, err = add(big)
	assert.Equal(t, conduit.CodeInvalid, conduit.CodeOf(err))
}

package httpapi_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"webstack/app/conduit"
	"webstack/app/httpapi"
	"webstack/app/store"
)

// A request sent again with its Idempotency-Key is answered, not run
// again: one article, one comment, the same answer byte for byte; the key
// with another body is 422.
func TestARequestSentAgainWithItsKeyIsAnsweredNotRepeated(t *testing.T) {
	srv := newServer(t)
	author := register(t, srv.URL, "author")
	key := map[string]string{"Idempotency-Key": `"8e03978e-40d5-43e8-bc93-6894a57f9324"`}
	post := `{"article":{"title":"Once","description":"d","body":"b"}}`
	st, h, first := author.send("POST", "/api/articles", post, key)
	require.Equal(t, http.StatusCreated, st, "%v", first)
	assert.Empty(t, h.Get(httpapi.ReplayedHeader))
	st, h, again := author.send("POST", "/api/articles", post, key)
	assert.Equal(t, http.StatusCreated, st)
	assert.Equal(t, "true", h.Get(httpapi.ReplayedHeader))
	assert.Equal(t, first, again, "the first answer, again")
	assert.Equal(t, `"1"`, h.Get("ETag"))
	_, _, list := author.send("GET", "/api/articles?author=author", "", nil)
	assert.EqualValues(t, 1, list["articlesCount"], "one article")

	st, _, body := author.send("POST", "/api/articles", `{"article":{"title":"Another","description":"d","body":"b"}}`, key)
	assert.Equal(t, http.StatusUnprocessableEntity, st)
	assert.Contains(t, errorBody(t, body), "Idempotency-Key was used with another request")

	reader := register(t, srv.URL, "reader")
	ckey := map[string]string{"Idempotency-Key": "comment-1"}
	for range 3 {
		st, _, body = reader.send("POST", "/api/articles/once/comments", `{"comment":{"body":"only once"}}`, ckey)
		require.Equal(t, http.StatusOK, st, "%v", body)
	}
	_, _, comments := reader.send("GET", "/api/articles/once/comments", "", nil)
	assert.Len(t, comments["comments"], 1, "one comment")
	id := int64(comments["comments"].([]any)[0].(map[string]any)["id"].(float64))
	dkey := map[string]string{"Idempotency-Key": "delete-1"}
	for range 2 {
		st, _, _ = reader.send("DELETE", fmt.Sprintf("/api/articles/once/comments/%d", id), "", dkey)
		assert.Equal(t, http.StatusNoContent, st, "a deletion sent again with its key is answered as the first")
	}
	st, _, _ = reader.send("DELETE", fmt.Sprintf("/api/articles/once/comments/%d", id), "", nil)
	assert.Equal(t, http.StatusNotFound, st, "without its key: gone")

	// Another person's request with the same key is theirs, not this one.
	st, h, _ = reader.send("POST", "/api/articles", post, key)
	assert.Equal(t, http.StatusCreated, st)
	assert.Empty(t, h.Get(httpapi.ReplayedHeader))

	for _, bad := range []string{`""`, "with space", strings.Repeat("k", 300)} {
		st, _, _ = reader.send("POST", "/api/articles", post, map[string]string{"Idempotency-Key": bad})
		assert.Equal(t, http.StatusUnprocessableEntity, st, "key %q", bad)
	}
}

// slowStore takes its time creating articles, and fails the first one it
// is asked for with "unavailable" when failFirst.
type slowStore struct {
	*store.Store
	delay     time.Duration
	failFirst bool
	once      sync.Once
}

func (s *slowStore) CreateArticle(ctx context.Context, a *conduit.Article) error {
	failed := false
	s.once.Do(func() { failed = s.failFirst })
	if failed {
		return conduit.Unavailable(context.DeadlineExceeded)
	}
	time.Sleep(s.delay)
	return s.Store.CreateArticle(ctx, a)
}

// While the first request with a key runs, a copy is 409 (it is not run
// beside it); an answer that says "try again" (503) is not kept: the copy
// runs.
func TestACopyWaitsForTheFirstAndAFailureIsNotKept(t *testing.T) {
	srv, _ := newServerWithStore(t, func(s *store.Store) httpapi.Store { return &slowStore{Store: s, delay: 500 * time.Millisecond} })
	author := register(t, srv.URL, "author")
	key := map[string]string{"Idempotency-Key": "k1"}
	post := `{"article":{"title":"Slow","description":"d","body":"b"}}`
	var wg sync.WaitGroup
	var firstStatus int
	wg.Go(func() { firstStatus, _, _ = author.send("POST", "/api/articles", post, key) })
	time.Sleep(150 * time.Millisecond)
	st, _, body := author.send("POST", "/api/articles", post, key)
	assert.Equal(t, http.StatusConflict, st, "%v", body)
	assert.Contains(t, errorBody(t, body), "still running")
	wg.Wait()
	assert.Equal(t, http.StatusCreated, firstStatus)

	srv, _ = newServerWithStore(t, func(s *store.Store) httpapi.Store { return &slowStore{Store: s, failFirst: true} })
	author = register(t, srv.URL, "author")
	st, _, _ = author.send("POST", "/api/articles", post, key)
	assert.Equal(t, http.StatusServiceUnavailable, st)
	st, h, body := author.send("POST", "/api/articles", post, key)
	assert.Equal(t, http.StatusCreated, st, "%v", body)
	assert.Empty(t, h.Get(httpapi.ReplayedHeader), "run, not replayed")
}

// writeThenFailStore applies the first article and the first comment it is
// asked to make, then answers "try again" as a request whose write landed
// and whose read-back failed does (the 503 is not kept: the copy runs).
type writeThenFailStore struct {
	*store.Store
	article, comment sync.Once
}

func (s *writeThenFailStore) CreateArticle(ctx context.Context, a *conduit.Article) error {
	failed := false
	s.article.Do(func() { failed = true })
	if err := s.Store.CreateArticle(ctx, a); err != nil || !failed {
		return err
	}
	a.Slug += "-never-answered"
	return conduit.Unavailable(context.DeadlineExceeded)
}

func (s *writeThenFailStore) AddComment(ctx context.Context, articleID string, c *conduit.Comment) error {
	failed := false
	s.comment.Do(func() { failed = true })
	if err := s.Store.AddComment(ctx, articleID, c); err != nil || !failed {
		return err
	}
	return conduit.Unavailable(context.DeadlineExceeded)
}

// A request with a key whose first copy wrote and then answered 503 runs
// again when sent again — and makes nothing twice: what it makes new is
// derived from its key, so the copy finds the article and the comment the
// first copy made. (Without a key the same two requests make two of each.)
func TestACopyThatRunsAgainAfterAFailureMakesNothingTwice(t *testing.T) {
	for _, keyed := range []bool{true, false} {
		srv, _ := newServerWithStore(t, func(s *store.Store) httpapi.Store { return &writeThenFailStore{Store: s} })
		author := register(t, srv.URL, "author")
		key := func(k string) map[string]string {
			if !keyed {
				return nil
			}
			return map[string]string{"Idempotency-Key": k}
		}
		post := `{"article":{"title":"Landed","description":"d","body":"b","tagList":["x"]}}`
		st, _, _ := author.send("POST", "/api/articles", post, key("a1"))
		require.Equal(t, http.StatusServiceUnavailable, st)
		st, _, body := author.send("POST", "/api/articles", post, key("a1"))
		require.Equal(t, http.StatusCreated, st, "%v", body)
		_, _, list := author.send("GET", "/api/articles?author=author", "", nil)
		slug := articleField(body, "slug").(string)
		comment := `{"comment":{"body":"landed once"}}`
		st, _, _ = author.send("POST", "/api/articles/"+slug+"/comments", comment, key("c1"))
		require.Equal(t, http.StatusServiceUnavailable, st)
		st, _, cbody := author.send("POST", "/api/articles/"+slug+"/comments", comment, key("c1"))
		require.Equal(t, http.StatusOK, st, "%v", cbody)
		_, _, comments := author.send("GET", "/api/articles/"+slug+"/comments", "", nil)
		if keyed {
			assert.EqualValues(t, 1, list["articlesCount"], "one article")
			assert.Equal(t, "landed", slug, "the answer is the article the first copy made")
			assert.Len(t, comments["comments"], 1, "one comment")
		} else {
			assert.EqualValues(t, 2, list["articlesCount"], "without a key: two articles (the control)")
			assert.Len(t, comments["comments"], 2, "without a key: two comments (the control)")
		}
	}
}

// A keyed copy that runs again after its first made the article (and
// answered 503) does not take the quota again: at the limit it is the
// article the first made, not 429; so for a comment.
func TestACopyThatRunsAgainDoesNotTakeItsQuotaTwice(t *testing.T) {
	one := httpapi.Quota{Limit: 1, Window: time.Hour}
	srv, _, _ := newServerWrapped(t, false, httpapi.Options{BcryptCost: 4, MaxBodyBytes: 64 << 10,
		Quotas: httpapi.Quotas{Articles: one, Comments: one, CommentsPerArticle: one}}, nil,
		func(s *store.Store) httpapi.Store { return &writeThenFailStore{Store: s} })
	author := register(t, srv.URL, "author")
	key := map[string]string{"Idempotency-Key": "quota-a"}
	post := `{"article":{"title":"Counted once","description":"d","body":"b"}}`
	st, _, _ := author.send("POST", "/api/articles", post, key)
	require.Equal(t, http.StatusServiceUnavailable, st)
	st, _, body := author.send("POST", "/api/articles", post, key)
	assert.Equal(t, http.StatusCreated, st, "the article the first copy made, not 429: %v", body)
	st, _, _ = author.send("POST", "/api/articles", `{"article":{"title":"Another","description":"d","body":"b"}}`, nil)
	assert.Equal(t, http.StatusTooManyRequests, st, "the quota was taken once, and is full")

	ckey := map[string]string{"Idempotency-Key": "quota-c"}
	comment := `{"comment":{"body":"counted once"}}`
	st, _, _ = author.send("POST", "/api/articles/counted-once/comments", comment, ckey)
	require.Equal(t, http.StatusServiceUnavailable, st)
	st, _, body = author.send("POST", "/api/articles/counted-once/comments", comment, ckey)
	assert.Equal(t, http.StatusOK, st, "the comment the first copy made, not 429: %v", body)
}

// A keyed comment whose first copy wrote and answered 503, and which its
// author then deleted, sent again with its key: told it was deleted (404),
// and no other comment is made in its place.
func TestAKeyedCommentSentAgainAfterItsDeletionIsNotMadeAgain(t *testing.T) {
	srv, _ := newServerWithStore(t, func(s *store.Store) httpapi.Store { return &writeThenFailStore{Store: s} })
	author := register(t, srv.URL, "author")
	st, _, body := author.send("POST", "/api/articles", `{"article":{"title":"Deleted under","description":"d","body":"b"}}`, nil)
	require.Equal(t, http.StatusServiceUnavailable, st, "%v", body) // the store's first article: written, then 503
	_, _, list := author.send("GET", "/api/articles?author=author", "", nil)
	slug := list["articles"].([]any)[0].(map[string]any)["slug"].(string)
	key := map[string]string{"Idempotency-Key": "deleted-comment"}
	comment := `{"comment":{"body":"deleted since"}}`
	st, _, _ = author.send("POST", "/api/articles/"+slug+"/comments", comment, key)
	require.Equal(t, http.StatusServiceUnavailable, st)
	_, _, comments := author.send("GET", "/api/articles/"+slug+"/comments", "", nil)
	require.Len(t, comments["comments"], 1, "the first copy made it")
	id := int64(comments["comments"].([]any)[0].(map[string]any)["id"].(float64))
	st, _, _ = author.send("DELETE", fmt.Sprintf("/api/articles/%s/comments/%d", slug, id), "", nil)
	require.Equal(t, http.StatusNoContent, st)
	st, _, body = author.send("POST", "/api/articles/"+slug+"/comments", comment, key)
	assert.Equal(t, http.StatusNotFound, st, "%v", body)
	_, _, comments = author.send("GET", "/api/articles/"+slug+"/comments", "", nil)
	assert.Empty(t, comments["comments"], "no other comment in its place")
}

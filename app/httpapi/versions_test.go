package httpapi_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"webstack/app/conduit"
	"webstack/app/httpapi"
	"webstack/app/store"
)

// send is client.do with extra headers, returning the response's headers.
func (c *client) send(method, path, body string, headers map[string]string) (int, http.Header, map[string]any) {
	c.t.Helper()
	req, err := http.NewRequest(method, c.base+path, strings.NewReader(body))
	require.NoError(c.t, err)
	req.Header.Set("Content-Type", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Token "+c.token)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(c.t, err)
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	_ = json.Unmarshal(raw, &out)
	return resp.StatusCode, resp.Header, out
}

func articleField(body map[string]any, field string) any {
	a, _ := body["article"].(map[string]any)
	return a[field]
}

// Each article carries its version as an ETag; an edit made to another
// version than the current one (If-Match, RFC 9110 §13.1.1) saves nothing
// and answers 412 with the current article; without If-Match an edit
// applies to the version the request read.
func TestAnEditOfAnotherVersionIsRefusedWithTheCurrentOne(t *testing.T) {
	srv := newServer(t)
	author := register(t, srv.URL, "author")
	st, h, body := author.send("POST", "/api/articles", `{"article":{"title":"Versions","description":"d","body":"b"}}`, nil)
	require.Equal(t, http.StatusCreated, st, "%v", body)
	assert.Equal(t, `"1"`, h.Get("ETag"))
	_, h, _ = author.send("GET", "/api/articles/versions", "", nil)
	first := h.Get("ETag")
	require.Equal(t, `"1"`, first)

	// Two tabs read version 1; the first saves.
	st, h, body = author.send("PUT", "/api/articles/versions", `{"article":{"description":"from the first tab"}}`, map[string]string{"If-Match": first})
	require.Equal(t, http.StatusOK, st, "%v", body)
	assert.Equal(t, `"2"`, h.Get("ETag"))
	// The second tab's edit of version 1: refused, with what is there now.
	st, h, body = author.send("PUT", "/api/articles/versions", `{"article":{"body":"from the second tab"}}`, map[string]string{"If-Match": first})
	assert.Equal(t, http.StatusPreconditionFailed, st)
	assert.Equal(t, `"2"`, h.Get("ETag"))
	assert.Equal(t, "from the first tab", articleField(body, "description"), "the current article comes back")
	assert.Equal(t, "b", articleField(body, "body"))
	_, _, body = author.send("GET", "/api/articles/versions", "", nil)
	assert.Equal(t, "b", articleField(body, "body"), "nothing was saved")

	for _, tc := range []struct {
		ifMatch string
		want    int
	}{
		{`"2"`, http.StatusOK},                   // current
		{`"9", "3"`, http.StatusOK},              // one of a list (3 is current after the line above)
		{`W/"4"`, http.StatusPreconditionFailed}, // weak tags never match
		{`*`, http.StatusOK},
		{`"1"`, http.StatusPreconditionFailed},
	} {
		st, _, body = author.send("PUT", "/api/articles/versions", `{"article":{"description":"If-Match `+strings.ReplaceAll(tc.ifMatch, `"`, "")+`"}}`, map[string]string{"If-Match": tc.ifMatch})
		assert.Equal(t, tc.want, st, "If-Match: %s: %v", tc.ifMatch, body)
	}
	st, h, _ = author.send("PUT", "/api/articles/versions", `{"article":{"description":"no If-Match"}}`, nil)
	assert.Equal(t, http.StatusOK, st, "without If-Match: the version read here")
	assert.Equal(t, `"6"`, h.Get("ETag"))
}

// racingStore makes the first edit it is asked to save meet another edit
// of the same version, saved just before it (another tab, another api
// instance, between this request's read and its write).
type racingStore struct {
	*store.Store
	once sync.Once
}

func (s *racingStore) UpdateArticle(ctx context.Context, a *conduit.Article) error {
	s.once.Do(func() {
		other := *a
		other.Description, other.Body = "d", "the other edit's body" // what the article had, and another body
		if err := s.Store.UpdateArticle(ctx, &other); err != nil {
			panic(err)
		}
	})
	return s.Store.UpdateArticle(ctx, a)
}

// Two edits of one version at once (no If-Match): one is saved, the other
// is 409 with the current article — never both 200 with one's fields
// silently dropped.
func TestConcurrentEditsNeverDropAFieldSilently(t *testing.T) {
	srv, st := newServerWithStore(t, func(s *store.Store) httpapi.Store { return &racingStore{Store: s} })
	_ = st
	author := register(t, srv.URL, "author")
	code, _, body := author.send("POST", "/api/articles", `{"article":{"title":"Raced","description":"d","body":"b"}}`, nil)
	require.Equal(t, http.StatusCreated, code, "%v", body)
	code, h, body := author.send("PUT", "/api/articles/raced", `{"article":{"description":"this edit"}}`, nil)
	assert.Equal(t, http.StatusConflict, code, "%v", body)
	assert.Equal(t, "the other edit's body", articleField(body, "body"), "the current article comes back")
	assert.Equal(t, "d", articleField(body, "description"), "this edit saved nothing")
	assert.Equal(t, `"2"`, h.Get("ETag"))
}

// A deletion honours If-Match as an edit does: another version is 412,
// and the article stays.
func TestADeletionOfAnotherVersionIsRefused(t *testing.T) {
	srv := newServer(t)
	author := register(t, srv.URL, "author")
	st, _, body := author.send("POST", "/api/articles", `{"article":{"title":"Kept","description":"d","body":"b"}}`, nil)
	require.Equal(t, http.StatusCreated, st, "%v", body)
	st, _, _ = author.send("PUT", "/api/articles/kept", `{"article":{"body":"edited"}}`, nil)
	require.Equal(t, http.StatusOK, st)
	st, h, body := author.send("DELETE", "/api/articles/kept", "", map[string]string{"If-Match": `"1"`})
	assert.Equal(t, http.StatusPreconditionFailed, st)
	assert.Equal(t, `"2"`, h.Get("ETag"))
	assert.Equal(t, "edited", articleField(body, "body"))
	st, _, _ = author.send("GET", "/api/articles/kept", "", nil)
	assert.Equal(t, http.StatusOK, st, "still there")
	st, _, _ = author.send("DELETE", "/api/articles/kept", "", map[string]string{"If-Match": `"2"`})
	assert.Equal(t, http.StatusNoContent, st)
}

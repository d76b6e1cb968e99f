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

func userField(body map[string]any, field string) any {
	u, _ := body["user"].(map[string]any)
	return u[field]
}

// The account's settings carry their version as an ETag, as articles do: a
// change made to another version (If-Match) saves nothing and answers 412
// with the current settings; without If-Match a change applies to the
// version the request read.
func TestASettingsChangeOfAnotherVersionIsRefusedWithTheCurrentOne(t *testing.T) {
	srv := newServer(t)
	me := register(t, srv.URL, "settled")
	_, h, _ := me.send("GET", "/api/user", "", nil)
	first := h.Get("ETag")
	require.Equal(t, `"1"`, first)
	st, h, body := me.send("PUT", "/api/user", `{"user":{"bio":"from the first tab"}}`, map[string]string{"If-Match": first})
	require.Equal(t, http.StatusOK, st, "%v", body)
	assert.Equal(t, `"2"`, h.Get("ETag"))
	st, h, body = me.send("PUT", "/api/user", `{"user":{"image":"https://example.com/second-tab.png"}}`, map[string]string{"If-Match": first})
	assert.Equal(t, http.StatusPreconditionFailed, st)
	assert.Equal(t, `"2"`, h.Get("ETag"))
	assert.Equal(t, "from the first tab", userField(body, "bio"), "the current settings come back")
	assert.Nil(t, userField(body, "image"), "nothing was saved")
	assert.NotEmpty(t, userField(body, "token"), "the answer is still the account's, with its token")
	st, h, _ = me.send("PUT", "/api/user", `{"user":{"bio":"no If-Match"}}`, nil)
	assert.Equal(t, http.StatusOK, st, "without If-Match: the version read here")
	assert.Equal(t, `"3"`, h.Get("ETag"))
}

// racingUserStore makes the first settings change it is asked to save meet
// another change of the same version, saved just before it.
type racingUserStore struct {
	*store.Store
	once sync.Once
}

func (s *racingUserStore) UpdateUser(ctx context.Context, old, u *conduit.User) error {
	s.once.Do(func() {
		other := *old
		other.Bio = "the other tab's bio"
		if err := s.Store.UpdateUser(ctx, old, &other); err != nil {
			panic(err)
		}
	})
	return s.Store.UpdateUser(ctx, old, u)
}

// Two changes of one version of the settings at once (no If-Match): one is
// saved, the other is 409 with the current settings — never both 200 with
// one's fields silently dropped.
func TestConcurrentSettingsChangesNeverDropAFieldSilently(t *testing.T) {
	srv, _ := newServerWithStore(t, func(s *store.Store) httpapi.Store { return &racingUserStore{Store: s} })
	me := register(t, srv.URL, "raced")
	code, h, body := me.send("PUT", "/api/user", `{"user":{"image":"https://example.com/mine.png"}}`, nil)
	assert.Equal(t, http.StatusConflict, code, "%v", body)
	assert.Equal(t, "the other tab's bio", userField(body, "bio"), "the current settings come back")
	assert.Nil(t, userField(body, "image"), "this change saved nothing")
	assert.Equal(t, `"2"`, h.Get("ETag"))
}

// A sign-up sent again (its reply lost, the form posted twice) is answered
// as the first was — signed in to the account it made — not "taken"; the
// same email with another password or username is still taken.
func TestASignUpSentAgainSignsInToTheAccountItMade(t *testing.T) {
	srv := newServer(t)
	c := &client{t: t, base: srv.URL}
	body := `{"user":{"username":"twice","email":"twice@example.com","password":"correct-horse-1"}}`
	st, first := c.do("POST", "/api/users", body)
	require.Equal(t, http.StatusCreated, st, "%v", first)
	st, again := c.do("POST", "/api/users", body)
	require.Equal(t, http.StatusCreated, st, "sent again: %v", again)
	assert.Equal(t, "twice", userField(again, "username"))
	for _, token := range []any{userField(first, "token"), userField(again, "token")} {
		me := &client{t: t, base: srv.URL, token: token.(string)}
		st, _ := me.do("GET", "/api/user", "")
		assert.Equal(t, http.StatusOK, st, "both answers' tokens open the one account")
	}
	for _, other := range []string{
		`{"user":{"username":"twice","email":"twice@example.com","password":"another-horse-2"}}`,
		`{"user":{"username":"thrice","email":"twice@example.com","password":"correct-horse-1"}}`,
		`{"user":{"username":"twice","email":"other@example.com","password":"correct-horse-1"}}`,
	} {
		st, out := c.do("POST", "/api/users", other)
		assert.Equal(t, http.StatusUnprocessableEntity, st, "%s: %v", other, out)
	}
}

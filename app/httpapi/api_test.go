package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"webstack/app/httpapi"
	"webstack/app/localdb"
	"webstack/app/observe"
	"webstack/app/store"
)

// newServer starts the real API over HTTP on an embedded FerretDB in a temp dir.
func newServer(t *testing.T) *httptest.Server {
	t.Helper()
	srv, _ := newServerVia(t, false)
	return srv
}

// newServerVia is newServer, optionally with a cuttable TCP proxy between
// the API and the database.
func newServerVia(t *testing.T, proxied bool) (*httptest.Server, *cutProxy) {
	t.Helper()
	return newServerWith(t, proxied, httpapi.Options{BcryptCost: 4, MaxBodyBytes: 64 << 10}, nil)
}

// newServerWith is newServerVia with the API's options, mounted as the
// server mounts it (the observe middleware: request ids, client address),
// logging to log (nil: nowhere).
func newServerWith(t *testing.T, proxied bool, opts httpapi.Options, log *slog.Logger) (*httptest.Server, *cutProxy) {
	t.Helper()
	srv, proxy, _ := newServerWrapped(t, proxied, opts, log, nil)
	return srv, proxy
}

// newServerWithStore is newServer with the API on wrap(the store): a test
// double that changes what the store does at one point.
func newServerWithStore(t *testing.T, wrap func(*store.Store) httpapi.Store) (*httptest.Server, *store.Store) {
	t.Helper()
	srv, _, st := newServerWrapped(t, false, httpapi.Options{BcryptCost: 4, MaxBodyBytes: 64 << 10}, nil, wrap)
	return srv, st
}

func newServerWrapped(t *testing.T, proxied bool, opts httpapi.Options, log *slog.Logger, wrap func(*store.Store) httpapi.Store) (*httptest.Server, *cutProxy, *store.Store) {
	t.Helper()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx := context.Background()
	db, err := localdb.Start(ctx, "127.0.0.1:0", t.TempDir(), nil)
	require.NoError(t, err)
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = db.Stop(sctx)
	})
	uri := db.URI
	var proxy *cutProxy
	if proxied {
		proxy = newCutProxy(t, strings.TrimSuffix(strings.TrimPrefix(uri, "mongodb://"), "/"))
		uri = "mongodb://" + proxy.addr + "/"
	}
	// Every read checks the generations: the tests read right after writing.
	st, err := store.Open(ctx, "conduit", func(context.Context, string) (string, error) { return uri, nil }, store.Options{LagTolerance: -1})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close(context.Background()) })
	require.NoError(t, st.Migrate(ctx))
	tokens, err := httpapi.NewTokens(httpapi.Secret(strings.Repeat("k", 32)), time.Hour)
	require.NoError(t, err)
	var backend httpapi.Store = st
	if wrap != nil {
		backend = wrap(st)
	}
	api := httpapi.New(backend, tokens, log, opts)
	srv := httptest.NewServer(observe.NewMetrics("api").Middleware(log, httpapi.Route, opts.TrustedProxies, api))
	t.Cleanup(srv.Close)
	return srv, proxy, st
}

type client struct {
	t     *testing.T
	base  string
	token string
	from  string // the client address a trusted proxy says (X-Forwarded-For)
}

func (c *client) do(method, path, body string) (int, map[string]any) {
	c.t.Helper()
	req, err := http.NewRequest(method, c.base+path, strings.NewReader(body))
	require.NoError(c.t, err)
	req.Header.Set("Content-Type", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Token "+c.token)
	}
	if c.from != "" {
		req.Header.Set("X-Forwarded-For", c.from)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(c.t, err)
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	_ = json.Unmarshal(raw, &out)
	return resp.StatusCode, out
}

func register(t *testing.T, base, name string) *client {
	t.Helper()
	c := &client{t: t, base: base}
	st, body := c.do("POST", "/api/users", `{"user":{"username":"`+name+`","email":"`+name+`@example.com","password":"correct-horse-1"}}`)
	require.Equal(t, http.StatusCreated, st, "register %s: %v", name, body)
	c.token = body["user"].(map[string]any)["token"].(string)
	return c
}

func errorBody(t *testing.T, body map[string]any) string {
	t.Helper()
	errs, ok := body["errors"].(map[string]any)
	require.True(t, ok, "error shape: %v", body)
	list := errs["body"].([]any)
	require.NotEmpty(t, list)
	return list[0].(string)
}

func TestConduitEndpoints(t *testing.T) {
	srv := newServer(t)
	jake := register(t, srv.URL, "jake")
	anna := register(t, srv.URL, "anna")
	anon := &client{t: t, base: srv.URL}

	st, body := jake.do("POST", "/api/articles", `{"article":{"title":"How to train your dragon","description":"d","body":"b","tagList":["training","dragons","dragons"]}}`)
	require.Equal(t, http.StatusCreated, st, "%v", body)
	art := body["article"].(map[string]any)
	assert.Equal(t, "how-to-train-your-dragon", art["slug"])
	assert.Equal(t, []any{"dragons", "training"}, art["tagList"], "tags sorted and de-duplicated")

	// A second article with the same title gets a unique slug.
	st, body = anna.do("POST", "/api/articles", `{"article":{"title":"How to train your dragon","description":"d","body":"b"}}`)
	require.Equal(t, http.StatusCreated, st)
	annaSlug := body["article"].(map[string]any)["slug"].(string)
	assert.NotEqual(t, "how-to-train-your-dragon", annaSlug)

	commentID := "" // the comment's, once made
	tests := []struct {
		name   string
		c      *client
		method string
		path   string
		body   string
		status int
		check  func(t *testing.T, body map[string]any)
	}{
		{"login", anon, "POST", "/api/users/login", `{"user":{"email":"JAKE@example.com","password":"correct-horse-1"}}`, 200, nil},
		{"login wrong password", anon, "POST", "/api/users/login", `{"user":{"email":"jake@example.com","password":"nope-nope"}}`, 401, nil},
		{"login unknown email", anon, "POST", "/api/users/login", `{"user":{"email":"nobody@example.com","password":"correct-horse-1"}}`, 401, nil},
		{"register taken username", anon, "POST", "/api/users", `{"user":{"username":"jake","email":"other@example.com","password":"correct-horse-1"}}`, 422, nil},
		{"register bad email", anon, "POST", "/api/users", `{"user":{"username":"x1","email":"nope","password":"correct-horse-1"}}`, 422, nil},
		{"register short password", anon, "POST", "/api/users", `{"user":{"username":"x2","email":"x2@example.com","password":"short"}}`, 422, nil},
		{"current user", jake, "GET", "/api/user", "", 200, func(t *testing.T, b map[string]any) {
			assert.Equal(t, "jake", b["user"].(map[string]any)["username"])
		}},
		{"current user without token", anon, "GET", "/api/user", "", 401, nil},
		{"update user", jake, "PUT", "/api/user", `{"user":{"bio":"I like dragons"}}`, 200, func(t *testing.T, b map[string]any) {
			assert.Equal(t, "I like dragons", b["user"].(map[string]any)["bio"])
		}},
		{"update user to taken email", jake, "PUT", "/api/user", `{"user":{"email":"anna@example.com","currentPassword":"correct-horse-1"}}`, 422, nil},
		{"profile", anon, "GET", "/api/profiles/anna", "", 200, nil},
		{"profile unknown", anon, "GET", "/api/profiles/nobody", "", 404, nil},
		{"follow", jake, "POST", "/api/profiles/anna/follow", `{"user":{"email":"ignored"}}`, 200, func(t *testing.T, b map[string]any) {
			assert.Equal(t, true, b["profile"].(map[string]any)["following"])
		}},
		{"follow yourself", jake, "POST", "/api/profiles/jake/follow", "", 422, nil},
		{"feed has followed authors only", jake, "GET", "/api/articles/feed", "", 200, func(t *testing.T, b map[string]any) {
			assert.Equal(t, float64(1), b["articlesCount"])
			assert.Equal(t, annaSlug, b["articles"].([]any)[0].(map[string]any)["slug"])
		}},
		{"feed without token", anon, "GET", "/api/articles/feed", "", 401, nil},
		{"list by tag", anon, "GET", "/api/articles?tag=dragons", "", 200, func(t *testing.T, b map[string]any) {
			assert.Equal(t, float64(1), b["articlesCount"])
			assert.NotContains(t, b["articles"].([]any)[0], "body", "lists omit bodies")
		}},
		{"list by author", anon, "GET", "/api/articles?author=anna", "", 200, func(t *testing.T, b map[string]any) {
			assert.Equal(t, float64(1), b["articlesCount"])
		}},
		{"list by unknown author", anon, "GET", "/api/articles?author=nobody", "", 200, func(t *testing.T, b map[string]any) {
			assert.Equal(t, float64(0), b["articlesCount"])
			assert.Equal(t, []any{}, b["articles"])
		}},
		{"list paging", anon, "GET", "/api/articles?limit=1&offset=1", "", 200, func(t *testing.T, b map[string]any) {
			assert.Equal(t, float64(2), b["articlesCount"])
			assert.Len(t, b["articles"], 1)
		}},
		{"list bad limit", anon, "GET", "/api/articles?limit=0", "", 422, nil},
		{"list bad offset", anon, "GET", "/api/articles?offset=-1", "", 422, nil},
		{"list offset past the bound", anon, "GET", "/api/articles?offset=1001", "", 422, func(t *testing.T, b map[string]any) {
			assert.Contains(t, errorBody(t, b), "0 to 1000")
		}},
		{"list offset at the bound", anon, "GET", "/api/articles?offset=1000", "", 200, nil},
		{"favorite", anna, "POST", "/api/articles/how-to-train-your-dragon/favorite", "", 200, func(t *testing.T, b map[string]any) {
			assert.Equal(t, true, b["article"].(map[string]any)["favorited"])
			assert.Equal(t, float64(1), b["article"].(map[string]any)["favoritesCount"])
		}},
		{"favorite twice counts once", anna, "POST", "/api/articles/how-to-train-your-dragon/favorite", "", 200, func(t *testing.T, b map[string]any) {
			assert.Equal(t, float64(1), b["article"].(map[string]any)["favoritesCount"])
		}},
		{"list favorited", anon, "GET", "/api/articles?favorited=anna", "", 200, func(t *testing.T, b map[string]any) {
			assert.Equal(t, float64(1), b["articlesCount"])
		}},
		{"unfavorite", anna, "DELETE", "/api/articles/how-to-train-your-dragon/favorite", "", 200, func(t *testing.T, b map[string]any) {
			assert.Equal(t, float64(0), b["article"].(map[string]any)["favoritesCount"])
		}},
		{"get article", anon, "GET", "/api/articles/how-to-train-your-dragon", "", 200, nil},
		{"get missing article", anon, "GET", "/api/articles/no-such-article", "", 404, nil},
		{"get invalid slug", anon, "GET", "/api/articles/Bad$Slug", "", 404, nil},
		{"update others' article", anna, "PUT", "/api/articles/how-to-train-your-dragon", `{"article":{"body":"mine now"}}`, 403, nil},
		{"delete others' article", anna, "DELETE", "/api/articles/how-to-train-your-dragon", "", 403, nil},
		{"update own article title changes slug", jake, "PUT", "/api/articles/how-to-train-your-dragon", `{"article":{"title":"Did you train your dragon?"}}`, 200, func(t *testing.T, b map[string]any) {
			assert.Equal(t, "did-you-train-your-dragon", b["article"].(map[string]any)["slug"])
			assert.Equal(t, []any{"dragons", "training"}, b["article"].(map[string]any)["tagList"], "an update without tagList keeps the tags")
		}},
		{"update replaces the tags when tagList is given", jake, "PUT", "/api/articles/did-you-train-your-dragon", `{"article":{"tagList":["training"," dragons ","wings"]}}`, 200, func(t *testing.T, b map[string]any) {
			assert.Equal(t, []any{"dragons", "training", "wings"}, b["article"].(map[string]any)["tagList"])
		}},
		{"update refuses an empty tag", jake, "PUT", "/api/articles/did-you-train-your-dragon", `{"article":{"tagList":["dragons",""]}}`, 422, nil},
		{"update back to the first tags", jake, "PUT", "/api/articles/did-you-train-your-dragon", `{"article":{"tagList":["dragons","training"]}}`, 200, nil},
		{"create article without auth", anon, "POST", "/api/articles", `{"article":{"title":"t","description":"d","body":"b"}}`, 401, nil},
		{"create article missing body", jake, "POST", "/api/articles", `{"article":{"title":"t","description":"d"}}`, 422, nil},
		{"comment", anna, "POST", "/api/articles/did-you-train-your-dragon/comments", `{"comment":{"body":"Nice"}}`, 200, func(t *testing.T, b map[string]any) {
			id, ok := b["comment"].(map[string]any)["id"].(float64)
			require.True(t, ok, "an integer id")
			assert.Positive(t, id)
			assert.Less(t, id, float64(1<<53), "exact in JavaScript")
			commentID = strconv.FormatFloat(id, 'f', -1, 64)
		}},
		{"comments", anon, "GET", "/api/articles/did-you-train-your-dragon/comments", "", 200, func(t *testing.T, b map[string]any) {
			assert.Len(t, b["comments"], 1)
		}},
		{"delete others' comment", jake, "DELETE", "/api/articles/did-you-train-your-dragon/comments/{cid}", "", 403, nil},
		{"delete comment bad id", anna, "DELETE", "/api/articles/did-you-train-your-dragon/comments/abc", "", 422, nil},
		{"delete missing comment", anna, "DELETE", "/api/articles/did-you-train-your-dragon/comments/99", "", 404, nil},
		{"delete own comment", anna, "DELETE", "/api/articles/did-you-train-your-dragon/comments/{cid}", "", 204, nil},
		{"deleted comment is gone", anon, "GET", "/api/articles/did-you-train-your-dragon/comments", "", 200, func(t *testing.T, b map[string]any) {
			assert.Empty(t, b["comments"])
		}},
		{"delete deleted comment", anna, "DELETE", "/api/articles/did-you-train-your-dragon/comments/{cid}", "", 404, nil},
		{"tags", anon, "GET", "/api/tags", "", 200, func(t *testing.T, b map[string]any) {
			assert.Equal(t, []any{"dragons", "training"}, b["tags"])
		}},
		{"unfollow", jake, "DELETE", "/api/profiles/anna/follow", "", 200, func(t *testing.T, b map[string]any) {
			assert.Equal(t, false, b["profile"].(map[string]any)["following"])
		}},
		{"bad token", &client{t: t, base: srv.URL, token: "not.a.jwt"}, "GET", "/api/articles", "", 401, nil},
		{"unknown endpoint", anon, "GET", "/api/nothing", "", 404, nil},
		{"delete own article", jake, "DELETE", "/api/articles/did-you-train-your-dragon", "", 204, nil},
		{"tags after delete", anon, "GET", "/api/tags", "", 200, func(t *testing.T, b map[string]any) {
			assert.Equal(t, []any{}, b["tags"], "tags of deleted articles disappear")
		}},
	}
	for _, tt := range tests {
		tt.path = strings.ReplaceAll(tt.path, "{cid}", commentID)
		st, body := tt.c.do(tt.method, tt.path, tt.body)
		if !assert.Equal(t, tt.status, st, "%s: %s %s = %d, want %d (%v)", tt.name, tt.method, tt.path, st, tt.status, body) {
			continue
		}
		if st >= 400 {
			assert.NotEmpty(t, errorBody(t, body), tt.name)
		}
		if tt.check != nil {
			tt.check(t, body)
		}
	}
}

func TestBadInputIsRejectedNotInterpreted(t *testing.T) {
	srv := newServer(t)
	jake := register(t, srv.URL, "jake")
	anon := &client{t: t, base: srv.URL}
	tests := []struct {
		name   string
		c      *client
		method string
		path   string
		body   string
		status int
	}{
		{"operator as login email", anon, "POST", "/api/users/login", `{"user":{"email":{"$ne":""},"password":"correct-horse-1"}}`, 422},
		{"operator as password", anon, "POST", "/api/users/login", `{"user":{"email":"jake@example.com","password":{"$gt":""}}}`, 422},
		{"operator as username", anon, "POST", "/api/users", `{"user":{"username":{"$ne":null},"email":"a@b.co","password":"correct-horse-1"}}`, 422},
		{"operator as title", jake, "POST", "/api/articles", `{"article":{"title":{"$ne":""},"description":"d","body":"b"}}`, 422},
		{"operator in tagList", jake, "POST", "/api/articles", `{"article":{"title":"t","description":"d","body":"b","tagList":[{"$ne":""}]}}`, 422},
		{"operator as comment", jake, "POST", "/api/articles/x/comments", `{"comment":{"body":{"$where":"1"}}}`, 422},
		{"unknown field", anon, "POST", "/api/users", `{"user":{"username":"u","email":"u@b.co","password":"correct-horse-1","admin":true}}`, 422},
		{"trailing data", anon, "POST", "/api/users/login", `{"user":{"email":"a@b.co","password":"p"}} {}`, 422},
		{"not JSON", anon, "POST", "/api/users/login", `user=jake`, 422},
		{"empty body", anon, "POST", "/api/users/login", ``, 422},
		{"oversized body", jake, "POST", "/api/articles", `{"article":{"title":"t","description":"d","body":"` + strings.Repeat("a", 70<<10) + `"}}`, 413},
		{"script URL as image", jake, "PUT", "/api/user", `{"user":{"image":"javascript:alert(document.cookie)"}}`, 422},
		{"bidi override in a tag", jake, "POST", "/api/articles", `{"article":{"title":"t","description":"d","body":"b","tagList":["\u202etxt.exe"]}}`, 422},
		{"NUL in a title", jake, "POST", "/api/articles", `{"article":{"title":"a\u0000b","description":"d","body":"b"}}`, 422},
		{"dot-dot username", anon, "POST", "/api/users", `{"user":{"username":"..","email":"dd@b.co","password":"correct-horse-1"}}`, 422},
		{"common password", anon, "POST", "/api/users", `{"user":{"username":"cp","email":"cp@b.co","password":"qwerty123456"}}`, 422},
		{"password change with the token alone", jake, "PUT", "/api/user", `{"user":{"password":"taken-over-account"}}`, 403},
	}
	for _, tt := range tests {
		st, body := tt.c.do(tt.method, tt.path, tt.body)
		assert.Equal(t, tt.status, st, "%s: %s %s = %d, want %d (%v)", tt.name, tt.method, tt.path, st, tt.status, body)
	}
	st, body := anon.do("GET", "/api/articles?author[$ne]=x&tag=%7B%22%24ne%22%3A%22%22%7D", "")
	assert.Equal(t, 200, st)
	assert.Equal(t, float64(0), body["articlesCount"], "query values are literal strings, never operators")
}

func TestDatabaseOutageAnswers503QuicklyAndRecovers(t *testing.T) {
	srv, proxy := newServerVia(t, true)
	jake := register(t, srv.URL, "jake")
	anon := &client{t: t, base: srv.URL}
	st, _ := anon.do("GET", "/api/tags", "")
	require.Equal(t, http.StatusOK, st)

	proxy.Cut()
	for _, req := range []struct {
		c                  *client
		method, path, body string
	}{
		{anon, "GET", "/api/tags", ""},
		{anon, "GET", "/api/articles", ""},
		{jake, "POST", "/api/articles", `{"article":{"title":"t","description":"d","body":"b"}}`},
	} {
		start := time.Now()
		st, body := req.c.do(req.method, req.path, req.body)
		assert.Equal(t, http.StatusServiceUnavailable, st, "%s %s during outage: %v", req.method, req.path, body)
		assert.Less(t, time.Since(start), 2*time.Second, "%s %s answers within 2s", req.method, req.path)
		assert.Equal(t, "service temporarily unavailable", errorBody(t, body))
	}
	st, _ = anon.do("GET", "/readyz", "")
	assert.Equal(t, http.StatusServiceUnavailable, st, "/readyz fails while the database is unreachable")
	st, _ = anon.do("GET", "/healthz", "")
	assert.Equal(t, http.StatusOK, st, "/healthz does not touch the database")

	proxy.Resume()
	assert.Eventually(t, func() bool {
		st, _ := anon.do("GET", "/readyz", "")
		return st == http.StatusOK
	}, 15*time.Second, 200*time.Millisecond, "service resumes without a restart")
	st, _ = jake.do("POST", "/api/articles", `{"article":{"title":"after","description":"d","body":"b"}}`)
	assert.Equal(t, http.StatusCreated, st)
}

func TestCORSPreflight(t *testing.T) {
	srv := newServer(t)
	req, _ := http.NewRequest("OPTIONS", srv.URL+"/api/articles", nil)
	req.Header.Set("Origin", "http://localhost:4200")
	req.Header.Set("Access-Control-Request-Method", "POST")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusNoContent, resp.StatusCode)
	assert.Equal(t, "*", resp.Header.Get("Access-Control-Allow-Origin"))
	assert.Contains(t, resp.Header.Get("Access-Control-Allow-Headers"), "Content-Type")
}

func FuzzDecode(f *testing.F) {
	for _, s := range []string{`{"user":{"email":"a@b.co","password":"p"}}`, `{"user":{"email":{"$ne":""}}}`, `[]`, `{"user":null}`, `{}{}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var req struct {
			User *struct {
				Email    string `json:"email"`
				Password string `json:"password"`
			} `json:"user"`
		}
		err := httpapi.Decode(bytes.NewReader(data), &req)
		if err == nil && !json.Valid(data) {
			t.Fatalf("Decode accepted invalid JSON %q", data)
		}
	})
}

package httpapi_test

import (
	"bytes"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"webstack/app/httpapi"
)

func TestGetUserGivesBackThePresentedToken(t *testing.T) {
	srv := newServer(t)
	jake := register(t, srv.URL, "jake")
	time.Sleep(1100 * time.Millisecond) // a token issued now would differ (iat)
	st, body := jake.do("GET", "/api/user", "")
	require.Equal(t, http.StatusOK, st)
	assert.Equal(t, jake.token, body["user"].(map[string]any)["token"], "asking again does not extend the session")
}

func TestAPasswordChangeEndsEverySessionBeforeIt(t *testing.T) {
	srv := newServer(t)
	jake := register(t, srv.URL, "jake")
	other := &client{t: t, base: srv.URL, token: jake.token} // the same session, on another device
	st, body := jake.do("PUT", "/api/user", `{"user":{"password":"new-horse-battery","currentPassword":"correct-horse-1"}}`)
	require.Equal(t, http.StatusOK, st, "%v", body)
	fresh := body["user"].(map[string]any)["token"].(string)
	assert.NotEqual(t, jake.token, fresh)
	st, _ = other.do("GET", "/api/user", "")
	assert.Equal(t, http.StatusUnauthorized, st, "a token from before the change is void")
	jake.token = fresh
	st, _ = jake.do("GET", "/api/user", "")
	assert.Equal(t, http.StatusOK, st)
	st, _ = jake.do("PUT", "/api/user", `{"user":{"bio":"same session"}}`)
	assert.Equal(t, http.StatusOK, st, "a change that is not the password keeps the session")
}

func TestTakingOverAnAccountNeedsTheCurrentPassword(t *testing.T) {
	srv := newServer(t)
	jake := register(t, srv.URL, "jake")
	tests := []struct {
		name, body string
		want       int
	}{
		{"password without the current one", `{"user":{"password":"stolen-token-pass"}}`, 403},
		{"password with a wrong current one", `{"user":{"password":"stolen-token-pass","currentPassword":"guess-guess-guess"}}`, 403},
		{"email to another address without it", `{"user":{"email":"thief@example.com"}}`, 403},
		{"email to the same address (as the Postman suite does)", `{"user":{"email":"JAKE@example.com"}}`, 200},
		{"bio with the token alone", `{"user":{"bio":"hi"}}`, 200},
		{"email to another address with it", `{"user":{"email":"jake2@example.com","currentPassword":"correct-horse-1"}}`, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, body := jake.do("PUT", "/api/user", tt.body)
			assert.Equal(t, tt.want, st, "%v", body)
		})
	}
}

// syncBuffer is a log destination tests read while the server writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func TestSignInIsThrottledPerAccountAndPerClient(t *testing.T) {
	logs := &syncBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, nil))
	srv, _ := newServerWith(t, false, httpapi.Options{BcryptCost: 4, LoginFailuresPerAccount: 3, LoginFailuresPerClient: 5, LoginWindow: 2 * time.Second}, log)
	register(t, srv.URL, "jake")
	register(t, srv.URL, "anna")
	anon := &client{t: t, base: srv.URL}
	login := func(email, password string) (int, http.Header) {
		req, err := http.NewRequest("POST", srv.URL+"/api/users/login", strings.NewReader(`{"user":{"email":"`+email+`","password":"`+password+`"}}`))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode, resp.Header
	}
	_ = anon
	for range 3 {
		st, _ := login("jake@example.com", "wrong-wrong-wrong")
		require.Equal(t, http.StatusUnauthorized, st)
	}
	st, h := login("jake@example.com", "correct-horse-1")
	assert.Equal(t, http.StatusTooManyRequests, st, "past the account's limit even the right password waits")
	assert.NotEmpty(t, h.Get("Retry-After"))
	st, _ = login("anna@example.com", "correct-horse-1")
	assert.Equal(t, http.StatusOK, st, "another account is not locked by jake's")
	st, _ = login("anna@example.com", "wrong-wrong-wrong")
	require.Equal(t, http.StatusUnauthorized, st)
	st, _ = login("nobody@example.com", "wrong-wrong-wrong")
	require.Equal(t, http.StatusUnauthorized, st) // 5 failures from this client now
	st, _ = login("anna@example.com", "correct-horse-1")
	assert.Equal(t, http.StatusTooManyRequests, st, "past the client's limit every account waits")

	out := logs.String()
	assert.Contains(t, out, `"msg":"sign-in failed"`)
	assert.Contains(t, out, `"client":"127.0.0.1"`, "failures are logged with the client's address")
	assert.NotContains(t, out, "jake@example.com", "not with the email itself")
	assert.Contains(t, out, `"status":429`, "429s are logged (at WARN)")

	time.Sleep(2100 * time.Millisecond)
	st, _ = login("jake@example.com", "correct-horse-1")
	assert.Equal(t, http.StatusOK, st, "the window ends")
}

func TestTheAPIRefusesWhatItShouldNotStore(t *testing.T) {
	srv := newServer(t)
	jake := register(t, srv.URL, "jake")
	register(t, srv.URL, "bob")
	anon := &client{t: t, base: srv.URL}
	tests := []struct {
		name         string
		c            *client
		method, path string
		body         string
		want         int
	}{
		{"a username differing only in case", anon, "POST", "/api/users", `{"user":{"username":"Jake","email":"j2@example.com","password":"correct-horse-1"}}`, 422},
		{"renaming to another's name in capitals", jake, "PUT", "/api/user", `{"user":{"username":"BOB"}}`, 422},
		{"username ..", anon, "POST", "/api/users", `{"user":{"username":"..","email":"d@example.com","password":"correct-horse-1"}}`, 422},
		{"password 12345678", anon, "POST", "/api/users", `{"user":{"username":"p1","email":"p1@example.com","password":"12345678"}}`, 422},
		{"password of twelve spaces", anon, "POST", "/api/users", `{"user":{"username":"p2","email":"p2@example.com","password":"            "}}`, 422},
		{"javascript: image", jake, "PUT", "/api/user", `{"user":{"image":"javascript:alert(document.cookie)"}}`, 422},
		{"bio with a bidi override", jake, "PUT", "/api/user", `{"user":{"bio":"\u202Eevil"}}`, 422},
		{"tag with NUL", jake, "POST", "/api/articles", `{"article":{"title":"t","description":"d","body":"b","tagList":["a\u0000"]}}`, 422},
		{"zero-width tag", jake, "POST", "/api/articles", `{"article":{"title":"t","description":"d","body":"b","tagList":["\u200b"]}}`, 422},
		{"title with a control character", jake, "POST", "/api/articles", `{"article":{"title":"a\u001bb","description":"d","body":"b"}}`, 422},
		{"description with U+202E", jake, "POST", "/api/articles", `{"article":{"title":"t","description":"\u202Ed","body":"b"}}`, 422},
		{"an ordinary article", jake, "POST", "/api/articles", `{"article":{"title":"Dragons 🐉","description":"d","body":"b\nc","tagList":["dragons"]}}`, 201},
		{"an https image", jake, "PUT", "/api/user", `{"user":{"image":"https://example.com/me.png"}}`, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, body := tt.c.do(tt.method, tt.path, tt.body)
			assert.Equal(t, tt.want, st, "%v", body)
		})
	}
}

func TestAPIResponsesForbidEverythingABrowserCouldDoWithThem(t *testing.T) {
	srv := newServer(t)
	for _, path := range []string{"/api/tags", "/api/nowhere", "/api/user"} {
		resp, err := http.Get(srv.URL + path)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, "default-src 'none'; frame-ancestors 'none'", resp.Header.Get("Content-Security-Policy"), path)
		assert.Equal(t, "nosniff", resp.Header.Get("X-Content-Type-Options"), path)
		assert.Empty(t, resp.Header.Get("Strict-Transport-Security"), "plain HTTP from an untrusted peer: no HSTS")
	}
}

package httpapi_test

import (
	"bytes"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
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

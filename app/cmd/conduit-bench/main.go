// Command conduit-bench is a repeatable load run against `conduit local`:
// for each data size it starts the binary on a fresh data directory, seeds
// users, articles and comments through the web tier with 16 concurrent
// writers (counting every 5xx), then drives each request mix with a fixed
// number of concurrent keep-alive clients for a fixed time, directly
// against the api and through the web tier (WAF on), and prints req/s,
// p50, p99, the web/api ratio and the database calls per request.
//
//	go run ./app/cmd/conduit-bench --conduit bin/conduit -c 32 -d 10s --scale both
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "conduit-bench:", err)
		os.Exit(1)
	}
}

type options struct {
	binary      string
	concurrency int
	duration    time.Duration
	scale       string
	markdown    bool
	warmup      time.Duration
	seedCache   string
	only        string
	growth      int
}

// size is one data set.
type size struct {
	name                      string
	users, articles, comments int
}

var sizes = map[string]size{
	"small": {"small", 40, 200, 2_000},
	"large": {"large", 1_000, 5_000, 50_000},
}

func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("conduit-bench", flag.ContinueOnError)
	o := options{}
	fs.StringVar(&o.binary, "conduit", "bin/conduit", "conduit binary to start")
	fs.IntVar(&o.concurrency, "c", 32, "concurrent clients")
	fs.DurationVar(&o.duration, "d", 10*time.Second, "duration of each run")
	fs.StringVar(&o.scale, "scale", "both", "data size: small (200 articles, 2,000 comments, 40 users), large (5,000 / 50,000 / 1,000) or both")
	fs.BoolVar(&o.markdown, "markdown", false, "print markdown tables")
	fs.DurationVar(&o.warmup, "warmup", 2*time.Second, "unmeasured load before each run (fills caches, opens connections)")
	fs.IntVar(&o.growth, "growth", 5000, "comments posted on one article, measuring the rate as they grow (0: skip)")
	fs.StringVar(&o.only, "only", "", "run only the mixes whose name contains one of these comma-separated `words`")
	fs.StringVar(&o.seedCache, "seed-cache", "", "keep each size's seeded data in `DIR` and reuse it on later runs (delete DIR after changing app/store: the data layout must match)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var runs []size
	switch o.scale {
	case "both":
		runs = []size{sizes["small"], sizes["large"]}
	case "small", "large":
		runs = []size{sizes[o.scale]}
	default:
		return fmt.Errorf("--scale %q: use small, large or both", o.scale)
	}
	printMachine(out, o)
	results := map[string][]row{}
	for _, sz := range runs {
		rows, err := runSize(ctx, o, sz, out)
		if err != nil {
			return fmt.Errorf("%s: %w", sz.name, err)
		}
		results[sz.name] = rows
	}
	if len(runs) == 2 {
		printScaling(out, results["small"], results["large"], o)
	}
	return nil
}

// runSize starts conduit on fresh data, seeds sz through the web tier and
// runs every mix against the api and through the web tier.
func runSize(ctx context.Context, o options, sz size, out io.Writer) ([]row, error) {
	dir, err := os.MkdirTemp("", "conduit-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	seed, err := loadSeed(o.seedCache, sz, dir)
	if err != nil {
		return nil, err
	}
	web, api, admin, stopServer, err := startConduit(ctx, o.binary, dir)
	if err != nil {
		return nil, err
	}
	defer func() { stopServer() }()

	client := &http.Client{Transport: &loadBalancer{next: &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256}}, Timeout: 10 * time.Second}
	fmt.Fprintf(out, "\n## %s: %d users, %d articles, %d comments\n\n", sz.name, sz.users, sz.articles, sz.comments)
	if seed == nil {
		seedStart := time.Now()
		seed, err = seedData(ctx, client, "http://"+web, sz)
		if err != nil {
			return nil, fmt.Errorf("seed: %w", err)
		}
		seed.Took = time.Since(seedStart).Round(time.Second).String()
		if o.seedCache != "" {
			stopServer() // a consistent copy of the data directory needs the database stopped
			if err := saveSeed(o.seedCache, sz, dir, seed); err != nil {
				return nil, err
			}
			if web, api, admin, stopServer, err = startConduit(ctx, o.binary, dir); err != nil {
				return nil, err
			}
		}
	} else {
		fmt.Fprintf(out, "reusing the seed in %s (delete it after changing the data layout)\n", filepath.Join(o.seedCache, sz.name))
		var resp struct {
			User struct{ Token string } `json:"user"`
		}
		if err := call(ctx, client, "POST", "http://"+api+"/api/users/login", "", `{"user":{"email":"bench0@example.com","password":"bench-password-0"}}`, &resp); err != nil {
			return nil, fmt.Errorf("log in to the reused seed: %w", err)
		}
		seed.token = resp.User.Token
	}
	fmt.Fprintf(out, "seeded through the web tier in %s with 16 writers: %d writes, %d answered 5xx, %d failed otherwise\n\n",
		seed.Took, seed.Writes, seed.Status5xx, seed.OtherErrors)
	// The seeded user's own articles, for the edit mix.
	var own []string
	for n := range 128 {
		var art struct {
			Article struct{ Slug string } `json:"article"`
		}
		if err := call(ctx, client, "POST", "http://"+api+"/api/articles", seed.token,
			fmt.Sprintf(`{"article":{"title":"Own %d %d","description":"d","body":"b"}}`, n, time.Now().UnixNano()), &art); err != nil {
			return nil, fmt.Errorf("the edit mix's articles: %w", err)
		}
		own = append(own, art.Article.Slug)
	}
	mixes := []mix{
		{name: "GET /api/articles?limit=20", request: func(i int) (string, string, string) { return "GET", "/api/articles?limit=20", "" }},
		{name: "GET /api/articles/:slug", request: func(i int) (string, string, string) {
			return "GET", "/api/articles/" + seed.Slugs[i%len(seed.Slugs)], ""
		}},
		{name: "GET /api/articles/:slug (token)", token: true, request: func(i int) (string, string, string) {
			return "GET", "/api/articles/" + seed.Slugs[i%len(seed.Slugs)], ""
		}},
		{name: "GET /api/articles/:slug/comments", request: func(i int) (string, string, string) {
			return "GET", "/api/articles/" + seed.Slugs[i%len(seed.Slugs)] + "/comments", ""
		}},
		{name: "POST /api/articles/:slug/comments", token: true, request: func(i int) (string, string, string) {
			return "POST", "/api/articles/" + seed.Slugs[i%len(seed.Slugs)] + "/comments", `{"comment":{"body":"A comment with some *markdown* and ` + "`code`" + `."}}`
		}},
		{name: "POST /api/articles/:slug/comments (Idempotency-Key)", token: true, keyed: true, request: func(i int) (string, string, string) {
			return "POST", "/api/articles/" + seed.Slugs[i%len(seed.Slugs)] + "/comments", `{"comment":{"body":"A comment with some *markdown* and ` + "`code`" + `."}}`
		}},
		{name: "POST or DELETE /api/articles/:slug/favorite", token: true, request: func(i int) (string, string, string) {
			method := "POST"
			if (i/64)%2 == 1 {
				method = "DELETE"
			}
			return method, "/api/articles/" + seed.Slugs[i%len(seed.Slugs)] + "/favorite", ""
		}},
		{name: "PUT /api/articles/:slug (own, body)", token: true, request: func(i int) (string, string, string) {
			return "PUT", "/api/articles/" + own[i%len(own)], fmt.Sprintf(`{"article":{"body":"Edited %d: a body with some *markdown*."}}`, i)
		}},
		{name: "GET /api/tags", request: func(i int) (string, string, string) { return "GET", "/api/tags", "" }},
		{name: "GET / (home page, 20 articles)", webOnly: true, request: func(i int) (string, string, string) { return "GET", "/", "" }},
	}
	var rows []row
	for _, m := range mixes {
		if o.only != "" && !slices.ContainsFunc(strings.Split(o.only, ","), func(w string) bool { return strings.Contains(m.name, w) }) {
			continue
		}
		r := row{name: m.name}
		token := ""
		if m.token {
			token = seed.token
		}
		if !m.webOnly {
			if _, err := load(ctx, client, "http://"+api, token, m, o.concurrency, o.warmup); err != nil {
				return nil, fmt.Errorf("%s: warm-up: %w", m.name, err)
			}
			before, _ := dbCalls(ctx, client, "http://"+admin+"/metrics")
			res, err := load(ctx, client, "http://"+api, token, m, o.concurrency, o.duration)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", m.name, err)
			}
			after, _ := dbCalls(ctx, client, "http://"+admin+"/metrics")
			r.api = res
			r.dbCalls = (after - before) / float64(res.requests+res.errors)
		}
		if _, err := load(ctx, client, "http://"+web, token, m, o.concurrency, o.warmup); err != nil {
			return nil, fmt.Errorf("%s: warm-up: %w", m.name, err)
		}
		res, err := load(ctx, client, "http://"+web, token, m, o.concurrency, o.duration)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", m.name, err)
		}
		r.web = res
		rows = append(rows, r)
	}
	printTable(out, rows, o)
	if err := printDBLatency(ctx, client, "http://"+admin+"/metrics", out); err != nil {
		return nil, err
	}
	if err := printWire(ctx, client, "http://"+api, "http://"+admin+"/metrics", seed, out, o); err != nil {
		return nil, fmt.Errorf("commands per request: %w", err)
	}
	if o.growth > 0 {
		if err := printGrowth(ctx, client, "http://"+web, seed.token, o, out); err != nil {
			return nil, fmt.Errorf("comment growth: %w", err)
		}
	}
	return rows, nil
}

// printWire runs each RealWorld request once against the api, one after
// another, and prints the database commands it sent (counted at the
// wire): the first time (cold caches), and the mean of the next nine
// (what the process keeps).
func printWire(ctx context.Context, c *http.Client, base, metrics string, seed *seeded, out io.Writer, o options) error {
	slug := seed.Slugs[0]
	var resp struct {
		User struct{ Token string } `json:"user"`
	}
	name := fmt.Sprintf("wire%d", time.Now().UnixNano()%1_000_000)
	if err := call(ctx, c, "POST", base+"/api/users", "", fmt.Sprintf(`{"user":{"username":%q,"email":"%s@example.com","password":"wire-password-1"}}`, name, name), &resp); err != nil {
		return err
	}
	me := resp.User.Token
	var art struct {
		Article struct{ Slug string } `json:"article"`
	}
	if err := call(ctx, c, "POST", base+"/api/articles", me, `{"article":{"title":"Wire `+name+`","description":"d","body":"b","tagList":["wire"]}}`, &art); err != nil {
		return err
	}
	mine := art.Article.Slug
	var comment struct {
		Comment struct{ ID int64 } `json:"comment"`
	}
	steps := []struct {
		name, method, path, body, token string
		once                            bool // a write that cannot be repeated as is
		out                             any
	}{
		{name: "POST /api/users (register)", method: "POST", path: "/api/users", once: true,
			body: fmt.Sprintf(`{"user":{"username":"%sx","email":"%sx@example.com","password":"wire-password-1"}}`, name, name)},
		{name: "POST /api/users/login", method: "POST", path: "/api/users/login", body: fmt.Sprintf(`{"user":{"email":"%s@example.com","password":"wire-password-1"}}`, name)},
		{name: "GET /api/user", method: "GET", path: "/api/user", token: me},
		{name: "PUT /api/user (bio)", method: "PUT", path: "/api/user", token: me, body: `{"user":{"bio":"b"}}`},
		{name: "GET /api/profiles/:username", method: "GET", path: "/api/profiles/bench1"},
		{name: "GET /api/profiles/:username (token)", method: "GET", path: "/api/profiles/bench1", token: me},
		{name: "POST /api/profiles/:username/follow", method: "POST", path: "/api/profiles/bench1/follow", token: me},
		{name: "GET /api/articles/feed", method: "GET", path: "/api/articles/feed", token: me},
		{name: "DELETE /api/profiles/:username/follow", method: "DELETE", path: "/api/profiles/bench1/follow", token: me},
		{name: "GET /api/articles?limit=20", method: "GET", path: "/api/articles?limit=20"},
		{name: "GET /api/articles?limit=20 (token)", method: "GET", path: "/api/articles?limit=20", token: me},
		{name: "GET /api/articles?tag=bench", method: "GET", path: "/api/articles?tag=bench"},
		{name: "GET /api/articles?author=bench1", method: "GET", path: "/api/articles?author=bench1"},
		{name: "GET /api/articles?favorited=bench0", method: "GET", path: "/api/articles?favorited=bench0"},
		{name: "POST /api/articles", method: "POST", path: "/api/articles", token: me, once: true,
			body: `{"article":{"title":"Wire two ` + name + `","description":"d","body":"b","tagList":["wire","two"]}}`},
		{name: "GET /api/articles/:slug", method: "GET", path: "/api/articles/" + slug},
		{name: "GET /api/articles/:slug (token)", method: "GET", path: "/api/articles/" + slug, token: me},
		{name: "PUT /api/articles/:slug (body)", method: "PUT", path: "/api/articles/" + mine, token: me, body: `{"article":{"body":"new"}}`},
		{name: "POST /api/articles/:slug/favorite", method: "POST", path: "/api/articles/" + slug + "/favorite", token: me},
		{name: "DELETE /api/articles/:slug/favorite", method: "DELETE", path: "/api/articles/" + slug + "/favorite", token: me},
		{name: "GET /api/articles/:slug/comments", method: "GET", path: "/api/articles/" + slug + "/comments"},
		{name: "POST /api/articles/:slug/comments", method: "POST", path: "/api/articles/" + mine + "/comments", token: me,
			body: `{"comment":{"body":"hi"}}`, once: true, out: &comment},
		{name: "DELETE /api/articles/:slug/comments/:id", method: "DELETE", token: me, once: true},
		{name: "GET /api/tags", method: "GET", path: "/api/tags"},
		{name: "DELETE /api/articles/:slug", method: "DELETE", path: "/api/articles/" + mine, token: me, once: true},
	}
	fmt.Fprintln(out, "\ndatabase commands per request (counted at the wire), one request at a time:")
	var lines [][]string
	for _, st := range steps {
		if st.path == "" {
			st.path = fmt.Sprintf("/api/articles/%s/comments/%d", mine, comment.Comment.ID)
		}
		counted := func() (float64, error) {
			before, err := dbCalls(ctx, c, metrics)
			if err != nil {
				return 0, err
			}
			if err := call(ctx, c, st.method, base+st.path, st.token, st.body, st.out); err != nil {
				return 0, err
			}
			after, err := dbCalls(ctx, c, metrics)
			return after - before, err
		}
		first, err := counted()
		if err != nil {
			return fmt.Errorf("%s: %w", st.name, err)
		}
		again := "–"
		if !st.once {
			var sum float64
			for range 9 {
				n, err := counted()
				if err != nil {
					return fmt.Errorf("%s: %w", st.name, err)
				}
				sum += n
			}
			again = fmt.Sprintf("%.1f", sum/9)
		}
		lines = append(lines, []string{st.name, fmt.Sprintf("%.0f", first), again})
	}
	writeTable(out, []string{"request", "first", "next 9 (mean)"}, lines, o.markdown)
	return nil
}

// printGrowth posts comments on one new article through the web tier with
// c clients until it has o.growth of them, and prints the rate in each
// tenth: adding a comment must cost the same at the last as at the first.
func printGrowth(ctx context.Context, c *http.Client, web, token string, o options, out io.Writer) error {
	var art struct {
		Article struct{ Slug string } `json:"article"`
	}
	if err := call(ctx, c, "POST", web+"/api/articles", token, fmt.Sprintf(`{"article":{"title":"Growth %d","description":"d","body":"b"}}`, time.Now().UnixNano()), &art); err != nil {
		return err
	}
	path := web + "/api/articles/" + art.Article.Slug + "/comments"
	body := `{"comment":{"body":"A comment with some *markdown* and ` + "`code`" + `."}}`
	var next, done atomic.Int64
	var errs atomic.Int64
	tenth := int64(o.growth / 10)
	marks := make([]time.Time, 11)
	marks[0] = time.Now()
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range o.concurrency {
		wg.Go(func() {
			for next.Add(1) <= int64(o.growth) {
				if err := call(ctx, c, "POST", path, token, body, nil); err != nil {
					errs.Add(1)
					continue
				}
				if n := done.Add(1); n%tenth == 0 {
					mu.Lock()
					marks[n/tenth] = time.Now()
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	fmt.Fprintf(out, "\nPOST comment on one article through the web tier (WAF on), c=%d, from 0 to %d comments (%d errors):\n", o.concurrency, o.growth, errs.Load())
	var lines [][]string
	var rates []float64
	for i := 1; i <= 10; i++ {
		if marks[i].IsZero() || marks[i-1].IsZero() {
			continue
		}
		r := float64(tenth) / marks[i].Sub(marks[i-1]).Seconds()
		rates = append(rates, r)
		lines = append(lines, []string{fmt.Sprintf("%d–%d", int64(i-1)*tenth, int64(i)*tenth), fmt.Sprintf("%.0f", r)})
	}
	writeTable(out, []string{"comments already there", "req/s"}, lines, o.markdown)
	if len(rates) >= 2 {
		total := float64(done.Load()) / marks[10].Sub(marks[0]).Seconds()
		fmt.Fprintf(out, "overall %.0f req/s; the last tenth keeps %.0f%% of the first tenth's rate\n", total, 100*rates[len(rates)-1]/rates[0])
	}
	return nil
}

// dbCalls is the total number of commands the api has sent to the
// database, counted as the driver puts them on the wire
// (conduit_db_commands_total); for a build without that metric, the
// number of store operations.
func dbCalls(ctx context.Context, c *http.Client, url string) (float64, error) {
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var total float64
	re := regexp.MustCompile(`conduit_db_commands_total\{command="[^"]+",role="api"\} (\S+)`)
	if !re.Match(b) {
		re = regexp.MustCompile(`conduit_db_operation_duration_seconds_count\{op="[^"]+",role="api"\} (\S+)`)
	}
	for _, m := range re.FindAllStringSubmatch(string(b), -1) {
		var v float64
		fmt.Sscan(m[1], &v)
		total += v
	}
	return total, nil
}

// printScaling compares each mix at the two sizes: the share of its small
// throughput it keeps at the large size.
func printScaling(out io.Writer, small, large []row, o options) {
	fmt.Fprintln(out, "\n## large vs small (throughput kept at the large size)")
	fmt.Fprintln(out)
	head := []string{"request", "api small", "api large", "api kept", "web small", "web large", "web kept"}
	var lines [][]string
	for i := range small {
		s, l := small[i], large[i]
		kept := func(a, b float64) string {
			if a == 0 {
				return "–"
			}
			return fmt.Sprintf("%.0f%%", 100*b/a)
		}
		rps := func(v float64) string {
			if v == 0 {
				return "–"
			}
			return fmt.Sprintf("%.0f", v)
		}
		lines = append(lines, []string{s.name, rps(s.api.rps), rps(l.api.rps), kept(s.api.rps, l.api.rps),
			rps(s.web.rps), rps(l.web.rps), kept(s.web.rps, l.web.rps)})
	}
	writeTable(out, head, lines, o.markdown)
}

// printDBLatency shows where the api's time went: mean latency and count of
// each database operation over the whole run, from the api's own metrics.
func printDBLatency(ctx context.Context, c *http.Client, url string, out io.Writer) error {
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("read metrics: %w", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	re := regexp.MustCompile(`conduit_db_operation_duration_seconds_(sum|count)\{op="([^"]+)",role="api"\} (\S+)`)
	sum, count := map[string]float64{}, map[string]float64{}
	for _, m := range re.FindAllStringSubmatch(string(b), -1) {
		var v float64
		fmt.Sscan(m[3], &v)
		if m[1] == "sum" {
			sum[m[2]] = v
		} else {
			count[m[2]] = v
		}
	}
	ops := make([]string, 0, len(sum))
	for op := range sum {
		ops = append(ops, op)
	}
	slices.SortFunc(ops, func(a, b string) int { return int(sum[b]*1e6 - sum[a]*1e6) })
	fmt.Fprintln(out, "\ndatabase time by operation (api metrics, whole run):")
	for _, op := range ops {
		fmt.Fprintf(out, "  %-18s %8.0f calls  mean %7.2f ms  total %6.1f s\n", op, count[op], 1000*sum[op]/count[op], sum[op])
	}
	return nil
}

// clients is how many people the load seems to come from.
const clients = 1000

// loadBalancer sends each request on behalf of one of many clients, as the
// ALB in front of the web tier does (X-Forwarded-For). In production the
// web tier's per-client limits (#24: two WAF inspections at once per
// client) see each person; a load generator with one address would meet
// them as one abuser and measure the limit, not the path (docs/benchmarks.md
// shows both).
type loadBalancer struct {
	next http.RoundTripper
	n    atomic.Uint64
}

func (lb *loadBalancer) RoundTrip(r *http.Request) (*http.Response, error) {
	i := lb.n.Add(1) % clients
	r = r.Clone(r.Context())
	r.Header.Set("X-Forwarded-For", fmt.Sprintf("198.18.%d.%d", i/250, i%250+1)) // RFC 2544's benchmarking range
	return lb.next.RoundTrip(r)
}

// startConduit runs `conduit local` and returns the web and api addresses.
func startConduit(ctx context.Context, binary, dir string) (web, api, admin string, stop func(), err error) {
	cmd := exec.CommandContext(ctx, binary, "local", "--web-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0",
		"--data-dir", dir, "--log-level", "error")
	// A load generator is every abuser at once from one address: the
	// quotas are off for it (what is measured is the path, not the limits).
	// And it stands in for the load balancer (see loadBalancer): conduit
	// believes its X-Forwarded-For from loopback.
	cmd.Env = append(os.Environ(), "CONDUIT_QUOTA_REGISTRATIONS=off", "CONDUIT_QUOTA_ARTICLES=off",
		"CONDUIT_QUOTA_COMMENTS=off", "CONDUIT_QUOTA_COMMENTS_PER_ARTICLE=off", "CONDUIT_TRUSTED_PROXIES=127.0.0.1/32")
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return "", "", "", nil, err
	}
	if err := cmd.Start(); err != nil {
		return "", "", "", nil, fmt.Errorf("start %s (build it with `make build`): %w", binary, err)
	}
	stop = func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}
	apiRE := regexp.MustCompile(`^api listening on http://(\S+)`)
	webRE := regexp.MustCompile(`^conduit local: serving http://(\S+)/ `)
	adminRE := regexp.MustCompile(`^admin listening on http://(\S+)`)
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if m := apiRE.FindStringSubmatch(sc.Text()); m != nil {
			api = m[1]
		}
		if m := webRE.FindStringSubmatch(sc.Text()); m != nil {
			web = m[1]
		}
		if m := adminRE.FindStringSubmatch(sc.Text()); m != nil {
			admin = m[1]
		}
		if web != "" && api != "" && admin != "" {
			break // (in whatever order conduit says them)
		}
	}
	if web == "" || api == "" || admin == "" {
		stop()
		return "", "", "", nil, errors.New("conduit local did not report its addresses")
	}
	go func() { _, _ = io.Copy(io.Discard, stdout) }()
	return web, api, admin, stop, nil
}

// seeded is what seeding left: the articles' slugs, a signed-in user's
// token and how the writes went. It is saved with a seed cache.
type seeded struct {
	token                          string
	Slugs                          []string
	Writes, Status5xx, OtherErrors int
	Took                           string
}

// loadSeed copies a cached seed of sz into dir and returns its manifest,
// or nil when there is no cache (or none for sz yet).
func loadSeed(cache string, sz size, dir string) (*seeded, error) {
	if cache == "" {
		return nil, nil
	}
	b, err := os.ReadFile(filepath.Join(cache, sz.name, "seed.json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var s seeded
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("seed cache %s: %w (delete it to seed again)", cache, err)
	}
	if err := copyPrivate(dir, filepath.Join(cache, sz.name, "data")); err != nil {
		return nil, fmt.Errorf("copy the cached seed: %w", err)
	}
	return &s, nil
}

// copyPrivate copies the directory from to to, readable by its owner only
// (it holds the data and the token-signing secret).
func copyPrivate(to, from string) error {
	if err := os.CopyFS(to, os.DirFS(from)); err != nil {
		return err
	}
	return filepath.WalkDir(to, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return os.Chmod(p, 0o700)
		}
		return os.Chmod(p, 0o600)
	})
}

// saveSeed keeps dir (a stopped server's data) and s as sz's seed.
func saveSeed(cache string, sz size, dir string, s *seeded) error {
	to := filepath.Join(cache, sz.name)
	if err := os.RemoveAll(to); err != nil {
		return err
	}
	if err := os.MkdirAll(to, 0o700); err != nil {
		return err
	}
	if err := copyPrivate(filepath.Join(to, "data"), dir); err != nil {
		return fmt.Errorf("save the seed: %w", err)
	}
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(to, "seed.json"), b, 0o600)
}

// seedData writes sz through base (the web tier) with 16 concurrent
// writers: users, then articles, then comments. Every write must succeed;
// 5xx answers are counted (the writes-under-load goal is none).
func seedData(ctx context.Context, c *http.Client, base string, sz size) (*seeded, error) {
	s := &seeded{}
	var mu sync.Mutex
	record := func(err error) error {
		mu.Lock()
		defer mu.Unlock()
		s.Writes++
		var se *statusError
		switch {
		case errors.As(err, &se) && se.status >= 500:
			s.Status5xx++
		case err != nil:
			s.OtherErrors++
		}
		return err
	}
	parallel := func(n int, f func(i int) error) error {
		var wg sync.WaitGroup
		errc := make(chan error, 16)
		next := make(chan int)
		for range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range next {
					if err := f(i); err != nil {
						select {
						case errc <- err:
						default:
						}
					}
				}
			}()
		}
		for i := range n {
			next <- i
		}
		close(next)
		wg.Wait()
		select {
		case err := <-errc:
			return err
		default:
			return nil
		}
	}
	tokens := make([]string, sz.users)
	err := parallel(sz.users, func(u int) error {
		var resp struct {
			User struct{ Token string } `json:"user"`
		}
		body := fmt.Sprintf(`{"user":{"username":"bench%d","email":"bench%d@example.com","password":"bench-password-%d"}}`, u, u, u)
		err := record(call(ctx, c, "POST", base+"/api/users", "", body, &resp))
		tokens[u] = resp.User.Token
		return err
	})
	if err != nil {
		return s, err
	}
	s.token = tokens[0]
	s.Slugs = make([]string, sz.articles)
	err = parallel(sz.articles, func(i int) error {
		var resp struct {
			Article struct{ Slug string } `json:"article"`
		}
		body := fmt.Sprintf(`{"article":{"title":"Benchmark article %d","description":"About topic %d","body":"%s","tagList":["tag%d","tag%d","bench"]}}`,
			i, i%17, strings.Repeat("Some body text with `code` and *emphasis*. ", 20), i%20, (i*7)%20)
		err := record(call(ctx, c, "POST", base+"/api/articles", tokens[i%len(tokens)], body, &resp))
		s.Slugs[i] = resp.Article.Slug
		return err
	})
	if err != nil {
		return s, err
	}
	err = parallel(sz.comments, func(i int) error {
		body := fmt.Sprintf(`{"comment":{"body":"Seed comment %d with *markdown*."}}`, i)
		return record(call(ctx, c, "POST", base+"/api/articles/"+s.Slugs[(i*7919)%len(s.Slugs)]+"/comments", tokens[(i*31)%len(tokens)], body, nil))
	})
	return s, err
}

type statusError struct {
	status int
	msg    string
}

func (e *statusError) Error() string { return fmt.Sprintf("%d %s", e.status, e.msg) }

func call(ctx context.Context, c *http.Client, method, url, token, body string, out any) error {
	return callWith(ctx, c, method, url, token, body, nil, out)
}

// callWith is call with the headers h besides.
func callWith(ctx context.Context, c *http.Client, method, url, token, body string, h http.Header, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		return err
	}
	for k, v := range h {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Token "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("%s %s: %w", method, url, &statusError{resp.StatusCode, string(b)})
	}
	if out == nil {
		_, err = io.Copy(io.Discard, resp.Body)
		return err
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

type mix struct {
	name    string
	token   bool // requests carry the seeded user's token
	webOnly bool // a page: the api has no such route
	request func(i int) (method, path, body string)
	keyed   bool // each request carries an Idempotency-Key of its own
}

type result struct {
	requests, errors int
	rps              float64
	p50, p99         time.Duration
}

type row struct {
	name     string
	api, web result
	dbCalls  float64 // database operations per api request
}

// load runs c workers for d and measures every request.
func load(ctx context.Context, client *http.Client, base, token string, m mix, c int, d time.Duration) (result, error) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var (
		mu        sync.Mutex
		latencies []time.Duration
		errs      int
		firstErr  error
		wg        sync.WaitGroup
	)
	start := time.Now()
	for w := range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := make([]time.Duration, 0, 4096)
			localErrs := 0
			var localFirst error
			for i := w; ctx.Err() == nil; i += c {
				method, path, body := m.request(i)
				var h http.Header
				if m.keyed {
					h = http.Header{"Idempotency-Key": {fmt.Sprintf("bench-%d-%d", start.UnixNano(), i)}}
				}
				t0 := time.Now()
				err := callWith(context.Background(), client, method, base+path, token, body, h, nil)
				if ctx.Err() != nil && t0.Add(time.Since(t0)).After(start.Add(d)) {
					break
				}
				if err != nil {
					localErrs++
					if localFirst == nil {
						localFirst = err
					}
					continue
				}
				local = append(local, time.Since(t0))
			}
			mu.Lock()
			latencies = append(latencies, local...)
			errs += localErrs
			if firstErr == nil {
				firstErr = localFirst
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if len(latencies) == 0 {
		return result{}, fmt.Errorf("no successful request (%d errors, first: %v)", errs, firstErr)
	}
	if errs > 0 {
		fmt.Fprintf(os.Stderr, "%s %s: %d errors, first: %v\n", base, m.name, errs, firstErr)
	}
	slices.Sort(latencies)
	pct := func(p float64) time.Duration { return latencies[min(len(latencies)-1, int(p*float64(len(latencies))))] }
	return result{requests: len(latencies), errors: errs, rps: float64(len(latencies)) / elapsed.Seconds(), p50: pct(0.50), p99: pct(0.99)}, nil
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }

func printMachine(out io.Writer, o options) {
	cpu := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		if m := regexp.MustCompile(`model name\s*:\s*(.+)`).FindSubmatch(b); m != nil {
			cpu = string(m[1])
		}
	}
	fmt.Fprintf(out, "machine: %d cores, %s, %s/%s, %s; load generator on the same machine\n", runtime.NumCPU(), cpu, runtime.GOOS, runtime.GOARCH, runtime.Version())
	fmt.Fprintf(out, "c=%d, %s per run, conduit local (FerretDB/SQLite), WAF on\n", o.concurrency, o.duration)
}

func printTable(out io.Writer, rows []row, o options) {
	head := []string{"request", "api req/s", "api p50", "api p99", "db cmds", "web req/s", "web p50", "web p99", "web/api", "errors"}
	var lines [][]string
	for _, r := range rows {
		api := []string{"–", "–", "–", "–"}
		ratio := "–"
		if r.api.rps > 0 {
			api = []string{fmt.Sprintf("%.0f", r.api.rps), ms(r.api.p50), ms(r.api.p99), fmt.Sprintf("%.1f", r.dbCalls)}
			ratio = fmt.Sprintf("%.0f%%", 100*r.web.rps/r.api.rps)
		}
		lines = append(lines, append(append([]string{r.name}, api...),
			fmt.Sprintf("%.0f", r.web.rps), ms(r.web.p50), ms(r.web.p99), ratio, fmt.Sprint(r.api.errors+r.web.errors)))
	}
	writeTable(out, head, lines, o.markdown)
}

func writeTable(out io.Writer, head []string, lines [][]string, markdown bool) {
	if markdown {
		fmt.Fprintf(out, "| %s |\n|%s\n", strings.Join(head, " | "), strings.Repeat("---|", len(head)))
		for _, l := range lines {
			fmt.Fprintf(out, "| %s |\n", strings.Join(l, " | "))
		}
		return
	}
	widths := make([]int, len(head))
	for _, l := range append([][]string{head}, lines...) {
		for i, c := range l {
			widths[i] = max(widths[i], len(c))
		}
	}
	for _, l := range append([][]string{head}, lines...) {
		for i, c := range l {
			fmt.Fprintf(out, "%-*s  ", widths[i], c)
		}
		fmt.Fprintln(out)
	}
}

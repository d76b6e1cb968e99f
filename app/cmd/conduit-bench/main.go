// Command conduit-bench is a repeatable load run against `conduit local`:
// it starts the binary on a fresh data directory, seeds users, articles and
// tags through the API, then drives four request mixes with a fixed number
// of concurrent keep-alive clients for a fixed time, once through the web
// tier (WAF on) and once directly against the api, and prints req/s, p50,
// p99 and the web/api throughput ratio.
//
//	go run ./app/cmd/conduit-bench --conduit bin/conduit -c 32 -d 10s
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
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
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
	articles    int
	markdown    bool
}

func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("conduit-bench", flag.ContinueOnError)
	o := options{}
	fs.StringVar(&o.binary, "conduit", "bin/conduit", "conduit binary to start")
	fs.IntVar(&o.concurrency, "c", 32, "concurrent clients")
	fs.DurationVar(&o.duration, "d", 10*time.Second, "duration of each run")
	fs.IntVar(&o.articles, "articles", 200, "articles to seed")
	fs.BoolVar(&o.markdown, "markdown", false, "print a markdown table")
	if err := fs.Parse(args); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "conduit-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	web, api, admin, stopServer, err := startConduit(ctx, o.binary, dir)
	if err != nil {
		return err
	}
	defer stopServer()

	client := &http.Client{Transport: &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256}, Timeout: 10 * time.Second}
	seed, err := seedData(ctx, client, "http://"+api, o.articles)
	if err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	mixes := []mix{
		{"GET /api/articles?limit=20", func(i int) (string, string, string) { return "GET", "/api/articles?limit=20", "" }},
		{"GET /api/articles/:slug", func(i int) (string, string, string) {
			return "GET", "/api/articles/" + seed.slugs[i%len(seed.slugs)], ""
		}},
		{"GET /api/tags", func(i int) (string, string, string) { return "GET", "/api/tags", "" }},
		{"POST /api/articles/:slug/comments", func(i int) (string, string, string) {
			return "POST", "/api/articles/" + seed.slugs[i%len(seed.slugs)] + "/comments", `{"comment":{"body":"A comment with some *markdown* and ` + "`code`" + `."}}`
		}},
	}
	var rows []row
	for _, m := range mixes {
		r := row{name: m.name}
		for _, target := range []struct {
			base string
			res  *result
		}{{"http://" + api, &r.api}, {"http://" + web, &r.web}} {
			res, err := load(ctx, client, target.base, seed.token, m, o.concurrency, o.duration)
			if err != nil {
				return fmt.Errorf("%s: %w", m.name, err)
			}
			*target.res = res
		}
		rows = append(rows, r)
	}
	printTable(out, rows, o)
	return printDBLatency(ctx, client, "http://"+admin+"/metrics", out)
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

// startConduit runs `conduit local` and returns the web and api addresses.
func startConduit(ctx context.Context, binary, dir string) (web, api, admin string, stop func(), err error) {
	cmd := exec.CommandContext(ctx, binary, "local", "--web-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0",
		"--data-dir", dir, "--log-level", "error")
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
			break
		}
	}
	if web == "" || api == "" || admin == "" {
		stop()
		return "", "", "", nil, errors.New("conduit local did not report its addresses")
	}
	go func() { _, _ = io.Copy(io.Discard, stdout) }()
	return web, api, admin, stop, nil
}

type seeded struct {
	token string
	slugs []string
}

func seedData(ctx context.Context, c *http.Client, base string, n int) (*seeded, error) {
	s := &seeded{}
	var tokens []string
	for u := range 10 {
		var resp struct {
			User struct{ Token string } `json:"user"`
		}
		body := fmt.Sprintf(`{"user":{"username":"bench%d","email":"bench%d@example.com","password":"password1"}}`, u, u)
		if err := call(ctx, c, "POST", base+"/api/users", "", body, &resp); err != nil {
			return nil, err
		}
		tokens = append(tokens, resp.User.Token)
	}
	s.token = tokens[0]
	for i := range n {
		var resp struct {
			Article struct{ Slug string } `json:"article"`
		}
		body := fmt.Sprintf(`{"article":{"title":"Benchmark article %d","description":"About topic %d","body":"%s","tagList":["tag%d","tag%d","bench"]}}`,
			i, i%17, strings.Repeat("Some body text with `code` and *emphasis*. ", 20), i%20, (i*7)%20)
		if err := call(ctx, c, "POST", base+"/api/articles", tokens[i%len(tokens)], body, &resp); err != nil {
			return nil, err
		}
		s.slugs = append(s.slugs, resp.Article.Slug)
	}
	return s, nil
}

func call(ctx context.Context, c *http.Client, method, url, token, body string, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		return err
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
		return fmt.Errorf("%s %s: %d %s", method, url, resp.StatusCode, b)
	}
	if out == nil {
		_, err = io.Copy(io.Discard, resp.Body)
		return err
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

type mix struct {
	name    string
	request func(i int) (method, path, body string)
}

type result struct {
	requests, errors int
	rps              float64
	p50, p99         time.Duration
}

type row struct {
	name     string
	api, web result
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
				t0 := time.Now()
				err := call(context.Background(), client, method, base+path, token, body, nil)
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

func printTable(out io.Writer, rows []row, o options) {
	cpu := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		if m := regexp.MustCompile(`model name\s*:\s*(.+)`).FindSubmatch(b); m != nil {
			cpu = string(m[1])
		}
	}
	fmt.Fprintf(out, "machine: %d cores, %s, %s/%s, %s; load generator on the same machine\n", runtime.NumCPU(), cpu, runtime.GOOS, runtime.GOARCH, runtime.Version())
	fmt.Fprintf(out, "c=%d, %s per run, %d seeded articles, conduit local (FerretDB/SQLite), WAF on\n\n", o.concurrency, o.duration, o.articles)
	head := []string{"request", "api req/s", "api p50", "api p99", "web req/s", "web p50", "web p99", "web/api", "errors"}
	var lines [][]string
	for _, r := range rows {
		lines = append(lines, []string{r.name,
			fmt.Sprintf("%.0f", r.api.rps), ms(r.api.p50), ms(r.api.p99),
			fmt.Sprintf("%.0f", r.web.rps), ms(r.web.p50), ms(r.web.p99),
			fmt.Sprintf("%.0f%%", 100*r.web.rps/r.api.rps), fmt.Sprint(r.api.errors + r.web.errors)})
	}
	if o.markdown {
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

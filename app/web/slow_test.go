package web_test

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"webstack/app/observe"
	"webstack/app/waf"
	"webstack/app/web"
)

// slowSlots is the inspection pool of the slow-client tests: an instance
// on 2 cores has 4, whatever this machine has.
const slowSlots = 4

// slowServer runs the web tier as the server runs it (its timeouts, the
// framing guard, the per-address connection bound) on 127.0.0.1:0, in
// front of an upstream with a large answer (/api/big) for slow readers;
// 127.0.0.1 is its trusted proxy, so X-Forwarded-For says who a client is.
func slowServer(t *testing.T) string {
	t.Helper()
	big := strings.Repeat("x", 4<<20)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/api/big":
			_, _ = io.WriteString(w, `{"big":"`+big+`"}`)
		case "/api/articles":
			_, _ = io.WriteString(w, `{"articles":[],"articlesCount":0}`)
		case "/api/tags":
			_, _ = io.WriteString(w, `{"tags":[]}`)
		default:
			_, _ = io.Copy(io.Discard, r.Body)
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"errors":{"body":["email or password is invalid"]}}`)
		}
	}))
	t.Cleanup(up.Close)
	upstream, _ := url.Parse(up.URL)
	w, err := waf.New(waf.On, 1<<20)
	require.NoError(t, err)
	trusted := []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	log := slog.New(slog.DiscardHandler)
	h, err := web.New(w, log, web.Options{Upstream: upstream, TrustedProxies: trusted, InspectionSlots: slowSlots})
	require.NoError(t, err)
	srv := &http.Server{Handler: observe.NewMetrics("web").Middleware(log, h.Route, trusted, h),
		ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second, IdleTimeout: 120 * time.Second}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ln = web.FramingGuard(srv, web.ConnsPerAddress(ln, web.MaxConnsPerAddress, trusted))
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String()
}

// normalLoad is 4 visitors (each its own address) signing in and opening
// the home page, 60 requests each: the latencies, and every status that is
// not the answer's own (401 from the api, 200 for the page).
func normalLoad(t *testing.T, addr string) ([]time.Duration, map[int]int) {
	t.Helper()
	var mu sync.Mutex
	var took []time.Duration
	bad := map[int]int{}
	var wg sync.WaitGroup
	for v := range 4 {
		wg.Go(func() {
			c := &http.Client{Timeout: 10 * time.Second}
			for i := range 60 {
				var req *http.Request
				if i%2 == 0 {
					req, _ = http.NewRequest("POST", "http://"+addr+"/api/users/login", strings.NewReader(`{"user":{"email":"someone@example.com","password":"not-the-one-123"}}`))
					req.Header.Set("Content-Type", "application/json")
				} else {
					req, _ = http.NewRequest("GET", "http://"+addr+"/", nil)
				}
				req.Header.Set("X-Forwarded-For", fmt.Sprintf("198.51.100.%d", v+1))
				start := time.Now()
				resp, err := c.Do(req)
				d := time.Since(start)
				st := 0
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					st = resp.StatusCode
				}
				mu.Lock()
				took = append(took, d)
				if st != http.StatusOK && st != http.StatusUnauthorized {
					bad[st]++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return took, bad
}

func p99(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[(len(s)*99)/100]
}

// Slow clients cost only themselves: with several times the tier's
// inspection slots in slow bodies (a byte every 500 ms of an 8,000-byte
// sign-in), slow headers and slow readers (a 4 MB answer nobody reads),
// from four addresses, other visitors' p99 stays within twice an idle
// run's and none of them is refused. (Before, a slow body held a slot
// for its whole read: four of them left everyone else 2 s and a 503.)
func TestSlowClientsCostOnlyThemselves(t *testing.T) {
	addr := slowServer(t)
	normalLoad(t, addr) // warm: the WAF's first inspections, connections
	idle, bad := normalLoad(t, addr)
	require.Empty(t, bad)

	attackers := 4 * slowSlots
	stop := make(chan struct{})
	var wg sync.WaitGroup
	dial := func() net.Conn {
		c, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		return c
	}
	trickle := func(c net.Conn, head string, each string) {
		defer c.Close()
		if _, err := io.WriteString(c, head); err != nil {
			return
		}
		for {
			select {
			case <-stop:
				return
			case <-time.After(500 * time.Millisecond):
			}
			if _, err := io.WriteString(c, each); err != nil {
				return
			}
		}
	}
	for i := range attackers {
		from := fmt.Sprintf("203.0.113.%d", 1+i%4) // four addresses: under the old code, 4 × 2 slots, every one
		body, header, reader := dial(), dial(), dial()
		wg.Go(func() {
			trickle(body, "POST /api/users/login HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: "+from+"\r\nContent-Type: application/json\r\nContent-Length: 8000\r\n\r\n{", " ")
		})
		wg.Go(func() {
			trickle(header, "POST /api/users/login HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: "+from+"\r\n", "X")
		})
		wg.Go(func() {
			defer reader.Close()
			_, _ = io.WriteString(reader, "GET /api/big HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: "+from+"\r\n\r\n")
			<-stop // never reads
		})
	}
	time.Sleep(2 * time.Second) // every attacker is in, the slow readers' buffers full
	busy, bad := normalLoad(t, addr)
	close(stop)
	wg.Wait()
	assert.Empty(t, bad, "no visitor refused beside %d slow bodies, %d slow headers and %d slow readers", attackers, attackers, attackers)
	limit := 2*p99(idle) + 5*time.Millisecond
	assert.LessOrEqual(t, p99(busy), limit, "p99 beside the slow clients %s, idle %s", p99(busy), p99(idle))
	t.Logf("p99 idle %s, beside %d slow clients of each kind %s", p99(idle), attackers, p99(busy))
}

// A body that comes slower than the minimum rate is answered 408 once its
// time is up, and held no inspection slot meanwhile.
func TestASlowBodyIsCutOff(t *testing.T) {
	addr := slowServer(t)
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer c.Close()
	_, err = io.WriteString(c, "POST /api/users/login HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n{")
	require.NoError(t, err)
	start := time.Now()
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
	buf := make([]byte, 4096)
	n, _ := c.Read(buf)
	took := time.Since(start)
	assert.Contains(t, string(buf[:n]), "408", "answered Request Timeout")
	assert.Less(t, took, 8*time.Second, "within the grace and what 200 bytes take at the minimum rate")
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	for err == nil {
		_, err = c.Read(buf)
	}
	assert.ErrorIs(t, err, io.EOF, "and the connection is closed: the rest of the body is not waited for")
}

// One address has at most web.MaxRequestsPerClient requests in the tier
// at once, whatever they do (here: slow bodies, each within the byte
// budget), also behind the load balancer: past it, 429.
func TestOneAddressHoldsABoundedNumberOfRequests(t *testing.T) {
	addr := slowServer(t)
	var conns []net.Conn
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	for range web.MaxRequestsPerClient {
		c, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		conns = append(conns, c)
		_, err = io.WriteString(c, "POST /api/users/login HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 203.0.113.77\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{")
		require.NoError(t, err)
	}
	time.Sleep(200 * time.Millisecond)
	req, _ := http.NewRequest("GET", "http://"+addr+"/", nil)
	req.Header.Set("X-Forwarded-For", "203.0.113.77")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusTooManyRequests, resp.StatusCode, "the address's requests are all in")
	assert.Equal(t, "1", resp.Header.Get("Retry-After"))
	req.Header.Set("X-Forwarded-For", "198.51.100.1")
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode, "another address is served")
}

// One address holds at most web.MaxConnsPerAddress connections; past it a
// new one is closed at once. The load balancer's addresses are exempt.
func TestConnectionsPerAddressAreBounded(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	limited := web.ConnsPerAddress(ln, 3, nil)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") })}
	go func() { _ = srv.Serve(limited) }()
	t.Cleanup(func() { _ = srv.Close() })
	var held []net.Conn
	for range 3 {
		c, err := net.Dial("tcp", ln.Addr().String())
		require.NoError(t, err)
		held = append(held, c)
	}
	extra, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	_ = extra.SetReadDeadline(time.Now().Add(2 * time.Second))
	_, err = extra.Read(make([]byte, 1))
	assert.ErrorIs(t, err, io.EOF, "the fourth connection is closed at once")
	held[0].Close()
	require.Eventually(t, func() bool {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			return false
		}
		defer c.Close()
		_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
		_ = c.SetReadDeadline(time.Now().Add(time.Second))
		buf := make([]byte, 64)
		n, _ := c.Read(buf)
		return strings.Contains(string(buf[:n]), "200 OK")
	}, 3*time.Second, 50*time.Millisecond, "a closed connection gives its place back")
	for _, c := range held[1:] {
		c.Close()
	}

	ln2, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	exempt := web.ConnsPerAddress(ln2, 1, []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")})
	go func() {
		for {
			c, err := exempt.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	t.Cleanup(func() { _ = ln2.Close() })
	for range 3 {
		c, err := net.Dial("tcp", ln2.Addr().String())
		require.NoError(t, err)
		_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		_, err = c.Read(make([]byte, 1))
		var ne net.Error
		assert.ErrorAs(t, err, &ne, "a trusted proxy's connection stays open (the read times out)")
		defer c.Close()
	}
}

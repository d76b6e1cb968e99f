package web_test

import (
	"bufio"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
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

// serveGuarded runs h as the server runs it (FramingGuard) on 127.0.0.1:0.
func serveGuarded(t *testing.T, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	ln = web.FramingGuard(srv, ln)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String()
}

func TestARequestWithBothFramingsIsRefusedAndTheConnectionClosed(t *testing.T) {
	addr := serveGuarded(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = io.WriteString(w, "ok")
	}))
	send := func(raw string) (*http.Response, *bufio.Reader, net.Conn) {
		c, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		t.Cleanup(func() { c.Close() })
		_, err = io.WriteString(c, raw)
		require.NoError(t, err)
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		require.NoError(t, err)
		_, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, br, c
	}
	resp, br, c := send("POST /api/users HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
	assert.Contains(t, []int{http.StatusBadRequest, http.StatusLengthRequired}, resp.StatusCode)
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	_, err := br.ReadByte()
	assert.ErrorIs(t, err, io.EOF, "the connection is closed after the answer")

	resp, br, c = send("POST /api/users HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n")
	assert.Equal(t, http.StatusLengthRequired, resp.StatusCode, "chunked alone is refused too: a body has a length here")
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	_, err = br.ReadByte()
	assert.ErrorIs(t, err, io.EOF, "and the connection closed")

	resp, br, c = send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	for range 50 { // a long-lived connection: the check still sees each request's own headers
		_, err = io.WriteString(c, "POST /api/users HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi")
		require.NoError(t, err)
		resp, err = http.ReadResponse(br, nil)
		require.NoError(t, err)
		_, _ = io.ReadAll(resp.Body)
		require.Equal(t, http.StatusOK, resp.StatusCode)
	}
	_, err = io.WriteString(c, "POST /api/users HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
	require.NoError(t, err)
	resp, err = http.ReadResponse(br, nil)
	require.NoError(t, err)
	assert.Contains(t, []int{http.StatusBadRequest, http.StatusLengthRequired}, resp.StatusCode, "late in a connection too")
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	resp, _, _ = send("POST /api/users HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi")
	assert.Equal(t, http.StatusOK, resp.StatusCode, "Content-Length alone is fine")
}

// The web tier passes the load balancer's X-Forwarded-For chain on (with
// the balancer's own address), and only a trusted peer's: a client's own
// header is not believed.
func TestTheForwardedForChainIsKeptOnlyFromTheLoadBalancer(t *testing.T) {
	var mu sync.Mutex
	var got string
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = r.Header.Get("X-Forwarded-For")
		mu.Unlock()
		_, _ = io.WriteString(w, `{"tags":[]}`)
	}))
	t.Cleanup(api.Close)
	u, _ := url.Parse(api.URL)
	for _, tt := range []struct {
		name    string
		trusted []netip.Prefix
		want    string
	}{
		{"behind a trusted ALB", []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, "198.51.100.7, 127.0.0.1"},
		{"from the internet", nil, "127.0.0.1"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w, err := waf.New(waf.On, 1<<20)
			require.NoError(t, err)
			h, err := web.New(w, slog.New(slog.DiscardHandler), web.Options{Upstream: u, TrustedProxies: tt.trusted})
			require.NoError(t, err)
			srv := httptest.NewServer(observe.NewMetrics("web").Middleware(slog.New(slog.DiscardHandler), h.Route, tt.trusted, h))
			t.Cleanup(srv.Close)
			req, _ := http.NewRequest("GET", srv.URL+"/api/tags", nil)
			req.Header.Set("X-Forwarded-For", "198.51.100.7")
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			resp.Body.Close()
			mu.Lock()
			defer mu.Unlock()
			assert.Equal(t, tt.want, got)
		})
	}
}

// The web tier's own answers (a WAF block, an unreachable api) carry the
// API's CSP; over HTTPS every answer carries HSTS.
func TestTheWebTiersOwnErrorsCarryCSPAndHSTS(t *testing.T) {
	w, err := waf.New(waf.On, 1<<20)
	require.NoError(t, err)
	down, _ := url.Parse("http://127.0.0.1:1")
	h, err := web.New(w, slog.New(slog.DiscardHandler), web.Options{Upstream: down, TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}})
	require.NoError(t, err)
	for _, tt := range []struct{ name, path string }{
		{"blocked by the WAF", "/api/articles?tag=" + url.QueryEscape("' OR 1=1 UNION SELECT password FROM users --")},
		{"upstream unreachable", "/api/tags"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", tt.path, nil)
			r.RemoteAddr = "10.0.3.7:41000"
			r.Header.Set("X-Forwarded-Proto", "https")
			r.Header.Set("User-Agent", "Mozilla/5.0")
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			assert.GreaterOrEqual(t, rec.Code, 400)
			assert.Equal(t, "default-src 'none'; frame-ancestors 'none'", rec.Header().Get("Content-Security-Policy"))
			assert.True(t, strings.HasPrefix(rec.Header().Get("Strict-Transport-Security"), "max-age="))
		})
	}
}

// Proxied over HTTPS, an api answer carries HSTS once.
func TestHSTSIsSentOnce(t *testing.T) {
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
		_, _ = io.WriteString(w, `{"tags":[]}`)
	}))
	t.Cleanup(api.Close)
	u, _ := url.Parse(api.URL)
	w, err := waf.New(waf.On, 1<<20)
	require.NoError(t, err)
	h, err := web.New(w, slog.New(slog.DiscardHandler), web.Options{Upstream: u, TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}})
	require.NoError(t, err)
	r := httptest.NewRequest("GET", "/api/tags", nil)
	r.RemoteAddr = "10.0.3.7:41000"
	r.Header.Set("X-Forwarded-Proto", "https")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	assert.Len(t, rec.Header().Values("Strict-Transport-Security"), 1)
}

// RFC 9112 §6.1/§6.3 on the requests the first check missed: one
// pipelined in the same write as the request before it, and HTTP/1.0 with
// Transfer-Encoding (with or without Content-Length): refused, and the
// connection closed.
func TestFaultyFramingIsRefusedPipelinedAndOnHTTP10(t *testing.T) {
	addr := serveGuarded(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = io.WriteString(w, "ok")
	}))
	// want: each answer's status (0: a refusal, 400 or 411); after the
	// last, the connection is closed when closed is set.
	tests := []struct {
		name   string
		raw    string
		want   []int
		closed bool
	}{
		{"pipelined CL+TE after a clean request", "GET / HTTP/1.1\r\nHost: a\r\n\r\n" +
			"POST /api/users HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", []int{200, 0}, true},
		{"HTTP/1.0 with both: answered by its length, and the connection ends", "POST /api/users HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", []int{200}, true},
		{"HTTP/1.0 with Transfer-Encoding: the connection ends with the answer", "POST /api/users HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", []int{200}, true},
		{"three clean requests in one write", "GET / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\nPOST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi", []int{200, 200, 200}, false},
		// The bypasses of the raw-header check (issue #30): a decoy request
		// line in an earlier body, and a bare-LF header line.
		{"a decoy request line in the body before", "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 51\r\n\r\nPOST /api/users HTTP/1.1\r\nHost: a\r\nX: y\r\n\r\n" +
			"POST /api/users HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", []int{200, 0}, true},
		{"a bare-LF Content-Length beside Transfer-Encoding", "POST /api/users HTTP/1.1\r\nHost: a\r\nContent-Length: 4\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", []int{0}, true},
		{"chunked alone", "POST /api/users HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n", []int{411}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := net.Dial("tcp", addr)
			require.NoError(t, err)
			defer c.Close()
			_, err = io.WriteString(c, tt.raw)
			require.NoError(t, err)
			br := bufio.NewReader(c)
			for i, want := range tt.want {
				resp, err := http.ReadResponse(br, nil)
				require.NoError(t, err, "answer %d", i)
				_, _ = io.ReadAll(resp.Body)
				resp.Body.Close()
				if want == 0 {
					assert.Contains(t, []int{http.StatusBadRequest, http.StatusLengthRequired}, resp.StatusCode, "answer %d refused", i)
				} else {
					assert.Equal(t, want, resp.StatusCode, "answer %d", i)
				}
			}
			if tt.closed {
				_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
				_, err = br.ReadByte()
				assert.ErrorIs(t, err, io.EOF, "the connection is closed after the refusal")
			}
		})
	}
}

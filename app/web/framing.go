package web

import (
	"bytes"
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"sync"
)

// RFC 9112 §6.3: a request with both Transfer-Encoding and Content-Length
// may be an attempt at request smuggling; a server that answers it must
// close the connection. Go's server lets Transfer-Encoding win and drops
// Content-Length before any handler sees the request, so the raw header
// block is kept for the check: FramingGuard wraps the listener (recording
// the last bytes each connection read) and the handler (refusing such a
// request with 400 and closing the connection).

// tapWindow is how many of a connection's latest bytes are kept: a header
// block (the server's MaxHeaderBytes is 64 KiB) plus read-ahead.
const tapWindow = 80 << 10

type tapConn struct {
	net.Conn
	mu   sync.Mutex
	seen []byte
}

func (c *tapConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.mu.Lock()
		c.seen = append(c.seen, p[:n]...)
		if over := len(c.seen) - tapWindow; over > 0 {
			c.seen = append(c.seen[:0], c.seen[over:]...)
		}
		c.mu.Unlock()
	}
	return n, err
}

// headerBlock returns the raw header block of the latest request read whose
// request line is line, or nil.
func (c *tapConn) headerBlock(line []byte) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	i := bytes.LastIndex(c.seen, line)
	if i < 0 {
		return nil
	}
	block := c.seen[i:]
	if end := bytes.Index(block, []byte("\r\n\r\n")); end >= 0 {
		block = block[:end]
	}
	return bytes.Clone(block)
}

type tapListener struct{ net.Listener }

func (l tapListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &tapConn{Conn: c}, nil
}

type tapKey struct{}

// FramingGuard arms srv and returns ln wrapped for it: requests carrying
// both Transfer-Encoding and Content-Length get 400 and a closed
// connection.
func FramingGuard(srv *http.Server, ln net.Listener) net.Listener {
	prev := srv.ConnContext
	srv.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
		if prev != nil {
			ctx = prev(ctx, c)
		}
		if tc, ok := c.(*tapConn); ok {
			ctx = context.WithValue(ctx, tapKey{}, tc)
		}
		return ctx
	}
	next := srv.Handler
	srv.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Over TLS the server sees a tapConn, not the *tls.Conn it would
		// read r.TLS from: say so here (the handshake is done by now).
		if tc, ok := r.Context().Value(tapKey{}).(*tapConn); ok && r.TLS == nil {
			if tlsConn, ok := tc.Conn.(*tls.Conn); ok {
				cs := tlsConn.ConnectionState()
				r.TLS = &cs
			}
		}
		if ambiguousFraming(r) {
			w.Header().Set("Connection", "close")
			writeError(w, http.StatusBadRequest, "a request may not carry both Transfer-Encoding and Content-Length")
			return
		}
		next.ServeHTTP(w, r)
	})
	return tapListener{ln}
}

func ambiguousFraming(r *http.Request) bool {
	if len(r.TransferEncoding) == 0 || r.ProtoMajor != 1 {
		return false
	}
	tc, ok := r.Context().Value(tapKey{}).(*tapConn)
	if !ok {
		return false
	}
	line := []byte(r.Method + " " + r.RequestURI + " " + r.Proto + "\r\n")
	for _, h := range bytes.Split(tc.headerBlock(line), []byte("\r\n"))[1:] {
		name, _, _ := bytes.Cut(h, []byte(":"))
		if bytes.EqualFold(bytes.TrimSpace(name), []byte("Content-Length")) {
			return true
		}
	}
	return false
}

package web

import (
	"bytes"
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"sync"
)

// RFC 9112 §6.1 and §6.3: a request with both Transfer-Encoding and
// Content-Length may be an attempt at request smuggling, and so is an
// HTTP/1.0 request with Transfer-Encoding at all; a server must treat
// either as faulty framing and close the connection after answering. Go's
// server lets Transfer-Encoding win and drops Content-Length before any
// handler sees the request (and reads an HTTP/1.0 body by Content-Length
// alone), so the raw header block is kept for the check: FramingGuard
// wraps the listener (each connection records the last tapLimit bytes it
// read, and where the last request it checked ended) and the handler
// (refusing such a request with 400 and closing the connection). A
// request pipelined in the same read as the one before it is found there
// too. A request with Transfer-Encoding whose header block is not among
// the recorded bytes (a block over tapLimit) is refused as well: it
// cannot be shown unambiguous.

// tapLimit bounds what a connection records: the requests the web tier
// serves have header blocks well under it (MaxInspected is 8 KiB).
const tapLimit = 16 << 10

// tapConn records the last tapLimit bytes the server read from it.
type tapConn struct {
	net.Conn
	mu       sync.Mutex
	seen     []byte
	base     int64 // the offset in the stream of seen[0]
	consumed int64 // the offset where the last request found ended
}

func (c *tapConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.mu.Lock()
		c.seen = append(c.seen, p[:n]...)
		if drop := len(c.seen) - tapLimit; drop > 0 {
			c.seen = append(c.seen[:0], c.seen[drop:]...)
			c.base += int64(drop)
		}
		c.mu.Unlock()
	}
	return n, err
}

// headerBlock returns the raw header block of the request whose request
// line is line: its first occurrence after the last request found, or nil.
func (c *tapConn) headerBlock(line []byte) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	from := max(0, c.consumed-c.base)
	if from > int64(len(c.seen)) {
		return nil
	}
	i := bytes.Index(c.seen[from:], line)
	if i < 0 {
		return nil
	}
	block := c.seen[from+int64(i):]
	end := bytes.Index(block, []byte("\r\n\r\n"))
	if end < 0 {
		return nil
	}
	out := bytes.Clone(block[:end])
	// Keep only what follows (the body, a pipelined request): an idle
	// connection holds no more than its last body's tail.
	cut := from + int64(i) + int64(end) + 4
	c.seen = append(c.seen[:0], c.seen[cut:]...)
	c.base += cut
	c.consumed = c.base
	return out
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
		if msg := faultyFraming(r); msg != "" {
			w.Header().Set("Connection", "close")
			writeError(w, http.StatusBadRequest, msg)
			return
		}
		next.ServeHTTP(w, r)
	})
	return tapListener{ln}
}

// faultyFraming says what is wrong with r's framing, or "".
func faultyFraming(r *http.Request) string {
	tc, ok := r.Context().Value(tapKey{}).(*tapConn)
	if !ok || r.ProtoMajor != 1 {
		return ""
	}
	line := []byte(r.Method + " " + r.RequestURI + " " + r.Proto + "\r\n")
	block := tc.headerBlock(line)
	if block == nil {
		if len(r.TransferEncoding) > 0 {
			return "a request with Transfer-Encoding must show its headers whole"
		}
		return ""
	}
	var te, cl bool
	for _, h := range bytes.Split(block, []byte("\r\n"))[1:] {
		name, _, _ := bytes.Cut(h, []byte(":"))
		name = bytes.TrimSpace(name)
		te = te || bytes.EqualFold(name, []byte("Transfer-Encoding"))
		cl = cl || bytes.EqualFold(name, []byte("Content-Length"))
	}
	switch {
	case te && cl:
		return "a request may not carry both Transfer-Encoding and Content-Length"
	case te && r.ProtoMinor == 0:
		return "an HTTP/1.0 request may not carry Transfer-Encoding"
	}
	return ""
}

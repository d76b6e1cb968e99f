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
// block is kept for the check: FramingGuard wraps the listener (each
// connection records what it reads between requests) and the handler
// (refusing such a request with 400 and closing the connection). A
// request pipelined in the same read as the one before it is not seen
// raw; Go's own handling (Transfer-Encoding wins) then applies.

// tapLimit bounds what a connection records: a header block (the server's
// MaxHeaderBytes is 64 KiB) and the server's read-ahead.
const tapLimit = 72 << 10

// tapConn records what the server reads between requests: from the end of
// one handler to the start of the next, that is the next request's header
// block (and a little read-ahead). Bodies are not recorded, so it stays
// small whatever the connection carries.
type tapConn struct {
	net.Conn
	mu        sync.Mutex
	recording bool
	seen      []byte
}

func (c *tapConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.mu.Lock()
		if c.recording {
			if len(c.seen)+n > tapLimit {
				c.recording, c.seen = false, nil // too much for one header block: give up on it
			} else {
				c.seen = append(c.seen, p[:n]...)
			}
		}
		c.mu.Unlock()
	}
	return n, err
}

// headerBlock returns the raw header block of the request whose request
// line is line, from what was recorded since the last request, or nil.
func (c *tapConn) headerBlock(line []byte) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	i := bytes.Index(c.seen, line)
	if i < 0 {
		return nil
	}
	block := c.seen[i:]
	if end := bytes.Index(block, []byte("\r\n\r\n")); end >= 0 {
		block = block[:end]
	}
	return bytes.Clone(block)
}

// pause stops recording (a handler runs: its body is not wanted); resume
// starts afresh for the next request.
func (c *tapConn) pause() {
	c.mu.Lock()
	c.recording, c.seen = false, nil
	c.mu.Unlock()
}

func (c *tapConn) resume() {
	c.mu.Lock()
	c.recording, c.seen = true, c.seen[:0]
	c.mu.Unlock()
}

type tapListener struct{ net.Listener }

func (l tapListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &tapConn{Conn: c, recording: true}, nil
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
		ambiguous := ambiguousFraming(r)
		if tc, ok := r.Context().Value(tapKey{}).(*tapConn); ok {
			tc.pause()
			defer tc.resume()
		}
		if ambiguous {
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

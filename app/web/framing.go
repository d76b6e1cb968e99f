package web

import (
	"net"
	"net/http"
)

// RFC 9112 §6.1 and §6.3: a request with both Transfer-Encoding and
// Content-Length may be an attempt at request smuggling, and so is an
// HTTP/1.0 request with Transfer-Encoding at all; a server must treat
// either as faulty framing and close the connection after answering. Go's
// server lets Transfer-Encoding win and drops Content-Length before any
// handler sees the request, so the two cannot be told apart here without
// the raw header block — which an earlier check kept, and which a decoy
// request line in an earlier body or a bare-LF header line could forge
// (issue #30). FramingGuard refuses every HTTP/1.1 request that carries
// Transfer-Encoding instead (Go refuses one with both by itself), and
// ends every HTTP/1.0 connection with its first answer.

// FramingGuard arms srv: HTTP/1.1 requests carrying Transfer-Encoding get
// 411 and a closed connection (Go answers one with Content-Length too 400
// by itself); an HTTP/1.0 connection ends with its first answer (Go hides
// an HTTP/1.0 request's Transfer-Encoding). It returns ln as it is.
func FramingGuard(srv *http.Server, ln net.Listener) net.Listener {
	next := srv.Handler
	srv.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if st, msg := faultyFraming(r); st != 0 {
			w.Header().Set("Connection", "close")
			writeError(w, st, msg)
			return
		}
		if r.ProtoMajor == 1 && r.ProtoMinor == 0 {
			// Go reads an HTTP/1.0 body by Content-Length alone, whatever
			// Transfer-Encoding says, and hides the header: what another
			// hop read as chunks would be left in the stream. An HTTP/1.0
			// connection ends with its answer, so nothing left is parsed.
			w.Header().Set("Connection", "close")
		}
		next.ServeHTTP(w, r)
	})
	return ln
}

// faultyFraming says what is wrong with r's framing, or "". Any HTTP/1.1
// request with Transfer-Encoding is refused (411): Go's server has already let Transfer-Encoding win over a
// Content-Length, and telling a smuggled pair from a lone chunked body
// needs the raw header block, which a decoy request line in an earlier
// body or a bare-LF header line could forge (issue #30). No browser sends
// a chunked request, nor does any client of this API: every body here
// has a length.
func faultyFraming(r *http.Request) (int, string) {
	if r.ProtoMajor != 1 {
		return 0, ""
	}
	if len(r.TransferEncoding) == 0 {
		return 0, ""
	}
	return http.StatusLengthRequired, "a request body must have a Content-Length (Transfer-Encoding is refused)"
}

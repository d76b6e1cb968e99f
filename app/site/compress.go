package site

import (
	"bytes"
	"compress/gzip"
	"net/http"
	"strconv"
	"strings"
	"sync"
)

// minCompress is the smallest body worth compressing: below it gzip's
// header and a round of CPU buy nothing.
const minCompress = 1024

// acceptsGzip reports whether the request's Accept-Encoding allows gzip
// (a q of 0 refuses it; "*" allows it).
func acceptsGzip(r *http.Request) bool {
	ok := false
	for part := range strings.SplitSeq(r.Header.Get("Accept-Encoding"), ",") {
		name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		name = strings.ToLower(strings.TrimSpace(name))
		if name != "gzip" && name != "*" {
			continue
		}
		q := 1.0
		if k, v, found := strings.Cut(strings.TrimSpace(params), "="); found && strings.TrimSpace(k) == "q" {
			if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
				q = f
			}
		}
		if name == "gzip" {
			return q > 0
		}
		ok = q > 0
	}
	return ok
}

var gzipPool = sync.Pool{New: func() any {
	w, _ := gzip.NewWriterLevel(nil, gzip.DefaultCompression)
	return w
}}

// gzipped is body compressed.
func gzipped(body []byte) []byte {
	var out bytes.Buffer
	out.Grow(len(body) / 3)
	zw := gzipPool.Get().(*gzip.Writer)
	zw.Reset(&out)
	_, _ = zw.Write(body)
	_ = zw.Close()
	gzipPool.Put(zw)
	return out.Bytes()
}

// writeBody sends body with its length, compressed when the client takes
// gzip and it is worth it. Pages hold a CSRF token next to text a visitor
// can choose (a search tag): the token is masked afresh per response
// (maskToken), so compression tells an observer nothing about it (BREACH).
func writeBody(w http.ResponseWriter, r *http.Request, status int, body, precompressed []byte) {
	h := w.Header()
	h.Add("Vary", "Accept-Encoding")
	if acceptsGzip(r) && (precompressed != nil || len(body) >= minCompress) {
		if precompressed == nil {
			precompressed = gzipped(body)
		}
		body = precompressed
		h.Set("Content-Encoding", "gzip")
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

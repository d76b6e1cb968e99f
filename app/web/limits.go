package web

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"webstack/app/observe"
	"webstack/app/waf"
)

// What the web tier refuses before its WAF reads a byte (ASVS 12.1.1,
// 13.1.3): the CRS costs CPU in proportion to what it inspects (an 800 KB
// body took 3.4 s of one core, JSON nested 100,000 deep 0.7 s), so a request
// is first held to what its route can need:
//
//   - a request target of at most MaxTarget bytes (414);
//   - no body on GET, HEAD, DELETE or OPTIONS (400);
//   - a body no larger than its route's limit (413): articles (JSON or the
//     editor's form) up to the server's MaxBodyBytes, comments 256 KiB,
//     settings 64 KiB, everything else 8 KiB;
//   - JSON nested at most MaxJSONDepth deep (400);
//   - at most MaxInspected bytes for the WAF to inspect: the target, the
//     headers, and the body but its content fields (431);
//
// and then at most a few inspections run at once (inspections), a client
// at most a couple of them: one client cannot take the tier's CPU.
const (
	// MaxTarget bounds the path and query: the longest real one (a tag
	// list filter) is under 300 bytes.
	MaxTarget = 8 << 10
	// MaxJSONDepth bounds JSON nesting: Conduit's bodies are 3 deep.
	MaxJSONDepth = 32
	// smallBody is the limit of every route that takes no user-written text.
	smallBody = 8 << 10
)

// bodyLimits are the routes that take user-written text and how much; the
// rest take smallBody. (The same routes as the WAFs' content routes.)
var bodyLimits = []struct {
	methods, path *regexp.Regexp
	limit         int64 // 0: the server's MaxBodyBytes
}{
	{regexp.MustCompile(`^(?:POST|PUT)$`), regexp.MustCompile(`^/api/articles(?:/[a-z0-9-]+)?$`), 0},
	{regexp.MustCompile(`^POST$`), regexp.MustCompile(`^/editor(?:/[a-z0-9-]+)?$`), 0},
	{regexp.MustCompile(`^POST$`), regexp.MustCompile(`^/api/articles/[a-z0-9-]+/comments$`), 256 << 10},
	{regexp.MustCompile(`^POST$`), regexp.MustCompile(`^/article/[a-z0-9-]+(?:/comments)?$`), 256 << 10},
	{regexp.MustCompile(`^PUT$`), regexp.MustCompile(`^/api/user$`), 64 << 10},
	{regexp.MustCompile(`^POST$`), regexp.MustCompile(`^/settings$`), 64 << 10},
}

// bodyLimit is how large r's body may be.
func (h *Handler) bodyLimit(r *http.Request) int64 {
	for _, b := range bodyLimits {
		if b.methods.MatchString(r.Method) && b.path.MatchString(r.URL.Path) {
			if b.limit == 0 || b.limit > h.opts.MaxBodyBytes {
				return h.opts.MaxBodyBytes
			}
			return b.limit
		}
	}
	return min(smallBody, h.opts.MaxBodyBytes)
}

// noBody are the methods that carry none here.
var noBody = map[string]bool{http.MethodGet: true, http.MethodHead: true, http.MethodDelete: true, http.MethodOptions: true}

// refusal is why a request is refused before inspection: its status and
// message, or 0.
func (h *Handler) refusal(r *http.Request) (int, string) {
	if len(r.RequestURI) > MaxTarget {
		return http.StatusRequestURITooLong, fmt.Sprintf("the request target is longer than %d bytes", MaxTarget)
	}
	if noBody[r.Method] && (r.ContentLength > 0 || len(r.TransferEncoding) > 0) {
		return http.StatusBadRequest, fmt.Sprintf("a %s request carries no body", r.Method)
	}
	if limit := h.bodyLimit(r); r.ContentLength > limit {
		return http.StatusRequestEntityTooLarge, fmt.Sprintf("body is larger than %d bytes", limit)
	}
	return 0, ""
}

// readBody reads r's body within its limit, so that a chunked body is held
// to it too, and checks JSON nesting; the body is put back for the WAF and
// the handler. The body must arrive within bodyDeadline of its size (a
// minimum rate: 408 past it), and one client address reads at most
// maxBodyBytesPerClient bytes of bodies at once (429 past it); done gives
// the bytes back (call it when the request is over).
func (h *Handler) readBody(w http.ResponseWriter, r *http.Request) (done func(), status int, msg string) {
	done = func() {}
	var body []byte
	if r.Body != nil && r.Body != http.NoBody {
		limit := h.bodyLimit(r)
		size := limit
		if r.ContentLength >= 0 && r.ContentLength < limit {
			size = r.ContentLength
		}
		release, ok := h.bodies.reserve(observe.Client(r.Context()), max(size, minBodyReservation), h.bodyBudget())
		if !ok {
			return done, http.StatusTooManyRequests, "too many request bodies are coming from your address at once: try again in a second"
		}
		done = release
		rc := http.NewResponseController(w)
		_ = rc.SetReadDeadline(time.Now().Add(bodyDeadline(size)))
		var err error
		body, err = io.ReadAll(http.MaxBytesReader(w, r.Body, limit)) // the deadline above ends a slow one
		if err != nil {
			// What is left of the body is not read: the server's drain of it
			// (up to 256 KiB, before it closes the connection) fails at once
			// instead of waiting on a client that sends nothing more.
			_ = rc.SetReadDeadline(time.Now())
		} else {
			_ = rc.SetReadDeadline(time.Time{})
		}
		if err != nil {
			var tooLarge *http.MaxBytesError
			switch {
			case errors.As(err, &tooLarge):
				return done, http.StatusRequestEntityTooLarge, fmt.Sprintf("body is larger than %d bytes", limit)
			case isTimeout(err):
				return done, http.StatusRequestTimeout, fmt.Sprintf("the body came slower than %d bytes a second", minBodyRate)
			}
			return done, http.StatusBadRequest, "request could not be read"
		}
		if jsonDepth(body) > MaxJSONDepth {
			return done, http.StatusBadRequest, fmt.Sprintf("JSON nested deeper than %d", MaxJSONDepth)
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.ContentLength = int64(len(body))
	}
	if n := inspected(r, body); n > MaxInspected {
		status := http.StatusRequestEntityTooLarge
		if inspected(r, nil) > MaxInspected {
			status = http.StatusRequestHeaderFieldsTooLarge
		}
		return done, status, fmt.Sprintf("the request's address, headers and fields other than its text come to %d bytes; at most %d are inspected", n, MaxInspected)
	}
	return done, 0, ""
}

// jsonDepth is the deepest nesting of objects and arrays in b, counted
// outside strings (one pass, no parsing: it runs before anything else).
// Bodies that are not JSON get a meaningless but harmless number.
func jsonDepth(b []byte) int {
	depth, deepest, inString, escaped := 0, 0, false, false
	for _, c := range b {
		switch {
		case escaped:
			escaped = false
		case inString && c == '\\':
			escaped = true
		case c == '"':
			inString = !inString
		case inString:
		case c == '{' || c == '[':
			depth++
			deepest = max(deepest, depth)
		case c == '}' || c == ']':
			depth--
		}
	}
	return deepest
}

// inspections bounds how many WAF inspections run at once (all clients:
// twice the cores) and how many one client address may have running
// (perClient): past either, a request waits, at most maxWait, then gets
// 503 with Retry-After. A normal request's inspection takes about a
// millisecond, so only a client sending expensive requests in parallel
// ever waits on its own share.
type inspections struct {
	all       chan struct{}
	perClient int
	mu        sync.Mutex
	clients   map[string]*clientSlots
	waiting   atomic.Int64 // requests waiting for a slot
	lastDone  atomic.Int64 // when an inspection last ended (unix ns)
}

// stuckAfter is how long inspections may make no progress, with requests
// waiting, before the tier says it cannot serve (see stuck).
const stuckAfter = 10 * time.Second

// stuck reports whether requests wait for a slot and no inspection has
// ended for stuckAfter: the instance cannot serve. A busy instance (slots
// taken, inspections ending) is not stuck: its health check must not turn
// a load into the replacement of every instance.
func (in *inspections) stuck(now time.Time) bool {
	return in.waiting.Load() > 0 && now.Sub(time.Unix(0, in.lastDone.Load())) > stuckAfter
}

type clientSlots struct {
	slots chan struct{}
	users int // requests holding or waiting for one of slots
}

// maxWait is how long a request waits for an inspection slot.
const maxWait = 2 * time.Second

// newInspections holds perClient slots for each client address and total
// in all (the server: 2 per core it may use).
func newInspections(perClient, total int) *inspections {
	in := &inspections{all: make(chan struct{}, total), perClient: perClient, clients: map[string]*clientSlots{}}
	in.lastDone.Store(time.Now().UnixNano())
	return in
}

// acquire takes a slot for client, or reports false when none freed
// within maxWait.
func (in *inspections) acquire(ctx context.Context, client string) (release func(), ok bool) {
	in.mu.Lock()
	c := in.clients[client]
	if c == nil {
		c = &clientSlots{slots: make(chan struct{}, in.perClient)}
		in.clients[client] = c
	}
	c.users++
	in.mu.Unlock()
	leave := func() {
		in.mu.Lock()
		if c.users--; c.users == 0 {
			delete(in.clients, client)
		}
		in.mu.Unlock()
	}
	in.waiting.Add(1)
	defer in.waiting.Add(-1)
	t := time.NewTimer(maxWait)
	defer t.Stop()
	select {
	case c.slots <- struct{}{}:
	case <-t.C:
		leave()
		return nil, false
	case <-ctx.Done():
		leave()
		return nil, false
	}
	select {
	case in.all <- struct{}{}:
		return func() { in.lastDone.Store(time.Now().UnixNano()); <-in.all; <-c.slots; leave() }, true
	case <-t.C:
	case <-ctx.Done():
	}
	<-c.slots
	leave()
	return nil, false
}

// MaxInspected bounds what the WAF inspects of one request: the request
// target, the headers, and the body except the content fields the CRS
// exclusions take out (an article's text). The CRS costs about 4-5 ms of
// CPU per KiB of attack-shaped input on this hardware; 8 KiB keeps the
// worst request near 40 ms. A real request is under 2 KiB.
const MaxInspected = 8 << 10

// inspected is how many bytes of r (with its body read) the WAF inspects.
func inspected(r *http.Request, body []byte) int {
	n := len(r.RequestURI)
	for k, vs := range r.Header {
		for _, v := range vs {
			n += len(k) + len(v)
		}
	}
	content := waf.ContentFields(r.Method, r.URL.Path)
	if len(content) == 0 || len(body) == 0 {
		return n + len(body)
	}
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch ct {
	case "application/json":
		var v any
		if err := json.Unmarshal(body, &v); err != nil {
			return n + len(body) // not JSON: the CRS reads it as it is
		}
		return n + jsonArgs(v, "json", content)
	case "application/x-www-form-urlencoded":
		q, err := url.ParseQuery(string(body))
		if err != nil {
			return n + len(body)
		}
		for k, vs := range q {
			for _, v := range vs {
				if !slices.Contains(content, k) {
					n += len(k) + len(v)
				}
			}
		}
		return n
	}
	return n + len(body)
}

// jsonArgs is the size of the arguments the CRS makes of v (named as
// Coraza's JSON body processor names them: "json.article.tagList.0"),
// except the content fields.
func jsonArgs(v any, name string, content []string) int {
	switch v := v.(type) {
	case map[string]any:
		n := 0
		for k, c := range v {
			n += len(k) + jsonArgs(c, name+"."+k, content)
		}
		return n
	case []any:
		n := 0
		for i, c := range v {
			n += 2 + jsonArgs(c, name+"."+strconv.Itoa(i), content)
		}
		return n
	case string:
		if slices.Contains(content, name) {
			return 0
		}
		return len(v)
	default:
		return 8
	}
}

package web

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"
)

// A slow client costs only itself (issue #30): its body is read before
// the request takes an inspection slot, within a deadline that assumes a
// minimum rate; the slot covers the inspection alone (not the upstream
// call nor the answer's write); what one address may hold at once —
// connections, and body bytes being read — is bounded apart from the
// slots; and /healthz fails when no slot frees, so a load balancer
// replaces an instance that cannot serve.

const (
	// minBodyRate is the slowest a body may come, after bodyGrace: a
	// phone on a poor link sends 8 KiB in well under a second.
	minBodyRate = 8 << 10 // bytes per second
	bodyGrace   = 5 * time.Second
	// maxBodyBytesPerClient bounds the body bytes one client address has
	// being read at once (a request reserves its Content-Length, or its
	// route's limit when chunked, and at least minBodyReservation): past
	// it, 429. It is at least the largest body (Options.MaxBodyBytes).
	maxBodyBytesPerClient = 256 << 10
	minBodyReservation    = 4 << 10
	// maxBodyTime caps a body's deadline below the server's ReadTimeout
	// (30 s), which the deadline replaces.
	maxBodyTime = 25 * time.Second
	// MaxRequestsPerClient bounds the requests one client address has in
	// the web tier at once (a slow body, a slow reader, an api call), also
	// behind the load balancer, where every connection is its: past it,
	// 429.
	MaxRequestsPerClient = 64
	// MaxConnsPerAddress bounds the connections one peer address holds
	// (ConnsPerAddress).
	MaxConnsPerAddress = 64
)

// bodyDeadline is how long a body of size bytes may take to arrive.
func bodyDeadline(size int64) time.Duration {
	return min(maxBodyTime, bodyGrace+time.Duration(size)*time.Second/minBodyRate)
}

// bodyBudget is how many body bytes one client address may have being
// read at once.
func (h *Handler) bodyBudget() int64 { return max(maxBodyBytesPerClient, h.opts.MaxBodyBytes) }

// bodyBudget holds the body bytes each client address is reading.
type bodyBudget struct {
	mu    sync.Mutex
	bytes map[string]int64
}

// reserve takes n bytes of client's budget (of limit), or reports false.
func (b *bodyBudget) reserve(client string, n, limit int64) (release func(), ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.bytes == nil {
		b.bytes = map[string]int64{}
	}
	if b.bytes[client]+n > limit {
		return nil, false
	}
	b.bytes[client] += n
	return func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		if b.bytes[client] -= n; b.bytes[client] <= 0 {
			delete(b.bytes, client)
		}
	}, true
}

// isTimeout reports a read that ran past its deadline.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}

// ConnsPerAddress bounds the connections one peer address holds at once
// to max: past it, a new connection from that address is closed at once
// (its requests cost nothing more). The load balancer's addresses
// (trusted) are exempt: their connections carry everyone's requests, and
// the per-client bounds go by the address it forwards.
func ConnsPerAddress(ln net.Listener, max int, trusted []netip.Prefix) net.Listener {
	return &connLimiter{Listener: ln, max: max, trusted: trusted, conns: map[netip.Addr]int{}}
}

type connLimiter struct {
	net.Listener
	max     int
	trusted []netip.Prefix
	mu      sync.Mutex
	conns   map[netip.Addr]int
}

func (l *connLimiter) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ap, perr := netip.ParseAddrPort(c.RemoteAddr().String())
		if perr != nil {
			return c, nil
		}
		addr := ap.Addr().Unmap()
		for _, p := range l.trusted {
			if p.Contains(addr) {
				return c, nil
			}
		}
		l.mu.Lock()
		if l.conns[addr] >= l.max {
			l.mu.Unlock()
			_ = c.Close()
			continue
		}
		l.conns[addr]++
		l.mu.Unlock()
		return &countedConn{Conn: c, done: func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			if l.conns[addr]--; l.conns[addr] <= 0 {
				delete(l.conns, addr)
			}
		}}, nil
	}
}

// countedConn gives its place back once, when closed.
type countedConn struct {
	net.Conn
	once sync.Once
	done func()
}

func (c *countedConn) Close() error {
	c.once.Do(c.done)
	return c.Conn.Close()
}

// inFlight counts the requests each client address has in the tier.
type inFlight struct {
	mu sync.Mutex
	n  map[string]int
}

// enter counts a request of client, or reports false past max.
func (f *inFlight) enter(client string, max int) (leave func(), ok bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.n == nil {
		f.n = map[string]int{}
	}
	if f.n[client] >= max {
		return nil, false
	}
	f.n[client]++
	return func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.n[client]--; f.n[client] <= 0 {
			delete(f.n, client)
		}
	}, true
}

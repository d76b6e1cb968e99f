// Package storetest helps test what runs on the store against the faults
// of a database that fails over: FaultProxy stands between the driver and
// the database and breaks commands as a DocumentDB failover does.
package storetest

import (
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"webstack/internal/mongowire"
)

// Fault is what happens to one command.
type Fault int

// The faults a failover causes.
const (
	// None: the command goes through.
	None Fault = iota
	// DropBeforeSend: the connection breaks before the command reaches
	// the database (a write dropped on its way to the old primary).
	DropBeforeSend
	// LoseReply: the database runs the command and the reply is lost (the
	// connection breaks after the write applied).
	LoseReply
	// NotPrimary: the command is answered "not primary" (code 10107)
	// without reaching the database, as a demoted primary answers.
	NotPrimary
	// Stall: the command runs and its reply is held for FaultProxy.Stall
	// (a slow primary, a congested path): the client gives up first.
	Stall
	// Late: the command is held for FaultProxy.Late before it reaches the
	// database, and is then applied: a write that stalls on the server
	// past its request's deadline lands when the server gets to it —
	// after the client gave up, after its copy sent again, after the
	// person's next write. (DocumentDB has no retryable writes, so nothing
	// tells the late copy from a new one.)
	Late
	// RacedUpsert: an update with upsert:true is applied — as the
	// concurrent upsert of the same new document by another client would
	// be — and this client is answered E11000 duplicate key, as the one
	// whose insert lost the race. Other commands pass.
	RacedUpsert
)

func (f Fault) String() string {
	return [...]string{"none", "drop-before-send", "lose-reply", "not-primary", "stall", "late", "raced-upsert"}[f]
}

// faulted are the commands faults are injected into: what reads and
// writes data. Handshakes and monitoring pass, so the driver keeps
// finding the database, as it finds the new primary after a failover.
var faulted = []string{"find", "getMore", "insert", "update", "delete", "findAndModify", "aggregate", "count"}

// FaultProxy relays the MongoDB wire protocol between clients and a
// database, injecting faults into commands when told to.
type FaultProxy struct {
	// Addr is where clients connect (host:port).
	Addr string
	// Stall is how long a Stall fault holds a reply. Default 2 s.
	Stall time.Duration
	// Late is how long a Late fault holds a command before applying it.
	// Default 3 s (DocumentDB's can be 30 s: longer than any request).
	Late time.Duration
	// Observe, when set, is told of every command (its body) before it is
	// relayed or faulted. It must not keep cmd.
	Observe func(cmd bson.Raw)

	upstream string
	ln       net.Listener
	mu       sync.Mutex
	rate     float64
	kinds    []Fault
	only     []string
	next     []Fault  // InjectNext's: these, in order, before any drawn
	nextOnly []string // …into these commands
	rng      *rand.Rand
	counts   map[Fault]int
	landed   int // Late commands that reached the database
	conns    map[net.Conn]struct{}
	wg       sync.WaitGroup
}

// NewFaultProxy listens on 127.0.0.1 and relays to upstream (host:port).
func NewFaultProxy(upstream string, seed uint64) (*FaultProxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &FaultProxy{Addr: ln.Addr().String(), Stall: 2 * time.Second, Late: 3 * time.Second, upstream: upstream, ln: ln,
		rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), counts: map[Fault]int{}, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Inject makes each faulted command (of those named in only, or of
// Faulted when only is empty) fail with probability rate, with a fault
// drawn from kinds.
func (p *FaultProxy) Inject(rate float64, kinds []Fault, only ...string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rate, p.kinds, p.only = rate, kinds, only
}

// InjectNext makes the next len(faults) faulted commands (or the next of
// those named in only, which may name any command; a RacedUpsert waits for
// an upsert) meet these faults, in order, whatever Inject draws.
func (p *FaultProxy) InjectNext(faults []Fault, only ...string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.next, p.nextOnly = append([]Fault(nil), faults...), only
}

// Heal stops injecting faults.
func (p *FaultProxy) Heal() { p.Inject(0, nil) }

// Counts is how many faults of each kind were injected.
func (p *FaultProxy) Counts() map[Fault]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[Fault]int{}
	for k, v := range p.counts {
		out[k] = v
	}
	return out
}

// Landed is how many commands held by a Late fault have since reached the
// database (and been applied): what a test waits for before it looks.
func (p *FaultProxy) Landed() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.landed
}

// Injected is how many faults were injected in all.
func (p *FaultProxy) Injected() int {
	n := 0
	for _, v := range p.Counts() {
		n += v
	}
	return n
}

// Close stops listening and breaks every connection.
func (p *FaultProxy) Close() error {
	err := p.ln.Close()
	p.mu.Lock()
	for c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
	return err
}

func (p *FaultProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.relay(c)
		}()
	}
}

func (p *FaultProxy) track(c net.Conn, on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if on {
		p.conns[c] = struct{}{}
	} else {
		delete(p.conns, c)
	}
}

// pick draws the fault for one command (msg, its body cmd).
func (p *FaultProxy) pick(msg []byte, body bson.Raw) Fault {
	cmd := mongowire.Command(body)
	p.mu.Lock()
	defer p.mu.Unlock()
	// InjectNext reaches the commands named in its only even when they are
	// not data commands (an index build held: createIndexes).
	if len(p.next) > 0 && (len(p.nextOnly) == 0 && slices.Contains(faulted, cmd) || slices.Contains(p.nextOnly, cmd)) &&
		(p.next[0] != RacedUpsert || upserts(msg, body)) {
		f := p.next[0]
		p.next = p.next[1:]
		p.counts[f]++
		return f
	}
	if p.rate <= 0 || len(p.kinds) == 0 || !slices.Contains(faulted, cmd) || len(p.only) > 0 && !slices.Contains(p.only, cmd) {
		return None
	}
	if p.rng.Float64() >= p.rate {
		return None
	}
	f := p.kinds[p.rng.IntN(len(p.kinds))]
	p.counts[f]++
	return f
}

// relay serves one client connection.
func (p *FaultProxy) relay(client net.Conn) {
	p.track(client, true)
	defer p.track(client, false)
	defer client.Close()
	server, err := net.Dial("tcp", p.upstream)
	if err != nil {
		return
	}
	p.track(server, true)
	defer p.track(server, false)
	defer server.Close()
	for {
		msg, err := mongowire.Read(client)
		if err != nil {
			return
		}
		fault := None
		if body, ok := mongowire.Body(msg); ok {
			if p.Observe != nil {
				p.Observe(body)
			}
			fault = p.pick(msg, body)
			if fault == RacedUpsert && !upserts(msg, body) {
				fault = None
			}
		}
		switch fault {
		case DropBeforeSend:
			return
		case Late:
			time.Sleep(p.Late)
		case RacedUpsert:
			// The other client's upsert: applied, its answer not ours.
			if _, err := server.Write(msg); err != nil {
				return
			}
			if _, err := mongowire.Read(server); err != nil {
				return
			}
			coll, _ := body(msg).Lookup("update").StringValueOK()
			reply := mongowire.Doc(bson.D{{Key: "n", Value: int32(0)}, {Key: "nModified", Value: int32(0)},
				{Key: "writeErrors", Value: bson.A{bson.D{{Key: "index", Value: int32(0)}, {Key: "code", Value: int32(11000)},
					{Key: "errmsg", Value: "E11000 duplicate key error collection: " + coll + " index: _id_"}}}},
				{Key: "ok", Value: 1.0}})
			if _, err := client.Write(mongowire.Msg(mongowire.RequestID(msg), reply)); err != nil {
				return
			}
			continue
		case NotPrimary:
			reply := mongowire.Doc(bson.D{{Key: "ok", Value: 0.0}, {Key: "errmsg", Value: "not primary"},
				{Key: "code", Value: int32(10107)}, {Key: "codeName", Value: "NotWritablePrimary"}})
			if _, err := client.Write(mongowire.Msg(mongowire.RequestID(msg), reply)); err != nil {
				return
			}
			continue
		}
		if _, err := server.Write(msg); err != nil {
			return
		}
		if mongowire.MoreToCome(msg) {
			continue // no reply is coming
		}
		for {
			reply, err := mongowire.Read(server)
			if fault == Late {
				p.mu.Lock()
				p.landed++ // applied (or refused) by the database now
				p.mu.Unlock()
			}
			if err != nil || fault == LoseReply {
				return
			}
			if fault == Stall {
				time.Sleep(p.Stall)
			}
			if _, err := client.Write(reply); err != nil {
				return
			}
			if !mongowire.MoreToCome(reply) {
				break
			}
		}
	}
}

// body is msg's command document (empty when it has none).
func body(msg []byte) bson.Raw {
	b, _ := mongowire.Body(msg)
	return b
}

// upserts tells whether the update command msg (its body cmd) has a
// statement with upsert: true, in its body or its "updates" sequence.
func upserts(msg []byte, cmd bson.Raw) bool {
	if mongowire.Command(cmd) != "update" {
		return false
	}
	var stmts []bson.Raw
	if arr, ok := cmd.Lookup("updates").ArrayOK(); ok {
		vals, _ := arr.Values()
		for _, v := range vals {
			if d, ok := v.DocumentOK(); ok {
				stmts = append(stmts, d)
			}
		}
	}
	if seqs, ok := mongowire.Sequences(msg); ok {
		stmts = append(stmts, seqs["updates"]...)
	}
	for _, st := range stmts {
		if up, ok := st.Lookup("upsert").BooleanOK(); ok && up {
			return true
		}
	}
	return false
}

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
)

func (f Fault) String() string {
	return [...]string{"none", "drop-before-send", "lose-reply", "not-primary", "stall"}[f]
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
	// Observe, when set, is told of every command (its body) before it is
	// relayed or faulted. It must not keep cmd.
	Observe func(cmd bson.Raw)

	upstream string
	ln       net.Listener
	mu       sync.Mutex
	rate     float64
	kinds    []Fault
	only     []string
	rng      *rand.Rand
	counts   map[Fault]int
	conns    map[net.Conn]struct{}
	wg       sync.WaitGroup
}

// NewFaultProxy listens on 127.0.0.1 and relays to upstream (host:port).
func NewFaultProxy(upstream string, seed uint64) (*FaultProxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &FaultProxy{Addr: ln.Addr().String(), Stall: 2 * time.Second, upstream: upstream, ln: ln,
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

// pick draws the fault for one command.
func (p *FaultProxy) pick(cmd string) Fault {
	p.mu.Lock()
	defer p.mu.Unlock()
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
			fault = p.pick(mongowire.Command(body))
		}
		switch fault {
		case DropBeforeSend:
			return
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

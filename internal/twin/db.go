package twin

import (
	"crypto/md5"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/xdg-go/scram"
	"go.mongodb.org/mongo-driver/v2/bson"

	"webstack/internal/mongowire"
)

// cluster is the DocumentDB stand-in: TLS with the twin's CA on the
// cluster's name and port, SCRAM-SHA-1 against the stand-in Secrets
// Manager's current credentials (so rotating the secret changes the
// password, as DocumentDB's managed rotation does), and the replica set
// rs0 every DocumentDB cluster presents. Everything else is relayed to
// the embedded FerretDB behind it.
type cluster struct {
	upstream string // FerretDB, host:port
	aws      *standIns
	cert     tls.Certificate
	log      *slog.Logger
	conns    atomic.Int64

	// A failover: until downUntil (Unix nanoseconds) the cluster has no
	// primary; the connections open when it began were broken.
	downUntil atomic.Int64
	mu        sync.Mutex
	open      map[net.Conn]struct{}
}

func (c *cluster) serve(ln net.Listener) {
	tl := tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{c.cert}, MinVersion: tls.VersionTLS12})
	for {
		conn, err := tl.Accept()
		if err != nil {
			return
		}
		if time.Now().UnixNano() < c.downUntil.Load() {
			_ = conn.Close() // no primary behind the cluster endpoint yet
			continue
		}
		go c.session(conn)
	}
}

// failover models a DocumentDB failover: every open connection breaks
// (commands in flight are lost before or after they applied, as on the old
// primary), and for d no connection is accepted (the cluster endpoint has
// no primary until the new one is promoted).
func (c *cluster) failover(d time.Duration) {
	c.downUntil.Store(time.Now().Add(d).UnixNano())
	c.mu.Lock()
	defer c.mu.Unlock()
	for conn := range c.open {
		_ = conn.Close()
	}
	c.log.Info("database stand-in: failover", "without_primary", d)
}

// session relays one client connection.
func (c *cluster) session(client net.Conn) {
	c.mu.Lock()
	if c.open == nil {
		c.open = map[net.Conn]struct{}{}
	}
	c.open[client] = struct{}{}
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.open, client)
		c.mu.Unlock()
	}()
	defer client.Close()
	up, err := net.Dial("tcp", c.upstream)
	if err != nil {
		c.log.Error("database stand-in: FerretDB unreachable", "err", err)
		return
	}
	defer up.Close()
	id := c.conns.Add(1)
	s := &dbSession{c: c, client: client, up: up, id: id}
	if err := s.run(); !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) { // run ends only with an error
		c.log.Debug("database stand-in: connection ended", "conn", id, "err", err)
	}
}

type dbSession struct {
	c          *cluster
	client, up net.Conn
	id         int64
	authed     bool
	conv       *scram.ServerConversation
}

func (s *dbSession) run() error {
	for {
		msg, err := mongowire.Read(s.client)
		if err != nil {
			return err
		}
		reqID := mongowire.RequestID(msg)
		switch op := mongowire.OpCode(msg); op {
		case mongowire.OpQuery:
			doc, err := mongowire.Query(msg)
			if err != nil {
				return err
			}
			if !isHello(doc) {
				if err := s.relay(msg); err != nil {
					return err
				}
				continue
			}
			reply, err := s.roundTrip(msg)
			if err != nil {
				return err
			}
			patched, err := s.patchHello(mongowire.ReplyDoc(reply), doc)
			if err != nil {
				return err
			}
			if _, err := s.client.Write(mongowire.Reply(reqID, patched)); err != nil {
				return err
			}
		case mongowire.OpMsg:
			flags := binary.LittleEndian.Uint32(msg[16:])
			doc, ok := mongowire.Body(msg)
			if !ok {
				return fmt.Errorf("OP_MSG without a body")
			}
			cmd := mongowire.Command(doc)
			switch {
			case isHello(doc):
				reply, err := s.roundTrip(msg)
				if err != nil {
					return err
				}
				body, _ := mongowire.Body(reply)
				patched, err := s.patchHello(body, doc)
				if err != nil {
					return err
				}
				if _, err := s.client.Write(mongowire.Msg(reqID, patched)); err != nil {
					return err
				}
			case cmd == "saslStart" || cmd == "saslContinue":
				if _, err := s.client.Write(mongowire.Msg(reqID, s.sasl(cmd, doc))); err != nil {
					return err
				}
			case !s.authed && cmd != "ping" && cmd != "buildInfo" && cmd != "buildinfo" && cmd != "endSessions":
				refusal := bson.D{{Key: "ok", Value: 0.0}, {Key: "errmsg", Value: "Command " + cmd + " requires authentication"},
					{Key: "code", Value: int32(13)}, {Key: "codeName", Value: "Unauthorized"}}
				if _, err := s.client.Write(mongowire.Msg(reqID, mongowire.Doc(refusal))); err != nil {
					return err
				}
			case flags&2 != 0: // moreToCome: no reply expected
				if _, err := s.up.Write(msg); err != nil {
					return err
				}
			default:
				if err := s.relay(msg); err != nil {
					return err
				}
			}
		default:
			if err := s.relay(msg); err != nil {
				return err
			}
		}
	}
}

// relay sends msg upstream and copies the replies back (several while the
// server says more are coming).
func (s *dbSession) relay(msg []byte) error {
	if _, err := s.up.Write(msg); err != nil {
		return err
	}
	for {
		reply, err := mongowire.Read(s.up)
		if err != nil {
			return err
		}
		if _, err := s.client.Write(reply); err != nil {
			return err
		}
		if !mongowire.MoreToCome(reply) {
			return nil
		}
	}
}

func (s *dbSession) roundTrip(msg []byte) ([]byte, error) {
	if _, err := s.up.Write(msg); err != nil {
		return nil, err
	}
	return mongowire.Read(s.up)
}

func isHello(doc bson.Raw) bool {
	els, err := doc.Elements()
	if err != nil || len(els) == 0 {
		return false
	}
	switch els[0].Key() {
	case "hello", "isMaster", "ismaster":
		return true
	}
	return false
}

// patchHello makes FerretDB's hello DocumentDB's: the primary of replica
// set rs0 at the cluster's name, SCRAM-SHA-1 offered, no speculative
// authentication (the stand-in authenticates itself, with saslStart).
func (s *dbSession) patchHello(reply, req bson.Raw) (bson.Raw, error) {
	var d bson.D
	if err := bson.Unmarshal(reply, &d); err != nil {
		return nil, fmt.Errorf("hello reply: %w", err)
	}
	db := s.c.aws.m.AWS.DB
	me := db.Host + ":" + strconv.Itoa(db.Port)
	set := map[string]any{"setName": "rs0", "setVersion": int32(1), "hosts": bson.A{me}, "primary": me, "me": me, "secondary": false}
	out := bson.D{}
	for _, e := range d {
		switch e.Key {
		case "speculativeAuthenticate", "setName", "setVersion", "hosts", "primary", "me", "secondary", "saslSupportedMechs":
			continue
		case "ok":
			continue // last, below
		}
		out = append(out, e)
	}
	for _, k := range []string{"setName", "setVersion", "hosts", "primary", "me", "secondary"} {
		out = append(out, bson.E{Key: k, Value: set[k]})
	}
	if req.Lookup("saslSupportedMechs").Type != 0 {
		out = append(out, bson.E{Key: "saslSupportedMechs", Value: bson.A{"SCRAM-SHA-1"}})
	}
	out = append(out, bson.E{Key: "ok", Value: 1.0})
	return bson.Marshal(out)
}

// sasl runs a SCRAM-SHA-1 conversation against the current password.
func (s *dbSession) sasl(cmd string, doc bson.Raw) bson.Raw {
	fail := func(msg string) bson.Raw {
		s.c.log.Warn("database stand-in: authentication failed", "conn", s.id, "why", msg)
		return mongowire.Doc(bson.D{{Key: "ok", Value: 0.0}, {Key: "errmsg", Value: "Authentication failed."},
			{Key: "code", Value: int32(18)}, {Key: "codeName", Value: "AuthenticationFailed"}})
	}
	_, payload, ok := doc.Lookup("payload").BinaryOK()
	if !ok {
		return fail("no payload")
	}
	if cmd == "saslStart" {
		if mech, _ := doc.Lookup("mechanism").StringValueOK(); mech != "SCRAM-SHA-1" {
			return fail("mechanism " + mech)
		}
		user, password := s.c.aws.dbPassword()
		srv, err := scram.SHA1.NewServer(func(name string) (scram.StoredCredentials, error) {
			if name != user {
				return scram.StoredCredentials{}, fmt.Errorf("unknown user %q", name)
			}
			cl, err := scram.SHA1.NewClientUnprepped(user, mongoPasswordDigest(user, password), "")
			if err != nil {
				return scram.StoredCredentials{}, err
			}
			salt := make([]byte, 16)
			_, _ = rand.Read(salt)
			return cl.GetStoredCredentialsWithError(scram.KeyFactors{Salt: string(salt), Iters: 4096})
		})
		if err != nil {
			return fail(err.Error())
		}
		s.conv = srv.NewConversation()
	}
	if s.conv == nil {
		return fail("saslContinue before saslStart")
	}
	done := s.conv.Done()
	var resp string
	if !done {
		var err error
		if resp, err = s.conv.Step(string(payload)); err != nil {
			return fail(err.Error())
		}
	}
	if s.conv.Done() {
		if !s.conv.Valid() {
			return fail("wrong password")
		}
		s.authed = true
	}
	return mongowire.Doc(bson.D{{Key: "conversationId", Value: int32(1)}, {Key: "done", Value: s.conv.Done()},
		{Key: "payload", Value: bson.Binary{Data: []byte(resp)}}, {Key: "ok", Value: 1.0}})
}

// mongoPasswordDigest is what SCRAM-SHA-1 hashes in MongoDB's protocol.
func mongoPasswordDigest(user, password string) string {
	sum := md5.Sum([]byte(user + ":mongo:" + password))
	return hex.EncodeToString(sum[:])
}

package store

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"

	"webstack/app/conduit"
	"webstack/app/localdb"
	"webstack/internal/mongowire"
)

// authGate stands between the driver and FerretDB and authenticates like a
// database whose password can change: it answers the driver's PLAIN
// saslStart itself, with AuthenticationFailed (code 18) unless the
// password is the current one, and passes everything else through. (The
// embedded FerretDB cannot check passwords.) A connection authenticated
// before a change keeps working, as on DocumentDB.
type authGate struct {
	addr     string
	password atomic.Value // string
	refused  atomic.Int64
}

func newAuthGate(t *testing.T, upstream, password string) *authGate {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	g := &authGate{addr: ln.Addr().String()}
	g.password.Store(password)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go g.serve(c, upstream)
		}
	}()
	return g
}

func (g *authGate) serve(client net.Conn, upstream string) {
	defer client.Close()
	server, err := net.Dial("tcp", upstream)
	if err != nil {
		return
	}
	defer server.Close()
	var wmu sync.Mutex // replies from the gate and from FerretDB do not interleave
	go func() {
		for {
			msg, err := mongowire.Read(server)
			if err != nil {
				client.Close()
				return
			}
			wmu.Lock()
			_, err = client.Write(msg)
			wmu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	for {
		msg, err := mongowire.Read(client)
		if err != nil {
			return
		}
		if cmd, ok := mongowire.Body(msg); ok && cmd.Lookup("saslStart").Type != 0 {
			requestID := mongowire.RequestID(msg)
			payload := cmd.Lookup("payload")
			_, data, _ := payload.BinaryOK()
			parts := bytes.Split(data, []byte{0})
			var reply bson.D
			if len(parts) == 3 && string(parts[2]) == g.password.Load().(string) {
				reply = bson.D{{Key: "conversationId", Value: int32(1)}, {Key: "done", Value: true}, {Key: "payload", Value: bson.Binary{Data: []byte{}}}, {Key: "ok", Value: 1.0}}
			} else {
				g.refused.Add(1)
				reply = bson.D{{Key: "ok", Value: 0.0}, {Key: "errmsg", Value: "Authentication failed."}, {Key: "code", Value: int32(18)}, {Key: "codeName", Value: "AuthenticationFailed"}}
			}
			wmu.Lock()
			_, err = client.Write(mongowire.Msg(requestID, mongowire.Doc(reply)))
			wmu.Unlock()
			if err != nil {
				return
			}
			continue
		}
		if _, err := server.Write(msg); err != nil {
			return
		}
	}
}

// rotatingSecret is the managed secret as the URIFunc reads it.
type rotatingSecret struct {
	mu       sync.Mutex
	password string
	reads    int
}

func (r *rotatingSecret) set(p string) { r.mu.Lock(); r.password = p; r.mu.Unlock() }

func (r *rotatingSecret) uri(addr string) URIFunc {
	return func(context.Context, string) (string, error) {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.reads++
		// Idle connections close after 50 ms, so every pause makes the
		// driver open (and authenticate) new ones, as a busy pool does.
		return fmt.Sprintf("mongodb://conduit:%s@%s/?authMechanism=PLAIN&retryWrites=false&maxIdleTimeMS=50", r.password, addr), nil
	}
}

// gatedStore opens a store through an authGate in front of an embedded
// FerretDB: the database accepts password, the secret holds secretValue.
func gatedStore(t *testing.T, password, secretValue string) (*Store, *authGate, *rotatingSecret) {
	t.Helper()
	ctx := context.Background()
	db, err := localdb.Start(ctx, "127.0.0.1:0", t.TempDir(), nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Stop(context.Background()) })
	gate := newAuthGate(t, strings.TrimSuffix(strings.TrimPrefix(db.URI, "mongodb://"), "/"), password)
	secret := &rotatingSecret{password: secretValue}
	st, err := Open(ctx, "conduit", secret.uri(gate.addr), Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close(context.Background()) })
	return st, gate, secret
}

func TestCredentialRotationCostsNoRequest(t *testing.T) {
	ctx := context.Background()
	st, gate, secret := gatedStore(t, "first-password", "first-password")
	var rotations atomic.Int64
	st.OnRotate = func() { rotations.Add(1) }
	require.NoError(t, st.Migrate(ctx))

	write := func(i int) error {
		return st.CreateUser(ctx, &conduit.User{Username: fmt.Sprintf("u%d", i), Email: fmt.Sprintf("u%d@example.com", i), PasswordHash: "x"})
	}
	for i := range 5 {
		require.NoError(t, write(i))
	}

	// The password changes in the database and then in the secret; new
	// connections with the old one are refused from now on.
	gate.password.Store("second-password")
	secret.set("second-password")
	time.Sleep(150 * time.Millisecond) // pooled connections go idle and close

	var failed, slowest atomic.Int64
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 10 {
				n := 100 + w*10 + i
				began := time.Now()
				if err := write(n); err != nil {
					failed.Add(1)
					t.Errorf("write %d during rotation: %v", n, err)
				}
				if _, err := st.UserByUsername(ctx, nil, fmt.Sprintf("u%d", n)); err != nil {
					failed.Add(1)
					t.Errorf("read %d during rotation: %v", n, err)
				}
				if d := int64(time.Since(began)); d > slowest.Load() {
					slowest.Store(d) // racy max, good enough for a log line
				}
			}
		}()
	}
	wg.Wait()
	assert.Zero(t, failed.Load(), "no request fails across the rotation")
	t.Logf("slowest write+read during the rotation: %v", time.Duration(slowest.Load()))
	assert.Less(t, time.Duration(slowest.Load()), 1500*time.Millisecond, "within the api's per-request database deadline")
	assert.Positive(t, gate.refused.Load(), "the old password was refused at least once (the test reached the rotation)")
	assert.Equal(t, int64(1), rotations.Load(), "one reconnect for all the requests that saw the refusal")
}

// A store that slept through a rotation (its connections stayed open) and
// wakes during the next: AWSCURRENT is no longer the password either;
// AWSPENDING is. The refresh must not settle on AWSCURRENT.
func TestAStoreTwoRotationsBehindFindsThePendingPassword(t *testing.T) {
	ctx := context.Background()
	st, gate, _ := gatedStore(t, "p0", "p0")
	require.NoError(t, st.Migrate(ctx))
	staged := &stagedSecret{current: "p2", pending: "p3"}
	st.uri = staged.uri(gate.addr) // the secret's versions as DocumentDB's rotation leaves them
	var rotations atomic.Int64
	st.OnRotate = func() { rotations.Add(1) }
	gate.password.Store("p3")
	time.Sleep(150 * time.Millisecond) // pooled connections go idle and close

	var wg sync.WaitGroup
	var failed atomic.Int64
	for i := range 16 {
		wg.Go(func() {
			if _, err := st.UserByUsername(ctx, nil, fmt.Sprintf("nobody%d", i)); err != nil && conduit.CodeOf(err) != conduit.CodeNotFound {
				failed.Add(1)
				t.Errorf("read during the rotation: %v", err)
			}
		})
	}
	wg.Wait()
	assert.Zero(t, failed.Load())
	assert.Equal(t, int64(1), rotations.Load(), "one reconnect, straight to the pending password")
}

// stagedSecret is a managed secret with both stages, read as conduit's
// api reads it: AWSCURRENT, unless that is the refused one, then AWSPENDING.
type stagedSecret struct{ current, pending string }

func (s *stagedSecret) uri(addr string) URIFunc {
	build := func(p string) string {
		return fmt.Sprintf("mongodb://conduit:%s@%s/?authMechanism=PLAIN&retryWrites=false&maxIdleTimeMS=50", p, addr)
	}
	return func(_ context.Context, rejected string) (string, error) {
		if u := build(s.current); u != rejected {
			return u, nil
		}
		return build(s.pending), nil
	}
}

func TestRefusedCredentialsWithoutNewOnesFailPromptly(t *testing.T) {
	ctx := context.Background()
	st, _, _ := gatedStore(t, "right", "wrong")
	start := time.Now()
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	err := st.Ping(cctx)
	require.Error(t, err)
	assert.Equal(t, conduit.CodeUnavailable, conduit.CodeOf(err), "%v", err)
	assert.Less(t, time.Since(start), 4*time.Second)
}

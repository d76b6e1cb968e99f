package twin

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"webstack/app/localdb"
	"webstack/app/store"
)

// The driver, configured exactly as the api configures it for DocumentDB
// (TLS against the CA bundle, replica set rs0, SCRAM), works against the
// stand-in, refuses a wrong password, and follows a rotation.
func TestTheClusterStandInIsDocumentDBToTheDriver(t *testing.T) {
	ctx := context.Background()
	db, err := localdb.Start(ctx, "127.0.0.1:0", t.TempDir(), nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Stop(context.Background()) })

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := ln.Addr().(*net.TCPAddr).Port
	m := testModel(t)
	m.AWS.DB.Host, m.AWS.DB.Port = "localhost", port
	p, err := newPKI()
	require.NoError(t, err)
	aws, err := newStandIns(m, p, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	cert, err := p.leaf("localhost")
	require.NoError(t, err)
	c := &cluster{upstream: db.URI[len("mongodb://") : len(db.URI)-1], aws: aws, cert: cert, log: slog.New(slog.DiscardHandler)}
	go c.serve(ln)
	t.Cleanup(func() { ln.Close() })
	ca := filepath.Join(t.TempDir(), "bundle.pem")
	require.NoError(t, os.WriteFile(ca, p.CAPEM, 0o644))

	connect := func(password string) error {
		uri := store.DocumentDBURI("localhost", port, "conduit", password, ca)
		cl, err := mongo.Connect(options.Client().ApplyURI(uri).SetServerSelectionTimeout(3 * time.Second))
		require.NoError(t, err)
		defer cl.Disconnect(context.Background())
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		_, err = cl.Database("conduit").Collection("probe").InsertOne(cctx, bson.D{{Key: "n", Value: 1}})
		return err
	}
	current := func() string {
		_, pw := aws.dbPassword()
		return pw
	}
	old := current()
	require.NoError(t, connect(old), "the secret's password, over TLS, as replica set rs0")
	assert.ErrorContains(t, connect("wrong"), "AuthenticationFailed")

	done := make(chan struct{})
	go func() { aws.rotateDB(300 * time.Millisecond); close(done) }()
	time.Sleep(50 * time.Millisecond)
	assert.ErrorContains(t, connect(old), "AuthenticationFailed", "once set, the old password is refused")
	require.NoError(t, connect(current()), "the pending one works")
	<-done
	var cred struct{ Username, Password string }
	require.NoError(t, json.Unmarshal([]byte(aws.secrets[dbARN].Stages[stageCurrent]), &cred))
	assert.NotEqual(t, old, cred.Password)
	assert.NotContains(t, aws.secrets[dbARN].Stages, stagePending, "promoted")
}

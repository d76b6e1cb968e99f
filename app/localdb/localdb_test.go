package localdb

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// plan is SQLite's plan for the statement FerretDB runs to find a document
// of table by _id.
func plan(t *testing.T, file, table string) string {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+file+"?mode=ro")
	require.NoError(t, err)
	defer db.Close()
	rows, err := db.Query(`EXPLAIN QUERY PLAN SELECT _ferretdb_sjson FROM "`+table+`" WHERE `+idExpr+` = ?`, `"x"`)
	require.NoError(t, err)
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		require.NoError(t, rows.Scan(&id, &parent, &unused, &detail))
		out = append(out, detail)
	}
	return strings.Join(out, "; ")
}

// table is the SQLite table FerretDB keeps collection coll of database
// dbName in.
func table(t *testing.T, file, coll string) string {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+file+"?mode=ro")
	require.NoError(t, err)
	defer db.Close()
	var name string
	require.NoError(t, db.QueryRow(`SELECT table_name FROM _ferretdb_collections WHERE name = ?`, coll).Scan(&name))
	return name
}

func TestLookupsByIDUseAnIndex(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db, err := Start(ctx, "127.0.0.1:0", dir, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Stop(context.Background()) })
	client, err := mongo.Connect(options.Client().ApplyURI(db.URI))
	require.NoError(t, err)
	t.Cleanup(func() { _ = client.Disconnect(context.Background()) })
	coll := client.Database("app").Collection("things")
	file := filepath.Join(dir, "app.sqlite")

	for round := range 2 { // a collection dropped and made again is indexed again
		_, err = coll.InsertMany(ctx, []any{bson.D{{Key: "_id", Value: "a"}, {Key: "n", Value: 1}}, bson.D{{Key: "_id", Value: "b"}, {Key: "n", Value: 2}}})
		require.NoError(t, err)
		require.NoError(t, db.IndexIDs(ctx))
		assert.Contains(t, plan(t, file, table(t, file, "things")), "USING INDEX", "round %d", round)

		var got struct{ N int }
		require.NoError(t, coll.FindOne(ctx, bson.D{{Key: "_id", Value: "b"}}).Decode(&got))
		assert.Equal(t, 2, got.N)
		_, err = coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: "b"}}, bson.D{{Key: "$inc", Value: bson.D{{Key: "n", Value: 1}}}})
		require.NoError(t, err)
		require.NoError(t, coll.FindOne(ctx, bson.D{{Key: "_id", Value: "b"}}).Decode(&got))
		assert.Equal(t, 3, got.N)
		require.NoError(t, coll.Drop(ctx))
	}
}

// Local mode's database has no login: it listens on a Unix socket inside
// its 0700 directory, so no other user's process reaches it, and on no TCP
// port.
func TestTheEmbeddedDatabaseIsReachableOnlyThroughItsPrivateSocket(t *testing.T) {
	ctx := context.Background()
	// A short data directory holds its sockets; one too long for a socket's
	// path (a deep clone, a long TMPDIR) gets a short 0700 directory of
	// their own, removed when the database stops.
	short, err := os.MkdirTemp("/tmp", "ldb-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(short) })
	long := filepath.Join(t.TempDir(), strings.Repeat("a-long-directory-name/", 5), "data")
	for name, dir := range map[string]string{"short": filepath.Join(short, "data"), "long": long} {
		t.Run(name, func(t *testing.T) {
			require.NoError(t, os.MkdirAll(dir, 0o755)) // even a directory made too open
			db, err := Start(ctx, "", dir, nil)
			require.NoError(t, err)
			stopped := false
			t.Cleanup(func() {
				if !stopped {
					_ = db.Stop(context.Background())
				}
			})

			fi, err := os.Stat(dir)
			require.NoError(t, err)
			assert.Equal(t, os.FileMode(0o700), fi.Mode().Perm(), "the directory is narrowed to its owner")
			socks := dir
			if name == "long" {
				socks = db.socks
				assert.NotEqual(t, dir, socks)
				assert.LessOrEqual(t, len(filepath.Join(socks, innerSocket)), maxSocketPath)
				di, err := os.Stat(socks)
				require.NoError(t, err)
				assert.Equal(t, os.FileMode(0o700), di.Mode().Perm(), "the sockets' own directory is its owner's only")
			}
			sock, err := os.Stat(filepath.Join(socks, SocketName))
			require.NoError(t, err)
			assert.NotZero(t, sock.Mode()&os.ModeSocket)
			assert.NotContains(t, db.URI, "127.0.0.1")
			assert.Contains(t, db.URI, "%2F"+SocketName)

			client, err := mongo.Connect(options.Client().ApplyURI(db.URI))
			require.NoError(t, err)
			defer client.Disconnect(ctx)
			require.NoError(t, client.Ping(ctx, nil), "the app reaches it through the socket")
			require.NoError(t, db.Stop(ctx))
			stopped = true
			if name == "long" {
				assert.NoDirExists(t, socks, "removed at stop")
			}
		})
	}
}

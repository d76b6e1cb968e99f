package store

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"

	"webstack/app/localdb"
)

// newLocal starts an embedded database and opens a store on it.
func newLocal(t *testing.T, opts Options) (*Store, *localdb.DB) {
	t.Helper()
	ctx := context.Background()
	db, err := localdb.Start(ctx, "127.0.0.1:0", t.TempDir(), nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Stop(context.Background()) })
	st, err := Open(ctx, "conduit", func(context.Context, string) (string, error) { return db.URI, nil }, opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close(context.Background()) })
	return st, db
}

// Migrate makes every collection and index the queries need, with the
// keys they sort on, records the layout, and may run again.
func TestMigrateMakesEveryIndexAndRecordsTheLayout(t *testing.T) {
	ctx := context.Background()
	st, _ := newLocal(t, Options{})
	require.NoError(t, st.Migrate(ctx))
	require.NoError(t, st.Migrate(ctx), "a second run changes nothing")

	db := st.cur.Load().db
	names, err := db.ListCollectionNames(ctx, bson.D{})
	require.NoError(t, err)
	assert.ElementsMatch(t, collections(), names, "every collection exists before the first request (none is made under load)")
	for _, ix := range indexes() {
		cur, err := db.Collection(ix.coll).Indexes().List(ctx)
		require.NoError(t, err)
		var specs []struct {
			Name   string `bson:"name"`
			Key    bson.D `bson:"key"`
			Unique bool   `bson:"unique"`
		}
		require.NoError(t, cur.All(ctx, &specs))
		found := false
		for _, sp := range specs {
			if sp.Name != ix.name {
				continue
			}
			found = true
			require.Len(t, sp.Key, len(ix.keys), "%s.%s", ix.coll, ix.name)
			for i, k := range ix.keys {
				assert.Equal(t, k.Key, sp.Key[i].Key, "%s.%s key %d", ix.coll, ix.name, i)
				assert.EqualValues(t, k.Value, sp.Key[i].Value, "%s.%s direction of %s", ix.coll, ix.name, k.Key)
			}
			assert.Equal(t, ix.unique, sp.Unique, "%s.%s unique", ix.coll, ix.name)
		}
		assert.True(t, found, "index %s.%s exists", ix.coll, ix.name)
	}
	var layout struct {
		Version int `bson:"version"`
	}
	require.NoError(t, db.Collection("meta").FindOne(ctx, byID("layout")).Decode(&layout))
	assert.Equal(t, Layout, layout.Version)
}

// A layout-2 database is taken as it is (layout 3 only added to it) and
// expanded: recorded as this layout, with layout 3 still allowed to start,
// so that a layout-2 build refuses it from then on.
func TestMigrateTakesLayout2AndExpandsIt(t *testing.T) {
	ctx := context.Background()
	st, _ := newLocal(t, Options{})
	_, err := st.cur.Load().db.Collection("meta").InsertOne(ctx, bson.D{{Key: "_id", Value: "layout"}, {Key: "version", Value: 2}})
	require.NoError(t, err)
	require.NoError(t, st.Migrate(ctx))
	assert.Equal(t, layoutDoc{Oldest: Beside, Newest: Layout}, layoutRecord(t, st))
	st.layout, st.beside = 2, 1
	require.ErrorIs(t, st.Migrate(ctx), ErrLayout, "a layout-2 build refuses it")
}

// A database written in another layout is refused at start with a message
// that says what to do; nothing in it is changed.
func TestMigrateRefusesAnotherLayout(t *testing.T) {
	ctx := context.Background()
	for name, tt := range map[string]struct {
		prepare func(st *Store)
		says    string
	}{
		"layout 1 (key collections, thread shards)": {func(st *Store) {
			require.NoError(t, st.cur.Load().db.CreateCollection(ctx, "usernames"))
		}, "empty database"},
		"layout 1 with its meta (gens, comment sequence)": {func(st *Store) {
			require.NoError(t, st.cur.Load().db.CreateCollection(ctx, "usernames"))
			_, err := st.cur.Load().db.Collection("meta").InsertOne(ctx, bson.D{{Key: "_id", Value: "gens"}})
			require.NoError(t, err)
		}, "empty database"},
		"a later layout, contracted": {func(st *Store) {
			_, err := st.cur.Load().db.Collection("meta").InsertOne(ctx, bson.D{{Key: "_id", Value: "layout"}, {Key: "version", Value: Layout + 1}})
			require.NoError(t, err)
		}, "restore a snapshot"},
		"a layout two or more before": {func(st *Store) {
			_, err := st.cur.Load().db.Collection("meta").InsertOne(ctx, bson.D{{Key: "_id", Value: "layout"}, {Key: "version", Value: 1}})
			require.NoError(t, err)
		}, "releases in between"},
	} {
		t.Run(name, func(t *testing.T) {
			st, _ := newLocal(t, Options{})
			tt.prepare(st)
			before, err := st.cur.Load().db.ListCollectionNames(ctx, bson.D{})
			require.NoError(t, err)
			err = st.Migrate(ctx)
			require.ErrorIs(t, err, ErrLayout)
			assert.Contains(t, err.Error(), tt.says)
			after, err := st.cur.Load().db.ListCollectionNames(ctx, bson.D{})
			require.NoError(t, err)
			assert.ElementsMatch(t, before, after, "nothing was made")
			n, err := st.cur.Load().db.Collection("meta").CountDocuments(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$gte", Value: instancePrefix}, {Key: "$lt", Value: instanceEnd}}}})
			require.NoError(t, err)
			assert.Zero(t, n, "a refused instance leaves no heartbeat")
		})
	}
}

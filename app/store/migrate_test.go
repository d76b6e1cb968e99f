package store

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"webstack/app/localdb"
)

// Migrate makes every index the queries need, with the keys they sort on,
// drops what earlier versions made and no query uses, and may run again.
func TestMigrateMakesTheIndexesTheListsSortOn(t *testing.T) {
	ctx := context.Background()
	db, err := localdb.Start(ctx, "127.0.0.1:0", t.TempDir(), nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Stop(context.Background()) })
	st, err := Connect(ctx, db.URI, "conduit")
	require.NoError(t, err)
	_, err = st.coll("articles").Indexes().CreateOne(ctx, mongo.IndexModel{Keys: bson.D{{Key: "createdAt", Value: -1}}, Options: options.Index().SetName("recent")})
	require.NoError(t, err)

	require.NoError(t, st.Migrate(ctx))
	require.NoError(t, st.Migrate(ctx), "a second run changes nothing")

	keys := func(coll string) map[string]bson.D {
		cur, err := st.coll(coll).Indexes().List(ctx)
		require.NoError(t, err)
		var specs []struct {
			Name string `bson:"name"`
			Key  bson.D `bson:"key"`
		}
		require.NoError(t, cur.All(ctx, &specs))
		out := map[string]bson.D{}
		for _, s := range specs {
			out[s.Name] = s.Key
		}
		return out
	}
	articles := keys("articles")
	assert.NotContains(t, articles, "recent", "the obsolete index is dropped")
	var sort bson.D // the lists' order, as the server reports index keys
	for _, e := range listSort {
		sort = append(sort, bson.E{Key: e.Key, Value: int32(e.Value.(int))})
	}
	for name, prefix := range map[string]bson.D{
		"list_recent":    nil,
		"list_by_author": {{Key: "authorId", Value: int32(1)}},
		"list_by_tag":    {{Key: "tagList", Value: int32(1)}},
	} {
		assert.Equal(t, append(prefix, sort...), articles[name], "%s: its filter key, then the lists' whole sort", name)
	}
	assert.Contains(t, keys("tags"), "used")

	// Every collection exists before the first request (none is made under
	// load), thread shards included.
	names, err := st.cur.Load().db.ListCollectionNames(ctx, bson.D{})
	require.NoError(t, err)
	assert.Subset(t, names, []string{"users", "usernames", "emails", "articles", "tags", "meta", "threads_00", "threads_ff"})
	assert.Len(t, names, 6+threadShards)
}

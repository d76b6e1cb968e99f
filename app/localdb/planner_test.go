package localdb

import (
	"context"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// The planner answers the shapes it plans exactly as FerretDB does, from
// SQLite's indexes, and relays the rest: each query below runs through the
// planner and straight against FerretDB, and the answers must be equal.
func TestPlannerAnswersAsFerretDBDoes(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db, err := Start(ctx, "127.0.0.1:0", dir, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Stop(context.Background()) })
	planned := connect(t, db.URI)
	direct := connect(t, "mongodb://"+url.QueryEscape(filepath.Join(dir, innerSocket))+"/")

	coll := planned.Database("conduit").Collection("things")
	_, err = coll.Indexes().CreateMany(ctx, []mongo.IndexModel{
		{Keys: bson.D{{Key: "kind", Value: 1}, {Key: "at", Value: -1}, {Key: "_id", Value: -1}}, Options: options.Index().SetName("by_kind")},
		{Keys: bson.D{{Key: "tags", Value: 1}, {Key: "at", Value: -1}, {Key: "_id", Value: -1}}, Options: options.Index().SetName("by_tag")},
		{Keys: bson.D{{Key: "email", Value: 1}}, Options: options.Index().SetName("email").SetUnique(true)},
		{Keys: bson.D{{Key: "at", Value: -1}, {Key: "_id", Value: -1}}, Options: options.Index().SetName("recent")},
	})
	require.NoError(t, err)
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var docs []any
	for i := range 60 {
		d := bson.D{{Key: "_id", Value: fmt.Sprintf("id%03d", i)}, {Key: "kind", Value: []string{"a", "b", "c"}[i%3]},
			{Key: "email", Value: fmt.Sprintf("p%d@example.com", i)}, {Key: "at", Value: base.Add(time.Duration(i%20) * time.Hour)},
			{Key: "tags", Value: bson.A{"t" + fmt.Sprint(i%4), "all"}}, {Key: "n", Value: int64(i)},
			{Key: "nested", Value: bson.D{{Key: "x", Value: int32(i)}, {Key: "y", Value: "<&>"}}}, {Key: "body", Value: "text ü <b>"}}
		if i == 7 {
			d = append(d, bson.E{Key: "oid", Value: bson.NewObjectID()})
		}
		docs = append(docs, d)
	}
	// A document whose kind is an ObjectID's hex as an ObjectID, not a
	// string: a string filter must not match it.
	oid, _ := bson.ObjectIDFromHex("0123456789abcdef01234567")
	docs = append(docs, bson.D{{Key: "_id", Value: "odd"}, {Key: "kind", Value: oid}, {Key: "email", Value: "odd@example.com"},
		{Key: "at", Value: base}, {Key: "tags", Value: bson.A{"all"}}})
	_, err = coll.InsertMany(ctx, docs)
	require.NoError(t, err)

	type q struct {
		name   string
		filter bson.D
		opts   *options.FindOptionsBuilder
		plan   bool // the planner answers it
	}
	sortRecent := bson.D{{Key: "at", Value: -1}, {Key: "_id", Value: -1}}
	queries := []q{
		{"by _id", bson.D{{Key: "_id", Value: "id005"}}, options.Find(), true},
		{"_id $in", bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: bson.A{"id001", "id009", "nope", "odd"}}}}}, options.Find(), true},
		{"unique field", bson.D{{Key: "email", Value: "p12@example.com"}}, options.Find(), true},
		{"kind, sorted, paged", bson.D{{Key: "kind", Value: "b"}}, options.Find().SetSort(sortRecent).SetSkip(3).SetLimit(5), true},
		{"string never matches an ObjectID", bson.D{{Key: "kind", Value: bson.D{{Key: "$in", Value: bson.A{"0123456789abcdef01234567", "a"}}}}}, options.Find(), true},
		{"multikey element", bson.D{{Key: "tags", Value: "t2"}}, options.Find().SetSort(sortRecent).SetLimit(7), true},
		{"global list without a field", bson.D{}, options.Find().SetSort(sortRecent).SetSkip(10).SetLimit(10).SetProjection(bson.D{{Key: "body", Value: 0}}), true},
		{"inclusion projection", bson.D{{Key: "kind", Value: "a"}}, options.Find().SetProjection(bson.D{{Key: "email", Value: 1}}), true},
		{"unindexed field is relayed", bson.D{{Key: "body", Value: "text ü <b>"}}, options.Find(), false},
		{"operators are relayed", bson.D{{Key: "n", Value: bson.D{{Key: "$gt", Value: 50}}}}, options.Find(), false},
		{"dotted fields are relayed", bson.D{{Key: "nested.y", Value: "<&>"}}, options.Find(), false},
	}
	for _, tc := range queries {
		t.Run(tc.name, func(t *testing.T) {
			run := func(c *mongo.Client) []bson.D {
				cur, err := c.Database("conduit").Collection("things").Find(ctx, tc.filter, tc.opts)
				require.NoError(t, err)
				var out []bson.D
				require.NoError(t, cur.All(ctx, &out))
				return out
			}
			before := db.Planned()
			got := run(planned)
			assert.Equal(t, tc.plan, db.Planned() > before, "planned")
			want := run(direct)
			require.NotEmpty(t, want, "the query finds something")
			if sorted(tc.opts) {
				assert.Equal(t, want, got, "the same documents in the same order")
			} else {
				assert.ElementsMatch(t, want, got)
			}
		})
	}

	for _, f := range []bson.D{{}, {{Key: "kind", Value: "c"}}, {{Key: "tags", Value: "all"}}, {{Key: "email", Value: "none"}}} {
		before := db.Planned()
		n, err := coll.CountDocuments(ctx, f)
		require.NoError(t, err)
		assert.Greater(t, db.Planned(), before, "count %v planned", f)
		want, err := direct.Database("conduit").Collection("things").CountDocuments(ctx, f)
		require.NoError(t, err)
		assert.Equal(t, want, n, "count %v", f)
	}
	before := db.Planned()
	all, err := coll.EstimatedDocumentCount(ctx)
	require.NoError(t, err)
	assert.Greater(t, db.Planned(), before, "the count command planned")
	assert.EqualValues(t, 61, all)
}

func sorted(b *options.FindOptionsBuilder) bool {
	var o options.FindOptions
	for _, set := range b.Opts {
		_ = set(&o)
	}
	return o.Sort != nil
}

func connect(t *testing.T, uri string) *mongo.Client {
	t.Helper()
	c, err := mongo.Connect(options.Client().ApplyURI(uri))
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Disconnect(context.Background()) })
	return c
}

// The SQL the planner runs is served by the mirrors of the collection's
// MongoDB indexes, as DocumentDB serves the same query by the index
// itself: no full scan for a lookup, a filter or a sorted page.
func TestPlannerUsesTheMirroredIndexes(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db, err := Start(ctx, "127.0.0.1:0", dir, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Stop(context.Background()) })
	c := connect(t, db.URI)
	coll := c.Database("conduit").Collection("things")
	_, err = coll.Indexes().CreateMany(ctx, []mongo.IndexModel{
		{Keys: bson.D{{Key: "kind", Value: 1}, {Key: "at", Value: -1}, {Key: "_id", Value: -1}}, Options: options.Index().SetName("by_kind")},
		{Keys: bson.D{{Key: "at", Value: -1}, {Key: "_id", Value: -1}}, Options: options.Index().SetName("recent")},
	})
	require.NoError(t, err)
	_, err = coll.InsertOne(ctx, bson.D{{Key: "_id", Value: "x"}, {Key: "kind", Value: "a"}, {Key: "at", Value: time.Now()}})
	require.NoError(t, err)

	for _, tc := range []struct {
		filter bson.D
		sort   bson.D
		index  string
	}{
		{bson.D{{Key: "kind", Value: "a"}}, bson.D{{Key: "at", Value: -1}, {Key: "_id", Value: -1}}, "_m_by_kind"},
		{bson.D{}, bson.D{{Key: "at", Value: -1}, {Key: "_id", Value: -1}}, "_m_recent"},
		{bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: bson.A{"x", "y"}}}}}, nil, "_m__id"},
	} {
		fb, _ := bson.Marshal(tc.filter)
		q := query{db: "conduit", coll: "things", filter: fb, sortKeys: tc.sort}
		require.NoError(t, db.planner.compile(ctx, &q))
		stmt := fmt.Sprintf(`SELECT _ferretdb_sjson FROM %q%s`, q.table.name, whereSQL(q.where))
		if len(q.order) > 0 {
			stmt += " ORDER BY " + strings.Join(q.order, ", ")
		}
		rows, err := q.sqldb.QueryContext(ctx, "EXPLAIN QUERY PLAN "+stmt+" LIMIT 20", q.args...)
		require.NoError(t, err)
		var plan []string
		for rows.Next() {
			var id, parent, notused int
			var detail string
			require.NoError(t, rows.Scan(&id, &parent, &notused, &detail))
			plan = append(plan, detail)
		}
		rows.Close()
		joined := strings.Join(plan, "; ")
		assert.Contains(t, joined, q.table.name+tc.index, "%v sorted by %v: %s", tc.filter, tc.sort, joined)
		assert.NotContains(t, joined, "TEMP B-TREE", "no sort outside the index: %s", joined)
	}
}

// Writes by another filter than {_id} reach FerretDB as writes by _id:
// a delete removes exactly the documents its filter names, an update with
// a condition beside the _id applies only when the document meets it.
func TestPlannerHandsFerretDBWritesByID(t *testing.T) {
	ctx := context.Background()
	db, err := Start(ctx, "127.0.0.1:0", t.TempDir(), nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Stop(context.Background()) })
	coll := connect(t, db.URI).Database("conduit").Collection("things")
	_, err = coll.Indexes().CreateOne(ctx, mongo.IndexModel{Keys: bson.D{{Key: "kind", Value: 1}}, Options: options.Index().SetName("by_kind")})
	require.NoError(t, err)
	var docs []any
	for i := range 30 {
		docs = append(docs, bson.D{{Key: "_id", Value: fmt.Sprintf("d%02d", i)}, {Key: "kind", Value: []string{"a", "b", "c"}[i%3]}, {Key: "ver", Value: int64(i)}})
	}
	_, err = coll.InsertMany(ctx, docs)
	require.NoError(t, err)

	before := db.Planned()
	res, err := coll.DeleteMany(ctx, bson.D{{Key: "kind", Value: "b"}})
	require.NoError(t, err)
	assert.EqualValues(t, 10, res.DeletedCount)
	one, err := coll.DeleteOne(ctx, bson.D{{Key: "kind", Value: "a"}})
	require.NoError(t, err)
	assert.EqualValues(t, 1, one.DeletedCount)
	none, err := coll.DeleteMany(ctx, bson.D{{Key: "kind", Value: "zzz"}})
	require.NoError(t, err)
	assert.Zero(t, none.DeletedCount)
	n, err := coll.CountDocuments(ctx, bson.D{{Key: "kind", Value: "b"}})
	require.NoError(t, err)
	assert.Zero(t, n)
	n, err = coll.CountDocuments(ctx, bson.D{})
	require.NoError(t, err)
	assert.EqualValues(t, 19, n)

	up, err := coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: "d02"}, {Key: "ver", Value: int64(2)}}, bson.D{{Key: "$set", Value: bson.D{{Key: "ver", Value: int64(100)}}}})
	require.NoError(t, err)
	assert.EqualValues(t, 1, up.MatchedCount, "the condition held")
	stale, err := coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: "d02"}, {Key: "ver", Value: int32(2)}}, bson.D{{Key: "$set", Value: bson.D{{Key: "ver", Value: int64(7)}}}})
	require.NoError(t, err)
	assert.Zero(t, stale.MatchedCount, "the condition no longer holds")
	var got struct {
		Ver int64 `bson:"ver"`
	}
	require.NoError(t, coll.FindOne(ctx, bson.D{{Key: "_id", Value: "d02"}}).Decode(&got))
	assert.EqualValues(t, 100, got.Ver)
	assert.GreaterOrEqual(t, db.Planned()-before, int64(5), "the writes went through the planner")
}

// Two clients updating one document at once both land, as on DocumentDB
// (single-document writes are atomic): FerretDB applies an update by
// reading the document and writing it back, so the planner sends such
// writes one at a time. Each of many writers sets its own field of one
// document, several times, through its own connection.
func TestConcurrentUpdatesOfOneDocumentAreNotLost(t *testing.T) {
	ctx := context.Background()
	db, err := Start(ctx, "127.0.0.1:0", t.TempDir(), nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Stop(context.Background()) })
	_, err = connect(t, db.URI).Database("conduit").Collection("docs").InsertOne(ctx, bson.D{{Key: "_id", Value: "one"}})
	require.NoError(t, err)
	const writers, rounds = 8, 10
	errs := make(chan error, writers*rounds)
	var wg sync.WaitGroup
	for w := range writers {
		c := connect(t, db.URI).Database("conduit").Collection("docs")
		wg.Go(func() {
			for r := range rounds {
				_, err := c.UpdateOne(ctx, bson.D{{Key: "_id", Value: "one"}}, bson.D{{Key: "$set", Value: bson.D{{Key: fmt.Sprintf("w%d", w), Value: int32(r)}}}})
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	var got bson.M
	require.NoError(t, connect(t, db.URI).Database("conduit").Collection("docs").FindOne(ctx, bson.D{{Key: "_id", Value: "one"}}).Decode(&got))
	for w := range writers {
		assert.EqualValues(t, rounds-1, got[fmt.Sprintf("w%d", w)], "writer %d's last update holds", w)
	}
}

// A write of one document waits only for writes of that document: while
// one is held (as a slow write holds its document's lock), a write of
// another document of the same collection goes through, the write of the
// held one waits, and a write naming no _id waits for the collection.
// (One lock for every write made every race between documents impossible
// here, where DocumentDB allows it.)
func TestWritesOfDifferentDocumentsAreNotSerialised(t *testing.T) {
	ctx := context.Background()
	db, err := Start(ctx, "127.0.0.1:0", t.TempDir(), nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Stop(context.Background()) })
	docs := connect(t, db.URI).Database("conduit").Collection("docs")
	_, err = docs.InsertMany(ctx, []any{bson.D{{Key: "_id", Value: "a"}}, bson.D{{Key: "_id", Value: "b"}}})
	require.NoError(t, err)

	held, err := bson.Marshal(bson.D{{Key: "update", Value: "docs"}, {Key: "updates", Value: bson.A{
		bson.D{{Key: "q", Value: bson.D{{Key: "_id", Value: "a"}}}, {Key: "u", Value: bson.D{{Key: "$set", Value: bson.D{{Key: "x", Value: 1}}}}}}}},
		{Key: "$db", Value: "conduit"}})
	require.NoError(t, err)
	release := db.planner.writes.lock(nil, held)
	set := func(filter bson.D, timeout time.Duration) error {
		wctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		_, err := docs.UpdateMany(wctx, filter, bson.D{{Key: "$set", Value: bson.D{{Key: "y", Value: 1}}}})
		return err
	}
	assert.NoError(t, set(bson.D{{Key: "_id", Value: "b"}}, 2*time.Second), "another document: not held up")
	assert.Error(t, set(bson.D{{Key: "_id", Value: "a"}}, 300*time.Millisecond), "the held document: waits")
	assert.Error(t, set(bson.D{{Key: "y", Value: 1}}, 300*time.Millisecond), "no _id: waits for the collection")
	release()
	assert.NoError(t, set(bson.D{{Key: "_id", Value: "a"}}, 2*time.Second), "released")
}

// A findAndModify that asks for some fields (DocumentDB and MongoDB take
// "fields"; FerretDB 1.24 answers NotImplemented) is applied and answered
// with those fields only, as DocumentDB answers it.
func TestFindAndModifyAnswersWithTheFieldsAskedFor(t *testing.T) {
	ctx := context.Background()
	db, err := Start(ctx, "127.0.0.1:0", t.TempDir(), nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Stop(context.Background()) })
	docs := connect(t, db.URI).Database("conduit").Collection("docs")
	_, err = docs.InsertOne(ctx, bson.D{{Key: "_id", Value: "a"}, {Key: "n", Value: int64(1)}, {Key: "body", Value: strings.Repeat("x", 1000)}})
	require.NoError(t, err)
	var got bson.M
	require.NoError(t, docs.FindOneAndUpdate(ctx, bson.D{{Key: "_id", Value: "a"}}, bson.D{{Key: "$inc", Value: bson.D{{Key: "n", Value: int64(1)}}}},
		options.FindOneAndUpdate().SetReturnDocument(options.After).SetProjection(bson.D{{Key: "n", Value: 1}})).Decode(&got))
	assert.Equal(t, bson.M{"_id": "a", "n": int64(2)}, got, "the update applied; only the fields asked for")
	err = docs.FindOneAndUpdate(ctx, bson.D{{Key: "_id", Value: "none"}}, bson.D{{Key: "$inc", Value: bson.D{{Key: "n", Value: int64(1)}}}},
		options.FindOneAndUpdate().SetProjection(bson.D{{Key: "n", Value: 1}})).Err()
	assert.ErrorIs(t, err, mongo.ErrNoDocuments)
}

// A query's first batch is what DocumentDB's would be: a single batch
// without a batch size is the server's default 101 documents (the rest is
// not sent), with one it is that many; a query whose answer outgrows its
// first batch gets a cursor and its getMore. The planner is never kinder:
// a store that forgot the batch size loses documents here as it would on
// DocumentDB.
func TestFirstBatchesAreTheServersDefault(t *testing.T) {
	ctx := context.Background()
	db, err := Start(ctx, "127.0.0.1:0", t.TempDir(), nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Stop(context.Background()) })
	coll := connect(t, db.URI).Database("conduit").Collection("many")
	_, err = coll.Indexes().CreateOne(ctx, mongo.IndexModel{Keys: bson.D{{Key: "kind", Value: 1}}, Options: options.Index().SetName("by_kind")})
	require.NoError(t, err)
	docs := make([]any, 300)
	for i := range docs {
		docs[i] = bson.D{{Key: "_id", Value: fmt.Sprintf("d%03d", i)}, {Key: "kind", Value: "k"}}
	}
	_, err = coll.InsertMany(ctx, docs)
	require.NoError(t, err)
	count := func(opts *options.FindOptionsBuilder) int {
		cur, err := coll.Find(ctx, bson.D{{Key: "kind", Value: "k"}}, opts)
		require.NoError(t, err)
		var out []bson.M
		require.NoError(t, cur.All(ctx, &out))
		return len(out)
	}
	assert.Equal(t, 101, count(options.Find().SetLimit(-300)), "one batch, no batch size: the default first batch")
	assert.Equal(t, 300, count(options.Find().SetLimit(-300).SetBatchSize(300)), "one batch of the limit")
	assert.Equal(t, 250, count(options.Find().SetLimit(250)), "more than a batch: the cursor brings the rest")
	assert.Equal(t, 300, count(options.Find()), "no limit: every one, through getMore")
}

package store

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"

	"webstack/app/conduit"
	"webstack/app/localdb"
	"webstack/app/store/storetest"
)

// release opens a store on uri as a release of layout l (rolling out
// beside l-1) would.
func release(t *testing.T, uri string, l int) *Store {
	t.Helper()
	st, err := Open(context.Background(), "conduit", func(context.Context, string) (string, error) { return uri, nil }, Options{LagTolerance: -1})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close(context.Background()) })
	st.layout, st.beside = l, l-1
	return st
}

func layoutRecord(t *testing.T, st *Store) layoutDoc {
	t.Helper()
	var rec layoutDoc
	require.NoError(t, st.findOne(context.Background(), st.coll("meta"), "meta.find", byID("layout"), &rec))
	return rec
}

// A layout change rolls out beside the release before it: the new release
// expands the layout and both run (and start) on one database; the
// contract waits while an instance of the old layout beats, then recounts
// what the old release did not count, and from then on the old release
// no longer starts.
func TestALayoutChangeRollsOutBesideTheReleaseBefore(t *testing.T) {
	ctx := context.Background()
	db, err := localdb.Start(ctx, "127.0.0.1:0", t.TempDir(), nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Stop(context.Background()) })

	old := release(t, db.URI, Layout-1)
	require.NoError(t, old.Migrate(ctx))
	assert.Equal(t, layoutDoc{Oldest: Layout - 1, Newest: Layout - 1}, layoutRecord(t, old))
	bob := &conduit.User{Username: "bob", Email: "bob@example.com", PasswordHash: "x"}
	require.NoError(t, old.CreateUser(ctx, bob))
	art := &conduit.Article{Slug: "post", Title: "Post", Description: "d", Body: "b", AuthorID: bob.ID, CreatedAt: time.Now().UTC(), UpdatedAt: time.Now().UTC()}
	require.NoError(t, old.CreateArticle(ctx, art))

	next := release(t, db.URI, Layout)
	require.NoError(t, next.Migrate(ctx), "the new release starts on the old layout")
	assert.Equal(t, layoutDoc{Oldest: Layout - 1, Newest: Layout}, layoutRecord(t, next), "expanded: the old release may still start")
	require.NoError(t, release(t, db.URI, Layout-1).Migrate(ctx), "an old instance starting during the rollout (or a rollback) is taken")
	var raw struct {
		Version int `bson:"version"`
	}
	require.NoError(t, next.findOne(ctx, next.coll("meta"), "t", byID("layout"), &raw))
	assert.Equal(t, Layout-1, raw.Version, "the field the layout-3 release reads (and accepts only as 3) still says 3")

	// The old release adds comments without counting them (layout 3 did
	// not keep articles.comments): inserted as it inserted them.
	seedComments(t, old, &conduit.Article{ID: art.ID}, bob.ID, 7, time.Now().Add(-time.Minute), 0)
	c := &conduit.Comment{AuthorID: bob.ID, Body: "counted", CreatedAt: time.Now().UTC(), UpdatedAt: time.Now().UTC()}
	require.NoError(t, next.AddComment(ctx, art.ID, c), "the new release counts its own")

	require.NoError(t, next.layoutRound(ctx))
	assert.Equal(t, layoutDoc{Oldest: Layout - 1, Newest: Layout}, layoutRecord(t, next),
		"the release that brings a layout does not contract it (ContractBeside is the next one's)")
	next.contract = true

	contracted, err := next.Contract(ctx)
	require.NoError(t, err)
	assert.False(t, contracted, "an old instance beats: no contract")
	assert.Equal(t, layoutDoc{Oldest: Layout - 1, Newest: Layout}, layoutRecord(t, next), "stepped back")
	require.NoError(t, old.Heartbeat(ctx))

	// The old instances stop: their heartbeats age past heartbeatTTL.
	_, err = next.cur.Load().db.Collection("meta").UpdateMany(ctx, bson.D{{Key: "layout", Value: Layout - 1}},
		set(bson.E{Key: "seen", Value: time.Now().UTC().Add(-heartbeatTTL - time.Second)}))
	require.NoError(t, err)
	contracted, err = next.Contract(ctx)
	require.NoError(t, err)
	assert.True(t, contracted)
	assert.Equal(t, layoutDoc{Oldest: Layout, Newest: Layout}, layoutRecord(t, next))
	var d struct {
		Comments int `bson:"comments"`
	}
	require.NoError(t, next.findOne(ctx, next.coll("articles"), "t", byID(art.ID), &d))
	assert.Equal(t, 8, d.Comments, "the contract counted the comments the old release added")
	contracted, err = next.Contract(ctx)
	require.NoError(t, err)
	assert.False(t, contracted, "once")

	err = release(t, db.URI, Layout-1).Migrate(ctx)
	require.ErrorIs(t, err, ErrLayout, "after the contract the old release no longer starts")
	assert.Contains(t, err.Error(), "contracted")
	require.NoError(t, release(t, db.URI, Layout).Migrate(ctx), "the new one does")
	err = release(t, db.URI, Layout+2).Migrate(ctx)
	require.ErrorIs(t, err, ErrLayout, "a release two layouts on does not skip one")
	assert.Contains(t, err.Error(), "beside layout")
}

// An old instance that starts while the contract is recorded either beats
// before the contract looks (the contract steps back) or reads the record
// after (and refuses to start): never both running and contracted (both
// may stop: it reads the record, the contract sees its beat and steps
// back).
func TestAContractAndAnOldInstanceStartingAtOnceNeverBothGoOn(t *testing.T) {
	ctx := context.Background()
	db, err := localdb.Start(ctx, "127.0.0.1:0", t.TempDir(), nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Stop(context.Background()) })
	require.NoError(t, release(t, db.URI, Layout-1).Migrate(ctx))
	next := release(t, db.URI, Layout)
	require.NoError(t, next.Migrate(ctx))
	_, err = next.coll("meta").DeleteMany(ctx, bson.D{{Key: "layout", Value: Layout - 1}}) // the old ones stopped
	require.NoError(t, err)
	for range 20 {
		var wg sync.WaitGroup
		var contracted bool
		var cerr, started error
		wg.Add(2)
		go func() { defer wg.Done(); contracted, cerr = next.Contract(ctx) }()
		go func() { defer wg.Done(); started = release(t, db.URI, Layout-1).Migrate(ctx) }()
		wg.Wait()
		require.NoError(t, cerr)
		if contracted {
			require.ErrorIs(t, started, ErrLayout, "contracted: the old instance did not start")
			return
		}
		// Not contracted: the old instance runs, or it read the record while
		// the contract was recorded and refused itself before the contract
		// saw its heartbeat and stepped back (neither goes on; its group
		// starts it again). Never a started instance and a contract.
		if started != nil {
			require.ErrorIs(t, started, ErrLayout)
		}
		// It stops again.
		_, err = next.coll("meta").DeleteMany(ctx, bson.D{{Key: "layout", Value: Layout - 1}})
		require.NoError(t, err)
	}
	t.Fatal("the contract never went through in 20 rounds")
}

// Indexes are compared by their keys and options, not their names: an
// index whose keys changed under its name is made under its name and a
// digest, in the background on a database that holds data (the start does
// not wait for it), and the old one is dropped once the layout is
// contracted.
func TestIndexesAreMatchedByTheirKeysAndBuiltBehindTheStart(t *testing.T) {
	ctx := context.Background()
	db, err := localdb.Start(ctx, "127.0.0.1:0", t.TempDir(), nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Stop(context.Background()) })
	first := release(t, db.URI, Layout)
	require.NoError(t, first.Migrate(ctx))
	bob := &conduit.User{Username: "bob", Email: "bob@example.com", PasswordHash: "x"}
	require.NoError(t, first.CreateUser(ctx, bob))
	art := &conduit.Article{Slug: "post", Title: "Post", Description: "d", Body: "b", AuthorID: bob.ID, CreatedAt: time.Now().UTC(), UpdatedAt: time.Now().UTC()}
	require.NoError(t, first.CreateArticle(ctx, art))
	// by_article with other keys under its name (as an earlier release
	// might have had it).
	comments := first.cur.Load().db.Collection("comments")
	err = comments.Indexes().DropOne(ctx, "by_article")
	require.NoError(t, err)
	require.NoError(t, first.cur.Load().db.RunCommand(ctx, bson.D{{Key: "createIndexes", Value: "comments"},
		{Key: "indexes", Value: bson.A{bson.D{{Key: "key", Value: bson.D{{Key: "aid", Value: 1}}}, {Key: "name", Value: "by_article"}}}}}).Err())

	proxy, err := storetest.NewFaultProxy(strings.TrimSuffix(strings.TrimPrefix(db.URI, "mongodb://"), "/"), 1)
	require.NoError(t, err)
	t.Cleanup(func() { _ = proxy.Close() })
	var mu sync.Mutex
	var creates []bson.Raw
	proxy.Observe = func(cmd bson.Raw) {
		if _, ok := cmd.Lookup("createIndexes").StringValueOK(); ok {
			mu.Lock()
			creates = append(creates, cmd)
			mu.Unlock()
		}
	}
	proxy.Late = 1500 * time.Millisecond
	proxy.InjectNext([]storetest.Fault{storetest.Late}, "createIndexes") // the build takes its time
	// A rollout: the release before may still start, so nothing is dropped yet.
	_, err = first.coll("meta").UpdateOne(ctx, byID("layout"), set(bson.E{Key: "version", Value: Layout - 1}, bson.E{Key: "newest", Value: Layout}))
	require.NoError(t, err)
	next := release(t, "mongodb://"+proxy.Addr+"/", Layout)
	builds := make(chan error, 1)
	next.OnIndexBuild = func(_ int, err error) { builds <- err }
	start := time.Now()
	require.NoError(t, next.Migrate(ctx))
	assert.Less(t, time.Since(start), time.Second, "the start does not wait for the build")
	specs, err := first.listIndexes(ctx, "comments")
	require.NoError(t, err)
	assert.Len(t, specs, 2, "not built yet when the start is over")
	_, _, err = next.Comments(ctx, nil, "post", conduit.CommentPage{Limit: 10})
	require.NoError(t, err, "served meanwhile")
	select {
	case err := <-builds:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("the build never ended")
	}
	mu.Lock()
	require.Len(t, creates, 1, "one index was missing")
	assert.Equal(t, true, creates[0].Lookup("indexes", "0", "background").Boolean(), "built in the background")
	name := creates[0].Lookup("indexes", "0", "name").StringValue()
	mu.Unlock()
	want := index{coll: "comments", name: "by_article", keys: bson.D{asc("aid"), asc("createdAt"), asc("_id")}}
	assert.Equal(t, want.digestName(), name, "made under its name and a digest")

	names := func() []string {
		specs, err := next.listIndexes(ctx, "comments")
		require.NoError(t, err)
		var names []string
		for _, sp := range specs {
			names = append(names, sp.Name)
		}
		return names
	}
	assert.ElementsMatch(t, []string{"_id_", "by_article", want.digestName()}, names(), "during the rollout the old index stays (the release before uses it)")
	_, err = first.coll("meta").UpdateOne(ctx, byID("layout"), set(bson.E{Key: "version", Value: Layout}))
	require.NoError(t, err)
	built, err := next.EnsureIndexes(ctx)
	require.NoError(t, err)
	assert.Zero(t, built, "nothing missing any more")
	assert.ElementsMatch(t, []string{"_id_", want.digestName()}, names(), "contracted: the old by_article dropped")
	_, _, err = next.Comments(ctx, nil, "post", conduit.CommentPage{Limit: 10})
	require.NoError(t, err)
}

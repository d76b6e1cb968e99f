package store

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"webstack/app/conduit"
	"webstack/app/localdb"
	"webstack/app/store/storetest"
)

// A quota holds under concurrency: of 40 takes at once with a limit of 10,
// exactly 10 pass, and the rest are told when the window ends. (FerretDB
// applies an update as a read and a write: locally the planner's lock of
// the document the take names is what makes it atomic, and the takes run
// at once as on DocumentDB, which applies each to the document atomically.)
func TestQuotaTakesNeverPassTheLimitUnderConcurrency(t *testing.T) {
	ctx := context.Background()
	st, _ := newLocal(t, Options{})
	require.NoError(t, st.Migrate(ctx))
	now := time.Date(2026, 12, 6, 10, 30, 0, 0, time.UTC)
	var passed, refused atomic.Int32
	var wg sync.WaitGroup
	for range 40 {
		wg.Go(func() {
			ok, retry, err := st.Take(ctx, "comments/u1", 10, time.Hour, now)
			assert.NoError(t, err)
			if ok {
				passed.Add(1)
				return
			}
			refused.Add(1)
			assert.Equal(t, 30*time.Minute, retry, "until the window ends")
		})
	}
	wg.Wait()
	assert.Equal(t, int32(10), passed.Load())
	assert.Equal(t, int32(30), refused.Load())
	ok, _, err := st.Take(ctx, "comments/u1", 10, time.Hour, now.Add(time.Hour))
	require.NoError(t, err)
	assert.True(t, ok, "the next window starts again")
	ok, _, err = st.Take(ctx, "comments/u2", 10, time.Hour, now)
	require.NoError(t, err)
	assert.True(t, ok, "another key has its own count")
	n, err := st.SweepQuotas(ctx, now.Add(2*time.Hour))
	require.NoError(t, err)
	assert.Equal(t, int64(3), n, "the ended windows go")
}

// Through a failover (replies lost after the write, writes dropped, "not
// primary"), takes err on the strict side: never more than the limit pass.
func TestQuotaTakesStayWithinTheLimitThroughFaults(t *testing.T) {
	ctx := context.Background()
	db, err := localdb.Start(ctx, "127.0.0.1:0", t.TempDir(), nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Stop(context.Background()) })
	proxy, err := storetest.NewFaultProxy(strings.TrimSuffix(strings.TrimPrefix(db.URI, "mongodb://"), "/"), 7)
	require.NoError(t, err)
	t.Cleanup(func() { _ = proxy.Close() })
	uri := "mongodb://" + proxy.Addr + "/"
	st, err := Open(ctx, "conduit", func(context.Context, string) (string, error) { return uri, nil }, Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close(context.Background()) })
	require.NoError(t, st.Migrate(ctx))
	proxy.Inject(0.3, []storetest.Fault{storetest.DropBeforeSend, storetest.LoseReply, storetest.NotPrimary}, "update")
	now := time.Now()
	passed := 0
	for range 30 {
		cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		ok, _, err := st.Take(cctx, "articles/u1", 10, time.Hour, now)
		cancel()
		if err == nil && ok {
			passed++
		}
		if err != nil {
			assert.Equal(t, conduit.CodeUnavailable, conduit.CodeOf(err), "a fault is unavailable, not a failure: %v", err)
		}
	}
	proxy.Heal()
	assert.Positive(t, proxy.Injected())
	assert.LessOrEqual(t, passed, 10)
	var d quotaDoc
	require.NoError(t, st.findOne(ctx, st.coll("quotas"), "quotas.find", byID("articles/u1/"+strconv.FormatInt(now.UTC().Truncate(time.Hour).Unix(), 10)), &d))
	assert.Equal(t, 10, d.N, "the window is full: lost replies counted, never lost counts")
}

// Two first takes of a window at once: both find no document, both
// insert, and the database refuses one insert with a duplicate key — with
// one use counted of a limit of 3. That take passes too (it counts once
// the document exists), and only a full window refuses.
func TestConcurrentFirstTakesOfAWindowBothPass(t *testing.T) {
	ctx := context.Background()
	st, proxy := newProxied(t, Options{}, 11)
	now := time.Now()
	proxy.InjectNext([]storetest.Fault{storetest.RacedUpsert}, "update")
	ok, _, err := st.Take(ctx, "registrations/203.0.113.9", 3, time.Hour, now)
	require.NoError(t, err)
	assert.True(t, ok, "the take that lost the insert race counts, and passes")
	assert.Equal(t, 1, proxy.Counts()[storetest.RacedUpsert])
	var d quotaDoc
	require.NoError(t, st.findOne(ctx, st.coll("quotas"), "quotas.find", byID("registrations/203.0.113.9/"+strconv.FormatInt(now.UTC().Truncate(time.Hour).Unix(), 10)), &d))
	assert.Equal(t, 2, d.N, "the racer's take and this one")
	ok, _, err = st.Take(ctx, "registrations/203.0.113.9", 3, time.Hour, now)
	require.NoError(t, err)
	assert.True(t, ok, "the third of three")
	ok, retry, err := st.Take(ctx, "registrations/203.0.113.9", 3, time.Hour, now)
	require.NoError(t, err)
	assert.False(t, ok, "a full window refuses")
	assert.Positive(t, retry)
}

// newProxied is a store on an embedded FerretDB behind a fault proxy.
func newProxied(t *testing.T, opts Options, seed uint64) (*Store, *storetest.FaultProxy) {
	t.Helper()
	ctx := context.Background()
	db, err := localdb.Start(ctx, "127.0.0.1:0", t.TempDir(), nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Stop(context.Background()) })
	proxy, err := storetest.NewFaultProxy(strings.TrimSuffix(strings.TrimPrefix(db.URI, "mongodb://"), "/"), seed)
	require.NoError(t, err)
	t.Cleanup(func() { _ = proxy.Close() })
	uri := "mongodb://" + proxy.Addr + "/"
	st, err := Open(ctx, "conduit", func(context.Context, string) (string, error) { return uri, nil }, opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close(context.Background()) })
	require.NoError(t, st.Migrate(ctx))
	return st, proxy
}

// Sessions: started, read on the primary, touched, ended; the sweep takes
// the ones past their lifetime only. Each write converges when sent twice.
func TestSessionsStartEndAndSweep(t *testing.T) {
	ctx := context.Background()
	st, _ := newLocal(t, Options{})
	require.NoError(t, st.Migrate(ctx))
	now := time.Now().UTC().Truncate(time.Millisecond)
	live := &conduit.Session{ID: "live", UserID: "u1", Seen: now, Expires: now.Add(time.Hour)}
	old := &conduit.Session{ID: "old", UserID: "u1", Seen: now.Add(-2 * time.Hour), Expires: now.Add(-time.Minute)}
	for _, s := range []*conduit.Session{live, old, live} {
		require.NoError(t, st.StartSession(ctx, s), "started twice is started once")
	}
	got, err := st.Session(ctx, "live")
	require.NoError(t, err)
	assert.Equal(t, live, got)
	require.NoError(t, st.TouchSession(ctx, "live", now.Add(time.Minute)))
	got, err = st.Session(ctx, "live")
	require.NoError(t, err)
	assert.Equal(t, now.Add(time.Minute), got.Seen)
	require.NoError(t, st.TouchSession(ctx, "live", now), "a touch that lands late")
	got, err = st.Session(ctx, "live")
	require.NoError(t, err)
	assert.Equal(t, now.Add(time.Minute), got.Seen, "never moves seen back")
	n, err := st.SweepSessions(ctx, now)
	require.NoError(t, err)
	assert.Equal(t, int64(1), n)
	require.NoError(t, st.EndSession(ctx, "live"))
	require.NoError(t, st.EndSession(ctx, "live"), "ended twice is ended once")
	_, err = st.Session(ctx, "live")
	assert.Equal(t, conduit.CodeNotFound, conduit.CodeOf(err))
	require.NoError(t, st.TouchSession(ctx, "live", now), "touching an ended session does not bring it back")
	_, err = st.Session(ctx, "live")
	assert.Equal(t, conduit.CodeNotFound, conduit.CodeOf(err))
}

// Tag spam does not bloat every page: the tag list is at most MaxTags,
// ranked by how many people use a tag, so one account's 250 articles with
// 20 tags each (ten on all of them, ten new each time) neither grow it nor
// push out the tags others use.
func TestOneAccountsTagSpamDoesNotCrowdOutEveryonesTags(t *testing.T) {
	ctx := context.Background()
	st, _ := newLocal(t, Options{LagTolerance: -1})
	require.NoError(t, st.Migrate(ctx))
	now := time.Now().UTC()
	people := make([]*conduit.User, 3)
	for i := range people {
		people[i] = &conduit.User{Username: "p" + strconv.Itoa(i), Email: "p" + strconv.Itoa(i) + "@example.com", PasswordHash: "x"}
		require.NoError(t, st.CreateUser(ctx, people[i]))
	}
	for i, p := range people[:2] {
		a := &conduit.Article{Slug: "real-" + strconv.Itoa(i), Title: "t", Description: "d", Body: "b", TagList: []string{"go", "zebra"},
			AuthorID: p.ID, CreatedAt: now, UpdatedAt: now}
		require.NoError(t, st.CreateArticle(ctx, a))
	}
	spammer := people[2]
	for i := range 250 {
		tags := make([]string, 20)
		for j := range tags {
			tags[j] = "aaa-spam-" + strconv.Itoa(j) // on every article
			if j >= 10 {
				tags[j] = "aaa-new-" + strconv.Itoa(i*20+j) // new each time
			}
		}
		at := now.Add(time.Duration(i+1) * time.Millisecond)
		require.NoError(t, st.CreateArticle(ctx, &conduit.Article{Slug: "spam-" + strconv.Itoa(i), Title: "t", Description: "d", Body: "b",
			TagList: tags, AuthorID: spammer.ID, CreatedAt: at, UpdatedAt: at}))
	}
	tags, err := st.Tags(ctx, nil)
	require.NoError(t, err)
	assert.Len(t, tags, MaxTags, "bounded")
	assert.Equal(t, []string{"go", "zebra"}, tags[:2], "tags two people use come before any one account's")
}

// A key's claim whose reply was lost is found again as its own (not a
// copy still running); a copy during the lease is busy; after an answer
// is kept, a copy gets it; another body is refused; a released claim runs
// again.
func TestAnIdempotencyKeyIsClaimedOnceThroughALostReply(t *testing.T) {
	ctx := context.Background()
	st, proxy := newProxied(t, Options{}, 3)
	now := time.Now()
	proxy.InjectNext([]storetest.Fault{storetest.LoseReply}, "insert")
	ans, first, err := st.ClaimKey(ctx, "k", "body-hash", "claim-1", now, time.Minute)
	require.NoError(t, err, "its own claim, its reply lost")
	assert.Nil(t, ans, "run it")
	assert.Equal(t, "k", first.ID)
	assert.Equal(t, now.UTC().Truncate(time.Millisecond), first.First)
	assert.Equal(t, 1, proxy.Counts()[storetest.LoseReply])

	_, _, err = st.ClaimKey(ctx, "k", "body-hash", "claim-2", now, time.Minute)
	assert.Equal(t, conduit.CodeBusy, conduit.CodeOf(err), "a copy while the first runs")
	_, _, err = st.ClaimKey(ctx, "k", "another-body", "claim-3", now, time.Minute)
	assert.Equal(t, conduit.CodeInvalid, conduit.CodeOf(err), "the key with another request")

	require.NoError(t, st.KeepAnswer(ctx, "k", "claim-1", conduit.Answer{Status: 201, Header: map[string]string{"ETag": `"1"`}, Body: []byte(`{"ok":1}`)}))
	ans, _, err = st.ClaimKey(ctx, "k", "body-hash", "claim-4", now, time.Minute)
	require.NoError(t, err)
	require.NotNil(t, ans)
	assert.Equal(t, 201, ans.Status)
	assert.Equal(t, `"1"`, ans.Header["ETag"])
	assert.Equal(t, `{"ok":1}`, string(ans.Body))

	// A lease that ended with no answer is taken over; a "try again" answer
	// releases the key.
	_, k2, err := st.ClaimKey(ctx, "k2", "b", "first", now, time.Millisecond)
	require.NoError(t, err)
	time.Sleep(5 * time.Millisecond)
	ans, _, err = st.ClaimKey(ctx, "k2", "b", "second", time.Now(), time.Minute)
	require.NoError(t, err, "taken over")
	assert.Nil(t, ans)
	require.NoError(t, st.KeepAnswer(ctx, "k2", "second", conduit.Answer{Status: 503}))
	ans, again, err := st.ClaimKey(ctx, "k2", "b", "third", time.Now(), time.Minute)
	require.NoError(t, err, "released: runs again")
	assert.Nil(t, ans)
	assert.Equal(t, k2.First, again.First, "as the same request: the first claim's time (what it makes is derived from it)")
	assert.False(t, k2.Again)
	assert.True(t, again.Again, "a copy that runs again: what the first made may be there")
	require.NoError(t, st.KeepAnswer(ctx, "k2", "first", conduit.Answer{Status: 200}), "a claim taken over keeps nothing")
	ans, _, err = st.ClaimKey(ctx, "k2", "b", "fourth", time.Now(), time.Minute)
	assert.Equal(t, conduit.CodeBusy, conduit.CodeOf(err), "the third still holds it: the first's answer was not kept")
	assert.Nil(t, ans)
}

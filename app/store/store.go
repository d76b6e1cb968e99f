// Package store keeps Conduit's data in Amazon DocumentDB 5.0, the database
// it runs on in production, or in any MongoDB-compatible database (MongoDB;
// FerretDB locally, see "The local engine" below). It uses no multi-document
// transactions, no $lookup and no retryable writes (DocumentDB has none:
// the connection string says retryWrites=false).
//
// # Layout (version 3, recorded in meta "layout"; a layout-2 database is taken as it is)
//
//	users     {_id: user id, username, usernameKey: lower-case username,
//	           email: lower-case, passwordHash, bio, image, cred, ver: the
//	           settings' version (absent: 0), lastWrite, freshUntil, createdAt}
//	          unique usernameKey, unique email
//	follows   {_id: follower "/" followee, ver, follower, followee, at}
//	          or, turned off, a tombstone {_id, ver, off: true, at}
//	          by_follower {follower, followee}
//	favorites {_id: user "/" article, ver, uid, aid, articleCreatedAt, at}
//	          or a tombstone {_id, ver, off: true, at} (see toggle)
//	          by_user {uid, articleCreatedAt -1, aid -1}; by_article {aid}
//	articles  {_id: article id (a keyed create's derived from its key),
//	           slug, title, description, body, tagList, authorId, createdAt,
//	           updatedAt, favoritesCount, favVer, favDirty, ver: the author's
//	           edits (absent before versions: 0), comments: how many it took
//	           (absent: 0; see AddComment)}
//	          unique slug; list_recent {createdAt -1, _id -1};
//	          list_by_author {authorId, createdAt -1, _id -1};
//	          list_by_tag {tagList, createdAt -1, _id -1}
//	comments  {_id: 16 hex digits of the comment id (time-ordered, see
//	           commentIDs), aid, authorId, body, createdAt, updatedAt}
//	          or, deleted, a tombstone {_id, off: true, at}
//	          by_article {aid, createdAt, _id}
//	intents   {_id, kind, aid, ver, at, settling}   multi-step writes under
//	          way, or settling ("settle/<kind>/<article>")
//	          by_age {at}
//	sessions, quotas, idempotency {_id, …, exp}   by_exp {exp} (swept)
//	meta      {_id: "layout", version}
//
// Every document is bounded: a user's follows and favorites, an article's
// comments and favorites are documents of their own, so adding the
// 100,000th comment or favorite costs what adding the first did (an insert
// and its index entries). Every query the store sends is served by one of
// the indexes Migrate makes (indexes() lists them with the queries they
// serve; TestEveryQueryIsServedByAnIndex checks the queries seen on the
// wire against that list), and reads a bounded number of entries whatever
// the collection holds: pages walk from a cursor or a bounded offset,
// counts stop at conduit.MaxCount, sweeps go a batch at a time
// (TestRequestWorkDoesNotGrowWithTheData; docs/app.md has the table).
//
// # Writes that survive a failover
//
// DocumentDB fails over on every patch and instance loss (about 30 s): a
// write may be dropped before it reaches the primary, applied with its
// reply lost, or refused with "not primary". Without retryable writes the
// store makes every write safe to send again instead, and sends it again
// (with a growing pause, within the request's deadline) after any error
// that leaves its outcome unknown:
//
//   - single-document writes wherever an invariant allows: an account is
//     one insert (the unique indexes on usernameKey and email make a taken
//     name a refused insert, not an orphan key); a rename, an email or
//     password change is one update; an article keeps its id when renamed
//     (the unique slug index makes the rename one update);
//   - inserts carry their own _id, so an insert sent twice finds its first
//     copy ("duplicate key" on _id is then success); follows and favorites
//     have an _id made of who and what, so toggling is idempotent;
//   - updates set values ($set), never add to them; the one counter, an
//     article's favoritesCount, is recounted (see recountFrom), and
//     the tag list is counted from the newest articles when it is read
//     (see Tags): there are no counters to keep right after a lost reply;
//   - a write of several documents (deleting an article with its comments
//     and favorites; a favorite and its count) first records its intent in
//     intents, then runs steps that are each idempotent, then marks the
//     intent settling. An intent older than Options.IntentGrace is an
//     interrupted write: Repair (every api instance runs it in the
//     background) runs its steps again. A settling one is run once more
//     Options.LateWrites later, then deleted: a command of the request that
//     the server held and applied late (a favorite after its recount, a
//     comment after its article's deletion) is counted or removed then. So
//     after a lost reply, a late copy, a crash between steps or a client's
//     retry, the data converges with no operator;
//   - an article's edit applies to the version it read (update by id and
//     version, the version moved on): a late copy of an earlier edit
//     matches nothing, and of two edits of one version only one saves (the
//     other is conduit.CodeChanged).
//
// Errors that mean "the database is failing over or unreachable" (not
// primary, node recovering, network errors, server selection and pool
// timeouts) are retried, then reported as conduit.CodeUnavailable: 503 with
// Retry-After, never 500. A duplicate key is "taken" only when a read
// shows the value the person chose held by someone else.
//
// # Reads and caches
//
// A person sees their own writes: the signed-in viewer's own document is
// read on the primary on every request (so a password change or a sign-out
// voids tokens at once on every instance), and for Options.ReadYourWrites
// after their last write (users.lastWrite, set before any write they make)
// everything they read comes from the primary, uncached. Every other read
// (anonymous visitors, and signed-in ones who have not written lately)
// goes to a replica where there is one, through process caches that keep
// what they read for Options.LagTolerance: as stale as a replica may be
// anyway, with no shared document to check. There is no global hot
// document: nothing every request reads, nothing every write updates.
//
// # The local engine
//
// FerretDB 1.24 on SQLite (conduit local, tests, the twin) answers the
// same queries but plans none of them: it pushes only {_id: v} down to
// SQLite and filters everything else in Go after reading the whole
// collection. localdb puts a planner in front of it that answers the
// store's index-served shapes from SQLite copies of these same indexes and
// hands FerretDB its writes by _id (see localdb), so the local engine uses
// the production indexes instead of the store being shaped around it. What
// it still does differently: SQLite has one writer (the others wait, or
// answer busy and are retried; the planner locks each document a write
// names, as FerretDB's conditional updates read, then write), no replicas
// (every read is the primary's), and queries the planner does not compile
// are scans.
package store

import (
	"context"
	"fmt"
	"math"
	"net"
	"net/url"
	"strconv"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/readpref"

	"webstack/app/conduit"
)

// Options tune a Store. Zero values take the defaults named.
type Options struct {
	// MaxWriters bounds concurrent writes. Default 0: unbounded, as
	// DocumentDB and conduit local run (a bound would make the local
	// engine kinder than DocumentDB: writes of different documents would
	// never meet).
	MaxWriters int
	// LagTolerance is how long reads for nobody in particular (anonymous
	// visitors, signed-in ones who have not written lately) are kept in
	// the process caches: about what a replica lags. Default
	// DefaultLagTolerance; negative: no caching.
	LagTolerance time.Duration
	// ReadYourWrites is how long after their last write a person's reads
	// all go to the primary, uncached. It must exceed LagTolerance plus
	// the replicas' worst lag. Default DefaultReadYourWrites.
	ReadYourWrites time.Duration
	// IntentGrace is how old an intent must be before Repair treats its
	// write as interrupted and finishes it: longer than any request.
	// Default DefaultIntentGrace.
	IntentGrace time.Duration
	// LateWrites is how long after a write of several documents Repair runs
	// its steps once more, for a command of its request that the server
	// held and applied late: longer than any request's deadline plus the
	// longest a server holds a command (see intentDoc). At least
	// IntentGrace. Default DefaultLateWrites.
	LateWrites time.Duration
	// MaxPool is the client's connection pool per database server (the
	// driver's maxPoolSize: per server, not per client). On AWS it is the
	// stack's connection budget (CONDUIT_DB_MAX_POOL, internal/stack).
	// Default DefaultMaxPool.
	MaxPool int
}

// Defaults of Options.
const (
	DefaultLagTolerance   = time.Second
	DefaultReadYourWrites = 10 * time.Second
	DefaultIntentGrace    = 30 * time.Second
	DefaultLateWrites     = 2 * time.Minute
	DefaultMaxPool        = 100 // the driver's own default
)

func (o Options) withDefaults() Options {
	if o.LagTolerance == 0 {
		o.LagTolerance = DefaultLagTolerance
	}
	if o.MaxPool <= 0 {
		o.MaxPool = DefaultMaxPool
	}
	if o.ReadYourWrites == 0 {
		o.ReadYourWrites = DefaultReadYourWrites
	}
	if o.IntentGrace == 0 {
		o.IntentGrace = DefaultIntentGrace
	}
	if o.LateWrites == 0 {
		o.LateWrites = DefaultLateWrites
	}
	o.LateWrites = max(o.LateWrites, o.IntentGrace)
	return o
}

// Store is the MongoDB-protocol implementation of Conduit's persistence.
type Store struct {
	cur  atomicConn
	uri  URIFunc
	rot  rotation
	opts Options
	// Observe, when set, receives the latency of every store operation.
	Observe func(op string, d time.Duration)
	// OnError, when set, is told of every operation that failed for a
	// reason other than the data (not found, conflict, invalid): the
	// database was unavailable, slow, refused us, or answered an error.
	OnError func(op string, err error)
	// OnRotate, when set, is called after the store has reconnected with
	// rotated credentials.
	OnRotate func()
	// OnCommand, when set, is told of every command sent to the database
	// (its name: find, insert, update, …), as the driver puts it on the
	// wire. Set it before the first operation.
	OnCommand func(name string)
	// OnWire, when set, is told the size in bytes of every command sent
	// (sent) and of every reply (received, with sent 0), by the command's
	// name. Set it before the first operation.
	OnWire func(name string, sent, received int)

	// OnIndexBuild, when set, is told of the index builds Migrate started
	// behind the start: how many it built, or why it stopped.
	OnIndexBuild func(built int, err error)
	// OnContract, when set, is told that this instance contracted the
	// data layout (see Contract).
	OnContract func(layout int)

	layout, beside int            // Layout and Beside (tests: another release's)
	contract       bool           // ContractBeside
	instance       string         // this process's heartbeat id
	indexBuilds    sync.WaitGroup // index builds behind the start (buildBehind)
	ddl            sync.Mutex     // one index build or drop at a time in this process
	repairRounds   int

	writers    chan struct{} // nil: unbounded
	afterCount func()        // tests: runs between a recount's count and its set
	cache      caches
	ids        commentIDs
}

// Connect opens a client for a fixed uri. The driver connects lazily and
// reconnects by itself, so a database that is down at start or later only
// fails the requests made meanwhile.
func Connect(ctx context.Context, uri, database string) (*Store, error) {
	return Open(ctx, database, func(context.Context, string) (string, error) { return uri, nil }, Options{})
}

// Open is Connect with credentials that rotate: uri is asked for the
// connection string at start and again whenever the database refuses the
// credentials of the one in use; the store then reconnects and repeats the
// refused operation, so a rotation costs no request.
func Open(ctx context.Context, database string, uri URIFunc, opts Options) (*Store, error) {
	u, err := uri(ctx, "")
	if err != nil {
		return nil, fmt.Errorf("database connection string: %w", err)
	}
	s := &Store{uri: uri, opts: opts.withDefaults(), layout: Layout, beside: Beside, contract: ContractBeside, instance: newID()}
	s.cache = newCaches(s.opts.LagTolerance)
	c, err := dial(u, database, s.opts.MaxPool, s.commandMonitor())
	if err != nil {
		return nil, err
	}
	if opts.MaxWriters > 0 {
		s.writers = make(chan struct{}, opts.MaxWriters)
	}
	s.cur.Store(c)
	return s, nil
}

// Close disconnects the client, waiting for in-use connections up to ctx.
func (s *Store) Close(ctx context.Context) error {
	if err := s.cur.Load().client.Disconnect(ctx); err != nil {
		return fmt.Errorf("disconnect from database: %w", err)
	}
	return nil
}

// Ping checks that the primary answers.
func (s *Store) Ping(ctx context.Context) error {
	defer s.observe("ping", time.Now())
	_, err := retry(ctx, s, func(ctx context.Context, c *conn) (struct{}, error) {
		return struct{}{}, c.client.Ping(ctx, readpref.Primary())
	})
	if err != nil {
		return conduit.Unavailable(err)
	}
	return nil
}

// WithRequest marks ctx as one request's. The store keeps nothing per
// request today; the hook stays so that callers need not change if it does.
func (s *Store) WithRequest(ctx context.Context) context.Context { return ctx }

// write takes a writer slot for the duration of a write.
func (s *Store) write(ctx context.Context) (release func(), err error) {
	if s.writers == nil {
		return func() {}, nil
	}
	select {
	case s.writers <- struct{}{}:
		return func() { <-s.writers }, nil
	case <-ctx.Done():
		return nil, conduit.Unavailable(ctx.Err())
	}
}

func (s *Store) observe(op string, start time.Time) {
	if s.Observe != nil {
		s.Observe(op, time.Since(start))
	}
}

// wrap classifies err and adds the operation's name.
func (s *Store) wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	err = classify(err)
	if code := conduit.CodeOf(err); (code == 0 || code == conduit.CodeUnavailable) && s.OnError != nil {
		s.OnError(op, err)
	}
	if conduit.CodeOf(err) != 0 {
		return err
	}
	return fmt.Errorf("%s: %w", op, err)
}

// errNotFound reports whether err is a not-found domain error.
func errNotFound(err error) bool { return conduit.CodeOf(err) == conduit.CodeNotFound }

// findAll runs a query and decodes every document into a []T, timed as op.
//
// A query with a limit asks for all of it in one batch (singleBatch: the
// driver's negative limit, and a batch size of the limit), so that no
// cursor stays open on the server for
// a getMore (DocumentDB counts open cursors per instance: 30 on a
// db.t4g.medium, see database.LimitsOf); every query the store makes has a
// limit, or is by _id $in a bounded list (at most MaxLimit, within the
// first batch's 101 documents). TestRequestWorkDoesNotGrowWithTheData
// fails on any getMore.
func findAll[T any](ctx context.Context, s *Store, coll collection, op string, filter any, opts ...options.Lister[options.FindOptions]) ([]T, error) {
	defer s.observe(op, time.Now())
	var fo options.FindOptions
	for _, o := range opts {
		for _, set := range o.List() {
			_ = set(&fo)
		}
	}
	if fo.Limit != nil && *fo.Limit > 0 {
		// The batch is the limit: without it the one batch is the server's
		// default first batch, 101 documents, and the rest is lost.
		opts = append(opts, options.Find().SetLimit(-*fo.Limit).SetBatchSize(int32(min(*fo.Limit, math.MaxInt32))))
	}
	docs, err := retry(ctx, s, func(ctx context.Context, cn *conn) ([]T, error) {
		cur, err := coll.of(cn).Find(ctx, filter, opts...)
		if err != nil {
			return nil, err
		}
		var docs []T
		return docs, cur.All(ctx, &docs)
	})
	if err != nil {
		return nil, s.wrap(op, err)
	}
	return docs, nil
}

// findOne decodes the document matching filter in coll into dst, timed
// as op; none is CodeNotFound.
func (s *Store) findOne(ctx context.Context, coll collection, op string, filter, dst any, opts ...options.Lister[options.FindOneOptions]) error {
	defer s.observe(op, time.Now())
	return s.wrap(op, coll.FindOne(ctx, filter, dst, opts...))
}

// count counts the documents matching filter, timed as op, up to limit
// when it is above 0 (a count is an index walk: a limit bounds it).
func (s *Store) count(ctx context.Context, coll collection, op string, filter any, limit int64) (int, error) {
	defer s.observe(op, time.Now())
	opts := options.Count()
	if limit > 0 {
		opts.SetLimit(limit)
	}
	n, err := coll.CountDocuments(ctx, filter, opts)
	return int(n), s.wrap(op, err)
}

// byID is the filter {_id: id}.
func byID(id any) bson.D { return bson.D{{Key: "_id", Value: id}} }

// in is the filter {field: {$in: values}}.
func in[T any](field string, values []T) bson.D {
	return bson.D{{Key: field, Value: bson.D{{Key: "$in", Value: values}}}}
}

// set is the update {$set: fields}.
func set(fields ...bson.E) bson.D { return bson.D{{Key: "$set", Value: bson.D(fields)}} }

// DocumentDBURI is the connection string for an Amazon DocumentDB cluster:
// TLS verified against caFile (AWS's global bundle), the replica set every
// cluster exposes as rs0, and no retryable writes, which DocumentDB lacks.
// Reads default to the primary; the store sends lag-tolerant queries to
// secondaries itself.
func DocumentDBURI(host string, port int, username, password, caFile string) string {
	u := url.URL{
		Scheme: "mongodb",
		User:   url.UserPassword(username, password),
		Host:   net.JoinHostPort(host, strconv.Itoa(port)),
		Path:   "/",
	}
	q := url.Values{}
	q.Set("tls", "true")
	q.Set("tlsCAFile", caFile)
	q.Set("replicaSet", "rs0")
	q.Set("retryWrites", "false")
	u.RawQuery = q.Encode()
	return u.String()
}

// Package store keeps Conduit's data in MongoDB or a compatible database
// (Amazon DocumentDB, FerretDB). It uses no multi-document transactions and
// no $lookup.
//
//	users     {_id: user id, username, email, passwordHash, bio, image, cred,
//	           following: [user id], favorites: [article id]}
//	usernames {_id: lower-case username, uid}   unique usernames, by key
//	emails    {_id: lower-case email, uid}      unique emails, by key
//	articles  {_id: slug, aid, title, description, body, tagList, authorId,
//	           createdAt, updatedAt, favoritesCount}
//	threads_xx {_id: aid, comments: [{id, authorId, body, createdAt, updatedAt}]}
//	tags      {_id: tag, count}
//	meta      {_id: "gens", articles, users, count}
//	          {_id: "commentSeq", seq}
//
// Every read on a hot path is by _id, the one query FerretDB 1.x on SQLite
// answers in constant time (measured: 0.4 ms whether the collection holds
// 100 or 10,000 documents). Lists, tags and users are served from process
// caches validated, on every request, by the data generations in meta (one
// read by _id of one small document; see gens): a request whose data has
// not changed since a process last read it costs that read, whatever the
// data size, and a request after a write (on any instance) reads the
// database again. A viewer's own user document carries who they follow and
// what they favorited, so one read (or cache hit) flags any number of
// articles and authors.
//
// FerretDB on SQLite finds a document to update or delete by scanning its
// collection (measured: an update costs 2 ms among 1,000 documents of 1 KB,
// 136 ms among 10,000), so the writes readers wait on are inserts or
// updates of small collections: comments go to one of 256 thread
// collections, counters to meta.
//
// Multi-document invariants are kept by ordering (a document is written
// before what points to it, generations move last) and by idempotent
// steps; what a crash between steps leaves behind is said where it can
// happen.
package store

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/readpref"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/topology"

	"webstack/app/conduit"
)

// Options tune a Store.
type Options struct {
	// MaxWriters bounds concurrent writes. FerretDB on SQLite has one
	// writer and answers "database is locked" to the others; conduit local
	// sets 1. Defaults to 0: unbounded (DocumentDB).
	MaxWriters int
	// MaxComments is how many comments an article holds: its comments are
	// one document, which a database keeps under 16 MB. Defaults to
	// DefaultMaxComments.
	MaxComments int
	// LagTolerance is how stale reads for nobody in particular (anonymous
	// lists, articles, comments, tags) may be: the generations they are
	// checked against are re-read this often, not on every request, like
	// a replica that lags. Signed-in viewers always read fresh. Defaults to
	// DefaultLagTolerance; negative: none (every read checks).
	LagTolerance time.Duration
}

// DefaultLagTolerance is Options.LagTolerance's default: about what a
// DocumentDB replica lags under load.
const DefaultLagTolerance = time.Second

// Store is the MongoDB implementation of Conduit's persistence.
type Store struct {
	cur  atomic.Pointer[conn]
	uri  URIFunc
	rot  rotation
	opts Options
	// Observe, when set, receives the latency of every database operation.
	Observe func(op string, d time.Duration)
	// OnError, when set, is told of every operation that failed for a
	// reason other than the data (not found, conflict, invalid): the
	// database was unavailable, slow, refused us, or answered an error.
	OnError func(op string, err error)
	// OnRotate, when set, is called after the store has reconnected with
	// rotated credentials.
	OnRotate func()

	writers chan struct{} // nil: unbounded
	cache   caches
	lag     lagGens    // see gensOf
	seqMu   sync.Mutex // comment ids: see nextCommentID
	ids     struct{ next, end int64 }
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
	c, err := dial(u, database)
	if err != nil {
		return nil, err
	}
	if opts.MaxComments == 0 {
		opts.MaxComments = DefaultMaxComments
	}
	if opts.LagTolerance == 0 {
		opts.LagTolerance = DefaultLagTolerance
	}
	s := &Store{uri: uri, opts: opts, cache: newCaches()}
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

// Ping checks that the database answers.
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

// index is one index the store needs.
type index struct {
	coll, name string
	keys       bson.D
	unique     bool
}

// indexes serve, on DocumentDB and MongoDB, the queries that are not by
// _id (each is named where it is made; they run on cache misses). Lists
// sort on {createdAt: -1, aid: -1} (aid breaks ties, so pages are stable),
// and each list index ends with both keys, so the index walk is the order
// and a page reads offset+limit entries, not every match:
//
//	articles.list_recent     global list
//	articles.list_by_author  author filter, and the feed ({authorId: {$in}},
//	                         merged per author)
//	articles.list_by_tag     tag filter (multikey on tagList)
//	articles.by_aid          favorited-by lists ({aid: {$in}}, then sorted:
//	                         as many as the user favorited); not unique: a
//	                         renamed article has two documents for a moment
//	tags.used                the tag list ({count: {$gt: 0}})
//
// Everything else is a lookup by _id. FerretDB on SQLite uses none of
// them (it filters in Go; localdb indexes its _id lookups), which is why
// reads go through the caches.
func indexes() []index {
	return []index{
		{"articles", "list_recent", listSort, false},
		{"articles", "list_by_author", append(bson.D{{Key: "authorId", Value: 1}}, listSort...), false},
		{"articles", "list_by_tag", append(bson.D{{Key: "tagList", Value: 1}}, listSort...), false},
		{"articles", "by_aid", bson.D{{Key: "aid", Value: 1}}, false},
		{"tags", "used", bson.D{{Key: "count", Value: 1}}, false},
	}
}

// obsoleteIndexes were made by earlier versions and serve nothing now
// (their keys did not cover the lists' tie-breaking sort); Migrate drops
// them, since every index costs every write.
var obsoleteIndexes = []struct{ coll, name string }{
	{"articles", "recent"}, {"articles", "by_author"}, {"articles", "by_tag"},
}

// Migrate creates the missing indexes; it is idempotent. Existing indexes
// are listed first and left alone: re-creating them is a no-op on MongoDB
// and DocumentDB, but crashes FerretDB 1.24's SQLite handler.
func (s *Store) Migrate(ctx context.Context) error {
	if err := s.createCollections(ctx); err != nil {
		return err
	}
	existing := map[string]map[string]bool{}
	for _, ix := range indexes() {
		names, ok := existing[ix.coll]
		if !ok {
			var err error
			if names, err = s.indexNames(ctx, ix.coll); err != nil {
				return err
			}
			existing[ix.coll] = names
		}
		if names[ix.name] {
			continue
		}
		model := mongo.IndexModel{Keys: ix.keys, Options: options.Index().SetName(ix.name).SetUnique(ix.unique)}
		if _, err := s.coll(ix.coll).Indexes().CreateOne(ctx, model); err != nil {
			return fmt.Errorf("create index %s.%s: %w", ix.coll, ix.name, s.classify(err))
		}
	}
	for _, ix := range obsoleteIndexes {
		if !existing[ix.coll][ix.name] {
			continue
		}
		if err := s.coll(ix.coll).Indexes().DropOne(ctx, ix.name); err != nil {
			return fmt.Errorf("drop obsolete index %s.%s: %w", ix.coll, ix.name, s.classify(err))
		}
	}
	return nil
}

// collections are every collection the store uses, thread shards included.
func collections() []string {
	names := []string{"users", "usernames", "emails", "articles", "tags", "meta"}
	for i := range threadShards {
		names = append(names, fmt.Sprintf("threads_%02x", i))
	}
	return names
}

// createCollections makes the collections that do not exist yet, so that
// none is created under load (FerretDB then changes its SQLite schema while
// other statements run).
func (s *Store) createCollections(ctx context.Context) error {
	db := s.cur.Load().db
	have, err := db.ListCollectionNames(ctx, bson.D{})
	if err != nil {
		return fmt.Errorf("list collections: %w", s.classify(err))
	}
	for _, name := range collections() {
		if slices.Contains(have, name) {
			continue
		}
		if err := db.CreateCollection(ctx, name); err != nil && !isNamespaceExists(err) {
			return fmt.Errorf("create collection %s: %w", name, s.classify(err))
		}
	}
	return nil
}

// isNamespaceExists reports a collection another instance created first.
func isNamespaceExists(err error) bool {
	var ce mongo.CommandError
	return errors.As(err, &ce) && ce.Code == 48
}

func (s *Store) indexNames(ctx context.Context, coll string) (map[string]bool, error) {
	cur, err := s.coll(coll).Indexes().List(ctx)
	if err != nil {
		return nil, fmt.Errorf("list indexes on %s: %w", coll, s.classify(err))
	}
	var specs []struct {
		Name string `bson:"name"`
	}
	if err := cur.All(ctx, &specs); err != nil {
		return nil, fmt.Errorf("list indexes on %s: %w", coll, s.classify(err))
	}
	names := map[string]bool{}
	for _, sp := range specs {
		names[sp.Name] = true
	}
	return names, nil
}

func (s *Store) observe(op string, start time.Time) {
	if s.Observe != nil {
		s.Observe(op, time.Since(start))
	}
}

// isBusy reports a database that was too busy to take the operation, which
// did not happen and may be retried: FerretDB passes SQLite's "database is
// locked" through as an InternalError.
//
// "database schema has changed" is SQLite's answer to a statement prepared
// before a table or index was created: the statement did not run, and runs
// when tried again (localdb indexes new collections in the background).
func isBusy(err error) bool {
	if err == nil {
		return false
	}
	msg := err.Error()
	return strings.Contains(msg, "database is locked") || strings.Contains(msg, "SQLITE_BUSY") ||
		strings.Contains(msg, "database schema has changed")
}

// classify turns driver errors into domain errors where the client should
// see something other than a 500: a busy, slow or unreachable database is
// "unavailable" (503, retry later), never an internal error.
func (s *Store) classify(err error) error {
	var sel topology.ServerSelectionError
	var ce mongo.CommandError
	switch {
	case err == nil:
		return nil
	case conduit.CodeOf(err) != 0:
		return err
	case errors.Is(err, mongo.ErrNoDocuments):
		return conduit.Errorf(conduit.CodeNotFound, "not found")
	case mongo.IsDuplicateKeyError(err), strings.Contains(err.Error(), "UNIQUE constraint failed"):
		// FerretDB 1.x on SQLite reports a unique-index violation by an
		// update as an InternalError carrying SQLite's message, not as the
		// 11000 write error the driver recognises (inserts are fine).
		return &conduit.Error{Code: conduit.CodeConflict, Message: "already exists", Err: err}
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled),
		mongo.IsTimeout(err), mongo.IsNetworkError(err), errors.As(err, &sel),
		errors.Is(err, mongo.ErrClientDisconnected), isBusy(err), isAuthError(err),
		errors.As(err, &ce) && ce.Code == 50: // MaxTimeMSExpired
		return conduit.Unavailable(err)
	}
	return err
}

// wrap classifies err and adds the operation's name.
func (s *Store) wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	err = s.classify(err)
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
func findAll[T any](ctx context.Context, s *Store, coll collection, op string, filter any, opts ...options.Lister[options.FindOptions]) ([]T, error) {
	defer s.observe(op, time.Now())
	cur, err := coll.Find(ctx, filter, opts...)
	if err != nil {
		return nil, s.wrap(op, err)
	}
	var docs []T
	if err := cur.All(ctx, &docs); err != nil {
		return nil, s.wrap(op, err)
	}
	return docs, nil
}

// findOne finds the document _id id in coll (the primary, or the
// lag-tolerant handle) into dst, timed as op.
func (s *Store) findOne(ctx context.Context, coll collection, op string, id any, dst any, opts ...options.Lister[options.FindOneOptions]) error {
	defer s.observe(op, time.Now())
	return s.wrap(op, coll.FindOne(ctx, bson.D{{Key: "_id", Value: id}}, dst, opts...))
}

// in is the filter {field: {$in: values}}.
func in[T any](field string, values []T) bson.D {
	return bson.D{{Key: field, Value: bson.D{{Key: "$in", Value: values}}}}
}

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

// Package store keeps Conduit's data in MongoDB or a compatible database
// (Amazon DocumentDB, FerretDB). It uses no multi-document transactions and
// no $lookup: every multi-document invariant is kept by idempotent writes
// (deterministic _ids for follows and favorites) and atomic $inc counters.
package store

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
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

// Store is the MongoDB implementation of Conduit's persistence.
type Store struct {
	cur atomic.Pointer[conn]
	uri URIFunc
	rot rotation
	// Observe, when set, receives the latency of every database operation.
	Observe func(op string, d time.Duration)
	// OnRotate, when set, is called after the store has reconnected with
	// rotated credentials.
	OnRotate func()

	counterMu sync.Mutex // see nextCommentID
}

// Connect opens a client for a fixed uri. The driver connects lazily and
// reconnects by itself, so a database that is down at start or later only
// fails the requests made meanwhile.
func Connect(ctx context.Context, uri, database string) (*Store, error) {
	return Open(ctx, database, func(context.Context, string) (string, error) { return uri, nil })
}

// Open is Connect with credentials that rotate: uri is asked for the
// connection string at start and again whenever the database refuses the
// credentials of the one in use; the store then reconnects and repeats the
// refused operation, so a rotation costs no request.
func Open(ctx context.Context, database string, uri URIFunc) (*Store, error) {
	u, err := uri(ctx, "")
	if err != nil {
		return nil, fmt.Errorf("database connection string: %w", err)
	}
	c, err := dial(u, database)
	if err != nil {
		return nil, err
	}
	s := &Store{uri: uri}
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
	_, err := retry(ctx, s, func(c *conn) (struct{}, error) { return struct{}{}, c.client.Ping(ctx, readpref.Primary()) })
	if err != nil {
		return conduit.Unavailable(err)
	}
	return nil
}

// index is one index the store needs.
type index struct {
	coll, name string
	keys       bson.D
	unique     bool
}

// indexes serve the unique constraints and the list, feed, tag and
// favorited queries.
var indexes = []index{
	{"users", "email_unique", bson.D{{Key: "email", Value: 1}}, true},
	{"users", "username_unique", bson.D{{Key: "username", Value: 1}}, true},
	{"articles", "slug_unique", bson.D{{Key: "slug", Value: 1}}, true},
	{"articles", "recent", bson.D{{Key: "createdAt", Value: -1}}, false},
	{"articles", "by_author", bson.D{{Key: "authorId", Value: 1}, {Key: "createdAt", Value: -1}}, false},
	{"articles", "by_tag", bson.D{{Key: "tagList", Value: 1}, {Key: "createdAt", Value: -1}}, false},
	{"follows", "by_follower", bson.D{{Key: "follower", Value: 1}}, false},
	{"favorites", "by_user", bson.D{{Key: "userId", Value: 1}}, false},
	{"comments", "by_article", bson.D{{Key: "articleId", Value: 1}}, false},
}

// Migrate creates the missing indexes; it is idempotent. Existing indexes
// are listed first and left alone: re-creating them is a no-op on MongoDB
// and DocumentDB, but crashes FerretDB 1.24's SQLite handler.
func (s *Store) Migrate(ctx context.Context) error {
	existing := map[string]map[string]bool{}
	for _, ix := range indexes {
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
	return nil
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

// classify turns driver errors into domain errors where the client should
// see something other than a 500.
func (s *Store) classify(err error) error {
	var sel topology.ServerSelectionError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, mongo.ErrNoDocuments):
		return conduit.Errorf(conduit.CodeNotFound, "not found")
	case mongo.IsDuplicateKeyError(err), strings.Contains(err.Error(), "UNIQUE constraint failed"):
		// FerretDB 1.x on SQLite reports a unique-index violation by an
		// update as an InternalError carrying SQLite's message, not as the
		// 11000 write error the driver recognises (inserts are fine).
		return &conduit.Error{Code: conduit.CodeConflict, Message: "already exists", Err: err}
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled),
		mongo.IsTimeout(err), mongo.IsNetworkError(err), errors.As(err, &sel),
		errors.Is(err, mongo.ErrClientDisconnected):
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

package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/v2/event"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/readpref"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/auth"
)

// URIFunc returns the connection string to use. rejected is the one the
// database has just refused at authentication ("" the first time): the
// credentials behind it rotated, so the function should find the new ones
// (DocumentDB's managed secret: AWSCURRENT, or AWSPENDING while a rotation
// is between setting the password and promoting the new version).
type URIFunc func(ctx context.Context, rejected string) (string, error)

// conn is one client and its database handles; a credential rotation
// replaces it as a whole.
type conn struct {
	uri    string
	client *mongo.Client
	db     *mongo.Database
	// reads is the database handle for queries that tolerate replica lag
	// (lists, tags); it prefers secondaries where the server has them.
	reads *mongo.Database
	// single is a connection to one server (no replica set): reads and db
	// see the same data.
	single bool
	// retired ends when a rotation replaces this connection: operations
	// still waiting on it (for a server, a pooled connection, a handshake
	// its old password cannot pass) stop waiting and run on the new one.
	retired context.Context
	retire  context.CancelCauseFunc
}

// errRetired is why operations on a replaced connection stop.
var errRetired = errors.New("database connection replaced after a credential rotation")

// atomicConn is the connection in use.
type atomicConn = atomic.Pointer[conn]

func dial(uri, database string, maxPool int, monitor *event.CommandMonitor) (*conn, error) {
	opts := options.Client().ApplyURI(uri).SetMaxPoolSize(uint64(maxPool))
	single := opts.ReplicaSet == nil || *opts.ReplicaSet == ""
	opts = opts.
		SetServerSelectionTimeout(2 * time.Second).
		SetConnectTimeout(2 * time.Second).
		SetRetryWrites(false) // DocumentDB does not support retryable writes
	if monitor != nil {
		opts = opts.SetMonitor(monitor)
	}
	client, err := mongo.Connect(opts)
	if err != nil {
		return nil, fmt.Errorf("connect to database: %w", err)
	}
	c := &conn{uri: uri, client: client, db: client.Database(database), single: single}
	c.retired, c.retire = context.WithCancelCause(context.Background())
	c.reads = c.db
	if !single {
		c.reads = client.Database(database, options.Database().SetReadPreference(readpref.SecondaryPreferred()))
	}
	return c, nil
}

// isAuthError reports whether the database refused the connection's
// credentials. That happens while a new connection is set up, before any
// command is sent, so the operation may be retried whatever it is.
func isAuthError(err error) bool {
	var ae *auth.Error
	if errors.As(err, &ae) {
		return true
	}
	var ce mongo.CommandError
	if errors.As(err, &ce) && ce.Code == 18 { // AuthenticationFailed
		return true
	}
	return err != nil && strings.Contains(err.Error(), "AuthenticationFailed")
}

// rotation replaces the connection after an authentication failure, once
// for all the requests that saw it.
type rotation struct {
	mu   sync.Mutex
	last time.Time
}

// refresh asks for fresh credentials and, when they differ from the ones
// just refused, swaps in a new client; the old one is closed once the
// requests in flight on it are done. Concurrent callers wait for one
// refresh; a refresh at most every second keeps a database that refuses
// everyone from being hammered.
func (s *Store) refresh(ctx context.Context, rejected *conn) error {
	s.rot.mu.Lock()
	defer s.rot.mu.Unlock()
	if cur := s.cur.Load(); cur != rejected {
		return nil // someone else already replaced it
	}
	if wait := time.Second - time.Since(s.rot.last); wait > 0 {
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	s.rot.last = time.Now()
	// The first new credentials may be stale too (a store that slept
	// through a rotation, woken during the next: AWSCURRENT is no longer
	// the password, AWSPENDING is), so each candidate proves itself with a
	// ping before it replaces the connection; a refused one is handed
	// back as rejected, for the next.
	refused := rejected.uri
	var c *conn
	for range 3 {
		uri, err := s.uri(ctx, refused)
		if err != nil {
			return fmt.Errorf("refresh database credentials: %w", err)
		}
		if uri == refused || uri == rejected.uri {
			return errors.New("refresh database credentials: the database refuses the current ones and there are no others")
		}
		if c, err = dial(uri, rejected.db.Name(), s.opts.MaxPool, s.commandMonitor()); err != nil {
			return err
		}
		if err := c.client.Ping(ctx, readpref.Primary()); !isAuthError(err) {
			break // accepted (or another failure, which the operation will report)
		}
		_ = c.client.Disconnect(context.WithoutCancel(ctx))
		c, refused = nil, uri
	}
	if c == nil {
		return errors.New("refresh database credentials: the database refuses every version of the secret")
	}
	s.cur.Store(c)
	rejected.retire(errRetired)
	if s.OnRotate != nil {
		s.OnRotate()
	}
	go func() {
		// Requests still running on the old client finish first.
		time.Sleep(30 * time.Second)
		_ = rejected.client.Disconnect(context.Background())
	}()
	return nil
}

// retry runs f (a read, or a write made safe to send twice: every write
// the store sends is, see the package comment) on the current connection,
// and again:
//   - once on a refreshed connection if the database refused the
//     credentials (refused before anything was sent);
//   - on the new connection if a rotation replaced the one f ran on (a
//     read waiting on the replaced connection stops at once);
//   - with a growing pause while the error is transient (a failover, a
//     network error, no primary selected, the local engine busy), until
//     ctx ends: DocumentDB elects a new primary in about 30 s, the api's
//     requests last 1.5 s, so a request during a failover is answered 503
//     with Retry-After and its client tries again.
func retry[T any](ctx context.Context, s *Store, f func(ctx context.Context, c *conn) (T, error)) (T, error) {
	return run(ctx, s, true, f)
}

// pauses are the waits between attempts; the last repeats.
var pauses = []time.Duration{10 * time.Millisecond, 25 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond,
	200 * time.Millisecond, 400 * time.Millisecond}

// run is retry; read says whether a rotation may cut f short.
func run[T any](ctx context.Context, s *Store, read bool, f func(ctx context.Context, c *conn) (T, error)) (T, error) {
	refreshed := false
	for i := 0; ; i++ {
		c := s.cur.Load()
		v, err := attempt(ctx, c, read, f)
		switch {
		case err == nil:
			return v, nil
		case isAuthError(err) && !refreshed:
			refreshed = true
			if rerr := s.refresh(ctx, c); rerr != nil {
				return v, errors.Join(err, rerr)
			}
			continue
		case !transient(err) || ctx.Err() != nil:
			return v, err
		}
		pause := pauses[min(i, len(pauses)-1)]
		if d, ok := ctx.Deadline(); ok && time.Until(d) < pause {
			return v, err // no time for another attempt: the caller answers 503
		}
		select {
		case <-time.After(pause):
		case <-ctx.Done():
			return v, err
		}
	}
}

// attempt runs f on c; a read's context also ends when c is retired.
func attempt[T any](ctx context.Context, c *conn, read bool, f func(ctx context.Context, c *conn) (T, error)) (T, error) {
	if !read {
		return f(ctx, c)
	}
	opCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stop := context.AfterFunc(c.retired, func() { cancel(errRetired) })
	defer stop()
	return f(opCtx, c)
}

// writing is retry for a write: it also takes a writer slot (MaxWriters),
// and a rotation never cuts it short (it may be on the wire).
func writing[T any](ctx context.Context, s *Store, f func(ctx context.Context, c *conn) (T, error)) (T, error) {
	release, err := s.write(ctx)
	if err != nil {
		var zero T
		return zero, err
	}
	defer release()
	return run(ctx, s, false, f)
}

// commandMonitor reports each command the driver sends to OnCommand, and
// the sizes of commands and replies to OnWire.
func (s *Store) commandMonitor() *event.CommandMonitor {
	return &event.CommandMonitor{
		Started: func(_ context.Context, e *event.CommandStartedEvent) {
			if s.OnCommand != nil {
				s.OnCommand(e.CommandName)
			}
			if s.OnWire != nil {
				s.OnWire(e.CommandName, len(e.Command), 0)
			}
		},
		Succeeded: func(_ context.Context, e *event.CommandSucceededEvent) {
			if s.OnWire != nil {
				s.OnWire(e.CommandName, 0, len(e.Reply))
			}
		},
	}
}

// collection is a collection of the current connection whose operations
// survive a credential rotation (retry).
type collection struct {
	s     *Store
	name  string
	reads bool
}

// coll is the collection name on the primary.
func (s *Store) coll(name string) collection { return collection{s: s, name: name} }

// readColl is the collection name for lag-tolerant reads.
func (s *Store) readColl(name string) collection { return collection{s: s, name: name, reads: true} }

func (c collection) of(cn *conn) *mongo.Collection {
	if c.reads {
		return cn.reads.Collection(c.name)
	}
	return cn.db.Collection(c.name)
}

func (c collection) InsertOne(ctx context.Context, doc any) (*mongo.InsertOneResult, error) {
	return writing(ctx, c.s, func(ctx context.Context, cn *conn) (*mongo.InsertOneResult, error) {
		return c.of(cn).InsertOne(ctx, doc)
	})
}

func (c collection) UpdateOne(ctx context.Context, filter, update any, opts ...options.Lister[options.UpdateOneOptions]) (*mongo.UpdateResult, error) {
	return writing(ctx, c.s, func(ctx context.Context, cn *conn) (*mongo.UpdateResult, error) {
		return c.of(cn).UpdateOne(ctx, filter, update, opts...)
	})
}

func (c collection) UpdateMany(ctx context.Context, filter, update any) (*mongo.UpdateResult, error) {
	return writing(ctx, c.s, func(ctx context.Context, cn *conn) (*mongo.UpdateResult, error) {
		return c.of(cn).UpdateMany(ctx, filter, update)
	})
}

func (c collection) ReplaceOne(ctx context.Context, filter, doc any) (*mongo.UpdateResult, error) {
	return writing(ctx, c.s, func(ctx context.Context, cn *conn) (*mongo.UpdateResult, error) {
		return c.of(cn).ReplaceOne(ctx, filter, doc)
	})
}

func (c collection) BulkWrite(ctx context.Context, models []mongo.WriteModel) (*mongo.BulkWriteResult, error) {
	return writing(ctx, c.s, func(ctx context.Context, cn *conn) (*mongo.BulkWriteResult, error) {
		return c.of(cn).BulkWrite(ctx, models)
	})
}

func (c collection) DeleteOne(ctx context.Context, filter any) (*mongo.DeleteResult, error) {
	return writing(ctx, c.s, func(ctx context.Context, cn *conn) (*mongo.DeleteResult, error) {
		return c.of(cn).DeleteOne(ctx, filter)
	})
}

func (c collection) DeleteMany(ctx context.Context, filter any) (*mongo.DeleteResult, error) {
	return writing(ctx, c.s, func(ctx context.Context, cn *conn) (*mongo.DeleteResult, error) {
		return c.of(cn).DeleteMany(ctx, filter)
	})
}

// FindOne decodes the one document matching filter into dst.
func (c collection) FindOne(ctx context.Context, filter, dst any, opts ...options.Lister[options.FindOneOptions]) error {
	_, err := retry(ctx, c.s, func(ctx context.Context, cn *conn) (struct{}, error) {
		return struct{}{}, c.of(cn).FindOne(ctx, filter, opts...).Decode(dst)
	})
	return err
}

// FindOneAndUpdate updates the document matching filter and decodes it into dst.
func (c collection) FindOneAndUpdate(ctx context.Context, filter, update, dst any, opts ...options.Lister[options.FindOneAndUpdateOptions]) error {
	_, err := writing(ctx, c.s, func(ctx context.Context, cn *conn) (struct{}, error) {
		return struct{}{}, c.of(cn).FindOneAndUpdate(ctx, filter, update, opts...).Decode(dst)
	})
	return err
}

func (c collection) Find(ctx context.Context, filter any, opts ...options.Lister[options.FindOptions]) (*mongo.Cursor, error) {
	return retry(ctx, c.s, func(ctx context.Context, cn *conn) (*mongo.Cursor, error) { return c.of(cn).Find(ctx, filter, opts...) })
}

func (c collection) CountDocuments(ctx context.Context, filter any, opts ...options.Lister[options.CountOptions]) (int64, error) {
	return retry(ctx, c.s, func(ctx context.Context, cn *conn) (int64, error) {
		return c.of(cn).CountDocuments(ctx, filter, opts...)
	})
}

func (c collection) EstimatedDocumentCount(ctx context.Context) (int64, error) {
	return retry(ctx, c.s, func(ctx context.Context, cn *conn) (int64, error) { return c.of(cn).EstimatedDocumentCount(ctx) })
}

func (c collection) Indexes() mongo.IndexView { return c.of(c.s.cur.Load()).Indexes() }

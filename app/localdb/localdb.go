// Package localdb runs an embedded MongoDB-compatible database (FerretDB on
// SQLite) for local mode and tests: real MongoDB wire protocol, no server to
// install.
package localdb

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/FerretDB/FerretDB/ferretdb"
)

// DB is a running embedded database.
type DB struct {
	// URI is the mongodb:// URI clients connect to.
	URI    string
	cancel context.CancelFunc
	done   chan error
}

// Start runs FerretDB listening on addr (host:port, port 0 for any) with
// its SQLite files under dir, which is created if missing.
func Start(ctx context.Context, addr, dir string, log *slog.Logger) (*DB, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("database directory: %w", err)
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return nil, fmt.Errorf("create database directory: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// FerretDB logs wire messages (documents: emails, password hashes) at
	// debug level and start-up chatter at warn: only its errors are kept,
	// whatever conduit's own level.
	log = slog.New(minLevel{log.Handler(), slog.LevelError})
	// WAL with synchronous=NORMAL: a commit is not fsynced, only the WAL
	// at checkpoints. A crash of conduit loses nothing it acknowledged; a
	// crash of the machine may lose the last commits. That is local mode's
	// trade for writes an order of magnitude faster (DocumentDB on AWS
	// keeps its own durability).
	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: addr},
		Handler:   "sqlite",
		SQLiteURL: "file:" + filepath.ToSlash(abs) + "/?_pragma=journal_mode(wal)&_pragma=synchronous(normal)",
		Logger:    log,
	})
	if err != nil {
		return nil, fmt.Errorf("start embedded database: %w", err)
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	db := &DB{cancel: cancel, done: make(chan error, 1)}
	go func() { db.done <- f.Run(runCtx) }()
	db.URI = f.MongoDBURI()
	return db, nil
}

// Stop shuts the database down and waits for it, up to ctx.
func (db *DB) Stop(ctx context.Context) error {
	db.cancel()
	select {
	case err := <-db.done:
		if err != nil && !errors.Is(err, context.Canceled) {
			return fmt.Errorf("embedded database: %w", err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("stop embedded database: %w", ctx.Err())
	}
}

// minLevel drops records below level.
type minLevel struct {
	slog.Handler
	level slog.Level
}

func (h minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.level && h.Handler.Enabled(ctx, l)
}

func (h minLevel) WithAttrs(a []slog.Attr) slog.Handler {
	return minLevel{h.Handler.WithAttrs(a), h.level}
}
func (h minLevel) WithGroup(n string) slog.Handler { return minLevel{h.Handler.WithGroup(n), h.level} }

// Package localdb runs an embedded MongoDB-compatible database (FerretDB on
// SQLite) for local mode and tests: real MongoDB wire protocol, no server to
// install.
package localdb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
	_ "modernc.org/sqlite" // the SQLite FerretDB itself links
)

// DB is a running embedded database.
type DB struct {
	// URI is the mongodb:// URI clients connect to.
	URI     string
	cancel  context.CancelFunc
	done    chan error
	dir     string // the data directory
	socks   string // where the sockets are: dir, or a short directory of their own (socketDir)
	ids     *idIndexer
	planner *planner
	// bg are the indexer's and the planner's goroutines: Stop waits for
	// them too, so that none of their SQLite connections (the indexer
	// writes) outlives the database and locks the files for the next start.
	bg sync.WaitGroup
}

// SocketName is the embedded database's Unix socket, in the data directory.
const SocketName = "mongodb.sock"

// Start runs FerretDB with its SQLite files under dir, which is created
// (or narrowed) to 0700. With addr "" it listens on a Unix socket inside
// dir — only this user can reach it, and it has no login — which is what
// local mode uses; addr host:port (port 0 for any) listens on TCP
// instead, reachable by every local process: tests and the twin's
// database stand-in ask for it explicitly.
func Start(ctx context.Context, addr, dir string, log *slog.Logger) (*DB, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("database directory: %w", err)
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return nil, fmt.Errorf("create database directory: %w", err)
	}
	if err := os.Chmod(abs, 0o700); err != nil {
		return nil, fmt.Errorf("restrict database directory: %w", err)
	}
	// FerretDB listens on a socket of its own in dir; clients reach it
	// through the planner (see planner), on the socket or address asked
	// for.
	socks, err := socketDir(abs)
	if err != nil {
		return nil, err
	}
	inner := filepath.Join(socks, innerSocket)
	_ = os.Remove(inner) // a previous run's
	var ln net.Listener
	if addr == "" {
		sock := filepath.Join(socks, SocketName)
		_ = os.Remove(sock)
		ln, err = net.Listen("unix", sock)
	} else {
		ln, err = net.Listen("tcp", addr)
	}
	if err != nil {
		removeSocketDir(abs, socks)
		return nil, fmt.Errorf("listen for the embedded database: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// FerretDB logs wire messages (documents: emails, password hashes) at
	// debug level and start-up chatter at warn: only its errors are kept,
	// whatever conduit's own level.
	flog := slog.New(minLevel{log.Handler(), slog.LevelError})
	// WAL with synchronous=NORMAL: a commit is not fsynced, only the WAL
	// at checkpoints. A crash of conduit loses nothing it acknowledged; a
	// crash of the machine may lose the last commits. That is local mode's
	// trade for writes an order of magnitude faster (DocumentDB on AWS
	// keeps its own durability).
	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{Unix: inner},
		Handler:   "sqlite",
		SQLiteURL: "file:" + filepath.ToSlash(abs) + "/?_pragma=journal_mode(wal)&_pragma=synchronous(normal)",
		Logger:    flog,
	})
	if err != nil {
		_ = ln.Close()
		removeSocketDir(abs, socks)
		return nil, fmt.Errorf("start embedded database: %w", err)
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	db := &DB{cancel: cancel, done: make(chan error, 1), dir: abs, socks: socks, ids: &idIndexer{dir: abs, log: flog, dbs: map[string]*sql.DB{}}}
	db.planner = newPlanner(abs, inner, ln, flog)
	db.planner.mirrored = db.ids.sweep
	go func() { db.done <- f.Run(runCtx) }()
	db.bg.Go(func() { db.ids.run(runCtx) })
	db.bg.Go(func() { db.planner.serve(runCtx) })
	if addr == "" {
		// The driver takes a socket path percent-encoded as the host.
		db.URI = "mongodb://" + url.QueryEscape(ln.Addr().String()) + "/"
	} else {
		db.URI = "mongodb://" + ln.Addr().String() + "/"
	}
	return db, nil
}

// innerSocket is FerretDB's own socket, in the data directory: only the
// planner connects to it.
const innerSocket = "ferretdb.sock"

// maxSocketPath is the longest socket path kept in the data directory: a
// Unix socket's path has 108 bytes on Linux (104 on the BSDs), and a bind
// to a longer one fails.
const maxSocketPath = 100

// socketDir is where the sockets go: the data directory, or, when its
// path is too long for a socket's, a new 0700 directory of their own in
// the system's temporary directory (in /tmp when even that is too long).
func socketDir(dataDir string) (string, error) {
	longest := max(len(innerSocket), len(SocketName))
	if len(dataDir)+1+longest <= maxSocketPath {
		return dataDir, nil
	}
	for _, parent := range []string{os.TempDir(), "/tmp"} {
		if len(parent)+len("/conduit-db-0123456789/")+longest > maxSocketPath {
			continue
		}
		dir, err := os.MkdirTemp(parent, "conduit-db-")
		if err == nil {
			return dir, nil
		}
	}
	return "", fmt.Errorf("the database directory %s is too long a path for its sockets (%d bytes at most), and no short temporary directory could be made", dataDir, maxSocketPath)
}

// removeSocketDir removes socks when socketDir made it for the sockets.
func removeSocketDir(dataDir, socks string) {
	if socks != dataDir {
		_ = os.RemoveAll(socks)
	}
}

// DirectURI reaches FerretDB as shipped, past the planner (its Unix
// socket, only this user's): what the planner saves is measured against
// it (BenchmarkBrowsingTheLocalEngine in app/store).
func (db *DB) DirectURI() string {
	return "mongodb://" + url.QueryEscape(filepath.Join(db.socks, innerSocket)) + "/"
}

// Planned and Relayed count the queries the planner answered from SQLite
// and the commands it relayed to FerretDB.
func (db *DB) Planned() int64 { return db.planner.answered.Load() }
func (db *DB) Relayed() int64 { return db.planner.relayed.Load() }

// IndexIDs gives every collection there is now the index that serves
// FerretDB's own lookups by _id (see idIndexer). Start does this every
// idSweep in the background; tests and benchmarks call it to not wait.
func (db *DB) IndexIDs(ctx context.Context) error { return db.ids.sweep(ctx) }

// idSweep is how often new collections get their _id index.
const idSweep = 2 * time.Second

// idIndexer works around FerretDB 1.24's SQLite backend finding documents
// by _id with a full table scan. It stores each collection as a table of
// JSON documents with a unique index on the expression
// _ferretdb_sjson->"_id", but its queries and updates filter on
// _ferretdb_sjson->'$._id': the same value, a different expression, and
// SQLite uses an expression index only for the expression it was built on.
// Every find, update and delete by _id therefore read the whole table
// (28 ms per lookup at 5,000 articles, growing with the data; measured in
// docs/benchmarks.md). The indexer adds, to each table FerretDB creates,
// a plain SQLite index on exactly the expression FerretDB queries. FerretDB
// does not know of it and needs not: it lives and dies with the table, and
// only SQLite's query planner uses it.
type idIndexer struct {
	dir string
	log *slog.Logger
	mu  sync.Mutex
	dbs map[string]*sql.DB // by file
}

func (x *idIndexer) run(ctx context.Context) {
	defer x.close()
	t := time.NewTicker(idSweep)
	defer t.Stop()
	for {
		if err := x.sweep(ctx); err != nil && ctx.Err() == nil {
			x.log.ErrorContext(ctx, "index _id lookups", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// idExpr is FerretDB's metadata.IDColumn: the expression its SQL filters
// documents by _id on.
const idExpr = `_ferretdb_sjson->'$._id'`

// idIndexSuffix names the index: <table>__id_lookup.
const idIndexSuffix = "__id_lookup"

func (x *idIndexer) sweep(ctx context.Context) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	files, err := filepath.Glob(filepath.Join(x.dir, "*.sqlite"))
	if err != nil {
		return err
	}
	for _, f := range files {
		db := x.dbs[f]
		if db == nil {
			if db, err = sql.Open("sqlite", "file:"+filepath.ToSlash(f)+"?_pragma=busy_timeout(5000)"); err != nil {
				return fmt.Errorf("open %s: %w", f, err)
			}
			db.SetMaxOpenConns(1)
			x.dbs[f] = db
		}
		stmts, err := missingIndexes(ctx, db)
		if err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		for _, q := range stmts {
			if _, err := db.ExecContext(ctx, q); err != nil {
				return fmt.Errorf("%s: %w", q, err)
			}
		}
	}
	return nil
}

// missingIndexes are the CREATE INDEX statements the tables FerretDB keeps
// documents in lack: the _id lookup index, and the planner's mirrors of
// their MongoDB indexes.
func missingIndexes(ctx context.Context, db *sql.DB) ([]string, error) {
	have := map[string]bool{}
	rows, err := db.QueryContext(ctx, `SELECT name FROM sqlite_master WHERE type = 'index'`)
	if err != nil {
		return nil, fmt.Errorf("list indexes: %w", err)
	}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			rows.Close()
			return nil, err
		}
		have[n] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows, err = db.QueryContext(ctx, `SELECT table_name, settings FROM _ferretdb_collections`)
	if err != nil {
		return nil, fmt.Errorf("list collections: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var table, settings string
		if err := rows.Scan(&table, &settings); err != nil {
			return nil, err
		}
		if !have[table+idIndexSuffix] {
			out = append(out, fmt.Sprintf(`CREATE INDEX IF NOT EXISTS %q ON %q (%s)`, table+idIndexSuffix, table, idExpr))
		}
		mirrors, err := mirrorStatements(table, settings, have)
		if err != nil {
			return nil, err
		}
		out = append(out, mirrors...)
	}
	return out, rows.Err()
}

func (x *idIndexer) close() {
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, db := range x.dbs {
		_ = db.Close()
	}
	x.dbs = map[string]*sql.DB{}
}

// Stop shuts the database down and waits for it, up to ctx.
func (db *DB) Stop(ctx context.Context) error {
	db.cancel()
	defer removeSocketDir(db.dir, db.socks)
	bg := make(chan struct{})
	go func() { db.bg.Wait(); close(bg) }()
	var runErr error
	select {
	case runErr = <-db.done:
	case <-ctx.Done():
		return fmt.Errorf("stop embedded database: %w", ctx.Err())
	}
	select {
	case <-bg:
	case <-ctx.Done():
		return fmt.Errorf("stop embedded database: %w", ctx.Err())
	}
	if runErr != nil && !errors.Is(runErr, context.Canceled) {
		return fmt.Errorf("embedded database: %w", runErr)
	}
	return nil
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

package localdb

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"webstack/internal/mongowire"
)

// planner stands between the clients and FerretDB and answers, from
// SQLite, the queries FerretDB 1.24 would answer by reading a whole
// collection: FerretDB pushes down only {_id: v} and filters everything
// else in Go, whatever indexes the collection has. The planner compiles
// the simple shapes the store sends — equality and $in on top-level
// fields, a sort on top-level fields, skip and limit, a projection, and
// the count pipeline of countDocuments — into SQL over indexes that mirror
// the collection's MongoDB indexes (see mirrors), reads the matching
// documents straight from SQLite and decodes them (see decodeSJSON).
// Everything else, every write and anything it cannot answer exactly, is
// relayed to FerretDB unchanged. So the local engine serves the store's
// queries from the same indexes DocumentDB does, and the store is not
// shaped around the local engine.
//
// Exactness: a field is compared as a scalar only where no document holds
// an array or object in it (checked through an index on the field's JSON
// type), and then only values whose stored BSON type is the one asked for
// match; an array field is matched element by element; every document read
// is checked against the filter again, and a sort's order is checked on
// what is returned. Where a check fails the query goes to FerretDB.
type planner struct {
	dir      string
	upstream string // FerretDB's own socket
	log      *slog.Logger
	ln       net.Listener

	mu     sync.Mutex
	dbs    map[string]*sql.DB    // by database name
	tables map[string]*tableInfo // by database "." collection
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup

	// writes are held while a write that FerretDB applies as
	// read-then-write (update, delete, findAndModify) is rewritten, sent
	// and answered: the locks of the documents it names, so no other write
	// of them comes between its read and its write (see docLocks).
	writes *docLocks

	answered, relayed atomic.Int64
	// mirrored is called after a createIndexes passed through, to make
	// the mirrors before the client's next command.
	mirrored func(ctx context.Context) error
}

// tableInfo is what the planner knows of one collection's table.
type tableInfo struct {
	name  string
	typed map[string]bool // fields with a JSON-type index
	at    time.Time
}

// tableTTL is how long what the planner knows of a table is trusted: the
// indexes it relies on change only when the store migrates.
const tableTTL = 2 * time.Second

// maxRows is the most documents the planner answers with in one reply;
// bigger results go to FerretDB, which returns them in batches.
const maxRows = 5000

func newPlanner(dir, upstream string, ln net.Listener, log *slog.Logger) *planner {
	return &planner{dir: dir, upstream: upstream, ln: ln, log: log,
		dbs: map[string]*sql.DB{}, tables: map[string]*tableInfo{}, conns: map[net.Conn]struct{}{}, writes: newDocLocks()}
}

func (p *planner) serve(ctx context.Context) {
	defer func() {
		p.wg.Wait()
		// Sessions that ran past the first close may have opened more.
		p.mu.Lock()
		for name, db := range p.dbs {
			_ = db.Close()
			delete(p.dbs, name)
		}
		p.mu.Unlock()
	}()
	go func() {
		<-ctx.Done()
		_ = p.ln.Close()
		p.mu.Lock()
		for c := range p.conns {
			_ = c.Close()
		}
		for _, db := range p.dbs {
			_ = db.Close()
		}
		p.mu.Unlock()
	}()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.session(ctx, c)
		}()
	}
}

func (p *planner) track(c net.Conn, on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if on {
		p.conns[c] = struct{}{}
	} else {
		delete(p.conns, c)
	}
}

// session serves one client connection, with its own connection to
// FerretDB for what is relayed.
func (p *planner) session(ctx context.Context, client net.Conn) {
	p.track(client, true)
	defer p.track(client, false)
	defer client.Close()
	up, err := net.Dial("unix", p.upstream)
	if err != nil {
		p.log.ErrorContext(ctx, "connect to the embedded database", "error", err)
		return
	}
	p.track(up, true)
	defer p.track(up, false)
	defer up.Close()
	for {
		msg, err := mongowire.Read(client)
		if err != nil {
			return
		}
		if !p.exchange(ctx, client, up, msg) {
			return
		}
	}
}

// readThenWrite are the commands FerretDB applies by reading, then writing.
var readThenWrite = []string{"update", "delete", "findAndModify"}

// exchange answers one client message: from SQLite, rewritten, or relayed
// to FerretDB with its replies relayed back. It reports whether the
// session goes on.
func (p *planner) exchange(ctx context.Context, client, up net.Conn, msg []byte) bool {
	body, isMsg := mongowire.Body(msg)
	if isMsg {
		defer p.writes.lock(msg, body)()
	}
	if isMsg && !mongowire.MoreToCome(msg) {
		if reply, ok, err := projectFindAndModify(up, body); err != nil {
			return false
		} else if ok {
			p.relayed.Add(1)
			_, err := client.Write(mongowire.Msg(mongowire.RequestID(msg), reply))
			return err == nil
		}
		reply, ok := p.answer(ctx, body)
		if !ok {
			var send bson.Raw
			var err error
			if send, reply, ok = p.rewriteWrite(ctx, msg, body); ok && send != nil {
				if reply, err = sendRewritten(up, send); err != nil {
					return false
				}
			}
		}
		if ok {
			p.answered.Add(1)
			_, err := client.Write(mongowire.Msg(mongowire.RequestID(msg), reply))
			return err == nil
		}
	}
	p.relayed.Add(1)
	if _, err := up.Write(msg); err != nil {
		return false
	}
	if mongowire.MoreToCome(msg) {
		return true
	}
	for {
		reply, err := mongowire.Read(up)
		if err != nil {
			return false
		}
		if isMsg && mongowire.Command(body) == "createIndexes" {
			// The mirrors are made before the client hears that the
			// index exists, so its next query can use them.
			p.mirror(ctx)
		}
		if _, err := client.Write(reply); err != nil {
			return false
		}
		if !mongowire.MoreToCome(reply) {
			return true
		}
	}
}

// mirror makes the mirrors of new indexes, then forgets what it knew.
func (p *planner) mirror(ctx context.Context) {
	if p.mirrored != nil {
		mctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := p.mirrored(mctx); err != nil {
			p.log.ErrorContext(ctx, "mirror new indexes", "error", err)
		}
	}
	p.forget()
}

// forget drops what the planner knows of tables.
func (p *planner) forget() {
	p.mu.Lock()
	defer p.mu.Unlock()
	clear(p.tables)
}

// errFallback is why a query goes to FerretDB: the planner cannot answer
// it exactly. Not an error anyone sees.
var errFallback = errors.New("not planned")

// answer answers a command from SQLite, or says it cannot.
func (p *planner) answer(ctx context.Context, body bson.Raw) (bson.Raw, bool) {
	var reply bson.D
	var err error
	switch mongowire.Command(body) {
	case "find":
		reply, err = p.find(ctx, body)
	case "aggregate":
		reply, err = p.count(ctx, body)
	case "count":
		reply, err = p.countCommand(ctx, body)
	default:
		return nil, false
	}
	if err != nil {
		if !errors.Is(err, errFallback) {
			p.log.DebugContext(ctx, "query relayed to FerretDB", "error", err)
		}
		return nil, false
	}
	raw, err := bson.Marshal(reply)
	if err != nil || len(raw) > 16<<20 {
		return nil, false
	}
	return raw, true
}

// fieldName is a top-level field the planner puts in SQL paths.
var fieldName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// query is a find (or the $match of a count) compiled to SQL.
type query struct {
	db, coll    string
	sqldb       *sql.DB
	table       *tableInfo
	where       []string
	args        []any
	order       []string
	sortKeys    bson.D
	filter      bson.Raw
	skip, limit int64
	batch       int64 // batchSize (0: none given)
	single      bool  // singleBatch
	projection  bson.Raw
}

// commonKeys are command fields that do not change a query's answer.
var commonKeys = []string{"$db", "lsid", "$clusterTime", "$readPreference", "readConcern", "maxTimeMS", "comment", "txnNumber"}

func (p *planner) find(ctx context.Context, body bson.Raw) (bson.D, error) {
	q := query{}
	els, err := body.Elements()
	if err != nil {
		return nil, err
	}
	for _, e := range els {
		v := e.Value()
		switch k := e.Key(); k {
		case "find":
			q.coll, _ = v.StringValueOK()
		case "$db":
			q.db, _ = v.StringValueOK()
		case "filter":
			q.filter, _ = v.DocumentOK()
		case "sort":
			d, ok := v.DocumentOK()
			if !ok {
				return nil, errFallback
			}
			if err := bson.Unmarshal(d, &q.sortKeys); err != nil {
				return nil, err
			}
		case "projection":
			q.projection, _ = v.DocumentOK()
		case "skip":
			q.skip, _ = v.AsInt64OK()
		case "limit":
			q.limit, _ = v.AsInt64OK()
			if q.limit < 0 {
				q.limit = -q.limit
			}
		case "batchSize":
			q.batch, _ = v.AsInt64OK()
		case "singleBatch":
			q.single, _ = v.BooleanOK()
		default:
			if !slices.Contains(commonKeys, k) {
				return nil, errFallback
			}
		}
	}
	if err := p.compile(ctx, &q); err != nil {
		return nil, err
	}
	docs, err := p.read(ctx, &q)
	if err != nil {
		return nil, err
	}
	// The first batch is what DocumentDB's would be: batchSize documents,
	// or 101 without one. A single batch ends there (what does not fit is
	// not sent, as on the server); a query with more to send than its
	// first batch goes to FerretDB, which keeps a cursor for its getMore.
	first := q.batch
	if first <= 0 {
		first = 101
	}
	if int64(len(docs)) > first {
		if !q.single {
			return nil, errFallback
		}
		docs = docs[:first]
	}
	batch := make(bson.A, len(docs))
	for i, d := range docs {
		batch[i] = d
	}
	return bson.D{{Key: "cursor", Value: bson.D{{Key: "firstBatch", Value: batch}, {Key: "id", Value: int64(0)},
		{Key: "ns", Value: q.db + "." + q.coll}}}, {Key: "ok", Value: 1.0}}, nil
}

// count answers countDocuments' pipeline: $match, then maybe $skip and
// $limit, then {$group: {_id: 1, n: {$sum: 1}}}.
func (p *planner) count(ctx context.Context, body bson.Raw) (bson.D, error) {
	q := query{}
	var pipeline bson.RawArray
	els, err := body.Elements()
	if err != nil {
		return nil, err
	}
	for _, e := range els {
		v := e.Value()
		switch k := e.Key(); k {
		case "aggregate":
			q.coll, _ = v.StringValueOK()
		case "$db":
			q.db, _ = v.StringValueOK()
		case "pipeline":
			pipeline, _ = v.ArrayOK()
		case "cursor":
		default:
			if !slices.Contains(commonKeys, k) {
				return nil, errFallback
			}
		}
	}
	stages, err := pipeline.Values()
	if err != nil || len(stages) < 2 {
		return nil, errFallback
	}
	for i, st := range stages {
		d, ok := st.DocumentOK()
		if !ok {
			return nil, errFallback
		}
		name := mongowire.Command(d)
		v := d.Lookup(name)
		switch {
		case i == 0 && name == "$match":
			q.filter, ok = v.DocumentOK()
		case i == len(stages)-1 && name == "$group":
			ok = isCountGroup(v)
		case name == "$skip":
			q.skip, ok = v.AsInt64OK()
		case name == "$limit":
			q.limit, ok = v.AsInt64OK()
		default:
			ok = false
		}
		if !ok {
			return nil, errFallback
		}
	}
	if err := p.compile(ctx, &q); err != nil {
		return nil, err
	}
	inner := fmt.Sprintf(`SELECT 1 FROM %q%s`, q.table.name, whereSQL(q.where))
	args := slices.Clone(q.args)
	if q.limit > 0 || q.skip > 0 {
		inner += ` LIMIT ? OFFSET ?`
		args = append(args, limitOr(q.limit, -1), q.skip)
	}
	var n int64
	if err := q.sqldb.QueryRowContext(ctx, `SELECT COUNT(*) FROM (`+inner+`)`, args...).Scan(&n); err != nil {
		return nil, err
	}
	batch := bson.A{}
	if n > 0 {
		batch = append(batch, bson.D{{Key: "_id", Value: int32(1)}, {Key: "n", Value: int32(n)}})
	}
	return bson.D{{Key: "cursor", Value: bson.D{{Key: "firstBatch", Value: batch}, {Key: "id", Value: int64(0)},
		{Key: "ns", Value: q.db + "." + q.coll}}}, {Key: "ok", Value: 1.0}}, nil
}

// countCommand answers the count command (estimatedDocumentCount sends it
// without a query).
func (p *planner) countCommand(ctx context.Context, body bson.Raw) (bson.D, error) {
	q := query{}
	els, err := body.Elements()
	if err != nil {
		return nil, err
	}
	for _, e := range els {
		v := e.Value()
		switch k := e.Key(); k {
		case "count":
			q.coll, _ = v.StringValueOK()
		case "$db":
			q.db, _ = v.StringValueOK()
		case "query":
			q.filter, _ = v.DocumentOK()
		default:
			if !slices.Contains(commonKeys, k) {
				return nil, errFallback
			}
		}
	}
	if err := p.compile(ctx, &q); err != nil {
		return nil, err
	}
	var n int64
	if err := q.sqldb.QueryRowContext(ctx, fmt.Sprintf(`SELECT COUNT(*) FROM %q%s`, q.table.name, whereSQL(q.where)), q.args...).Scan(&n); err != nil {
		return nil, err
	}
	return bson.D{{Key: "n", Value: int32(n)}, {Key: "ok", Value: 1.0}}, nil
}

// isCountGroup reports {_id: 1, n: {$sum: 1}}.
func isCountGroup(v bson.RawValue) bool {
	d, ok := v.DocumentOK()
	if !ok {
		return false
	}
	els, err := d.Elements()
	if err != nil || len(els) != 2 || els[0].Key() != "_id" || els[1].Key() != "n" {
		return false
	}
	sum, ok := els[1].Value().DocumentOK()
	if !ok {
		return false
	}
	one, ok := sum.Lookup("$sum").AsInt64OK()
	return ok && one == 1
}

func limitOr(n, none int64) int64 {
	if n > 0 {
		return n
	}
	return none
}

func whereSQL(where []string) string {
	if len(where) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(where, " AND ")
}

// compile turns q's filter and sort into SQL over q's table.
func (p *planner) compile(ctx context.Context, q *query) error {
	if q.db == "" || q.coll == "" || q.skip < 0 {
		return errFallback
	}
	db, t, err := p.table(ctx, q.db, q.coll)
	if err != nil {
		return err
	}
	q.sqldb, q.table = db, t
	els, err := q.filter.Elements()
	if err != nil {
		return errFallback
	}
	for _, e := range els {
		field := e.Key()
		if !fieldName.MatchString(field) {
			return errFallback
		}
		values, ok := stringValues(e.Value())
		if !ok {
			return errFallback
		}
		kind, err := p.fieldKind(ctx, q, field)
		if err != nil {
			return err
		}
		marks := strings.TrimSuffix(strings.Repeat("?, ", len(values)), ", ")
		switch kind {
		case scalar:
			// The stored type must be a string too: sjson writes objectIds
			// as hex strings.
			q.where = append(q.where, fmt.Sprintf(`_ferretdb_sjson->>'$.%s' IN (%s) AND _ferretdb_sjson->>'$."$s".p.%s.t' = 'string'`, field, marks, field))
		case multikey:
			q.where = append(q.where, fmt.Sprintf(`EXISTS (SELECT 1 FROM json_each(%q._ferretdb_sjson, '$.%s') AS e WHERE e.type = 'text' AND e.value IN (%s))`, t.name, field, marks))
		default:
			return errFallback
		}
		for _, v := range values {
			q.args = append(q.args, v)
		}
	}
	for _, k := range q.sortKeys {
		if !fieldName.MatchString(k.Key) {
			return errFallback
		}
		dir, ok := direction(k.Value)
		if !ok {
			return errFallback
		}
		if kind, err := p.fieldKind(ctx, q, k.Key); err != nil || kind != scalar {
			return errFallback
		}
		o := fmt.Sprintf(`_ferretdb_sjson->>'$.%s'`, k.Key)
		if dir < 0 {
			o += " DESC"
		}
		q.order = append(q.order, o)
	}
	return nil
}

// direction reads a sort key's 1 or -1.
func direction(v any) (int, bool) {
	var n int64
	switch x := v.(type) {
	case int32:
		n = int64(x)
	case int64:
		n = x
	case int:
		n = int64(x)
	case float64:
		n = int64(x)
	default:
		return 0, false
	}
	switch n {
	case 1, -1:
		return int(n), true
	}
	return 0, false
}

// stringValues reads an equality with a string or a $in of strings.
func stringValues(v bson.RawValue) ([]string, bool) {
	if s, ok := v.StringValueOK(); ok {
		return []string{s}, true
	}
	d, ok := v.DocumentOK()
	if !ok {
		return nil, false
	}
	els, err := d.Elements()
	if err != nil || len(els) != 1 {
		return nil, false
	}
	switch els[0].Key() {
	case "$eq":
		s, ok := els[0].Value().StringValueOK()
		return []string{s}, ok
	case "$in":
		arr, ok := els[0].Value().ArrayOK()
		if !ok {
			return nil, false
		}
		vals, err := arr.Values()
		if err != nil || len(vals) == 0 || len(vals) > 500 {
			return nil, false
		}
		out := make([]string, len(vals))
		for i, x := range vals {
			if out[i], ok = x.StringValueOK(); !ok {
				return nil, false
			}
		}
		return out, true
	}
	return nil, false
}

type fieldKind int

const (
	unknownKind fieldKind = iota
	scalar                // no document holds an array or object there
	multikey              // some hold arrays, none objects
)

// fieldKind says how a field may be compared: through the index on its
// JSON type, which tells at once whether any document holds an array or
// an object there. A field without that index is not planned.
func (p *planner) fieldKind(ctx context.Context, q *query, field string) (fieldKind, error) {
	if field == "_id" {
		return scalar, nil // MongoDB refuses arrays as _id
	}
	if !q.table.typed[field] {
		return unknownKind, errFallback
	}
	rows, err := q.sqldb.QueryContext(ctx, fmt.Sprintf(`SELECT DISTINCT json_type(_ferretdb_sjson, '$.%s') AS t FROM %q WHERE t IN ('array', 'object')`,
		field, q.table.name))
	if err != nil {
		return unknownKind, err
	}
	defer rows.Close()
	kind := scalar
	for rows.Next() {
		var t string
		if err := rows.Scan(&t); err != nil {
			return unknownKind, err
		}
		if t == "object" {
			return unknownKind, errFallback
		}
		kind = multikey
	}
	return kind, rows.Err()
}

// read runs q and returns its documents, projected.
func (p *planner) read(ctx context.Context, q *query) ([]bson.D, error) {
	stmt := fmt.Sprintf(`SELECT _ferretdb_sjson FROM %q%s`, q.table.name, whereSQL(q.where))
	if len(q.order) > 0 {
		stmt += " ORDER BY " + strings.Join(q.order, ", ")
	}
	stmt += ` LIMIT ? OFFSET ?`
	limit := q.limit
	if limit <= 0 || limit > maxRows {
		limit = maxRows + 1
	}
	rows, err := q.sqldb.QueryContext(ctx, stmt, append(slices.Clone(q.args), limit, q.skip)...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var docs []bson.D
	for rows.Next() {
		var raw []byte
		if err := rows.Scan(&raw); err != nil {
			return nil, err
		}
		d, err := decodeSJSON(raw)
		if err != nil {
			return nil, err
		}
		docs = append(docs, d)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(docs) > maxRows {
		return nil, errFallback
	}
	for i, d := range docs {
		if !matches(d, q.filter) {
			return nil, fmt.Errorf("%w: a document read does not match the filter", errFallback)
		}
		if i > 0 && compareBy(docs[i-1], d, q.sortKeys) > 0 {
			return nil, fmt.Errorf("%w: SQLite's order is not the sort's", errFallback)
		}
	}
	out := make([]bson.D, len(docs))
	for i, d := range docs {
		pd, err := project(d, q.projection)
		if err != nil {
			return nil, err
		}
		out[i] = pd
	}
	return out, nil
}

// matches checks d against a filter the planner compiled (equalities and
// $in of strings on top-level fields; arrays match by element).
func matches(d bson.D, filter bson.Raw) bool {
	els, _ := filter.Elements()
	for _, e := range els {
		want, _ := stringValues(e.Value())
		got, ok := lookup(d, e.Key())
		if !ok {
			return false
		}
		hit := false
		switch g := got.(type) {
		case string:
			hit = slices.Contains(want, g)
		case bson.A:
			for _, x := range g {
				if s, ok := x.(string); ok && slices.Contains(want, s) {
					hit = true
				}
			}
		}
		if !hit {
			return false
		}
	}
	return true
}

func lookup(d bson.D, key string) (any, bool) {
	for _, e := range d {
		if e.Key == key {
			return e.Value, true
		}
	}
	return nil, false
}

// compareBy orders a and b by the sort keys, as MongoDB orders the values
// the planner sorts on (missing first, then numbers, strings, dates).
func compareBy(a, b bson.D, keys bson.D) int {
	for _, k := range keys {
		dir, _ := direction(k.Value)
		av, _ := lookup(a, k.Key)
		bv, _ := lookup(b, k.Key)
		if c := compareValues(av, bv); c != 0 {
			return c * dir
		}
	}
	return 0
}

func compareValues(a, b any) int {
	ra, rb := rank(a), rank(b)
	if ra != rb {
		return cmpInt(ra, rb)
	}
	switch x := a.(type) {
	case string:
		return strings.Compare(x, b.(string))
	case bson.DateTime:
		return cmpInt(int64(x), int64(b.(bson.DateTime)))
	case bool:
		return cmpInt(boolInt(x), boolInt(b.(bool)))
	}
	fa, fb := number(a), number(b)
	switch {
	case fa < fb:
		return -1
	case fa > fb:
		return 1
	}
	return 0
}

// rank is a value's place in MongoDB's order of types, for the types the
// planner sorts (others rank last and compare equal).
func rank(v any) int {
	switch v.(type) {
	case nil:
		return 0
	case int32, int64, float64:
		return 1
	case string:
		return 2
	case bool:
		return 8
	case bson.DateTime:
		return 9
	}
	return 99
}

func number(v any) float64 {
	switch x := v.(type) {
	case int32:
		return float64(x)
	case int64:
		return float64(x)
	case float64:
		return x
	}
	return 0
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

func cmpInt[T int | int64](a, b T) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// project applies a projection of top-level fields: all inclusions or all
// exclusions (_id may be excluded from an inclusion).
func project(d bson.D, projection bson.Raw) (bson.D, error) {
	if len(projection) == 0 {
		return d, nil
	}
	els, err := projection.Elements()
	if err != nil {
		return nil, err
	}
	if len(els) == 0 {
		return d, nil
	}
	spec := map[string]bool{}
	include := -1
	for _, e := range els {
		on, ok := e.Value().AsInt64OK()
		if !ok {
			b, okb := e.Value().BooleanOK()
			if !okb {
				return nil, errFallback
			}
			on = boolInt(b)
		}
		if !fieldName.MatchString(e.Key()) {
			return nil, errFallback
		}
		spec[e.Key()] = on != 0
		if e.Key() != "_id" {
			switch {
			case include == -1:
				include = int(boolInt(on != 0))
			case include != int(boolInt(on != 0)):
				return nil, errFallback
			}
		}
	}
	out := bson.D{}
	for _, e := range d {
		v, named := spec[e.Key]
		keep := !named || v
		if include == 1 {
			keep = named && v || e.Key == "_id" && !named
		}
		if keep {
			out = append(out, e)
		}
	}
	return out, nil
}

// table returns the SQLite database of db and what the planner knows of
// the table of collection coll.
func (p *planner) table(ctx context.Context, db, coll string) (*sql.DB, *tableInfo, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	sdb := p.dbs[db]
	if sdb == nil {
		if !fieldName.MatchString(db) {
			return nil, nil, errFallback
		}
		var err error
		sdb, err = sql.Open("sqlite", "file:"+p.dir+"/"+db+".sqlite?_pragma=busy_timeout(5000)&_pragma=query_only(1)")
		if err != nil {
			return nil, nil, err
		}
		sdb.SetMaxOpenConns(8)
		p.dbs[db] = sdb
	}
	key := db + "." + coll
	if t := p.tables[key]; t != nil && time.Since(t.at) < tableTTL {
		return sdb, t, nil
	}
	t := &tableInfo{typed: map[string]bool{}, at: time.Now()}
	if err := sdb.QueryRowContext(ctx, `SELECT table_name FROM _ferretdb_collections WHERE name = ?`, coll).Scan(&t.name); err != nil {
		return nil, nil, fmt.Errorf("%w: %v", errFallback, err)
	}
	rows, err := sdb.QueryContext(ctx, `SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = ?`, t.name)
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	prefix := t.name + typeIndexInfix
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, nil, err
		}
		if f, ok := strings.CutPrefix(n, prefix); ok {
			t.typed[f] = true
		}
	}
	if err := rows.Err(); err != nil {
		return nil, nil, err
	}
	p.tables[key] = t
	return sdb, t, nil
}

// Mirrors. For each index FerretDB keeps for a collection (on JSON text,
// which its queries do not use), the sweep makes:
//
//	<table>_m_<index>  on the fields' SQL values (->>), in the index's order
//	<table>_t_<field>  on each field's JSON type (tells arrays and objects)
//
// and <table>_m__id on _id's value, for $in on _id. They live and die with
// the table; FerretDB does not know of them and needs not.
const (
	mirrorInfix    = "_m_"
	typeIndexInfix = "_t_"
)

// mirrorStatements are the CREATE INDEX statements a table lacks, given
// its FerretDB settings (JSON) and the indexes it has.
func mirrorStatements(table, settings string, have map[string]bool) ([]string, error) {
	var s struct {
		Indexes []struct {
			Name string `json:"name"`
			Key  []struct {
				Field      string `json:"field"`
				Descending bool   `json:"descending"`
			} `json:"key"`
		} `json:"indexes"`
	}
	if err := json.Unmarshal([]byte(settings), &s); err != nil {
		return nil, fmt.Errorf("settings of %s: %w", table, err)
	}
	var out []string
	add := func(name, cols string) {
		if !have[name] {
			out = append(out, fmt.Sprintf(`CREATE INDEX IF NOT EXISTS %q ON %q (%s)`, name, table, cols))
			have[name] = true
		}
	}
	add(table+mirrorInfix+"_id", `_ferretdb_sjson->>'$._id'`)
	for _, ix := range s.Indexes {
		var cols []string
		ok := fieldName.MatchString(ix.Name)
		for _, k := range ix.Key {
			if !fieldName.MatchString(k.Field) {
				ok = false
				break
			}
			c := fmt.Sprintf(`_ferretdb_sjson->>'$.%s'`, k.Field)
			if k.Descending {
				c += " DESC"
			}
			cols = append(cols, c)
		}
		if !ok || ix.Name == "_id_" {
			continue
		}
		add(table+mirrorInfix+ix.Name, strings.Join(cols, ", "))
		for _, k := range ix.Key {
			if k.Field != "_id" {
				add(table+typeIndexInfix+k.Field, fmt.Sprintf(`json_type(_ferretdb_sjson, '$.%s')`, k.Field))
			}
		}
	}
	return out, nil
}

package localdb

import (
	"context"
	"fmt"
	"net"
	"slices"

	"go.mongodb.org/mongo-driver/v2/bson"

	"webstack/internal/mongowire"
)

// FerretDB 1.24 finds the documents an update or a delete applies to as it
// finds those of a query: by reading the whole collection, unless the
// filter is exactly {_id: v}. The planner hands it writes whose filter is
// that: a delete by other fields becomes deletes by the _ids SQLite finds,
// and an update whose filter names an _id and more becomes an update by
// _id, sent only when the document read from SQLite matches the rest of
// the filter (else it is answered "matched 0" without FerretDB). The
// writes are otherwise the client's, and FerretDB's answer is relayed.
//
// Neither is atomic across its two steps, and FerretDB's own are not
// either (it reads, then writes by _id): two clients updating one document
// at once could each write back what it read, and one update would be lost
// (seen: an acknowledged article rename undone by a favorite's recount
// under the failover test's two api instances). DocumentDB applies a
// single-document write atomically, so the stand-in must too — and nothing
// more: the planner holds the locks of the documents such a write names
// while it runs (planner.writes, docLocks), whoever sends it; writes of
// other documents run beside it.

// rewriteWrite returns the command to send instead of body (or a reply to
// give without sending anything); ok is false when body goes as it is.
func (p *planner) rewriteWrite(ctx context.Context, msg []byte, body bson.Raw) (send bson.Raw, reply bson.Raw, ok bool) {
	name := mongowire.Command(body)
	key := map[string]string{"delete": "deletes", "update": "updates"}[name]
	if key == "" {
		return nil, nil, false
	}
	stmts, ok := statements(msg, body, key)
	if !ok || len(stmts) == 0 {
		return nil, nil, false
	}
	coll, _ := body.Lookup(name).StringValueOK()
	db, _ := body.Lookup("$db").StringValueOK()
	var out bson.A
	switch name {
	case "delete":
		for _, st := range stmts {
			ids, ok := p.deleteTargets(ctx, db, coll, st)
			if !ok {
				return nil, nil, false
			}
			for _, id := range ids {
				out = append(out, bson.D{{Key: "q", Value: bson.D{{Key: "_id", Value: id}}}, {Key: "limit", Value: int32(1)}})
			}
		}
		if len(out) == 0 {
			return nil, okReply(bson.E{Key: "n", Value: int32(0)}), true
		}
	case "update":
		if len(stmts) != 1 {
			return nil, nil, false
		}
		st, matched, ok := p.updateByID(ctx, db, coll, stmts[0])
		if !ok {
			return nil, nil, false
		}
		if !matched {
			return nil, okReply(bson.E{Key: "n", Value: int32(0)}, bson.E{Key: "nModified", Value: int32(0)}), true
		}
		out = bson.A{st}
	}
	els, err := body.Elements()
	if err != nil {
		return nil, nil, false
	}
	cmd := bson.D{}
	for _, e := range els {
		if e.Key() != key {
			cmd = append(cmd, bson.E{Key: e.Key(), Value: e.Value()})
		}
	}
	cmd = append(cmd, bson.E{Key: key, Value: out})
	raw, err := bson.Marshal(cmd)
	if err != nil {
		return nil, nil, false
	}
	return raw, nil, true
}

func okReply(fields ...bson.E) bson.Raw {
	return mongowire.Doc(append(bson.D(fields), bson.E{Key: "ok", Value: 1.0}))
}

// statements are a write's statements, in its body or in a sequence.
func statements(msg []byte, body bson.Raw, key string) ([]bson.Raw, bool) {
	if arr, ok := body.Lookup(key).ArrayOK(); ok {
		vals, err := arr.Values()
		if err != nil {
			return nil, false
		}
		out := make([]bson.Raw, len(vals))
		for i, v := range vals {
			if out[i], ok = v.DocumentOK(); !ok {
				return nil, false
			}
		}
		return out, true
	}
	seqs, ok := mongowire.Sequences(msg)
	if !ok {
		return nil, false
	}
	return seqs[key], len(seqs[key]) > 0
}

// deleteTargets are the _ids a delete statement applies to, found by SQL;
// ok is false when FerretDB should take it as it is (by _id already, or a
// filter the planner does not compile).
func (p *planner) deleteTargets(ctx context.Context, db, coll string, st bson.Raw) ([]string, bool) {
	els, err := st.Elements()
	if err != nil {
		return nil, false
	}
	var filter bson.Raw
	limit := int64(0)
	for _, e := range els {
		switch e.Key() {
		case "q":
			filter, _ = e.Value().DocumentOK()
		case "limit":
			limit, _ = e.Value().AsInt64OK()
		default:
			return nil, false // hint, collation: as it is
		}
	}
	if fe, err := filter.Elements(); err != nil || len(fe) == 0 || len(fe) == 1 && fe[0].Key() == "_id" {
		return nil, false
	}
	q := query{db: db, coll: coll, filter: filter, limit: limit}
	if err := p.compile(ctx, &q); err != nil {
		return nil, false
	}
	docs, err := p.read(ctx, &q)
	if err != nil {
		return nil, false
	}
	ids := make([]string, 0, len(docs))
	for _, d := range docs {
		id, _ := lookup(d, "_id")
		s, ok := id.(string)
		if !ok {
			return nil, false
		}
		ids = append(ids, s)
	}
	return ids, true
}

// updateByID turns an update statement whose filter is {_id: v, …more}
// into one by _id alone, when the document matches the rest; matched is
// false when it does not (or is not there).
func (p *planner) updateByID(ctx context.Context, db, coll string, st bson.Raw) (bson.D, bool, bool) {
	els, err := st.Elements()
	if err != nil {
		return nil, false, false
	}
	var filter bson.Raw
	out := bson.D{}
	for _, e := range els {
		switch k := e.Key(); k {
		case "q":
			filter, _ = e.Value().DocumentOK()
		case "u":
			if _, isDoc := e.Value().DocumentOK(); !isDoc {
				return nil, false, false // a pipeline update
			}
			out = append(out, bson.E{Key: k, Value: e.Value()})
		case "multi", "upsert":
			if b, isBool := e.Value().BooleanOK(); !isBool || b {
				return nil, false, false
			}
		default:
			return nil, false, false
		}
	}
	fe, err := filter.Elements()
	if err != nil || len(fe) < 2 {
		return nil, false, false // by _id alone FerretDB finds it itself
	}
	id, ok := fe[0].Value().StringValueOK()
	if fe[0].Key() != "_id" || !ok {
		return nil, false, false
	}
	rest := bson.D{}
	for _, e := range fe[1:] {
		v, ok := scalarValue(e.Value())
		if !ok || !fieldName.MatchString(e.Key()) {
			return nil, false, false
		}
		rest = append(rest, bson.E{Key: e.Key(), Value: v})
	}
	idFilter, _ := bson.Marshal(bson.D{{Key: "_id", Value: id}})
	q := query{db: db, coll: coll, filter: idFilter, limit: 1}
	if err := p.compile(ctx, &q); err != nil {
		return nil, false, false
	}
	docs, err := p.read(ctx, &q)
	if err != nil {
		return nil, false, false
	}
	if len(docs) == 0 {
		return nil, false, true
	}
	for _, want := range rest {
		got, _ := lookup(docs[0], want.Key)
		if !equalScalars(got, want.Value) {
			return nil, false, true
		}
	}
	return append(bson.D{{Key: "q", Value: bson.D{{Key: "_id", Value: id}}}}, out...), true, true
}

// scalarValue reads a filter value the planner compares itself: a string, a
// number, a boolean, a date or null.
func scalarValue(v bson.RawValue) (any, bool) {
	switch v.Type {
	case bson.TypeString:
		return v.StringValue(), true
	case bson.TypeInt32:
		return v.Int32(), true
	case bson.TypeInt64:
		return v.Int64(), true
	case bson.TypeDouble:
		return v.Double(), true
	case bson.TypeBoolean:
		return v.Boolean(), true
	case bson.TypeDateTime:
		return bson.DateTime(v.DateTime()), true
	}
	return nil, false
}

// equalScalars is MongoDB's equality of the values scalarValue reads (numbers
// of any type compare by value).
func equalScalars(a, b any) bool {
	if rank(a) != rank(b) || rank(a) == 99 {
		return false
	}
	return compareValues(a, b) == 0
}

// sendRewritten sends cmd to FerretDB on up and returns its reply's body.
func sendRewritten(up net.Conn, cmd bson.Raw) (bson.Raw, error) {
	if _, err := up.Write(mongowire.Request(cmd)); err != nil {
		return nil, err
	}
	reply, err := mongowire.Read(up)
	if err != nil {
		return nil, err
	}
	body, ok := mongowire.Body(reply)
	if !ok {
		return nil, fmt.Errorf("FerretDB answered a rewritten write without a body")
	}
	return slices.Clone(body), nil
}

// projectFindAndModify answers a findAndModify that asks for some fields of
// the document ("fields", which DocumentDB and MongoDB take and FerretDB
// 1.24 answers NotImplemented): FerretDB is sent it without them, and the
// document in its answer is cut to the fields asked for (an inclusion
// projection, _id kept unless excluded). ok is false when body is not such
// a command, or asks for a projection other than that.
func projectFindAndModify(up net.Conn, body bson.Raw) (bson.Raw, bool, error) {
	if mongowire.Command(body) != "findAndModify" {
		return nil, false, nil
	}
	fields, has := body.Lookup("fields").DocumentOK()
	if !has {
		return nil, false, nil
	}
	keep := map[string]bool{"_id": true}
	fels, err := fields.Elements()
	if err != nil {
		return nil, false, nil
	}
	for _, f := range fels {
		v, isNum := f.Value().AsInt64OK()
		switch {
		case !isNum:
			return nil, false, nil
		case f.Key() == "_id":
			keep["_id"] = v != 0
		case v == 0:
			return nil, false, nil // an exclusion: not this shim's
		default:
			keep[f.Key()] = true
		}
	}
	els, err := body.Elements()
	if err != nil {
		return nil, false, nil
	}
	cmd := bson.D{}
	for _, e := range els {
		if e.Key() != "fields" {
			cmd = append(cmd, bson.E{Key: e.Key(), Value: e.Value()})
		}
	}
	raw, err := bson.Marshal(cmd)
	if err != nil {
		return nil, false, nil
	}
	reply, err := sendRewritten(up, raw)
	if err != nil {
		return nil, true, err
	}
	value, isDoc := reply.Lookup("value").DocumentOK()
	if !isDoc {
		return reply, true, nil // no document (null), or an error: as FerretDB answered
	}
	vels, err := value.Elements()
	if err != nil {
		return reply, true, nil
	}
	cut := bson.D{}
	for _, e := range vels {
		if keep[e.Key()] {
			cut = append(cut, bson.E{Key: e.Key(), Value: e.Value()})
		}
	}
	rels, err := reply.Elements()
	if err != nil {
		return reply, true, nil
	}
	out := bson.D{}
	for _, e := range rels {
		if e.Key() == "value" {
			out = append(out, bson.E{Key: "value", Value: cut})
		} else {
			out = append(out, bson.E{Key: e.Key(), Value: e.Value()})
		}
	}
	projected, err := bson.Marshal(out)
	if err != nil {
		return reply, true, nil
	}
	return projected, true, nil
}

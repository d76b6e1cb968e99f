package localdb

import (
	"slices"
	"sync"

	"go.mongodb.org/mongo-driver/v2/bson"

	"webstack/internal/mongowire"
)

// DocumentDB applies each single-document write atomically and nothing
// more: writes to different documents run side by side. FerretDB 1.24
// applies an update, a delete or a findAndModify by reading the document
// and then writing it back, and the planner checks a conditional update's
// filter before it sends it by _id; so two writes of one document must not
// interleave (a lost update), and writes of different documents must not
// wait for each other (a stand-in kinder than production: races between
// documents would never happen here). docLocks gives each write the locks
// of the documents it names by _id, and a write that names none (a delete
// by another field, a sweep) the whole collection's.
type docLocks struct {
	mu    sync.Mutex
	held  map[string]*docLock // by database "." collection "/" _id; "" _id: the collection
	colls map[string]*sync.RWMutex
}

type docLock struct {
	sync.Mutex
	users int
}

func newDocLocks() *docLocks {
	return &docLocks{held: map[string]*docLock{}, colls: map[string]*sync.RWMutex{}}
}

// lock takes what the write (the command body of msg) needs and returns
// its release: the locks of the documents it names by _id, in order (two
// writes of the same documents never wait for each other crosswise), under
// the collection's shared lock; or, when it names no _id, the collection's
// exclusive lock. Commands that are not read-then-write writes take
// nothing.
func (l *docLocks) lock(msg []byte, body bson.Raw) func() {
	name := mongowire.Command(body)
	if !slices.Contains(readThenWrite, name) {
		return func() {}
	}
	coll, _ := body.Lookup(name).StringValueOK()
	db, _ := body.Lookup("$db").StringValueOK()
	scope := db + "." + coll
	ids, ok := writeIDs(msg, body, name)
	l.mu.Lock()
	cl := l.colls[scope]
	if cl == nil {
		cl = &sync.RWMutex{}
		l.colls[scope] = cl
	}
	l.mu.Unlock()
	if !ok {
		cl.Lock()
		return cl.Unlock
	}
	cl.RLock()
	slices.Sort(ids)
	ids = slices.Compact(ids)
	var locks []*docLock
	for _, id := range ids {
		key := scope + "/" + id
		l.mu.Lock()
		d := l.held[key]
		if d == nil {
			d = &docLock{}
			l.held[key] = d
		}
		d.users++
		l.mu.Unlock()
		d.Lock()
		locks = append(locks, d)
	}
	return func() {
		for i, d := range locks {
			d.Unlock()
			l.mu.Lock()
			if d.users--; d.users == 0 {
				delete(l.held, scope+"/"+ids[i])
			}
			l.mu.Unlock()
		}
		cl.RUnlock()
	}
}

// writeIDs are the _ids a write's statements name (each statement's filter
// has a string _id, as every write of the store's does); ok is false when a
// statement names none, or not as a string.
func writeIDs(msg []byte, body bson.Raw, name string) ([]string, bool) {
	var filters []bson.Raw
	switch name {
	case "findAndModify":
		f, ok := body.Lookup("query").DocumentOK()
		if !ok {
			return nil, false
		}
		filters = append(filters, f)
	default:
		stmts, ok := statements(msg, body, map[string]string{"delete": "deletes", "update": "updates"}[name])
		if !ok || len(stmts) == 0 {
			return nil, false
		}
		for _, st := range stmts {
			f, ok := st.Lookup("q").DocumentOK()
			if !ok {
				return nil, false
			}
			filters = append(filters, f)
		}
	}
	var ids []string
	for _, f := range filters {
		id, ok := f.Lookup("_id").StringValueOK()
		if !ok {
			return nil, false
		}
		ids = append(ids, id)
	}
	return ids, true
}

package store

import (
	"context"
	"errors"

	"go.mongodb.org/mongo-driver/v2/bson"

	"webstack/app/conduit"
)

// A relation (a favorite, a follow) is one document whose _id is the pair,
// and it is never deleted by a toggle: turned off, it stays as a tombstone
// ({_id, ver, off: true, at}) without the fields the relation is found by
// (uid and aid, follower and followee), so no list, count or feed sees it
// and no index changes. Every toggle writes, compared-and-set on the
// version it read, and moves the version on — also when the relation is
// already as asked (a favorite of a favorite). What each outcome means:
//
//   - a lost reply: the write is sent again, or read back (the state is
//     then as asked, and the toggle writes once more, harmlessly);
//   - a late copy (held by the server, applied after its request gave up):
//     an update names a version that every later toggle of the pair moved
//     on, so it matches nothing; an insert (the pair's first toggle) meets
//     the document any later toggle left, tombstone included, and is
//     refused as a duplicate. So an acknowledged unfavorite is never undone
//     by its favorite's late copy, nor a favorite by an unfavorite's;
//   - a re-send: answered with the state as asked (toggles are set, not
//     flipped);
//   - a concurrent toggle of the same pair (two tabs): one of two writes of
//     one version applies; the other reads again and writes on the new one,
//     so the last to be acknowledged is what stays.
//
// Documents stored before versions have none; their version is 0.
type relationDoc struct {
	Ver int64 `bson:"ver"`
	Off bool  `bson:"off"`
}

// toggle sets the relation id of coll on (its document, fields, with the
// _id and version added) or off (a tombstone), as described above. It
// says what this request found (wasOn: the relation was on at its first
// read — a later read may meet its own write, its reply lost, or another
// toggle's) and the version it wrote (ver), which a caller that takes the
// toggle back names in its compare-and-set.
func (s *Store) toggle(ctx context.Context, coll, op, id string, on bool, fields bson.D) (wasOn bool, ver int64, err error) {
	first := true
	for range 4 {
		var cur relationDoc
		err := s.findOne(ctx, s.coll(coll), coll+".find", byID(id), &cur)
		switch {
		case errNotFound(err):
			first = false // absent at the first read: wasOn stays false
			doc := relation(id, 1, on, fields)
			// Inserted, or found as it is (our own copy, its reply lost).
			if err := s.insertNew(ctx, coll, op, id, doc, sameDoc(doc)); err == nil || !isTaken(err) {
				return wasOn, 1, err
			}
			continue // another toggle made it first: read it and go on from there
		case err != nil:
			return false, 0, err
		}
		if first {
			wasOn, first = !cur.Off, false
		}
		res, err := s.coll(coll).ReplaceOne(ctx, bson.D{{Key: "_id", Value: id}, atVersion(cur.Ver)}, relation(id, cur.Ver+1, on, fields))
		if err != nil {
			return false, 0, s.wrap(op, err)
		}
		if res.MatchedCount == 1 {
			return wasOn, cur.Ver + 1, nil
		}
		// Another toggle (or our own copy, its reply lost) moved it on:
		// read it again and write over the version it has now.
	}
	return false, 0, conduit.Unavailable(errors.New(op + ": the relation kept changing: try again"))
}

// relation is the document of a relation: fields when on, a tombstone
// (only the time of the change besides) when off.
func relation(id string, ver int64, on bool, fields bson.D) bson.D {
	d := bson.D{{Key: "_id", Value: id}, {Key: "ver", Value: ver}}
	if !on {
		d = append(d, bson.E{Key: "off", Value: true})
		for _, f := range fields {
			if f.Key == "at" {
				d = append(d, f)
			}
		}
		return d
	}
	return append(d, fields...)
}

// isTaken is an insert refused because its _id is held: insertNew's
// errIDTaken, or a duplicate whose holder is not the same relation.
func isTaken(err error) bool {
	var ce *conduit.Error
	return errors.Is(err, errIDTaken) || (errors.As(err, &ce) && ce.Code == conduit.CodeConflict)
}

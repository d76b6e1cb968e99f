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
// _id and version added) or off (a tombstone), as described above, and
// says whether it was on when this toggle wrote over it.
func (s *Store) toggle(ctx context.Context, coll, op, id string, on bool, fields bson.D) (wasOn bool, err error) {
	for range 4 {
		var cur relationDoc
		err := s.findOne(ctx, s.coll(coll), coll+".find", byID(id), &cur)
		switch {
		case errNotFound(err):
			doc := relation(id, 1, on, fields)
			// Found or inserted, it was absent before this request (found:
			// our own copy, its reply lost).
			if err := s.insertNew(ctx, coll, op, id, doc, sameDoc(doc)); err == nil || !isTaken(err) {
				return false, err
			}
			continue // another toggle made it first: read it and go on from there
		case err != nil:
			return false, err
		}
		res, err := s.coll(coll).ReplaceOne(ctx, bson.D{{Key: "_id", Value: id}, atVersion(cur.Ver)}, relation(id, cur.Ver+1, on, fields))
		if err != nil {
			return false, s.wrap(op, err)
		}
		if res.MatchedCount == 1 {
			return !cur.Off, nil
		}
		// Another toggle (or our own copy, its reply lost) moved it on:
		// read it again and write over the version it has now.
	}
	return false, conduit.Unavailable(errors.New(op + ": the relation kept changing: try again"))
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

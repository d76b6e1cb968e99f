package store

import (
	"context"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"webstack/app/conduit"
)

// Sessions: one document per sign-in, {_id: the session id the token
// carries, uid, seen, exp}. Each authenticated request reads its session
// on the primary by _id (a signed-out session must be over on every
// instance at once); seen moves at most once a minute (TouchSession), so
// an idle timeout costs one small write per active session per minute.
// Expired sessions are swept by SweepSessions (index by_exp); DocumentDB's
// TTL indexes would do it too, but FerretDB refuses expireAfterSeconds,
// and the sweep is right on both.
type sessionDoc struct {
	ID   string    `bson:"_id"`
	UID  string    `bson:"uid,omitempty"`
	Seen time.Time `bson:"seen"`
	Exp  time.Time `bson:"exp"`
	// Ended says why a session ended before its time when it is kept to
	// say so (a sign-in past conduit.MaxSessions ended it); its uid is
	// gone, so no count of the account's sessions sees it.
	Ended string `bson:"ended,omitempty"`
}

func (d sessionDoc) session() *conduit.Session {
	return &conduit.Session{ID: d.ID, UserID: d.UID, Seen: d.Seen, Expires: d.Exp}
}

// StartSession records a new session. Converges: its _id is new and its
// own, so sent again after a lost reply it finds itself, and a late copy
// meets the first and is refused; a sign-in sent again is a new session.
//
// An account keeps at most conduit.MaxSessions live sessions: past it, the
// ones that end soonest (signed in first) are ended — kept, without their
// uid, to tell their holder why (Session) — a bounded step after the
// insert (an index walk of by_user past the newest MaxSessions, at most
// capBatch). Its failure is reported, not answered: the sign-in holds, and
// the next one ends what this one left. Twice is once.
func (s *Store) StartSession(ctx context.Context, sess *conduit.Session) error {
	defer s.observe("sessions.insert", time.Now())
	d := sessionDoc{ID: sess.ID, UID: sess.UserID, Seen: sess.Seen.UTC().Truncate(time.Millisecond), Exp: sess.Expires.UTC().Truncate(time.Millisecond)}
	if err := s.insertNew(ctx, "sessions", "start session", d.ID, d, sameDoc(d)); err != nil {
		return err
	}
	old, err := findAll[struct {
		ID string `bson:"_id"`
	}](ctx, s, s.coll("sessions"), "sessions.by_user", bson.D{{Key: "uid", Value: sess.UserID}},
		options.Find().SetSort(bson.D{desc("exp"), desc("_id")}).SetSkip(conduit.MaxSessions).SetLimit(capBatch).SetProjection(bson.D{{Key: "_id", Value: 1}}))
	if err != nil || len(old) == 0 {
		return nil // reported by findAll
	}
	ids := make([]string, len(old))
	for i, o := range old {
		ids[i] = o.ID
	}
	_, err = s.coll("sessions").UpdateMany(ctx, in("_id", ids), bson.D{
		{Key: "$set", Value: bson.D{{Key: "ended", Value: endedBySignIns}}}, {Key: "$unset", Value: bson.D{{Key: "uid", Value: ""}}}})
	_ = s.wrap("end the oldest sessions", err)
	return nil
}

// capBatch is how many sessions past the bound one sign-in ends at most.
const capBatch = 10

// endedBySignIns is why a session ended: newer sign-ins.
const endedBySignIns = "sign-ins"

// Session reads a session on the primary; CodeNotFound when it ended, and
// CodeUnauthorized saying why when newer sign-ins ended it.
func (s *Store) Session(ctx context.Context, id string) (*conduit.Session, error) {
	var d sessionDoc
	if err := s.findOne(ctx, s.coll("sessions"), "sessions.find", byID(id), &d); err != nil {
		return nil, err
	}
	if d.Ended != "" {
		return nil, conduit.Errorf(conduit.CodeUnauthorized,
			"this session has ended: the account signed in on more than %d devices since, and the oldest sessions end first; sign in again", conduit.MaxSessions)
	}
	return d.session(), nil
}

// TouchSession moves a session's seen on to now: one update by _id, $max
// (sent twice, the same; a late copy never moves it back). A session that
// ended meanwhile stays ended (no upsert).
func (s *Store) TouchSession(ctx context.Context, id string, now time.Time) error {
	defer s.observe("sessions.touch", time.Now())
	_, err := s.coll("sessions").UpdateOne(ctx, byID(id), bson.D{{Key: "$max", Value: bson.D{{Key: "seen", Value: now.UTC().Truncate(time.Millisecond)}}}})
	return s.wrap("touch session", err)
}

// EndSession signs a session out: one delete by _id (sent twice, or
// landing late, it ends a session already ended).
func (s *Store) EndSession(ctx context.Context, id string) error {
	defer s.observe("sessions.delete", time.Now())
	_, err := s.coll("sessions").DeleteOne(ctx, byID(id))
	return s.wrap("end session", err)
}

// SweepSessions deletes sessions past their absolute lifetime (idle ones
// are refused when read, and expire by then).
func (s *Store) SweepSessions(ctx context.Context, now time.Time) (int64, error) {
	return s.sweep(ctx, "sessions", now)
}

// sweep deletes the documents of coll whose exp passed (index by_exp): a
// delete sent twice deletes once.
func (s *Store) sweep(ctx context.Context, coll string, now time.Time) (int64, error) {
	defer s.observe(coll+".sweep", time.Now())
	res, err := s.coll(coll).DeleteMany(ctx, bson.D{{Key: "exp", Value: bson.D{{Key: "$lt", Value: now.UTC()}}}})
	if err != nil {
		return 0, s.wrap("sweep "+coll, err)
	}
	return res.DeletedCount, nil
}

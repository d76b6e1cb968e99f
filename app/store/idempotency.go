package store

import (
	"context"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"webstack/app/conduit"
)

// Idempotency records: the first answer to a request its client sent with
// an Idempotency-Key (the IETF httpapi draft's header; Stripe's semantics),
// one document per key, {_id, body: the request body's hash, claim, state,
// until, the answer, exp}, kept for IdempotencyTTL.
//
//   - The first request with a key claims it: an insert with its own claim
//     token, state "running" until a lease ends. Its reply lost, the insert
//     sent again finds its own claim (the token) and runs.
//   - A request with the key and another body is refused (422): a key
//     names one request.
//   - While the first runs (its lease), a copy is refused (409): it is
//     told to wait, not run twice.
//   - When the first is answered, its answer is kept (state "done") and a
//     copy gets it again, byte for byte, without running anything: an
//     article or a comment sent twice is one article, one comment.
//   - An answer that says "try again" (503, 429) is not kept: the claim is
//     released (state "released"), so the copy runs.
//   - A claim whose lease ended without an answer (the instance died, its
//     answer could not be kept) is taken over by the next copy (compared
//     and set on the claim), which runs.
//   - A copy that runs again (released, or taken over) may meet what the
//     first run wrote before it answered "try again": everything a keyed
//     request makes new is derived from the record's _id and the time of
//     its first claim (conduit.RequestKey; kept through releases), so the
//     copy makes the same article, the same comment, and finds them
//     instead of making them twice. Other writes converge as every write
//     does (see the package comment).
type idemDoc struct {
	ID     string    `bson:"_id"`
	Body   string    `bson:"body"`
	Claim  string    `bson:"claim"`
	State  string    `bson:"state"` // running, done, released
	Until  time.Time `bson:"until"`
	First  time.Time `bson:"first"` // the first claim's time: see conduit.RequestKey
	Status int       `bson:"status,omitempty"`
	Header bson.D    `bson:"header,omitempty"`
	Resp   []byte    `bson:"resp,omitempty"`
	Exp    time.Time `bson:"exp"`
}

// IdempotencyTTL is how long a key's answer is kept.
const IdempotencyTTL = 24 * time.Hour

// MaxKeptAnswer is the largest answer body kept (an article with the
// longest body is about 200 KiB of JSON).
const MaxKeptAnswer = 1 << 20

// ClaimKey claims the idempotency record id (a hash the caller makes of
// who sent it, to where, and the key) for a request whose body hashes to
// body, with the claim token claim, until now+lease. It returns the kept
// answer to give again (nil: run the request, as key), or CodeInvalid (the
// key was used with another body) or CodeBusy (the first request with the
// key is still running).
func (s *Store) ClaimKey(ctx context.Context, id, body, claim string, now time.Time, lease time.Duration) (*conduit.Answer, conduit.RequestKey, error) {
	defer s.observe("idempotency.claim", time.Now())
	now = now.UTC().Truncate(time.Millisecond) // as stored: a copy derives the same
	d := idemDoc{ID: id, Body: body, Claim: claim, State: "running", Until: now.Add(lease), First: now, Exp: now.Add(IdempotencyTTL)}
	for attempt := 0; attempt < 3; attempt++ {
		_, err := s.coll("idempotency").InsertOne(ctx, d)
		if err == nil {
			return nil, conduit.RequestKey{ID: id, First: now}, nil
		}
		if !isDuplicate(err) {
			return nil, conduit.RequestKey{}, s.wrap("claim idempotency key", err)
		}
		var cur idemDoc
		if err := s.findOne(ctx, s.coll("idempotency"), "idempotency.find", byID(id), &cur); err != nil {
			if errNotFound(err) {
				continue // swept meanwhile: claim again
			}
			return nil, conduit.RequestKey{}, err
		}
		key := conduit.RequestKey{ID: id, First: cur.First.UTC()}
		if cur.First.IsZero() {
			key.First = cur.Exp.Add(-IdempotencyTTL).UTC() // a record from before First
		}
		switch {
		case cur.Body != body:
			return nil, conduit.RequestKey{}, conduit.Errorf(conduit.CodeInvalid, "Idempotency-Key was used with another request")
		case cur.Claim == claim:
			return nil, key, nil // our own insert, its reply lost
		case cur.State == "done":
			a := &conduit.Answer{Status: cur.Status, Header: map[string]string{}, Body: cur.Resp}
			for _, h := range cur.Header {
				if v, ok := h.Value.(string); ok {
					a.Header[h.Key] = v
				}
			}
			return a, key, nil
		case cur.State == "running" && cur.Until.After(now):
			return nil, conduit.RequestKey{}, conduit.Errorf(conduit.CodeBusy, "a request with this Idempotency-Key is still running: try again in a moment")
		}
		// Released, or its lease ended with no answer kept: take it over
		// (compared and set on the claim: one copy runs).
		key.Again = true
		res, err := s.coll("idempotency").UpdateOne(ctx, bson.D{{Key: "_id", Value: id}, {Key: "claim", Value: cur.Claim}, {Key: "state", Value: cur.State}},
			set(bson.E{Key: "claim", Value: claim}, bson.E{Key: "state", Value: "running"}, bson.E{Key: "until", Value: now.Add(lease)}))
		if err != nil {
			return nil, conduit.RequestKey{}, s.wrap("take over idempotency key", err)
		}
		if res.MatchedCount == 1 {
			return nil, key, nil
		}
	}
	return nil, conduit.RequestKey{}, conduit.Errorf(conduit.CodeBusy, "a request with this Idempotency-Key is still running: try again in a moment")
}

// KeepAnswer keeps a, the answer to the request that holds the claim on id,
// for the key's copies; an answer that says "try again" is not kept (the
// claim is released, the record kept with its first time: the next copy
// runs as the same request). It runs detached from the
// request (whose client may be gone: its answer must still be kept).
func (s *Store) KeepAnswer(ctx context.Context, id, claim string, a conduit.Answer) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	defer s.observe("idempotency.keep", time.Now())
	mine := bson.D{{Key: "_id", Value: id}, {Key: "claim", Value: claim}}
	if a.Status >= 500 || a.Status == 429 || len(a.Body) > MaxKeptAnswer {
		_, err := s.coll("idempotency").UpdateOne(ctx, mine, set(bson.E{Key: "state", Value: "released"}))
		return s.wrap("release idempotency key", err)
	}
	var header bson.D
	for k, v := range a.Header {
		header = append(header, bson.E{Key: k, Value: v})
	}
	_, err := s.coll("idempotency").UpdateOne(ctx, mine, set(bson.E{Key: "state", Value: "done"}, bson.E{Key: "status", Value: a.Status},
		bson.E{Key: "header", Value: header}, bson.E{Key: "resp", Value: a.Body}))
	return s.wrap("keep an answer", err)
}

// MadeByKey reports whether the keyed request ctx carries (a copy that
// runs again: conduit.RequestKey.Again) already made its article or its
// comment: its quota was taken by the copy that made it, and is not taken
// again.
func (s *Store) MadeByKey(ctx context.Context) (bool, error) {
	k, ok := conduit.RequestKeyOf(ctx)
	if !ok || !k.Again {
		return false, nil
	}
	for _, probe := range []struct{ coll, id string }{{"articles", keyedID(k, "article")}, {"comments", commentKey(keyedCommentID(k, 0))}} {
		var d bson.Raw
		err := s.findOne(ctx, s.coll(probe.coll), probe.coll+".find", byID(probe.id), &d, options.FindOne().SetProjection(bson.D{{Key: "_id", Value: 1}}))
		switch {
		case err == nil:
			return true, nil
		case !errNotFound(err):
			return false, err
		}
	}
	return false, nil
}

// SweepKeys deletes the idempotency records past their time.
func (s *Store) SweepKeys(ctx context.Context, now time.Time) (int64, error) {
	return s.sweep(ctx, "idempotency", now)
}

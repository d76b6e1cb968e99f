package store

import (
	"context"
	"strconv"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Quotas: how many times something was done in a fixed window, one
// document per key and window, {_id: "<key>/<window start>", n, exp}.
// Taking one is a single conditional upsert —
//
//	updateOne({_id, n: {$lt: limit}}, {$inc: {n: 1}, $setOnInsert: {exp}}, upsert)
//
// which DocumentDB applies atomically to the one document: concurrent takes
// never pass the limit. (FerretDB applies an update as a read and a write;
// the local engine's lock of the document makes it atomic there.) At the limit the filter matches nothing and the upsert's insert
// meets the existing _id: a duplicate key. But a duplicate key is also
// what the loser of two concurrent first takes of a window gets (both
// found no document, both inserted: the database applies one insert and
// refuses the other), with the window far from full; so a duplicate key is
// answered by taking again, now that the document exists: the filter
// matches and counts, or the window is full and the insert meets the _id
// once more — only that second duplicate is the refusal.
// (TestConcurrentFirstTakesOfAWindowBothPass drives the race through
// storetest's RacedUpsert.) Converges: a take sent again after a lost
// reply counts twice (DocumentDB has no retryable writes), so a quota errs
// on the strict side by the retries a failover caused, never on the
// lenient one.
type quotaDoc struct {
	ID  string    `bson:"_id"`
	N   int       `bson:"n"`
	Exp time.Time `bson:"exp"`
}

// Take counts one use of key in the window that holds now, unless limit
// uses are counted already: then ok is false and retry is when the window
// ends.
func (s *Store) Take(ctx context.Context, key string, limit int, window time.Duration, now time.Time) (ok bool, retry time.Duration, err error) {
	defer s.observe("quotas.take", time.Now())
	start := now.UTC().Truncate(window)
	end := start.Add(window)
	id := key + "/" + strconv.FormatInt(start.Unix(), 10)
	for attempt := 0; ; attempt++ {
		_, err = s.coll("quotas").UpdateOne(ctx,
			bson.D{{Key: "_id", Value: id}, {Key: "n", Value: bson.D{{Key: "$lt", Value: limit}}}},
			bson.D{{Key: "$inc", Value: bson.D{{Key: "n", Value: 1}}}, {Key: "$setOnInsert", Value: bson.D{{Key: "exp", Value: end}}}},
			options.UpdateOne().SetUpsert(true))
		switch {
		case isDuplicate(err) && attempt == 0:
			continue // maybe lost a first-take race: the document exists now
		case isDuplicate(err):
			return false, end.Sub(now), nil
		case err != nil:
			return false, 0, s.wrap("take quota", err)
		}
		return true, 0, nil
	}
}

// SweepQuotas deletes the windows that ended.
func (s *Store) SweepQuotas(ctx context.Context, now time.Time) (int64, error) {
	return s.sweep(ctx, "quotas", now)
}

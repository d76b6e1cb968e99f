package store

import (
	"context"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// An intent records a write of several documents before its first step:
// what must hold when it is over. Its steps are idempotent; the last one
// deletes the intent. An intent older than Options.IntentGrace belongs to
// a write that was interrupted (a crash, a failover between steps, a
// request whose client gave up), and Repair runs its steps again.
type intentDoc struct {
	ID   string    `bson:"_id"`
	Kind string    `bson:"kind"`
	AID  string    `bson:"aid,omitempty"`
	At   time.Time `bson:"at"`
}

// The kinds of intents, and the steps each finishes with (apply).
const (
	intentRecountFavorites = "recount-favorites" // the article's favorites count
	intentDeleteArticle    = "delete-article"    // the article, its comments and favorites
)

// begin records an intent (its first step).
func (s *Store) begin(ctx context.Context, d intentDoc) (intentDoc, error) {
	d.ID, d.At = newID(), time.Now().UTC()
	if err := s.insertNew(ctx, "intents", "record intent", d.ID, d, sameDoc(d)); err != nil {
		return intentDoc{}, err
	}
	return d, nil
}

// finish runs an intent's steps, then deletes it.
func (s *Store) finish(ctx context.Context, d intentDoc) error {
	if err := s.apply(ctx, d); err != nil {
		return err
	}
	s.done(ctx, d)
	return nil
}

// done deletes an intent whose steps are over. When that fails too, Repair
// runs the steps again later, which changes nothing: the write succeeded
// and is answered so.
func (s *Store) done(ctx context.Context, d intentDoc) {
	if d.ID == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	_, err := s.coll("intents").DeleteOne(ctx, byID(d.ID))
	_ = s.wrap("delete intent", err) // reported to OnError, not to the client
}

// apply runs an intent's steps; each may run any number of times.
func (s *Store) apply(ctx context.Context, d intentDoc) error {
	switch d.Kind {
	case "":
		return nil
	case intentRecountFavorites:
		_, err := s.markAndRecount(ctx, d.AID)
		if errNotFound(err) {
			// Deleted: a favorite that came after its deletion removed the
			// others goes too.
			return s.dropFavorites(ctx, d.AID)
		}
		return err
	case intentDeleteArticle:
		if _, err := s.coll("articles").DeleteOne(ctx, byID(d.AID)); err != nil { // none when an earlier run got this far
			return s.wrap("delete article", err)
		}
		if _, err := s.coll("comments").DeleteMany(ctx, bson.D{{Key: "aid", Value: d.AID}}); err != nil {
			return s.wrap("delete the article's comments", err)
		}
		return s.dropFavorites(ctx, d.AID)
	}
	return fmt.Errorf("intent %s: unknown kind %q", d.ID, d.Kind)
}

// dropFavorites removes the favorites of the deleted article aid.
func (s *Store) dropFavorites(ctx context.Context, aid string) error {
	_, err := s.coll("favorites").DeleteMany(ctx, bson.D{{Key: "aid", Value: aid}})
	return s.wrap("delete the article's favorites", err)
}

// Repair finishes the writes that were interrupted: each intent older than
// Options.IntentGrace is claimed (its time moved to now, compared-and-set,
// so that one instance takes it), its steps run again, and it is deleted.
// It returns how many it finished.
func (s *Store) Repair(ctx context.Context) (int, error) {
	defer s.observe("intents.repair", time.Now())
	cutoff := time.Now().UTC().Add(-s.opts.IntentGrace)
	stale, err := findAll[intentDoc](ctx, s, s.coll("intents"), "intents.find",
		bson.D{{Key: "at", Value: bson.D{{Key: "$lte", Value: cutoff}}}}, options.Find().SetSort(bson.D{asc("at")}).SetLimit(100))
	if err != nil {
		return 0, err
	}
	n := 0
	for _, d := range stale {
		res, err := s.coll("intents").UpdateOne(ctx, bson.D{{Key: "_id", Value: d.ID}, {Key: "at", Value: d.At}},
			set(bson.E{Key: "at", Value: time.Now().UTC()}))
		if err != nil {
			return n, s.wrap("claim intent", err)
		}
		if res.MatchedCount == 0 {
			continue // finished or claimed elsewhere meanwhile
		}
		if err := s.finish(ctx, d); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// RepairEvery runs Repair every interval until ctx ends, telling report of
// what it did or why it could not.
func (s *Store) RepairEvery(ctx context.Context, interval time.Duration, report func(repaired int, err error)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		rctx, cancel := context.WithTimeout(ctx, interval)
		n, err := s.Repair(rctx)
		// Housekeeping on the same beat: sessions and quota windows past
		// their end (each instance sweeps; a delete twice is one).
		if err == nil {
			_, err = s.SweepSessions(rctx, time.Now())
		}
		if err == nil {
			_, err = s.SweepQuotas(rctx, time.Now())
		}
		cancel()
		if (n > 0 || err != nil) && report != nil && ctx.Err() == nil {
			report(n, err)
		}
	}
}

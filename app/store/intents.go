package store

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"webstack/app/conduit"
)

// An intent records a write of several documents before its first step:
// what must hold when it is over. Its steps are idempotent; when they have
// run, the intent is deleted. An intent older than Options.IntentGrace
// belongs to a write that was interrupted (a crash, a failover between
// steps, a request whose client gave up), and Repair runs its steps again.
//
// Steps done are not the end of it: a write the request sent may still be
// held by the server and land later (DocumentDB has no retryable writes,
// and nothing stops a command its client gave up on) — a favorite inserted
// after its recount, a comment inserted after its article's deletion swept
// the comments. So a finished intent leaves a settling one for its kind of
// write and its article — one, however many writes of that kind the
// article gets ("settle/<kind>/<article>", its time moved to LateWrites
// from the last of them) — which Repair runs once more when it comes due:
// that counts or removes whatever landed meanwhile. It is deleted unless a
// later write moved its time meanwhile. A write that lands later than that
// is not covered (an article's edits and deletion are fenced by its
// version instead, whenever they land).
type intentDoc struct {
	ID       string    `bson:"_id"`
	Kind     string    `bson:"kind"`
	AID      string    `bson:"aid,omitempty"`
	Ver      int64     `bson:"ver,omitempty"` // a deletion: the version of the article it read
	At       time.Time `bson:"at"`
	Settling bool      `bson:"settling,omitempty"` // the article's settling run: due at At
	gone     bool      // a favorite's intent whose article was found gone: it settles as an intent (see settleIntent)
}

// The kinds of intents, and the steps each finishes with (apply).
const (
	intentRecountFavorites = "recount-favorites" // the article's favorites count
	// The article (at the version the deletion read, or an earlier one),
	// its comments and favorites. A kind of its own since layout 3: a
	// layout-2 build does not know it, and runs none of its steps (it
	// would delete the article whatever its version).
	intentDeleteArticle = "delete-article-at-version"
	// A layout-2 build's deletion, left unfinished: the article whatever
	// its version, as that build meant.
	intentDeleteArticleV2 = "delete-article"
)

// begin records an intent (its first step).
func (s *Store) begin(ctx context.Context, d intentDoc) (intentDoc, error) {
	d.ID, d.At = newID(), time.Now().UTC()
	if err := s.insertNew(ctx, "intents", "record intent", d.ID, d, sameDoc(d)); err != nil {
		return intentDoc{}, err
	}
	return d, nil
}

// finish runs an intent's steps, then settles it.
//
// A request runs one batch of each sweep (requestBatches): what is left of
// a large article's comments and favorites is swept by Repair, the intent
// staying until it is. The request's answer does not wait for it: the
// article is gone already, and no list shows what is left.
func (s *Store) finish(ctx context.Context, d intentDoc) error {
	switch err := s.apply(ctx, d, requestBatches); {
	case errors.Is(err, errLeftForRepair):
		return nil
	case err != nil:
		return err
	}
	s.done(ctx, d)
	return nil
}

// done settles an intent whose steps are over: its article's settling
// intent of that kind is made or moved to LateWrites from now ($max: a copy
// that lands late never brings it earlier), and the intent is deleted.
// When either fails, Repair runs the steps again after IntentGrace and
// then settles it: the write succeeded and is answered so either way.
func (s *Store) done(ctx context.Context, d intentDoc) {
	if d.ID == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	if d.Kind == intentRecountFavorites && !d.Settling && !d.gone {
		// Its mark carried the settling time (see markFavorites).
		_, err := s.coll("intents").DeleteOne(ctx, byID(d.ID))
		_ = s.wrap("delete intent", err)
		return
	}
	if err := s.settleIntent(ctx, d); err != nil || d.Settling {
		return // reported to OnError, not to the client
	}
	_, err := s.coll("intents").DeleteOne(ctx, byID(d.ID))
	_ = s.wrap("delete intent", err)
}

// settleIntent makes the settling intent of d's kind and article, or moves
// it to LateWrites from now ($max). A favorite's settles on its article's
// mark instead — unless the article is gone (d.gone): then this one runs
// the recount's steps once more, which remove a favorite that lands late.
func (s *Store) settleIntent(ctx context.Context, d intentDoc) error {
	fields := bson.D{{Key: "kind", Value: d.Kind}, {Key: "aid", Value: d.AID}, {Key: "settling", Value: true}}
	if d.Ver != 0 {
		fields = append(fields, bson.E{Key: "ver", Value: d.Ver})
	}
	settle := bson.D{{Key: "$set", Value: fields}, {Key: "$max", Value: bson.D{{Key: "at", Value: s.settleAt()}}}}
	id := "settle/" + d.Kind + "/" + d.AID
	_, err := s.coll("intents").UpdateOne(ctx, byID(id), settle, options.UpdateOne().SetUpsert(true))
	if isDuplicate(err) { // two first settles raced: it is there now
		_, err = s.coll("intents").UpdateOne(ctx, byID(id), settle)
	}
	return s.wrap("settle intent", err)
}

// settleAt is the at of a settling intent: Repair takes intents once at is
// IntentGrace old, so this one comes due LateWrites from now.
func (s *Store) settleAt() time.Time {
	return time.Now().UTC().Add(s.opts.LateWrites - s.opts.IntentGrace)
}

// sweepBatch is how many documents one step of a sweep removes: an index
// walk of that many entries and one deletion by _id, whatever the article
// holds.
const sweepBatch = 500

// requestBatches is how many batches of each sweep a request runs.
const requestBatches = 1

// errLeftForRepair: an intent's sweeps ran out of batches with documents
// left; its intent stays, and Repair goes on.
var errLeftForRepair = errors.New("left for Repair")

// apply runs an intent's steps; each may run any number of times. A sweep
// runs at most batches batches (0: until done), then errLeftForRepair.
func (s *Store) apply(ctx context.Context, d intentDoc, batches int) error {
	switch d.Kind {
	case "":
		return nil
	case intentRecountFavorites:
		_, err := s.markAndRecount(ctx, d.AID)
		if errNotFound(err) {
			// Deleted: a favorite that came after its deletion removed the
			// others goes too, and one that lands later still goes when
			// this settles.
			if err := s.dropFavorites(ctx, d.AID, batches); err != nil || d.Settling {
				return err
			}
			gone := d
			gone.gone = true
			return s.settleIntent(ctx, gone)
		}
		return err
	case intentDeleteArticleV2:
		if _, err := s.coll("articles").DeleteOne(ctx, byID(d.AID)); err != nil {
			return s.wrap("delete article", err)
		}
		return s.sweepAll(ctx, d.AID, batches)
	case intentDeleteArticle:
		// The version the deletion read, or an earlier one: a deletion
		// that lands late, after an edit, deletes nothing (none when an
		// earlier run got this far); an earlier version is a late copy of
		// the article's insert (a keyed create's copies make the same id)
		// that landed after the deletion, and goes when the deletion
		// settles. Versions only move on.
		if _, err := s.coll("articles").DeleteOne(ctx, bson.D{{Key: "_id", Value: d.AID}, upToVersion(d.Ver)}); err != nil {
			return s.wrap("delete article", err)
		}
		switch err := s.findOne(ctx, s.coll("articles"), "articles.find", byID(d.AID), &articleDoc{},
			options.FindOne().SetProjection(bson.D{{Key: "_id", Value: 1}})); {
		case err == nil:
			return errEditedSince // kept: its comments and favorites stay
		case !errNotFound(err):
			return err
		}
		return s.sweepAll(ctx, d.AID, batches)
	}
	return fmt.Errorf("intent %s: unknown kind %q", d.ID, d.Kind)
}

// sweepAll removes the comments and the favorites of the deleted article
// aid, at most batches batches of each (0: all).
func (s *Store) sweepAll(ctx context.Context, aid string, batches int) error {
	errComments := s.sweepArticle(ctx, "comments", aid, batches)
	if errComments != nil && !errors.Is(errComments, errLeftForRepair) {
		return errComments
	}
	if err := s.dropFavorites(ctx, aid, batches); err != nil {
		return err
	}
	return errComments
}

// dropFavorites removes the favorites of the deleted article aid, in at
// most batches batches (0: all).
func (s *Store) dropFavorites(ctx context.Context, aid string, batches int) error {
	return s.sweepArticle(ctx, "favorites", aid, batches)
}

// sweepArticle removes the documents of coll whose aid is aid (by its by_article
// index), sweepBatch at a time, in at most batches batches (0: until none
// is left); documents left then are errLeftForRepair. Each batch is safe
// to run again and twice at once: it deletes by _id what it found.
func (s *Store) sweepArticle(ctx context.Context, coll, aid string, batches int) error {
	for i := 0; batches == 0 || i < batches; i++ {
		docs, err := findAll[struct {
			ID string `bson:"_id"`
		}](ctx, s, s.coll(coll), coll+".sweep", bson.D{{Key: "aid", Value: aid}},
			options.Find().SetProjection(bson.D{{Key: "_id", Value: 1}}).SetLimit(sweepBatch))
		if err != nil || len(docs) == 0 {
			return err
		}
		ids := make([]string, len(docs))
		for j, d := range docs {
			ids[j] = d.ID
		}
		if _, err := s.coll(coll).DeleteMany(ctx, in("_id", ids)); err != nil {
			return s.wrap("delete the article's "+coll, err)
		}
		if len(docs) < sweepBatch {
			return nil
		}
	}
	return errLeftForRepair
}

// errEditedSince: a deletion met an edit of the article made after the
// version it read; the article stays.
var errEditedSince = conduit.Errorf(conduit.CodeChanged, "the article was changed since this version was read: it was not deleted")

// Repair finishes the writes that were interrupted, and settles the ones
// that finished: each intent due (older than Options.IntentGrace) is
// claimed (its time moved on, compared-and-set, so that one instance takes
// it), and its steps run again; an interrupted one is then settled (see
// done), a settling one deleted unless a write's settle moved it meanwhile. An intent whose steps fail stays for the next
// round and does not hold up the others. It takes batches until none is
// due or ctx ends, and returns how many interrupted writes it finished
// (settles are not counted) and the first error it met.
func (s *Store) Repair(ctx context.Context) (int, error) {
	defer s.observe("intents.repair", time.Now())
	n := 0
	var first error
	seen := map[string]bool{}
	for ctx.Err() == nil {
		cutoff := time.Now().UTC().Add(-s.opts.IntentGrace)
		due, err := findAll[intentDoc](ctx, s, s.coll("intents"), "intents.find",
			bson.D{{Key: "at", Value: bson.D{{Key: "$lte", Value: cutoff}}}}, options.Find().SetSort(bson.D{asc("at")}).SetLimit(100))
		if err != nil {
			return n, cmp.Or(first, err)
		}
		fresh := 0
		for _, d := range due {
			if ctx.Err() != nil || seen[d.ID] {
				continue // one run per intent per Repair: one that failed waits for the next
			}
			seen[d.ID] = true
			fresh++
			claimed := time.Now().UTC()
			res, err := s.coll("intents").UpdateOne(ctx, bson.D{{Key: "_id", Value: d.ID}, {Key: "at", Value: d.At}},
				set(bson.E{Key: "at", Value: claimed}))
			if err == nil && res.MatchedCount == 0 {
				continue // finished or claimed elsewhere meanwhile
			}
			if err == nil {
				err = s.apply(ctx, d, 0)
				if errors.Is(err, errEditedSince) {
					err = nil // nothing left to do
				}
			}
			if err == nil && d.Settling {
				// Deleted unless a write's settle moved it meanwhile.
				_, err = s.coll("intents").DeleteOne(ctx, bson.D{{Key: "_id", Value: d.ID}, {Key: "at", Value: claimed}})
				err = s.wrap("delete intent", err)
			} else if err == nil {
				s.done(ctx, d)
				n++
			}
			if err != nil {
				first = cmp.Or(first, fmt.Errorf("intent %s (%s): %w", d.ID, d.Kind, err))
			}
		}
		if fresh == 0 {
			break
		}
	}
	if err := s.settleFavorites(ctx); err != nil {
		first = cmp.Or(first, fmt.Errorf("settle favorites: %w", err))
	}
	return n, first
}

// layoutRound is a Repair round's part in a layout change (the heartbeat
// goes first, on its own): the contract step when it is due (in a release
// that contracts: ContractBeside), the index
// builds that are missing (every tenth round: a start's builds may have
// stopped with their instance) and old heartbeats swept.
func (s *Store) layoutRound(ctx context.Context) error {
	var err error
	if s.contract {
		if contracted, cerr := s.Contract(ctx); cerr != nil {
			err = errors.Join(err, fmt.Errorf("contract layout %d: %w", s.layout, cerr))
		} else if contracted && s.OnContract != nil {
			s.OnContract(s.layout)
		}
	}
	if s.repairRounds++; s.repairRounds%10 == 0 {
		s.buildBehind(ctx) // reported to OnIndexBuild
		err = errors.Join(err, s.sweepHeartbeats(ctx))
	}
	return err
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
		// The heartbeat first, on its own deadline: a long Repair round must
		// not let it lapse (a lapsed one lets the release after contract
		// while this instance serves).
		hctx, hcancel := context.WithTimeout(ctx, interval/2)
		herr := s.Heartbeat(hctx)
		hcancel()
		rctx, cancel := context.WithTimeout(ctx, interval)
		n, err := s.Repair(rctx)
		// Housekeeping on the same beat, whatever Repair met: sessions and
		// quota windows past their end (each instance sweeps; a delete
		// twice is one).
		_, serr := s.SweepSessions(rctx, time.Now())
		_, qerr := s.SweepQuotas(rctx, time.Now())
		_, kerr := s.SweepKeys(rctx, time.Now())
		err = errors.Join(herr, err, serr, qerr, kerr, s.layoutRound(rctx))
		cancel()
		if (n > 0 || err != nil) && report != nil && ctx.Err() == nil {
			report(n, err)
		}
	}
}

package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"webstack/app/conduit"
)

// A layout change rolls out in two steps, expand and contract, so that
// the release that makes it runs beside the one before on one database:
//
//  1. expand: the new release's first instance records the new layout
//     (Migrate) and writes what the old release reads (it ignores what it
//     does not know); old instances keep running, and may still start;
//  2. contract, in the release after (ContractBeside): once no instance
//     of the old layout is left (their heartbeats have stopped, and the
//     rollout of the release that expanded is over), one instance records
//     that old releases may no longer start and runs the layout's
//     contract steps (Contract, from Repair) — here: recount every
//     article's comments, which the old release did not count, and drop
//     the indexes the layout no longer has.
//
// Heartbeats are meta documents "instance/<id>" {layout, seen}, written at
// start (before the layout is read) and every Repair round. Contract
// records first, then looks for heartbeats: an old instance that starts
// meanwhile either wrote its heartbeat before the look (Contract sees it
// and steps back) or reads the record after Contract wrote it (and
// refuses to start). DDL (index builds and drops) takes a lease first:
// DocumentDB fails a background index build when another createIndex or
// dropIndex reaches its collection ("Troubleshooting indexes").

// heartbeatTTL is how long an instance's heartbeat says it runs: several
// Repair rounds (DefaultIntentGrace/2 apart).
const heartbeatTTL = 2 * time.Minute

// instancePrefix starts the _id of every heartbeat in meta; instanceEnd is
// the first _id after them (a range on _id finds them all).
const (
	instancePrefix = "instance/"
	instanceEnd    = "instance0"
)

// Heartbeat records that this instance runs, with its layout.
func (s *Store) Heartbeat(ctx context.Context) error {
	now := time.Now().UTC()
	_, err := s.coll("meta").UpdateOne(ctx, byID(instancePrefix+s.instance),
		bson.D{{Key: "$set", Value: bson.D{{Key: "layout", Value: s.layout}}}, {Key: "$max", Value: bson.D{{Key: "seen", Value: now}}}},
		options.UpdateOne().SetUpsert(true))
	if isDuplicate(err) { // its own first upsert, its reply lost, sent again
		err = nil
	}
	if err != nil {
		return fmt.Errorf("record this instance's heartbeat: %w", classify(err))
	}
	return nil
}

// endHeartbeat removes this instance's heartbeat (it is not running).
func (s *Store) endHeartbeat(ctx context.Context) {
	_, _ = s.coll("meta").DeleteOne(ctx, byID(instancePrefix+s.instance))
}

// olderInstances counts the instances of a layout before s.layout that
// beat within heartbeatTTL (stopping at 1).
func (s *Store) olderInstances(ctx context.Context) (int, error) {
	return s.count(ctx, s.coll("meta"), "meta.instances", bson.D{
		{Key: "_id", Value: bson.D{{Key: "$gte", Value: instancePrefix}, {Key: "$lt", Value: instanceEnd}}},
		{Key: "layout", Value: bson.D{{Key: "$lt", Value: s.layout}}},
		{Key: "seen", Value: bson.D{{Key: "$gt", Value: time.Now().UTC().Add(-heartbeatTTL)}}},
	}, 1)
}

// sweepHeartbeats removes heartbeats of instances gone an hour.
func (s *Store) sweepHeartbeats(ctx context.Context) error {
	_, err := s.coll("meta").DeleteMany(ctx, bson.D{
		{Key: "_id", Value: bson.D{{Key: "$gte", Value: instancePrefix}, {Key: "$lt", Value: instanceEnd}}},
		{Key: "seen", Value: bson.D{{Key: "$lt", Value: time.Now().UTC().Add(-time.Hour)}}},
	})
	return s.wrap("sweep heartbeats", err)
}

// ddlLease is how long a lease on DDL holds without being renewed.
const ddlLease = 2 * time.Minute

// withDDLLease runs f holding meta "ddl" (one instance at a time builds
// or drops indexes), renewed while f runs; ok is false when another
// instance holds it.
func (s *Store) withDDLLease(ctx context.Context, f func(ctx context.Context) error) (ok bool, err error) {
	take := func(ctx context.Context) (bool, error) {
		now := time.Now().UTC()
		_, err := s.coll("meta").UpdateOne(ctx, bson.D{{Key: "_id", Value: "ddl"},
			{Key: "$or", Value: bson.A{bson.D{{Key: "owner", Value: s.instance}}, bson.D{{Key: "until", Value: bson.D{{Key: "$lt", Value: now}}}}}}},
			set(bson.E{Key: "owner", Value: s.instance}, bson.E{Key: "until", Value: now.Add(ddlLease)}), options.UpdateOne().SetUpsert(true))
		if isDuplicate(err) {
			return false, nil // held by another: the upsert met its document
		}
		return err == nil, s.wrap("take the DDL lease", err)
	}
	if ok, err := take(ctx); !ok || err != nil {
		return false, err
	}
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	renewed := make(chan struct{})
	go func() {
		defer close(renewed)
		t := time.NewTicker(ddlLease / 4)
		defer t.Stop()
		for {
			select {
			case <-fctx.Done():
				return
			case <-t.C:
				if ok, _ := take(fctx); !ok && fctx.Err() == nil {
					cancel() // lost it: stop, another instance goes on
					return
				}
			}
		}
	}()
	err = f(fctx)
	cancel()
	<-renewed
	rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer rcancel()
	_, _ = s.coll("meta").DeleteOne(rctx, bson.D{{Key: "_id", Value: "ddl"}, {Key: "owner", Value: s.instance}})
	return true, err
}

// EnsureIndexes builds the indexes that are missing (by keys and options,
// see Migrate), one at a time, in the background, under the DDL lease; it
// returns how many it built. Once the layout is contracted (no release
// before it may start), it also drops the indexes that carry the store's
// index names but are not what the store asks for (an index whose keys
// changed under its name: the new one was made under a digest name).
func (s *Store) EnsureIndexes(ctx context.Context) (built int, err error) {
	s.ddl.Lock()
	defer s.ddl.Unlock()
	return s.ensureIndexes(ctx)
}

// ensureIndexes is EnsureIndexes, s.ddl held.
func (s *Store) ensureIndexes(ctx context.Context) (built int, err error) {
	missing, err := s.missingIndexes(ctx)
	if err != nil {
		return 0, err
	}
	var rec layoutDoc
	if err := s.findOne(ctx, s.coll("meta"), "meta.find", byID("layout"), &rec); err != nil {
		return 0, err
	}
	contracted := rec.newest() == s.layout && rec.Oldest == s.layout
	var stale []indexSpec
	var staleColl []string
	if contracted {
		for _, coll := range collections() {
			specs, err := s.listIndexes(ctx, coll)
			if err != nil {
				return 0, err
			}
			for _, sp := range specs {
				if s.superseded(coll, sp) {
					stale, staleColl = append(stale, sp), append(staleColl, coll)
				}
			}
		}
	}
	if len(missing) == 0 && len(stale) == 0 {
		return 0, nil
	}
	_, err = s.withDDLLease(ctx, func(ctx context.Context) error {
		for _, ix := range missing {
			if err := s.buildIndexes(ctx, []index{ix}); err != nil {
				return err
			}
			built++
		}
		for i, sp := range stale {
			err := s.cur.Load().db.RunCommand(ctx, bson.D{{Key: "dropIndexes", Value: staleColl[i]}, {Key: "index", Value: sp.Name}}).Err()
			if err != nil {
				return fmt.Errorf("drop index %s.%s: %w", staleColl[i], sp.Name, classify(err))
			}
		}
		return nil
	})
	return built, err
}

// superseded reports an index of coll named as one of the store's (its
// name, or its name and a digest) that is not that index, while the
// index the store asks for is there.
func (s *Store) superseded(coll string, sp indexSpec) bool {
	for _, ix := range indexes() {
		if ix.coll != coll || (sp.Name != ix.name && !strings.HasPrefix(sp.Name, ix.name+"_")) {
			continue
		}
		return !ix.same(sp)
	}
	return false
}

// Contract runs the contract step of this release's layout change when it
// is due (a release with ContractBeside runs it from Repair): the layout is s.layout, releases of the layout before may still
// start, and none of their instances beats. It records that they may no
// longer start, then runs the steps (resumable: an instance that stops
// halfway leaves them to the next round, anywhere), and reports whether
// it contracted.
func (s *Store) Contract(ctx context.Context) (bool, error) {
	var doc struct { // layoutDoc's fields, and the contract's flag
		Oldest      int  `bson:"version"`
		Newest      int  `bson:"newest"`
		Contracting bool `bson:"contracting"`
	}
	if err := s.findOne(ctx, s.coll("meta"), "meta.find", byID("layout"), &doc); err != nil {
		return false, err
	}
	rec := layoutDoc{Oldest: doc.Oldest, Newest: doc.Newest}
	if rec.newest() != s.layout {
		return false, nil // another release's rollout
	}
	if !doc.Contracting {
		if rec.Oldest == s.layout {
			return false, nil // contracted already
		}
		// Recorded first, looked after (see the comment above).
		res, err := s.coll("meta").UpdateOne(ctx, rec.filter(),
			set(bson.E{Key: "version", Value: s.layout}, bson.E{Key: "newest", Value: s.layout}, bson.E{Key: "contracting", Value: true}))
		if err != nil || res.MatchedCount == 0 {
			return false, s.wrap("record the contract", err)
		}
		// A contract that stepped back may have counted some articles
		// before: this one counts them all again.
		if _, err := s.coll("meta").DeleteOne(ctx, byID(fmt.Sprintf("contract/%d", s.layout))); err != nil {
			return false, s.wrap("reset the contract's progress", err)
		}
		if n, err := s.olderInstances(ctx); err != nil || n > 0 {
			// An instance of the layout before runs (or it is unknown): step back.
			_, rerr := s.coll("meta").UpdateOne(context.WithoutCancel(ctx), bson.D{{Key: "_id", Value: "layout"}, {Key: "contracting", Value: true}},
				bson.D{{Key: "$set", Value: bson.D{{Key: "version", Value: rec.Oldest}}}, {Key: "$unset", Value: bson.D{{Key: "contracting", Value: ""}}}})
			return false, errors.Join(err, s.wrap("step back from the contract", rerr))
		}
	}
	if err := s.contractSteps(ctx); err != nil {
		return false, err
	}
	_, err := s.coll("meta").UpdateOne(ctx, bson.D{{Key: "_id", Value: "layout"}, {Key: "newest", Value: s.layout}},
		bson.D{{Key: "$unset", Value: bson.D{{Key: "contracting", Value: ""}}}})
	return err == nil, s.wrap("record the contract done", err)
}

// contractBatch is how many articles one step of the recount takes.
const contractBatch = 100

// contractSteps are layout 4's: every article's comments counted again
// (an instance of layout 3 added some without counting them), a batch at
// a time after the last article done (meta "contract/4" {after}). A count
// is set over the value read before it, compared: a comment added
// meanwhile moves it, and the article is counted again in the next pass
// of its batch (a count that meets a concurrent comment errs high, never
// low). Then the indexes are settled (EnsureIndexes drops superseded
// ones now).
func (s *Store) contractSteps(ctx context.Context) error {
	progress := fmt.Sprintf("contract/%d", s.layout)
	for {
		var p struct {
			After string `bson:"after"`
		}
		if err := s.findOne(ctx, s.coll("meta"), "meta.find", byID(progress), &p); err != nil && !errNotFound(err) {
			return err
		}
		docs, err := findAll[struct {
			ID       string `bson:"_id"`
			Comments *int   `bson:"comments"`
		}](ctx, s, s.coll("articles"), "articles.contract", bson.D{{Key: "_id", Value: bson.D{{Key: "$gt", Value: p.After}}}},
			options.Find().SetSort(bson.D{asc("_id")}).SetLimit(contractBatch).SetProjection(bson.D{{Key: "comments", Value: 1}}))
		if err != nil {
			return err
		}
		if len(docs) == 0 {
			s.buildBehind(ctx) // drops the superseded indexes now
			return nil
		}
		for _, d := range docs {
			for range 3 {
				n, err := s.count(ctx, s.coll("comments"), "comments.count", bson.D{{Key: "aid", Value: d.ID}}, conduit.MaxCommentsPerArticle)
				if err != nil {
					return err
				}
				was := bson.E{Key: "comments", Value: bson.D{{Key: "$exists", Value: false}}}
				if d.Comments != nil {
					was = bson.E{Key: "comments", Value: *d.Comments}
				}
				res, err := s.coll("articles").UpdateOne(ctx, bson.D{{Key: "_id", Value: d.ID}, was}, set(bson.E{Key: "comments", Value: n}))
				if err != nil {
					return s.wrap("recount comments", err)
				}
				if res.MatchedCount == 1 {
					break
				}
				// A comment came or went meanwhile (or the article went): read
				// it again and count again.
				var cur struct {
					Comments *int `bson:"comments"`
				}
				if err := s.findOne(ctx, s.coll("articles"), "articles.find", byID(d.ID), &cur,
					options.FindOne().SetProjection(bson.D{{Key: "comments", Value: 1}})); err != nil {
					if errNotFound(err) {
						break
					}
					return err
				}
				d.Comments = cur.Comments
			}
		}
		last := docs[len(docs)-1].ID
		if _, err := s.coll("meta").UpdateOne(ctx, byID(progress), set(bson.E{Key: "after", Value: last}), options.UpdateOne().SetUpsert(true)); err != nil && !isDuplicate(err) {
			return s.wrap("record the contract's progress", err)
		}
	}
}

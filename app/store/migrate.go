package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"webstack/app/conduit"
)

// Layout is the version of the data layout this store reads and writes
// (see the package comment).
//
// Layout 3 (issue #28) is layout 2 with versions on articles, accounts and
// relations, tombstones, version-fenced deletions and idempotency records;
// a layout-2 database is taken as it is (nothing to convert), with the
// layout-2 instances stopped first.
//
// Layout 4 (issue #29) is layout 3 with each article counting its comments
// (articles.comments, kept by AddComment and DeleteComment: the bound
// conduit.MaxCommentsPerArticle). It rolls out beside layout 3 (Beside):
// a layout-3 instance ignores the field and does not keep it, so an
// article commented on through one counts low; the contract step (see
// Contract) recounts every article once no layout-3 instance is left.
const Layout = 4

// Beside is the layout of the release this one rolls out beside: its
// instances run on the same database at the same time, each writing what
// the other reads (expand/contract, see Migrate).
const Beside = 3

// ContractBeside says whether this release contracts Beside's layout (see
// Contract) once none of its instances beats. The release that brings a
// layout only expands: the release before it may not beat (layout 3
// knows no heartbeats), so only the end of this release's own rollout says
// that none of its instances is left. The release after sets it.
const ContractBeside = false

// upgrades are earlier layouts taken as Beside (nothing to convert), their
// instances stopped before this release starts.
var upgrades = []int{2}

// ErrLayout is why Migrate refuses a database: it holds a layout this
// release does not run on.
var ErrLayout = errors.New("the database holds data in a layout this conduit does not read")

// layoutDoc is meta "layout". Its "version" is the oldest layout whose
// releases may start — what releases of layout 3 and before read, and
// accept only when it is theirs: so during a rollout beside layout 3 it
// stays 3, and a layout-3 instance may still start (a scale-out, a
// rollback). "newest" is the newest layout started on it, the one the data
// is in (absent in a record written before layout 4: the version).
type layoutDoc struct {
	Oldest int `bson:"version"`
	Newest int `bson:"newest,omitempty"`
}

func (l layoutDoc) newest() int {
	if l.Newest == 0 {
		return l.Oldest
	}
	return l.Newest
}

// filter is the filter on the record as read (compare and set).
func (l layoutDoc) filter() bson.D {
	f := bson.D{{Key: "_id", Value: "layout"}, {Key: "version", Value: l.Oldest}}
	if l.Newest == 0 {
		return append(f, bson.E{Key: "newest", Value: bson.D{{Key: "$exists", Value: false}}})
	}
	return append(f, bson.E{Key: "newest", Value: l.Newest})
}

// index is one index the store needs, and what it serves.
type index struct {
	coll, name string
	keys       bson.D
	unique     bool
	serves     string
}

// asc and desc build index keys.
func asc(field string) bson.E  { return bson.E{Key: field, Value: 1} }
func desc(field string) bson.E { return bson.E{Key: field, Value: -1} }

// indexes are every index the store's queries use (DocumentDB 5.0
// supports each kind: single-field, compound, multikey, unique). Lists sort
// on {createdAt: -1, _id: -1} (the id breaks ties, so pages are stable)
// and each list index ends with both keys, so the index walk is the order
// and a page reads offset+limit entries, not every match. Lookups by _id
// use the index every collection has.
func indexes() []index {
	return []index{
		{"users", "username", bson.D{asc("usernameKey")}, true, "unique usernames (any case); profiles and author filters by name"},
		{"users", "email", bson.D{asc("email")}, true, "unique emails; sign-in by email"},
		{"follows", "by_follower", bson.D{asc("follower"), asc("followee")}, false, "whom a viewer follows (the feed), how many (the bound)"},
		{"favorites", "by_user", bson.D{asc("uid"), desc("articleCreatedAt"), desc("aid")}, false, "a person's favorites, newest article first (favorited= lists, paged, and their count)"},
		{"favorites", "by_article", bson.D{asc("aid")}, false, "an article's favorites: its count recounted, removed with it"},
		{"articles", "slug", bson.D{asc("slug")}, true, "an article by its slug; unique, so a rename is one update"},
		{"articles", "list_recent", bson.D{desc("createdAt"), desc("_id")}, false, "the global list; the newest articles' tags"},
		{"articles", "list_by_author", bson.D{asc("authorId"), desc("createdAt"), desc("_id")}, false, "author= lists, the feed ({authorId: {$in}}, merged per author), their counts"},
		{"articles", "settle_due", bson.D{asc("favSettle")}, false, "articles whose favorites settle (Repair counts them once more)"},
		{"articles", "list_by_tag", bson.D{asc("tagList"), desc("createdAt"), desc("_id")}, false, "tag= lists (multikey), their counts, a tag's recount"},
		{"comments", "by_article", bson.D{asc("aid"), asc("createdAt"), asc("_id")}, false, "an article's comments, oldest first, a page from a cursor; removed with it"},
		{"intents", "by_age", bson.D{asc("at")}, false, "interrupted writes, oldest first (Repair)"},
		{"sessions", "by_exp", bson.D{asc("exp")}, false, "sessions past their lifetime (SweepSessions)"},
		{"sessions", "by_user", bson.D{asc("uid"), desc("exp"), desc("_id")}, false, "an account's sessions, newest first (the bound: StartSession)"},
		{"quotas", "by_exp", bson.D{asc("exp")}, false, "quota windows that ended (SweepQuotas)"},
		{"idempotency", "by_exp", bson.D{asc("exp")}, false, "idempotency keys' answers past their day (SweepKeys)"},
	}
}

// collections are every collection the store uses.
func collections() []string {
	return []string{"users", "follows", "favorites", "articles", "comments", "intents", "sessions", "quotas", "idempotency", "meta"}
}

// earlierCollections are collections only layout 1 had: a database that
// holds one was written by an earlier conduit.
var earlierCollections = []string{"usernames", "emails", "threads_00", "tags"}

// Migrate prepares the database for this release, and is idempotent:
//
//   - the layout: a fresh database is recorded as s.layout; one recorded
//     as s.beside is expanded (recorded as s.layout, its oldest kept: the
//     release before keeps running beside this one, and may still start —
//     a rollback during the rollout); one recorded as s.layout, or as a
//     later layout whose rollout still lets s.layout start (oldest), is
//     taken. Any other is refused, by number, with what to do;
//   - this instance's heartbeat (meta "instance/<id>": its layout), before
//     the layout is read, so that Contract never misses an instance that
//     started on the layout it retires (see Contract);
//   - the collections and the indexes: compared by their keys and options,
//     not their names (an index whose name another keys hold is made
//     under its name and a digest of its keys); on a fresh database they
//     are built at once, on one that holds data in the background
//     (BuildIndexes: a build does not block the start nor, with
//     background: true, the collection's writes). Existing indexes are
//     listed first and left alone: re-creating them is a no-op on MongoDB
//     and DocumentDB, but crashes FerretDB 1.24's SQLite handler.
func (s *Store) Migrate(ctx context.Context) error {
	db := s.cur.Load().db
	have, err := db.ListCollectionNames(ctx, bson.D{})
	if err != nil {
		return fmt.Errorf("list collections: %w", classify(err))
	}
	if !slices.Contains(have, "meta") {
		if err := s.notLayout1(have); err != nil {
			return err
		}
		if err := db.CreateCollection(ctx, "meta"); err != nil && !isNamespaceExists(err) {
			return fmt.Errorf("create collection meta: %w", classify(err))
		}
	}
	if err := s.Heartbeat(ctx); err != nil {
		return err
	}
	fresh, err := s.takeLayout(ctx, have)
	if err != nil {
		s.endHeartbeat(ctx)
		return err
	}
	for _, name := range collections() {
		if slices.Contains(have, name) || name == "meta" {
			continue
		}
		// Made up front, so that none is created under load (FerretDB then
		// changes its SQLite schema while other statements run).
		if err := db.CreateCollection(ctx, name); err != nil && !isNamespaceExists(err) {
			return fmt.Errorf("create collection %s: %w", name, classify(err))
		}
	}
	if fresh {
		missing, err := s.missingIndexes(ctx)
		if err != nil {
			return err
		}
		return s.buildIndexes(ctx, missing)
	}
	// A database that holds data: its builds may take long, and run behind
	// the start (and again from Repair, should this one stop).
	s.buildBehind(ctx)
	return nil
}

// buildBehind runs EnsureIndexes behind the caller, detached from ctx and
// bounded by indexBuildTimeout, unless this process runs one already (one
// createIndexes at a time per collection: DocumentDB fails a background
// build that meets another's DDL).
func (s *Store) buildBehind(ctx context.Context) {
	if !s.ddl.TryLock() {
		return
	}
	s.indexBuilds.Add(1)
	go func() {
		defer s.indexBuilds.Done()
		defer s.ddl.Unlock()
		bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), indexBuildTimeout)
		defer cancel()
		built, err := s.ensureIndexes(bctx)
		if s.OnIndexBuild != nil && (built > 0 || err != nil) {
			s.OnIndexBuild(built, err)
		}
	}()
}

// indexBuildTimeout bounds a start's background index builds.
const indexBuildTimeout = 6 * time.Hour

// takeLayout reads the layout record and takes the database as described
// at Migrate, or refuses it. fresh is true for a database with no data.
func (s *Store) takeLayout(ctx context.Context, have []string) (fresh bool, err error) {
	meta := s.cur.Load().db.Collection("meta")
	for range 4 {
		var rec layoutDoc
		err := meta.FindOne(ctx, byID("layout")).Decode(&rec)
		switch {
		case errors.Is(err, mongo.ErrNoDocuments):
			// Layout 1 had a meta collection too (its gens, its comment
			// sequence), without this record.
			if err := s.notLayout1(have); err != nil {
				return false, err
			}
			_, err = meta.InsertOne(ctx, bson.D{{Key: "_id", Value: "layout"}, {Key: "version", Value: s.layout}, {Key: "newest", Value: s.layout}})
			if isDuplicate(err) {
				continue // another instance recorded it first: read it
			}
			if err != nil {
				return false, fmt.Errorf("record the data layout: %w", classify(err))
			}
			return !slices.Contains(have, "articles"), nil
		case err != nil:
			return false, fmt.Errorf("read the data layout: %w", classify(err))
		}
		oldest, newest := rec.Oldest, rec.newest()
		if slices.Contains(upgrades, oldest) {
			oldest = s.beside // nothing to convert; its instances stopped first
		}
		newest = max(newest, oldest)
		switch {
		case newest == s.layout && oldest == rec.Oldest, newest > s.layout && s.layout >= oldest:
			return false, nil // this layout, or a rollout beside a later one
		case newest > s.layout:
			return false, fmt.Errorf("%w: it is layout %d, contracted so that releases of layout %d or later start (this one is layout %d): "+
				"deploy a release of layout %d or later, or restore a snapshot taken before the contract", ErrLayout, newest, oldest, s.layout, oldest)
		case newest != s.layout && newest != s.beside:
			return false, fmt.Errorf("%w: it is layout %d, and this conduit (layout %d) rolls out beside layout %d only: "+
				"deploy the releases in between first, or start on an empty database", ErrLayout, newest, s.layout, s.beside)
		}
		// Expand: the newest layout is this one, the release before still
		// allowed to start (a layout-2 record becomes 3: layout-2 builds
		// refuse it from then on).
		res, err := meta.UpdateOne(ctx, rec.filter(), set(bson.E{Key: "version", Value: oldest}, bson.E{Key: "newest", Value: s.layout}))
		if err != nil {
			return false, fmt.Errorf("record the data layout: %w", classify(err))
		}
		if res.MatchedCount == 1 {
			return false, nil
		}
		// Another instance changed it meanwhile: read it again.
	}
	return false, fmt.Errorf("record the data layout: it kept changing: %w", conduit.Unavailable(errors.New("try again")))
}

// notLayout1 refuses a database that holds a collection only layout 1 had.
func (s *Store) notLayout1(have []string) error {
	for _, c := range earlierCollections {
		if slices.Contains(have, c) {
			return fmt.Errorf("%w: it has the collection %q of layout 1, and this conduit reads layout %d only. "+
				"The project is pre-release and converts nothing: start on an empty database "+
				"(conduit local: another --data-dir, or remove this one)", ErrLayout, c, s.layout)
		}
	}
	return nil
}

// isNamespaceExists reports a collection another instance created first.
func isNamespaceExists(err error) bool {
	var ce mongo.CommandError
	return errors.As(err, &ce) && ce.Code == 48
}

// indexSpec is an index as listIndexes describes it.
type indexSpec struct {
	Name   string `bson:"name"`
	Key    bson.D `bson:"key"`
	Unique bool   `bson:"unique"`
	Sparse bool   `bson:"sparse"`
	// An index with a partial filter is never one the store asked for.
	Partial bson.Raw `bson:"partialFilterExpression"`
}

// same reports whether sp is the index ix: the same keys in the same
// order and directions, and the same options.
func (ix index) same(sp indexSpec) bool {
	if len(sp.Key) != len(ix.keys) || sp.Unique != ix.unique || sp.Sparse || len(sp.Partial) > 0 {
		return false
	}
	for i, k := range ix.keys {
		a, _ := direction(k.Value)
		b, _ := direction(sp.Key[i].Value)
		if sp.Key[i].Key != k.Key || a != b {
			return false
		}
	}
	return true
}

// digestName is ix's name with a digest of its keys and options: the name
// it is made under when another index holds its name.
func (ix index) digestName() string {
	h := sha256.New()
	for _, k := range ix.keys {
		d, _ := direction(k.Value)
		fmt.Fprintf(h, "%s:%d,", k.Key, d)
	}
	fmt.Fprintf(h, "unique=%t", ix.unique)
	return ix.name + "_" + hex.EncodeToString(h.Sum(nil))[:8]
}

// direction reads an index key's 1 or -1.
func direction(v any) (int, bool) {
	switch x := v.(type) {
	case int:
		return x, true
	case int32:
		return int(x), true
	case int64:
		return int(x), true
	case float64:
		return int(x), true
	}
	return 0, false
}

// listIndexes lists the indexes of coll.
func (s *Store) listIndexes(ctx context.Context, coll string) ([]indexSpec, error) {
	cur, err := s.cur.Load().db.Collection(coll).Indexes().List(ctx)
	if err != nil {
		return nil, fmt.Errorf("list indexes on %s: %w", coll, classify(err))
	}
	var specs []indexSpec
	if err := cur.All(ctx, &specs); err != nil {
		return nil, fmt.Errorf("list indexes on %s: %w", coll, classify(err))
	}
	return specs, nil
}

// missingIndexes are the indexes no existing index is (by keys and
// options), each with the name it is to be made under.
func (s *Store) missingIndexes(ctx context.Context) ([]index, error) {
	existing := map[string][]indexSpec{}
	var missing []index
	for _, ix := range indexes() {
		specs, ok := existing[ix.coll]
		if !ok {
			var err error
			if specs, err = s.listIndexes(ctx, ix.coll); err != nil {
				return nil, err
			}
			existing[ix.coll] = specs
		}
		if slices.ContainsFunc(specs, ix.same) {
			continue
		}
		if slices.ContainsFunc(specs, func(sp indexSpec) bool { return sp.Name == ix.name }) {
			ix.name = ix.digestName() // the name is another index's: Contract drops that one
		}
		missing = append(missing, ix)
	}
	return missing, nil
}

// buildIndexes makes ixs, each in the background (DocumentDB: reads and
// writes of the collection go on during the build). The driver's index
// view has no background option (MongoDB 4.2+ ignores it), so the
// command is sent as it is.
func (s *Store) buildIndexes(ctx context.Context, ixs []index) error {
	db := s.cur.Load().db
	for _, ix := range ixs {
		spec := bson.D{{Key: "key", Value: ix.keys}, {Key: "name", Value: ix.name}, {Key: "background", Value: true}}
		if ix.unique {
			spec = append(spec, bson.E{Key: "unique", Value: true})
		}
		err := db.RunCommand(ctx, bson.D{{Key: "createIndexes", Value: ix.coll}, {Key: "indexes", Value: bson.A{spec}}}).Err()
		if err != nil && !isIndexExists(err) {
			return fmt.Errorf("create index %s.%s: %w", ix.coll, ix.name, classify(err))
		}
	}
	return nil
}

// isIndexExists reports an index another instance made first under the
// same name with the same keys (85 IndexOptionsConflict and 86
// IndexKeySpecsConflict are other keys or options: a real error).
func isIndexExists(err error) bool {
	var ce mongo.CommandError
	return errors.As(err, &ce) && ce.Code == 68 // IndexAlreadyExists
}

// WaitForIndexes waits for the index builds Migrate started in the
// background (tests; a shutdown does not wait: a build interrupted is
// started again by the next instance's Migrate).
func (s *Store) WaitForIndexes() { s.indexBuilds.Wait() }

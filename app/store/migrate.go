package store

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Layout is the version of the data layout this store reads and writes
// (see the package comment). It is recorded in meta "layout".
//
// Layout 3 (issue #28) is layout 2 with versions on articles, accounts and
// relations, relations and comments turned off as tombstones, version-fenced
// deletions (their intents a kind of their own) and idempotency records:
// nothing to convert (a document without a version is version 0), so a
// layout-2 database is taken and recorded as 3. A layout-2 build refuses it
// at start; one already running beside this one would write as layout 2
// does (a favorite of a tombstone answered without a write, an edit that
// does not move the version), so layout-2 instances are stopped before
// this release starts (docs/deploy.md), not rolled over.
const Layout = 3

// upgrades are the earlier layouts this store takes as they are.
var upgrades = []int{2}

// ErrLayout is why Migrate refuses a database: it holds another layout.
var ErrLayout = errors.New("the database holds data in a layout this conduit does not read")

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
		{"follows", "by_follower", bson.D{asc("follower"), asc("followee")}, false, "whom a viewer follows (the feed)"},
		{"favorites", "by_user", bson.D{asc("uid"), desc("articleCreatedAt"), desc("aid")}, false, "a person's favorites, newest article first (favorited= lists, paged, and their count)"},
		{"favorites", "by_article", bson.D{asc("aid")}, false, "an article's favorites: its count recounted, removed with it"},
		{"articles", "slug", bson.D{asc("slug")}, true, "an article by its slug; unique, so a rename is one update"},
		{"articles", "list_recent", bson.D{desc("createdAt"), desc("_id")}, false, "the global list; the newest articles' tags"},
		{"articles", "list_by_author", bson.D{asc("authorId"), desc("createdAt"), desc("_id")}, false, "author= lists, the feed ({authorId: {$in}}, merged per author), their counts"},
		{"articles", "settle_due", bson.D{asc("favSettle")}, false, "articles whose favorites settle (Repair counts them once more)"},
		{"articles", "list_by_tag", bson.D{asc("tagList"), desc("createdAt"), desc("_id")}, false, "tag= lists (multikey), their counts, a tag's recount"},
		{"comments", "by_article", bson.D{asc("aid"), asc("createdAt"), asc("_id")}, false, "an article's comments, oldest first; removed with it"},
		{"intents", "by_age", bson.D{asc("at")}, false, "interrupted writes, oldest first (Repair)"},
		{"sessions", "by_exp", bson.D{asc("exp")}, false, "sessions past their lifetime (SweepSessions)"},
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

// Migrate prepares the database: it refuses one that holds another layout
// (the project is pre-release: there is no conversion), creates the
// collections and indexes that are missing and records the layout. It is
// idempotent. Existing indexes are listed first and left alone:
// re-creating them is a no-op on MongoDB and DocumentDB, but crashes
// FerretDB 1.24's SQLite handler.
func (s *Store) Migrate(ctx context.Context) error {
	db := s.cur.Load().db
	have, err := db.ListCollectionNames(ctx, bson.D{})
	if err != nil {
		return fmt.Errorf("list collections: %w", classify(err))
	}
	if err := s.checkLayout(ctx, have); err != nil {
		return err
	}
	for _, name := range collections() {
		if slices.Contains(have, name) {
			continue
		}
		// Made up front, so that none is created under load (FerretDB then
		// changes its SQLite schema while other statements run).
		if err := db.CreateCollection(ctx, name); err != nil && !isNamespaceExists(err) {
			return fmt.Errorf("create collection %s: %w", name, classify(err))
		}
	}
	existing := map[string]map[string]bool{}
	for _, ix := range indexes() {
		names, ok := existing[ix.coll]
		if !ok {
			if names, err = s.indexNames(ctx, ix.coll); err != nil {
				return err
			}
			existing[ix.coll] = names
		}
		if names[ix.name] {
			continue
		}
		model := mongo.IndexModel{Keys: ix.keys, Options: options.Index().SetName(ix.name).SetUnique(ix.unique)}
		if _, err := db.Collection(ix.coll).Indexes().CreateOne(ctx, model); err != nil {
			return fmt.Errorf("create index %s.%s: %w", ix.coll, ix.name, classify(err))
		}
	}
	_, err = db.Collection("meta").UpdateOne(ctx, byID("layout"), set(bson.E{Key: "version", Value: Layout}), options.UpdateOne().SetUpsert(true))
	if isDuplicate(err) {
		// Two instances starting on an empty database both inserted it
		// (DocumentDB does not retry a raced upsert): the other's is there.
		_, err = db.Collection("meta").UpdateOne(ctx, byID("layout"), set(bson.E{Key: "version", Value: Layout}))
	}
	if err != nil {
		return fmt.Errorf("record the data layout: %w", classify(err))
	}
	return nil
}

// checkLayout refuses a database written in another layout.
func (s *Store) checkLayout(ctx context.Context, have []string) error {
	var m struct {
		Version int `bson:"version"`
	}
	err := s.cur.Load().db.Collection("meta").FindOne(ctx, byID("layout")).Decode(&m)
	switch {
	case errors.Is(err, mongo.ErrNoDocuments):
		for _, c := range earlierCollections {
			if slices.Contains(have, c) {
				return fmt.Errorf("%w: it has the collection %q of layout 1, and this conduit reads layout %d only. "+
					"The project is pre-release and converts nothing: start on an empty database "+
					"(conduit local: another --data-dir, or remove this one)", ErrLayout, c, Layout)
			}
		}
		return nil
	case err != nil:
		return fmt.Errorf("read the data layout: %w", classify(err))
	case m.Version != Layout && !slices.Contains(upgrades, m.Version):
		return fmt.Errorf("%w: it is layout %d and this conduit reads layout %d only; run the conduit that wrote it, "+
			"or start on an empty database", ErrLayout, m.Version, Layout)
	}
	return nil
}

// isNamespaceExists reports a collection another instance created first.
func isNamespaceExists(err error) bool {
	var ce mongo.CommandError
	return errors.As(err, &ce) && ce.Code == 48
}

func (s *Store) indexNames(ctx context.Context, coll string) (map[string]bool, error) {
	cur, err := s.cur.Load().db.Collection(coll).Indexes().List(ctx)
	if err != nil {
		return nil, fmt.Errorf("list indexes on %s: %w", coll, classify(err))
	}
	var specs []struct {
		Name string `bson:"name"`
	}
	if err := cur.All(ctx, &specs); err != nil {
		return nil, fmt.Errorf("list indexes on %s: %w", coll, classify(err))
	}
	names := map[string]bool{}
	for _, sp := range specs {
		names[sp.Name] = true
	}
	return names, nil
}

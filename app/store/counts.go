package store

import (
	"context"
	"errors"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"webstack/app/conduit"
)

// counter is a count kept in a document (coll, id) field n, of the
// documents of source matching filter, with a version field ver.
type counter struct {
	coll, id, n, ver string
	source           string
	filter           bson.D
	upsert           bool // the document is made when missing (tags)
}

// recount sets a counter to what it counts and returns the count: it reads
// the counter's version, counts (on the primary, by index), then sets the
// count and the next version only if the version is unchanged, and starts
// again otherwise. Counting instead of adding keeps a count right whatever
// happened to earlier writes (a lost reply, a crash between steps, an
// update sent twice); the compare-and-set keeps two recounts from
// committing out of order: a recount commits only if nothing committed
// since it read the version, so the last commit counted after every
// change whose recount had begun. Every change to what a counter counts
// is followed by a recount (or leaves an intent that Repair recounts).
//
// Its cost is the count: an index range of the counted documents (an
// article's favorites, a tag's articles).
func (s *Store) recount(ctx context.Context, c counter) (int, error) {
	defer s.observe(c.coll+".recount", time.Now())
	for range 8 {
		var cur bson.M
		err := s.findOne(ctx, s.coll(c.coll), c.coll+".find", byID(c.id), &cur,
			options.FindOne().SetProjection(bson.D{{Key: c.ver, Value: 1}}))
		switch {
		case errNotFound(err) && c.upsert:
			cur = bson.M{}
		case err != nil:
			return 0, err
		}
		ver := versionOf(cur[c.ver])
		n, err := s.count(ctx, s.coll(c.source), c.source+".count", c.filter)
		if err != nil {
			return 0, err
		}
		if s.afterCount != nil {
			s.afterCount()
		}
		filter := append(byID(c.id), bson.E{Key: c.ver, Value: ver})
		if ver == 0 {
			// A document made before it had a version (or not made yet):
			// version 0 is the field's absence.
			filter = append(byID(c.id), bson.E{Key: c.ver, Value: bson.D{{Key: "$in", Value: bson.A{nil, int64(0)}}}})
		}
		res, err := s.coll(c.coll).UpdateOne(ctx, filter,
			set(bson.E{Key: c.n, Value: n}, bson.E{Key: c.ver, Value: ver + 1}), options.UpdateOne().SetUpsert(c.upsert))
		switch {
		case isDuplicate(err): // an upsert that lost to another recount's
			continue
		case err != nil:
			return 0, s.wrap("recount "+c.coll, err)
		case res.MatchedCount+res.UpsertedCount == 1:
			return n, nil
		}
	}
	return 0, conduit.Unavailable(errors.New("a count kept changing while it was recounted"))
}

// versionOf reads a version field as the driver decodes it.
func versionOf(v any) int64 {
	switch v := v.(type) {
	case int64:
		return v
	case int32:
		return int64(v)
	case float64:
		return int64(v)
	}
	return 0
}

// recountTags recounts the articles of each tag.
func (s *Store) recountTags(ctx context.Context, tags []string) error {
	for _, t := range tags {
		if _, err := s.recount(ctx, counter{coll: "tags", id: t, n: "n", ver: "ver", upsert: true,
			source: "articles", filter: bson.D{{Key: "tagList", Value: t}}}); err != nil {
			return err
		}
	}
	return nil
}

// MaxTags is how many tags Tags returns: the most used.
const MaxTags = 50

// Tags returns the tags used by at least one article, most used first (at
// most MaxTags), as viewer (nil: nobody) sees them.
func (s *Store) Tags(ctx context.Context, viewer *conduit.User) ([]string, error) {
	load := func(ctx context.Context, fresh bool) ([]string, error) {
		docs, err := findAll[struct {
			ID string `bson:"_id"`
		}](ctx, s, s.reader(fresh, "tags"), "tags.find", bson.D{{Key: "n", Value: bson.D{{Key: "$gt", Value: 0}}}},
			options.Find().SetSort(bson.D{desc("n"), asc("_id")}).SetLimit(MaxTags).SetProjection(bson.D{{Key: "_id", Value: 1}}))
		tags := make([]string, len(docs))
		for i, d := range docs {
			tags[i] = d.ID
		}
		return tags, err
	}
	if s.fresh(viewer) { // who just tagged an article sees the tag
		return load(ctx, true)
	}
	return s.cache.tags.fill(ctx, "tags", func(ctx context.Context) ([]string, error) { return load(ctx, false) })
}

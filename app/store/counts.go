package store

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"webstack/app/conduit"
)

// An article's favoritesCount is recounted, never added to: adding cannot
// be made safe to send twice (a lost reply leaves it unknown whether the
// $inc applied), counting can. After a favorite is added or removed:
//
//  1. markFavorites sets the article's favDirty and moves its favVer on:
//     "a change is not counted yet";
//  2. the recount takes favVer and favDirty as the mark answered them (a
//     findAndModify: no read of its own), counts the article's favorites
//     (on the primary, by_article), and sets favoritesCount and clears
//     favDirty only if favVer has not moved since.
//
// A recount whose compare-and-set fails stops there: favVer moved because
// another change was marked after its read (that change's own recount
// will count it and ours), or because another recount committed — one
// that read favVer after our mark, so counted after our change. A recount
// that finds favDirty clear stops too: a recount that counted after our
// mark has committed. So recounts never wait for one another (a popular
// article's concurrent favorites do not livelock), the last commit always
// counted every change marked before it, and a change whose recount never
// ran leaves favDirty set and an intent that Repair finishes.
//
// The cost is the count: an index range of the article's favorites.

// markFavorites records that the favorites of aid changed and are not
// counted yet, and that they settle (favSettle, $max: a late copy of the
// mark never brings it earlier) Options.LateWrites from now: Repair then
// counts them once more, so a favorite or unfavorite that the server held
// past its request and applied after this recount is counted. The settling
// time rides on the mark's own write: a favorite costs no write for it.
//
// The mark answers with the article's favorites state after it (one
// findAndModify): the recount that follows starts from it instead of
// reading it again.
func (s *Store) markFavorites(ctx context.Context, aid string, settle bool) (favState, error) {
	update := bson.D{{Key: "$set", Value: bson.D{{Key: "favDirty", Value: true}}}, {Key: "$inc", Value: bson.D{{Key: "favVer", Value: int64(1)}}}}
	if settle {
		update = append(update, bson.E{Key: "$max", Value: bson.D{{Key: "favSettle", Value: time.Now().UTC().Add(s.opts.LateWrites)}}})
	}
	var cur favState
	err := s.coll("articles").FindOneAndUpdate(ctx, byID(aid), update, &cur,
		options.FindOneAndUpdate().SetReturnDocument(options.After).SetProjection(favProjection))
	return cur, notFoundAs(s.wrap("mark favorites", err), "article not found")
}

// favState is what a recount reads of an article.
type favState struct {
	Ver   int64 `bson:"favVer"`
	Dirty bool  `bson:"favDirty"`
	N     int   `bson:"favoritesCount"`
}

var favProjection = bson.D{{Key: "favVer", Value: 1}, {Key: "favDirty", Value: 1}, {Key: "favoritesCount", Value: 1}}

// settleFavorites counts the favorites of the articles whose settling time
// has come (see markFavorites), a batch at a time until none is due or ctx
// ends: marked (without moving the time on), recounted, and the time
// removed unless a later change moved it meanwhile (compared and set: that
// change's own settling counts it). Several instances may count one
// article: a recount is safe twice. An article whose settling fails waits
// for the next round; the others go on, and the first error is returned.
func (s *Store) settleFavorites(ctx context.Context) error {
	seen := map[string]bool{}
	var first error
	for ctx.Err() == nil {
		due, err := findAll[struct {
			ID     string    `bson:"_id"`
			Settle time.Time `bson:"favSettle"`
		}](ctx, s, s.coll("articles"), "articles.settle_due", bson.D{{Key: "favSettle", Value: bson.D{{Key: "$lte", Value: time.Now().UTC()}}}},
			options.Find().SetSort(bson.D{asc("favSettle")}).SetLimit(100).SetProjection(bson.D{{Key: "favSettle", Value: 1}}))
		if err != nil {
			return cmp.Or(first, err)
		}
		fresh := 0
		for _, d := range due {
			if seen[d.ID] {
				continue // one run per article per Repair: one that failed waits for the next
			}
			seen[d.ID], fresh = true, fresh+1
			if err := s.settleArticle(ctx, d.ID, d.Settle); err != nil {
				first = cmp.Or(first, fmt.Errorf("article %s: %w", d.ID, err)) // the others go on
			}
		}
		if fresh == 0 {
			return first
		}
	}
	return cmp.Or(first, ctx.Err())
}

// settleArticle counts the favorites of the article aid once more and
// clears its settling time, unless a later change moved it from settle.
func (s *Store) settleArticle(ctx context.Context, aid string, settle time.Time) error {
	cur, err := s.markFavorites(ctx, aid, false)
	if errNotFound(err) {
		return nil // deleted meanwhile: its deletion removes its favorites
	}
	if err != nil {
		return err
	}
	if _, err := s.recountFrom(ctx, aid, cur); err != nil && !errNotFound(err) {
		return err
	}
	_, err = s.coll("articles").UpdateOne(ctx, bson.D{{Key: "_id", Value: aid}, {Key: "favSettle", Value: settle}},
		bson.D{{Key: "$unset", Value: bson.D{{Key: "favSettle", Value: ""}}}})
	return s.wrap("settle favorites", err)
}

// recountFrom counts the favorites of aid after a change was marked, from
// cur (the article's state as the mark answered it), and sets the count
// unless a later change or recount makes that needless. It returns the
// count it made (as of after the caller's change).
func (s *Store) recountFrom(ctx context.Context, aid string, cur favState) (int, error) {
	defer s.observe("articles.recount", time.Now())
	if !cur.Dirty {
		return cur.N, nil // counted after the mark already
	}
	n, err := s.count(ctx, s.coll("favorites"), "favorites.count", bson.D{{Key: "aid", Value: aid}}, 0)
	if err != nil {
		return 0, err
	}
	if s.afterCount != nil {
		s.afterCount()
	}
	_, err = s.coll("articles").UpdateOne(ctx, bson.D{{Key: "_id", Value: aid}, {Key: "favVer", Value: cur.Ver}},
		set(bson.E{Key: "favoritesCount", Value: n}, bson.E{Key: "favDirty", Value: false}, bson.E{Key: "favVer", Value: cur.Ver + 1}))
	if err != nil {
		return 0, s.wrap("recount favorites", err)
	}
	return n, nil // committed, or superseded by a later change or recount
}

// MaxTags is how many tags Tags returns: the most used.
const MaxTags = 50

// TagScan is how many of the newest articles Tags reads to find its
// window (TagWindow of them by accounts older than TagAccountAge): a
// bound on its work whatever young accounts post (past it, the window is
// smaller, never theirs).
const TagScan = 2 * TagWindow

// TagAccountAge is how old an account must be for its articles to count
// in the tag ranking.
const TagAccountAge = 24 * time.Hour

// TagWindow is how many of the newest articles the tag list is drawn
// from. The list is what recent articles use, counted when it is read: it
// costs no write (no counter per tag, none to keep right after a lost
// reply), it reads a bounded number of articles however many there are
// (an index walk of list_recent), and it always equals what those
// articles hold.
const TagWindow = 1000

// tagUse is a tag and how many people use it.
type tagUse struct {
	Tag   string
	Uses  int
	Young bool // used by accounts younger than TagAccountAge only
}

// Tags returns the tags the newest TagWindow articles use, used by the
// most people first (then by name), at most MaxTags, as viewer (nil:
// nobody) sees them. Counting people, not articles, keeps one account's
// tag spam from pushing everyone's tags out.
//
// The count is read through the cache (from a replica). A viewer who
// wrote lately also reads their own newest articles' tags on the primary
// (an index walk of at most ownTags articles, not the window): a tag
// they just used and the count does not know yet counts as one person's.
func (s *Store) Tags(ctx context.Context, viewer *conduit.User) ([]string, error) {
	uses, err := s.cache.tags.fill(ctx, "tags", s.tagUses)
	if err != nil {
		return nil, err
	}
	if s.fresh(viewer) {
		own, err := findAll[struct {
			TagList []string `bson:"tagList"`
		}](ctx, s, s.coll("articles"), "articles.tags_own", bson.D{{Key: "authorId", Value: viewer.ID}},
			options.Find().SetSort(listSort).SetLimit(ownTags).SetProjection(bson.D{{Key: "tagList", Value: 1}}))
		if err != nil {
			return nil, err
		}
		known := make(map[string]bool, len(uses))
		for _, u := range uses {
			known[u.Tag] = true
		}
		uses = slices.Clone(uses)
		for _, d := range own {
			for _, t := range d.TagList {
				if !known[t] {
					known[t] = true
					uses = append(uses, tagUse{Tag: t, Uses: 1, Young: true})
				}
			}
		}
		sortUses(uses)
	}
	tags := make([]string, 0, min(len(uses), MaxTags))
	for _, u := range uses[:min(len(uses), MaxTags)] {
		tags = append(tags, u.Tag)
	}
	return tags, nil
}

// ownTags is how many of a fresh viewer's newest articles Tags reads.
const ownTags = 20

// tagUses counts the tags of the newest TagWindow articles (a replica's
// view), every tag with its users, most used first.
func (s *Store) tagUses(ctx context.Context) ([]tagUse, error) {
	docs, err := findAll[struct {
		TagList     []string  `bson:"tagList"`
		AuthorID    string    `bson:"authorId"`
		AuthorSince time.Time `bson:"authorSince"`
	}](ctx, s, s.reader(false, "articles"), "articles.tags", bson.D{},
		options.Find().SetSort(listSort).SetLimit(TagScan).SetProjection(bson.D{{Key: "tagList", Value: 1}, {Key: "authorId", Value: 1}, {Key: "authorSince", Value: 1}}))
	if err != nil {
		return nil, err
	}
	// The newest TagWindow articles (of TagScan read) rank tags by how many
	// people use them; the tags that accounts younger than TagAccountAge
	// use come after every tag an established account uses, ranked among
	// themselves: accounts made in bulk (20 an hour from one address) can
	// fill a new site's empty places, never push out its people's tags.
	youngSince := time.Now().Add(-TagAccountAge)
	window := 0
	// A tag's use is how many people use it: one account's articles
	// count once, however many it posts with however many tags.
	users := map[string]map[string]bool{}
	young := map[string]map[string]bool{}
	for _, d := range docs {
		by := users
		if d.AuthorSince.After(youngSince) {
			by = young
		} else if window++; window > TagWindow {
			break
		}
		for _, t := range d.TagList {
			if by[t] == nil {
				by[t] = map[string]bool{}
			}
			by[t][d.AuthorID] = true
		}
	}
	uses := make([]tagUse, 0, len(users)+len(young))
	for t, by := range users {
		uses = append(uses, tagUse{Tag: t, Uses: len(by)})
	}
	for t, by := range young {
		if users[t] == nil {
			uses = append(uses, tagUse{Tag: t, Uses: len(by), Young: true})
		}
	}
	sortUses(uses)
	return uses, nil
}

// sortUses orders tags: established before young (see tagUses), then by
// their users, most first, then by name.
func sortUses(uses []tagUse) {
	slices.SortFunc(uses, func(a, b tagUse) int {
		if a.Young != b.Young {
			if a.Young {
				return 1
			}
			return -1
		}
		if a.Uses != b.Uses {
			return b.Uses - a.Uses
		}
		return compareStrings(a.Tag, b.Tag)
	})
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

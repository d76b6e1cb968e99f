package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"webstack/app/conduit"
)

type articleDoc struct {
	ID             string    `bson:"_id"`
	Slug           string    `bson:"slug"`
	Title          string    `bson:"title"`
	Description    string    `bson:"description"`
	Body           string    `bson:"body,omitempty"`
	TagList        []string  `bson:"tagList"`
	AuthorID       string    `bson:"authorId"`
	CreatedAt      time.Time `bson:"createdAt"`
	UpdatedAt      time.Time `bson:"updatedAt"`
	FavoritesCount int       `bson:"favoritesCount"`
	FavVer         int64     `bson:"favVer"`
	FavDirty       bool      `bson:"favDirty"`
	FavSettle      time.Time `bson:"favSettle,omitempty"`   // see markFavorites
	AuthorSince    time.Time `bson:"authorSince,omitempty"` // the author's account's creation (see tagUses)
	Ver            int64     `bson:"ver,omitempty"`         // the author's edits: see UpdateArticle (absent: 0)
}

func (d articleDoc) article() conduit.Article {
	tags := d.TagList
	if tags == nil {
		tags = []string{}
	}
	return conduit.Article{ID: d.ID, Slug: d.Slug, Title: d.Title, Description: d.Description, Body: d.Body,
		TagList: tags, AuthorID: d.AuthorID, CreatedAt: d.CreatedAt, UpdatedAt: d.UpdatedAt, FavoritesCount: d.FavoritesCount, Version: d.Ver}
}

// CreateArticle inserts an article with a new id: one insert, which finds
// itself when sent again; a taken slug is a conflict (the caller picks
// another). A request sent with an idempotency key (conduit.RequestKey)
// makes the article's id and times from its key: a copy that runs again
// after the first answered "try again" finds the article the first made
// (read back into a, whatever slug it got, and as edited since) instead of
// making a second.
func (s *Store) CreateArticle(ctx context.Context, a *conduit.Article) error {
	defer s.observe("articles.insert", time.Now())
	id := newID()
	k, keyed := conduit.RequestKeyOf(ctx)
	if keyed {
		id = keyedID(k, "article")
		a.CreatedAt, a.UpdatedAt = k.First, k.First
	}
	d := articleDoc{ID: id, Slug: a.Slug, Title: a.Title, Description: a.Description, Body: a.Body,
		TagList: a.TagList, AuthorID: a.AuthorID, CreatedAt: a.CreatedAt, UpdatedAt: a.UpdatedAt, Ver: 1, AuthorSince: a.AuthorSince.UTC().Truncate(time.Millisecond)}
	if d.TagList == nil {
		d.TagList = []string{}
	}
	// Any document under this id is this article: a copy of the insert
	// sent again (or a keyed copy that runs again) may find it favorited,
	// edited or renamed already.
	if err := s.insertNew(ctx, "articles", "insert article", d.ID, d, nil); err != nil {
		return err
	}
	a.ID, a.Version = d.ID, d.Ver
	if keyed {
		// Found rather than made, perhaps: answer with what is stored.
		var made articleDoc
		if err := s.findOne(ctx, s.coll("articles"), "articles.find", byID(d.ID), &made); err != nil {
			return notFoundAs(err, "article not found")
		}
		author := a.Author
		*a = made.article()
		a.Author = author
	}
	return nil
}

// keyedID is the id of what the request with key k makes of kind: 24 hex
// digits, as an ObjectID's, unique to the key and its first claim (a key
// used again after its record was swept is a new request: a new id).
func keyedID(k conduit.RequestKey, kind string) string {
	h := sha256.Sum256([]byte(k.ID + "\x00" + k.First.UTC().Format(time.RFC3339Nano) + "\x00" + kind))
	return hex.EncodeToString(h[:12])
}

// article reads the article slug as viewer may see it: on the primary
// when they wrote lately, else through the cache.
func (s *Store) article(ctx context.Context, viewer *conduit.User, slug string) (articleDoc, error) {
	load := func(ctx context.Context, fresh bool) (articleDoc, error) {
		var d articleDoc
		err := s.findOne(ctx, s.reader(fresh, "articles"), "articles.find", bson.D{{Key: "slug", Value: slug}}, &d)
		if errNotFound(err) {
			return d, conduit.Errorf(conduit.CodeNotFound, "article not found")
		}
		return d, err
	}
	if s.fresh(viewer) {
		return load(ctx, true)
	}
	return s.cache.articles.fill(ctx, slug, func(ctx context.Context) (articleDoc, error) { return load(ctx, false) })
}

// ArticleOwner is the id and the author's id of the article slug, as
// viewer may see it: one read (none from the cache), for a write that only
// needs to know whose article it is (a comment's quota).
func (s *Store) ArticleOwner(ctx context.Context, viewer *conduit.User, slug string) (id, authorID string, err error) {
	d, err := s.article(ctx, viewer, slug)
	return d.ID, d.AuthorID, err
}

// ArticleBySlug loads one article with its body, as viewer (nil: nobody)
// sees it.
func (s *Store) ArticleBySlug(ctx context.Context, viewer *conduit.User, slug string) (*conduit.Article, error) {
	d, err := s.article(ctx, viewer, slug)
	if err != nil {
		return nil, err
	}
	out, err := s.enrich(ctx, viewer, []articleDoc{d})
	if err != nil {
		return nil, err
	}
	return &out[0], nil
}

// ArticleByID loads one article by its id, from the primary (an edit that
// met another shows the version that won, whatever its slug now is), as
// viewer sees it.
func (s *Store) ArticleByID(ctx context.Context, viewer *conduit.User, id string) (*conduit.Article, error) {
	var d articleDoc
	if err := s.findOne(ctx, s.coll("articles"), "articles.find", byID(id), &d); err != nil {
		return nil, notFoundAs(err, "article not found")
	}
	out, err := s.enrich(ctx, viewer, []articleDoc{d})
	if err != nil {
		return nil, err
	}
	return &out[0], nil
}

// UpdateArticle saves a's slug, title, description, body, tags and
// updatedAt over the version it read (a.Version), and moves the version on:
// one update by id and version, which keeps its comments and favorites.
// The unique slug index refuses a taken slug (a conflict: the caller picks
// another). What each outcome means:
//
//   - a lost reply: the update is sent again, or the read-back below finds
//     these values saved (its own copy applied, or another that left the same): a success;
//   - a late copy (held by the server, applied after the request gave up):
//     it names a version that has moved on by then if anything was saved
//     since, so it matches nothing and changes nothing;
//   - a concurrent edit (another tab, another client): only one of two
//     edits of one version applies; the other is CodeChanged, nothing
//     written, and the caller shows the current version (409, 412).
//
// a.Version is moved on on success.
func (s *Store) UpdateArticle(ctx context.Context, a *conduit.Article) error {
	defer s.observe("articles.update", time.Now())
	fields := bson.D{{Key: "slug", Value: a.Slug}, {Key: "title", Value: a.Title}, {Key: "description", Value: a.Description},
		{Key: "body", Value: a.Body}, {Key: "tagList", Value: nonNil(a.TagList)}, {Key: "updatedAt", Value: a.UpdatedAt}}
	res, err := s.coll("articles").UpdateOne(ctx, bson.D{{Key: "_id", Value: a.ID}, atVersion(a.Version)},
		set(append(fields, bson.E{Key: "ver", Value: a.Version + 1})...))
	switch {
	case isDuplicate(err):
		return conduit.Errorf(conduit.CodeConflict, "slug has already been taken")
	case err != nil:
		return s.wrap("update article", err)
	case res.MatchedCount == 0:
		var cur articleDoc
		if err := s.findOne(ctx, s.coll("articles"), "articles.find", byID(a.ID), &cur); err != nil {
			return notFoundAs(err, "article not found")
		}
		if cur.Slug != a.Slug || cur.Title != a.Title || cur.Description != a.Description ||
			cur.Body != a.Body || !slices.Equal(nonNil(cur.TagList), nonNil(a.TagList)) {
			return conduit.Errorf(conduit.CodeChanged, "the article was changed since this version was read: this edit was not applied")
		}
		// Our own copy, applied before its reply was lost (and perhaps
		// another edit since that left the same values): what was asked
		// for is what is saved.
		a.Version = cur.Ver
		return nil
	}
	a.Version++
	return nil
}

// atVersion is the filter on an edit's version: the field, or its absence
// for version 0 (documents stored before versions).
func atVersion(v int64) bson.E {
	if v == 0 {
		return bson.E{Key: "ver", Value: bson.D{{Key: "$exists", Value: false}}}
	}
	return bson.E{Key: "ver", Value: v}
}

// upToVersion is the filter on a deletion's version: v or an earlier one
// (the field's absence for version 0, documents stored before versions).
func upToVersion(v int64) bson.E {
	if v == 0 {
		return bson.E{Key: "ver", Value: bson.D{{Key: "$exists", Value: false}}}
	}
	return bson.E{Key: "ver", Value: bson.D{{Key: "$lte", Value: v}}}
}

// nonNil stores an empty tag list as [] (as inserts do), never null.
func nonNil(tags []string) []string {
	if tags == nil {
		return []string{}
	}
	return tags
}

// DeleteArticle removes an article with its comments and favorites.
// Steps: the intent, the article (at the version the caller read: edited
// since, it stays and the answer is CodeChanged), its comments, its
// favorites, the intent done; each step is idempotent, and Repair runs
// them again for an intent a crash left behind. The article goes first, so
// a half-done deletion shows nothing of it. A late copy deletes the
// version it read or an earlier one, so nothing after a later edit; sent
// again, it finds nothing (404, or with an idempotency key the first
// answer); an edit made since keeps the article.
func (s *Store) DeleteArticle(ctx context.Context, a *conduit.Article) error {
	defer s.observe("articles.delete", time.Now())
	intent, err := s.begin(ctx, intentDoc{Kind: intentDeleteArticle, AID: a.ID, Ver: a.Version})
	if err != nil {
		return err
	}
	return s.finish(ctx, intent)
}

// Favorite marks a as user's favourite and recounts its favorites. Steps:
// the intent to recount, the favorite (toggled on: see toggle for what a
// lost reply, a late copy, a re-send and a concurrent toggle do), the mark
// and the recount (see recountFrom), the intent done. a's count and
// flag are updated.
func (s *Store) Favorite(ctx context.Context, user string, a *conduit.Article) error {
	return s.favorite(ctx, user, a, true)
}

// Unfavorite toggles the favorite off and recounts, as Favorite.
func (s *Store) Unfavorite(ctx context.Context, user string, a *conduit.Article) error {
	return s.favorite(ctx, user, a, false)
}

func (s *Store) favorite(ctx context.Context, user string, a *conduit.Article, on bool) error {
	op := map[bool]string{true: "favorite", false: "unfavorite"}[on]
	defer s.observe("favorites."+op, time.Now())
	intent, err := s.begin(ctx, intentDoc{Kind: intentRecountFavorites, AID: a.ID})
	if err != nil {
		return err
	}
	fields := bson.D{{Key: "uid", Value: user}, {Key: "aid", Value: a.ID},
		{Key: "articleCreatedAt", Value: a.CreatedAt}, {Key: "at", Value: time.Now().UTC()}}
	if _, _, err := s.toggle(ctx, "favorites", op, pair(user, a.ID), on, fields); err != nil {
		return err // the intent stays: Repair recounts (nothing changed, or the toggle did)
	}
	n, err := s.markAndRecount(ctx, a.ID)
	if errNotFound(err) {
		if !on {
			intent.gone = true
			s.done(ctx, intent)
			a.Favorited, a.FavoritesCount = false, 0
			return nil
		}
		// Deleted meanwhile: its deletion may have removed its favorites
		// before this one came; this one goes too (or the intent stays,
		// and Repair removes it), and so does one that lands later: with
		// no article to carry the settling time, the intent settles.
		if s.dropFavorites(ctx, a.ID, requestBatches) == nil {
			intent.gone = true
			s.done(ctx, intent)
		}
		return conduit.Errorf(conduit.CodeNotFound, "article not found")
	}
	if err != nil {
		return err
	}
	s.done(ctx, intent)
	a.Favorited, a.FavoritesCount = on, n
	return nil
}

// markAndRecount marks the favorites of aid changed and recounts them.
func (s *Store) markAndRecount(ctx context.Context, aid string) (int, error) {
	cur, err := s.markFavorites(ctx, aid, true)
	if err != nil {
		return 0, err
	}
	return s.recountFrom(ctx, aid, cur)
}

// listSort is every list's order: newest first, ties broken by article
// id so that pages are stable. The list indexes end with it.
var listSort = bson.D{desc("createdAt"), desc("_id")}

// ListArticles returns a page of articles matching f, newest first, as
// viewer sees them, without bodies, and the total count of matches.
func (s *Store) ListArticles(ctx context.Context, viewer *conduit.User, f conduit.ArticleFilter) ([]conduit.Article, int, error) {
	filter := bson.D{}
	key := "list"
	if f.Tag != "" {
		filter = append(filter, bson.E{Key: "tagList", Value: f.Tag})
		key += "|tag=" + f.Tag
	}
	if f.Author != "" {
		u, err := s.UserByUsername(ctx, viewer, f.Author)
		if errNotFound(err) {
			return []conduit.Article{}, 0, nil
		}
		if err != nil {
			return nil, 0, err
		}
		filter = append(filter, bson.E{Key: "authorId", Value: u.ID})
		key += "|author=" + u.ID
	}
	if f.Favorited != "" {
		u, err := s.UserByUsername(ctx, viewer, f.Favorited)
		if errNotFound(err) {
			return []conduit.Article{}, 0, nil
		}
		if err != nil {
			return nil, 0, err
		}
		return s.favoritedPage(ctx, viewer, u.ID, filter, key+"|favorited="+u.ID, f.Limit, f.Offset)
	}
	return s.page(ctx, viewer, key, filter, f.Limit, f.Offset)
}

// Feed returns a page of the articles of the authors viewer follows (at
// most conduit.MaxFollowing are read: Follow keeps to it).
func (s *Store) Feed(ctx context.Context, viewer *conduit.User, limit, offset int) ([]conduit.Article, int, error) {
	docs, err := findAll[struct {
		Followee string `bson:"followee"`
	}](ctx, s, s.reader(s.fresh(viewer), "follows"), "follows.find", bson.D{{Key: "follower", Value: viewer.ID}},
		options.Find().SetProjection(bson.D{{Key: "followee", Value: 1}}).SetLimit(conduit.MaxFollowing))
	if err != nil {
		return nil, 0, err
	}
	if len(docs) == 0 {
		return []conduit.Article{}, 0, nil
	}
	authors := make([]string, len(docs))
	for i, d := range docs {
		authors[i] = d.Followee
	}
	slices.Sort(authors)
	h := sha256.Sum256([]byte(strings.Join(authors, ",")))
	return s.page(ctx, viewer, "feed|"+hex.EncodeToString(h[:16]), in("authorId", authors), limit, offset)
}

// page answers a list: for a viewer who wrote lately from the primary,
// else through the cache from a replica. Its count is cached by filter,
// whatever the page, and stops at conduit.MaxCount; the page walks
// offset+limit index entries (offset is at most conduit.MaxOffset).
func (s *Store) page(ctx context.Context, viewer *conduit.User, key string, filter bson.D, limit, offset int) ([]conduit.Article, int, error) {
	offset = min(offset, conduit.MaxOffset)
	fresh := s.fresh(viewer)
	total, err := s.listCount(ctx, fresh, key, func(ctx context.Context) (int, error) {
		coll := s.reader(fresh, "articles")
		if len(filter) == 0 {
			// The whole collection: its metadata count (the count command
			// without a filter), not a walk of every article's index entry.
			start := time.Now()
			n, err := coll.EstimatedDocumentCount(ctx)
			s.observe("articles.count_all", start)
			return int(min(n, conduit.MaxCount)), s.wrap("count articles", err)
		}
		return s.count(ctx, coll, "articles.count", filter, conduit.MaxCount)
	})
	if err != nil {
		return nil, 0, err
	}
	if total <= offset {
		return []conduit.Article{}, total, nil
	}
	out, err := s.listed(ctx, viewer, fresh, fmt.Sprintf("%s|%d|%d", key, limit, offset), func(ctx context.Context) ([]articleDoc, error) {
		return findAll[articleDoc](ctx, s, s.reader(fresh, "articles"), "articles.list", filter, options.Find().
			SetSort(listSort).SetSkip(int64(offset)).SetLimit(int64(limit)).SetProjection(bson.D{{Key: "body", Value: 0}}))
	})
	return out, total, err
}

// listCount is a list's count: from the primary when fresh, else through
// the counts cache under key (the list's filter, not its page).
func (s *Store) listCount(ctx context.Context, fresh bool, key string, load func(context.Context) (int, error)) (int, error) {
	if fresh {
		return load(ctx)
	}
	return s.cache.counts.fill(ctx, key, load)
}

// favoritedPage is the list of what the user uid favorited, newest
// article first: a page of their favorites (by_user holds the articles'
// creation times, so the page is an index walk), then those articles by
// id. With other filters too (tag, author), the articles are filtered
// among their newest conduit.MaxFavoritedScan favorites.
func (s *Store) favoritedPage(ctx context.Context, viewer *conduit.User, uid string, filter bson.D, key string, limit, offset int) ([]conduit.Article, int, error) {
	offset = min(offset, conduit.MaxOffset)
	fresh := s.fresh(viewer)
	favs := s.reader(fresh, "favorites")
	byUser := bson.D{{Key: "uid", Value: uid}}
	type fav struct {
		AID string `bson:"aid"`
	}
	favSort := bson.D{desc("articleCreatedAt"), desc("aid")}
	favorites := func(ctx context.Context, skip, limit int64) ([]string, error) {
		list, err := findAll[fav](ctx, s, favs, "favorites.find", byUser, options.Find().SetSort(favSort).
			SetProjection(bson.D{{Key: "aid", Value: 1}}).SetSkip(skip).SetLimit(limit))
		aids := make([]string, len(list))
		for i, f := range list {
			aids[i] = f.AID
		}
		return aids, err
	}
	articles := s.reader(fresh, "articles")
	noBody := bson.D{{Key: "body", Value: 0}}
	if len(filter) > 0 {
		// One read of the newest favorites' ids serves the count and the
		// page (and is cached as the list's count is).
		scan, err := s.docs(ctx, fresh, key+"|scan", func(ctx context.Context) ([]articleDoc, error) {
			aids, err := favorites(ctx, 0, conduit.MaxFavoritedScan)
			if err != nil || len(aids) == 0 {
				return nil, err
			}
			f := append(in("_id", aids), filter...)
			return findAll[articleDoc](ctx, s, articles, "articles.list", f, options.Find().SetSort(listSort).
				SetLimit(int64(conduit.MaxOffset+conduit.MaxLimit)).
				SetProjection(bson.D{{Key: "_id", Value: 1}}))
		})
		if err != nil {
			return nil, 0, err
		}
		total := len(scan)
		if total <= offset {
			return []conduit.Article{}, total, nil
		}
		ids := make([]string, 0, limit)
		for _, d := range scan[offset:min(total, offset+limit)] {
			ids = append(ids, d.ID)
		}
		out, err := s.listed(ctx, viewer, fresh, fmt.Sprintf("%s|%d|%d", key, limit, offset), func(ctx context.Context) ([]articleDoc, error) {
			return inOrder(ctx, s, articles, ids, noBody)
		})
		return out, total, err
	}
	total, err := s.listCount(ctx, fresh, key, func(ctx context.Context) (int, error) {
		return s.count(ctx, favs, "favorites.count", byUser, conduit.MaxCount)
	})
	if err != nil {
		return nil, 0, err
	}
	if total <= offset {
		return []conduit.Article{}, total, nil
	}
	out, err := s.listed(ctx, viewer, fresh, fmt.Sprintf("%s|%d|%d", key, limit, offset), func(ctx context.Context) ([]articleDoc, error) {
		aids, err := favorites(ctx, int64(offset), int64(limit))
		if err != nil || len(aids) == 0 {
			return nil, err
		}
		return inOrder(ctx, s, articles, aids, noBody)
	})
	return out, total, err
}

// inOrder reads the articles ids (at most a page), in that order; deleted
// ones are left out.
func inOrder(ctx context.Context, s *Store, articles collection, ids []string, projection bson.D) ([]articleDoc, error) {
	docs, err := findAll[articleDoc](ctx, s, articles, "articles.list", in("_id", ids),
		options.Find().SetProjection(projection).SetLimit(int64(len(ids))))
	if err != nil {
		return nil, err
	}
	byID := make(map[string]articleDoc, len(docs))
	for _, d := range docs {
		byID[d.ID] = d
	}
	out := make([]articleDoc, 0, len(ids))
	for _, id := range ids {
		if d, ok := byID[id]; ok {
			out = append(out, d)
		}
	}
	return out, nil
}

// listed loads a page of a list (from the primary when fresh, else
// through the lists cache under key) and enriches it for viewer.
func (s *Store) listed(ctx context.Context, viewer *conduit.User, fresh bool, key string, load func(context.Context) ([]articleDoc, error)) ([]conduit.Article, error) {
	docs, err := s.docs(ctx, fresh, key, load)
	if err != nil {
		return nil, err
	}
	return s.enrich(ctx, viewer, docs)
}

// docs loads articles from the primary when fresh, else through the lists
// cache under key.
func (s *Store) docs(ctx context.Context, fresh bool, key string, load func(context.Context) ([]articleDoc, error)) ([]articleDoc, error) {
	if fresh {
		return load(ctx)
	}
	return s.cache.lists.fill(ctx, key, load)
}

// enrich adds the authors' profiles and viewer's flags.
func (s *Store) enrich(ctx context.Context, viewer *conduit.User, docs []articleDoc) ([]conduit.Article, error) {
	authors := make([]string, len(docs))
	aids := make([]string, len(docs))
	for i, d := range docs {
		authors[i], aids[i] = d.AuthorID, d.ID
	}
	profiles, err := s.profilesOf(ctx, viewer, authors)
	if err != nil {
		return nil, err
	}
	favored, err := s.favors(ctx, viewer, aids)
	if err != nil {
		return nil, err
	}
	out := make([]conduit.Article, len(docs))
	for i, d := range docs {
		a := d.article()
		a.Author = profiles[d.AuthorID]
		a.Favorited = favored[d.ID]
		out[i] = a
	}
	return out, nil
}

package store

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"webstack/app/conduit"
)

type articleDoc struct {
	Slug           string    `bson:"_id"`
	AID            string    `bson:"aid"`
	Title          string    `bson:"title"`
	Description    string    `bson:"description"`
	Body           string    `bson:"body,omitempty"`
	TagList        []string  `bson:"tagList"`
	AuthorID       string    `bson:"authorId"`
	CreatedAt      time.Time `bson:"createdAt"`
	UpdatedAt      time.Time `bson:"updatedAt"`
	FavoritesCount int       `bson:"favoritesCount"`
}

func (d articleDoc) article() conduit.Article {
	tags := d.TagList
	if tags == nil {
		tags = []string{}
	}
	return conduit.Article{ID: d.AID, Slug: d.Slug, Title: d.Title, Description: d.Description, Body: d.Body,
		TagList: tags, AuthorID: d.AuthorID, CreatedAt: d.CreatedAt, UpdatedAt: d.UpdatedAt, FavoritesCount: d.FavoritesCount}
}

// CreateArticle inserts an article (its slug is its _id: a taken slug is a
// conflict), then counts its tags, then moves the generations on. A crash
// after the insert leaves an article the lists show once anything else
// moves them on, and tag counts one short: never a half article.
func (s *Store) CreateArticle(ctx context.Context, a *conduit.Article) error {
	defer s.observe("articles.insert", time.Now())
	d := articleDoc{Slug: a.Slug, AID: bson.NewObjectID().Hex(), Title: a.Title, Description: a.Description, Body: a.Body,
		TagList: a.TagList, AuthorID: a.AuthorID, CreatedAt: a.CreatedAt, UpdatedAt: a.UpdatedAt}
	if d.TagList == nil {
		d.TagList = []string{}
	}
	if _, err := s.coll("articles").InsertOne(ctx, d); err != nil {
		return s.wrap("insert article", err)
	}
	a.ID = d.AID
	if err := s.countTags(ctx, a.TagList, 1); err != nil {
		return err
	}
	return s.bump(ctx, true, false, 1)
}

// countTags moves each tag's article count by delta, in one round trip.
func (s *Store) countTags(ctx context.Context, tags []string, delta int) error {
	if len(tags) == 0 {
		return nil
	}
	defer s.observe("tags.inc", time.Now())
	models := make([]mongo.WriteModel, len(tags))
	for i, t := range tags {
		models[i] = mongo.NewUpdateOneModel().SetFilter(bson.D{{Key: "_id", Value: t}}).
			SetUpdate(bson.D{{Key: "$inc", Value: bson.D{{Key: "count", Value: delta}}}}).SetUpsert(true)
	}
	_, err := s.coll("tags").BulkWrite(ctx, models)
	return s.wrap("count tags", err)
}

// articleDoc reads the article slug by _id: from the primary for a
// signed-in viewer (who must see their own writes), else from the
// lag-tolerant handle.
func (s *Store) articleDoc(ctx context.Context, fresh bool, slug string) (articleDoc, error) {
	var d articleDoc
	err := s.findOne(ctx, s.listColl("articles", fresh), "articles.find", slug, &d)
	if errNotFound(err) {
		return d, conduit.Errorf(conduit.CodeNotFound, "article not found")
	}
	return d, err
}

// ArticleBySlug loads one article with its body, as viewer (nil: nobody)
// sees it.
func (s *Store) ArticleBySlug(ctx context.Context, viewer *conduit.User, slug string) (*conduit.Article, error) {
	d, err := s.articleDoc(ctx, viewer != nil, slug)
	if err != nil {
		return nil, err
	}
	out, err := s.enrich(ctx, viewer, []articleDoc{d})
	if err != nil {
		return nil, err
	}
	return &out[0], nil
}

// UpdateArticle saves title, slug, description, body and updatedAt of a,
// which was loaded from oldSlug. A new slug is a new document: it is
// written whole, then the old one is deleted only if nothing changed it
// meanwhile (a favorite in between is copied over and the move tried
// again), so no acknowledged write is lost. The thread hangs off the
// article's aid, which never changes.
func (s *Store) UpdateArticle(ctx context.Context, oldSlug string, a *conduit.Article) error {
	defer s.observe("articles.update", time.Now())
	set := bson.D{{Key: "title", Value: a.Title}, {Key: "description", Value: a.Description},
		{Key: "body", Value: a.Body}, {Key: "updatedAt", Value: a.UpdatedAt}}
	if a.Slug == oldSlug {
		res, err := s.coll("articles").UpdateOne(ctx, bson.D{{Key: "_id", Value: oldSlug}}, bson.D{{Key: "$set", Value: set}})
		if err != nil {
			return s.wrap("update article", err)
		}
		if res.MatchedCount == 0 {
			return conduit.Errorf(conduit.CodeNotFound, "article not found")
		}
		return s.bump(ctx, true, false, 0)
	}
	for attempt := 0; attempt < 5; attempt++ {
		var d articleDoc
		if err := s.findOne(ctx, s.coll("articles"), "articles.find", oldSlug, &d); err != nil {
			return err
		}
		moved := d
		moved.Slug, moved.Title, moved.Description, moved.Body, moved.UpdatedAt = a.Slug, a.Title, a.Description, a.Body, a.UpdatedAt
		if attempt == 0 {
			if _, err := s.coll("articles").InsertOne(ctx, moved); err != nil {
				return s.wrap("move article", err) // a taken slug is a conflict: the caller picks another
			}
		} else if _, err := s.coll("articles").ReplaceOne(ctx, bson.D{{Key: "_id", Value: a.Slug}}, moved); err != nil {
			return s.wrap("move article", err)
		}
		// Deleted only as it was copied.
		res, err := s.coll("articles").DeleteOne(ctx, bson.D{{Key: "_id", Value: oldSlug},
			{Key: "favoritesCount", Value: d.FavoritesCount}, {Key: "updatedAt", Value: d.UpdatedAt}})
		if err != nil {
			return s.wrap("move article", err)
		}
		if res.DeletedCount == 1 {
			a.ID = d.AID
			return s.bump(ctx, true, false, 0)
		}
	}
	return conduit.Unavailable(fmt.Errorf("article %s kept changing while it was renamed", oldSlug))
}

// DeleteArticle removes an article, then uncounts its tags, then its
// thread. Users' favorites may still name it: nothing shows a missing
// article; a crash before the thread goes leaves a thread nothing reads.
func (s *Store) DeleteArticle(ctx context.Context, a *conduit.Article) error {
	defer s.observe("articles.delete", time.Now())
	res, err := s.coll("articles").DeleteOne(ctx, bson.D{{Key: "_id", Value: a.Slug}})
	if err != nil {
		return s.wrap("delete article", err)
	}
	if res.DeletedCount == 0 {
		return conduit.Errorf(conduit.CodeNotFound, "article not found")
	}
	if err := s.countTags(ctx, a.TagList, -1); err != nil {
		return err
	}
	if err := s.bump(ctx, true, false, -1); err != nil {
		return err
	}
	return s.deleteThread(ctx, a.ID)
}

// Favorite marks a as user's favourite; the count moves only when the mark
// is new, so repeating it is a no-op. a's count and flag are updated.
func (s *Store) Favorite(ctx context.Context, user string, a *conduit.Article) error {
	return s.setFavorite(ctx, user, a, "$addToSet", 1)
}

// Unfavorite removes the mark; the count moves only if there was one.
func (s *Store) Unfavorite(ctx context.Context, user string, a *conduit.Article) error {
	return s.setFavorite(ctx, user, a, "$pull", -1)
}

func (s *Store) setFavorite(ctx context.Context, user string, a *conduit.Article, verb string, delta int) error {
	a.Favorited = delta > 0
	changed, err := s.relate(ctx, "favorites."+verb[1:], user, verb, "favorites", a.ID)
	if err != nil || !changed {
		return err
	}
	defer s.observe("articles.favorite", time.Now())
	// FerretDB 1.x refuses findAndModify with a projection: the whole
	// document comes back, decoded into the one field needed.
	var d struct {
		FavoritesCount int `bson:"favoritesCount"`
	}
	err = s.coll("articles").FindOneAndUpdate(ctx, bson.D{{Key: "_id", Value: a.Slug}},
		bson.D{{Key: "$inc", Value: bson.D{{Key: "favoritesCount", Value: delta}}}}, &d,
		options.FindOneAndUpdate().SetReturnDocument(options.After))
	if err != nil {
		return s.wrap("count favorite", err)
	}
	a.FavoritesCount = d.FavoritesCount
	return s.bump(ctx, true, false, 0)
}

// listSort is every list's order: newest first, ties broken by article
// id so that pages are stable. The list indexes end with it.
var listSort = bson.D{{Key: "createdAt", Value: -1}, {Key: "aid", Value: -1}}

// ListArticles returns a page of articles matching f, newest first, as
// viewer sees them, without bodies, and the total count of matches.
func (s *Store) ListArticles(ctx context.Context, viewer *conduit.User, f conduit.ArticleFilter) ([]conduit.Article, int, error) {
	filter := bson.D{}
	key := "list"
	if f.Tag != "" {
		filter = append(filter, bson.E{Key: "tagList", Value: f.Tag})
		key += "|tag=" + f.Tag
	}
	for _, by := range []struct{ name, field string }{{f.Author, "author"}, {f.Favorited, "favorited"}} {
		if by.name == "" {
			continue
		}
		u, err := s.UserByUsername(ctx, by.name)
		if errNotFound(err) {
			return []conduit.Article{}, 0, nil
		}
		if err != nil {
			return nil, 0, err
		}
		if by.field == "author" {
			filter = append(filter, bson.E{Key: "authorId", Value: u.ID})
			key += "|author=" + u.ID
		} else {
			filter = append(filter, bson.E{Key: "aid", Value: bson.D{{Key: "$in", Value: nonNil(u.Favorites)}}})
			key += "|favorited=" + strings.Join(u.Favorites, ",") // its favorites are part of what it shows
		}
	}
	return s.page(ctx, viewer, key, filter, f.Limit, f.Offset)
}

// Feed returns a page of the articles of the authors viewer follows.
func (s *Store) Feed(ctx context.Context, viewer *conduit.User, limit, offset int) ([]conduit.Article, int, error) {
	if len(viewer.Following) == 0 {
		return []conduit.Article{}, 0, nil
	}
	following := slices.Sorted(slices.Values(viewer.Following))
	return s.page(ctx, viewer, "feed|"+strings.Join(following, ","), in("authorId", following), limit, offset)
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// page answers a list from the cache while the articles' generation holds,
// else from the database. A signed-in viewer's lists are read on the
// primary, so they show the viewer's own writes; anonymous lists may come
// from a replica, and lag as much (Options.LagTolerance).
func (s *Store) page(ctx context.Context, viewer *conduit.User, key string, filter bson.D, limit, offset int) ([]conduit.Article, int, error) {
	fresh := viewer != nil
	g, err := s.gensOf(ctx, fresh)
	if err != nil {
		return nil, 0, err
	}
	key = fmt.Sprintf("%s|fresh=%v|%d|%d", key, fresh, limit, offset)
	p, err := s.cache.lists.fill(ctx, key, g.Articles, func(ctx context.Context) (listPage, error) {
		var p listPage
		coll := s.listColl("articles", fresh)
		if len(filter) == 0 {
			p.total = g.Count // kept with the generations: no count query
		} else {
			start := time.Now()
			n, err := coll.CountDocuments(ctx, filter)
			s.observe("articles.count", start)
			if err != nil {
				return p, s.wrap("count articles", err)
			}
			p.total = int(n)
		}
		if p.total > 0 && offset < p.total {
			docs, err := findAll[articleDoc](ctx, s, coll, "articles.list", filter, options.Find().
				SetSort(listSort).
				SetSkip(int64(offset)).SetLimit(int64(limit)).SetProjection(bson.D{{Key: "body", Value: 0}}))
			if err != nil {
				return p, err
			}
			p.docs = docs
		}
		return p, nil
	})
	if err != nil {
		return nil, 0, err
	}
	out, err := s.enrich(ctx, viewer, p.docs)
	return out, p.total, err
}

// enrich adds the authors' profiles (cache, then one query for the rest)
// and viewer's flags (from viewer's own document: no query).
func (s *Store) enrich(ctx context.Context, viewer *conduit.User, docs []articleDoc) ([]conduit.Article, error) {
	ids := make([]string, len(docs))
	for i, d := range docs {
		ids[i] = d.AuthorID
	}
	profiles, err := s.profilesOf(ctx, viewer, ids)
	if err != nil {
		return nil, err
	}
	out := make([]conduit.Article, len(docs))
	for i, d := range docs {
		a := d.article()
		a.Author = profiles[d.AuthorID]
		a.Favorited = viewer.Favors(a.ID)
		out[i] = a
	}
	return out, nil
}

// Tags returns every tag used by at least one article, sorted, as viewer
// (nil: nobody) sees them.
func (s *Store) Tags(ctx context.Context, viewer *conduit.User) ([]string, error) {
	fresh := viewer != nil // who just tagged an article sees the tag
	g, err := s.gensOf(ctx, fresh)
	if err != nil {
		return nil, err
	}
	return s.cache.tags.fill(ctx, fmt.Sprintf("tags|fresh=%v", fresh), g.Articles, func(ctx context.Context) ([]string, error) {
		docs, err := findAll[struct {
			ID string `bson:"_id"`
		}](ctx, s, s.listColl("tags", fresh), "tags.find", bson.D{{Key: "count", Value: bson.D{{Key: "$gt", Value: 0}}}},
			options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}))
		if err != nil {
			return nil, err
		}
		tags := make([]string, len(docs))
		for i, d := range docs {
			tags[i] = d.ID
		}
		return tags, nil
	})
}

// listColl is where lists are read: the primary when fresh (a signed-in
// viewer), else the lag-tolerant handle (secondaries where there are any).
func (s *Store) listColl(name string, fresh bool) collection {
	if fresh || s.cur.Load().single {
		return s.coll(name)
	}
	return s.readColl(name)
}

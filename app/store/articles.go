package store

import (
	"context"
	"errors"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"webstack/app/conduit"
)

type articleDoc struct {
	ID             bson.ObjectID `bson:"_id"`
	Slug           string        `bson:"slug"`
	Title          string        `bson:"title"`
	Description    string        `bson:"description"`
	TagList        []string      `bson:"tagList"`
	AuthorID       string        `bson:"authorId"`
	CreatedAt      time.Time     `bson:"createdAt"`
	UpdatedAt      time.Time     `bson:"updatedAt"`
	FavoritesCount int           `bson:"favoritesCount"`
}

func (d articleDoc) article() *conduit.Article {
	tags := d.TagList
	if tags == nil {
		tags = []string{}
	}
	return &conduit.Article{ID: d.ID.Hex(), Slug: d.Slug, Title: d.Title, Description: d.Description,
		TagList: tags, AuthorID: d.AuthorID, CreatedAt: d.CreatedAt, UpdatedAt: d.UpdatedAt, FavoritesCount: d.FavoritesCount}
}

// Article bodies live in their own collection, keyed by the article's id:
// lists and feeds (most reads) then scan small documents, and a single
// article costs one more lookup by _id.
type bodyDoc struct {
	ID   bson.ObjectID `bson:"_id"`
	Body string        `bson:"body"`
}

// CreateArticle inserts an article and counts its tags; a taken slug is a
// conflict. The body goes first: a failure in between leaves an orphan body
// that nothing reads, never an article without one.
func (s *Store) CreateArticle(ctx context.Context, a *conduit.Article) error {
	defer s.observe("articles.insert", time.Now())
	d := articleDoc{ID: bson.NewObjectID(), Slug: a.Slug, Title: a.Title, Description: a.Description,
		TagList: a.TagList, AuthorID: a.AuthorID, CreatedAt: a.CreatedAt, UpdatedAt: a.UpdatedAt}
	if _, err := s.coll("bodies").InsertOne(ctx, bodyDoc{ID: d.ID, Body: a.Body}); err != nil {
		return s.wrap("insert article body", err)
	}
	if _, err := s.coll("articles").InsertOne(ctx, d); err != nil {
		_, _ = s.coll("bodies").DeleteOne(ctx, bson.D{{Key: "_id", Value: d.ID}})
		return s.wrap("insert article", err)
	}
	a.ID = d.ID.Hex()
	return s.countTags(ctx, a.TagList, 1)
}

// countTags moves each tag's article count by delta.
func (s *Store) countTags(ctx context.Context, tags []string, delta int) error {
	defer s.observe("tags.inc", time.Now())
	for _, t := range tags {
		if _, err := s.coll("tags").UpdateOne(ctx, bson.D{{Key: "_id", Value: t}},
			bson.D{{Key: "$inc", Value: bson.D{{Key: "count", Value: delta}}}}, optsUpsert); err != nil {
			return s.wrap("count tag", err)
		}
	}
	return nil
}

// ArticleBySlug loads one article (with body) as viewer sees it.
func (s *Store) ArticleBySlug(ctx context.Context, viewer, slug string) (*conduit.Article, error) {
	start := time.Now()
	var d articleDoc
	if err := s.coll("articles").FindOne(ctx, bson.D{{Key: "slug", Value: slug}}, &d); err != nil {
		err = s.wrap("find article", err)
		if errNotFound(err) {
			return nil, conduit.Errorf(conduit.CodeNotFound, "article not found")
		}
		return nil, err
	}
	s.observe("articles.find", start)
	out, err := s.enrich(ctx, viewer, []articleDoc{d})
	if err != nil {
		return nil, err
	}
	start = time.Now()
	var b bodyDoc
	if err := s.coll("bodies").FindOne(ctx, bson.D{{Key: "_id", Value: d.ID}}, &b); err != nil && !errors.Is(err, mongo.ErrNoDocuments) {
		return nil, s.wrap("find article body", err)
	}
	s.observe("bodies.find", start)
	out[0].Body = b.Body
	return &out[0], nil
}

// UpdateArticle saves title, slug, description, body and updatedAt.
func (s *Store) UpdateArticle(ctx context.Context, a *conduit.Article) error {
	defer s.observe("articles.update", time.Now())
	oid, err := objectID(a.ID)
	if err != nil {
		return err
	}
	_, err = s.coll("articles").UpdateOne(ctx, bson.D{{Key: "_id", Value: oid}}, bson.D{{Key: "$set", Value: bson.D{
		{Key: "slug", Value: a.Slug}, {Key: "title", Value: a.Title}, {Key: "description", Value: a.Description},
		{Key: "updatedAt", Value: a.UpdatedAt},
	}}})
	if err != nil {
		return s.wrap("update article", err)
	}
	_, err = s.coll("bodies").UpdateOne(ctx, bson.D{{Key: "_id", Value: oid}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "body", Value: a.Body}}}}, optsUpsert)
	return s.wrap("update article body", err)
}

// DeleteArticle removes an article, then its comments and favorites, and
// uncounts its tags. Without transactions a crash between steps can leave
// orphans, which nothing reads (they hang off a missing article id).
func (s *Store) DeleteArticle(ctx context.Context, a *conduit.Article) error {
	defer s.observe("articles.delete", time.Now())
	oid, err := objectID(a.ID)
	if err != nil {
		return err
	}
	res, err := s.coll("articles").DeleteOne(ctx, bson.D{{Key: "_id", Value: oid}})
	if err != nil {
		return s.wrap("delete article", err)
	}
	if res.DeletedCount == 0 {
		return conduit.Errorf(conduit.CodeNotFound, "article not found")
	}
	if _, err := s.coll("bodies").DeleteOne(ctx, bson.D{{Key: "_id", Value: oid}}); err != nil {
		return s.wrap("delete article body", err)
	}
	if _, err := s.coll("comments").DeleteMany(ctx, bson.D{{Key: "articleId", Value: a.ID}}); err != nil {
		return s.wrap("delete comments", err)
	}
	if _, err := s.coll("favorites").DeleteMany(ctx, bson.D{{Key: "articleId", Value: a.ID}}); err != nil {
		return s.wrap("delete favorites", err)
	}
	return s.countTags(ctx, a.TagList, -1)
}

func favoriteID(user, article string) string { return user + ":" + article }

// favoriteDoc marks an article as a user's favourite; its _id is
// favoriteID, so marking twice cannot make two documents.
type favoriteDoc struct {
	UserID    string `bson:"userId"`
	ArticleID string `bson:"articleId"`
}

// Favorite marks an article as user's favourite; the count moves only when
// the mark is new, so repeating it is a no-op.
func (s *Store) Favorite(ctx context.Context, user string, a *conduit.Article) error {
	defer s.observe("favorites.insert", time.Now())
	_, err := s.coll("favorites").InsertOne(ctx, bson.D{
		{Key: "_id", Value: favoriteID(user, a.ID)}, {Key: "userId", Value: user}, {Key: "articleId", Value: a.ID},
	})
	if mongo.IsDuplicateKeyError(err) {
		return nil
	}
	if err != nil {
		return s.wrap("favorite", err)
	}
	return s.incFavorites(ctx, a.ID, 1)
}

// Unfavorite removes the mark; the count moves only if there was one.
func (s *Store) Unfavorite(ctx context.Context, user string, a *conduit.Article) error {
	defer s.observe("favorites.delete", time.Now())
	res, err := s.coll("favorites").DeleteOne(ctx, bson.D{{Key: "_id", Value: favoriteID(user, a.ID)}})
	if err != nil {
		return s.wrap("unfavorite", err)
	}
	if res.DeletedCount == 0 {
		return nil
	}
	return s.incFavorites(ctx, a.ID, -1)
}

func (s *Store) incFavorites(ctx context.Context, articleID string, delta int) error {
	oid, err := objectID(articleID)
	if err != nil {
		return err
	}
	_, err = s.coll("articles").UpdateOne(ctx, bson.D{{Key: "_id", Value: oid}},
		bson.D{{Key: "$inc", Value: bson.D{{Key: "favoritesCount", Value: delta}}}})
	return s.wrap("count favorite", err)
}

// ListArticles returns a page of articles matching f, newest first, as viewer
// sees them, without bodies, and the total count of matches.
func (s *Store) ListArticles(ctx context.Context, viewer string, f conduit.ArticleFilter) ([]conduit.Article, int, error) {
	filter := bson.D{}
	if f.Tag != "" {
		filter = append(filter, bson.E{Key: "tagList", Value: f.Tag})
	}
	if f.Author != "" {
		u, err := s.UserByUsername(ctx, f.Author)
		if errNotFound(err) {
			return []conduit.Article{}, 0, nil
		}
		if err != nil {
			return nil, 0, err
		}
		filter = append(filter, bson.E{Key: "authorId", Value: u.ID})
	}
	if f.Favorited != "" {
		u, err := s.UserByUsername(ctx, f.Favorited)
		if errNotFound(err) {
			return []conduit.Article{}, 0, nil
		}
		if err != nil {
			return nil, 0, err
		}
		ids, err := s.favoritedBy(ctx, u.ID)
		if err != nil {
			return nil, 0, err
		}
		filter = append(filter, bson.E{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}})
	}
	return s.page(ctx, viewer, filter, f.Limit, f.Offset)
}

// Feed returns a page of the articles of the authors viewer follows.
func (s *Store) Feed(ctx context.Context, viewer string, limit, offset int) ([]conduit.Article, int, error) {
	docs, err := findAll[followDoc](ctx, s, s.coll("follows"), "follows.find", bson.D{{Key: "follower", Value: viewer}})
	if err != nil {
		return nil, 0, err
	}
	authors := make([]string, len(docs))
	for i, d := range docs {
		authors[i] = d.Followee
	}
	if len(authors) == 0 {
		return []conduit.Article{}, 0, nil
	}
	return s.page(ctx, viewer, in("authorId", authors), limit, offset)
}

func (s *Store) favoritedBy(ctx context.Context, user string) ([]bson.ObjectID, error) {
	docs, err := findAll[favoriteDoc](ctx, s, s.readColl("favorites"), "favorites.find", bson.D{{Key: "userId", Value: user}})
	if err != nil {
		return nil, err
	}
	ids := make([]bson.ObjectID, 0, len(docs))
	for _, d := range docs {
		if oid, err := bson.ObjectIDFromHex(d.ArticleID); err == nil {
			ids = append(ids, oid)
		}
	}
	return ids, nil
}

func (s *Store) page(ctx context.Context, viewer string, filter bson.D, limit, offset int) ([]conduit.Article, int, error) {
	coll := s.readColl("articles")
	start := time.Now()
	var total int64
	var err error
	if len(filter) == 0 {
		// The unfiltered count (the home page) comes from collection
		// metadata instead of a scan.
		total, err = coll.EstimatedDocumentCount(ctx)
	} else {
		total, err = coll.CountDocuments(ctx, filter)
	}
	s.observe("articles.count", start)
	if err != nil {
		return nil, 0, s.wrap("count articles", err)
	}
	if total == 0 || int64(offset) >= total {
		return []conduit.Article{}, int(total), nil
	}
	docs, err := findAll[articleDoc](ctx, s, coll, "articles.list", filter, options.Find().
		SetSort(bson.D{{Key: "createdAt", Value: -1}, {Key: "_id", Value: -1}}).
		SetSkip(int64(offset)).SetLimit(int64(limit)))
	if err != nil {
		return nil, 0, err
	}
	out, err := s.enrich(ctx, viewer, docs)
	return out, int(total), err
}

// enrich adds authors' profiles and viewer's favourites, in two queries.
func (s *Store) enrich(ctx context.Context, viewer string, docs []articleDoc) ([]conduit.Article, error) {
	authorIDs := make([]string, 0, len(docs))
	favKeys := make([]string, 0, len(docs))
	for _, d := range docs {
		authorIDs = append(authorIDs, d.AuthorID)
		favKeys = append(favKeys, favoriteID(viewer, d.ID.Hex()))
	}
	profiles, err := s.profiles(ctx, viewer, authorIDs)
	if err != nil {
		return nil, err
	}
	favorited := map[string]bool{}
	if viewer != "" {
		favs, err := findAll[favoriteDoc](ctx, s, s.coll("favorites"), "favorites.find", in("_id", favKeys))
		if err != nil {
			return nil, err
		}
		for _, f := range favs {
			favorited[f.ArticleID] = true
		}
	}
	out := make([]conduit.Article, len(docs))
	for i, d := range docs {
		a := d.article()
		a.Author = profiles[d.AuthorID]
		a.Favorited = favorited[a.ID]
		out[i] = *a
	}
	return out, nil
}

// Tags returns every tag used by at least one article, sorted.
func (s *Store) Tags(ctx context.Context) ([]string, error) {
	docs, err := findAll[struct {
		ID string `bson:"_id"`
	}](ctx, s, s.readColl("tags"), "tags.find", bson.D{{Key: "count", Value: bson.D{{Key: "$gt", Value: 0}}}},
		options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		return nil, err
	}
	tags := make([]string, len(docs))
	for i, d := range docs {
		tags[i] = d.ID
	}
	return tags, nil
}

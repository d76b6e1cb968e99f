package store

import (
	"context"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"webstack/app/conduit"
)

type commentDoc struct {
	ID        int64     `bson:"_id"`
	ArticleID string    `bson:"articleId"`
	AuthorID  string    `bson:"authorId"`
	Body      string    `bson:"body"`
	CreatedAt time.Time `bson:"createdAt"`
	UpdatedAt time.Time `bson:"updatedAt"`
}

// nextCommentID takes the next integer id from a counter. $inc in
// findAndModify is atomic on MongoDB and DocumentDB; FerretDB 1.x reads and
// writes the counter separately, so concurrent callers can be handed the
// same value. The mutex makes one process's callers take turns (which costs
// nothing measurable against a database round trip); AddComment's retry on
// a duplicate _id covers several processes.
func (s *Store) nextCommentID(ctx context.Context) (int64, error) {
	s.counterMu.Lock()
	defer s.counterMu.Unlock()
	var c struct {
		Seq int64 `bson:"seq"`
	}
	err := s.coll("counters").FindOneAndUpdate(ctx, bson.D{{Key: "_id", Value: "comments"}},
		bson.D{{Key: "$inc", Value: bson.D{{Key: "seq", Value: int64(1)}}}}, &c,
		options.FindOneAndUpdate().SetUpsert(true).SetReturnDocument(options.After))
	if err != nil {
		return 0, s.wrap("next comment id", err)
	}
	return c.Seq, nil
}

// AddComment stores a comment with a new integer id. The id is also the
// document's _id, so even a counter that misbehaved could not give two
// comments one id: the insert would fail and the next id is taken.
func (s *Store) AddComment(ctx context.Context, c *conduit.Comment) error {
	defer s.observe("comments.insert", time.Now())
	for attempt := 0; ; attempt++ {
		id, err := s.nextCommentID(ctx)
		if err != nil {
			return err
		}
		_, err = s.coll("comments").InsertOne(ctx, commentDoc{ID: id, ArticleID: c.ArticleID, AuthorID: c.AuthorID,
			Body: c.Body, CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt})
		if mongo.IsDuplicateKeyError(err) && attempt < 5 {
			continue
		}
		if err != nil {
			return s.wrap("insert comment", err)
		}
		c.ID = id
		return nil
	}
}

// Comments lists an article's comments, oldest first, as viewer sees them.
func (s *Store) Comments(ctx context.Context, viewer, articleID string) ([]conduit.Comment, error) {
	docs, err := findAll[commentDoc](ctx, s, s.coll("comments"), "comments.find", bson.D{{Key: "articleId", Value: articleID}},
		options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(docs))
	for i, d := range docs {
		ids[i] = d.AuthorID
	}
	profiles, err := s.profiles(ctx, viewer, ids)
	if err != nil {
		return nil, err
	}
	out := make([]conduit.Comment, len(docs))
	for i, d := range docs {
		out[i] = conduit.Comment{ID: d.ID, ArticleID: d.ArticleID, AuthorID: d.AuthorID, Body: d.Body,
			CreatedAt: d.CreatedAt, UpdatedAt: d.UpdatedAt, Author: profiles[d.AuthorID]}
	}
	return out, nil
}

// Comment loads one comment of an article.
func (s *Store) Comment(ctx context.Context, articleID string, id int64) (*conduit.Comment, error) {
	defer s.observe("comments.find", time.Now())
	var d commentDoc
	err := s.coll("comments").FindOne(ctx, bson.D{{Key: "_id", Value: id}, {Key: "articleId", Value: articleID}}, &d)
	if err != nil {
		err = s.wrap("find comment", err)
		if errNotFound(err) {
			return nil, conduit.Errorf(conduit.CodeNotFound, "comment not found")
		}
		return nil, err
	}
	return &conduit.Comment{ID: d.ID, ArticleID: d.ArticleID, AuthorID: d.AuthorID, Body: d.Body, CreatedAt: d.CreatedAt, UpdatedAt: d.UpdatedAt}, nil
}

// DeleteComment removes one comment.
func (s *Store) DeleteComment(ctx context.Context, id int64) error {
	defer s.observe("comments.delete", time.Now())
	_, err := s.coll("comments").DeleteOne(ctx, bson.D{{Key: "_id", Value: id}})
	return s.wrap("delete comment", err)
}

package store

import (
	"context"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"webstack/app/conduit"
)

// commentDoc is one comment, kept in its article's document.
type commentDoc struct {
	ID        int64     `bson:"id"`
	AuthorID  string    `bson:"authorId"`
	Body      string    `bson:"body"`
	CreatedAt time.Time `bson:"createdAt"`
	UpdatedAt time.Time `bson:"updatedAt"`
}

// MaxComments is how many comments an article holds: its comments live in
// its document, which a database keeps under 16 MB.
const MaxComments = 5000

// AddComment stores a comment on the article slug with the article's next
// comment id. Two writes: the article's counter moves (findAndModify,
// atomic on MongoDB and DocumentDB), then the comment is pushed. A crash in
// between leaves an unused id, nothing else. FerretDB 1.x does not make
// findAndModify atomic, so one process's callers take turns per article.
func (s *Store) AddComment(ctx context.Context, slug string, c *conduit.Comment) error {
	defer s.observe("comments.insert", time.Now())
	unlock := s.seqMu.lock(slug)
	defer unlock()
	// FerretDB 1.x refuses findAndModify with a projection: the whole
	// document comes back, decoded into the two fields needed.
	var d struct {
		AID        string `bson:"aid"`
		CommentSeq int64  `bson:"commentSeq"`
	}
	err := s.coll("articles").FindOneAndUpdate(ctx, bson.D{{Key: "_id", Value: slug}},
		bson.D{{Key: "$inc", Value: bson.D{{Key: "commentSeq", Value: int64(1)}}}}, &d,
		options.FindOneAndUpdate().SetReturnDocument(options.After))
	if err != nil {
		err = s.wrap("next comment id", err)
		if errNotFound(err) {
			return conduit.Errorf(conduit.CodeNotFound, "article not found")
		}
		return err
	}
	if d.CommentSeq > MaxComments {
		return conduit.Errorf(conduit.CodeInvalid, "this article has %d comments, the most it can hold", MaxComments)
	}
	doc := commentDoc{ID: d.CommentSeq, AuthorID: c.AuthorID, Body: c.Body, CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt}
	if _, err := s.coll("articles").UpdateOne(ctx, bson.D{{Key: "_id", Value: slug}},
		bson.D{{Key: "$push", Value: bson.D{{Key: "comments", Value: doc}}}}); err != nil {
		return s.wrap("insert comment", err)
	}
	c.ID, c.ArticleID = doc.ID, d.AID
	return nil
}

// thread reads an article's comments (and its aid), from the primary for a
// signed-in viewer.
func (s *Store) thread(ctx context.Context, viewer *conduit.User, slug string) (articleDoc, error) {
	var d articleDoc
	coll := s.readColl("articles")
	if viewer != nil {
		coll = s.coll("articles")
	}
	err := s.findOne(ctx, coll, "comments.find", slug, &d,
		options.FindOne().SetProjection(bson.D{{Key: "aid", Value: 1}, {Key: "comments", Value: 1}}))
	if errNotFound(err) {
		return d, conduit.Errorf(conduit.CodeNotFound, "article not found")
	}
	return d, err
}

// Comments lists an article's comments, oldest first, as viewer sees
// them: one read of the article, the authors from the cache.
func (s *Store) Comments(ctx context.Context, viewer *conduit.User, slug string) ([]conduit.Comment, error) {
	d, err := s.thread(ctx, viewer, slug)
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(d.Comments))
	for i, c := range d.Comments {
		ids[i] = c.AuthorID
	}
	profiles, err := s.profilesOf(ctx, viewer, ids)
	if err != nil {
		return nil, err
	}
	out := make([]conduit.Comment, len(d.Comments))
	for i, c := range d.Comments {
		out[i] = conduit.Comment{ID: c.ID, ArticleID: d.AID, AuthorID: c.AuthorID, Body: c.Body,
			CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt, Author: profiles[c.AuthorID]}
	}
	return out, nil
}

// Comment loads one comment of the article slug.
func (s *Store) Comment(ctx context.Context, slug string, id int64) (*conduit.Comment, error) {
	d, err := s.thread(ctx, &conduit.User{}, slug)
	if err != nil {
		return nil, err
	}
	for _, c := range d.Comments {
		if c.ID == id {
			return &conduit.Comment{ID: c.ID, ArticleID: d.AID, AuthorID: c.AuthorID, Body: c.Body, CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt}, nil
		}
	}
	return nil, conduit.Errorf(conduit.CodeNotFound, "comment not found")
}

// DeleteComment removes one comment of the article slug.
func (s *Store) DeleteComment(ctx context.Context, slug string, id int64) error {
	defer s.observe("comments.delete", time.Now())
	_, err := s.coll("articles").UpdateOne(ctx, bson.D{{Key: "_id", Value: slug}},
		bson.D{{Key: "$pull", Value: bson.D{{Key: "comments", Value: bson.D{{Key: "id", Value: id}}}}}})
	return s.wrap("delete comment", err)
}

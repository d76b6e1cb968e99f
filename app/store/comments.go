package store

import (
	"context"
	"fmt"
	"hash/fnv"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"webstack/app/conduit"
)

// An article's comments live in one thread document, {_id: aid, comments:
// [...]}: listing them is one read by _id. Threads are spread over
// threadShards collections (threads_00 … threads_ff, by a hash of the
// article id), because FerretDB 1.x on SQLite finds the document to update
// by scanning its collection: a comment then costs in proportion to one
// shard, not to every thread there is. On MongoDB and DocumentDB the shards
// are just 256 small collections, each read and updated by _id.
const threadShards = 256

// DefaultMaxComments is how many comments an article holds unless
// Options say otherwise.
const DefaultMaxComments = 5000

// maxThreadBytes bounds the comment text of one article, whatever the
// count: its thread stays well under the 16 MB a document may hold.
var maxThreadBytes = 8 << 20 // a variable for tests

type threadDoc struct {
	AID      string       `bson:"_id"`
	N        int          `bson:"n"`     // len(Comments), kept by each update
	Bytes    int          `bson:"bytes"` // their bodies' total length, likewise
	Comments []commentDoc `bson:"comments"`
}

type commentDoc struct {
	ID        int64     `bson:"id"`
	AuthorID  string    `bson:"authorId"`
	Body      string    `bson:"body"`
	CreatedAt time.Time `bson:"createdAt"`
	UpdatedAt time.Time `bson:"updatedAt"`
}

func (d commentDoc) comment(aid string, author conduit.Profile) conduit.Comment {
	return conduit.Comment{ID: d.ID, ArticleID: aid, AuthorID: d.AuthorID, Body: d.Body, CreatedAt: d.CreatedAt, UpdatedAt: d.UpdatedAt, Author: author}
}

// threads is the shard collection of the article aid.
func (s *Store) threads(aid string, fresh bool) collection {
	h := fnv.New32a()
	_, _ = h.Write([]byte(aid))
	return s.listColl(fmt.Sprintf("threads_%02x", h.Sum32()%threadShards), fresh)
}

// idBlock is how many comment ids a process reserves at a time.
const idBlock = 64

// nextCommentID hands out comment ids from a block this process reserved
// from a counter in meta (one small document): one counter write per 64
// comments. $inc in findAndModify is atomic on MongoDB and DocumentDB, so
// instances get disjoint blocks; FerretDB 1.x reads and writes the counter
// separately, so this process's callers take turns. Ids are unique, not
// ordered across instances (a thread keeps its comments in the order they
// were added); a restart leaves the rest of a block unused.
func (s *Store) nextCommentID(ctx context.Context) (int64, error) {
	s.seqMu.Lock()
	defer s.seqMu.Unlock()
	if s.ids.next < s.ids.end {
		s.ids.next++
		return s.ids.next - 1, nil
	}
	var c struct {
		Seq int64 `bson:"seq"`
	}
	err := s.coll("meta").FindOneAndUpdate(ctx, bson.D{{Key: "_id", Value: "commentSeq"}},
		bson.D{{Key: "$inc", Value: bson.D{{Key: "seq", Value: int64(idBlock)}}}}, &c,
		options.FindOneAndUpdate().SetUpsert(true).SetReturnDocument(options.After))
	if err != nil {
		return 0, s.wrap("reserve comment ids", err)
	}
	s.ids.next, s.ids.end = c.Seq-idBlock+2, c.Seq+1
	return c.Seq - idBlock + 1, nil
}

// AddComment stores a comment on the article slug with a new integer id:
// the id, then one update of the thread. A crash in between leaves an
// unused id, nothing else.
func (s *Store) AddComment(ctx context.Context, slug string, c *conduit.Comment) error {
	defer s.observe("comments.insert", time.Now())
	aid, err := s.aidOf(ctx, true, slug)
	if err != nil {
		return err
	}
	id, err := s.nextCommentID(ctx)
	if err != nil {
		return err
	}
	doc := commentDoc{ID: id, AuthorID: c.AuthorID, Body: c.Body, CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt}
	// One update found by _id alone (a filter FerretDB hands to SQLite's
	// index; any other filter makes it decode the whole shard), which also
	// counts the thread's comments. A thread pushed past Options.MaxComments takes
	// the comment back out and refuses it. The thread comes back whole
	// (FerretDB 1.x has no projection on findAndModify): its size is what
	// the update rewrites anyway, bounded by Options.MaxComments.
	threads := s.threads(aid, true)
	var t struct {
		N     int `bson:"n"`
		Bytes int `bson:"bytes"`
	}
	err = threads.FindOneAndUpdate(ctx, bson.D{{Key: "_id", Value: aid}},
		bson.D{{Key: "$push", Value: bson.D{{Key: "comments", Value: doc}}}, {Key: "$inc", Value: bson.D{{Key: "n", Value: 1}, {Key: "bytes", Value: len(doc.Body)}}}}, &t,
		options.FindOneAndUpdate().SetUpsert(true).SetReturnDocument(options.After))
	if err != nil {
		return s.wrap("insert comment", err)
	}
	if t.N > s.opts.MaxComments || t.Bytes > maxThreadBytes {
		if err := s.pullComment(context.WithoutCancel(ctx), aid, doc); err != nil {
			return err
		}
		return conduit.Errorf(conduit.CodeInvalid, "this article holds no more comments (%d at most, %d MiB of text)", s.opts.MaxComments, maxThreadBytes>>20)
	}
	c.ID, c.ArticleID = id, aid
	return nil
}

// aidOf returns the id of the article slug: cached while the articles'
// generation holds (a rename or a deletion moves it on), else read by _id.
func (s *Store) aidOf(ctx context.Context, fresh bool, slug string) (string, error) {
	g, err := s.gensOf(ctx, fresh)
	if err != nil {
		return "", err
	}
	key := fmt.Sprintf("%v|%s", fresh, slug)
	if aid, ok := s.cache.slugs.get(key, g.Articles); ok {
		return aid, nil
	}
	a, err := s.articleDoc(ctx, fresh, slug)
	if err != nil {
		return "", err
	}
	s.cache.slugs.put(key, g.Articles, a.AID)
	return a.AID, nil
}

// thread reads the comments of the article slug, oldest first: its thread
// by _id (from the primary for a signed-in viewer), after the article's id
// (cached).
func (s *Store) thread(ctx context.Context, fresh bool, slug string) (string, []commentDoc, error) {
	aid, err := s.aidOf(ctx, fresh, slug)
	if err != nil {
		return "", nil, err
	}
	var t threadDoc
	err = s.findOne(ctx, s.threads(aid, fresh), "comments.find", aid, &t)
	if errNotFound(err) {
		return aid, nil, nil
	}
	return aid, t.Comments, err
}

// Comments lists an article's comments, oldest first, as viewer sees them.
func (s *Store) Comments(ctx context.Context, viewer *conduit.User, slug string) ([]conduit.Comment, error) {
	aid, docs, err := s.thread(ctx, viewer != nil, slug)
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(docs))
	for i, d := range docs {
		ids[i] = d.AuthorID
	}
	profiles, err := s.profilesOf(ctx, viewer, ids)
	if err != nil {
		return nil, err
	}
	out := make([]conduit.Comment, len(docs))
	for i, d := range docs {
		out[i] = d.comment(aid, profiles[d.AuthorID])
	}
	return out, nil
}

// Comment loads one comment of the article slug.
func (s *Store) Comment(ctx context.Context, slug string, id int64) (*conduit.Comment, error) {
	aid, docs, err := s.thread(ctx, true, slug)
	if err != nil {
		return nil, err
	}
	for _, d := range docs {
		if d.ID == id {
			c := d.comment(aid, conduit.Profile{})
			return &c, nil
		}
	}
	return nil, conduit.Errorf(conduit.CodeNotFound, "comment not found")
}

// DeleteComment removes one comment of the article slug.
func (s *Store) DeleteComment(ctx context.Context, slug string, id int64) error {
	defer s.observe("comments.delete", time.Now())
	aid, err := s.aidOf(ctx, true, slug)
	if err != nil {
		return err
	}
	var t threadDoc
	if err := s.findOne(ctx, s.threads(aid, true), "comments.find", aid, &t); err != nil {
		if errNotFound(err) {
			return nil
		}
		return err
	}
	for _, c := range t.Comments {
		if c.ID == id {
			return s.pullComment(ctx, aid, c)
		}
	}
	return nil
}

// pullComment removes comment c from the thread of aid and counts it out,
// only when it is there (so twice is once).
func (s *Store) pullComment(ctx context.Context, aid string, c commentDoc) error {
	// $pull is given the comment whole, not a condition on its id:
	// FerretDB 1.x's $pull removes only elements equal to the value
	// (MongoDB and DocumentDB treat a document as a condition, which the
	// whole comment also is). The filter on its id makes the count move
	// only when the comment is there.
	_, err := s.threads(aid, true).UpdateOne(ctx, bson.D{{Key: "_id", Value: aid}, {Key: "comments.id", Value: c.ID}},
		bson.D{{Key: "$pull", Value: bson.D{{Key: "comments", Value: c}}},
			{Key: "$inc", Value: bson.D{{Key: "n", Value: -1}, {Key: "bytes", Value: -len(c.Body)}}}})
	return s.wrap("delete comment", err)
}

// deleteThread removes an article's thread.
func (s *Store) deleteThread(ctx context.Context, aid string) error {
	_, err := s.threads(aid, true).DeleteOne(ctx, bson.D{{Key: "_id", Value: aid}})
	return s.wrap("delete comments", err)
}

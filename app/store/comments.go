package store

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"webstack/app/conduit"
)

// A comment is a document of its own: adding one is an insert and its
// index entries, whatever the article already has, and a count on the
// article (conduit.MaxCommentsPerArticle, see AddComment); a page of them
// is a walk of its by_article entries from a cursor.
type commentDoc struct {
	ID        string    `bson:"_id"` // commentKey of its integer id
	AID       string    `bson:"aid"`
	AuthorID  string    `bson:"authorId"`
	Body      string    `bson:"body"`
	CreatedAt time.Time `bson:"createdAt"`
	UpdatedAt time.Time `bson:"updatedAt"`
}

// commentKey is the _id of the comment id: 16 hex digits, so that the
// string order is the numeric one.
func commentKey(id int64) string { return fmt.Sprintf("%016x", id) }

func (d commentDoc) comment(author conduit.Profile) conduit.Comment {
	id, _ := strconv.ParseInt(d.ID, 16, 64)
	return conduit.Comment{ID: id, ArticleID: d.AID, AuthorID: d.AuthorID, Body: d.Body, CreatedAt: d.CreatedAt,
		UpdatedAt: d.UpdatedAt, Author: author}
}

// commentIDs hands out comment ids: integers that JavaScript clients read
// exactly (at most 2^53), increasing with time, and unique without a
// counter that every instance would write (a global hot document): the
// milliseconds since 2024 shifted left 12 bits, plus 12 random bits. One
// process never hands out the same id twice; two instances pick the same
// one in the same millisecond once in 4,096 times, and the unique _id
// index refuses the second, which picks again (see AddComment).
type commentIDs struct {
	mu   sync.Mutex
	last int64
}

// commentEpoch is where comment ids' milliseconds start.
var commentEpoch = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

func (c *commentIDs) next() int64 {
	id := time.Since(commentEpoch).Milliseconds()<<12 | rand.Int64N(1<<12)
	c.mu.Lock()
	defer c.mu.Unlock()
	if id <= c.last {
		id = c.last + 1
	}
	c.last = id
	return id
}

// AddComment stores a comment on the article articleID (ArticleOwner
// gives it; an id survives a rename) with a new integer id: one insert
// carrying its own _id (sent again after a lost reply, it finds itself; an
// _id another instance took meanwhile is picked again). The article is read
// on the primary after: a comment on an article that is gone (deleted since
// the caller read it, or its deletion had removed the others meanwhile)
// goes too, and the answer is "not found"; when that read fails, the answer
// is the failure (503), never a success. A comment whose insert lands late,
// after its article's deletion swept the comments, is removed when the
// deletion settles (see intentDoc).
func (s *Store) AddComment(ctx context.Context, articleID string, c *conduit.Comment) error {
	defer s.observe("comments.insert", time.Now())
	a := articleDoc{ID: articleID}
	var id int64
	var doc commentDoc
	var found bool // the comment was there already
	k, keyed := conduit.RequestKeyOf(ctx)
	if keyed {
		c.CreatedAt, c.UpdatedAt = k.First, k.First
	}
	for attempt := 0; ; attempt++ {
		id = s.ids.next()
		if keyed {
			id = keyedCommentID(k, attempt)
		}
		doc = commentDoc{ID: commentKey(id), AID: a.ID, AuthorID: c.AuthorID, Body: c.Body, CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt}
		var err error
		found, err = s.insertOrFind(ctx, "comments", "insert comment", doc.ID, doc, sameDoc(doc))
		if err == nil {
			break
		}
		if keyed && errors.Is(err, errIDTaken) {
			// A copy that runs again after its comment (made at this
			// attempt's id) was deleted or refused: it is told so, and makes
			// no other.
			var gone struct {
				Off       bool   `bson:"off"`
				Refused   bool   `bson:"refused"`
				WasAid    string `bson:"wasAid"`
				WasAuthor string `bson:"wasAuthor"`
			}
			if ferr := s.findOne(ctx, s.coll("comments"), "comments.find", byID(doc.ID), &gone); ferr == nil &&
				gone.Off && gone.WasAid == a.ID && gone.WasAuthor == c.AuthorID {
				if gone.Refused {
					return errArticleFull
				}
				return conduit.Errorf(conduit.CodeNotFound, "the comment this request made has been deleted since")
			}
		}
		if !errors.Is(err, errIDTaken) || attempt == 3 {
			return s.wrap("insert comment", err)
		}
	}
	// The article counts its comments (a bound: conduit.MaxCommentsPerArticle)
	// and, found on the primary, says it is still there. The count comes
	// after the insert, so two comments racing for the last place cannot
	// both keep it: the one whose count is past the bound takes its comment
	// back. The count errs high — a lost reply sent again (the store's
	// retry) counts twice; deletions give nothing back — and low only by a
	// comment whose count itself failed (answered 503, the comment kept).
	if found && keyed && k.Again {
		// A copy that runs again finds the comment the first copy made,
		// and counted: it is answered as the first was, without counting
		// it once more (which, at the bound, would take it back).
		err := s.findOne(ctx, s.coll("articles"), "articles.find", byID(a.ID), &articleDoc{},
			options.FindOne().SetProjection(bson.D{{Key: "_id", Value: 1}}))
		if err != nil {
			return notFoundAs(err, "article not found")
		}
		c.ID, c.ArticleID = id, a.ID
		return nil
	}
	var counted struct {
		N int `bson:"comments"`
	}
	// By _id alone (an index lookup everywhere; the local engine's fast
	// path too), the count after it answered: past the bound, this comment
	// goes again (the count stays past it, which says "full" as well).
	err := s.wrap("count a comment", s.coll("articles").FindOneAndUpdate(ctx, byID(a.ID),
		bson.D{{Key: "$inc", Value: bson.D{{Key: "comments", Value: 1}}}}, &counted,
		options.FindOneAndUpdate().SetReturnDocument(options.After).SetProjection(bson.D{{Key: "comments", Value: 1}})))
	full := err == nil && counted.N > conduit.MaxCommentsPerArticle
	switch {
	case full:
		// Taken back as a tombstone that says why (a late copy of the
		// insert meets it and is refused; a keyed copy is told "full").
		if _, err := s.coll("comments").ReplaceOne(ctx, byID(doc.ID), bson.D{{Key: "_id", Value: doc.ID}, {Key: "off", Value: true}, {Key: "refused", Value: true},
			{Key: "at", Value: time.Now().UTC()}, {Key: "wasAid", Value: a.ID}, {Key: "wasAuthor", Value: c.AuthorID}}); err != nil {
			return s.wrap("take back a comment past the article's bound", err)
		}
		return errArticleFull
	case errNotFound(err):
		if _, err := s.coll("comments").DeleteOne(ctx, byID(doc.ID)); err != nil {
			// The article's deletion may have settled already: record one
			// again, whose run sweeps the comments of an article that is
			// gone.
			bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			_, _ = s.begin(bctx, intentDoc{Kind: intentDeleteArticle, AID: a.ID})
			cancel()
			return s.wrap("delete a comment on an article that is gone", err)
		}
		return conduit.Errorf(conduit.CodeNotFound, "article not found")
	case err != nil:
		// Whether the article is still there is unknown: so is whether the
		// comment is kept (a deletion that came first removes it as it
		// settles). Not a success.
		return err
	}
	c.ID, c.ArticleID = id, a.ID
	return nil
}

// errArticleFull is a comment past its article's bound.
var errArticleFull = conduit.Errorf(conduit.CodeConflict, "this article has reached its limit of %d comments", conduit.MaxCommentsPerArticle)

// keyedCommentID is the comment id of the request with key k: the time of
// its first claim and 12 bits of its key, so that a copy that runs again
// finds the comment the first made. Another comment holding that id (one
// in 4,096 of those made in the same millisecond) makes it take the next
// attempt's, derived the same way, so every copy goes the same way.
func keyedCommentID(k conduit.RequestKey, attempt int) int64 {
	h := sha256.Sum256([]byte(k.ID + "\x00comment\x00" + strconv.Itoa(attempt)))
	return k.First.Sub(commentEpoch).Milliseconds()<<12 | int64(binary.BigEndian.Uint16(h[:2])&0xfff)
}

// notFoundAs names a not-found error.
func notFoundAs(err error, msg string) error {
	if errNotFound(err) {
		return conduit.Errorf(conduit.CodeNotFound, "%s", msg)
	}
	return err
}

// commentPage is a page of comments as read, and whether more follow.
type commentPage struct {
	docs []commentDoc
	more bool
}

// Comments returns a page of an article's comments, oldest first, as
// viewer sees them, and the cursor of the next page (nil: none). A page is
// one index walk of by_article from the cursor, of at most p.Limit+1
// entries, whatever the thread's length.
func (s *Store) Comments(ctx context.Context, viewer *conduit.User, slug string, p conduit.CommentPage) ([]conduit.Comment, *conduit.CommentCursor, error) {
	a, err := s.article(ctx, viewer, slug)
	if err != nil {
		return nil, nil, err
	}
	limit := min(max(p.Limit, 1), conduit.MaxLimit)
	filter := bson.D{{Key: "aid", Value: a.ID}}
	key := a.ID + "|" + strconv.Itoa(limit)
	if c := p.After; c != nil {
		// After (at, id) in the order (createdAt, _id): the index bounds
		// are aid and createdAt >= at; the few comments of that very
		// millisecond up to id are left out by the $nor.
		at := c.At.UTC().Truncate(time.Millisecond)
		filter = append(filter, bson.E{Key: "createdAt", Value: bson.D{{Key: "$gte", Value: at}}},
			bson.E{Key: "$nor", Value: bson.A{bson.D{{Key: "createdAt", Value: at}, {Key: "_id", Value: bson.D{{Key: "$lte", Value: commentKey(c.ID)}}}}}})
		key += fmt.Sprintf("|%d|%d", at.UnixMilli(), c.ID)
	}
	fresh := s.fresh(viewer)
	load := func(ctx context.Context) (commentPage, error) {
		docs, err := findAll[commentDoc](ctx, s, s.reader(fresh, "comments"), "comments.find", filter,
			options.Find().SetSort(bson.D{asc("createdAt"), asc("_id")}).SetLimit(int64(limit+1)))
		if err != nil {
			return commentPage{}, err
		}
		if len(docs) > limit {
			return commentPage{docs: docs[:limit], more: true}, nil
		}
		return commentPage{docs: docs}, nil
	}
	var pg commentPage
	if fresh {
		pg, err = load(ctx)
	} else {
		pg, err = s.cache.comments.fill(ctx, key, load)
	}
	if err != nil {
		return nil, nil, err
	}
	authors := make([]string, len(pg.docs))
	for i, d := range pg.docs {
		authors[i] = d.AuthorID
	}
	profiles, err := s.profilesOf(ctx, viewer, authors)
	if err != nil {
		return nil, nil, err
	}
	out := make([]conduit.Comment, len(pg.docs))
	for i, d := range pg.docs {
		out[i] = d.comment(profiles[d.AuthorID])
	}
	var next *conduit.CommentCursor
	if pg.more {
		last := out[len(out)-1]
		next = &conduit.CommentCursor{At: last.CreatedAt, ID: last.ID}
	}
	return out, next, nil
}

// Comment loads one comment of the article slug, from the primary.
func (s *Store) Comment(ctx context.Context, slug string, id int64) (*conduit.Comment, error) {
	var a articleDoc
	if err := s.findOne(ctx, s.coll("articles"), "articles.find", bson.D{{Key: "slug", Value: slug}}, &a,
		options.FindOne().SetProjection(bson.D{{Key: "_id", Value: 1}})); err != nil {
		return nil, notFoundAs(err, "article not found")
	}
	var d commentDoc
	if err := s.findOne(ctx, s.coll("comments"), "comments.find", byID(commentKey(id)), &d); err != nil {
		return nil, notFoundAs(err, "comment not found")
	}
	if d.AID != a.ID {
		return nil, conduit.Errorf(conduit.CodeNotFound, "comment not found")
	}
	c := d.comment(conduit.Profile{})
	return &c, nil
}

// DeleteComment removes one comment (Comment found it on the article
// slug): the comment is replaced by a tombstone under its id ({_id, off,
// at}: no article, so no list finds it and Comment answers "not found").
// Twice is once. A late copy of the deletion changes nothing (comments are
// not edited); a late copy of the comment's insert — a keyed request's
// copy makes the same id, so the first copy's held insert is that id too —
// meets the tombstone and is refused, instead of bringing the deleted
// comment back.
func (s *Store) DeleteComment(ctx context.Context, slug string, id int64) error {
	defer s.observe("comments.delete", time.Now())
	key := commentKey(id)
	var d struct {
		AID      string `bson:"aid"`
		AuthorID string `bson:"authorId"`
		Off      bool   `bson:"off"`
	}
	switch err := s.findOne(ctx, s.coll("comments"), "comments.find", byID(key), &d); {
	case errNotFound(err):
		return nil
	case err != nil:
		return err
	case d.Off:
		return nil // deleted already
	}
	// The tombstone keeps whose comment it was, under other names (no list
	// finds it by them): a keyed request sent again after its comment was
	// deleted is told so, instead of making another (see AddComment).
	// The comment's place under the article's bound is not given back: a
	// decrement is not safe to send twice (a lost reply, sent again, would
	// count one too few), so the bound counts the comments made, never
	// fewer (a contract's recount counts the ones there).
	_, err := s.coll("comments").ReplaceOne(ctx, byID(key), bson.D{{Key: "_id", Value: key}, {Key: "off", Value: true},
		{Key: "at", Value: time.Now().UTC()}, {Key: "wasAid", Value: d.AID}, {Key: "wasAuthor", Value: d.AuthorID}})
	return s.wrap("delete comment", err)
}

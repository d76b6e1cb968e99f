// Package conduit holds the domain of the RealWorld Conduit API: its types,
// its validation rules and its errors. It imports no storage or transport.
package conduit

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// User is a registered account.
type User struct {
	ID           string
	Username     string
	Email        string
	PasswordHash string
	Bio          string
	Image        string
	// Cred is the credential version: it changes with the password, and
	// tokens carry the one they were issued for.
	Cred int
	// Version counts the changes of the account's settings (1 when
	// created; 0: stored before versions): an update names the one it was
	// made to, and the API gives it as the account's ETag.
	Version int64
	// LastWrite is when the user last changed anything (or began to): for
	// a while after it, what they read must show what they wrote.
	LastWrite time.Time
	// FreshUntil is until when, at least, what they read must show what
	// they wrote (the store records it ahead, so that a burst of writes
	// costs one record).
	FreshUntil time.Time
	// CreatedAt is when the account was made (zero: before it was kept).
	CreatedAt time.Time
}

// Session is one sign-in: its token carries ID. It ends when signed out,
// when Expires passes (the absolute lifetime), or when it has not been
// used for the idle timeout since Seen.
type Session struct {
	ID      string
	UserID  string
	Seen    time.Time
	Expires time.Time
}

// Profile is u as seen by someone who does not follow them.
func (u *User) Profile() Profile { return Profile{Username: u.Username, Bio: u.Bio, Image: u.Image} }

// Profile is a user as another user sees them.
type Profile struct {
	Username  string
	Bio       string
	Image     string
	Following bool
}

// Article is one post.
type Article struct {
	ID             string
	Slug           string
	Title          string
	Description    string
	Body           string
	TagList        []string
	CreatedAt      time.Time
	UpdatedAt      time.Time
	AuthorID       string
	FavoritesCount int
	Favorited      bool
	Author         Profile
	// Version counts the author's edits (1 when created; 0: stored before
	// versions were). An edit applies to the version it read, or not at
	// all: the API's ETag.
	Version int64
	// AuthorSince is when its author's account was made (kept on the
	// article: the tag ranking leaves out the articles of accounts younger
	// than a day; zero: an established account).
	AuthorSince time.Time
}

// Comment is a reply to an article.
type Comment struct {
	ID        int64
	ArticleID string
	AuthorID  string
	Body      string
	CreatedAt time.Time
	UpdatedAt time.Time
	Author    Profile
}

// CommentPage asks for a page of an article's comments, oldest first.
type CommentPage struct {
	Limit int            // 1..MaxLimit
	After *CommentCursor // where the previous page ended; nil: the first page
}

// CommentCursor is where a page of comments ended: its last comment's
// time (to the millisecond, as stored) and id. The next page is what
// comes after it in the order (time, id), deletions meanwhile included. A
// comment added meanwhile with a time before the cursor's (a keyed
// request's copy takes its first try's time; instances' clocks differ by
// a few milliseconds) is on the earlier pages only.
type CommentCursor struct {
	At time.Time
	ID int64
}

// ArticleFilter selects articles for a list; empty fields do not filter.
type ArticleFilter struct {
	Tag       string
	Author    string // username
	Favorited string // username
	Limit     int
	Offset    int
}

// Code classifies a domain error; the HTTP layer maps codes to statuses.
type Code int

const (
	CodeInvalid      Code = iota + 1 // the request is malformed or fails validation
	CodeUnauthorized                 // no or bad credentials
	CodeForbidden                    // authenticated, but not allowed
	CodeNotFound                     // the resource does not exist
	CodeConflict                     // a unique value is taken
	CodeUnavailable                  // a dependency (the database) cannot be reached
	CodeChanged                      // the thing changed since the version the request read: nothing was written
	CodeBusy                         // the same request (its idempotency key) is still being answered
)

// Error is a domain error: a code and a message safe to show to the client.
type Error struct {
	Code    Code
	Message string
	Err     error // the cause, never shown to the client
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %v", e.Message, e.Err)
	}
	return e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf builds a domain error with a client-safe message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Unavailable wraps a dependency failure.
func Unavailable(err error) *Error {
	return &Error{Code: CodeUnavailable, Message: "service temporarily unavailable", Err: err}
}

// CodeOf returns the code of the first *Error in err's chain, or 0.
func CodeOf(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return 0
}

// Answer is an answer kept for the copies of a request sent with an
// idempotency key: its status, the headers kept, its body.
type Answer struct {
	Status int
	Header map[string]string
	Body   []byte
}

// RequestKey is what every copy of a request sent with an idempotency key
// shares: the key's record (ID, unique to who sent it, where, and the key)
// and when its first copy was claimed. What a request makes new (an
// article's id, a comment's id and time) is derived from it, so that a
// copy that runs again after the first answered "try again" (its writes
// possibly applied) makes the same documents, and finds them, instead of
// making them twice.
type RequestKey struct {
	ID    string
	First time.Time
	// Again: an earlier copy ran and answered "try again" (or its lease
	// ended): what it made may be there already.
	Again bool
}

type requestKeyCtx struct{}

// WithRequestKey is ctx carrying k.
func WithRequestKey(ctx context.Context, k RequestKey) context.Context {
	return context.WithValue(ctx, requestKeyCtx{}, k)
}

// RequestKeyOf is the key ctx carries, if any.
func RequestKeyOf(ctx context.Context) (RequestKey, bool) {
	k, ok := ctx.Value(requestKeyCtx{}).(RequestKey)
	return k, ok
}

package store

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"webstack/app/conduit"
)

type userDoc struct {
	ID           string    `bson:"_id"`
	Username     string    `bson:"username"`
	UsernameKey  string    `bson:"usernameKey"`
	Email        string    `bson:"email"`
	PasswordHash string    `bson:"passwordHash"`
	Bio          string    `bson:"bio"`
	Image        string    `bson:"image"`
	Cred         int       `bson:"cred"`
	Ver          int64     `bson:"ver,omitempty"` // see UpdateUser (absent: stored before versions)
	LastWrite    time.Time `bson:"lastWrite"`
	FreshUntil   time.Time `bson:"freshUntil,omitempty"` // see Wrote (absent: LastWrite + the window)
	CreatedAt    time.Time `bson:"createdAt"`
}

func (d userDoc) user() *conduit.User {
	return &conduit.User{ID: d.ID, Username: d.Username, Email: d.Email, PasswordHash: d.PasswordHash, Bio: d.Bio, Image: d.Image, CreatedAt: d.CreatedAt,
		Cred: d.Cred, Version: d.Ver, LastWrite: d.LastWrite, FreshUntil: d.FreshUntil}
}

// usernameKey is how usernames are unique: without regard to case.
func usernameKey(u string) string { return strings.ToLower(u) }

// newID is a new document id: an ObjectID's hex, unique across instances.
func newID() string { return bson.NewObjectID().Hex() }

// CreateUser inserts a user and sets its ID: one insert, which the unique
// indexes on usernameKey and email refuse when either is taken (in any
// case). Converges: the insert carries its own _id, so sent again after a
// lost reply it finds itself, and a late copy meets the first and is
// refused; either the account is whole or nothing was written. Two sign-ups
// of one name or email at once: the unique indexes keep one (a sign-up sent
// again is the api's: signed in to the account it made).
func (s *Store) CreateUser(ctx context.Context, u *conduit.User) error {
	defer s.observe("users.insert", time.Now())
	now := time.Now().UTC()
	d := userDoc{ID: newID(), Username: u.Username, UsernameKey: usernameKey(u.Username), Email: strings.ToLower(u.Email),
		PasswordHash: u.PasswordHash, Bio: u.Bio, Image: u.Image, Ver: 1, LastWrite: now, CreatedAt: now}
	err := s.insertNew(ctx, "users", "insert user", d.ID, d, sameDoc(d))
	if conduit.CodeOf(err) == conduit.CodeConflict {
		return s.taken(ctx, d.ID, d.UsernameKey, d.Email)
	}
	if err != nil {
		return err
	}
	*u = *d.user()
	return nil
}

// insertNew inserts doc, whose _id id is new, or made of what it relates
// (follows, favorites). Sent again after an unknown outcome, it may meet
// its own first copy: the insert is then a success. What is found under
// its _id is its own copy when same says so (nil: any document under that
// _id is the same relation); otherwise the _id was taken by another
// document (errIDTaken). A duplicate key on another unique index is
// CodeConflict.
func (s *Store) insertNew(ctx context.Context, coll, op string, id string, doc any, same func(found bson.Raw) bool) error {
	_, err := s.insertOrFind(ctx, coll, op, id, doc, same)
	return err
}

// insertOrFind is insertNew, saying whether it found the document there
// (its own copy, or the first's) rather than inserting it.
func (s *Store) insertOrFind(ctx context.Context, coll, op string, id string, doc any, same func(found bson.Raw) bool) (found bool, err error) {
	_, err = s.coll(coll).InsertOne(ctx, doc)
	if err == nil || !isDuplicate(err) {
		return false, s.wrap(op, err)
	}
	var raw bson.Raw
	switch ferr := s.coll(coll).FindOne(ctx, byID(id), &raw); {
	case ferr == nil && (same == nil || same(raw)):
		return true, nil
	case ferr == nil:
		return false, errIDTaken
	case errors.Is(ferr, mongo.ErrNoDocuments):
		return false, &conduit.Error{Code: conduit.CodeConflict, Message: "already exists", Err: err}
	default:
		return false, s.wrap(op, ferr)
	}
}

// errIDTaken is an insert whose new _id another document has.
var errIDTaken = errors.New("the new document's _id is taken")

// sameDoc says whether found is doc as stored (the same bytes: the same
// fields, in the same order, with the same values).
func sameDoc(doc any) func(bson.Raw) bool {
	want, err := bson.Marshal(doc)
	return func(found bson.Raw) bool { return err == nil && bytes.Equal(want, found) }
}

// taken reads, on the primary, which of the values a unique index refused
// is held by someone other than self, and says so. Neither (the holder
// changed it meanwhile) is "unavailable": the client tries again.
func (s *Store) taken(ctx context.Context, self, key, email string) error {
	var what []string
	for _, f := range []struct{ field, value, name string }{{"email", email, "email"}, {"usernameKey", key, "username"}} {
		if f.value == "" {
			continue
		}
		var d userDoc
		err := s.findOne(ctx, s.coll("users"), "users.find", bson.D{{Key: f.field, Value: f.value}}, &d)
		switch {
		case errNotFound(err):
		case err != nil:
			return err
		case d.ID != self:
			what = append(what, f.name)
		}
	}
	switch len(what) {
	case 0:
		return conduit.Unavailable(errors.New("a unique value was refused and then released: try again"))
	case 1:
		return conduit.Errorf(conduit.CodeConflict, "%s has already been taken", what[0])
	}
	return conduit.Errorf(conduit.CodeConflict, "email and username have already been taken")
}

// User reads the user id on the primary: the signed-in viewer, whose
// credential version and last write must be current on every instance.
func (s *Store) User(ctx context.Context, id string) (*conduit.User, error) {
	var d userDoc
	if err := s.findOne(ctx, s.coll("users"), "users.find", byID(id), &d); err != nil {
		return nil, err
	}
	return d.user(), nil
}

// UserByEmail finds a user by email (case-insensitive), on the primary:
// someone who just registered on another instance signs in.
func (s *Store) UserByEmail(ctx context.Context, email string) (*conduit.User, error) {
	var d userDoc
	if err := s.findOne(ctx, s.coll("users"), "users.find", bson.D{{Key: "email", Value: strings.ToLower(email)}}, &d); err != nil {
		return nil, err
	}
	return d.user(), nil
}

// UserByUsername finds a user by username (case-insensitive), as viewer
// (nil: nobody) may see it.
func (s *Store) UserByUsername(ctx context.Context, viewer *conduit.User, username string) (*conduit.User, error) {
	key := usernameKey(username)
	load := func(ctx context.Context, fresh bool) (userDoc, error) {
		var d userDoc
		err := s.findOne(ctx, s.reader(fresh, "users"), "users.find", bson.D{{Key: "usernameKey", Value: key}}, &d)
		return d, err
	}
	var d userDoc
	var err error
	if s.fresh(viewer) {
		d, err = load(ctx, true)
	} else {
		d, err = s.cache.names.fill(ctx, key, func(ctx context.Context) (userDoc, error) { return load(ctx, false) })
	}
	if err != nil {
		return nil, err
	}
	return d.user(), nil
}

// UpdateUser saves u's fields that differ from old over the version old
// was read at (old.Version), and moves the version on: one update by id and
// version, which the unique indexes refuse when a new username or email is
// taken. A password change also moves the credential version (every token
// issued before is void). What each outcome means:
//
//   - a lost reply: the update is sent again, or the read-back below finds
//     these values saved (its own copy applied, or another that left the same): a success;
//   - a late copy (held by the server, applied after the request gave up):
//     it names a version that has moved on by then if anything was saved
//     since, so it matches nothing and changes nothing;
//   - a re-sent request: it reads the account again and saves the same
//     values over the version it reads (a password change sent again is
//     refused: the token it carries was voided by the first);
//   - a concurrent change (another tab, another device): only one of two
//     changes of one version applies; the other is CodeChanged, nothing
//     written, and the caller shows the current settings (409, 412).
//
// u.Version is moved on on success. (Wrote's marks do not move it: they
// are not settings.)
func (s *Store) UpdateUser(ctx context.Context, old, u *conduit.User) error {
	defer s.observe("users.update", time.Now())
	u.Email = strings.ToLower(u.Email)
	now := time.Now().UTC()
	fields := bson.D{{Key: "lastWrite", Value: now}, {Key: "ver", Value: old.Version + 1}}
	var key, email string
	if u.Username != old.Username {
		key = usernameKey(u.Username)
		fields = append(fields, bson.E{Key: "username", Value: u.Username}, bson.E{Key: "usernameKey", Value: key})
	}
	if u.Email != old.Email {
		email = u.Email
		fields = append(fields, bson.E{Key: "email", Value: u.Email})
	}
	for _, f := range []struct {
		name     string
		was, now string
	}{{"passwordHash", old.PasswordHash, u.PasswordHash}, {"bio", old.Bio, u.Bio}, {"image", old.Image, u.Image}} {
		if f.was != f.now {
			fields = append(fields, bson.E{Key: f.name, Value: f.now})
		}
	}
	if u.Cred != old.Cred {
		fields = append(fields, bson.E{Key: "cred", Value: u.Cred})
	}
	res, err := s.coll("users").UpdateOne(ctx, bson.D{{Key: "_id", Value: u.ID}, atVersion(old.Version)}, set(fields...))
	switch {
	case isDuplicate(err):
		return s.taken(ctx, u.ID, key, email)
	case err != nil:
		return s.wrap("update user", err)
	case res.MatchedCount == 0:
		cur, err := s.User(ctx, u.ID)
		if err != nil {
			return err
		}
		if cur.Username != u.Username || cur.Email != u.Email || cur.PasswordHash != u.PasswordHash ||
			cur.Bio != u.Bio || cur.Image != u.Image || cur.Cred != u.Cred {
			return conduit.Errorf(conduit.CodeChanged, "the account was changed since this version was read: this change was not applied")
		}
		// Our own copy, applied before its reply was lost (and perhaps
		// another change since that left the same values): what was asked
		// for is what is saved.
		u.LastWrite, u.Version = now, cur.Version
		return nil
	}
	u.LastWrite, u.Version = now, old.Version+1
	return nil
}

// Wrote records that viewer is about to write, before the write: for
// Options.ReadYourWrites from now their reads go to the primary. It records
// a window twice as long ahead (freshUntil), and nothing while the one
// recorded still covers a full window from now: so every write is followed
// by at least the whole window, and a burst of writes costs one record per
// window. (Recording only the time of the write, and skipping for half a
// window, left a write made just before a skipped one with half a window.)
func (s *Store) Wrote(ctx context.Context, viewer *conduit.User) error {
	now := time.Now().UTC()
	if viewer == nil || !now.Add(s.opts.ReadYourWrites).After(viewer.FreshUntil) {
		return nil
	}
	defer s.observe("users.wrote", time.Now())
	until := now.Add(2 * s.opts.ReadYourWrites)
	// $max: a copy of this write that lands late never moves them back.
	if _, err := s.coll("users").UpdateOne(ctx, byID(viewer.ID), bson.D{{Key: "$max", Value: bson.D{{Key: "lastWrite", Value: now}, {Key: "freshUntil", Value: until}}}}); err != nil {
		return s.wrap("record a write", err)
	}
	viewer.LastWrite, viewer.FreshUntil = now, until
	return nil
}

// fresh reports whether viewer must read the primary: they wrote lately.
func (s *Store) fresh(viewer *conduit.User) bool {
	if viewer == nil {
		return false
	}
	now := time.Now()
	return now.Before(viewer.FreshUntil) || now.Sub(viewer.LastWrite) < s.opts.ReadYourWrites
}

// reader is where a read goes: the primary when fresh, else the
// lag-tolerant handle (secondaries where there are any).
func (s *Store) reader(fresh bool, name string) collection {
	if fresh || s.cur.Load().single {
		return s.coll(name)
	}
	return s.readColl(name)
}

// Follow records that follower follows followee: the relation toggled on
// (see toggle for what a lost reply, a late copy, a re-send and a
// concurrent toggle do).
func (s *Store) Follow(ctx context.Context, follower, followee string) error {
	return s.follow(ctx, follower, followee, true)
}

// Unfollow toggles the follow off, as Follow.
func (s *Store) Unfollow(ctx context.Context, follower, followee string) error {
	return s.follow(ctx, follower, followee, false)
}

func (s *Store) follow(ctx context.Context, follower, followee string, on bool) error {
	op := map[bool]string{true: "follow", false: "unfollow"}[on]
	defer s.observe("follows."+op, time.Now())
	fields := bson.D{{Key: "follower", Value: follower}, {Key: "followee", Value: followee}, {Key: "at", Value: time.Now().UTC()}}
	wasOn, ver, err := s.toggle(ctx, "follows", op, pair(follower, followee), on, fields)
	if err != nil || !on || wasOn {
		return err // (a follow of someone followed already takes no new place)
	}
	// The feed reads every follow of its viewer: an account follows at
	// most conduit.MaxFollowing people, counted after the follow (on
	// by_follower, an index walk of at most one more than the bound), so
	// that two follows racing for the last place cannot both keep it: one
	// past the bound is turned off again and answered 409 (both, when they
	// count at once: never more than the bound).
	n, err := s.count(ctx, s.coll("follows"), "follows.count", bson.D{{Key: "follower", Value: follower}}, conduit.MaxFollowing+1)
	if err != nil || n <= conduit.MaxFollowing {
		return err
	}
	// Turned off again — the version this follow wrote, compared and set:
	// a toggle made since (another request's, acknowledged) is not undone
	// — even if the request has gone (a follow past the bound must not stay
	// for want of a reply).
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	id := pair(follower, followee)
	if _, err := s.coll("follows").ReplaceOne(rctx, bson.D{{Key: "_id", Value: id}, atVersion(ver)}, relation(id, ver+1, false, fields)); err != nil {
		return s.wrap("take back a follow past the bound", err)
	}
	return conduit.Errorf(conduit.CodeConflict, "you follow %d people, the most one account may: unfollow someone first", conduit.MaxFollowing)
}

// pair is the _id of a relation of a to b.
func pair(a, b string) string { return a + "/" + b }

// Profile is how viewer (nil: nobody signed in) sees u.
func (s *Store) Profile(ctx context.Context, viewer, u *conduit.User) (conduit.Profile, error) {
	p := u.Profile()
	following, err := s.follows(ctx, viewer, []string{u.ID})
	p.Following = following[u.ID]
	return p, err
}

// follows returns which of ids viewer follows: one query by _id.
func (s *Store) follows(ctx context.Context, viewer *conduit.User, ids []string) (map[string]bool, error) {
	return s.related(ctx, viewer, "follows", "followee", ids)
}

// favors returns which of the articles aids viewer favorited.
func (s *Store) favors(ctx context.Context, viewer *conduit.User, aids []string) (map[string]bool, error) {
	return s.related(ctx, viewer, "favorites", "aid", aids)
}

// related reads which of ids viewer relates to in coll (follows,
// favorites), by the relations' _ids: on the primary when viewer wrote
// lately, else on a replica (their relations have not changed since).
func (s *Store) related(ctx context.Context, viewer *conduit.User, coll, field string, ids []string) (map[string]bool, error) {
	out := map[string]bool{}
	if viewer == nil {
		return out, nil
	}
	var keys []string
	for _, id := range ids {
		if id != viewer.ID || coll != "follows" {
			if k := pair(viewer.ID, id); !slices.Contains(keys, k) {
				keys = append(keys, k)
			}
		}
	}
	if len(keys) == 0 {
		return out, nil
	}
	docs, err := findAll[bson.M](ctx, s, s.reader(s.fresh(viewer), coll), coll+".find", in("_id", keys),
		options.Find().SetProjection(bson.D{{Key: field, Value: 1}}))
	for _, d := range docs {
		if v, ok := d[field].(string); ok {
			out[v] = true
		}
	}
	return out, err
}

// profilesOf returns the profiles of ids as viewer sees them, keyed by id.
func (s *Store) profilesOf(ctx context.Context, viewer *conduit.User, ids []string) (map[string]conduit.Profile, error) {
	users, err := s.usersByID(ctx, s.fresh(viewer), ids)
	if err != nil {
		return nil, err
	}
	following, err := s.follows(ctx, viewer, ids)
	if err != nil {
		return nil, err
	}
	out := make(map[string]conduit.Profile, len(users))
	for id, d := range users {
		p := d.user().Profile()
		p.Following = following[id]
		out[id] = p
	}
	return out, nil
}

// usersByID reads the users ids, leaving out those that do not exist:
// fresh on the primary, else through the cache, the misses in one query
// that concurrent requests missing the same users share.
func (s *Store) usersByID(ctx context.Context, fresh bool, ids []string) (map[string]userDoc, error) {
	ids = slices.Compact(slices.Sorted(slices.Values(ids)))
	load := func(ctx context.Context, fresh bool, ids []string) (map[string]userDoc, error) {
		docs, err := findAll[userDoc](ctx, s, s.reader(fresh, "users"), "users.find_many", in("_id", ids))
		out := make(map[string]userDoc, len(docs))
		for _, d := range docs {
			out[d.ID] = d
		}
		return out, err
	}
	if len(ids) == 0 {
		return map[string]userDoc{}, nil
	}
	if fresh {
		return load(ctx, true, ids)
	}
	out := make(map[string]userDoc, len(ids))
	var missing []string
	s.cache.users.mu.Lock()
	for _, id := range ids {
		if v, ok := s.cache.users.getLocked(id); ok {
			out[id] = v
		} else {
			missing = append(missing, id)
		}
	}
	s.cache.users.mu.Unlock()
	if len(missing) == 0 {
		return out, nil
	}
	got, err := s.cache.batches.fill(ctx, strings.Join(missing, ","), func(ctx context.Context) (map[string]userDoc, error) {
		start := time.Now()
		got, err := load(ctx, false, missing)
		if err == nil && s.cache.users.ttl > 0 {
			s.cache.users.mu.Lock()
			for id, d := range got {
				s.cache.users.putLocked(id, start, d)
			}
			s.cache.users.mu.Unlock()
		}
		return got, err
	})
	if err != nil {
		return nil, err
	}
	for id, d := range got {
		out[id] = d
	}
	return out, nil
}

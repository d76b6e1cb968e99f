package store

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"webstack/app/conduit"
)

type userDoc struct {
	ID           string   `bson:"_id"`
	Username     string   `bson:"username"`
	Email        string   `bson:"email"`
	PasswordHash string   `bson:"passwordHash"`
	Bio          string   `bson:"bio"`
	Image        string   `bson:"image"`
	Cred         int      `bson:"cred"`
	Following    []string `bson:"following"`
	Favorites    []string `bson:"favorites"`
}

func (d userDoc) user() conduit.User {
	return conduit.User{ID: d.ID, Username: d.Username, Email: d.Email, PasswordHash: d.PasswordHash, Bio: d.Bio, Image: d.Image,
		Cred: d.Cred, Following: d.Following, Favorites: d.Favorites}
}

// keyDoc maps a unique key (a lower-cased username or email) to a user.
type keyDoc struct {
	ID  string `bson:"_id"`
	UID string `bson:"uid"`
}

// usernameKey is how usernames are unique: without regard to case.
func usernameKey(u string) string { return strings.ToLower(u) }

// CreateUser inserts a user and sets its ID; a taken email or username
// (either in any case) is a conflict. The user document goes first, then
// the keys that make it findable: a crash in between leaves a document
// nothing points to, or a taken key whose user cannot sign in (the only
// orphan; an operator removes it from usernames/emails).
func (s *Store) CreateUser(ctx context.Context, u *conduit.User) error {
	defer s.observe("users.insert", time.Now())
	d := userDoc{ID: bson.NewObjectID().Hex(), Username: u.Username, Email: strings.ToLower(u.Email), PasswordHash: u.PasswordHash,
		Bio: u.Bio, Image: u.Image, Following: []string{}, Favorites: []string{}}
	if _, err := s.coll("users").InsertOne(ctx, d); err != nil {
		return s.wrap("insert user", err)
	}
	undo := func() {
		_, _ = s.coll("users").DeleteOne(context.WithoutCancel(ctx), bson.D{{Key: "_id", Value: d.ID}})
	}
	if _, err := s.coll("usernames").InsertOne(ctx, keyDoc{ID: usernameKey(d.Username), UID: d.ID}); err != nil {
		undo()
		return s.wrap("reserve username", err)
	}
	if _, err := s.coll("emails").InsertOne(ctx, keyDoc{ID: d.Email, UID: d.ID}); err != nil {
		_, _ = s.coll("usernames").DeleteOne(context.WithoutCancel(ctx), bson.D{{Key: "_id", Value: usernameKey(d.Username)}})
		undo()
		return s.wrap("reserve email", err)
	}
	u.ID, u.Email, u.Following, u.Favorites = d.ID, d.Email, d.Following, d.Favorites
	return s.bump(ctx, false, true, 0)
}

// User loads a user by id, with who they follow and what they favorited,
// as of the last completed write on any instance.
func (s *Store) User(ctx context.Context, id string) (*conduit.User, error) {
	g, err := s.gens(ctx)
	if err != nil {
		return nil, err
	}
	u, err := s.userAt(ctx, g.Users, id)
	if err != nil {
		return nil, err
	}
	return &u, nil
}

// userAt returns the user id as of the users' generation gen: cached, else
// read by _id once however many requests ask at the same time.
func (s *Store) userAt(ctx context.Context, gen int64, id string) (conduit.User, error) {
	return s.cache.users.fill(ctx, id, gen, func(ctx context.Context) (conduit.User, error) {
		var d userDoc
		if err := s.findOne(ctx, s.coll("users"), "users.find", id, &d); err != nil {
			return conduit.User{}, err
		}
		return d.user(), nil
	})
}

// userByKey follows a key document to its user.
func (s *Store) userByKey(ctx context.Context, coll, key string) (*conduit.User, error) {
	g, err := s.gens(ctx)
	if err != nil {
		return nil, err
	}
	ck := coll + ":" + key
	uid, ok := s.cache.keys.get(ck, g.Users)
	if !ok {
		var k keyDoc
		if err := s.findOne(ctx, s.coll(coll), coll+".find", key, &k); err != nil {
			return nil, err
		}
		uid = k.UID
		s.cache.keys.put(ck, g.Users, uid)
	}
	return s.User(ctx, uid)
}

// UserByEmail finds a user by email (case-insensitive).
func (s *Store) UserByEmail(ctx context.Context, email string) (*conduit.User, error) {
	return s.userByKey(ctx, "emails", strings.ToLower(email))
}

// UserByUsername finds a user by username (case-insensitive).
func (s *Store) UserByUsername(ctx context.Context, username string) (*conduit.User, error) {
	return s.userByKey(ctx, "usernames", usernameKey(username))
}

// UpdateUser saves u's fields, moving its username and email keys when they
// change; a taken one is a conflict. The new key goes first, then the user,
// then the old key is released: a crash leaves at most a reserved old key.
func (s *Store) UpdateUser(ctx context.Context, old, u *conduit.User) error {
	defer s.observe("users.update", time.Now())
	u.Email = strings.ToLower(u.Email)
	type move struct{ coll, from, to string }
	var moves []move
	if usernameKey(u.Username) != usernameKey(old.Username) {
		moves = append(moves, move{"usernames", usernameKey(old.Username), usernameKey(u.Username)})
	}
	if u.Email != old.Email {
		moves = append(moves, move{"emails", old.Email, u.Email})
	}
	for i, m := range moves {
		if _, err := s.coll(m.coll).InsertOne(ctx, keyDoc{ID: m.to, UID: u.ID}); err != nil {
			for _, done := range moves[:i] {
				_, _ = s.coll(done.coll).DeleteOne(context.WithoutCancel(ctx), bson.D{{Key: "_id", Value: done.to}})
			}
			return s.wrap("reserve "+m.coll, err)
		}
	}
	set := bson.D{{Key: "username", Value: u.Username}, {Key: "email", Value: u.Email}, {Key: "passwordHash", Value: u.PasswordHash},
		{Key: "bio", Value: u.Bio}, {Key: "image", Value: u.Image}, {Key: "cred", Value: u.Cred}}
	res, err := s.coll("users").UpdateOne(ctx, bson.D{{Key: "_id", Value: u.ID}}, bson.D{{Key: "$set", Value: set}})
	if err != nil {
		return s.wrap("update user", err)
	}
	if res.MatchedCount == 0 {
		return conduit.Errorf(conduit.CodeNotFound, "user not found")
	}
	for _, m := range moves {
		if _, err := s.coll(m.coll).DeleteOne(ctx, bson.D{{Key: "_id", Value: m.from}}); err != nil {
			return s.wrap("release "+m.coll, err)
		}
	}
	return s.bump(ctx, false, true, 0)
}

// Follow records that follower follows followee; following twice is a no-op.
func (s *Store) Follow(ctx context.Context, follower, followee string) error {
	_, err := s.relate(ctx, "follows.add", follower, "$addToSet", "following", followee)
	return err
}

// Unfollow removes a follow; unfollowing twice is a no-op.
func (s *Store) Unfollow(ctx context.Context, follower, followee string) error {
	_, err := s.relate(ctx, "follows.remove", follower, "$pull", "following", followee)
	return err
}

// relate adds to ($addToSet) or removes from ($pull) one of a user's
// relation lists and reports whether the list changed.
func (s *Store) relate(ctx context.Context, op, uid, verb, field, value string) (bool, error) {
	defer s.observe(op, time.Now())
	res, err := s.coll("users").UpdateOne(ctx, bson.D{{Key: "_id", Value: uid}}, bson.D{{Key: verb, Value: bson.D{{Key: field, Value: value}}}})
	if err != nil {
		return false, s.wrap(op, err)
	}
	if res.MatchedCount == 0 {
		return false, conduit.Errorf(conduit.CodeNotFound, "user not found")
	}
	if res.ModifiedCount == 0 {
		return false, nil
	}
	return true, s.bump(ctx, false, true, 0)
}

// Profile is how viewer (nil: nobody signed in) sees u.
func (s *Store) Profile(viewer, u *conduit.User) conduit.Profile {
	p := u.Profile()
	p.Following = viewer.Follows(u.ID)
	return p
}

// profilesOf returns the profiles of ids as viewer sees them, keyed by id:
// from the cache, the rest in one query.
func (s *Store) profilesOf(ctx context.Context, viewer *conduit.User, ids []string) (map[string]conduit.Profile, error) {
	g, err := s.gensOf(ctx, viewer != nil)
	if err != nil {
		return nil, err
	}
	out := make(map[string]conduit.Profile, len(ids))
	var missing []string
	for _, id := range ids {
		if _, done := out[id]; done {
			continue
		}
		if u, ok := s.cache.users.get(id, g.Users); ok {
			out[id] = s.Profile(viewer, &u)
			continue
		}
		out[id] = conduit.Profile{}
		missing = append(missing, id)
	}
	if len(missing) == 0 {
		return out, nil
	}
	users, err := s.usersAt(ctx, g.Users, missing)
	if err != nil {
		return nil, err
	}
	for _, u := range users {
		out[u.ID] = s.Profile(viewer, &u)
	}
	return out, nil
}

// fewMisses is how many users are read one by one (at the same time) rather
// than with one $in query: FerretDB 1.x finds by _id with an index but
// answers $in by scanning the collection (450 ms mean at 1,000 users under
// load, against 2 ms for a read by _id); on DocumentDB both are
// index-served.
const fewMisses = 8

// usersAt reads the users ids (distinct) as of the users' generation gen,
// leaving out those that do not exist, and caches them. Requests missing
// the same users at the same time share the reads: a cold page asked for
// by 32 clients at once is one query, not 32 scans.
func (s *Store) usersAt(ctx context.Context, gen int64, ids []string) ([]conduit.User, error) {
	if len(ids) > fewMisses {
		slices.Sort(ids)
		batch, err := s.cache.batches.fill(ctx, strings.Join(ids, ","), gen, func(ctx context.Context) ([]conduit.User, error) {
			docs, err := findAll[userDoc](ctx, s, s.coll("users"), "users.find_many", in("_id", ids))
			users := make([]conduit.User, len(docs))
			for i, d := range docs {
				users[i] = d.user()
			}
			return users, err
		})
		for _, u := range batch {
			s.cache.users.put(u.ID, gen, u)
		}
		return batch, err
	}
	users := make([]conduit.User, len(ids))
	errs := make([]error, len(ids))
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Go(func() { users[i], errs[i] = s.userAt(ctx, gen, id) })
	}
	wg.Wait()
	out := users[:0]
	for i, err := range errs {
		switch {
		case errNotFound(err): // a deleted author: left out, as $in would
		case err != nil:
			return nil, err
		default:
			out = append(out, users[i])
		}
	}
	return out, nil
}

// optsUpsert makes an update insert the document when none matches.
var optsUpsert = options.UpdateOne().SetUpsert(true)

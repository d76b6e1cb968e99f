package store

import (
	"context"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"webstack/app/conduit"
)

type userDoc struct {
	ID           bson.ObjectID `bson:"_id"`
	Username     string        `bson:"username"`
	Email        string        `bson:"email"`
	PasswordHash string        `bson:"passwordHash"`
	Bio          string        `bson:"bio"`
	Image        string        `bson:"image"`
}

func (d userDoc) user() *conduit.User {
	return &conduit.User{ID: d.ID.Hex(), Username: d.Username, Email: d.Email, PasswordHash: d.PasswordHash, Bio: d.Bio, Image: d.Image}
}

func objectID(id string) (bson.ObjectID, error) {
	oid, err := bson.ObjectIDFromHex(id)
	if err != nil {
		return oid, conduit.Errorf(conduit.CodeNotFound, "not found")
	}
	return oid, nil
}

// CreateUser inserts a user and sets its ID; a taken email or username is a conflict.
func (s *Store) CreateUser(ctx context.Context, u *conduit.User) error {
	defer s.observe("users.insert", time.Now())
	d := userDoc{ID: bson.NewObjectID(), Username: u.Username, Email: strings.ToLower(u.Email), PasswordHash: u.PasswordHash, Bio: u.Bio, Image: u.Image}
	if _, err := s.coll("users").InsertOne(ctx, d); err != nil {
		return s.wrap("insert user", err)
	}
	u.ID, u.Email = d.ID.Hex(), d.Email
	return nil
}

func (s *Store) findUser(ctx context.Context, filter bson.D) (*conduit.User, error) {
	defer s.observe("users.find", time.Now())
	var d userDoc
	if err := s.coll("users").FindOne(ctx, filter, &d); err != nil {
		return nil, s.wrap("find user", err)
	}
	return d.user(), nil
}

// UserByEmail finds a user by email (case-insensitive).
func (s *Store) UserByEmail(ctx context.Context, email string) (*conduit.User, error) {
	return s.findUser(ctx, bson.D{{Key: "email", Value: strings.ToLower(email)}})
}

// UserByUsername finds a user by username.
func (s *Store) UserByUsername(ctx context.Context, username string) (*conduit.User, error) {
	return s.findUser(ctx, bson.D{{Key: "username", Value: username}})
}

// UserByID finds a user by id.
func (s *Store) UserByID(ctx context.Context, id string) (*conduit.User, error) {
	oid, err := objectID(id)
	if err != nil {
		return nil, err
	}
	return s.findUser(ctx, bson.D{{Key: "_id", Value: oid}})
}

// UpdateUser replaces a user's fields; a taken email or username is a conflict.
func (s *Store) UpdateUser(ctx context.Context, u *conduit.User) error {
	defer s.observe("users.update", time.Now())
	oid, err := objectID(u.ID)
	if err != nil {
		return err
	}
	u.Email = strings.ToLower(u.Email)
	res, err := s.coll("users").UpdateOne(ctx, bson.D{{Key: "_id", Value: oid}}, bson.D{{Key: "$set", Value: bson.D{
		{Key: "username", Value: u.Username}, {Key: "email", Value: u.Email}, {Key: "passwordHash", Value: u.PasswordHash},
		{Key: "bio", Value: u.Bio}, {Key: "image", Value: u.Image},
	}}})
	if err != nil {
		return s.wrap("update user", err)
	}
	if res.MatchedCount == 0 {
		return conduit.Errorf(conduit.CodeNotFound, "user not found")
	}
	return nil
}

func followID(follower, followee string) string { return follower + ":" + followee }

// followDoc records that follower follows followee; its _id is followID.
type followDoc struct {
	Follower string `bson:"follower"`
	Followee string `bson:"followee"`
}

// Follow records that follower follows followee; following twice is a no-op.
func (s *Store) Follow(ctx context.Context, follower, followee string) error {
	defer s.observe("follows.upsert", time.Now())
	_, err := s.coll("follows").UpdateOne(ctx,
		bson.D{{Key: "_id", Value: followID(follower, followee)}},
		bson.D{{Key: "$set", Value: followDoc{Follower: follower, Followee: followee}}},
		optsUpsert)
	return s.wrap("follow", err)
}

// Unfollow removes a follow; unfollowing twice is a no-op.
func (s *Store) Unfollow(ctx context.Context, follower, followee string) error {
	defer s.observe("follows.delete", time.Now())
	_, err := s.coll("follows").DeleteOne(ctx, bson.D{{Key: "_id", Value: followID(follower, followee)}})
	return s.wrap("unfollow", err)
}

// Following returns which of ids the follower follows.
func (s *Store) Following(ctx context.Context, follower string, ids []string) (map[string]bool, error) {
	out := map[string]bool{}
	if follower == "" || len(ids) == 0 {
		return out, nil
	}
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = followID(follower, id)
	}
	docs, err := findAll[followDoc](ctx, s, s.coll("follows"), "follows.find", in("_id", keys))
	if err != nil {
		return nil, err
	}
	for _, d := range docs {
		out[d.Followee] = true
	}
	return out, nil
}

// Profile is how viewer (possibly "") sees user.
func (s *Store) Profile(ctx context.Context, viewer string, u *conduit.User) (conduit.Profile, error) {
	p := u.Profile()
	f, err := s.Following(ctx, viewer, []string{u.ID})
	if err != nil {
		return p, err
	}
	p.Following = f[u.ID]
	return p, nil
}

// profiles loads the profiles of ids as viewer sees them, keyed by id.
func (s *Store) profiles(ctx context.Context, viewer string, ids []string) (map[string]conduit.Profile, error) {
	out := map[string]conduit.Profile{}
	if len(ids) == 0 {
		return out, nil
	}
	oids := make([]bson.ObjectID, 0, len(ids))
	for _, id := range ids {
		if oid, err := bson.ObjectIDFromHex(id); err == nil {
			oids = append(oids, oid)
		}
	}
	docs, err := findAll[userDoc](ctx, s, s.coll("users"), "users.find_many", in("_id", oids))
	if err != nil {
		return nil, err
	}
	following, err := s.Following(ctx, viewer, ids)
	if err != nil {
		return nil, err
	}
	for _, d := range docs {
		id := d.ID.Hex()
		out[id] = conduit.Profile{Username: d.Username, Bio: d.Bio, Image: d.Image, Following: following[id]}
	}
	return out, nil
}

// optsUpsert makes an update insert the document when none matches.
var optsUpsert = options.UpdateOne().SetUpsert(true)

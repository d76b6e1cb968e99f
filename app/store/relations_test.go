package store

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"

	"webstack/app/conduit"
	"webstack/app/store/storetest"
)

// A toggle whose write the server holds past its request (the client gave
// up, then toggled the other way and was told so) lands after the toggle
// that was acknowledged, and changes nothing: the pair's first write (an
// insert) meets the document the later toggle left, an update names a
// version the later toggle moved on. Each relation, each direction, and
// the first toggle of a pair as well as a later one.
func TestALateToggleDoesNotUndoALaterOne(t *testing.T) {
	type relation struct {
		coll string
		set  func(st *Store, ctx context.Context, alice, bob *conduit.User, art *conduit.Article, on bool) error
		is   func(t *testing.T, st *Store, alice, bob *conduit.User, art *conduit.Article) bool
	}
	favorite := relation{"favorites",
		func(st *Store, ctx context.Context, alice, _ *conduit.User, art *conduit.Article, on bool) error {
			if on {
				return st.Favorite(ctx, alice.ID, art)
			}
			return st.Unfavorite(ctx, alice.ID, art)
		},
		func(t *testing.T, st *Store, alice, _ *conduit.User, art *conduit.Article) bool {
			got, err := st.ArticleByID(context.Background(), alice, art.ID)
			require.NoError(t, err)
			n := 0
			if got.Favorited {
				n = 1
			}
			assert.Equal(t, n, got.FavoritesCount, "the count agrees with the favorite")
			return got.Favorited
		}}
	follow := relation{"follows",
		func(st *Store, ctx context.Context, alice, bob *conduit.User, _ *conduit.Article, on bool) error {
			if on {
				return st.Follow(ctx, alice.ID, bob.ID)
			}
			return st.Unfollow(ctx, alice.ID, bob.ID)
		},
		func(t *testing.T, st *Store, alice, bob *conduit.User, _ *conduit.Article) bool {
			p, err := st.Profile(context.Background(), alice, bob)
			require.NoError(t, err)
			feed, n, err := st.Feed(context.Background(), alice, 10, 0)
			require.NoError(t, err)
			assert.Equal(t, p.Following, n == 1 && len(feed) == 1, "the feed agrees with the profile")
			return p.Following
		}}
	for _, tc := range []struct {
		name  string
		rel   relation
		first bool // the held write is the pair's first (an insert), not an update
		late  bool // the held toggle: on or off
	}{
		{"an unfavorite after a favorite, then a favorite", favorite, false, false},
		{"a first favorite, then an unfavorite", favorite, true, true},
		{"a first unfavorite, then a favorite", favorite, true, false},
		{"an unfollow after a follow, then a follow", follow, false, false},
		{"a first follow, then an unfollow", follow, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			st, proxy, alice, bob, art := proxiedFixture(t, lateOpts)
			if !tc.first {
				require.NoError(t, tc.rel.set(st, ctx, alice, bob, art, !tc.late))
			}
			proxy.Late = lateBy
			var once sync.Once
			proxy.Observe = func(cmd bson.Raw) {
				for _, name := range []string{"insert", "update", "delete"} {
					if c, _ := cmd.Lookup(name).StringValueOK(); c == tc.rel.coll {
						once.Do(func() { proxy.InjectNext([]storetest.Fault{storetest.Late}, name) })
					}
				}
			}
			rctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
			err := tc.rel.set(st, rctx, alice, bob, art, tc.late)
			cancel()
			require.Error(t, err, "the request gave up on the held write")
			proxy.Observe = nil

			require.NoError(t, tc.rel.set(st, ctx, alice, bob, art, !tc.late), "the toggle the other way, acknowledged")
			require.Zero(t, proxy.Landed(), "(the held write must land after it: a slower machine needs a longer Late)")
			assert.Equal(t, !tc.late, tc.rel.is(t, st, alice, bob, art))
			landed(t, proxy, 1)
			settled(t, st)
			assert.Equal(t, !tc.late, tc.rel.is(t, st, alice, bob, art), "the late copy changed nothing")

			// And sent again, toggles are set, not flipped.
			require.NoError(t, tc.rel.set(st, ctx, alice, bob, art, !tc.late))
			assert.Equal(t, !tc.late, tc.rel.is(t, st, alice, bob, art))
		})
	}
}

// Tabs toggling one pair at once: each toggle is acknowledged or told to
// try again (never another error), the count agrees with the relation
// when they are over, and the next toggle decides it.
func TestConcurrentTogglesOfOnePairAgree(t *testing.T) {
	ctx := context.Background()
	st, alice, _, art := fixture(t, Options{})
	var wg sync.WaitGroup
	for i := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 6 {
				a := *art
				err := st.favorite(ctx, alice.ID, &a, (i+j)%2 == 0)
				if err != nil {
					assert.Equal(t, conduit.CodeUnavailable, conduit.CodeOf(err), "%v", err)
				}
			}
		}()
	}
	wg.Wait()
	viewer := &conduit.User{ID: alice.ID, LastWrite: time.Now()}
	check := func(want *bool) {
		_, err := st.Repair(ctx)
		require.NoError(t, err)
		got, err := st.ArticleByID(ctx, viewer, art.ID)
		require.NoError(t, err)
		n := 0
		if got.Favorited {
			n = 1
		}
		assert.Equal(t, n, got.FavoritesCount, "the count agrees with the favorite")
		if want != nil {
			assert.Equal(t, *want, got.Favorited)
		}
	}
	check(nil)
	for _, on := range []bool{true, false, true} {
		require.NoError(t, st.favorite(ctx, alice.ID, art, on))
		check(&on)
	}
}

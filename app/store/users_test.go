package store

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"webstack/app/conduit"
	"webstack/app/store/storetest"
)

// A settings change held by the server past its request (the client gave
// up, sent it again, and then made another change) lands naming the
// version it was made to, which has moved on: it changes nothing, and the
// later change stays. Its reply lost instead, the change sent again finds
// itself applied; made to a version another change moved on, it is
// CodeChanged and saves nothing.
func TestALateCopyOfASettingsChangeDoesNotUndoALaterOne(t *testing.T) {
	ctx := context.Background()
	st, proxy, alice, _, _ := proxiedFixture(t, Options{})
	require.Equal(t, int64(1), alice.Version)
	change := func(bio string, fault storetest.Fault, timeout time.Duration) error {
		old, err := st.User(ctx, alice.ID)
		require.NoError(t, err)
		u := *old
		u.Bio = bio
		if fault != storetest.None {
			proxy.InjectNext([]storetest.Fault{fault}, "update")
		}
		rctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		return st.UpdateUser(rctx, old, &u)
	}
	bio := func() (string, int64) {
		u, err := st.User(ctx, alice.ID)
		require.NoError(t, err)
		return u.Bio, u.Version
	}
	proxy.Late = lateBy
	require.Error(t, change("A", storetest.Late, 300*time.Millisecond), "held: the request gives up")
	require.NoError(t, change("A", storetest.None, time.Second), "sent again")
	require.NoError(t, change("B", storetest.None, time.Second), "the next change")
	require.Zero(t, proxy.Landed(), "(the held change must land after the next: a slower machine needs a longer Late)")
	landed(t, proxy, 1)
	got, ver := bio()
	assert.Equal(t, "B", got, "the late copy of A changed nothing")
	assert.Equal(t, int64(3), ver)

	require.NoError(t, change("C", storetest.LoseReply, time.Second), "its reply lost, the change sent again finds itself")
	got, ver = bio()
	assert.Equal(t, "C", got)
	assert.Equal(t, int64(4), ver)

	old, err := st.User(ctx, alice.ID)
	require.NoError(t, err)
	stale := *old
	stale.Version = 3
	u := stale
	u.Bio = "D"
	assert.Equal(t, conduit.CodeChanged, conduit.CodeOf(st.UpdateUser(ctx, &stale, &u)), "made to a version that moved on")
	got, _ = bio()
	assert.Equal(t, "C", got, "nothing saved")
}

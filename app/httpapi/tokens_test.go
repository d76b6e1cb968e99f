package httpapi

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Rotating the JWT secret signs nobody out: a token of the previous key
// is accepted until the grace ends; tokens name their key; an instance
// that has not read the new key yet reads it (once) when a token of the
// new key arrives, so no instance refuses another's tokens.
func TestRotatingTheSigningKeySignsNobodyOut(t *testing.T) {
	oldKey, newKey := Secret(strings.Repeat("o", 32)), Secret(strings.Repeat("n", 32))
	clock := time.Unix(1_800_000_000, 0)
	now := func() time.Time { return clock }
	fresh, err := NewTokens(oldKey, time.Hour) // an instance that reads the new key first
	require.NoError(t, err)
	stale, err := NewTokens(oldKey, time.Hour) // one that has not yet
	require.NoError(t, err)
	fresh.now, stale.now = now, now

	before, err := fresh.Issue("u1", 0, "s1")
	require.NoError(t, err)
	grace := clock.Add(10 * time.Minute)
	require.NoError(t, fresh.Rotate(newKey, oldKey, grace))
	after, err := fresh.Issue("u2", 0, "s2")
	require.NoError(t, err)
	assert.NotEqual(t, KeyID(oldKey), fresh.CurrentKeyID())

	// The fresh instance takes both.
	for _, tok := range []string{before, after} {
		_, err := fresh.Verify(tok)
		assert.NoError(t, err)
	}
	// The stale one reads the keys again when it meets the new one.
	var refreshes atomic.Int32
	stale.Refresh = func() { refreshes.Add(1); _ = stale.Rotate(newKey, oldKey, grace) }
	v, err := stale.Verify(after)
	id := v.UserID
	require.NoError(t, err, "a token of the new key, on an instance that had not read it")
	assert.Equal(t, "u2", id)
	assert.EqualValues(t, 1, refreshes.Load())
	_, err = stale.Verify(before)
	assert.NoError(t, err, "and the old one still, within the grace")

	// A forged key makes it read the keys at most once per RefreshEvery.
	forger, _ := NewTokens(Secret(strings.Repeat("f", 32)), time.Hour)
	forger.now = now
	forged, _ := forger.Issue("u1", 0, "s1")
	for range 5 {
		_, err := stale.Verify(forged)
		assert.Error(t, err)
	}
	assert.EqualValues(t, 1, refreshes.Load(), "no refresh within RefreshEvery of the last")

	// After the grace, the old key is retired everywhere.
	clock = grace.Add(time.Second)
	_, err = fresh.Verify(before)
	assert.Error(t, err, "the previous key's tokens expire with the grace")
	_, err = fresh.Verify(after)
	assert.NoError(t, err)
}

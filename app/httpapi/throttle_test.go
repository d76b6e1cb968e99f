package httpapi

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// An attempt that checked nothing (the client cancelled it, the database
// did not answer) gives back its own counts and nothing else: cancelling
// one's own requests does not reset a pair's failures (issue #30, low).
func TestACancelledAttemptDoesNotResetTheCount(t *testing.T) {
	th := newThrottle(5, 50, 500, 30, 300, 15*time.Minute)
	for range 4 {
		wait, done := th.attempt("jake@example.com", "203.0.113.9")
		require.Zero(t, wait)
		done(failed)
	}
	for range 10 {
		wait, done := th.attempt("jake@example.com", "203.0.113.9")
		require.Zero(t, wait)
		done(void)
	}
	wait, done := th.attempt("jake@example.com", "203.0.113.9")
	require.Zero(t, wait, "the fifth guess")
	done(failed)
	wait, _ = th.attempt("jake@example.com", "203.0.113.9")
	assert.Positive(t, wait, "the sixth is refused: the cancelled ones reset nothing")
}

// A full table never refuses everyone: its keys are digests of a fixed
// size, and past its size the lowest counts go first, so a flood of new
// keys does not wipe a guesser's counts (issue #30, low).
func TestAFullThrottleTableEvictsTheOldestNotEveryone(t *testing.T) {
	th := newThrottle(5, 50, 500, 30, 300, 15*time.Minute)
	th.max = 1000
	now := time.Now()
	th.now = func() time.Time { return now }
	for i := range 2000 {
		now = now.Add(time.Millisecond)
		wait, done := th.attempt(fmt.Sprintf("%d-%s@example.com", i, string(make([]byte, 4000))), fmt.Sprintf("10.0.%d.%d", i/250, i%250))
		require.Zero(t, wait, "attempt %d refused", i)
		done(failed)
	}
	th.mu.Lock()
	n := len(th.entries)
	var longest int
	for k := range th.entries {
		longest = max(longest, len(k))
	}
	th.mu.Unlock()
	assert.LessOrEqual(t, n, 1000, "the table keeps to its size")
	assert.LessOrEqual(t, longest, 64, "keys are digests, not what the client sent")
	wait, _ := th.attempt("a-new-person@example.com", "198.51.100.1")
	assert.Zero(t, wait, "a new sign-in is never refused for a full table")
}

// A flood of new keys evicts the lowest counts: a guesser's pair count
// stays, and so does the refusal it earned.
func TestAFloodOfKeysDoesNotWipeAGuessersCounts(t *testing.T) {
	th := newThrottle(5, 50, 500, 30, 300, 15*time.Minute)
	th.max = 500
	for range 5 {
		_, done := th.attempt("victim@example.com", "203.0.113.9")
		done(failed)
	}
	for i := range 3000 {
		_, done := th.attempt(fmt.Sprintf("flood%d@example.com", i), fmt.Sprintf("198.51.%d.%d", i/250, i%250))
		if done != nil {
			done(void)
		}
	}
	wait, _ := th.attempt("victim@example.com", "203.0.113.9")
	assert.Positive(t, wait, "the guesser is still refused")
}

// Other people's wrong passwords do not spend the owner's budget of
// checks (its successes): six addresses guessing cannot lock the owner
// out (helper-10, F1).
func TestOthersGuessesDoNotSpendTheOwnersBudget(t *testing.T) {
	th := newThrottle(5, 50, 500, 30, 300, 15*time.Minute)
	for a := range 10 {
		for range 5 {
			wait, done := th.attempt("owner@example.com", fmt.Sprintf("203.0.113.%d", a))
			require.Zero(t, wait)
			done(failed)
		}
	}
	wait, done := th.attempt("owner@example.com", "198.51.100.7")
	require.Zero(t, wait, "fifty wrong guesses from ten addresses: the owner still signs in")
	done(passed)
}

package httpapi

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"webstack/app/observe"
)

// Password throttling: every check of a password (sign-in, and the
// current password an account change asks for) is an attempt, counted
// before the expensive check (bcrypt) in three fixed windows:
//
//   - per account and client address (LoginFailuresPerAccount, 5 in 15
//     minutes): guessing one account from one address stops there;
//   - per client address (LoginFailuresPerClient, 50): one address guessing
//     many accounts;
//   - per account from any address (LoginFailuresPerAccountAnywhere, 500): a
//     distributed guess at one account.
//
// An attempt is counted when it starts (in-flight attempts count), so a
// burst of concurrent guesses gets exactly the limit checked and the rest
// refused (ASVS 2.2.1). A success takes its own attempt back and clears
// the pair's count; an attempt that checked nothing (the database did not
// answer, the client went away) takes back its own counts and nothing
// else. Past a limit the attempt is refused with 429 and
// Retry-After before any check — the right password included on that pair.
// Someone else's guesses from elsewhere do not lock the owner out: their
// own address is a pair of its own, until the account-wide limit, which
// only a guess from a hundred addresses reaches (and AWS WAF's login rate
// rule, staging/prod, bounds each address before that).
//
// Every check also has a cost, successful or not (issue #30): a budget of
// checks per account (PasswordChecksPerAccount, 30 in the window: its
// successes) and per client address (PasswordChecksPerClient, 300: every
// check) counts successes too and gives nothing back, so a loop of right passwords (sign-in, or an account
// change alternating the password with the current one) spends bcrypt's
// 50–80 ms a time only so often, and is 429 past it like a guess.
//
// Counts live in each api process: with N api instances behind a
// round-robin load balancer an attacker gets at most N × the limit per
// window.
type throttle struct {
	perPair, perClient, perAccount int
	checksPerAccount, checksClient int
	window                         time.Duration
	now                            func() time.Time
	max                            int // entries kept at most (maxThrottleEntries)

	mu      sync.Mutex
	entries map[string]*failures
}

type failures struct {
	since time.Time
	n     int
}

// maxThrottleEntries bounds the memory counting can take: keys are
// digests (what a client sends — an 8 KiB email — is not what is kept),
// and when it is reached expired entries are swept and then the lowest
// counts go, a tenth at a time: a full table never refuses everyone, and
// a flood of new keys does not wipe a guesser's counts.
const maxThrottleEntries = 100_000

func newThrottle(perPair, perClient, perAccount, checksPerAccount, checksPerClient int, window time.Duration) *throttle {
	return &throttle{perPair: perPair, perClient: perClient, perAccount: perAccount,
		checksPerAccount: checksPerAccount, checksClient: checksPerClient,
		window: window, now: time.Now, max: maxThrottleEntries, entries: map[string]*failures{}}
}

func accountKey(email string) string {
	return digest("account", strings.ToLower(strings.TrimSpace(email)))
}
func clientKey(addr string) string { return digest("client", addr) }
func pairKey(email, addr string) string {
	return digest("pair", addr+"\x00"+strings.ToLower(strings.TrimSpace(email)))
}

// digest is a throttle key of a fixed size.
func digest(kind, v string) string {
	h := sha256.Sum256([]byte(v))
	return kind + ":" + hex.EncodeToString(h[:16])
}

// outcome is what came of a counted attempt.
type outcome int

const (
	// failed: a wrong password; everything stays counted.
	failed outcome = iota
	// passed: the right password; the failures are given back and the
	// pair's count cleared, the budget of checks stays spent.
	passed
	// spent: a check ran (its time was spent) but it was no guess (a
	// sign-up whose username, not email, was taken); the failures are given
	// back, the pair's count and the budget stay.
	spent
	// void: no check ran (the database did not answer, the client went
	// away): this attempt's counts are given back, and only them — a
	// client that cancels its own requests resets nothing.
	void
)

// attempt counts one password check of account from client, or refuses it:
// wait > 0 is how long until it may be tried. When it is counted, done
// must be called with the check's outcome.
func (t *throttle) attempt(account, client string) (wait time.Duration, done func(outcome)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	keys := [5]string{pairKey(account, client), clientKey(client), accountKey(account), "checks-" + accountKey(account), "checks-" + clientKey(client)}
	limits := [5]int{t.perPair, t.perClient, t.perAccount, t.checksPerAccount, t.checksClient}
	for i, key := range keys {
		f := t.entries[key]
		if f != nil && now.Sub(f.since) < t.window && f.n >= limits[i] {
			wait = max(wait, f.since.Add(t.window).Sub(now))
		}
	}
	if wait > 0 {
		return wait, nil
	}
	if len(t.entries) > t.max-len(keys) {
		t.sweep(now)
	}
	if len(t.entries) > t.max-len(keys) {
		t.evictLowest(len(t.entries) - t.max + len(keys) + t.max/10)
	}
	counted := make([]*failures, 0, len(keys))
	for _, key := range keys {
		f := t.entries[key]
		if f == nil || now.Sub(f.since) >= t.window {
			f = &failures{since: now}
			t.entries[key] = f
		}
		f.n++
		counted = append(counted, f)
	}
	return 0, func(o outcome) {
		t.mu.Lock()
		defer t.mu.Unlock()
		switch o {
		case failed:
			// The account's budget counts its successes (and spent checks):
			// its failures are bounded by the failure limits already, and
			// counting others' wrong guesses in it would let six addresses
			// lock the owner out.
			counted[3].n = max(0, counted[3].n-1)
		case passed, spent:
			for _, f := range counted[1:3] {
				f.n = max(0, f.n-1) // not a failure (but it spent its checks: counted[3:])
			}
			if o == passed {
				delete(t.entries, keys[0])
			} else {
				counted[0].n = max(0, counted[0].n-1)
			}
		case void:
			for _, f := range counted {
				f.n = max(0, f.n-1)
			}
		}
	}
}

// evictLowest drops n entries: the lowest counts first (a guesser's
// counts, and the account-wide ones, are the highest: they stay), the
// oldest windows among equal counts.
func (t *throttle) evictLowest(n int) {
	type aged struct {
		key   string
		n     int
		since time.Time
	}
	all := make([]aged, 0, len(t.entries))
	for k, f := range t.entries {
		all = append(all, aged{k, f.n, f.since})
	}
	slices.SortFunc(all, func(a, b aged) int {
		if a.n != b.n {
			return a.n - b.n
		}
		return a.since.Compare(b.since)
	})
	for _, e := range all[:min(n, len(all))] {
		delete(t.entries, e.key)
	}
}

// sweep drops expired entries.
func (t *throttle) sweep(now time.Time) {
	for k, f := range t.entries {
		if now.Sub(f.since) >= t.window {
			delete(t.entries, k)
		}
	}
}

// throttledError is a refused sign-in: 429 with Retry-After.
type throttledError struct{ after time.Duration }

func (e *throttledError) Error() string {
	return fmt.Sprintf("too many failed sign-ins: try again in %d seconds", e.seconds())
}

func (e *throttledError) seconds() int { return max(1, int(math.Ceil(e.after.Seconds()))) }

// signInFailed logs a failed sign-in (or a refused credential check) at
// WARN with the client's address and the account as a short hash (the
// logs need to correlate attempts, not to hold email addresses).
func (a *API) signInFailed(r *http.Request, what, email string) {
	sum := sha256.Sum256([]byte(strings.ToLower(strings.TrimSpace(email))))
	a.log.LogAttrs(r.Context(), slog.LevelWarn, "sign-in failed",
		slog.String("request_id", observe.RequestID(r.Context())), slog.String("client", observe.Client(r.Context())),
		slog.String("check", what), slog.String("account", hex.EncodeToString(sum[:6])))
}

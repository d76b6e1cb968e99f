package httpapi

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strings"
	"sync"
	"time"

	"webstack/app/observe"
)

// Sign-in throttling. Failed sign-ins are counted per account (the email
// asked for) and per client address, in fixed windows: past the limit,
// every sign-in for that account or from that address is refused with 429
// and Retry-After until the window ends — the right password included,
// or guessing would simply continue. A success clears the account's count.
//
// Counts live in each api process: with N api instances behind a
// round-robin load balancer an attacker gets at most N × the limit per
// window. The edge bounds it independently: AWS WAF's login rate rule
// (staging/prod) limits POST /api/users/login per client address.
type throttle struct {
	perAccount, perClient int
	window                time.Duration
	now                   func() time.Time

	mu      sync.Mutex
	entries map[string]*failures
}

type failures struct {
	since time.Time
	n     int
}

// maxThrottleEntries bounds the memory counting can take; expired entries
// are swept when it is reached.
const maxThrottleEntries = 100_000

func newThrottle(perAccount, perClient int, window time.Duration) *throttle {
	return &throttle{perAccount: perAccount, perClient: perClient, window: window, now: time.Now, entries: map[string]*failures{}}
}

func accountKey(email string) string { return "account:" + strings.ToLower(strings.TrimSpace(email)) }
func clientKey(addr string) string   { return "client:" + addr }

// blocked returns how long sign-ins for account from client must wait.
func (t *throttle) blocked(account, client string) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	var wait time.Duration
	for key, limit := range map[string]int{accountKey(account): t.perAccount, clientKey(client): t.perClient} {
		f := t.entries[key]
		if f == nil || now.Sub(f.since) >= t.window {
			continue
		}
		if f.n >= limit {
			wait = max(wait, f.since.Add(t.window).Sub(now))
		}
	}
	return wait
}

// fail counts one failed sign-in.
func (t *throttle) fail(account, client string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	if len(t.entries) >= maxThrottleEntries {
		for k, f := range t.entries {
			if now.Sub(f.since) >= t.window {
				delete(t.entries, k)
			}
		}
	}
	for _, key := range []string{accountKey(account), clientKey(client)} {
		f := t.entries[key]
		if f == nil || now.Sub(f.since) >= t.window {
			if len(t.entries) >= maxThrottleEntries {
				continue // full of live entries: count no new ones
			}
			f = &failures{since: now}
			t.entries[key] = f
		}
		f.n++
	}
}

// succeed clears the account's failures.
func (t *throttle) succeed(account string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.entries, accountKey(account))
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

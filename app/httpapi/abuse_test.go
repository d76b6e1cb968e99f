package httpapi_test

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"webstack/app/httpapi"
)

// loopback is trusted as the proxy in these tests: each client says its
// address in X-Forwarded-For, as the web tier does.
var loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}

func loginAs(c *client, email, password string) (int, map[string]any) {
	return c.do("POST", "/api/users/login", `{"user":{"email":"`+email+`","password":"`+password+`"}}`)
}

// ASVS 2.2.1: a burst of concurrent guesses gets exactly the limit checked.
// Each attempt is counted before bcrypt runs, so 30 guesses at once from one
// address are 5 checks and 25 refusals, and the right password from that
// address waits too.
func TestPasswordGuessesAreCountedBeforeTheyAreChecked(t *testing.T) {
	srv, _ := newServerWith(t, false, httpapi.Options{BcryptCost: 4, TrustedProxies: loopback}, nil)
	register(t, srv.URL, "jake")
	attacker := &client{t: t, base: srv.URL, from: "203.0.113.9"}
	var mu sync.Mutex
	answers := map[int]int{}
	var wg sync.WaitGroup
	for range 30 {
		wg.Go(func() {
			st, _ := loginAs(attacker, "jake@example.com", "wrong-guess-123")
			mu.Lock()
			answers[st]++
			mu.Unlock()
		})
	}
	wg.Wait()
	assert.Equal(t, map[int]int{http.StatusUnauthorized: 5, http.StatusTooManyRequests: 25}, answers)
	st, _ := loginAs(attacker, "jake@example.com", "correct-horse-1")
	assert.Equal(t, http.StatusTooManyRequests, st, "the right password from the guessing address waits too")
}

// Someone else's guesses do not lock the owner out (the item 7):
// guesses from one address stop at its limit; the owner, elsewhere, signs
// in; a success clears the owner's own count.
func TestSomeoneElsesGuessesDoNotLockTheOwnerOut(t *testing.T) {
	srv, _ := newServerWith(t, false, httpapi.Options{BcryptCost: 4, TrustedProxies: loopback}, nil)
	register(t, srv.URL, "jake")
	attacker := &client{t: t, base: srv.URL, from: "203.0.113.9"}
	for range 10 {
		loginAs(attacker, "jake@example.com", "wrong-guess-123")
	}
	owner := &client{t: t, base: srv.URL, from: "198.51.100.7"}
	st, body := loginAs(owner, "jake@example.com", "correct-horse-1")
	assert.Equal(t, http.StatusOK, st, "%v", body)
	for range 4 {
		st, _ = loginAs(owner, "jake@example.com", "a-typo-in-it-1")
		require.Equal(t, http.StatusUnauthorized, st)
	}
	st, _ = loginAs(owner, "jake@example.com", "correct-horse-1")
	assert.Equal(t, http.StatusOK, st, "four typos and the right one")
}

// One address guessing many accounts stops at its own limit.
func TestOneAddressGuessingManyAccountsIsStopped(t *testing.T) {
	srv, _ := newServerWith(t, false, httpapi.Options{BcryptCost: 4, LoginFailuresPerClient: 6, TrustedProxies: loopback}, nil)
	register(t, srv.URL, "anna")
	sprayer := &client{t: t, base: srv.URL, from: "203.0.113.9"}
	for i := range 6 {
		st, _ := loginAs(sprayer, "person"+string(rune('a'+i))+"@example.com", "Summer2026!!")
		require.Equal(t, http.StatusUnauthorized, st)
	}
	st, _ := loginAs(sprayer, "anna@example.com", "correct-horse-1")
	assert.Equal(t, http.StatusTooManyRequests, st)
	st, _ = loginAs(&client{t: t, base: srv.URL, from: "198.51.100.7"}, "anna@example.com", "correct-horse-1")
	assert.Equal(t, http.StatusOK, st, "other addresses are not stopped")
}

// The current password an account change asks for is throttled like a
// sign-in (item 2): a stolen token is not a free guessing oracle.
func TestTheCurrentPasswordIsThrottledLikeASignIn(t *testing.T) {
	logs := &syncBuffer{}
	srv, _ := newServerWith(t, false, httpapi.Options{BcryptCost: 4, TrustedProxies: loopback}, slog.New(slog.NewJSONHandler(logs, nil)))
	jake := register(t, srv.URL, "jake")
	thief := &client{t: t, base: srv.URL, token: jake.token, from: "203.0.113.9"}
	answers := map[int]int{}
	for range 12 {
		st, _ := thief.do("PUT", "/api/user", `{"user":{"email":"thief@example.com","currentPassword":"guess-guess-1"}}`)
		answers[st]++
	}
	assert.Equal(t, map[int]int{http.StatusForbidden: 5, http.StatusTooManyRequests: 7}, answers)
	st, _ := thief.do("PUT", "/api/user", `{"user":{"email":"thief@example.com","currentPassword":"correct-horse-1"}}`)
	assert.Equal(t, http.StatusTooManyRequests, st, "the right guess comes too late")
	out := logs.String()
	assert.Contains(t, out, `"check":"update-user"`)
	assert.Contains(t, out, `"client":"203.0.113.9"`)
	assert.NotContains(t, out, "jake@example.com", "the account is logged as a hash")
}

// ASVS 3.3.1: sign-out ends the session on the server. The token is
// refused after it, not only forgotten by the browser.
func TestSignOutEndsTheSessionOnTheServer(t *testing.T) {
	srv := newServer(t)
	jake := register(t, srv.URL, "jake")
	st, _ := jake.do("GET", "/api/user", "")
	require.Equal(t, http.StatusOK, st)
	other := &client{t: t, base: srv.URL}
	_, body := loginAs(other, "jake@example.com", "correct-horse-1")
	other.token = body["user"].(map[string]any)["token"].(string)

	st, _ = jake.do("POST", "/api/users/logout", "")
	assert.Equal(t, http.StatusNoContent, st)
	st, body = jake.do("GET", "/api/user", "")
	assert.Equal(t, http.StatusUnauthorized, st, "the signed-out token is refused")
	assert.Contains(t, errorBody(t, body), "session has ended")
	st, _ = jake.do("POST", "/api/users/logout", "")
	assert.Equal(t, http.StatusUnauthorized, st, "and cannot sign out twice")
	st, _ = other.do("GET", "/api/user", "")
	assert.Equal(t, http.StatusOK, st, "another sign-in's session goes on")
}

// ASVS 3.3.2: a session unused for the idle timeout ends; one in use goes
// on; none outlives its token's lifetime.
func TestIdleSessionsEnd(t *testing.T) {
	srv, _ := newServerWith(t, false, httpapi.Options{BcryptCost: 4, SessionIdle: 1200 * time.Millisecond}, nil)
	busy := register(t, srv.URL, "busy")
	idle := register(t, srv.URL, "idle")
	for range 8 {
		time.Sleep(250 * time.Millisecond)
		st, _ := busy.do("GET", "/api/user", "")
		require.Equal(t, http.StatusOK, st, "a session in use stays")
	}
	st, body := idle.do("GET", "/api/user", "")
	assert.Equal(t, http.StatusUnauthorized, st, "2 s unused ends it")
	assert.Contains(t, errorBody(t, body), "session has ended")
}

// Quotas hold per account: articles, comments, and comments on one
// article (an author can always answer on their own); sign-ups per address.
// Past one: 429 with Retry-After, and nothing is written.
func TestQuotasBoundWhatOneAccountWrites(t *testing.T) {
	awayFromAWindowsEdge(t)
	quotas := httpapi.Quotas{Registrations: httpapi.Quota{Limit: 3, Window: time.Hour}, Articles: httpapi.Quota{Limit: 2, Window: time.Hour},
		Comments: httpapi.Quota{Limit: 100, Window: time.Hour}, CommentsPerArticle: httpapi.Quota{Limit: 2, Window: 24 * time.Hour}}
	srv, _ := newServerWith(t, false, httpapi.Options{BcryptCost: 4, Quotas: quotas, TrustedProxies: loopback}, nil)
	signUp := func(name, from string) (int, http.Header) {
		req, _ := http.NewRequest("POST", srv.URL+"/api/users", strings.NewReader(`{"user":{"username":"`+name+`","email":"`+name+`@example.com","password":"correct-horse-1"}}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Forwarded-For", from)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode, resp.Header
	}
	for _, name := range []string{"a1", "a2", "a3"} {
		st, _ := signUp(name, "203.0.113.9")
		require.Equal(t, http.StatusCreated, st)
	}
	st, h := signUp("a4", "203.0.113.9")
	assert.Equal(t, http.StatusTooManyRequests, st, "a fourth sign-up from one address in the hour")
	assert.NotEmpty(t, h.Get("Retry-After"))
	st, _ = signUp("b1", "198.51.100.7")
	assert.Equal(t, http.StatusCreated, st, "another address signs up")

	author := register(t, srv.URL, "author")
	for i := range 2 {
		st, body := author.do("POST", "/api/articles", `{"article":{"title":"Post `+string(rune('A'+i))+`","description":"d","body":"b"}}`)
		require.Equal(t, http.StatusCreated, st, "%v", body)
	}
	st, body := author.do("POST", "/api/articles", `{"article":{"title":"Post C","description":"d","body":"b"}}`)
	assert.Equal(t, http.StatusTooManyRequests, st)
	assert.Contains(t, errorBody(t, body), "too many articles")
	st, _ = author.do("GET", "/api/articles/post-c", "")
	assert.Equal(t, http.StatusNotFound, st, "nothing was written")

	reader := register(t, srv.URL, "reader")
	for range 2 {
		st, _ := reader.do("POST", "/api/articles/post-a/comments", `{"comment":{"body":"hi"}}`)
		require.Equal(t, http.StatusOK, st)
	}
	st, _ = reader.do("POST", "/api/articles/post-a/comments", `{"comment":{"body":"again"}}`)
	assert.Equal(t, http.StatusTooManyRequests, st, "one account cannot fill an article's thread")
	st, _ = reader.do("POST", "/api/articles/post-b/comments", `{"comment":{"body":"elsewhere"}}`)
	assert.Equal(t, http.StatusOK, st, "the bound is per article")
	for range 4 {
		st, _ := author.do("POST", "/api/articles/post-a/comments", `{"comment":{"body":"the author answers"}}`)
		assert.Equal(t, http.StatusOK, st, "an author can always comment on their own article")
	}
}

// Passwords are pre-hashed, so length counts in characters and every one of
// them counts: 25 Chinese characters (75 bytes) are a password, and two
// long ones that differ only past bcrypt's 72 bytes are two passwords.
func TestEveryCharacterOfALongPasswordCounts(t *testing.T) {
	srv := newServer(t)
	anon := &client{t: t, base: srv.URL}
	cjk := "这是一个很长的中文密码短语二十五个字符的密码短语呢"
	st, body := anon.do("POST", "/api/users", `{"user":{"username":"li","email":"li@example.com","password":"`+cjk+`"}}`)
	require.Equal(t, http.StatusCreated, st, "%v", body)
	st, _ = loginAs(anon, "li@example.com", cjk)
	assert.Equal(t, http.StatusOK, st)

	long := strings.Repeat("horse battery staple ", 4) // 84 bytes
	st, body = anon.do("POST", "/api/users", `{"user":{"username":"lo","email":"lo@example.com","password":"`+long+`end"}}`)
	require.Equal(t, http.StatusCreated, st, "%v", body)
	st, _ = loginAs(anon, "lo@example.com", long+"END")
	assert.Equal(t, http.StatusUnauthorized, st, "a difference past byte 72 is a different password")
	st, _ = loginAs(anon, "lo@example.com", long+"end")
	assert.Equal(t, http.StatusOK, st)
}

// awayFromAWindowsEdge waits, if the hour (and so the day: every window
// here is whole hours, counted from the Unix epoch in UTC) ends within the
// next 30 s, until it has begun: a test that counts to a quota's limit
// must not see its counts start again halfway.
func awayFromAWindowsEdge(t *testing.T) {
	t.Helper()
	now := time.Now()
	if left := now.Truncate(time.Hour).Add(time.Hour).Sub(now); left < 30*time.Second {
		t.Logf("waiting %s for the next hour: the quota windows start again then", left.Round(time.Second))
		time.Sleep(left + time.Second)
	}
}

// Every password check has a cost, successful or not (issue #30 item 2): a
// loop of right passwords — signing in, or an account change alternating
// the password with the current one — spends its budget of checks and is
// 429 past it; the budget counts per account (from any address) and per
// address (any accounts).
func TestRightPasswordsSpendTheBudgetToo(t *testing.T) {
	srv, _ := newServerWith(t, false, httpapi.Options{BcryptCost: 4, TrustedProxies: loopback,
		PasswordChecksPerAccount: 6, PasswordChecksPerClient: 10}, nil)
	register(t, srv.URL, "jake")
	looper := &client{t: t, base: srv.URL, from: "203.0.113.9"}
	answers := map[int]int{}
	for range 8 {
		st, _ := loginAs(looper, "jake@example.com", "correct-horse-1")
		answers[st]++
	}
	assert.Equal(t, map[int]int{http.StatusOK: 6, http.StatusTooManyRequests: 2}, answers, "six checks of the account, then 429")
	st, _ := loginAs(&client{t: t, base: srv.URL, from: "198.51.100.7"}, "jake@example.com", "correct-horse-1")
	assert.Equal(t, http.StatusTooManyRequests, st, "the account's budget holds from any address")

	anna := register(t, srv.URL, "anna")
	changer := &client{t: t, base: srv.URL, token: anna.token, from: "192.0.2.44"}
	answers = map[int]int{}
	passwords := []string{"correct-horse-1", "other-horse-22"}
	for i := range 8 {
		cur, next := passwords[i%2], passwords[(i+1)%2]
		st, body := changer.do("PUT", "/api/user", `{"user":{"password":"`+next+`","currentPassword":"`+cur+`"}}`)
		answers[st]++
		if st == http.StatusOK {
			changer.token = body["user"].(map[string]any)["token"].(string) // a password change ends the other sessions
		}
	}
	assert.Equal(t, 6, answers[http.StatusOK], "%v", answers)
	assert.Equal(t, 2, answers[http.StatusTooManyRequests], "alternating the password spends the budget: %v", answers)

	sprayer := &client{t: t, base: srv.URL, from: "203.0.113.50"}
	for i := range 10 {
		name := fmt.Sprintf("p%d", i)
		register(t, srv.URL, name)
		st, _ := loginAs(sprayer, name+"@example.com", "correct-horse-1")
		require.Equal(t, http.StatusOK, st)
	}
	register(t, srv.URL, "p10")
	st, _ = loginAs(sprayer, "p10@example.com", "correct-horse-1")
	assert.Equal(t, http.StatusTooManyRequests, st, "one address's budget across accounts")
}

// Asking whether an email is registered costs a password check: an
// account change to a candidate email (with the right current password)
// and a sign-up with a taken email both spend the budget, so a loop of
// them stops at 429 (issue #30 item 2: no unlimited oracle of who signed
// up).
func TestAskingWhetherAnEmailIsTakenSpendsTheBudget(t *testing.T) {
	srv, _ := newServerWith(t, false, httpapi.Options{BcryptCost: 4, TrustedProxies: loopback,
		PasswordChecksPerAccount: 5, PasswordChecksPerClient: 8, LoginFailuresPerAccount: 100, LoginFailuresPerClient: 100}, nil)
	register(t, srv.URL, "anna")
	jake := register(t, srv.URL, "jake")
	prober := &client{t: t, base: srv.URL, token: jake.token, from: "203.0.113.9"}
	answers := map[int]int{}
	for i := range 7 {
		email := fmt.Sprintf("candidate%d@example.com", i)
		if i%2 == 0 {
			email = "anna@example.com"
		}
		st, _ := prober.do("PUT", "/api/user", `{"user":{"email":"`+email+`","currentPassword":"correct-horse-1"}}`)
		answers[st]++
	}
	assert.Equal(t, 2, answers[http.StatusTooManyRequests], "five checks of the account's budget, then 429: %v", answers)

	signups := &client{t: t, base: srv.URL, from: "198.51.100.20"}
	answers = map[int]int{}
	for i := range 10 {
		st, _ := signups.do("POST", "/api/users", fmt.Sprintf(`{"user":{"username":"someone%d","email":"anna@example.com","password":"correct-horse-1"}}`, i))
		answers[st]++
	}
	assert.Positive(t, answers[http.StatusTooManyRequests], "a loop of sign-ups with a taken email stops: %v", answers)
}

// ASVS 2.5.x (issue #30, low): an email change needs the current password
// whatever the change looks like: a Unicode case fold ("ſ" folds to "s")
// is another address as the store keys it, not the same one.
func TestAnEmailThatOnlyFoldsToTheSameNeedsTheCurrentPassword(t *testing.T) {
	srv, _ := newServerWith(t, false, httpapi.Options{BcryptCost: 4, TrustedProxies: loopback}, nil)
	sam := register(t, srv.URL, "sam")
	st, body := sam.do("PUT", "/api/user", `{"user":{"email":"ſam@example.com"}}`)
	assert.Equal(t, http.StatusForbidden, st, "%v", body)
	st, body = sam.do("PUT", "/api/user", `{"user":{"email":"SAM@example.com","bio":"same address, another case"}}`)
	assert.Equal(t, http.StatusOK, st, "%v", body)
}

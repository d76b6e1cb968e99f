package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"webstack/app/httpapi"
	"webstack/app/localdb"
	"webstack/app/observe"
	"webstack/app/store"
	"webstack/app/store/storetest"
)

// instances is how many api instances share the database: each has its
// own driver, which stops sending while it looks for the primary after a
// fault (at most every 500 ms, the drivers' minHeartbeatFrequencyMS), so
// more instances meet more faults in the same time. FAILOVER_INSTANCES,
// FAILOVER_PEOPLE, FAILOVER_RATE (percent of commands) and
// FAILOVER_SECONDS change the workload.
var instances = envInt("FAILOVER_INSTANCES", 12)

// failoverEnv is api instances on one database behind a fault proxy:
// what a DocumentDB failover looks like from the api tier.
type failoverEnv struct {
	proxy  *storetest.FaultProxy
	stores []*store.Store
	bases  []string
	dbURI  string
}

func newFailoverEnv(t *testing.T, seed uint64) *failoverEnv {
	t.Helper()
	ctx := context.Background()
	db, err := localdb.Start(ctx, "127.0.0.1:0", t.TempDir(), nil)
	require.NoError(t, err)
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = db.Stop(sctx)
	})
	proxy, err := storetest.NewFaultProxy(strings.TrimSuffix(strings.TrimPrefix(db.URI, "mongodb://"), "/"), seed)
	require.NoError(t, err)
	proxy.Stall = 2 * time.Second // longer than the api's database deadline
	proxy.Late = lateBy           // a held write lands after its request gave up
	t.Cleanup(func() { _ = proxy.Close() })
	env := &failoverEnv{proxy: proxy, dbURI: db.URI}
	tokens, err := httpapi.NewTokens(httpapi.Secret(strings.Repeat("k", 32)), time.Hour)
	require.NoError(t, err)
	for range instances {
		uri := "mongodb://" + proxy.Addr + "/?maxIdleTimeMS=2000"
		st, err := store.Open(ctx, "conduit", func(context.Context, string) (string, error) { return uri, nil },
			store.Options{IntentGrace: 100 * time.Millisecond, LateWrites: settleAfter})
		require.NoError(t, err)
		t.Cleanup(func() { _ = st.Close(context.Background()) })
		require.NoError(t, st.Migrate(ctx))
		log := slog.New(slog.DiscardHandler)
		api := httpapi.New(st, tokens, log, httpapi.Options{BcryptCost: 4, LoginFailuresPerAccount: 1000, LoginFailuresPerClient: 100000,
			PasswordChecksPerAccount: 100000, PasswordChecksPerClient: 100000,
			Quotas: workloadQuotas, IdempotencyLease: 2 * time.Second})
		srv := httptest.NewServer(observe.NewMetrics("api").Middleware(log, httpapi.Route, nil, api))
		t.Cleanup(srv.Close)
		env.stores = append(env.stores, st)
		env.bases = append(env.bases, srv.URL)
	}
	return env
}

// outcome is what a client learnt of one request.
type outcome int

const (
	acked   outcome = iota // a definite answer (2xx or 4xx)
	unknown                // gave up after 5xx or broken connections: it may or may not have happened
)

// answers counts the answers clients got.
type answers struct {
	mu         sync.Mutex
	byStatus   map[int]int
	noRetry503 int
	internal   []string
	waited     int // 409s of a key still held, waited for
}

func (a *answers) busy() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.waited++
}

func (a *answers) add(st int, body string, retryAfter bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.byStatus[st]++
	if st == http.StatusServiceUnavailable && !retryAfter {
		a.noRetry503++
	}
	if st >= 500 && st != http.StatusServiceUnavailable && len(a.internal) < 20 {
		a.internal = append(a.internal, fmt.Sprintf("%d %s", st, body))
	}
}

// actor is one person using the api as clients do: through either
// instance (a load balancer's choice), sending a request again after a 503
// or a broken connection, up to a point.
type actor struct {
	env      *failoverEnv
	rng      *rand.Rand
	answers  *answers
	name     string
	email    string
	password string
	token    string
	http     *http.Client
}

func (a *actor) call(method, path, body, token string) (int, map[string]any, outcome) {
	// Every write but the three that answer with a token carries an
	// Idempotency-Key, the same on each copy, as a careful client sends.
	key := ""
	if method != "GET" && path != "/api/users" && path != "/api/users/login" && path != "/api/user" {
		key = fmt.Sprintf("%s-%016x", a.email, a.rng.Uint64())
	}
	for tries, busy := 0, 0; tries < 12 && busy < 80; {
		base := a.env.bases[a.rng.IntN(len(a.env.bases))]
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("Authorization", "Token "+token)
		}
		if key != "" {
			req.Header.Set(httpapi.IdempotencyHeader, key)
		}
		resp, err := a.http.Do(req)
		if err != nil {
			tries++
			time.Sleep(20 * time.Millisecond)
			continue
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		a.answers.add(resp.StatusCode, string(raw), resp.Header.Get("Retry-After") != "")
		if resp.StatusCode >= 500 {
			tries++
			time.Sleep(time.Duration(20+a.rng.IntN(40)) * time.Millisecond)
			continue
		}
		if resp.StatusCode == http.StatusConflict && key != "" && resp.Header.Get("Retry-After") != "" {
			// The first copy (perhaps one held by the database) still
			// holds the key: wait for its answer, as Retry-After says.
			a.answers.busy()
			busy++
			time.Sleep(time.Duration(80+a.rng.IntN(40)) * time.Millisecond)
			continue
		}
		var out map[string]any
		_ = json.Unmarshal(raw, &out)
		return resp.StatusCode, out, acked
	}
	return 0, nil, unknown
}

// world is what the clients were told, shared by all of them.
type world struct {
	mu        sync.Mutex
	articles  []*articleModel
	actors    []*actor
	favorites map[[2]string]favState // (email, article key)
	follows   map[[2]*actor]favState // (follower, followee)
}

type articleModel struct {
	key      string // stable: "<author>-<n>"
	author   *actor
	slug     string   // current, as last acknowledged
	maybe    []string // slugs an unacknowledged rename may have left it at
	tags     []string
	deleted  outcomeState
	unsure   bool // created without an answer: may or may not exist (slug unknown)
	comments []*commentModel
}

type outcomeState int

const (
	no outcomeState = iota
	yes
	maybe
)

type favState struct {
	on    bool
	known bool // the last request about it was answered
}

type commentModel struct {
	article *articleModel
	id      int
	body    string
	deleted outcomeState
}

var tagPool = []string{"go", "aws", "docdb", "failover", "cache", "index", "retry", "wire"}

// The data layer holds its invariants through a database failing over:
// twelve api instances, a fault proxy between them and the database
// dropping commands before they reach it, losing replies after they
// applied, answering "not primary", stalling past the api's deadline,
// holding writes past their request and applying them later (Late), and
// answering the loser of two concurrent upserts E11000 (RacedUpsert);
// forty people registering, renaming themselves, writing, renaming and
// deleting articles, favoriting, following, commenting and changing
// passwords, with the quotas on, sending requests again after a 503 as a
// careful client does (with the same Idempotency-Key, waiting while the
// key is held). After the faults stop, the held writes land and the
// interrupted and late writes settle: no answer was a 500 or a 429; every
// 503 said when to retry; every account is whole; every acknowledged write
// is there and nothing was made twice; the last acknowledged favorite and
// follow hold; favorites counts equal the favorites; the article count
// equals the articles; tags list exactly what articles use.
func TestFailoverWorkloadKeepsTheInvariants(t *testing.T) {
	if testing.Short() {
		t.Skip("the fault workload runs for several seconds")
	}
	env := newFailoverEnv(t, 20)
	ans := &answers{byStatus: map[int]int{}}
	w := &world{favorites: map[[2]string]favState{}, follows: map[[2]*actor]favState{}}
	people := envInt("FAILOVER_PEOPLE", 40)
	for i := range people {
		a := &actor{env: env, rng: rand.New(rand.NewPCG(uint64(i), 7)), answers: ans, name: fmt.Sprintf("person%d", i),
			email: fmt.Sprintf("person%d@example.com", i), password: fmt.Sprintf("first-secret-%d", i),
			http: &http.Client{Timeout: 5 * time.Second}}
		w.actors = append(w.actors, a)
	}
	kinds := []storetest.Fault{storetest.DropBeforeSend, storetest.LoseReply, storetest.NotPrimary, storetest.Stall, storetest.Late, storetest.RacedUpsert}
	env.proxy.Inject(float64(envInt("FAILOVER_RATE", 5))/100, kinds)

	var wg sync.WaitGroup
	deadline := time.Now().Add(time.Duration(envInt("FAILOVER_SECONDS", 10)) * time.Second)
	for _, a := range w.actors {
		wg.Go(func() { w.live(t, a, deadline) })
	}
	wg.Wait()
	env.proxy.Heal()
	counts := env.proxy.Counts()
	t.Logf("faults injected: %v (%d in all, %d held writes landed late); answers: %v; waited for a key held %d times",
		counts, env.proxy.Injected(), env.proxy.Landed(), ans.byStatus, ans.waited)
	require.GreaterOrEqual(t, env.proxy.Injected(), 200, "the workload met hundreds of faults")
	for _, f := range kinds {
		assert.Positive(t, counts[f], "%s was injected", f)
	}

	// The held writes land, interrupted writes are finished, the settling
	// runs count what landed late; then the caches' tolerance passes.
	time.Sleep(lateBy + 200*time.Millisecond)
	mc, err := mongo.Connect(options.Client().ApplyURI(env.dbURI))
	require.NoError(t, err)
	defer func() { _ = mc.Disconnect(context.Background()) }()
	require.Eventually(t, func() bool {
		for _, st := range env.stores {
			_, err := st.Repair(context.Background())
			require.NoError(t, err)
		}
		n, err := mc.Database("conduit").Collection("intents").CountDocuments(context.Background(), bson.D{})
		require.NoError(t, err)
		due, err := mc.Database("conduit").Collection("articles").CountDocuments(context.Background(), bson.D{{Key: "favSettle", Value: bson.D{{Key: "$exists", Value: true}}}})
		require.NoError(t, err)
		return n == 0 && due == 0
	}, settleAfter+10*time.Second, 100*time.Millisecond, "every intent and every article's favorites settle")
	time.Sleep(store.DefaultLagTolerance + 100*time.Millisecond)

	assert.Zero(t, ans.byStatus[http.StatusTooManyRequests], "no write was refused by a quota (the limits are above what the workload sends: a 429 is a take counted wrong)")
	assert.Empty(t, ans.internal, "no answer is a 500 (a failing-over database is 503)")
	assert.Zero(t, ans.noRetry503, "every 503 says when to retry")
	assert.Positive(t, ans.byStatus[http.StatusServiceUnavailable], "the faults reached clients as 503s")
	w.check(t)

	// Nothing is left of a deleted article: no comment or favorite names
	// an article that is not there (read in the database: the api finds
	// them by the article, so it cannot see them).
	ctx := context.Background()
	ids := map[string]bool{}
	cur, err := mc.Database("conduit").Collection("articles").Find(ctx, bson.D{}, options.Find().SetProjection(bson.D{{Key: "_id", Value: 1}}))
	require.NoError(t, err)
	var arts []struct {
		ID string `bson:"_id"`
	}
	require.NoError(t, cur.All(ctx, &arts))
	for _, a := range arts {
		ids[a.ID] = true
	}
	for _, coll := range []string{"comments", "favorites"} {
		cur, err := mc.Database("conduit").Collection(coll).Find(ctx, bson.D{{Key: "aid", Value: bson.D{{Key: "$exists", Value: true}}}},
			options.Find().SetProjection(bson.D{{Key: "aid", Value: 1}}))
		require.NoError(t, err)
		var docs []struct {
			ID  string `bson:"_id"`
			AID string `bson:"aid"`
		}
		require.NoError(t, cur.All(ctx, &docs))
		for _, d := range docs {
			assert.True(t, ids[d.AID], "%s %s names the article %s, which is gone", coll, d.ID, d.AID)
		}
	}
}

// live is one person's session until deadline.
func (w *world) live(t *testing.T, a *actor, deadline time.Time) {
	body := fmt.Sprintf(`{"user":{"username":%q,"email":%q,"password":%q}}`, a.name, a.email, a.password)
	for a.token == "" {
		st, out, o := a.call("POST", "/api/users", body, "")
		switch {
		case o == unknown:
			continue
		case st == http.StatusCreated:
			a.token = out["user"].(map[string]any)["token"].(string)
		case st == http.StatusUnprocessableEntity:
			// An earlier attempt was applied and its answer lost: the
			// account is whole, so signing in works.
			a.login(t, a.password)
			require.NotEmpty(t, a.token, "%s: the email is taken, so the account exists and signs in", a.name)
		default:
			t.Errorf("register %s: %d %v", a.name, st, out)
			return
		}
	}
	n := 0
	renamed, changedPassword := false, false
	for time.Now().Before(deadline) {
		switch r := a.rng.IntN(100); {
		case r < 15:
			n++
			w.create(a, n)
		case r < 22:
			w.renameArticle(a)
		case r < 26:
			w.deleteArticle(a)
		case r < 50:
			w.favorite(a)
		case r < 60:
			w.follow(a)
		case r < 80:
			w.comment(a)
		case r < 84:
			w.deleteComment(a)
		case r < 87 && !renamed:
			renamed = true
			w.renameSelf(t, a)
		case r < 89 && !changedPassword:
			changedPassword = true
			w.changePassword(t, a)
		default:
			w.read(t, a)
		}
	}
}

func (a *actor) login(t *testing.T, password string) bool {
	st, out, o := a.call("POST", "/api/users/login", fmt.Sprintf(`{"user":{"email":%q,"password":%q}}`, a.email, password), "")
	if o == acked && st == http.StatusOK {
		a.token = out["user"].(map[string]any)["token"].(string)
		return true
	}
	require.NotEqual(t, unknown, o, "sign-in answered after the faults")
	return false
}

func (w *world) pick(a *actor) *articleModel {
	w.mu.Lock()
	defer w.mu.Unlock()
	var live []*articleModel
	for _, m := range w.articles {
		if m.deleted == no && !m.unsure {
			live = append(live, m)
		}
	}
	if len(live) == 0 {
		return nil
	}
	return live[a.rng.IntN(len(live))]
}

func (w *world) create(a *actor, n int) {
	tags := []string{tagPool[a.rng.IntN(len(tagPool))], tagPool[a.rng.IntN(len(tagPool))]}
	m := &articleModel{key: fmt.Sprintf("%s-%d", a.name, n), author: a}
	title := "Article " + m.key
	st, out, o := a.call("POST", "/api/articles", fmt.Sprintf(`{"article":{"title":%q,"description":"d","body":"b","tagList":[%q,%q]}}`,
		title, tags[0], tags[1]), a.token)
	switch {
	case o == unknown:
		m.unsure = true
	case st == http.StatusCreated:
		m.slug = out["article"].(map[string]any)["slug"].(string)
		for _, t := range out["article"].(map[string]any)["tagList"].([]any) {
			m.tags = append(m.tags, t.(string))
		}
	default:
		return
	}
	w.mu.Lock()
	w.articles = append(w.articles, m)
	w.mu.Unlock()
}

func (w *world) own(a *actor) *articleModel {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, i := range a.rng.Perm(len(w.articles)) {
		if m := w.articles[i]; m.author == a && m.deleted == no && !m.unsure {
			return m
		}
	}
	return nil
}

func (w *world) renameArticle(a *actor) {
	m := w.own(a)
	if m == nil {
		return
	}
	title := fmt.Sprintf("Renamed %s %d", m.key, a.rng.IntN(1000))
	st, out, o := a.call("PUT", "/api/articles/"+m.slug, fmt.Sprintf(`{"article":{"title":%q}}`, title), a.token)
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case o == unknown:
		m.maybe = append(m.maybe, "renamed-to-"+title) // resolved by title in check
	case st == http.StatusOK:
		m.slug = out["article"].(map[string]any)["slug"].(string)
		m.maybe = nil
	case st == http.StatusNotFound:
		// The answer to a request sent again, whose first copy renamed it.
		m.maybe = append(m.maybe, "renamed-to-"+title)
	}
}

func (w *world) deleteArticle(a *actor) {
	m := w.own(a)
	if m == nil {
		return
	}
	st, _, o := a.call("DELETE", "/api/articles/"+m.slug, "", a.token)
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case o == unknown:
		m.deleted = maybe
	case st == http.StatusNoContent:
		m.deleted = yes
	case st == http.StatusNotFound && len(m.maybe) > 0:
		m.deleted = maybe // renamed by an unanswered request: still there, under another slug
	case st == http.StatusNotFound:
		m.deleted = yes // the answer to a request sent again, whose first copy deleted it
	}
}

func (w *world) favorite(a *actor) {
	m := w.pick(a)
	if m == nil {
		return
	}
	method := "POST"
	if a.rng.IntN(3) == 0 {
		method = "DELETE"
	}
	st, out, o := a.call(method, "/api/articles/"+m.slug+"/favorite", "", a.token)
	w.mu.Lock()
	defer w.mu.Unlock()
	key := [2]string{a.email, m.key}
	switch {
	case o == unknown:
		w.favorites[key] = favState{known: false}
	case st == http.StatusOK:
		w.favorites[key] = favState{on: method == "POST", known: true}
		if fav := out["article"].(map[string]any)["favorited"].(bool); fav != (method == "POST") {
			w.favorites[key] = favState{known: false} // never: the answer says what it did
		}
	case st == http.StatusNotFound:
		// This copy found no article at that slug (renamed or deleted
		// meanwhile), but call sends a request again after a 503, and an
		// earlier copy may have favorited it before the rename: unknown.
		// (Seen: a favorite applied, its answer a 503, the author's rename,
		// then the copy sent again answered 404.)
		w.favorites[key] = favState{known: false}
	default:
		w.favorites[key] = favState{known: false}
	}
}

func (w *world) follow(a *actor) {
	other := w.actors[a.rng.IntN(len(w.actors))]
	if other == a {
		return
	}
	method := "POST"
	if a.rng.IntN(3) == 0 {
		method = "DELETE"
	}
	w.mu.Lock()
	name := other.name
	w.mu.Unlock()
	if strings.HasPrefix(name, "?") {
		return // renamed without an answer: the name is not known
	}
	st, out, o := a.call(method, "/api/profiles/"+url.PathEscape(name)+"/follow", "", a.token)
	w.mu.Lock()
	defer w.mu.Unlock()
	key := [2]*actor{a, other}
	switch {
	case o == acked && st == http.StatusOK:
		w.follows[key] = favState{on: method == "POST", known: true}
		if p, _ := out["profile"].(map[string]any); p["following"] != (method == "POST") {
			w.follows[key] = favState{} // never: the answer says what it did
		}
	default:
		// No answer, or 404 (renamed meanwhile, perhaps after an earlier
		// copy of this request applied): unknown.
		w.follows[key] = favState{}
	}
}

func (w *world) comment(a *actor) {
	m := w.pick(a)
	if m == nil {
		return
	}
	text := fmt.Sprintf("comment by %s %d", a.name, a.rng.IntN(1_000_000))
	st, out, o := a.call("POST", "/api/articles/"+m.slug+"/comments", fmt.Sprintf(`{"comment":{"body":%q}}`, text), a.token)
	if o != acked || st != http.StatusOK {
		return
	}
	id := int(out["comment"].(map[string]any)["id"].(float64))
	w.mu.Lock()
	defer w.mu.Unlock()
	m.comments = append(m.comments, &commentModel{article: m, id: id, body: text})
}

func (w *world) deleteComment(a *actor) {
	w.mu.Lock()
	var target *commentModel
	for _, m := range w.articles {
		for _, c := range m.comments {
			if c.deleted == no && strings.Contains(c.body, " by "+a.name+" ") && m.deleted == no {
				target = c
			}
		}
	}
	var slug string
	if target != nil {
		slug = target.article.slug
	}
	w.mu.Unlock()
	if target == nil {
		return
	}
	st, _, o := a.call("DELETE", fmt.Sprintf("/api/articles/%s/comments/%d", slug, target.id), "", a.token)
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case o == unknown:
		target.deleted = maybe
	case st == http.StatusNoContent:
		target.deleted = yes
	case st == http.StatusNotFound:
		target.deleted = maybe // sent again after its first copy deleted it, or the article was renamed
	}
}

func (w *world) renameSelf(t *testing.T, a *actor) {
	name := a.name + "-renamed"
	st, _, o := a.call("PUT", "/api/user", fmt.Sprintf(`{"user":{"username":%q}}`, name), a.token)
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case o == acked && st == http.StatusOK:
		a.name = name
	case o == unknown:
		a.name = "?" + name // resolved in check
	case st == http.StatusUnprocessableEntity:
		// The answer to a request sent again, whose first copy renamed
		// them: the name is taken (by them). Resolved in check.
		a.name = "?" + name
	default:
		t.Errorf("rename %s: %d", a.name, st)
	}
}

func (w *world) changePassword(t *testing.T, a *actor) {
	next := a.password + "-second"
	st, out, o := a.call("PUT", "/api/user", fmt.Sprintf(`{"user":{"password":%q,"currentPassword":%q}}`, next, a.password), a.token)
	old := a.token
	switch {
	case o == acked && st == http.StatusOK:
		a.password, a.token = next, out["user"].(map[string]any)["token"].(string)
		// The old token is void at once, on every instance.
		for _, base := range a.env.bases {
			req, _ := http.NewRequest("GET", base+"/api/user", nil)
			req.Header.Set("Authorization", "Token "+old)
			resp, err := a.http.Do(req)
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode != http.StatusServiceUnavailable {
					assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "%s's token from before the password change", a.email)
				}
			}
		}
	case o == unknown || st == http.StatusUnauthorized:
		// No answer; or the answer to a request sent again, whose first
		// copy changed the password and so voided the token it carried.
		// Either way the person signs in to learn which password holds.
		if a.login(t, next) {
			a.password = next
		} else {
			a.login(t, a.password)
		}
	default:
		t.Errorf("change password of %s: %d %v", a.email, st, out)
	}
}

func (w *world) read(t *testing.T, a *actor) {
	paths := []string{"/api/articles?limit=10", "/api/tags", "/api/articles/feed", "/api/user"}
	_, _, _ = a.call("GET", paths[a.rng.IntN(len(paths))], "", a.token)
}

// check verifies the invariants against what the api answers now.
func (w *world) check(t *testing.T) {
	reader := &actor{env: w.actors[0].env, rng: rand.New(rand.NewPCG(99, 99)), answers: w.actors[0].answers, http: &http.Client{Timeout: 5 * time.Second}}
	get := func(path, token string) (int, map[string]any) {
		st, out, o := reader.call("GET", path, "", token)
		require.Equal(t, acked, o, "GET %s answered once the faults stopped", path)
		return st, out
	}
	// comments reads every page of an article's thread (100 at a time,
	// each after the cursor of the one before).
	comments := func(slug string) (int, map[string]any) {
		var all []any
		after := ""
		for {
			st, out := get("/api/articles/"+slug+"/comments?limit=100"+after, "")
			if st != http.StatusOK {
				return st, out
			}
			page := out["comments"].([]any)
			all = append(all, page...)
			if len(page) < 100 {
				return st, map[string]any{"comments": all}
			}
			last := page[len(page)-1].(map[string]any)
			at, err := time.Parse(time.RFC3339Nano, last["createdAt"].(string))
			require.NoError(t, err)
			after = fmt.Sprintf("&after=%d-%d", at.UnixMilli(), int64(last["id"].(float64)))
		}
	}

	// Accounts: whole, with the name and password last acknowledged.
	for _, a := range w.actors {
		if strings.HasPrefix(a.name, "?") {
			renamed := strings.TrimPrefix(a.name, "?")
			stNew, _ := get("/api/profiles/"+renamed, "")
			stOld, _ := get("/api/profiles/"+strings.TrimSuffix(renamed, "-renamed"), "")
			require.True(t, stNew == 200 && stOld == 404 || stNew == 404 && stOld == 200,
				"an unanswered rename is all or nothing: new %d, old %d", stNew, stOld)
			a.name = renamed
			if stNew == 404 {
				a.name = strings.TrimSuffix(renamed, "-renamed")
			}
		}
		st, out := get("/api/profiles/"+a.name, "")
		require.Equal(t, http.StatusOK, st, "%s resolves", a.name)
		assert.Equal(t, a.name, out["profile"].(map[string]any)["username"])
		if strings.HasSuffix(a.name, "-renamed") {
			st, _ := get("/api/profiles/"+strings.TrimSuffix(a.name, "-renamed"), "")
			assert.Equal(t, http.StatusNotFound, st, "the name %s left is free", a.name)
		}
		assert.True(t, a.login(t, a.password), "%s signs in with the password last acknowledged", a.email)
	}

	// Articles: the list's count equals its articles; acknowledged ones
	// are there, acknowledged deletions are not.
	type listed struct {
		slug, title string
		count       int
		tags        []string
	}
	all := map[string]listed{}
	total := -1
	for offset := 0; ; offset += 100 {
		_, out := get(fmt.Sprintf("/api/articles?limit=100&offset=%d", offset), "")
		total = int(out["articlesCount"].(float64))
		list := out["articles"].([]any)
		for _, x := range list {
			m := x.(map[string]any)
			var tags []string
			for _, t := range m["tagList"].([]any) {
				tags = append(tags, t.(string))
			}
			all[m["slug"].(string)] = listed{slug: m["slug"].(string), title: m["title"].(string), count: int(m["favoritesCount"].(float64)), tags: tags}
		}
		if len(list) < 100 {
			break
		}
	}
	assert.Equal(t, total, len(all), "articlesCount equals the articles listed")
	for _, m := range w.articles {
		if m.unsure {
			continue
		}
		_, present := all[m.slug]
		if !present {
			for _, l := range all { // renamed by an unanswered request
				for _, r := range m.maybe {
					if "renamed-to-"+l.title == r {
						present = true
					}
				}
			}
		}
		switch m.deleted {
		case no:
			assert.True(t, present, "acknowledged article %s (%s) is there", m.key, m.slug)
		case yes:
			assert.False(t, present, "acknowledged deletion of %s holds", m.key)
			st, _ := comments(m.slug)
			assert.Equal(t, http.StatusNotFound, st)
		}
		if !present {
			continue
		}
		st, out := comments(m.slug)
		if st != http.StatusOK {
			continue // renamed by an unanswered request
		}
		var ids []int
		for _, c := range out["comments"].([]any) {
			ids = append(ids, int(c.(map[string]any)["id"].(float64)))
		}
		for _, c := range m.comments {
			switch c.deleted {
			case no:
				if !assert.Contains(t, ids, c.id, "acknowledged comment %d on %s is there", c.id, m.key) {
					got, err := w.actors[0].env.stores[0].Comment(context.Background(), m.slug, int64(c.id))
					t.Logf("comment %d read by id on %s: %+v %v", c.id, m.slug, got, err)
					mc, _ := mongo.Connect(options.Client().ApplyURI(w.actors[0].env.dbURI))
					var raw bson.M
					err = mc.Database("conduit").Collection("comments").FindOne(context.Background(), bson.D{{Key: "_id", Value: fmt.Sprintf("%016x", c.id)}}).Decode(&raw)
					t.Logf("raw comment: %v %v", raw, err)
					if raw != nil {
						var art bson.M
						err = mc.Database("conduit").Collection("articles").FindOne(context.Background(), bson.D{{Key: "_id", Value: raw["aid"]}}).Decode(&art)
						t.Logf("its article: %v %v", art["slug"], err)
					}
					var intents []bson.M
					cur, _ := mc.Database("conduit").Collection("intents").Find(context.Background(), bson.D{})
					_ = cur.All(context.Background(), &intents)
					t.Logf("intents: %v", intents)
				}
			case yes:
				assert.NotContains(t, ids, c.id, "acknowledged deletion of comment %d holds", c.id)
			}
		}
	}

	// Favorites: each article's count equals the people who list it, and
	// the last acknowledged favorite or unfavorite holds.
	favoritedBy := map[string]int{}
	for _, a := range w.actors {
		_, out := get("/api/articles?limit=100&favorited="+url.QueryEscape(a.name), "")
		list := out["articles"].([]any)
		assert.Equal(t, len(list), int(out["articlesCount"].(float64)), "%s's favorites count equals the list", a.name)
		var mine []string
		for _, x := range list {
			slug := x.(map[string]any)["slug"].(string)
			favoritedBy[slug]++
			mine = append(mine, slug)
		}
		for _, m := range w.articles {
			s, ok := w.favorites[[2]string{a.email, m.key}]
			if !ok || !s.known || m.deleted != no || len(m.maybe) > 0 {
				continue
			}
			assert.Equal(t, s.on, slices.Contains(mine, m.slug), "%s's last acknowledged favorite of %s holds", a.name, m.key)
		}
	}
	for slug, l := range all {
		assert.Equal(t, favoritedBy[slug], l.count, "favoritesCount of %s equals the people who favorited it", slug)
	}

	// No duplicates: every article key is listed at most once (a create
	// sent again made one article), and no article has two comments with
	// one body (each comment's body is its own).
	byKey := map[string]int{}
	for _, l := range all {
		if k, ok := strings.CutPrefix(l.title, "Article "); ok {
			byKey[k]++
		} else if f := strings.Fields(l.title); len(f) == 3 && f[0] == "Renamed" {
			byKey[f[1]]++
		}
	}
	for k, n := range byKey {
		assert.Equal(t, 1, n, "article %s was made once", k)
	}
	for slug := range all {
		st, out := comments(slug)
		if st != http.StatusOK {
			continue
		}
		bodies := map[string]int{}
		for _, c := range out["comments"].([]any) {
			bodies[c.(map[string]any)["body"].(string)]++
		}
		for b, n := range bodies {
			assert.Equal(t, 1, n, "comment %q on %s was made once", b, slug)
		}
	}

	// Follows: the last acknowledged follow or unfollow holds.
	for key, s := range w.follows {
		if !s.known {
			continue
		}
		st, out := get("/api/profiles/"+url.PathEscape(key[1].name), key[0].token)
		require.Equal(t, http.StatusOK, st)
		assert.Equal(t, s.on, out["profile"].(map[string]any)["following"], "%s's last acknowledged follow of %s holds", key[0].name, key[1].name)
	}

	// Tags: exactly those the articles use, each with articles.
	used := map[string]bool{}
	for _, l := range all {
		for _, tg := range l.tags {
			used[tg] = true
		}
	}
	_, out := get("/api/tags", "")
	var tags []string
	for _, tg := range out["tags"].([]any) {
		tags = append(tags, tg.(string))
	}
	assert.ElementsMatch(t, slices.Collect(mapKeys(used)), tags, "the tag list is what the articles use")
}

func mapKeys[K comparable, V any](m map[K]V) func(func(K) bool) {
	return func(yield func(K) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return v
	}
	return def
}

// workloadQuotas keep the quotas on, each above what the workload can send
// in its seconds (40 sign-ups from one address; a person's articles and
// comments, every copy counted): every write takes from its quota, so the
// takes meet the faults (a raced first take of a window among them), and a
// 429 is a take counted wrong.
var workloadQuotas = httpapi.Quotas{Registrations: httpapi.Quota{Limit: 2000, Window: time.Hour},
	Articles: httpapi.Quota{Limit: 2000, Window: time.Hour}, Comments: httpapi.Quota{Limit: 2000, Window: time.Hour},
	CommentsPerArticle: httpapi.Quota{Limit: 2000, Window: time.Hour}}

// lateBy is how long the proxy holds a Late write; settleAfter is the
// stores' LateWrites (a late favorite is counted when its write settles).
const (
	lateBy      = 3 * time.Second // past the api's 1.5 s database deadline: it lands after its request gave up
	settleAfter = 5 * time.Second // past lateBy and the deadline
)

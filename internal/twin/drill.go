package twin

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// WaitTargetsHealthy waits until every target of every target group is
// healthy: the plan's healthy threshold of checks at its interval.
func (m *Model) WaitTargetsHealthy(state State) error {
	var limit time.Duration
	for _, tg := range m.TargetGroups {
		limit = max(limit, time.Duration(tg.Healthy+1)*tg.Interval+tg.Timeout)
	}
	deadline := time.Now().Add(limit)
	for {
		th, err := TargetHealth(state)
		if err == nil && allHealthy(th) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("targets not all healthy after %s: %v", limit, th)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func allHealthy(th map[string][]TargetState) bool {
	for _, ts := range th {
		for _, t := range ts {
			if t.State != "healthy" {
				return false
			}
		}
	}
	return true
}

// DrillStopTarget stops one api instance (everything running in its
// namespace, as stopping the instance would), checks its target group
// marks it unhealthy within the plan's thresholds, and that suite still
// passes on the others.
func (m *Model) DrillStopTarget(state State, suite func() error, out io.Writer) error {
	var tg *TargetGroup
	for _, g := range m.TargetGroups {
		if len(g.Targets) > 1 && slices.ContainsFunc(g.Targets, func(n string) bool { h, _ := m.Host(n); return h.Tier == API }) {
			tg = g
		}
	}
	if tg == nil {
		return fmt.Errorf("drill: no api target group with two targets or more")
	}
	victim, _ := m.Host(tg.Targets[0])
	stopped := time.Now()
	if err := killIn(victim.Namespace); err != nil {
		return err
	}
	// A target counts unhealthy after `unhealthy` failed checks; the first
	// may come up to one interval after the stop, each may take the timeout.
	limit := time.Duration(tg.Unhealthy)*tg.Interval + tg.Timeout
	for {
		th, err := TargetHealth(state)
		if err != nil {
			return err
		}
		if i := slices.IndexFunc(th[tg.Name], func(t TargetState) bool { return t.Host == victim.Name }); i >= 0 && th[tg.Name][i].State == "unhealthy" {
			took := th[tg.Name][i].Since.Sub(stopped)
			fmt.Fprintf(out, "drill: %s stopped; target group %s marked it unhealthy after %.1f s (plan: %d checks × %s, timeout %s: at most %s)\n",
				victim.Name, tg.Name, took.Seconds(), tg.Unhealthy, tg.Interval, tg.Timeout, limit)
			break
		}
		if time.Since(stopped) > limit+2*time.Second {
			return fmt.Errorf("drill: %s still not unhealthy %s after it stopped (plan allows %s)", victim.Name, time.Since(stopped).Round(time.Second), limit)
		}
		time.Sleep(250 * time.Millisecond)
	}
	if err := suite(); err != nil {
		return fmt.Errorf("drill: with %s stopped: %w", victim.Name, err)
	}
	fmt.Fprintf(out, "drill: the suite passed with %s stopped\n", victim.Name)
	return nil
}

// DrillRotateSecret rotates the database secret in the stand-in (the
// serve process, pid): while the new password is pending, a burst of
// concurrent reads (distinct queries, so the api's caches cannot fold
// them and its pools must open connections, which authenticate with the
// new password) and then suite run; no request may fail, and the api must
// have read the pending secret.
func (m *Model) DrillRotateSecret(state State, pid int, suite func() error, out io.Writer) error {
	before := strings.Count(readFile(state.path("logs", "standins.log")), "stage=AWSPENDING")
	if err := syscall.Kill(pid, syscall.SIGUSR1); err != nil {
		return fmt.Errorf("drill: signal the stand-ins: %w", err)
	}
	time.Sleep(200 * time.Millisecond) // the new password is set
	n, failed, err := m.burst(state, 64)
	if err != nil {
		return err
	}
	if failed > 0 {
		return fmt.Errorf("drill: %d of %d concurrent reads failed during the secret's rotation", failed, n)
	}
	if err := suite(); err != nil {
		return fmt.Errorf("drill: during the secret's rotation: %w", err)
	}
	pending := strings.Count(readFile(state.path("logs", "standins.log")), "stage=AWSPENDING") - before
	fmt.Fprintf(out, "drill: database secret rotated: %d concurrent reads and the suite passed while it was pending; api reads of AWSPENDING: %d\n", n, pending)
	if pending == 0 {
		return fmt.Errorf("drill: no api instance read the pending secret: the rotation was not exercised")
	}
	return nil
}

// internetClient is an HTTP client in the internet namespace that trusts
// the twin's CA.
func (m *Model) internetClient(state State) (*http.Client, error) {
	ca, err := os.ReadFile(state.path("pki", "ca.pem"))
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	c := ClientIn(m.Namespace("internet"))
	c.Timeout = 30 * time.Second
	c.Transport.(*http.Transport).TLSClientConfig = &tls.Config{RootCAs: pool}
	return c, nil
}

// burst sends n concurrent GET /api/articles?tag=<distinct> from the
// internet to the entry URL and counts the answers that are not 200.
func (m *Model) burst(state State, n int) (int, int, error) {
	c, err := m.internetClient(state)
	if err != nil {
		return 0, 0, err
	}
	var (
		wg     sync.WaitGroup
		failed atomic.Int64
	)
	for i := range n {
		wg.Go(func() {
			resp, err := c.Get(fmt.Sprintf("%s/api/articles?tag=rotation-%d", m.Entry, i))
			if err != nil {
				failed.Add(1)
				return
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				failed.Add(1)
			}
		})
	}
	wg.Wait()
	return n, int(failed.Load()), nil
}

func readFile(p string) string {
	b, _ := os.ReadFile(p)
	return string(b)
}

// killIn kills every process in namespace ns.
func killIn(ns string) error {
	pids, err := exec.Command("ip", "netns", "pids", ns).Output()
	if err != nil {
		return fmt.Errorf("ip netns pids %s: %w", ns, err)
	}
	for _, f := range bytes.Fields(pids) {
		if pid, err := strconv.Atoi(string(f)); err == nil && pid != os.Getpid() {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	return nil
}

// DrillFailover fails the database over (the serve process, pid, breaks
// every connection and has no primary for failoverWindow) while writers
// post comments from the internet: no answer may be a 500 (a database
// failing over is 503 with Retry-After), the site must recover by itself,
// and every comment acknowledged must be there afterwards.
func (m *Model) DrillFailover(state State, pid int, out io.Writer) error {
	c, err := m.internetClient(state)
	if err != nil {
		return err
	}
	c.Timeout = 10 * time.Second
	post := func(path, token, body string) (int, http.Header, []byte, error) {
		req, err := http.NewRequest("POST", m.Entry+path, strings.NewReader(body))
		if err != nil {
			return 0, nil, nil, err
		}
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("Authorization", "Token "+token)
		}
		resp, err := c.Do(req)
		if err != nil {
			return 0, nil, nil, err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header, b, nil
	}
	// Each writer is its own person commenting under their own article:
	// the app's quotas (comments per account an hour, sign-ups per address)
	// stay far off, so every refusal the drill sees is the failover's.
	const writers = 10
	tokens, slugs := make([]string, writers), make([]string, writers)
	base := time.Now().UnixNano() % 1_000_000
	for w := range writers {
		name := fmt.Sprintf("failover%d-%d", base, w)
		st, _, b, err := post("/api/users", "", fmt.Sprintf(`{"user":{"username":%q,"email":"%s@example.com","password":"failover-drill-1"}}`, name, name))
		if err != nil || st != http.StatusCreated {
			return fmt.Errorf("drill: register: %d %s %v", st, b, err)
		}
		tokens[w] = jsonField(b, "token")
		st, _, b, err = post("/api/articles", tokens[w], `{"article":{"title":"Failover `+name+`","description":"d","body":"b"}}`)
		if err != nil || st != http.StatusCreated {
			return fmt.Errorf("drill: create an article: %d %s %v", st, b, err)
		}
		slugs[w] = jsonField(b, "slug")
	}

	var (
		mu                   sync.Mutex
		acked                = make([][]string, writers)
		byStatus             = map[int]int{}
		broken, noRetryAfter int
		lastFailure          time.Time
	)
	stop := time.Now().Add(time.Second + failoverWindow + 8*time.Second)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := 0; time.Now().Before(stop); i++ {
				st, h, b, err := post("/api/articles/"+slugs[w]+"/comments", tokens[w], fmt.Sprintf(`{"comment":{"body":"drill %d-%d"}}`, w, i))
				mu.Lock()
				switch {
				case err != nil:
					broken++
					lastFailure = time.Now()
				case st == http.StatusOK:
					acked[w] = append(acked[w], jsonNumber(b, "id"))
				default:
					byStatus[st]++
					if st == http.StatusServiceUnavailable && h.Get("Retry-After") == "" {
						noRetryAfter++
					}
					lastFailure = time.Now()
				}
				mu.Unlock()
				if err != nil || st != http.StatusOK {
					time.Sleep(100 * time.Millisecond)
				}
			}
		})
	}
	time.Sleep(time.Second)
	if err := syscall.Kill(pid, syscall.SIGUSR2); err != nil {
		return fmt.Errorf("drill: signal the stand-ins: %w", err)
	}
	began := time.Now()
	wg.Wait()

	for st := range byStatus {
		if st >= 500 && st != http.StatusServiceUnavailable {
			return fmt.Errorf("drill: the failover was answered %d (%d times): a database failing over is 503", st, byStatus[st])
		}
	}
	if noRetryAfter > 0 {
		return fmt.Errorf("drill: %d answers 503 without Retry-After", noRetryAfter)
	}
	if byStatus[http.StatusServiceUnavailable]+broken == 0 {
		return fmt.Errorf("drill: no request met the failover: the drill was void")
	}
	if lastFailure.After(stop.Add(-3 * time.Second)) {
		return fmt.Errorf("drill: still failing %s after the failover ended", time.Until(stop.Add(-failoverWindow)))
	}
	missing, total := 0, 0
	for w := range writers {
		// Every page of the thread (the api answers 100 at a time, and a
		// Link rel="next" to the rest).
		var body []byte
		for path := "/api/articles/" + slugs[w] + "/comments"; path != ""; {
			req, _ := http.NewRequest("GET", m.Entry+path, nil)
			resp, err := c.Do(req)
			if err != nil {
				return fmt.Errorf("drill: read the comments back: %w", err)
			}
			page, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			body = append(body, page...)
			path = nextLink(resp.Header.Get("Link"))
		}
		for _, id := range acked[w] {
			total++
			if !bytes.Contains(body, []byte(`"id":`+id+`,`)) {
				missing++
			}
		}
	}
	if missing > 0 {
		return fmt.Errorf("drill: %d of %d acknowledged comments are missing after the failover", missing, total)
	}
	fmt.Fprintf(out, "drill: database failover (%s without a primary, every connection broken): %d comments acknowledged, all there after; %d answers 503 with Retry-After, %d broken connections, 0 × 500; writes resumed %.1f s after it began\n",
		failoverWindow, total, byStatus[http.StatusServiceUnavailable], broken, lastFailure.Sub(began).Seconds())
	return nil
}

// nextLink is the path of a Link header's rel="next" target ("" for none).
func nextLink(link string) string {
	for _, part := range strings.Split(link, ",") {
		target, params, ok := strings.Cut(strings.TrimSpace(part), ";")
		if ok && strings.Contains(params, `rel="next"`) {
			return strings.Trim(strings.TrimSpace(target), "<>")
		}
	}
	return ""
}

// jsonField is the first string value of key in b.
func jsonField(b []byte, key string) string {
	i := bytes.Index(b, []byte(`"`+key+`":"`))
	if i < 0 {
		return ""
	}
	rest := b[i+len(key)+4:]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return ""
	}
	return string(rest[:j])
}

// jsonNumber is the first number value of key in b, as written.
func jsonNumber(b []byte, key string) string {
	i := bytes.Index(b, []byte(`"`+key+`":`))
	if i < 0 {
		return ""
	}
	rest := b[i+len(key)+3:]
	j := 0
	for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
		j++
	}
	return string(rest[:j])
}

// DrillRotateKeys puts new versions of the JWT secret and of the web
// certificates in the stand-in (serve process pid), as a `pulumi up` with a
// new jwtSecret and a certificate renewal do, and makes one api instance
// read them (SIGHUP, as `systemctl reload` and conduit's own minute do):
// tokens signed before must keep working everywhere, tokens of the new key
// must work on the instances that have not read it yet, and the web tier
// must serve the renewed certificate.
func (m *Model) DrillRotateKeys(state State, pid int, suite func() error, out io.Writer) error {
	c, err := m.internetClient(state)
	if err != nil {
		return err
	}
	call := func(method, path, token, body string) (int, []byte, error) {
		req, err := http.NewRequest(method, m.Entry+path, strings.NewReader(body))
		if err != nil {
			return 0, nil, err
		}
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("Authorization", "Token "+token)
		}
		resp, err := c.Do(req)
		if err != nil {
			return 0, nil, err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b, nil
	}
	name := fmt.Sprintf("keys%d", time.Now().UnixNano()%1_000_000)
	login := fmt.Sprintf(`{"user":{"email":"%s@example.com","password":"rotate-drill-1"}}`, name)
	st, b, err := call("POST", "/api/users", "", fmt.Sprintf(`{"user":{"username":%q,"email":"%s@example.com","password":"rotate-drill-1"}}`, name, name))
	if err != nil || st != http.StatusCreated {
		return fmt.Errorf("drill: register: %d %s %v", st, b, err)
	}
	before := jsonField(b, "token")
	oldKid := tokenKid(before)
	servedBefore := m.servedSerial(state)

	if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
		return fmt.Errorf("drill: signal the stand-ins: %w", err)
	}
	time.Sleep(300 * time.Millisecond)
	var reloaded []string
	apiReloaded := false
	for _, h := range m.Hosts {
		// One api instance reads the new key (the first that runs: an
		// earlier drill may have stopped one); the others must learn it from
		// the tokens they meet. Every web instance with a certificate.
		switch {
		case h.Tier == API && !apiReloaded:
			if err := reloadConduit(m.Namespace(h.Name)); errors.Is(err, errNoConduit) {
				continue
			} else if err != nil {
				return err
			}
			apiReloaded = true
		case h.Tier == Web && len(m.AWS.WebTLS) > 0:
			if err := reloadConduit(m.Namespace(h.Name)); err != nil {
				return err
			}
		default:
			continue
		}
		reloaded = append(reloaded, h.Name)
	}
	if !apiReloaded {
		return fmt.Errorf("drill: %w in any api instance", errNoConduit)
	}
	var after string
	for range 40 {
		time.Sleep(250 * time.Millisecond)
		st, b, err := call("POST", "/api/users/login", "", login)
		if err == nil && st == http.StatusOK {
			if tok := jsonField(b, "token"); tokenKid(tok) != oldKid {
				after = tok
				break
			}
		}
	}
	if after == "" {
		return fmt.Errorf("drill: no instance signed with the new JWT key after %v read it", reloaded)
	}
	for _, tok := range []string{before, after} {
		for i := range 20 {
			if st, b, err := call("GET", "/api/user", tok, ""); err != nil || st != http.StatusOK {
				which := map[bool]string{true: "before", false: "after"}[tok == before]
				return fmt.Errorf("drill: a token signed %s the rotation was refused (request %d): %d %s %v", which, i+1, st, b, err)
			}
		}
	}
	if err := suite(); err != nil {
		return fmt.Errorf("drill: after the keys' rotation: %w", err)
	}
	renewed := ""
	if len(m.AWS.WebTLS) > 0 {
		if servedAfter := m.servedSerial(state); servedAfter == servedBefore || servedAfter == "" {
			return fmt.Errorf("drill: the web tier still serves certificate %s after its renewal was read", servedBefore)
		}
		renewed = "; the renewed web certificate is served"
	}
	fmt.Fprintf(out, "drill: JWT secret rotated (kid %s → %s; %v read it at once): tokens of both keys accepted 20 times each by every instance, the suite passed%s\n",
		oldKid, tokenKid(after), reloaded, renewed)
	return nil
}

// tokenKid is the kid of a JWT's header.
func tokenKid(token string) string {
	head, _, _ := strings.Cut(token, ".")
	raw, err := base64.RawURLEncoding.DecodeString(head)
	if err != nil {
		return ""
	}
	return jsonField(raw, "kid")
}

// servedSerial is the serial of the certificate the entry serves ("" when
// it serves none).
func (m *Model) servedSerial(state State) string {
	u, err := url.Parse(m.Entry)
	if err != nil || u.Scheme != "https" {
		return ""
	}
	conn, err := dialIn(context.Background(), m.Namespace("internet"), u.Host+":443")
	if err != nil {
		return ""
	}
	defer conn.Close()
	tc := tls.Client(conn, &tls.Config{InsecureSkipVerify: true}) // the serial is what is compared, not trust
	if err := tc.Handshake(); err != nil {
		return ""
	}
	return tc.ConnectionState().PeerCertificates[0].SerialNumber.String()
}

// reloadConduit sends SIGHUP to the conduit server running in namespace ns
// (what `systemctl reload conduit` sends).
func reloadConduit(ns string) error {
	pids, err := exec.Command("ip", "netns", "pids", ns).Output()
	if err != nil {
		return fmt.Errorf("ip netns pids %s: %w", ns, err)
	}
	for _, f := range bytes.Fields(pids) {
		pid, err := strconv.Atoi(string(f))
		if err != nil {
			continue
		}
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		argv := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
		for i, a := range argv {
			if filepath.Base(a) == "conduit" && i+1 < len(argv) && (argv[i+1] == "api" || argv[i+1] == "web") {
				return syscall.Kill(pid, syscall.SIGHUP)
			}
		}
	}
	return fmt.Errorf("%w in %s", errNoConduit, ns)
}

// errNoConduit is a namespace without a conduit server (a stopped host).
var errNoConduit = errors.New("no conduit server runs")

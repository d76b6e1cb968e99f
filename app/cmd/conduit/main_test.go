package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// syncBuffer is a goroutine-safe stdout for run.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type instance struct {
	web, admin string
	logs       *syncBuffer // its log records (stderr)
	cancel     context.CancelFunc
	done       chan error
}

// start runs `conduit local` on free loopback ports with dataDir.
func start(t *testing.T, dataDir string, env map[string]string) *instance {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out := &syncBuffer{}
	inst := &instance{cancel: cancel, done: make(chan error, 1), logs: &syncBuffer{}}
	args := []string{"local", "--admin-addr", "127.0.0.1:0", "--data-dir", dataDir}
	if env["CONDUIT_WEB_ADDR"] == "" {
		args = append(args, "--web-addr", "127.0.0.1:0")
	}
	go func() { inst.done <- run(ctx, args, environ(env), out, inst.logs) }()
	webRE := regexp.MustCompile(`serving http://([0-9.:]+)/`)
	adminRE := regexp.MustCompile(`admin listening on http://([0-9.:]+)`)
	var early error
	require.Eventually(t, func() bool {
		select {
		case early = <-inst.done:
			return true
		default:
		}
		return webRE.MatchString(out.String()) && adminRE.MatchString(out.String())
	}, 30*time.Second, 20*time.Millisecond, "conduit local did not start: %s", out.String())
	require.NoError(t, early, "conduit local exited")
	inst.web = webRE.FindStringSubmatch(out.String())[1]
	inst.admin = adminRE.FindStringSubmatch(out.String())[1]
	t.Cleanup(func() { inst.stop(t) })
	return inst
}

// environ turns a map into KEY=value pairs, as os.Environ.
func environ(env map[string]string) []string {
	var out []string
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	return out
}

func (i *instance) stop(t *testing.T) {
	t.Helper()
	if i.cancel == nil {
		return
	}
	i.cancel()
	i.cancel = nil
	select {
	case err := <-i.done:
		assert.NoError(t, err, "graceful shutdown")
	case <-time.After(20 * time.Second):
		t.Fatal("conduit did not shut down within 20s")
	}
}

func post(t *testing.T, url, token, body string) (int, string) {
	req, _ := http.NewRequest("POST", url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Token "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

var tokenRE = regexp.MustCompile(`"token":"([^"]+)"`)
var slugRE = regexp.MustCompile(`"slug":"([^"]+)"`)

func TestShutdownLosesNoAcknowledgedWrite(t *testing.T) {
	dir := t.TempDir()
	// One account writes as fast as it can: its article quota is off.
	inst := start(t, dir, map[string]string{"CONDUIT_QUOTA_ARTICLES": "off"})
	base := "http://" + inst.web
	st, body := post(t, base+"/api/users", "", `{"user":{"username":"writer","email":"writer@example.com","password":"correct-horse-1"}}`)
	require.Equal(t, http.StatusCreated, st, body)
	token := tokenRE.FindStringSubmatch(body)[1]

	// Writers post articles until the server goes away; every 201 counts.
	var (
		mu    sync.Mutex
		acked []string
		wg    sync.WaitGroup
		stop  = make(chan struct{})
	)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				st, body := post(t, base+"/api/articles", token, fmt.Sprintf(`{"article":{"title":"w%d n%d","description":"d","body":"b"}}`, w, n))
				if st == 0 {
					return // connection refused: the server has stopped
				}
				if st == http.StatusCreated {
					mu.Lock()
					acked = append(acked, slugRE.FindStringSubmatch(body)[1])
					mu.Unlock()
				}
			}
		}()
	}
	time.Sleep(700 * time.Millisecond)
	inst.stop(t) // shut down while the writers are mid-flight
	close(stop)
	wg.Wait()
	require.NotEmpty(t, acked)

	again := start(t, dir, nil)
	for _, slug := range acked {
		resp, err := http.Get("http://" + again.web + "/api/articles/" + slug)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusOK, resp.StatusCode, "acknowledged article %s survived the restart", slug)
	}
	t.Logf("%d acknowledged writes, all present after restart", len(acked))
}

func TestLocalModeMetricsAndEnvTwins(t *testing.T) {
	inst := start(t, t.TempDir(), map[string]string{"CONDUIT_WEB_ADDR": "127.0.0.1:0", "CONDUIT_WAF": "on"})
	base := "http://" + inst.web
	resp, err := http.Get(base + "/api/articles?tag=%3Cscript%3Ealert(1)%3C%2Fscript%3E")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusForbidden, resp.StatusCode, "the WAF is on in local mode")
	resp, err = http.Get(base + "/api/tags")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.NotEmpty(t, resp.Header.Get("X-Request-Id"))

	resp, err = http.Get("http://" + inst.admin + "/metrics")
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := string(b)
	assert.Contains(t, m, `conduit_waf_blocked_total{role="web",rule="949110"} 1`)
	assert.Contains(t, m, `conduit_http_requests_total{method="GET",role="api",route="GET /api/tags",status="2xx"} 1`)
	assert.Contains(t, m, `conduit_db_operation_duration_seconds_count{op="articles.tags",role="api"}`)
	assert.Regexp(t, `conduit_db_commands_total\{command="find",role="api"\} [1-9]`, m, "commands counted at the wire")
	assert.Contains(t, m, "go_goroutines")
}

// At any level the logs hold no email, password or hash (FerretDB logs
// its wire traffic at debug: it is kept out), and they do hold what an
// operator needs: failed sign-ins with the client's address. The embedded
// database is a socket in the data directory (one short enough for a
// socket's path: localdb's tests cover a longer one).
func TestLogsCarryNoCredentialsAtAnyLevel(t *testing.T) {
	dir, err := os.MkdirTemp("/tmp", "conduit-logs-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	inst := start(t, dir, map[string]string{"CONDUIT_LOG_LEVEL": "debug"})
	base := "http://" + inst.web
	st, body := post(t, base+"/api/users", "", `{"user":{"username":"secretive","email":"secretive@example.com","password":"hunter2-hunter2-x"}}`)
	require.Equal(t, http.StatusCreated, st, body)
	st, _ = post(t, base+"/api/users/login", "", `{"user":{"email":"secretive@example.com","password":"wrong-wrong-wrong"}}`)
	require.Equal(t, http.StatusUnauthorized, st)
	st, _ = post(t, base+"/api/users/login", "", `{"user":{"email":"secretive@example.com","password":"hunter2-hunter2-x"}}`)
	require.Equal(t, http.StatusOK, st)
	fi, err := os.Stat(filepath.Join(dir, "ferretdb", "mongodb.sock"))
	require.NoError(t, err, "local mode's database is a Unix socket in the data directory")
	assert.NotZero(t, fi.Mode()&os.ModeSocket)
	inst.stop(t)
	logs := inst.logs.String()
	require.Contains(t, logs, `"level":"DEBUG"`, "debug logging was on")
	for _, secret := range []string{"secretive@example.com", "hunter2-hunter2-x", "wrong-wrong-wrong", "$2a$"} {
		assert.NotContains(t, logs, secret)
	}
	assert.Contains(t, logs, `"msg":"sign-in failed"`)
	assert.Contains(t, logs, `"client":"127.0.0.1"`)
}

const arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:webstack/dev/jwt-AbCdEf"

func TestBadInvocationsFailClearly(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{nil, "usage: conduit"},
		{[]string{"db"}, `unknown role "db"`},
		{[]string{"web", "--waf", "maybe"}, "waf mode"},
		{[]string{"web", "--upstream", "not a url"}, "not an absolute URL"},
		{[]string{"api", "--db-host", "x.docdb.amazonaws.com", "--jwt-secret-arn", arn}, "needs --db-secret-arn"},
		{[]string{"api"}, "needs --jwt-secret-arn"},
		{[]string{"api", "--jwt-secret", "short"}, "use at least 32"},
		{[]string{"api", "--db-port", "70000", "--jwt-secret-arn", arn}, "--db-port (CONDUIT_DB_PORT)"},
		{[]string{"api", "--db-secret-arn", "arn:aws:s3:::bucket", "--jwt-secret-arn", arn}, "not a Secrets Manager secret ARN"},
		{[]string{"local", "--log-level", "loud"}, "--log-level"},
		{[]string{"web", "--max-body-bytes", "1e6"}, "--max-body-bytes"},
		{[]string{"web", "extra"}, "unexpected arguments"},
	}
	for _, tt := range tests {
		env := []string{"AWS_REGION=us-east-1", "AWS_EC2_METADATA_DISABLED=true"}
		err := run(context.Background(), tt.args, env, io.Discard, io.Discard)
		require.Error(t, err, "run(%q)", tt.args)
		assert.Contains(t, err.Error(), tt.want, "run(%q)", tt.args)
	}
}

func TestSettingsComeFromEnvironmentTwinsAndUnknownOnesAreRefused(t *testing.T) {
	s, err := parseSettings("api", []string{"--db-port", "27018"}, []string{
		"CONDUIT_DB_HOST=db.cluster-x.us-east-1.docdb.amazonaws.com", "CONDUIT_DB_PORT=1", "CONDUIT_DB_SECRET_ARN=" + arn,
		"CONDUIT_JWT_SECRET_ARN=" + arn, "CONDUIT_CORS_ORIGINS=https://a.example, https://b.example", "PATH=/bin",
	}, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, 27018, s.DBPort, "the flag wins over its twin")
	assert.Equal(t, "db.cluster-x.us-east-1.docdb.amazonaws.com", s.DBHost)
	assert.Equal(t, []string{"https://a.example", "https://b.example"}, s.CORSOrigins)
	assert.Equal(t, int64(1<<20), s.MaxBodyBytes, "default")

	_, err = parseSettings("web", nil, []string{"CONDUIT_UPSTREM=http://x:1", "CONDUIT_DB_HOST=x"}, io.Discard)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "CONDUIT_UPSTREM is not a setting of conduit web")
	assert.Contains(t, err.Error(), "CONDUIT_DB_HOST is not a setting of conduit web", "every problem at once")

	var out bytes.Buffer
	require.NoError(t, run(context.Background(), []string{"web", "--check-config"}, []string{"CONDUIT_WAF=detect"}, &out, io.Discard))
	assert.Equal(t, "conduit web: settings OK\n", out.String())
}

package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
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
	cancel     context.CancelFunc
	done       chan error
}

// start runs `conduit local` on free loopback ports with dataDir.
func start(t *testing.T, dataDir string, env map[string]string) *instance {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out := &syncBuffer{}
	inst := &instance{cancel: cancel, done: make(chan error, 1)}
	getenv := func(k string) string { return env[k] }
	args := []string{"local", "--admin-addr", "127.0.0.1:0", "--data-dir", dataDir}
	if env["CONDUIT_WEB_ADDR"] == "" {
		args = append(args, "--web-addr", "127.0.0.1:0")
	}
	go func() { inst.done <- run(ctx, args, getenv, out, io.Discard) }()
	webRE := regexp.MustCompile(`serving http://([0-9.:]+)/api`)
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
	inst := start(t, dir, nil)
	base := "http://" + inst.web
	st, body := post(t, base+"/api/users", "", `{"user":{"username":"writer","email":"writer@example.com","password":"password1"}}`)
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
	assert.Contains(t, m, `conduit_http_requests_total{method="GET",role="api",route="GET /api/tags",status="200"} 1`)
	assert.Contains(t, m, `conduit_db_operation_duration_seconds_count{op="tags.find",role="api"}`)
	assert.Contains(t, m, "go_goroutines")
}

func TestBadInvocationsFailClearly(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{nil, "usage: conduit"},
		{[]string{"db"}, `unknown role "db"`},
		{[]string{"web", "--waf", "maybe"}, "waf mode"},
		{[]string{"web", "--upstream", "not a url"}, "not an absolute URL"},
		{[]string{"api", "--db-host", "x.docdb.amazonaws.com"}, "needs --db-secret-arn"},
		{[]string{"local", "--log-level", "loud"}, "--log-level"},
	}
	for _, tt := range tests {
		env := map[string]string{"AWS_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}
		err := run(context.Background(), tt.args, func(k string) string { return env[k] }, io.Discard, io.Discard)
		require.Error(t, err, "run(%q)", tt.args)
		assert.Contains(t, err.Error(), tt.want, "run(%q)", tt.args)
	}
}

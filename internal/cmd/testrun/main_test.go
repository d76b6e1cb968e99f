package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestProcessGroupIsReadAfterTheCommandsLastParenthesis(t *testing.T) {
	for _, tc := range []struct {
		stat string
		want int
	}{
		{"4242 (compile) R 4200 4100 4100 0 -1", 4100},
		{"4242 (a (weird) name) S 1 77 77 0", 77},
		{"4242 (two words) S 1 9 9", 9},
		{"garbage", -1},
		{"1 (x) S", -1},
	} {
		assert.Equal(t, tc.want, processGroup([]byte(tc.stat)), tc.stat)
	}
}

func TestProcessesFindsThisTestsOwnGroup(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc here")
	}
	stat, err := os.ReadFile("/proc/self/stat")
	require.NoError(t, err)
	var found bool
	for _, argv := range processes(processGroup(stat)) {
		if filepath.Base(argv[0]) == filepath.Base(os.Args[0]) {
			found = true
		}
	}
	assert.True(t, found, "the test binary is in its own process group")
}

func TestDescribeSaysWhatIsCompilingLinkingAndRunning(t *testing.T) {
	for _, tc := range []struct {
		name  string
		procs [][]string
		want  []string
	}{
		{"compiles", [][]string{
			{"/usr/local/go/bin/go", "vet", "./..."},
			{"/usr/local/go/pkg/tool/linux_amd64/compile", "-o", "/tmp/b1/_pkg_.a", "-p", "github.com/pulumi/pulumi-aws/sdk/v6/go/aws/wafv2", "-c=2"},
			{"/usr/local/go/pkg/tool/linux_amd64/compile", "-o", "/tmp/b2/_pkg_.a", "-p", "github.com/pulumi/pulumi-aws/sdk/v6/go/aws/ec2"},
		}, []string{"compiling github.com/pulumi/pulumi-aws/sdk/v6/go/aws/wafv2, github.com/pulumi/pulumi-aws/sdk/v6/go/aws/ec2"}},
		{"links a test and a program", [][]string{
			{"/usr/local/go/pkg/tool/linux_amd64/link", "-o", "/tmp/b001/store.test", "/tmp/b001/_pkg_.a"},
			{"/usr/local/go/pkg/tool/linux_amd64/link", "-o", "/tmp/b002/exe/a.out"},
		}, []string{"linking store.test, a program"}},
		{"tests and their browsers say nothing here", [][]string{
			{"/tmp/go-build1/b001/conduit.test", "-test.count=1"},
			{"/usr/lib/chromium/chromium", "--headless"},
		}, nil},
		{"installs and suites", [][]string{
			{"/usr/bin/apt-get", "install", "-y", "chromium"},
			{"/usr/bin/dpkg", "--unpack"},
			{"/usr/bin/node", "node_modules/.bin/newman", "run"},
			{"/usr/bin/qemu-aarch64", "dist/conduit-linux-arm64", "api"},
		}, []string{"installing Debian packages", "newman (the RealWorld suite)", "the arm64 release under qemu-user"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, describe(tc.procs))
		})
	}
}

// testJSON is go test -json output: a package with a passing test, a
// failing one with a failing and a passing subtest, a skipped package
// with no test files, and a build failure.
const testJSON = `{"Action":"start","Package":"webstack/a"}
{"Time":"2026-12-07T10:00:00Z","Action":"run","Package":"webstack/a","Test":"TestFine"}
{"Action":"output","Package":"webstack/a","Test":"TestFine","Output":"=== RUN   TestFine\n"}
{"Action":"output","Package":"webstack/a","Test":"TestFine","Output":"quiet chatter\n"}
{"Time":"2026-12-07T10:00:04Z","Action":"pass","Package":"webstack/a","Test":"TestFine","Elapsed":4.2}
{"Time":"2026-12-07T10:00:04Z","Action":"run","Package":"webstack/a","Test":"TestBroken"}
{"Action":"run","Package":"webstack/a","Test":"TestBroken/bad_case"}
{"Action":"output","Package":"webstack/a","Test":"TestBroken/bad_case","Output":"    a_test.go:9: want 2, got 3\n"}
{"Action":"fail","Package":"webstack/a","Test":"TestBroken/bad_case","Elapsed":0.1}
{"Action":"run","Package":"webstack/a","Test":"TestBroken/good_case"}
{"Action":"output","Package":"webstack/a","Test":"TestBroken/good_case","Output":"    --- PASS: TestBroken/good_case\n"}
{"Action":"pass","Package":"webstack/a","Test":"TestBroken/good_case","Elapsed":0.1}
{"Action":"output","Package":"webstack/a","Test":"TestBroken","Output":"--- FAIL: TestBroken (0.20s)\n"}
{"Action":"fail","Package":"webstack/a","Test":"TestBroken","Elapsed":0.2}
{"Action":"output","Package":"webstack/a","Output":"FAIL\n"}
{"Action":"fail","Package":"webstack/a","Elapsed":4.5}
{"Action":"output","Package":"webstack/empty","Output":"?   \twebstack/empty\t[no test files]\n"}
{"Action":"skip","Package":"webstack/empty","Elapsed":0}
{"ImportPath":"webstack/b [webstack/b.test]","Action":"build-output","Output":"b/b_test.go:3:2: undefined: nope\n"}
{"ImportPath":"webstack/b [webstack/b.test]","Action":"build-fail"}
{"Action":"output","Package":"webstack/b","Output":"FAIL\twebstack/b [build failed]\n"}
{"Action":"fail","Package":"webstack/b","Elapsed":0}
`

func TestTheReportSaysEachPackageAndPrintsWhatFailed(t *testing.T) {
	var out bytes.Buffer
	r := &runner{out: &out, start: time.Now()}
	rep := newTestReport(r, "unit")
	rep.read(strings.NewReader(testJSON))
	said := out.String()
	assert.Contains(t, said, "unit: FAIL webstack/a (4.5s)")
	assert.Contains(t, said, "unit: FAIL webstack/b (0.0s)")
	assert.NotContains(t, said, "webstack/empty", "packages with no tests are not listed")
	require.True(t, rep.failed())

	out.Reset()
	rep.printFailures(&out)
	failures := out.String()
	assert.Contains(t, failures, "--- webstack/a TestBroken:")
	assert.Contains(t, failures, "a_test.go:9: want 2, got 3", "the failed subtest's output")
	assert.Contains(t, failures, "--- FAIL: TestBroken (0.20s)")
	assert.Equal(t, 1, strings.Count(failures, "want 2, got 3"), "printed once, under its parent")
	assert.NotContains(t, failures, "quiet chatter", "a passed test's output stays in the log")
	assert.Contains(t, failures, "--- build of webstack/b [webstack/b.test] failed:")
	assert.Contains(t, failures, "undefined: nope")
	assert.Equal(t, []string{"   4.2s a TestFine"}, rep.slowest(8, 3*time.Second))
}

func TestTheReportKnowsWhatIsRunning(t *testing.T) {
	r := &runner{out: &bytes.Buffer{}, start: time.Now()}
	rep := newTestReport(r, "unit")
	at := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	rep.event(event{Time: at, Action: "run", Package: "webstack/app/cmd/conduit", Test: "TestBrowserFlows"})
	rep.event(event{Time: at.Add(5 * time.Second), Action: "run", Package: "webstack/app/store", Test: "TestQuotas"})
	rep.event(event{Time: at.Add(5 * time.Second), Action: "run", Package: "webstack/app/store", Test: "TestQuotas/sub"})
	assert.Equal(t, "running app/cmd/conduit TestBrowserFlows (40s), app/store TestQuotas (35s)", rep.running(at.Add(40*time.Second)))
	rep.event(event{Action: "pass", Package: "webstack/app/cmd/conduit", Test: "TestBrowserFlows", Elapsed: 40})
	assert.Equal(t, "running app/store TestQuotas (35s)", rep.running(at.Add(40*time.Second)))
}

// steps runs steps made of shell lines and returns what was said.
func steps(t *testing.T, ctx context.Context, every time.Duration, list ...*step) (string, error) {
	t.Helper()
	return stepsWith(t, ctx, &runner{every: every}, list...)
}

func stepsWith(t *testing.T, ctx context.Context, r *runner, list ...*step) (string, error) {
	t.Helper()
	var out syncBuffer
	r.out, r.logDir, r.env, r.title = &out, t.TempDir(), os.Environ(), "make test"
	if r.every == 0 {
		r.every = time.Minute
	}
	err := r.run(ctx, list)
	return out.String(), err
}

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

func sh(name, script string, needs ...string) *step {
	return &step{name: name, about: name, argv: []string{"sh", "-c", script}, needs: needs}
}

func TestStepsRunAfterWhatTheyNeedAndAFailureStopsOnlyWhatNeedsIt(t *testing.T) {
	dir := t.TempDir()
	mark := func(n string) string { return "touch " + filepath.Join(dir, n) }
	saw := func(n string) string { return "test -e " + filepath.Join(dir, n) }
	out, err := steps(t, context.Background(), time.Minute,
		sh("first", "sleep 0.2; "+mark("first")),
		sh("second", saw("first")+" && "+mark("second"), "first"),
		sh("broken", "echo what went wrong; exit 3"),
		sh("after-broken", mark("never"), "broken"),
		sh("alongside", mark("alongside")),
	)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "broken, after-broken")
	assert.FileExists(t, filepath.Join(dir, "second"), "second ran after first, and saw its work")
	assert.FileExists(t, filepath.Join(dir, "alongside"))
	assert.NoFileExists(t, filepath.Join(dir, "never"))
	assert.Contains(t, out, "FAIL broken")
	assert.Contains(t, out, "    what went wrong", "a failed step's output is printed")
	assert.Contains(t, out, "skip after-broken: not run: broken did not pass")
	assert.Regexp(t, `(?m)^  second +\d+s +(\d+s|-)  ok$`, out, "the summary has each step's time and CPU")
}

func TestASilentStepIsDescribedBeforeTheSilenceIsLong(t *testing.T) {
	out, err := steps(t, context.Background(), 300*time.Millisecond, sh("quiet", "sleep 1.5"), sh("later", "true", "quiet"))
	require.NoError(t, err)
	assert.Contains(t, out, "… quiet (")
	assert.Contains(t, out, "… waiting: later (after quiet)")
}

func TestAnInterruptStopsEveryRunningStep(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	began := time.Now()
	out, err := steps(t, ctx, time.Minute, sh("long", "sleep 30"), sh("child", "sh -c 'sleep 30'"), sh("next", "true", "long"))
	require.Error(t, err)
	assert.Less(t, time.Since(began), 10*time.Second, "the steps' process groups were stopped")
	assert.Contains(t, out, "FAIL long")
	assert.Regexp(t, `(?m)^  next .*skipped: not run: interrupted$`, out)
}

func TestAStepThatIgnoresTheInterruptIsKilled(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	began := time.Now()
	out, err := stepsWith(t, ctx, &runner{grace: 500 * time.Millisecond}, sh("deaf", `trap "" TERM; sleep 30 & wait; sleep 30`))
	require.Error(t, err)
	assert.Less(t, time.Since(began), 10*time.Second)
	assert.Contains(t, out, "killing them")

	ctx, cancel = context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	again := make(chan os.Signal, 1)
	go func() { <-ctx.Done(); time.Sleep(200 * time.Millisecond); again <- os.Interrupt }()
	began = time.Now()
	out, err = stepsWith(t, ctx, &runner{grace: time.Hour, again: again}, sh("deaf", `trap "" TERM; sleep 30 & wait; sleep 30`))
	require.Error(t, err)
	assert.Less(t, time.Since(began), 10*time.Second, "a second interrupt kills at once")
	assert.Contains(t, out, "interrupted again")
}

// A step that says it cannot run here (exit 77, the reason first) is
// reported as skipped with its reason, not as passed, and fails nothing.
func TestAStepThatCannotRunHereSaysWhy(t *testing.T) {
	out, err := steps(t, context.Background(), time.Minute, sh("suite", "echo 'suite: SKIPPED — no collection at x'; exit 77"), sh("after", "true", "suite"))
	require.NoError(t, err)
	assert.Contains(t, out, "skip suite: suite: SKIPPED — no collection at x")
	assert.Regexp(t, `(?m)^  suite .*skipped: suite: SKIPPED`, out)
	assert.Contains(t, out, "skip after: suite was skipped")
}

// The test report and the heartbeat each take the other's lock: never one
// inside the other, or a package ending while the heartbeat asks what is
// running stops make test for good.
func TestTheReportAndTheHeartbeatNeverWaitForEachOther(t *testing.T) {
	r := &runner{out: &syncBuffer{}, start: time.Now()}
	rep := newTestReport(r, "unit")
	s := &step{name: "unit", state: "running", tests: rep, started: time.Now()}
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		for i := range 2000 {
			pkg := "webstack/p" + strings.Repeat("x", i%7)
			rep.event(event{Time: time.Now(), Action: "run", Package: pkg, Test: "TestA"})
			rep.event(event{Action: "pass", Package: pkg, Test: "TestA", Elapsed: 0.1})
			rep.event(event{Action: "pass", Package: pkg, Elapsed: 0.1})
		}
	}()
	go func() {
		for {
			select {
			case <-finished:
				return
			default:
			}
			r.mu.Lock()
			r.status([]*step{s})
			r.mu.Unlock()
		}
	}()
	select {
	case <-finished:
	case <-time.After(20 * time.Second):
		t.Fatal("the report and the heartbeat wait for each other") // (the stuck goroutines stay behind)
	}
}

func TestTestStepsRunPinned(t *testing.T) {
	env := pinnedEnv([]string{"PATH=/usr/bin", "HOME=/root", "TZ=America/New_York", "LANG=de_DE.UTF-8", "LC_TIME=fr_FR",
		"HTTPS_PROXY=http://proxy:3128", "http_proxy=http://proxy:3128", "CONDUIT_DB_URI=mongodb://x", "AWS_PROFILE=prod",
		"PULUMI_DRY_RUN=true", "GOPROXY=https://proxy.golang.org", "GOFLAGS=-mod=mod", "GODEBUG=x509sha1=1", "GOEXPERIMENT=arenas",
		"TMPDIR=/a/very/long/temporary/directory/that/unix/sockets/would/not/fit/in"}, "/usr/local/go")
	assert.ElementsMatch(t, []string{"PATH=/usr/local/go/bin:/usr/bin", "HOME=/root", "GOFLAGS=-mod=mod",
		"TZ=UTC", "LANG=C.UTF-8", "LC_ALL=C.UTF-8", "GOPROXY=off", "CI=" + ciOr("true")}, env)
	net := networkEnv([]string{"PATH=/usr/bin", "HTTPS_PROXY=http://proxy:3128", "GOEXPERIMENT=arenas"}, env)
	assert.Contains(t, net, "HTTPS_PROXY=http://proxy:3128", "steps that fetch keep the caller's proxy")
	assert.NotContains(t, net, "GOEXPERIMENT=arenas", "but build what the others build")
	assert.Equal(t, "PATH=/usr/local/go/bin:/usr/bin", lastValue(net, "PATH"), "and the pinned go")
}

func ciOr(def string) string {
	if v := os.Getenv("CI"); v != "" {
		return v
	}
	return def
}

// lastValue is what os/exec gives a child for key: the last entry.
func lastValue(env []string, key string) string {
	v := ""
	for _, kv := range env {
		if strings.HasPrefix(kv, key+"=") {
			v = kv
		}
	}
	return v
}

// The plans' order: whatever uses a program deps installs (chromium,
// cloud-init, shellcheck, npm, qemu) runs after deps, the tests after the
// compile they share, and nothing needs a step after it.
func TestThePlansRunEachStepAfterWhatItUses(t *testing.T) {
	for _, set := range []string{"test", "release"} {
		list, err := plan(set, true, []string{".", "./app/web", "./network"})
		require.NoError(t, err)
		seen := map[string]*step{}
		after := func(s *step, name string) bool {
			var walk func(*step) bool
			walk = func(s *step) bool {
				for _, n := range s.needs {
					if n == name || walk(seen[n]) {
						return true
					}
				}
				return false
			}
			return walk(s)
		}
		for _, s := range list {
			for _, n := range s.needs {
				require.Contains(t, seen, n, "%s: %s needs %s, which comes after it", set, s.name, n)
			}
			seen[s.name] = s
		}
		uses := map[string][]string{
			"test":    {"tools", "actionlint", "unit", "unit-app", "postman"},
			"release": {"smoke", "twin"},
		}[set]
		for _, name := range uses {
			require.Contains(t, seen, name)
			assert.True(t, after(seen[name], "deps"), "%s: %s uses what deps installs", set, name)
		}
		if set == "test" {
			for _, name := range []string{"staticcheck", "unit"} {
				assert.True(t, after(seen[name], "vet"), "%s shares vet's compile instead of racing it", name)
			}
			for _, name := range []string{"unit-app", "postman", "vet"} {
				assert.True(t, after(seen[name], "vet-app"), "%s shares vet-app's compile instead of racing it", name)
			}
			assert.Equal(t, []string{"./app/web"}, seen["unit-app"].argv[len(seen["unit-app"].argv)-1:], "the app's packages")
			assert.Equal(t, []string{".", "./network"}, seen["unit"].argv[len(seen["unit"].argv)-2:], "and the rest")
		}
	}
	list, err := plan("release", false, nil)
	require.NoError(t, err)
	assert.Contains(t, list[len(list)-1].skip, "sudo make test-release", "not root: the twin says how to run it")
	_, err = plan("everything", false, nil)
	assert.Error(t, err)
}

// The packages the unit steps test are what ./... means to go: none left
// out, none twice.
func TestPackagesAreWhatGoListFinds(t *testing.T) {
	root := filepath.Join("..", "..", "..")
	got, err := packages(root)
	require.NoError(t, err)
	cmd := exec.Command("go", "list", "-f", "{{.Dir}}", "./...")
	cmd.Dir = root
	out, err := cmd.Output()
	require.NoError(t, err)
	abs, err := filepath.Abs(root)
	require.NoError(t, err)
	var want []string
	for _, dir := range strings.Fields(string(out)) {
		rel, err := filepath.Rel(abs, dir)
		require.NoError(t, err)
		if rel == "." {
			want = append(want, ".")
		} else {
			want = append(want, "./"+filepath.ToSlash(rel))
		}
	}
	assert.ElementsMatch(t, want, got)
}

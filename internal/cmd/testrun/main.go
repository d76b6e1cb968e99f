// Command testrun is `make test` (and `make test-release`): every check CI
// runs, as steps that start as soon as what they need is done, so that
// what waits on the network (apt-get, npm) overlaps the compile, and
// staticcheck and the RealWorld suite overlap the unit tests. It says what
// it is doing at least every 30 s (which package is compiling or linking,
// which tests are running and for how long), keeps each step's whole
// output in .test-logs/<step>.log, prints a failed step's output, and ends
// with each step's time and the slowest tests.
//
//	go run ./internal/cmd/testrun [-log-dir .test-logs] test|release
//
// Test steps run pinned: TZ=UTC, LANG/LC_ALL=C.UTF-8, no proxy, no
// CONDUIT_*, PULUMI_* or AWS_* settings from the caller's shell, Go's
// module proxy off (the compile step fetched every module), and the same
// go first on PATH as the one running the steps.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "testrun:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("testrun", flag.ContinueOnError)
	logDir := fs.String("log-dir", ".test-logs", "where each step's whole output goes")
	every := fs.Duration("every", 20*time.Second, "say what is running after this long without a line")
	goroot := fs.String("goroot", "", "the Go installation make runs (its bin goes first on the steps' PATH)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("usage: testrun [flags] test|release")
	}
	steps, err := plan(fs.Arg(0), os.Getuid() == 0)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(*logDir, 0o755); err != nil {
		return err
	}
	r := &runner{out: out, logDir: *logDir, every: *every, env: pinnedEnv(os.Environ(), *goroot), title: "make " + map[string]string{"test": "test", "release": "test-release"}[fs.Arg(0)]}
	return r.run(ctx, steps)
}

// plan is the steps of a set: test (make test) or release (make
// test-release: the arm64 release under qemu-user and, as root, the dev
// stack's twin).
func plan(set string, root bool) ([]*step, error) {
	gotest := []string{"go", "test", "-json", "-vet=off", "-count=1", "./..."}
	switch set {
	case "test":
		return []*step{
			{name: "deps", about: "install what the tests need (scripts/deps.sh)", argv: []string{"bash", "scripts/deps.sh", "test"}, network: true},
			{name: "tools", about: "newman and axe-core from npm", argv: []string{"make", "--no-print-directory", "tools"}, needs: []string{"deps"}, network: true},
			{name: "gofmt", about: "formatting", argv: []string{"make", "--no-print-directory", "check-fmt"}},
			{name: "actionlint", about: "the CI workflow", argv: []string{"go", "tool", "actionlint"}, needs: []string{"deps"}, network: true},
			{name: "vet", about: "compile every package and vet it", argv: []string{"go", "vet", "./..."}, network: true},
			{name: "staticcheck", about: "staticcheck on every package", argv: []string{"go", "tool", "staticcheck", "./..."}, needs: []string{"vet"}},
			{name: "unit", about: "every Go test (the browser suites, the fault workload)", argv: gotest, needs: []string{"vet", "deps", "tools"}, gotest: true},
			{name: "postman", about: "the RealWorld Postman suite through the WAF", argv: []string{"bash", "scripts/postman.sh"}, needs: []string{"vet", "tools"}},
		}, nil
	case "release":
		twin := &step{name: "twin", about: "the dev stack's twin (namespaces, nftables, the arm64 release)", argv: []string{"make", "--no-print-directory", "twin", "STACK=dev"}, needs: []string{"smoke"}}
		if !root {
			twin.skip = "the twin needs root (network namespaces, nftables); run: sudo make test-release"
		}
		return []*step{
			{name: "deps", about: "install what the release checks need", argv: []string{"bash", "scripts/deps.sh", "qemu-aarch64", "curl", "npm", "chromium"}, network: true},
			{name: "build", about: "the release: linux/arm64", argv: []string{"make", "--no-print-directory", "build"}, network: true},
			{name: "smoke", about: "the arm64 release's web and api roles under qemu-user", argv: []string{"bash", "scripts/release-smoke.sh"}, needs: []string{"deps", "build"}},
			twin,
		}, nil
	}
	return nil, fmt.Errorf("unknown set %q: test or release", set)
}

// pinnedEnv is the environment of the test steps: env without what a
// person's shell may carry into the tests, with the pins added.
func pinnedEnv(env []string, goroot string) []string {
	var out []string
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(k, "CONDUIT_"), strings.HasPrefix(k, "PULUMI_"), strings.HasPrefix(k, "AWS_"),
			strings.HasSuffix(strings.ToUpper(k), "_PROXY"),
			k == "TZ", k == "LANG", strings.HasPrefix(k, "LC_"), k == "GOPROXY", k == "CI":
			continue
		case k == "PATH" && goroot != "":
			kv = "PATH=" + filepath.Join(goroot, "bin") + string(os.PathListSeparator) + v
		}
		out = append(out, kv)
	}
	ci := os.Getenv("CI")
	if ci == "" {
		ci = "true" // a missing tool fails the tests instead of skipping them
	}
	return append(out, "TZ=UTC", "LANG=C.UTF-8", "LC_ALL=C.UTF-8", "GOPROXY=off", "CI="+ci)
}

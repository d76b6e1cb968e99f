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
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

func main() {
	// The first interrupt stops the steps (SIGTERM, then SIGKILL after a
	// while); another kills them at once.
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	ctx, cancel := context.WithCancel(context.Background())
	again := make(chan os.Signal, 1)
	go func() {
		<-sigs
		cancel()
		for s := range sigs {
			select {
			case again <- s:
			default:
			}
		}
	}()
	if err := run(ctx, os.Args[1:], os.Stdout, again); err != nil {
		fmt.Fprintln(os.Stderr, "testrun:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, out io.Writer, again <-chan os.Signal) error {
	flags := flag.NewFlagSet("testrun", flag.ContinueOnError)
	logDir := flags.String("log-dir", ".test-logs", "where each step's whole output goes")
	every := flags.Duration("every", 20*time.Second, "say what is running after this long without a line")
	goroot := flags.String("goroot", "", "the Go installation make runs (its bin goes first on the steps' PATH)")
	if err := flags.Parse(args); err != nil {
		return err
	}
	if flags.NArg() != 1 {
		return fmt.Errorf("usage: testrun [flags] test|release")
	}
	pkgs, err := packages(".")
	if err != nil {
		return err
	}
	steps, err := plan(flags.Arg(0), os.Getuid() == 0, pkgs)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(*logDir, 0o755); err != nil {
		return err
	}
	// Every step's temporary files go into one directory of this run's,
	// short (Unix socket paths have 108 bytes) and removed at the end:
	// nothing a test forgets stays behind for the next run.
	tmp, err := os.MkdirTemp(shortTemp(), "webstack-test-")
	if err != nil {
		return err
	}
	defer removeAll(tmp)
	r := &runner{out: out, logDir: *logDir, every: *every, env: append(pinnedEnv(os.Environ(), *goroot), "TMPDIR="+tmp), tmp: tmp, again: again, title: "make " + map[string]string{"test": "test", "release": "test-release"}[flags.Arg(0)]}
	return r.run(ctx, steps)
}

// plan is the steps of a set: test (make test) or release (make
// test-release: the arm64 release under qemu-user and, as root, the dev
// stack's twin). pkgs is the module's packages (./...), by directory.
//
// make test compiles about 400 packages, and on two cores the compile is
// most of its time. The app's packages (no Pulumi) compile first, so their
// tests (the browser suites, the fault workload: most of the tests' time)
// and the Postman suite run while the Pulumi SDK compiles for the rest.
func plan(set string, root bool, pkgs []string) ([]*step, error) {
	gotest := func(pkgs ...string) []string {
		return append([]string{"go", "test", "-json", "-vet=off", "-count=1"}, pkgs...)
	}
	switch set {
	case "test":
		var app, rest []string
		for _, p := range pkgs {
			if p == "./app" || strings.HasPrefix(p, "./app/") {
				app = append(app, p)
			} else {
				rest = append(rest, p)
			}
		}
		return []*step{
			{name: "deps", about: "install what the tests need (scripts/deps.sh)", argv: []string{"bash", "scripts/deps.sh", "test"}, network: true},
			{name: "tools", about: "newman and axe-core from npm", argv: []string{"make", "--no-print-directory", "tools"}, needs: []string{"deps"}, network: true},
			{name: "gofmt", about: "formatting", argv: []string{"make", "--no-print-directory", "check-fmt"}},
			{name: "actionlint", about: "the CI workflow", argv: []string{"go", "tool", "actionlint"}, needs: []string{"deps"}, network: true},
			{name: "vet-app", about: "compile the app's packages and vet them", argv: []string{"go", "vet", "./app/..."}, network: true, compile: true},
			{name: "unit-app", about: "the app's tests (the browser suites, the fault workload)", argv: gotest(app...), needs: []string{"vet-app", "deps", "tools"}, gotest: true},
			{name: "postman", about: "the RealWorld Postman suite through the WAF", argv: []string{"bash", "scripts/postman.sh"}, needs: []string{"vet-app", "tools"}},
			{name: "vet", about: "compile the program (the Pulumi SDK) and every other package, and vet them", argv: []string{"go", "vet", "./..."}, needs: []string{"vet-app"}, network: true, compile: true},
			{name: "staticcheck", about: "staticcheck on every package", argv: []string{"go", "tool", "staticcheck", "./..."}, needs: []string{"vet"}, network: true, compile: true},
			{name: "unit", about: "the program's, the tiers' and the tools' tests", argv: gotest(rest...), needs: []string{"vet", "deps"}, gotest: true},
		}, nil
	case "release":
		twin := &step{name: "twin", about: "the dev stack's twin (namespaces, nftables, the arm64 release)", argv: []string{"make", "--no-print-directory", "twin", "STACK=dev"}, needs: []string{"smoke"}}
		if !root {
			twin.skip = "the twin needs root (network namespaces, nftables); run: sudo make test-release"
		}
		return []*step{
			{name: "deps", about: "install what the release checks need", argv: []string{"bash", "scripts/deps.sh", "qemu-aarch64", "curl", "npm", "chromium"}, network: true},
			{name: "build", about: "the release: linux/arm64", argv: []string{"make", "--no-print-directory", "build"}, network: true, compile: true},
			{name: "smoke", about: "the arm64 release's web and api roles under qemu-user", argv: []string{"bash", "scripts/release-smoke.sh"}, needs: []string{"deps", "build"}},
			twin,
		}, nil
	}
	return nil, fmt.Errorf("unknown set %q: test or release", set)
}

// packages lists the module's packages as ./... means them: every
// directory under root holding a .go file, but testdata, node_modules and
// those starting with . or _ (and what is under them).
func packages(root string) ([]string, error) {
	var out []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path != root && (name == "testdata" || name == "node_modules" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_")) {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(name, ".go") {
			rel, err := filepath.Rel(root, filepath.Dir(path))
			if err != nil {
				return err
			}
			p := "./" + filepath.ToSlash(rel)
			if rel == "." {
				p = "."
			}
			if !slices.Contains(out, p) {
				out = append(out, p)
			}
		}
		return nil
	})
	return out, err
}

// pinnedEnv is the environment of the test steps: env without what a
// person's shell may carry into the tests, with the pins added.
func pinnedEnv(env []string, goroot string) []string {
	var out []string
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(k, "CONDUIT_"), strings.HasPrefix(k, "PULUMI_"), strings.HasPrefix(k, "AWS_"),
			strings.HasSuffix(strings.ToUpper(k), "_PROXY"), goDrift(k),
			k == "TZ", k == "LANG", strings.HasPrefix(k, "LC_"), k == "GOPROXY", k == "CI", k == "TMPDIR":
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

// goDrift tells whether k is a Go setting that changes what is compiled
// or how programs behave (a shell's GOEXPERIMENT or GODEBUG): dropped
// from every step, so all of them build, share and run one configuration.
func goDrift(k string) bool {
	return k == "GOEXPERIMENT" || k == "GODEBUG"
}

// shortTemp is /tmp when it can be written to, else the system's own.
func shortTemp() string {
	if f, err := os.CreateTemp("/tmp", "webstack-probe-"); err == nil {
		f.Close()
		os.Remove(f.Name())
		return "/tmp"
	}
	return os.TempDir()
}

// removeAll removes dir, making read-only directories in it (a module
// cache a test filled, say) writable first.
func removeAll(dir string) {
	_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			_ = os.Chmod(path, 0o700)
		}
		return nil
	})
	_ = os.RemoveAll(dir)
}

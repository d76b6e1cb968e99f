package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"
)

// event is one line of `go test -json` (cmd/test2json), with the build
// events go test adds (Go 1.24: build-output, build-fail, keyed by
// ImportPath).
type event struct {
	Time       time.Time
	Action     string
	Package    string
	ImportPath string
	Test       string
	Elapsed    float64
	Output     string
}

// testReport follows go test's events: it says each package's result as it
// ends, knows which tests are running, keeps the output of each test (to
// print a failed one's) and how long each took.
type testReport struct {
	r    *runner
	step string

	mu       sync.Mutex
	started  map[string]time.Time // running top-level tests, by "package Test"
	output   map[string][]string  // by "package Test" ("package" alone: the package's own)
	build    map[string][]string  // build output, by import path
	failures []string             // keys of failed tests, packages and builds, in order
	took     map[string]time.Duration
	finished chan struct{}
}

func newTestReport(r *runner, step string) *testReport {
	return &testReport{r: r, step: step, started: map[string]time.Time{}, output: map[string][]string{},
		build: map[string][]string{}, took: map[string]time.Duration{}, finished: make(chan struct{})}
}

// read consumes go test -json from rd until it ends.
func (t *testReport) read(rd io.Reader) {
	defer close(t.finished)
	sc := bufio.NewScanner(rd)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var e event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			// go test prints some things plainly (a panic before the
			// binary starts, a go command error): keep them as the
			// step's own output.
			t.mu.Lock()
			t.output[""] = append(t.output[""], sc.Text()+"\n")
			t.mu.Unlock()
			continue
		}
		t.event(e)
	}
	_, _ = io.Copy(io.Discard, rd)
}

func (t *testReport) event(e event) {
	// The runner's lock is taken after this one is let go, never inside
	// it: the runner holds its own while it asks what is running.
	if line := t.record(e); line != "" {
		t.r.say("%s", line)
	}
}

// record takes e into the report and returns the line to say, if any.
func (t *testReport) record(e event) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	key := e.Package
	if e.Test != "" {
		key += " " + e.Test
	}
	switch e.Action {
	case "build-output":
		t.build[e.ImportPath] = append(t.build[e.ImportPath], e.Output)
	case "build-fail":
		t.failures = append(t.failures, "build "+e.ImportPath)
	case "output":
		t.output[key] = append(t.output[key], e.Output)
	case "run":
		if !strings.Contains(e.Test, "/") {
			t.started[key] = e.Time
		}
	case "pass", "fail", "skip":
		delete(t.started, key)
		if e.Test != "" {
			if !strings.Contains(e.Test, "/") {
				t.took[key] = time.Duration(e.Elapsed * float64(time.Second))
			}
			if e.Action == "fail" {
				t.failures = append(t.failures, key)
			} else {
				delete(t.output, key) // a passing test's output is in the log
			}
			return ""
		}
		// A package ended.
		if e.Action == "fail" {
			t.failures = append(t.failures, key)
		}
		if e.Action != "skip" || len(t.output[key]) == 0 || !noTestFiles(t.output[key]) {
			return fmt.Sprintf("%s: %-4s %s (%.1fs)", t.step, map[string]string{"pass": "ok", "fail": "FAIL", "skip": "ok"}[e.Action], e.Package, e.Elapsed)
		}
	}
	return ""
}

func noTestFiles(out []string) bool {
	return len(out) > 0 && strings.Contains(out[len(out)-1], "[no test files]")
}

// failed tells whether any test, package or build failed.
func (t *testReport) failed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.failures) > 0
}

// running says which tests are running now, longest first.
func (t *testReport) running(now time.Time) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	keys := make([]string, 0, len(t.started))
	for k := range t.started {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return t.started[keys[i]].Before(t.started[keys[j]]) })
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s (%s)", strings.TrimPrefix(k, "webstack/"), clock(now.Sub(t.started[k]))))
	}
	if len(parts) == 0 {
		return ""
	}
	return "running " + strings.Join(parts, ", ")
}

// printFailures prints what failed, with its output: each failed test's
// (its subtests' included), each failed package's own, each failed build's.
func (t *testReport) printFailures(w io.Writer) {
	t.mu.Lock()
	defer t.mu.Unlock()
	printed := map[string]bool{}
	for _, key := range t.failures {
		if printed[key] {
			continue
		}
		printed[key] = true
		if path, ok := strings.CutPrefix(key, "build "); ok {
			fmt.Fprintf(w, "  --- build of %s failed:\n", path)
			writeIndented(w, t.build[path])
			continue
		}
		_, test, isTest := strings.Cut(key, " ")
		if strings.Contains(test, "/") {
			continue // its parent failed too, and prints it
		}
		fmt.Fprintf(w, "  --- %s:\n", key)
		writeIndented(w, t.output[key])
		if !isTest {
			continue
		}
		// Its subtests' output (a passed one's is in the log only).
		for _, k := range sortedKeysWithPrefix(t.output, key+"/") {
			writeIndented(w, t.output[k])
		}
	}
	if len(t.output[""]) > 0 {
		fmt.Fprintln(w, "  --- go test said:")
		writeIndented(w, t.output[""])
	}
}

// slowest lists the n slowest top-level tests that took at least floor.
func (t *testReport) slowest(n int, floor time.Duration) []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	keys := make([]string, 0, len(t.took))
	for k, d := range t.took {
		if d >= floor {
			keys = append(keys, k)
		}
	}
	sort.Slice(keys, func(i, j int) bool { return t.took[keys[i]] > t.took[keys[j]] })
	var out []string
	for _, k := range keys[:min(n, len(keys))] {
		out = append(out, fmt.Sprintf("%6.1fs %s", t.took[k].Seconds(), strings.TrimPrefix(k, "webstack/")))
	}
	return out
}

func sortedKeysWithPrefix(m map[string][]string, prefix string) []string {
	var keys []string
	for k := range m {
		if strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return keys
}

func writeIndented(w io.Writer, lines []string) {
	for _, l := range lines {
		fmt.Fprint(w, "    "+l)
		if !strings.HasSuffix(l, "\n") {
			fmt.Fprintln(w)
		}
	}
}

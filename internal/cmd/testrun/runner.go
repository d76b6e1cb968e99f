package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"
)

// step is one check: a command, the steps it waits for, and what it is.
type step struct {
	name, about string
	argv        []string
	needs       []string
	network     bool   // fetches from the network: runs with the caller's proxies and module proxy
	compile     bool   // compiles or analyses: runs with GOGC=400 (see begin)
	gotest      bool   // its output is `go test -json`
	skip        string // why it does not run here (said, not failed)

	// Set while it runs.
	pipe     *io.PipeWriter // to tests, for go test's output
	state    string         // waiting, running, ok, failed, skipped
	started  time.Time
	took     time.Duration
	cpu      time.Duration // user + system, its processes' and what they waited for
	pgid     int
	log      string
	tests    *testReport
	whyNotOK string
}

// runner runs steps as their needs finish, and reports.
type runner struct {
	out    io.Writer
	logDir string
	every  time.Duration
	env    []string // test steps' environment (pinnedEnv)
	title  string

	mu       sync.Mutex
	start    time.Time
	lastLine time.Time
}

// say prints one line, prefixed with the time since the start.
func (r *runner) say(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sayLocked(format, args...)
}

func (r *runner) sayLocked(format string, args ...any) {
	fmt.Fprintf(r.out, "[%s] %s\n", clock(time.Since(r.start)), fmt.Sprintf(format, args...))
	r.lastLine = time.Now()
}

// clock is d as 1m05s.
func clock(d time.Duration) string {
	d = d.Round(time.Second)
	if d < time.Minute {
		return fmt.Sprintf("%ds", int(d.Seconds()))
	}
	return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
}

func (r *runner) run(ctx context.Context, steps []*step) error {
	r.start, r.lastLine = time.Now(), time.Now()
	byName := map[string]*step{}
	for _, s := range steps {
		s.state = "waiting"
		byName[s.name] = s
		for _, n := range s.needs {
			if _, ok := byName[n]; !ok {
				return fmt.Errorf("step %s needs %s, which is not before it", s.name, n)
			}
		}
	}
	r.say("%s: %d steps, logs in %s/", r.title, len(steps), r.logDir)
	done := make(chan *step)
	running := 0
	heartbeat := time.NewTicker(min(r.every/4, 5*time.Second))
	defer heartbeat.Stop()
	for {
		// Start every step whose needs are done; skip those whose needs failed.
		for _, s := range steps {
			if s.state != "waiting" {
				continue
			}
			ready, blocked := true, ""
			for _, n := range s.needs {
				switch byName[n].state {
				case "ok":
				case "failed", "skipped":
					blocked = n
				default:
					ready = false
				}
			}
			switch {
			case blocked != "":
				s.state, s.whyNotOK = "skipped", "not run: "+blocked+" did not pass"
				r.say("skip %s: %s", s.name, s.whyNotOK)
			case !ready:
			case ctx.Err() != nil:
				s.state, s.whyNotOK = "skipped", "interrupted"
			case s.skip != "":
				s.state, s.whyNotOK = "skipped", s.skip
				r.say("skip %s: %s", s.name, s.skip)
			default:
				running++
				r.begin(s, done)
			}
		}
		if running == 0 {
			break
		}
		select {
		case s := <-done:
			running--
			r.finish(s)
		case <-heartbeat.C:
			r.mu.Lock()
			if time.Since(r.lastLine) >= r.every {
				r.status(steps)
			}
			r.mu.Unlock()
		case <-ctx.Done():
			for _, s := range steps {
				if s.state == "running" && s.pgid > 0 {
					_ = syscall.Kill(-s.pgid, syscall.SIGTERM)
				}
			}
			// Wait for the running ones to end (done keeps them coming).
			for running > 0 {
				r.finish(<-done)
				running--
			}
		}
	}
	return r.summary(steps)
}

// begin starts s; its end arrives on done.
func (r *runner) begin(s *step, done chan<- *step) {
	s.state, s.started = "running", time.Now()
	s.log = filepath.Join(r.logDir, s.name+".log")
	r.say("start %s: %s", s.name, s.about)
	f, err := os.Create(s.log)
	if err != nil {
		s.state, s.whyNotOK = "failed", err.Error()
		go func() { done <- s }()
		return
	}
	cmd := exec.Command(s.argv[0], s.argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Env = r.env
	if s.network {
		cmd.Env = networkEnv(os.Environ(), r.env)
	}
	if s.compile {
		// The compiler and staticcheck collect garbage a quarter as often
		// (measured cold on two cores: every package compiles in 193 s
		// instead of 211 s, for 1.7 GB more at the peak, 6.2 GB;
		// staticcheck uses 38 CPU-seconds instead of 52). Not for the
		// tests, which run as deployed.
		cmd.Env = append(cmd.Env, "GOGC=400")
	}
	var tests *testReport
	if s.gotest {
		tests = newTestReport(r, s.name)
		s.tests = tests
		pr, pw := io.Pipe()
		cmd.Stdout, cmd.Stderr = io.MultiWriter(f, pw), f
		go tests.read(pr)
		s.pipe = pw
	} else {
		cmd.Stdout, cmd.Stderr = f, f
	}
	if err := cmd.Start(); err != nil {
		f.Close()
		s.state, s.whyNotOK = "failed", err.Error()
		go func() { done <- s }()
		return
	}
	s.pgid = cmd.Process.Pid
	go func() {
		err := cmd.Wait()
		if s.pipe != nil {
			s.pipe.Close()
			<-tests.finished
		}
		f.Close()
		s.took = time.Since(s.started)
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			s.cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		}
		s.state = "ok"
		if err != nil {
			s.state, s.whyNotOK = "failed", err.Error()
		}
		if s.gotest && s.state == "ok" && tests.failed() {
			s.state, s.whyNotOK = "failed", "tests failed"
		}
		done <- s
	}()
}

// finish reports a step that ended.
func (r *runner) finish(s *step) {
	if s.state == "ok" {
		r.say("ok %s (%s)", s.name, clock(s.took))
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sayLocked("FAIL %s (%s): %s — whole output: %s", s.name, clock(s.took), s.whyNotOK, s.log)
	if s.tests != nil {
		s.tests.printFailures(r.out)
		return
	}
	if b, err := os.ReadFile(s.log); err == nil {
		lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
		if len(lines) > 200 {
			fmt.Fprintf(r.out, "    … %d lines above (in %s)\n", len(lines)-200, s.log)
			lines = lines[len(lines)-200:]
		}
		for _, l := range lines {
			fmt.Fprintln(r.out, "    "+l)
		}
	}
}

// status says what each running step is doing (called with r.mu held).
func (r *runner) status(steps []*step) {
	var waiting []string
	for _, s := range steps {
		switch s.state {
		case "running":
			what := describe(processes(s.pgid))
			if s.tests != nil {
				if t := s.tests.running(time.Now()); t != "" {
					what = append([]string{t}, what...)
				}
			}
			if len(what) == 0 {
				what = []string{s.about}
			}
			r.sayLocked("… %s (%s): %s", s.name, clock(time.Since(s.started)), strings.Join(what, "; "))
		case "waiting":
			waiting = append(waiting, s.name+" (after "+strings.Join(s.needs, ", ")+")")
		}
	}
	if len(waiting) > 0 {
		r.sayLocked("… waiting: %s", strings.Join(waiting, ", "))
	}
}

// summary prints each step's time and result, and the slowest tests.
func (r *runner) summary(steps []*step) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	total := time.Since(r.start)
	fmt.Fprintf(r.out, "\n%s: %s on %d cores\n  %-12s %7s %7s\n", r.title, clock(total), runtime.NumCPU(), "step", "time", "CPU")
	var failed []string
	for _, s := range steps {
		took, cpu := "-", "-"
		if s.took > 0 {
			took = clock(s.took)
		}
		if s.cpu > 0 {
			cpu = clock(s.cpu)
		}
		line := fmt.Sprintf("  %-12s %7s %7s  %s", s.name, took, cpu, s.state)
		if s.whyNotOK != "" {
			line += ": " + s.whyNotOK
		}
		fmt.Fprintln(r.out, line)
		if s.state == "failed" || (s.state == "skipped" && s.skip == "") {
			failed = append(failed, s.name)
		}
		if s.tests != nil {
			for _, t := range s.tests.slowest(8, 3*time.Second) {
				fmt.Fprintf(r.out, "      %s\n", t)
			}
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("%s failed: %s", r.title, strings.Join(failed, ", "))
	}
	return nil
}

// networkEnv is the environment of the steps that fetch: the caller's own
// (proxies, module proxy), with the pinned PATH and CI.
func networkEnv(caller, pinned []string) []string {
	out := append([]string(nil), caller...)
	for _, kv := range pinned {
		if strings.HasPrefix(kv, "PATH=") || strings.HasPrefix(kv, "CI=") {
			out = append(out, kv) // later entries win in os/exec
		}
	}
	return out
}

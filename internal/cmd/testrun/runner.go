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

	// Set while it runs, on run's goroutine only.
	state    string // waiting, running, ok, failed, skipped
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
	env    []string // test steps' environment (pinnedEnv, TMPDIR)
	tmp    string   // the run's TMPDIR
	title  string
	again  <-chan os.Signal // a second interrupt: kill at once
	grace  time.Duration    // how long steps have to stop after an interrupt (0: killAfter)

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

// SkipExit is the exit status by which a step's command says it did not
// run here, and why (its output's first line): reported as skipped, not
// as passed (automake's convention).
const SkipExit = 77

// ended is what a step's command left when it ended.
type ended struct {
	s      *step
	err    error
	code   int
	took   time.Duration
	cpu    time.Duration
	failed bool // go test reported a failure
}

// killAfter is how long steps have to stop after an interrupt before
// their process groups are killed (a second interrupt kills them at once).
const killAfter = 10 * time.Second

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
	done := make(chan ended)
	running := 0
	heartbeat := time.NewTicker(min(r.every/4, 5*time.Second))
	defer heartbeat.Stop()
	interrupted := ctx.Done()
	var kill <-chan time.Time
	for {
		// Start every step whose needs are done; skip those whose needs did not pass.
		for _, s := range steps {
			if s.state != "waiting" {
				continue
			}
			ready, blocked, after := true, "", ""
			for _, n := range s.needs {
				switch need := byName[n]; {
				case need.state == "ok":
				case need.state == "failed", need.state == "skipped" && strings.HasPrefix(need.whyNotOK, "not run:"):
					blocked = n
				case need.state == "skipped":
					after = n // skipped here, for a reason of its own
				default:
					ready = false
				}
			}
			switch {
			case ctx.Err() != nil:
				s.state, s.whyNotOK = "skipped", "not run: interrupted"
			case blocked != "":
				s.state, s.whyNotOK = "skipped", "not run: "+blocked+" did not pass"
				r.say("skip %s: %s", s.name, s.whyNotOK)
			case ready && after != "":
				s.state, s.whyNotOK = "skipped", after+" was skipped"
				r.say("skip %s: %s", s.name, s.whyNotOK)
			case !ready:
			case s.skip != "":
				s.state, s.whyNotOK = "skipped", s.skip
				r.say("skip %s: %s", s.name, s.skip)
			default:
				if r.begin(s, done) {
					running++
				}
			}
		}
		if running == 0 {
			break
		}
		select {
		case e := <-done:
			running--
			r.finish(e)
		case <-heartbeat.C:
			r.mu.Lock()
			if time.Since(r.lastLine) >= r.every {
				r.status(steps)
			}
			r.mu.Unlock()
		case <-interrupted:
			interrupted = nil
			r.say("interrupted: stopping %d running steps (killed in %s, or at once at another interrupt)", running, killAfter)
			r.signal(steps, syscall.SIGTERM)
			grace := r.grace
			if grace == 0 {
				grace = killAfter
			}
			kill = time.After(grace)
		case <-r.again:
			if interrupted == nil {
				r.say("interrupted again: killing the running steps")
				r.signal(steps, syscall.SIGKILL)
			}
		case <-kill:
			r.say("steps still running after the interrupt: killing them")
			r.signal(steps, syscall.SIGKILL)
		}
	}
	return r.summary(steps)
}

// signal sends sig to the process group of every running step.
func (r *runner) signal(steps []*step, sig syscall.Signal) {
	for _, s := range steps {
		if s.state == "running" && s.pgid > 0 {
			_ = syscall.Kill(-s.pgid, sig)
		}
	}
}

// begin starts s, whose end arrives on done; false if it could not start
// (s is then failed).
func (r *runner) begin(s *step, done chan<- ended) bool {
	s.state, s.started = "running", time.Now()
	s.log = filepath.Join(r.logDir, s.name+".log")
	r.say("start %s: %s", s.name, s.about)
	f, err := os.Create(s.log)
	if err != nil {
		s.state, s.whyNotOK = "failed", err.Error()
		return false
	}
	cmd := exec.Command(s.argv[0], s.argv[1:]...)
	// A group of its own (so that its compilers, tests and browsers are
	// stopped with it), killed if this program dies first.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
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
	var (
		tests *testReport
		pipe  *io.PipeWriter
	)
	if s.gotest {
		tests = newTestReport(r, s.name)
		s.tests = tests
		var pr *io.PipeReader
		pr, pipe = io.Pipe()
		cmd.Stdout, cmd.Stderr = io.MultiWriter(f, pipe), f
		go tests.read(pr)
	} else {
		cmd.Stdout, cmd.Stderr = f, f
	}
	if err := cmd.Start(); err != nil {
		f.Close()
		s.state, s.whyNotOK = "failed", err.Error()
		return false
	}
	s.pgid = cmd.Process.Pid
	go func() {
		e := ended{s: s, err: cmd.Wait(), code: cmd.ProcessState.ExitCode()}
		if pipe != nil {
			pipe.Close()
			<-tests.finished
			e.failed = tests.failed()
		}
		f.Close()
		e.took = time.Since(s.started)
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			e.cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		}
		done <- e
	}()
	return true
}

// finish records and reports a step that ended (on run's goroutine: the
// steps' state is only ever written there).
func (r *runner) finish(e ended) {
	s := e.s
	s.took, s.cpu = e.took, e.cpu
	switch {
	case e.code == SkipExit && !s.gotest:
		s.state, s.whyNotOK = "skipped", firstLine(s.log)
		r.say("skip %s: %s", s.name, s.whyNotOK)
		return
	case e.err != nil:
		s.state, s.whyNotOK = "failed", e.err.Error()
	case e.failed:
		s.state, s.whyNotOK = "failed", "tests failed"
	default:
		s.state = "ok"
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

// firstLine is the first line of the file at path ("" if none).
func firstLine(path string) string {
	b, _ := os.ReadFile(path)
	line, _, _ := strings.Cut(string(b), "\n")
	return strings.TrimSpace(line)
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
		if s.state == "failed" || (s.state == "skipped" && strings.HasPrefix(s.whyNotOK, "not run:")) {
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
// (proxies, module proxy), with the pinned PATH, CI and TMPDIR, and
// without a GOEXPERIMENT or GODEBUG (see goDrift).
func networkEnv(caller, pinned []string) []string {
	var out []string
	for _, kv := range caller {
		if k, _, _ := strings.Cut(kv, "="); !goDrift(k) {
			out = append(out, kv)
		}
	}
	for _, kv := range pinned {
		if strings.HasPrefix(kv, "PATH=") || strings.HasPrefix(kv, "CI=") || strings.HasPrefix(kv, "TMPDIR=") {
			out = append(out, kv) // later entries win in os/exec
		}
	}
	return out
}

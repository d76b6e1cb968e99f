package offline

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"webstack/internal/offline/plan"
	"webstack/internal/twin"
)

const twinUsage = "usage: twin up|down|check --stack <stack> [--conduit bin/conduit] [--newman node_modules/.bin/newman --postman <collection>]"

// twinCmd runs the local twin of a stack (docs/twin.md).
//
//	up     network, stand-ins, instances booted from their user data; left running
//	down   removes everything up made; safe twice, or after a crash
//	check  up, the checks (boot, reachability, Postman), down; fails on any deviation
//
// and, inside the twin: serve (the stand-ins' process), boot (one
// instance's user data, in its namespaces), shim (an instance's aws,
// systemctl, rpm, dnf).
func twinCmd(args []string, stdout io.Writer, fn plan.StackFunc) error {
	if len(args) == 0 {
		return errors.New(twinUsage)
	}
	verb := args[0]
	switch verb {
	case "shim": // inside an instance: no plan, no flags of ours
		if len(args) < 2 {
			return errors.New("usage: twin shim <program> [args]")
		}
		if code := twin.Shim(args[1], args[2:], stdout, os.Stderr); code != 0 {
			os.Exit(code)
		}
		return nil
	case "boot":
		fs := flag.NewFlagSet("twin boot", flag.ContinueOnError)
		root := fs.String("root", "", "the instance's directory")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		return twin.BootHere(*root, stdout)
	}
	fs := flag.NewFlagSet("twin "+verb, flag.ContinueOnError)
	stack := fs.String("stack", "dev", "stack to twin")
	dir := fs.String("dir", ".", "directory holding Pulumi.yaml and the stack files")
	conduit := fs.String("conduit", "bin/conduit", "conduit built for this machine (runs FerretDB for the database stand-in)")
	newman := fs.String("newman", "node_modules/.bin/newman", "newman, for the Postman suite (check)")
	postman := fs.String("postman", "", "the RealWorld Postman collection (check); empty skips the suite")
	netOnly := fs.Bool("network-only", false, "namespaces and security groups only: no stand-ins, no instances")
	var overrides multiFlag
	fs.Var(&overrides, "c", "key=value config override (repeatable)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if err := twin.Preflight(); err != nil {
		return err
	}
	g, err := Graph(*dir, *stack, append(docsOverrides(*dir, *stack), overrides...), fn)
	if err != nil {
		return err
	}
	m, err := twin.From(g)
	if err != nil {
		return err
	}
	state := twin.State(filepath.Join(*dir, ".twin", *stack))
	switch verb {
	case "down":
		return down(m, state, false)
	case "serve":
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
		defer stop()
		log := slog.New(slog.NewTextHandler(os.Stderr, nil))
		return m.Serve(ctx, state, *conduit, log)
	case "up":
		return up(m, state, *conduit, *netOnly, stdout)
	case "check":
		return check(m, state, *conduit, *newman, *postman, *netOnly, stdout)
	}
	return fmt.Errorf("unknown twin command %q: %s", verb, twinUsage)
}

// check brings the twin up, runs every check, and tears it down (keeping
// the logs). Its last lines are the reachability summary and the Postman
// suite's.
func check(m *twin.Model, state twin.State, conduit, newman, postman string, netOnly bool, stdout io.Writer) error {
	start := time.Now()
	if err := up(m, state, conduit, netOnly, stdout); err != nil {
		_ = down(m, state, true)
		return err
	}
	defer func() { _ = down(m, state, true) }()
	if err := m.ClosedWorld(); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "closed world: no twin namespace reaches this machine's network")
	results, err := m.Matrix()
	if err != nil {
		return err
	}
	var summary string
	if !netOnly {
		suite := func() error {
			var err error
			summary, err = runPostman(m, state, newman, postman)
			return err
		}
		if postman == "" {
			// Not this project's file: without it the drills still run.
			fmt.Fprintln(stdout, "twin: the RealWorld Postman suite is SKIPPED (no collection: see scripts/postman.sh for where it goes)")
			suite = func() error { return nil }
		}
		if len(m.TargetGroups) > 0 {
			if err := m.WaitTargetsHealthy(state); err != nil {
				return err
			}
			fmt.Fprintln(stdout, "load balancers: every target healthy")
		}
		if err := suite(); err != nil {
			return err
		}
		pid, err := servePID(state)
		if err != nil {
			return err
		}
		// The database secret's drill needs pools that must still open
		// connections (it checks that new ones authenticate with the pending
		// password), so it runs before the drills that load the api.
		if len(m.TargetGroups) > 0 {
			if err := m.DrillStopTarget(state, suite, stdout); err != nil {
				return err
			}
			if err := m.DrillRotateSecret(state, pid, suite, stdout); err != nil {
				return err
			}
		}
		if err := m.DrillFailover(state, pid, stdout); err != nil {
			return err
		}
		if err := m.DrillRotateKeys(state, pid, suite, stdout); err != nil {
			return err
		}
	}
	fmt.Fprintf(stdout, "twin %s: checks done in %.1f s (logs: %s)\n", m.Stack, time.Since(start).Seconds(), state.Logs())
	ok := twin.WriteMatrix(stdout, results)
	fmt.Fprint(stdout, summary)
	if !ok {
		return errors.New("the twin's packets disagree with the plan's security groups")
	}
	return nil
}

func servePID(state twin.State) (int, error) {
	b, err := os.ReadFile(filepath.Join(string(state), "serve.pid"))
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

// up brings the twin up: the network, then (unless netOnly) the stand-ins
// in a process of their own, then every instance booted from its user data.
func up(m *twin.Model, state twin.State, conduit string, netOnly bool, stdout io.Writer) error {
	if err := down(m, state, false); err != nil {
		return err
	}
	if err := m.Up(); err != nil {
		return err
	}
	if err := os.MkdirAll(state.Logs(), 0o755); err != nil {
		return err
	}
	if err := writeHosts(string(state), m, stdout); err != nil {
		return err
	}
	if netOnly {
		return nil
	}
	// The twin's program, where the instances' shims can always find it.
	exe, err := copySelf(filepath.Join(state.Instances(), "bin", "twin")) // where the instances see it too
	if err != nil {
		return err
	}
	if _, err := os.Stat(conduit); err != nil {
		return fmt.Errorf("the database stand-in needs conduit built for this machine: make bin/conduit (%w)", err)
	}
	conduitAbs, err := filepath.Abs(conduit)
	if err != nil {
		return err
	}
	if err := startServe(m, state, exe, conduitAbs); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "stand-ins up: IMDS, S3, Secrets Manager, CA bundle, DocumentDB (%s)\n", filepath.Join(state.Logs(), "standins.log"))
	return m.BootAll(state, exe, stdout)
}

// startServe starts `twin serve` detached (its own session: down kills
// its process group) and waits for it to be ready.
func startServe(m *twin.Model, state twin.State, exe, conduit string) error {
	logf, err := os.Create(filepath.Join(state.Logs(), "standins.log"))
	if err != nil {
		return err
	}
	defer logf.Close()
	dir, err := filepath.Abs(filepath.Join(string(state), "..", ".."))
	if err != nil {
		return err
	}
	args := append([]string{"twin", "serve", "--stack", m.Stack, "--dir", dir, "--conduit", conduit}, overridesOf(os.Args)...)
	cmd := exec.Command(exe, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(string(state), "serve.pid"), []byte(strconv.Itoa(cmd.Process.Pid)), 0o644); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.After(60 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(string(state), "serve.ready")); err == nil {
			return nil
		}
		select {
		case err := <-exited:
			b, _ := os.ReadFile(logf.Name())
			return fmt.Errorf("the stand-ins stopped: %v\n%s", err, b)
		case <-deadline:
			return fmt.Errorf("the stand-ins were not ready in 60 s (see %s)", logf.Name())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// overridesOf are the -c key=value pairs of this command line, passed on.
func overridesOf(args []string) []string {
	var out []string
	for i := 0; i < len(args); i++ {
		if args[i] == "-c" && i+1 < len(args) {
			out = append(out, "-c", args[i+1])
			i++
		} else if v, ok := strings.CutPrefix(args[i], "-c="); ok {
			out = append(out, "-c", v)
		}
	}
	return out
}

// down stops the stand-ins (their process group), removes every namespace
// and what runs in them, and the state directory (but its logs, when
// keepLogs: what check leaves to read).
func down(m *twin.Model, state twin.State, keepLogs bool) error {
	if pid, err := servePID(state); err == nil && pid > 1 {
		_ = syscall.Kill(-pid, syscall.SIGTERM)
		for range 50 {
			if syscall.Kill(pid, 0) != nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		_ = syscall.Kill(-pid, syscall.SIGKILL)
	}
	if err := m.Down(); err != nil {
		return err
	}
	defer os.RemoveAll(state.Instances())
	if !keepLogs {
		return os.RemoveAll(string(state))
	}
	// Each instance's journal (its service's output) joins the logs.
	for _, h := range m.Hosts {
		journals, _ := filepath.Glob(filepath.Join(state.Instances(), h.Name, "fs", "var", "upper", "log", "journal", "*.log"))
		for _, j := range journals {
			if b, err := os.ReadFile(j); err == nil {
				_ = os.WriteFile(filepath.Join(state.Logs(), h.Name+"-journal.log"), b, 0o644)
			}
		}
	}
	entries, _ := os.ReadDir(string(state))
	for _, e := range entries {
		if e.Name() != "logs" {
			if err := os.RemoveAll(filepath.Join(string(state), e.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}

// copySelf copies this program to path and returns path, absolute.
func copySelf(path string) (string, error) {
	self, err := os.Executable()
	if err != nil {
		return "", err
	}
	b, err := os.ReadFile(self)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return "", err
	}
	if err := os.WriteFile(path, b, 0o755); err != nil {
		return "", err
	}
	return filepath.Abs(path)
}

// runPostman runs the RealWorld suite from the internet namespace against
// the entry URL, trusting the twin's CA (the public ALB's certificate).
// Its output goes to logs/postman.log; it returns the summary table.
func runPostman(m *twin.Model, state twin.State, newman, collection string) (string, error) {
	u := fmt.Sprintf("twin%d", time.Now().UnixNano()%1_000_000_000)
	cmd := exec.Command("ip", "netns", "exec", m.Namespace("internet"), newman, "run", collection,
		"--global-var", "APIURL="+m.Entry+"/api", "--global-var", "USERNAME="+u, "--global-var", "EMAIL="+u+"@mail.com",
		"--global-var", "PASSWORD=correct-horse-battery-staple", "--reporters", "cli", "--bail", "failure", "--color", "off")
	ca, err := filepath.Abs(filepath.Join(string(state), "pki", "ca.pem"))
	if err != nil {
		return "", err
	}
	cmd.Env = append(os.Environ(), "NODE_EXTRA_CA_CERTS="+ca)
	out, err := cmd.CombinedOutput()
	log := filepath.Join(state.Logs(), "postman.log")
	f, ferr := os.OpenFile(log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if ferr == nil {
		_, _ = f.Write(out)
		_ = f.Close()
	}
	if err != nil {
		tail := string(out)
		if len(tail) > 4000 {
			tail = tail[len(tail)-4000:]
		}
		return "", fmt.Errorf("the Postman suite from the internet namespace against %s failed: %w\n%s", m.Entry, err, tail)
	}
	summary := string(out)
	if i := strings.LastIndex(summary, "┌─────────────────────────┬"); i >= 0 {
		summary = summary[i:] // the totals table
	}
	return fmt.Sprintf("postman (from the internet namespace, %s):\n%s", m.Entry, summary), nil
}

// writeHosts writes .twin/<stack>/hosts.json: the entry URL and the hosts.
func writeHosts(state string, m *twin.Model, stdout io.Writer) error {
	if err := os.MkdirAll(state, 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(map[string]any{"stack": m.Stack, "entry": m.Entry, "hosts": m.Hosts}, "", "  ")
	if err != nil {
		return err
	}
	path := filepath.Join(state, "hosts.json")
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "twin %s up: %d namespaces, entry %s (%s)\n", m.Stack, len(m.Hosts)+1, m.Entry, path)
	return nil
}

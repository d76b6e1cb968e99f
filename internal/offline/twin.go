package offline

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"webstack/internal/offline/plan"
	"webstack/internal/twin"
)

// twinCmd runs the local twin of a stack: `twin up|down|check --stack s`.
func twinCmd(args []string, stdout io.Writer, fn plan.StackFunc) error {
	if len(args) == 0 {
		return errors.New("usage: twin up|down|check --stack <stack>")
	}
	verb := args[0]
	fs := flag.NewFlagSet("twin "+verb, flag.ContinueOnError)
	stack := fs.String("stack", "dev", "stack to twin")
	dir := fs.String("dir", ".", "directory holding Pulumi.yaml and the stack files")
	var overrides multiFlag
	fs.Var(&overrides, "c", "key=value config override (repeatable)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if err := twin.Preflight(); err != nil {
		return err
	}
	g, err := Graph(*dir, *stack, append(docsOverrides(), overrides...), fn)
	if err != nil {
		return err
	}
	m, err := twin.From(g)
	if err != nil {
		return err
	}
	state := filepath.Join(*dir, ".twin", *stack)
	switch verb {
	case "down":
		if err := m.Down(); err != nil {
			return err
		}
		return os.RemoveAll(state)
	case "up":
		if err := m.Up(); err != nil {
			return err
		}
		return writeHosts(state, m, stdout)
	case "check":
		if err := m.Up(); err != nil {
			return err
		}
		defer func() { _ = m.Down(); _ = os.RemoveAll(state) }()
		if err := writeHosts(state, m, stdout); err != nil {
			return err
		}
		if err := m.ClosedWorld(); err != nil {
			return err
		}
		fmt.Fprintln(stdout, "closed world: no twin namespace reaches this machine's network")
		results, err := m.Matrix()
		if err != nil {
			return err
		}
		if !twin.WriteMatrix(stdout, results) {
			return errors.New("the twin's packets disagree with the plan's security groups")
		}
		return nil
	}
	return fmt.Errorf("unknown twin command %q: use up, down or check", verb)
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

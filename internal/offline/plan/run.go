package plan

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"gopkg.in/yaml.v3"
)

// StackFunc builds a stack and returns its outputs: the program's body.
type StackFunc func(ctx *pulumi.Context) (pulumi.Map, error)

// Graph is the recorded plan of one stack.
type Graph struct {
	Project   string         `json:"project"`
	Stack     string         `json:"stack"`
	Resources []Resource     `json:"resources"`
	Outputs   map[string]any `json:"outputs"`
}

// OfType returns the resources of one type token, in registration order.
func (g *Graph) OfType(typ string) []Resource {
	var out []Resource
	for _, r := range g.Resources {
		if r.Type == typ {
			out = append(out, r)
		}
	}
	return out
}

// ByKey finds a resource by "<type>::<name>".
func (g *Graph) ByKey(key string) (Resource, bool) {
	for _, r := range g.Resources {
		if r.Key() == key {
			return r, true
		}
	}
	return Resource{}, false
}

// envMu serialises runs: Pulumi reads the stack config from the environment.
var envMu sync.Mutex

// Run executes fn under mocks as project/stack with the given config
// (fully-qualified keys such as "webstack:topology" and "aws:region") and
// returns the graph it registered. When fn fails, the graph of what it had
// registered until then comes back with the error.
func Run(project, stack string, config map[string]string, fn StackFunc) (*Graph, error) {
	envMu.Lock()
	defer envMu.Unlock()
	raw, err := json.Marshal(config)
	if err != nil {
		return nil, fmt.Errorf("encode config: %w", err)
	}
	// What the Pulumi engine would set (dry run, secret keys, organization,
	// parallelism…) comes from this plan alone, never from the shell that
	// runs it: every PULUMI_* variable is put aside for the run.
	defer unsetenvPrefix("PULUMI_")()
	defer setenv(pulumi.EnvConfig, string(raw))()
	// A fixed clock for what the program dates (the database's final
	// snapshot name): the same plan prints the same graph.
	if _, ok := os.LookupEnv("SOURCE_DATE_EPOCH"); !ok {
		defer setenv("SOURCE_DATE_EPOCH", "0")()
	}

	return run(project, stack, config["aws:region"], fn)
}

// RunInPlace is Run with the configuration already in the environment:
// the running program's own, when a real deployment prices itself (see
// offline.Estimate). It takes no lock, so it may run inside Run.
func RunInPlace(project, stack, region string, fn StackFunc) (*Graph, error) {
	return run(project, stack, region, fn)
}

func run(project, stack, region string, fn StackFunc) (*Graph, error) {
	rec := &Recorder{Region: region}
	g := &Graph{Project: project, Stack: stack, Outputs: map[string]any{}}
	var mu sync.Mutex
	// RunErr waits for what the program registers, but not for an apply on
	// an output made from a plain value (pulumi.String(…).ToStringOutput()
	// belongs to no context): such an output's value could arrive after
	// RunErr returned, and the graph missed it now and then. Each output
	// says when it has arrived.
	var arrived sync.WaitGroup
	err := pulumi.RunErr(func(ctx *pulumi.Context) error {
		outs, err := fn(ctx)
		if err != nil {
			return err
		}
		for k, v := range outs {
			ctx.Export(k, v)
			arrived.Add(1)
			pulumi.ToOutput(v).ApplyT(func(x any) (any, error) {
				mu.Lock()
				g.Outputs[k] = x
				mu.Unlock()
				arrived.Done()
				return nil, nil
			})
		}
		return nil
	}, pulumi.WithMocks(project, stack, rec))
	if err == nil {
		done := make(chan struct{})
		go func() { arrived.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(time.Minute):
			return nil, fmt.Errorf("plan: some stack outputs never resolved")
		}
	}
	// Registration order varies from run to run (outputs resolve
	// concurrently); a sorted graph diffs cleanly and draws the same.
	g.Resources = rec.Resources()
	slices.SortStableFunc(g.Resources, func(a, b Resource) int { return strings.Compare(a.Key(), b.Key()) })
	if err != nil {
		return g, err
	}
	// Outputs resolve to Go values ([]string, int...); give them the same
	// JSON shapes as resource inputs.
	raw, err := json.Marshal(g.Outputs)
	if err != nil {
		return nil, fmt.Errorf("encode outputs: %w", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.UseNumber()
	var outs map[string]any
	if err := dec.Decode(&outs); err != nil {
		return nil, fmt.Errorf("decode outputs: %w", err)
	}
	g.Outputs = numbersToInt(outs).(map[string]any)
	return g, nil
}

// setenv sets an environment variable and returns what puts it back.
// unsetenvPrefix unsets every variable whose name starts with prefix, and
// returns what puts them back.
func unsetenvPrefix(prefix string) (restore func()) {
	var restores []func()
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, prefix) {
			prev := os.Getenv(k)
			os.Unsetenv(k)
			restores = append(restores, func() { os.Setenv(k, prev) })
		}
	}
	return func() {
		for _, r := range restores {
			r()
		}
	}
}

func setenv(k, v string) (restore func()) {
	prev, had := os.LookupEnv(k)
	os.Setenv(k, v)
	return func() {
		if had {
			os.Setenv(k, prev)
		} else {
			os.Unsetenv(k)
		}
	}
}

// numbersToInt turns integral json.Numbers into int64, like plain() does.
func numbersToInt(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			v[k] = numbersToInt(e)
		}
	case []any:
		for i, e := range v {
			v[i] = numbersToInt(e)
		}
	case json.Number:
		if n, err := v.Int64(); err == nil {
			return n
		}
		f, _ := v.Float64()
		return f
	}
	return v
}

// StackConfig reads Pulumi.<stack>.yaml in dir and returns its config map,
// with non-string values JSON-encoded as Pulumi does.
func StackConfig(dir, stack string) (map[string]string, error) {
	path := filepath.Join(dir, "Pulumi."+stack+".yaml")
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read stack config: %w", err)
	}
	var doc struct {
		Config map[string]any `yaml:"config"`
	}
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("parse %s: %w", path, err)
	}
	out := make(map[string]string, len(doc.Config))
	for k, v := range doc.Config {
		switch v := v.(type) {
		case string:
			out[k] = v
		case map[string]any:
			if _, secure := v["secure"]; secure {
				continue // encrypted: the offline plan cannot read it (see standIns)
			}
			b, _ := json.Marshal(v)
			out[k] = string(b)
		case []any:
			b, _ := json.Marshal(v)
			out[k] = string(b)
		default:
			out[k] = fmt.Sprint(v)
		}
	}
	return out, nil
}

// Config is the config map of a stack as `pulumi preview` would see it:
// Pulumi.<stack>.yaml in dir, placeholders for encrypted secrets it cannot
// read, then overrides ("key=value", several per string; a key without
// namespace is the project's), like `pulumi preview -c`.
func Config(dir, project, stack string, overrides []string) (map[string]string, error) {
	cfg, err := StackConfig(dir, stack)
	if err != nil {
		return nil, err
	}
	// Secrets live encrypted in the stack file (or nowhere, on a fresh
	// clone): the plan stands a placeholder in, shown as [secret].
	for _, k := range standIns {
		if _, ok := cfg[project+":"+k]; !ok {
			cfg[project+":"+k] = "offline-plan-placeholder-secret-0123456789"
		}
	}
	for _, kv := range overrides {
		for _, field := range strings.Fields(kv) {
			k, v, ok := strings.Cut(field, "=")
			if !ok || k == "" {
				return nil, fmt.Errorf("config override %q: want key=value", field)
			}
			if !strings.Contains(k, ":") {
				k = project + ":" + k
			}
			cfg[k] = v
		}
	}
	return cfg, nil
}

// standIns are the secret keys the plan fills in when the stack file lacks them.
var standIns = []string{"jwtSecret"}

// WriteText prints the graph as a tree by component, each resource with its
// key settings (scalar inputs, flattened; tags and long documents elided).
func WriteText(w io.Writer, g *Graph) error {
	children := map[string][]Resource{}
	for _, r := range g.Resources {
		children[r.Parent] = append(children[r.Parent], r)
	}
	fmt.Fprintf(w, "%s/%s: %d resources\n", g.Project, g.Stack, len(g.Resources))
	var walk func(parent, indent string)
	walk = func(parent, indent string) {
		for _, r := range children[parent] {
			fmt.Fprintf(w, "%s%s %s\n", indent, r.Type, r.Name)
			for _, line := range settings(r.Inputs) {
				fmt.Fprintf(w, "%s    %s\n", indent, line)
			}
			walk(r.Key(), indent+"  ")
		}
	}
	walk("", "")
	fmt.Fprintln(w, "outputs:")
	keys := make([]string, 0, len(g.Outputs))
	for k := range g.Outputs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		b, _ := json.Marshal(g.Outputs[k])
		fmt.Fprintf(w, "  %s = %s\n", k, b)
	}
	return nil
}

func settings(in map[string]any) []string {
	var out []string
	var flat func(prefix string, v any)
	flat = func(prefix string, v any) {
		switch v := v.(type) {
		case map[string]any:
			keys := make([]string, 0, len(v))
			for k := range v {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				if k == "tags" || k == "tagsAll" {
					continue
				}
				flat(strings.TrimPrefix(prefix+"."+k, "."), v[k])
			}
		case []any:
			for i, e := range v {
				flat(fmt.Sprintf("%s[%d]", prefix, i), e)
			}
		default:
			s := fmt.Sprint(v)
			if len(s) > 100 {
				s = s[:97] + "..."
			}
			out = append(out, prefix+" = "+s)
		}
	}
	flat("", in)
	return out
}

// Waits reports whether the resource from waits for the resource to
// before it is created: to is among its dependencies, directly or through
// other resources.
func (g *Graph) Waits(from, to string) bool {
	deps := map[string][]string{}
	for _, r := range g.Resources {
		deps[r.Key()] = r.DependsOn
	}
	seen := map[string]bool{}
	stack := []string{from}
	for len(stack) > 0 {
		k := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for _, d := range deps[k] {
			if d == to {
				return true
			}
			if !seen[d] {
				seen[d] = true
				stack = append(stack, d)
			}
		}
	}
	return false
}

// Components runs fn, which registers components directly (a tier's tests),
// under the same mocks, in region and with no project config, and returns
// what it registered.
func Components(region string, fn func(ctx *pulumi.Context) error) (*Graph, error) {
	return Run("webstack", "test", map[string]string{"aws:region": region}, func(ctx *pulumi.Context) (pulumi.Map, error) {
		return pulumi.Map{}, fn(ctx)
	})
}

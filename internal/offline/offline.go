// Package offline is the program's offline command line: it runs the real
// Pulumi program under mocks (internal/plan) and prints the graph, the
// architecture diagram or the cost estimate, with no credentials and no
// Pulumi CLI.
//
//	plan --stack prod [--format text|json|mermaid|dot|cost] [-c key=value]...
//	docs [--out docs]    architecture.md (Mermaid) and one .dot per stack
package offline

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"webstack/internal/config"
	"webstack/internal/offline/architecture"
	"webstack/internal/offline/cost"
	"webstack/internal/offline/plan"
)

// Stacks returns the project's stacks, in the order they are compared.
func Stacks() []string { return []string{"dev", "staging", "prod"} }

// Project is the Pulumi project name.
const Project = "webstack"

// ExampleCertificate is the certificate the checked-in docs and the cost
// estimates are drawn with (staging and prod need one).
const ExampleCertificate = "arn:aws:acm:us-east-1:123456789012:certificate/example"

// ExampleWebTLSSecret is the secret the single topology's web instance is
// drawn with (dev serves HTTPS from one).
const ExampleWebTLSSecret = "arn:aws:secretsmanager:us-east-1:123456789012:secret:webstack/dev/web-tls-AbCdEf"

// docsOverrides are the config the checked-in docs are drawn with: a
// certificate for the ALB (ha), a certificate secret for the web
// instance (single).
func docsOverrides(dir, stack string) []string {
	if cfg, err := plan.StackConfig(dir, stack); err == nil && cfg[Project+":topology"] == "single" {
		return []string{"webTlsSecretArn=" + ExampleWebTLSSecret}
	}
	return []string{"certificateArn=" + ExampleCertificate}
}

// Main runs one offline command.
func Main(args []string, stdout io.Writer, fn plan.StackFunc) error {
	if len(args) == 0 {
		return fmt.Errorf("usage: plan|docs [flags]")
	}
	switch args[0] {
	case "plan":
		return planCmd(args[1:], stdout, fn)
	case "docs":
		return docsCmd(args[1:], stdout, fn)
	case "twin":
		return twinCmd(args[1:], stdout, fn)
	}
	return fmt.Errorf("unknown command %q: use plan, docs or twin", args[0])
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, " ") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func planCmd(args []string, stdout io.Writer, fn plan.StackFunc) error {
	fs := flag.NewFlagSet("plan", flag.ContinueOnError)
	stack := fs.String("stack", "dev", "stack whose Pulumi.<stack>.yaml to use")
	format := fs.String("format", "text", "text, json, mermaid, dot or cost")
	dir := fs.String("dir", ".", "directory holding Pulumi.yaml and the stack files")
	var overrides multiFlag
	fs.Var(&overrides, "c", "config override key=value (repeatable; key without namespace means the project's)")
	assume := cost.DefaultAssumptions()
	assume.Flags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	given := overrides
	// A plan needs no real certificate: draw it with the example one (or
	// the example certificate secret, dev) unless the command line names
	// another, so that `make plan STACK=dev` works as printed.
	overrides = append(docsOverrides(*dir, *stack), overrides...)
	g, err := Graph(*dir, *stack, overrides, fn)
	if err != nil {
		return err
	}
	switch *format {
	case "json":
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(g)
	case "text":
		if err := plan.WriteText(stdout, g); err != nil {
			return err
		}
		r, err := cost.Estimate(g, cost.DefaultTable(), assume)
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout)
		cost.Write(stdout, r)
		return nil
	case "mermaid", "dot":
		d, err := architecture.From(g)
		if err != nil {
			return err
		}
		if *format == "dot" {
			_, err = io.WriteString(stdout, d.DOT())
		} else {
			_, err = io.WriteString(stdout, d.Mermaid())
		}
		return err
	case "cost":
		return costCmd(*dir, g, given, assume, stdout, fn)
	}
	return fmt.Errorf("unknown --format %q: use text, json, mermaid, dot or cost", *format)
}

// Estimate is the monthly cost, at the default assumptions, of the stack
// fn builds with the configuration of the running program: the figure
// `make cost` prints. The program runs under mocks to get there, so fn
// must not ask for an estimate itself.
func Estimate(project, stack, region string, fn plan.StackFunc) (float64, error) {
	g, err := plan.RunInPlace(project, stack, region, fn)
	if err != nil {
		return 0, fmt.Errorf("estimate the stack's cost: %w", err)
	}
	r, err := cost.Estimate(g, cost.DefaultTable(), cost.DefaultAssumptions())
	if err != nil {
		return 0, fmt.Errorf("estimate the stack's cost: %w", err)
	}
	return r.Total(), nil
}

// Graph runs the program for stack with overrides.
func Graph(dir, stack string, overrides []string, fn plan.StackFunc) (*plan.Graph, error) {
	cfg, err := plan.Config(dir, Project, stack, overrides)
	if err != nil {
		return nil, err
	}
	return plan.Run(Project, stack, cfg, fn)
}

// costCmd prints g's estimate, then all stacks side by side (each with its
// own stack file, its example certificate and the same given overrides).
func costCmd(dir string, g *plan.Graph, overrides []string, a cost.Assumptions, stdout io.Writer, fn plan.StackFunc) error {
	table := cost.DefaultTable()
	r, err := cost.Estimate(g, table, a)
	if err != nil {
		return err
	}
	cost.Write(stdout, r)
	var all []*cost.Report
	for _, s := range Stacks() {
		sg := g
		if s != g.Stack {
			if sg, err = Graph(dir, s, append(docsOverrides(dir, s), overrides...), fn); err != nil {
				return fmt.Errorf("stack %s: %w", s, err)
			}
		}
		sr, err := cost.Estimate(sg, table, a)
		if err != nil {
			return err
		}
		all = append(all, sr)
	}
	fmt.Fprintln(stdout, "\nthree stacks, same assumptions:")
	cost.Compare(stdout, all)
	return nil
}

// ReadmeSection names, among Docs' files, the text (the stacks' estimated
// costs) that goes between the README's markers rather than into a file of
// its own.
const ReadmeSection = "README.md#architecture"

// Readme markers around the generated section.
const (
	ReadmeStart = "<!-- architecture:start (make diagrams) -->\n"
	ReadmeEnd   = "<!-- architecture:end -->\n"
)

// SpliceReadme puts section between the markers of readme.
func SpliceReadme(readme, section string) (string, error) {
	i, j := strings.Index(readme, ReadmeStart), strings.Index(readme, ReadmeEnd)
	if i < 0 || j < i {
		return "", fmt.Errorf("README.md lacks the markers %q and %q", strings.TrimSpace(ReadmeStart), strings.TrimSpace(ReadmeEnd))
	}
	return readme[:i+len(ReadmeStart)] + section + readme[j:], nil
}

// Docs renders docs/architecture.md and one DOT file per stack. It returns
// file name → content, so a test can compare them with the checked-in docs.
// extra overrides apply too (the tests point artifactPath at a stand-in:
// nothing drawn depends on the build).
func Docs(dir string, extra []string, fn plan.StackFunc) (map[string]string, error) {
	var md strings.Builder
	md.WriteString("# Architecture\n\nDrawn by `make diagrams` from each stack's offline plan (the real program under mocks,\nwith the example certificate), not by hand; a test fails when this file is stale.\nThe SVGs are rendered by Graphviz from the `.dot` files beside them.\n")
	files := map[string]string{}
	var readme strings.Builder
	readme.WriteString("| stack | estimated monthly cost (on-demand, default assumptions) |\n|---|---|\n")
	for _, s := range Stacks() {
		g, err := Graph(dir, s, append(docsOverrides(dir, s), extra...), fn)
		if err != nil {
			return nil, fmt.Errorf("stack %s: %w", s, err)
		}
		d, err := architecture.From(g)
		if err != nil {
			return nil, err
		}
		r, err := cost.Estimate(g, cost.DefaultTable(), cost.DefaultAssumptions())
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(&md, "\n## %s\n\nEstimated %s a month (on-demand, `make cost STACK=%s` for the lines and assumptions).\n\n![%s](architecture-%s.svg)\n\n```mermaid\n%s```\n", s, fmt.Sprintf("$%.2f", r.Total()), s, s, s, d.Mermaid())
		files["architecture-"+s+".dot"] = d.DOT()
		fmt.Fprintf(&readme, "| %s | $%.2f |\n", s, r.Total())
		stackFile := filepath.Join(dir, "Pulumi."+s+".yaml")
		old, err := os.ReadFile(stackFile)
		if err != nil {
			return nil, err
		}
		files[StackFilePrefix+s] = WithEstimate(string(old), r.Total())
	}
	project, err := os.ReadFile(filepath.Join(dir, "Pulumi.yaml"))
	if err != nil {
		return nil, err
	}
	if files[ProjectFileName], err = ProjectFile(string(project)); err != nil {
		return nil, err
	}
	files["architecture.md"] = md.String()
	files[ReadmeSection] = readme.String() + "\nEach stack's diagram: [docs/architecture.md](docs/architecture.md).\n"
	return files, nil
}

// StackFilePrefix marks, in Docs' files, the stack files (their name is
// StackFilePrefix + the stack): written in the project's directory.
const StackFilePrefix = "stack:"

// EstimateKey is the stack-file key holding the stack's cost estimate, which
// its budget is a percentage of (the deployed program does not price
// itself: it reads this).
const EstimateKey = Project + ":budgetEstimateUsd"

// WithEstimate is a stack file's content with its EstimateKey set to usd:
// the line replaced where it is, else added at the end of the config map.
func WithEstimate(content string, usd float64) string {
	line := fmt.Sprintf("  %s: \"%.2f\"", EstimateKey, usd)
	lines := strings.Split(strings.TrimRight(content, "\n"), "\n")
	for i, l := range lines {
		if strings.HasPrefix(strings.TrimSpace(l), EstimateKey+":") {
			lines[i] = line
			return strings.Join(lines, "\n") + "\n"
		}
	}
	return strings.Join(append(lines,
		"  # The offline estimate (make cost) the budget is budgetPercent of: written by `make diagrams`.",
		line), "\n") + "\n"
}

func docsCmd(args []string, stdout io.Writer, fn plan.StackFunc) error {
	fs := flag.NewFlagSet("docs", flag.ContinueOnError)
	out := fs.String("out", "docs", "directory to write to")
	dir := fs.String("dir", ".", "directory holding Pulumi.yaml and the stack files")
	if err := fs.Parse(args); err != nil {
		return err
	}
	files, err := Docs(*dir, nil, fn)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	for name, content := range files {
		path := filepath.Join(*out, name)
		if stack, ok := strings.CutPrefix(name, StackFilePrefix); ok {
			path = filepath.Join(*dir, "Pulumi."+stack+".yaml")
		}
		if name == ProjectFileName {
			path = filepath.Join(*dir, "Pulumi.yaml")
		}
		if name == ReadmeSection {
			path = filepath.Join(*dir, "README.md")
			old, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			if content, err = SpliceReadme(string(old), content); err != nil {
				return err
			}
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			return err
		}
		fmt.Fprintln(stdout, "wrote", path)
	}
	return nil
}

// ProjectFileName names, among Docs' files, Pulumi.yaml: its config block
// is written from config.Keys (the one table of keys, types, defaults and
// descriptions), and a test fails when the checked-in file is stale.
const ProjectFileName = "project:Pulumi.yaml"

// ProjectFile is the project file old (its name, runtime and description
// kept) with its config block made from config.Keys.
func ProjectFile(old string) (string, error) {
	head, _, ok := strings.Cut(old, "\nconfig:\n")
	if !ok {
		return "", errors.New("the project file (Pulumi.yaml) has no config: block")
	}
	var b strings.Builder
	b.WriteString(head + "\nconfig:\n")
	for _, k := range config.Keys() {
		fmt.Fprintf(&b, "  %s:\n    type: %s\n", k.Name, k.Kind)
		if k.Kind == config.Array {
			b.WriteString("    items:\n      type: string\n")
		}
		if k.Secret {
			b.WriteString("    secret: true\n")
		}
		fmt.Fprintf(&b, "    description: %s\n", yamlString(k.Description))
		switch d := k.Default.(type) {
		case nil:
		case string:
			fmt.Fprintf(&b, "    default: %s\n", yamlString(d))
		case []string:
			quoted := make([]string, len(d))
			for i, s := range d {
				quoted[i] = yamlString(s)
			}
			fmt.Fprintf(&b, "    default: [%s]\n", strings.Join(quoted, ", "))
		default:
			fmt.Fprintf(&b, "    default: %v\n", d)
		}
	}
	return b.String(), nil
}

// yamlString is s as a YAML double-quoted scalar.
func yamlString(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "\t", `\t`)
	return `"` + r.Replace(s) + `"`
}

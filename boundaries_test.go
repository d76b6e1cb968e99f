package main

import (
	"bufio"
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// listed is a package as `go list -deps -json` describes it.
type listed struct {
	ImportPath string
	Imports    []string
	Deps       []string
	Standard   bool
}

func goList(t *testing.T, args ...string) []listed {
	t.Helper()
	out, err := exec.Command("go", append([]string{"list", "-json"}, args...)...).Output()
	require.NoError(t, err)
	var pkgs []listed
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for dec.More() {
		var p listed
		require.NoError(t, dec.Decode(&p))
		pkgs = append(pkgs, p)
	}
	return pkgs
}

var tiers = []string{"webstack/network", "webstack/security", "webstack/database", "webstack/compute"}

// The boundaries of the layout hold by test, not by habit: the app never
// sees Pulumi; a tier imports no other tier (internal/stack composes them);
// nothing else under internal/ imports a tier; test helpers stay out of the
// program.
func TestPackageBoundaries(t *testing.T) {
	// Everything the app's packages depend on, in one listing: no Pulumi
	// package among them (and for one that is, who imports it).
	appDeps := goList(t, "-deps", "./app/...")
	for _, d := range appDeps {
		if !strings.HasPrefix(d.ImportPath, "github.com/pulumi/") {
			continue
		}
		for _, by := range appDeps {
			if !strings.HasPrefix(by.ImportPath, "github.com/pulumi/") && slices.Contains(by.Imports, d.ImportPath) {
				t.Errorf("%s imports %s, and the app depends on it: the app never imports Pulumi", by.ImportPath, d.ImportPath)
			}
		}
	}
	for _, p := range goList(t, "./...") {
		path := p.ImportPath
		switch {
		case strings.HasPrefix(path, "webstack/internal/") && path != "webstack/internal/stack":
			// internal/stack is the composition: the one package that
			// imports the tiers (main.go runs it).
			for _, imp := range p.Imports {
				assert.NotContains(t, tiers, imp, "%s imports the tier %s", path, imp)
			}
		}
		for _, tier := range tiers {
			if path != tier && containsTier(path) {
				assert.NotContains(t, p.Imports, tier, "tier %s imports tier %s: main composes them", path, tier)
			}
		}
	}
	for _, d := range goList(t, "-deps", ".") {
		assert.False(t, strings.HasPrefix(d.ImportPath, "webstack/") && strings.HasSuffix(d.ImportPath, "test"), "the program's build includes the test helper %s", d.ImportPath)
		assert.False(t, strings.HasPrefix(d.ImportPath, "webstack/app/"), "the program imports the app package %s: it sees only the build", d.ImportPath)
		// One program, one job: what `pulumi up` runs links no offline tool,
		// no twin, no MongoDB driver.
		for _, not := range []string{"webstack/internal/offline", "webstack/internal/twin", "webstack/internal/cmd/", "webstack/internal/mongowire", "go.mongodb.org/"} {
			assert.False(t, strings.HasPrefix(d.ImportPath, not), "the deployed program links %s", d.ImportPath)
		}
	}
}

func containsTier(path string) bool {
	for _, tier := range tiers {
		if path == tier {
			return true
		}
	}
	return false
}

// No package exports a mutable variable (sentinel errors excepted): tables
// are functions or unexported, so nothing can change them at run time.
func TestNoExportedMutablePackageVariables(t *testing.T) {
	fset := token.NewFileSet()
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "node_modules" || strings.HasPrefix(d.Name(), ".")) && path != "." {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		for _, decl := range f.Decls {
			g, ok := decl.(*ast.GenDecl)
			if !ok || g.Tok != token.VAR {
				continue
			}
			for _, spec := range g.Specs {
				for _, n := range spec.(*ast.ValueSpec).Names {
					if n.IsExported() && !strings.HasPrefix(n.Name, "Err") {
						t.Errorf("%s: exported package variable %s", fset.Position(n.Pos()), n.Name)
					}
				}
			}
		}
		return nil
	})
	require.NoError(t, err)
}

// README's layout section has an entry (a line of its own) for every
// package directory down to two levels, and no entry for one that is gone.
func TestReadmeLayoutMatchesTheTree(t *testing.T) {
	layout := readmeSection(t, "## Layout")
	entries := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^    ([a-z][a-z0-9_./-]*?)/?(?:\s|$)`).FindAllStringSubmatch(layout, -1) {
		entries[m[1]] = true
	}
	for _, p := range goList(t, "./...") {
		dir := strings.TrimPrefix(strings.TrimPrefix(p.ImportPath, "webstack"), "/")
		if dir == "" || strings.Count(dir, "/") > 1 {
			continue
		}
		assert.True(t, entries[dir], "README's layout has no entry for %s", dir)
	}
	for e := range entries {
		if _, err := os.Stat(e); err != nil {
			t.Errorf("README's layout lists %s, which is not in the tree", e)
		}
	}
}

func readmeSection(t *testing.T, heading string) string {
	t.Helper()
	out, err := os.ReadFile("README.md")
	require.NoError(t, err)
	var b strings.Builder
	in := false
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "## ") {
			in = line == heading
		}
		if in {
			b.WriteString(line + "\n")
		}
	}
	require.NotEmpty(t, b.String(), "README has no %q section", heading)
	return b.String()
}

// Every relative link in README.md and docs/*.md names a file that exists
// and, with a #fragment, a heading of it (GitHub's anchor of the heading).
func TestDocsLinksResolve(t *testing.T) {
	docs, err := filepath.Glob("docs/*.md")
	require.NoError(t, err)
	link := regexp.MustCompile(`\]\(([^)\s]+)\)`)
	for _, doc := range append([]string{"README.md"}, docs...) {
		text, err := os.ReadFile(doc)
		require.NoError(t, err)
		for _, m := range link.FindAllStringSubmatch(string(text), -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			file, frag, _ := strings.Cut(target, "#")
			path := doc
			if file != "" {
				path = filepath.Join(filepath.Dir(doc), file)
				if _, err := os.Stat(path); err != nil {
					t.Errorf("%s links to %s, which does not exist", doc, target)
					continue
				}
			}
			if frag != "" {
				content, err := os.ReadFile(path)
				require.NoError(t, err)
				assert.Contains(t, headingAnchors(string(content)), frag, "%s links to %s: no such heading", doc, target)
			}
		}
	}
}

// headingAnchors are the anchors GitHub gives a Markdown file's headings:
// lower case, punctuation but hyphens and underscores dropped, spaces hyphens.
func headingAnchors(md string) []string {
	var out []string
	inCode := false
	for line := range strings.SplitSeq(md, "\n") {
		if strings.HasPrefix(line, "```") {
			inCode = !inCode
		}
		if inCode || !strings.HasPrefix(line, "#") {
			continue
		}
		h := strings.ToLower(strings.TrimSpace(strings.TrimLeft(line, "#")))
		var b strings.Builder
		for _, r := range h {
			switch {
			case r == ' ':
				b.WriteRune('-')
			case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
				b.WriteRune(r)
			}
		}
		out = append(out, b.String())
	}
	return out
}

package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
)

type workflow struct {
	Jobs map[string]struct {
		If          string            `yaml:"if"`
		Permissions map[string]string `yaml:"permissions"`
		Steps       []struct {
			Uses string            `yaml:"uses"`
			Run  string            `yaml:"run"`
			With map[string]string `yaml:"with"`
			Env  map[string]string `yaml:"env"`
		} `yaml:"steps"`
	} `yaml:"jobs"`
}

// The preview job must finish on a fresh stack with only the secrets its
// comment names: the build exists before the program runs, the JWT secret
// (and for staging/prod the certificate) are set in the stack, and the PR
// comment may be written.
func TestCIPreviewRunsOnAFreshStackWithTheSecretsItNames(t *testing.T) {
	raw, err := os.ReadFile(".github/workflows/ci.yml")
	require.NoError(t, err)
	var wf workflow
	require.NoError(t, yaml.Unmarshal(raw, &wf))
	job, ok := wf.Jobs["preview"]
	require.True(t, ok)
	assert.Equal(t, "write", job.Permissions["pull-requests"], "comment-on-pr needs it")
	assert.Equal(t, "write", job.Permissions["id-token"], "OIDC for AWS")

	built, configured, previewed := -1, -1, -1
	for i, st := range job.Steps {
		if strings.Contains(st.Run, "make build") {
			built = i
		}
		if strings.Contains(st.Run, "pulumi config set --secret jwtSecret") {
			configured = i
			assert.Contains(t, st.Env["JWT_SECRET"], "secrets.JWT_SECRET")
			assert.Contains(t, st.Run, "pulumi config set certificateArn", "staging/prod need a certificate")
			assert.Contains(t, st.Run, "pulumi config set webTlsSecretArn", "dev serves HTTPS from its certificate secret")
			assert.Contains(t, st.Run, "stack select --create", "a fresh stack is created")
		}
		if st.With["command"] == "preview" {
			previewed = i
		}
	}
	require.NotEqual(t, -1, previewed)
	assert.True(t, built >= 0 && built < previewed, "make build runs before the preview")
	assert.True(t, configured >= 0 && configured < previewed, "the stack's secrets are set before the preview")

	// Every secret the workflow uses is named in the comment above the job.
	used := regexp.MustCompile(`secrets\.([A-Z_]+)`).FindAllStringSubmatch(string(raw), -1)
	comment := string(raw[strings.Index(string(raw), "preview:"):strings.Index(string(raw), "needs: test")])
	var names []string
	for _, u := range used {
		if !slices.Contains(names, u[1]) {
			names = append(names, u[1])
			assert.Contains(t, comment, u[1], "the preview job's comment names secret %s", u[1])
		}
	}
	assert.Len(t, names, 5)
}

// The test job runs `make test` on a hosted runner, which lacks cloud-init
// and qemu-user: make test starts with scripts/deps.sh, which finds what is
// missing and names the packages (installing them when it can). Run here
// on a PATH with nothing but the shell's basics, and on one where every
// tool is present.
func TestMakeTestInstallsWhatTheTestsNeed(t *testing.T) {
	mk, err := os.ReadFile("Makefile")
	require.NoError(t, err)
	assert.Regexp(t, `(?m)^test:\n(\t@echo .*\n)?\t@\$\(GO\) run ./internal/cmd/testrun .*test$`, string(mk), "make test is testrun's test steps (deps among them: internal/cmd/testrun's tests hold the order)")

	bare := t.TempDir()
	for _, tool := range []string{"bash", "id"} {
		p, err := exec.LookPath(tool)
		require.NoError(t, err)
		require.NoError(t, os.Symlink(p, filepath.Join(bare, tool)))
	}
	// Font files are looked for under DEPS_ROOT: an empty folder first.
	fontRoot := t.TempDir()
	run := func(path string) (string, error) {
		cmd := exec.Command(filepath.Join(bare, "bash"), "scripts/deps.sh", "test")
		cmd.Env = []string{"PATH=" + path, "DEPS_ROOT=" + fontRoot}
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := run(bare)
	require.Error(t, err, "nothing to install with, so it stops:\n%s", out)
	want := []string{"cloud-init", "shellcheck", "curl", "npm", "chromium", "fonts-dejavu-core", "fonts-liberation"}
	if os.Getuid() == 0 {
		want = append(want, "iproute2", "nftables") // the twin's Go tests make namespaces as root
	}
	for _, p := range want {
		assert.Contains(t, out, " "+p, "deps names the package %s", p)
	}

	full := t.TempDir()
	for _, tool := range []string{"cloud-init", "shellcheck", "curl", "npm", "chromium", "ip", "nft"} {
		require.NoError(t, os.WriteFile(filepath.Join(full, tool), []byte("#!/bin/sh\n"), 0o755))
	}
	// Every font file is looked for: with one missing, its package is named.
	deps, err := os.ReadFile("scripts/deps.sh")
	require.NoError(t, err)
	fonts := regexp.MustCompile(`(?m)^  \[(/usr/share/fonts/[^\]]+)\]="?([a-z0-9|-]+)"?$`).FindAllStringSubmatch(string(deps), -1)
	require.Len(t, fonts, 12, "two sets of six faces")
	for _, m := range fonts {
		require.NoError(t, os.MkdirAll(filepath.Dir(filepath.Join(fontRoot, m[1])), 0o755))
	}
	for i, missing := range fonts {
		for j, m := range fonts {
			if j == i {
				_ = os.Remove(filepath.Join(fontRoot, m[1]))
			} else {
				require.NoError(t, os.WriteFile(filepath.Join(fontRoot, m[1]), nil, 0o644))
			}
		}
		out, err = run(bare + ":" + full)
		require.Error(t, err, "%s is missing", missing[1])
		alts := strings.Split(missing[2], "|")
		assert.Contains(t, out, " "+alts[len(alts)-1], "%s is missing: its package is named (with no apt here, the last of %s)", missing[1], missing[2])
	}
	for _, m := range fonts {
		require.NoError(t, os.WriteFile(filepath.Join(fontRoot, m[1]), nil, 0o644))
	}
	out, err = run(bare + ":" + full)
	assert.NoError(t, err, "everything is here: nothing to do\n%s", out)
	assert.Empty(t, out)
}

// A pull request from a fork gets no secrets, so the preview is not run
// there (it could only fail), and another job says why; pushes and pull
// requests from this repository run it.
func TestCIPreviewIsSkippedOnForksSayingWhy(t *testing.T) {
	raw, err := os.ReadFile(".github/workflows/ci.yml")
	require.NoError(t, err)
	var wf workflow
	require.NoError(t, yaml.Unmarshal(raw, &wf))
	guard := "github.event.pull_request.head.repo.full_name == github.repository"
	assert.Contains(t, wf.Jobs["preview"].If, "github.event_name != 'pull_request'")
	assert.Contains(t, wf.Jobs["preview"].If, guard)
	skipped, ok := wf.Jobs["preview-skipped"]
	require.True(t, ok, "a job says why the preview did not run")
	assert.Contains(t, skipped.If, strings.ReplaceAll(guard, "==", "!="), "exactly when the preview does not run")
	require.Len(t, skipped.Steps, 1)
	assert.Contains(t, skipped.Steps[0].Run, "::notice")
	assert.Contains(t, skipped.Steps[0].Run, "forks get no repository secrets")
}

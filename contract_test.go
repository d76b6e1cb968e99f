package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"webstack/compute"
	"webstack/database"
	"webstack/internal/cloudinit"
)

var (
	conduitOnce sync.Once
	conduitBin  string
	conduitErr  error
)

// conduit builds the server for this machine once: the infrastructure
// knows the app only as a program and its CONDUIT_* settings.
func conduit(t *testing.T) string {
	t.Helper()
	conduitOnce.Do(func() {
		dir, err := os.MkdirTemp("", "conduit-contract-")
		if err != nil {
			conduitErr = err
			return
		}
		conduitBin = filepath.Join(dir, "conduit")
		out, err := exec.Command("go", "build", "-o", conduitBin, "./app/cmd/conduit").CombinedOutput()
		if err != nil {
			conduitErr = err
			conduitBin = string(out)
		}
	})
	require.NoError(t, conduitErr, conduitBin)
	return conduitBin
}

// Every CONDUIT_* setting the user data of every tier of every stack
// writes is one `conduit <role>` accepts, with a value it accepts: the
// program itself says so (--check-config), with nothing else in its
// environment.
func TestUserDataSettingsAreOnesTheServerAccepts(t *testing.T) {
	bin := conduit(t)
	for _, s := range allStacks {
		for _, lt := range planOf(t, s).OfType("aws:ec2/launchTemplate:LaunchTemplate") {
			doc := userData(t, lt, "userData")
			env, err := cloudinit.File(doc, cloudinit.EnvFile)
			require.NoError(t, err)
			unit, err := cloudinit.File(doc, cloudinit.UnitFile)
			require.NoError(t, err)
			role := strings.TrimPrefix(lt.Name, "app-")
			require.Contains(t, unit, "ExecStart=/usr/local/bin/conduit "+role+"\n", "%s %s runs its role", s, lt.Name)
			var vars []string
			for _, line := range strings.Split(strings.TrimSpace(env), "\n") {
				require.True(t, strings.HasPrefix(line, "CONDUIT_"), "%s %s: %q", s, lt.Name, line)
				vars = append(vars, line)
			}
			cmd := exec.Command(bin, role, "--check-config")
			cmd.Env = vars
			out, err := cmd.CombinedOutput()
			assert.NoError(t, err, "%s %s: conduit %s refuses its settings:\n%s", s, lt.Name, role, out)
		}
	}
}

// The check fails when the contract breaks: a misspelt or foreign setting.
func TestSettingsContractCatchesAMisspeltKey(t *testing.T) {
	cmd := exec.Command(conduit(t), "web", "--check-config")
	cmd.Env = []string{"CONDUIT_UPSTREAM=http://10.0.32.10:8081", "CONDUIT_WAF_MODE=on"}
	out, err := cmd.CombinedOutput()
	require.Error(t, err)
	assert.Contains(t, string(out), "CONDUIT_WAF_MODE is not a setting of conduit web")
}

// The app's own defaults for what the infrastructure also states are the
// same values: where the metrics are scraped (compute.AdminAddr, which the
// CloudWatch agent reads) and DocumentDB's port (database.Port, which the
// security groups open). The user data sets both explicitly; the defaults
// are what `make run` and a hand-started server use.
func TestTheAppsDefaultsAreTheInfrastructures(t *testing.T) {
	out, err := exec.Command(conduit(t), "api", "--help").CombinedOutput()
	require.Error(t, err, "--help exits non-zero")
	help := string(out)
	defaultOf := func(flag string) string {
		m := regexp.MustCompile(`(?m)^\s+-` + regexp.QuoteMeta(flag) + ` .*\n\s+.*\(default ([^;)]+)`).FindStringSubmatch(help)
		require.NotNil(t, m, "conduit api --help shows --%s's default:\n%s", flag, help)
		return m[1]
	}
	assert.Equal(t, compute.AdminAddr, defaultOf("admin-addr"))
	assert.Equal(t, strconv.Itoa(database.Port), defaultOf("db-port"))
}

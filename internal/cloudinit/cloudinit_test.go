package cloudinit_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"webstack/internal/cloudinit"
	"webstack/internal/cloudinit/cloudinittest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const sha = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

func boot(role string, port int) cloudinit.Boot {
	b := cloudinit.Boot{
		Role: role, Port: port,
		Env:     map[string]string{"CONDUIT_WEB_ADDR": "0.0.0.0:80", "CONDUIT_UPSTREAM": "http://10.0.32.10:8081"},
		Release: cloudinit.Release{Bucket: "webstack-dev-artifacts-1a2b3c", Key: "conduit/" + sha + "/conduit-linux-arm64", SHA256: sha, Region: "us-east-1"},
	}
	if role == "api" {
		b.Env = map[string]string{"CONDUIT_API_ADDR": "0.0.0.0:8081", "CONDUIT_DB_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:x"}
		b.DocumentDBCA = true
	}
	return b
}

func TestRenderedUserDataPassesCloudInitSchemaAndShellcheck(t *testing.T) {
	for _, b := range []cloudinit.Boot{boot("web", 80), boot("web", 8080), boot("api", 8081)} {
		doc, err := cloudinit.Render(b)
		require.NoError(t, err)
		require.True(t, strings.HasPrefix(doc, "#cloud-config\n"))
		cloudinittest.Check(t, doc)
	}
}

func TestLintCatchesBrokenDocuments(t *testing.T) {
	if errors.Is(cloudinittest.Lint(""), cloudinittest.ErrLinterMissing) {
		t.Skip(cloudinittest.ErrLinterMissing)
	}
	doc, err := cloudinit.Render(boot("api", 8081))
	require.NoError(t, err)
	assert.Error(t, cloudinittest.Lint(doc+"runcmd: 3\n"), "schema violation")
	broken := strings.Replace(doc, `if [ "$got" != "$want" ]; then`, `if [ $got != $want ]; then`, 1)
	assert.Error(t, cloudinittest.Lint(broken), "unquoted variables")
	if _, err := exec.LookPath("systemd-analyze"); err == nil {
		assert.Error(t, cloudinittest.Lint(strings.Replace(doc, "NoNewPrivileges=yes", "NoNewPrivilege=yes", 1)), "a misspelt hardening directive")
	}
}

func TestInstallScriptVerifiesTheReleaseBeforeStarting(t *testing.T) {
	doc, err := cloudinit.Render(boot("api", 8081))
	require.NoError(t, err)
	script, err := cloudinit.Script(doc)
	require.NoError(t, err)
	assert.Contains(t, script, "want='"+sha+"'")
	check := strings.Index(script, `if [ "$got" != "$want" ]`)
	install := strings.Index(script, "install -m 0755")
	start := strings.Index(script, "systemctl enable --now conduit.service")
	require.True(t, check > 0 && install > check && start > install, "fetch → verify → install → start, in that order")
	assert.Contains(t, script, "set -euo pipefail")
	assert.Contains(t, script, cloudinit.CABundleURL, "api fetches the DocumentDB CA bundle")

	web, _ := cloudinit.Render(boot("web", 80))
	webScript, _ := cloudinit.Script(web)
	assert.NotContains(t, webScript, cloudinit.CABundleURL, "web needs no database CA")
}

func TestUnitIsHardened(t *testing.T) {
	for _, tt := range []struct {
		port    int
		bindCap bool
	}{{80, true}, {8080, false}} {
		doc, err := cloudinit.Render(boot("web", tt.port))
		require.NoError(t, err)
		unit, err := cloudinit.File(doc, cloudinit.UnitFile)
		require.NoError(t, err)
		for _, line := range []string{"DynamicUser=yes", "NoNewPrivileges=yes", "ProtectSystem=strict", "PrivateTmp=yes", "Restart=on-failure", "ExecStart=/usr/local/bin/conduit web", "EnvironmentFile=/etc/conduit/conduit.env"} {
			assert.Contains(t, unit, line+"\n")
		}
		assert.Equal(t, tt.bindCap, strings.Contains(unit, "AmbientCapabilities=CAP_NET_BIND_SERVICE"), "port %d", tt.port)
	}
}

func TestEnvFileHoldsSettingsNeverSecrets(t *testing.T) {
	doc, err := cloudinit.Render(boot("api", 8081))
	require.NoError(t, err)
	env, err := cloudinit.File(doc, cloudinit.EnvFile)
	require.NoError(t, err)
	assert.Equal(t, "CONDUIT_API_ADDR=0.0.0.0:8081\nCONDUIT_DB_SECRET_ARN=arn:aws:secretsmanager:us-east-1:123456789012:secret:x\n", env)

	for _, bad := range []map[string]string{
		{"CONDUIT_JWT_SECRET": "hunter2hunter2"},
		{"CONDUIT_DB_PASSWORD": "x"},
		{"conduit_lower": "x"},
		{"CONDUIT_X": "line\nbreak"},
	} {
		b := boot("api", 8081)
		b.Env = bad
		_, err := cloudinit.Render(b)
		assert.Error(t, err, "cloudinit.Render accepted env %v", bad)
	}
}

func TestRenderRejectsBadReleases(t *testing.T) {
	for name, mutate := range map[string]func(*cloudinit.Boot){
		"short sha":       func(b *cloudinit.Boot) { b.Release.SHA256 = "abc" },
		"quote in key":    func(b *cloudinit.Boot) { b.Release.Key = "conduit/'; rm -rf /" },
		"empty bucket":    func(b *cloudinit.Boot) { b.Release.Bucket = "" },
		"unknown role":    func(b *cloudinit.Boot) { b.Role = "db" },
		"port out of use": func(b *cloudinit.Boot) { b.Port = 0 },
	} {
		b := boot("web", 80)
		mutate(&b)
		_, err := cloudinit.Render(b)
		assert.Error(t, err, name)
	}
}

// runInstaller runs the rendered install script of b with shims for what
// touches AWS or the host (aws, curl, install, chmod, systemctl, sleep):
// aws fails awsFailures times (AccessDenied, as before a grant has
// propagated), then writes content. It returns the script's error and the
// shims' log.
func runInstaller(t *testing.T, b cloudinit.Boot, awsFailures int, content string) (string, error) {
	t.Helper()
	doc, err := cloudinit.Render(b)
	require.NoError(t, err)
	script, err := cloudinit.Script(doc)
	require.NoError(t, err)
	dir := t.TempDir()
	shim := func(name, body string) {
		require.NoError(t, os.WriteFile(dir+"/"+name, []byte("#!/bin/bash\n"+body+"\n"), 0o755))
	}
	log := dir + "/log"
	shim("aws", `n=$(cat "`+dir+`/count" 2>/dev/null || echo 0); echo $((n+1)) > "`+dir+`/count"
if [ "$n" -lt `+strconv.Itoa(awsFailures)+` ]; then echo "AccessDenied" >&2; exit 254; fi
printf '%s' '`+content+`' > "${@: -1}"; echo "aws $*" >> "`+log+`"`)
	for _, name := range []string{"curl", "install", "chmod", "systemctl"} {
		shim(name, `echo "`+name+` $*" >> "`+log+`"`)
	}
	shim("sleep", `echo "sleep $*" >> "`+log+`"`)
	require.NoError(t, os.WriteFile(dir+"/install.sh", []byte(script), 0o755))
	cmd := exec.Command("bash", dir+"/install.sh")
	cmd.Env = []string{"PATH=" + dir + ":/usr/bin:/bin"}
	out, err := cmd.CombinedOutput()
	logged, _ := os.ReadFile(log)
	return string(out) + string(logged), err
}

func TestInstallerWaitsForItsGrantThenStartsTheService(t *testing.T) {
	b := boot("api", 8081)
	content := "the build"
	sum := sha256.Sum256([]byte(content))
	b.Release.SHA256 = hex.EncodeToString(sum[:])
	b.Release.Key = "conduit/" + b.Release.SHA256 + "/conduit-linux-arm64"

	log, err := runInstaller(t, b, 12, content)
	require.NoError(t, err, log)
	assert.Equal(t, 12, strings.Count(log, "sleep "), "one pause per failed fetch: %s", log)
	assert.Contains(t, log, "install -m 0755 -o root -g root")
	assert.Contains(t, log, "curl ", "the api fetches the DocumentDB CA bundle")
	assert.Contains(t, log, "systemctl enable --now conduit.service")

	log, err = runInstaller(t, b, 0, "a tampered build")
	require.Error(t, err, "a build whose sha256 differs is refused")
	assert.Contains(t, log, "refusing to start")
	assert.NotContains(t, log, "systemctl enable")
	assert.NotContains(t, log, "install -m")

	log, err = runInstaller(t, b, 1000, content)
	require.Error(t, err, "gives up after about half an hour")
	assert.Equal(t, 59, strings.Count(log, "sleep "))
	total := 0
	for _, l := range strings.Split(log, "\n") {
		if n, ok := strings.CutPrefix(l, "sleep "); ok {
			s, _ := strconv.Atoi(n)
			total += s
		}
	}
	assert.InDelta(t, 30*60, total, 5*60, "seconds waited before giving up")
}

func TestUnitRestartsUntilItConverges(t *testing.T) {
	doc, err := cloudinit.Render(boot("api", 8081))
	require.NoError(t, err)
	unit, err := cloudinit.File(doc, cloudinit.UnitFile)
	require.NoError(t, err)
	assert.Contains(t, unit, "StartLimitIntervalSec=0\n", "systemd's default start limit would leave the unit dead after early failures")
	assert.Contains(t, unit, "ExecReload=/bin/kill -HUP $MAINPID\n", "systemctl reload reads the rotating secrets again at once")
	assert.Contains(t, unit, "Restart=on-failure\n")
}

// With telemetry, the instance ships its log file and a few metrics to its
// tier's log group: conduit writes the file (a directory systemd makes for
// the dynamic user), the agent's configuration names the group, the
// namespace and conduit's admin listener, and selects only the metrics
// meant for CloudWatch, each with fixed dimensions.
func TestTelemetryShipsTheLogFileAndTheChosenMetrics(t *testing.T) {
	for _, role := range []string{"web", "api"} {
		b := boot(role, 8080)
		b.Telemetry = &cloudinit.Telemetry{LogGroup: "/webstack/dev/" + role, Namespace: "webstack/dev", MetricsAddr: "127.0.0.1:9090"}
		doc, err := cloudinit.Render(b)
		require.NoError(t, err)
		cloudinittest.Check(t, doc)
		env, err := cloudinit.File(doc, cloudinit.EnvFile)
		require.NoError(t, err)
		assert.Contains(t, env, "CONDUIT_LOG_FILE="+cloudinit.LogFile+"\n")
		unit, err := cloudinit.File(doc, cloudinit.UnitFile)
		require.NoError(t, err)
		assert.Contains(t, unit, "LogsDirectory=conduit\n")

		raw, err := cloudinit.File(doc, cloudinit.AgentConfig)
		require.NoError(t, err)
		var agent struct {
			Logs struct {
				Collected struct {
					Files struct {
						List []struct {
							Path  string `json:"file_path"`
							Group string `json:"log_group_name"`
						} `json:"collect_list"`
					} `json:"files"`
				} `json:"logs_collected"`
				Metrics struct {
					Prometheus struct {
						Group  string `json:"log_group_name"`
						Config string `json:"prometheus_config_path"`
						EMF    struct {
							Namespace    string `json:"metric_namespace"`
							Declarations []struct {
								Labels     []string   `json:"source_labels"`
								Matcher    string     `json:"label_matcher"`
								Dimensions [][]string `json:"dimensions"`
								Selectors  []string   `json:"metric_selectors"`
							} `json:"metric_declaration"`
						} `json:"emf_processor"`
					} `json:"prometheus"`
				} `json:"metrics_collected"`
			} `json:"logs"`
		}
		require.NoError(t, json.Unmarshal([]byte(raw), &agent), "the agent's configuration is JSON")
		files := agent.Logs.Collected.Files.List
		require.Len(t, files, 1)
		assert.Equal(t, cloudinit.LogFile, files[0].Path)
		assert.Equal(t, "/webstack/dev/"+role, files[0].Group)
		p := agent.Logs.Metrics.Prometheus
		assert.Equal(t, "/webstack/dev/"+role, p.Group)
		assert.Equal(t, cloudinit.ScrapeConfig, p.Config)
		assert.Equal(t, "webstack/dev", p.EMF.Namespace)
		var selected []string
		for _, d := range p.EMF.Declarations {
			assert.Equal(t, []string{"job", "role"}, d.Labels)
			for _, dims := range d.Dimensions {
				assert.Equal(t, "role", dims[0], "every metric is per tier")
				assert.LessOrEqual(t, len(dims), 2, "a fixed, small set of dimensions")
			}
			selected = append(selected, d.Selectors...)
		}
		assert.ElementsMatch(t, []string{"^conduit_http_server_errors_total$", "^conduit_http_latency_seconds$", "^conduit_db_errors_total$", "^conduit_waf_blocked_total$"}, selected)
		scrape, err := cloudinit.File(doc, cloudinit.ScrapeConfig)
		require.NoError(t, err)
		assert.Contains(t, scrape, `targets: ["127.0.0.1:9090"]`)
		script, err := cloudinit.Script(doc)
		require.NoError(t, err)
		assert.Contains(t, script, "amazon-cloudwatch-agent-ctl -a fetch-config -m ec2 -s -c 'file:"+cloudinit.AgentConfig+"'")
		assert.Less(t, strings.Index(script, "systemctl enable --now conduit.service"), strings.Index(script, "amazon-cloudwatch-agent"), "the service starts first, whatever happens to the agent")
	}
	b := boot("web", 8080)
	b.Telemetry = &cloudinit.Telemetry{LogGroup: "/webstack/dev/web; rm -rf /", Namespace: "webstack/dev", MetricsAddr: "127.0.0.1:9090"}
	_, err := cloudinit.Render(b)
	assert.Error(t, err, "unsafe characters are refused")
}

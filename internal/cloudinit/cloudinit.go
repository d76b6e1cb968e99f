// Package cloudinit renders the #cloud-config user data that turns a bare
// Amazon Linux 2023 instance into a conduit server: an environment file of
// settings (never a secret value: secrets are read at start by ARN), a
// hardened systemd unit, and an install script that fetches the release
// with the instance role, refuses it unless its sha256 matches, and starts
// the service. It is plain Go with no Pulumi types, so it is tested alone.
package cloudinit

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"text/template"

	"gopkg.in/yaml.v3"
)

// Release is the build to install.
type Release struct {
	Bucket string // S3 bucket holding the artefact
	Key    string // object key; contains the sha256, so a new build is a new key
	SHA256 string // hex sha256 of the artefact
	Region string // the bucket's region
}

// Boot describes one tier's instance.
type Boot struct {
	// Role is "web" or "api": the conduit subcommand.
	Role string
	// Port the role listens on; below 1024 the unit gets CAP_NET_BIND_SERVICE.
	Port int
	// Env are the role's CONDUIT_* settings. Values must not be secrets:
	// keys naming a secret are accepted only as ..._ARN.
	Env map[string]string
	// DocumentDBCA fetches AWS's RDS/DocumentDB CA bundle to /etc/conduit/global-bundle.pem.
	DocumentDBCA bool
	Release      Release
	// Telemetry ships the tier's logs and metrics to CloudWatch. Nil: they
	// stay on the instance (journal, /metrics on the admin listener).
	Telemetry *Telemetry
}

// Telemetry is where the Amazon CloudWatch agent (Amazon Linux 2023's
// amazon-cloudwatch-agent package) sends what conduit writes: its log file
// to LogGroup (a stream per instance), and the metrics it serves on
// MetricsAddr, scraped every minute, as embedded-metric-format records to
// the same group, from which CloudWatch makes the metrics of Namespace.
// Only log writes are needed: no cloudwatch:PutMetricData.
type Telemetry struct {
	LogGroup    string
	Namespace   string
	MetricsAddr string // host:port of conduit's admin listener
}

// Paths on the instance.
const (
	EnvFile       = "/etc/conduit/conduit.env"
	LogFile       = "/var/log/conduit/conduit.log"
	AgentConfig   = "/etc/conduit/cloudwatch-agent.json"
	ScrapeConfig  = "/etc/conduit/prometheus.yaml"
	UnitFile      = "/etc/systemd/system/conduit.service"
	InstallScript = "/usr/local/sbin/conduit-install"
	Binary        = "/usr/local/bin/conduit"
	CABundle      = "/etc/conduit/global-bundle.pem"
	// CABundleURL is where AWS publishes the bundle DocumentDB's certificates chain to.
	CABundleURL = "https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem"
)

var (
	envKeyRE = regexp.MustCompile(`^CONDUIT_[A-Z0-9_]+$`)
	shaRE    = regexp.MustCompile(`^[0-9a-f]{64}$`)
	safeRE   = regexp.MustCompile(`^[A-Za-z0-9._/:@+=-]*$`)
)

// Render returns the #cloud-config document for b.
func Render(b Boot) (string, error) {
	if err := b.validate(); err != nil {
		return "", err
	}
	if b.Telemetry != nil {
		b.Env = maps.Clone(b.Env)
		b.Env["CONDUIT_LOG_FILE"] = LogFile
	}
	var env strings.Builder
	keys := make([]string, 0, len(b.Env))
	for k := range b.Env {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Fprintf(&env, "%s=%s\n", k, b.Env[k])
	}
	unit, err := execute(unitTemplate, b)
	if err != nil {
		return "", err
	}
	script, err := execute(installTemplate, b)
	if err != nil {
		return "", err
	}
	doc := cloudConfig{
		WriteFiles: []writeFile{
			{Path: EnvFile, Owner: "root:root", Permissions: "0644", Content: env.String()},
			{Path: UnitFile, Owner: "root:root", Permissions: "0644", Content: unit},
			{Path: InstallScript, Owner: "root:root", Permissions: "0755", Content: script},
		},
		RunCmd: [][]string{{InstallScript}},
	}
	if t := b.Telemetry; t != nil {
		agent, scrape, err := telemetryFiles(t)
		if err != nil {
			return "", err
		}
		doc.WriteFiles = append(doc.WriteFiles,
			writeFile{Path: AgentConfig, Owner: "root:root", Permissions: "0644", Content: agent},
			writeFile{Path: ScrapeConfig, Owner: "root:root", Permissions: "0644", Content: scrape})
	}
	var out bytes.Buffer
	out.WriteString("#cloud-config\n")
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		return "", fmt.Errorf("encode cloud-config: %w", err)
	}
	return out.String(), nil
}

// Script returns the install script embedded in a rendered document, for
// linting it on its own.
func Script(doc string) (string, error) { return File(doc, InstallScript) }

// File returns the content of one written file of a rendered document.
func File(doc, path string) (string, error) {
	var c cloudConfig
	if err := yaml.Unmarshal([]byte(doc), &c); err != nil {
		return "", fmt.Errorf("parse cloud-config: %w", err)
	}
	for _, f := range c.WriteFiles {
		if f.Path == path {
			return f.Content, nil
		}
	}
	return "", fmt.Errorf("no %s in the document", path)
}

type cloudConfig struct {
	WriteFiles []writeFile `yaml:"write_files"`
	RunCmd     [][]string  `yaml:"runcmd"`
}

type writeFile struct {
	Path        string `yaml:"path"`
	Owner       string `yaml:"owner"`
	Permissions string `yaml:"permissions"`
	Content     string `yaml:"content"`
}

// telemetryFiles are the agent's configuration and its Prometheus scrape
// configuration. The metrics kept are the few conduit exports for
// CloudWatch, each with a fixed, small set of dimensions (every dimension
// combination is a billed custom metric).
func telemetryFiles(t *Telemetry) (agent, scrape string, err error) {
	declare := func(roles string, dims []string, metrics ...string) map[string]any {
		sel := make([]string, len(metrics))
		for i, m := range metrics {
			sel[i] = "^" + m + "$"
		}
		return map[string]any{"source_labels": []string{"job", "role"}, "label_matcher": "^conduit;(" + roles + ")$", "dimensions": [][]string{dims}, "metric_selectors": sel}
	}
	cfg := map[string]any{
		"agent": map[string]any{"run_as_user": "root"},
		"logs": map[string]any{
			"logs_collected": map[string]any{"files": map[string]any{"collect_list": []any{map[string]any{
				"file_path": LogFile, "log_group_name": t.LogGroup, "log_stream_name": "{instance_id}", "timezone": "UTC",
			}}}},
			"metrics_collected": map[string]any{"prometheus": map[string]any{
				"log_group_name":         t.LogGroup,
				"prometheus_config_path": ScrapeConfig,
				"emf_processor": map[string]any{
					"metric_declaration_dedup": true,
					"metric_namespace":         t.Namespace,
					"metric_declaration": []any{
						declare("web|api", []string{"role"}, "conduit_http_server_errors_total"),
						declare("web|api", []string{"role", "quantile"}, "conduit_http_latency_seconds"),
						declare("api", []string{"role"}, "conduit_db_errors_total"),
						declare("web", []string{"role"}, "conduit_waf_blocked_total"),
					},
				},
			}},
		},
	}
	a, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return "", "", err
	}
	s := fmt.Sprintf("global:\n  scrape_interval: 1m\n  scrape_timeout: 10s\nscrape_configs:\n  - job_name: conduit\n    sample_limit: 10000\n    static_configs:\n      - targets: [%q]\n", t.MetricsAddr)
	return string(a) + "\n", s, nil
}

func (b Boot) validate() error {
	if b.Role != "web" && b.Role != "api" {
		return fmt.Errorf("cloudinit: role %q: want web or api", b.Role)
	}
	if b.Port < 1 || b.Port > 65535 {
		return fmt.Errorf("cloudinit: port %d", b.Port)
	}
	for k, v := range b.Env {
		if !envKeyRE.MatchString(k) {
			return fmt.Errorf("cloudinit: env key %q: want CONDUIT_[A-Z0-9_]+", k)
		}
		if (strings.Contains(k, "SECRET") || strings.Contains(k, "PASSWORD")) && !strings.HasSuffix(k, "_ARN") {
			return fmt.Errorf("cloudinit: %s looks like a secret value; pass its Secrets Manager ARN (%s_ARN) instead", k, k)
		}
		if strings.ContainsAny(v, "\n\r\x00") {
			return fmt.Errorf("cloudinit: env %s holds a line break", k)
		}
	}
	if t := b.Telemetry; t != nil {
		for name, v := range map[string]string{"log group": t.LogGroup, "namespace": t.Namespace, "metrics address": t.MetricsAddr} {
			if v == "" || !safeRE.MatchString(v) {
				return fmt.Errorf("cloudinit: telemetry %s %q is empty or has unsafe characters", name, v)
			}
		}
	}
	r := b.Release
	if !shaRE.MatchString(r.SHA256) {
		return fmt.Errorf("cloudinit: release sha256 %q is not 64 hex digits", r.SHA256)
	}
	for name, v := range map[string]string{"bucket": r.Bucket, "key": r.Key, "region": r.Region} {
		if v == "" || !safeRE.MatchString(v) {
			return fmt.Errorf("cloudinit: release %s %q is empty or has unsafe characters", name, v)
		}
	}
	return nil
}

func execute(t *template.Template, b Boot) (string, error) {
	var out bytes.Buffer
	if err := t.Execute(&out, b); err != nil {
		return "", fmt.Errorf("cloudinit: render %s: %w", t.Name(), err)
	}
	return out.String(), nil
}

// The unit restarts forever: at boot the instance's grants may not have
// propagated yet (AccessDenied reading a secret), or the database may still
// be starting; systemd's default start limit (5 starts in 10 s) would
// leave the service dead after such a start. With StartLimitIntervalSec=0
// and a 5 s pause it converges by itself once what it needs is there.
var unitTemplate = template.Must(template.New("unit").Parse(`[Unit]
Description=Conduit {{.Role}} tier (webstack)
After=network-online.target
Wants=network-online.target
StartLimitIntervalSec=0

[Service]
Type=simple
ExecStart=/usr/local/bin/conduit {{.Role}}
# systemctl reload: read the rotating secrets again at once (the JWT keys,
# the web certificate); conduit also does every minute.
ExecReload=/bin/kill -HUP $MAINPID
EnvironmentFile=/etc/conduit/conduit.env
DynamicUser=yes
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
MemoryDenyWriteExecute=yes
SystemCallArchitectures=native
RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX
{{- if lt .Port 1024}}
CapabilityBoundingSet=CAP_NET_BIND_SERVICE
AmbientCapabilities=CAP_NET_BIND_SERVICE
{{- else}}
CapabilityBoundingSet=
{{- end}}
Restart=on-failure
RestartSec=5s
TimeoutStopSec=30s
LogsDirectory=conduit
LogsDirectoryMode=0750
LimitNOFILE=65536

[Install]
WantedBy=multi-user.target
`))

var installTemplate = template.Must(template.New("install").Parse(`#!/bin/bash
# Installs conduit {{.Release.SHA256}} and starts the {{.Role}} tier.
# Refuses to start anything whose sha256 does not match the release.
set -euo pipefail

bucket='{{.Release.Bucket}}'
key='{{.Release.Key}}'
region='{{.Release.Region}}'
want='{{.Release.SHA256}}'

tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT

# Retry for about half an hour: a new instance's role grant can take a
# while to propagate (AccessDenied), and the S3 endpoint or NAT may still be
# coming up. Waiting is how boot converges; giving up early leaves an
# instance without a service.
attempt=1
until aws s3api get-object --region "$region" --bucket "$bucket" --key "$key" "$tmp" >/dev/null; do
  if [ "$attempt" -ge 60 ]; then
    echo "conduit-install: cannot fetch s3://$bucket/$key after $attempt attempts" >&2
    exit 1
  fi
  echo "conduit-install: fetch failed (attempt $attempt), retrying" >&2
  sleep $((attempt < 6 ? attempt * 5 : 30))
  attempt=$((attempt + 1))
done

got=$(sha256sum "$tmp" | cut -d' ' -f1)
if [ "$got" != "$want" ]; then
  echo "conduit-install: sha256 $got does not match the release $want; refusing to start" >&2
  exit 1
fi
install -m 0755 -o root -g root "$tmp" /usr/local/bin/conduit
{{if .DocumentDBCA}}
curl --fail --silent --show-error --retry 30 --retry-all-errors --retry-delay 10 --proto '=https' -o /etc/conduit/global-bundle.pem '{{ "https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem" }}'
chmod 0644 /etc/conduit/global-bundle.pem
{{end}}
systemctl daemon-reload
systemctl enable --now conduit.service
{{if .Telemetry}}
# Logs and metrics to CloudWatch. The service runs whatever happens here:
# without the agent its logs stay in the journal and the file.
attempt=1
until rpm -q amazon-cloudwatch-agent >/dev/null 2>&1 || dnf install -y -q amazon-cloudwatch-agent; do
  if [ "$attempt" -ge 10 ]; then
    echo "conduit-install: could not install amazon-cloudwatch-agent; logs and metrics stay on the instance" >&2
    exit 0
  fi
  sleep 30
  attempt=$((attempt + 1))
done
/opt/aws/amazon-cloudwatch-agent/bin/amazon-cloudwatch-agent-ctl -a fetch-config -m ec2 -s -c 'file:{{ "/etc/conduit/cloudwatch-agent.json" }}' ||
  echo "conduit-install: the CloudWatch agent did not start; logs and metrics stay on the instance" >&2
{{end}}`))

// Package cloudinit renders the #cloud-config user data that turns a bare
// Amazon Linux 2023 instance into a conduit server: an environment file of
// settings (never a secret value: secrets are read at start by ARN), a
// hardened systemd unit, and an install script that fetches the release
// with the instance role, refuses it unless its sha256 matches, and starts
// the service. It is plain Go with no Pulumi types, so it is tested alone.
package cloudinit

import (
	"bytes"
	"fmt"
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
}

// Paths on the instance.
const (
	EnvFile       = "/etc/conduit/conduit.env"
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
`))

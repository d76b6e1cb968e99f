// Package config loads the webstack stack configuration once, into a typed
// struct, and validates it before any resource is registered.
//
// Every key lives in one table (Keys) with its type, default and description;
// Pulumi.yaml's config schema is checked against that table by a test, so the
// two cannot drift apart.
package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"webstack/internal/awsarn"
	"webstack/internal/netlayout"
)

// Namespace is the Pulumi project name, and so the prefix of every key here.
const Namespace = "webstack"

// Topology is how a stack is laid out: the one word for it everywhere.
type Topology string

const (
	// Single is the dev topology: one web instance with an Elastic IP, one api
	// instance, no load balancers.
	Single Topology = "single"
	// HA is the staging/prod topology: public ALB with AWS WAF, web ASG, internal
	// ALB, api ASG, all across at least two AZs.
	HA Topology = "ha"
)

// Config is the whole validated configuration of one stack.
type Config struct {
	Project string // Pulumi project name.
	Stack   string // Pulumi stack name.
	Region  string // aws:region.

	Owner    string   // Owner tag on every resource.
	Topology Topology // Shape of the stack.

	Network  Network
	Web      Tier
	API      Tier
	Database Database
	Edge     Edge
	Ops      Ops

	// ArtifactPath is the linux/arm64 conduit build to deploy (make build).
	ArtifactPath string
	// JWTSecret signs the api's tokens: a secret output from the moment it
	// is read, so nothing can pass it on as plain text. It reaches the
	// instances only through Secrets Manager.
	JWTSecret pulumi.StringOutput

	jwtSecretLen int // for validation; the value itself is only in JWTSecret

	// Warnings are choices the configuration accepts but an operator should
	// know of (the program logs them).
	Warnings []string

	RootVolumeGiB        int    // Root volume size of every instance, GiB.
	AMIID                string // Pinned AMI; empty: the latest AL2023 arm64 AMI at each deploy.
	MinHealthyPercentage int    // Instance refresh minimum healthy percentage.
	MaxHealthyPercentage int    // Instance refresh maximum healthy percentage (> 100: launch before terminate).
	CPUTargetPercent     int    // ASG target-tracking CPU utilisation.
}

// Network is the VPC's configuration.
type Network struct {
	CIDR                 string   // IPv4 CIDR of the VPC.
	AZCount              int      // Used when AvailabilityZones is empty.
	AvailabilityZones    []string // Pinned AZ names; empty means "look up, sort, take AZCount".
	NATStrategy          string   // "Single" or "OnePerAz".
	FlowLogRetentionDays int
}

// Tier is one compute tier (web or api).
type Tier struct {
	InstanceType string
	Port         int
	MinSize      int // ASG minimum (ha); ignored by single, which runs one instance.
	MaxSize      int // ASG maximum (ha).
}

// Database is the DocumentDB cluster's configuration.
type Database struct {
	InstanceClass       string
	InstanceCount       int
	BackupRetentionDays int
	BackupWindow        string
	MaintenanceWindow   string
	Audit               bool
	DeletionProtection  bool
	SkipFinalSnapshot   bool
	ApplyImmediately    bool
	LogExports          []string
}

// Edge is what faces the internet: TLS, AWS WAF, Shield, the public ALB.
type Edge struct {
	CertificateArn        string
	Hostname              string // the site's public name (on its certificate); "" for none
	AllowHTTP             bool
	WebTLSSecretArn       string   // single: the web instance's certificate and key (Secrets Manager)
	HTTPIngressCIDRs      []string // single with allowHttp: who may reach plain HTTP
	WAFMode               string   // "block" or "count".
	WAFRateLimit          int      // Requests per client IP per 5 minutes.
	WAFLoginRateLimit     int      // Sign-in attempts per client IP per minute.
	WAFLogRetentionDays   int
	ShieldAdvanced        bool
	ALBDeletionProtection bool
	ALBAccessLogs         bool
	DesyncMitigationMode  string // "defensive" or "strictest".
}

// Ops is the operations layer: notifications, alarm thresholds, logs,
// budget and backups.
type Ops struct {
	AlarmEmail          string
	LogRetentionDays    int
	BudgetPercent       int     // budget = BudgetEstimateUSD × BudgetPercent / 100
	BudgetEstimateUSD   float64 // the stack's offline estimate (make cost); 0: no budget
	budgetEstimate      string  // as configured
	BackupRetentionDays int
	BackupCopyRegion    string
	Thresholds          Thresholds
}

// Thresholds are the alarms' limits.
type Thresholds struct {
	ErrorPercent         int // 5xx as a share of requests (ALBs)
	ServerErrorsPer5Min  int // 5xx answers of a tier (the app's count)
	LatencyMs            int // p99 response time
	DBCPUPercent         int
	DBFreeMemoryMiB      int
	DBConnectionsPercent int // of the instance class's connection limit
	DBGrowthGiBPerDay    int
	CPUCreditsMin        int // t-class instances
	WAFBlockedPer5Min    int
}

// HTTPS reports whether the public entry point terminates TLS.
func (c *Config) HTTPS() bool {
	return c.Topology == HA && c.Edge.CertificateArn != "" || c.Topology == Single && c.Edge.WebTLSSecretArn != ""
}

// Secret is a configuration value that never prints.
type Secret string

// String implements fmt.Stringer.
func (Secret) String() string { return "[secret]" }

// GoString implements fmt.GoStringer.
func (Secret) GoString() string { return "[secret]" }

// LogValue implements slog.LogValuer.
func (Secret) LogValue() slog.Value { return slog.StringValue("[secret]") }

// Kind is the type of a config value, as Pulumi.yaml's schema names it.
type Kind string

const (
	String  Kind = "string"
	Integer Kind = "integer"
	Boolean Kind = "boolean"
	Array   Kind = "array"
)

// Key describes one configuration key.
type Key struct {
	Name        string
	Kind        Kind
	Default     any // string, int, bool or []string; nil: no default
	Description string
	Secret      bool // set with `pulumi config set --secret`; read with Source.Secret only
	set         func(c *Config, v any)
}

// Keys returns every project key, with its default: the one table of
// defaults. Pulumi.yaml's config block is written from it (make diagrams;
// a test fails when it is stale).
func Keys() []Key { return slices.Clone(keys) }

var keys = []Key{
	{"owner", String, "platform-team", "Owner tag applied to every resource.", false, func(c *Config, v any) { c.Owner = v.(string) }},
	{"topology", String, "ha", "Shape of the stack: 'single' (one web and one api instance, no load balancer) or 'ha' (ALBs, AWS WAF, Auto Scaling groups across AZs).", false, func(c *Config, v any) { c.Topology = Topology(v.(string)) }},
	{"vpcCidr", String, "10.0.0.0/16", "IPv4 CIDR of the VPC; /16 to /20.", false, func(c *Config, v any) { c.Network.CIDR = v.(string) }},
	{"azCount", Integer, 2, "Number of availability zones when availabilityZones is empty (at least 2: DocumentDB subnet groups need 2).", false, func(c *Config, v any) { c.Network.AZCount = v.(int) }},
	{"availabilityZones", Array, []string{}, "Pinned AZ names. Empty: the region's AZs, sorted, first azCount.", false, func(c *Config, v any) { c.Network.AvailabilityZones = v.([]string) }},
	{"natStrategy", String, "Single", "NAT gateways: 'Single' (one for the VPC) or 'OnePerAz'.", false, func(c *Config, v any) { c.Network.NATStrategy = v.(string) }},
	{"flowLogRetentionDays", Integer, 30, "Retention of the VPC flow log group, days (a CloudWatch Logs retention value).", false, func(c *Config, v any) { c.Network.FlowLogRetentionDays = v.(int) }},
	{"webInstanceType", String, "t4g.small", "Graviton (arm64) instance type of the web tier.", false, func(c *Config, v any) { c.Web.InstanceType = v.(string) }},
	{"webPort", Integer, 8080, "Port the web tier listens on (80 in the single topology, which serves the internet directly).", false, func(c *Config, v any) { c.Web.Port = v.(int) }},
	{"webMinSize", Integer, 2, "Minimum instances of the web Auto Scaling group (ha).", false, func(c *Config, v any) { c.Web.MinSize = v.(int) }},
	{"webMaxSize", Integer, 4, "Maximum instances of the web Auto Scaling group (ha).", false, func(c *Config, v any) { c.Web.MaxSize = v.(int) }},
	{"apiInstanceType", String, "t4g.small", "Graviton (arm64) instance type of the api tier.", false, func(c *Config, v any) { c.API.InstanceType = v.(string) }},
	{"apiPort", Integer, 8081, "Port the api tier listens on.", false, func(c *Config, v any) { c.API.Port = v.(int) }},
	{"apiMinSize", Integer, 2, "Minimum instances of the api Auto Scaling group (ha).", false, func(c *Config, v any) { c.API.MinSize = v.(int) }},
	{"apiMaxSize", Integer, 4, "Maximum instances of the api Auto Scaling group (ha).", false, func(c *Config, v any) { c.API.MaxSize = v.(int) }},
	{"rootVolumeGiB", Integer, 16, "Encrypted gp3 root volume size of every instance, GiB.", false, func(c *Config, v any) { c.RootVolumeGiB = v.(int) }},
	{"amiId", String, "", "Pinned AMI id (ami-…, arm64). Empty: the latest Amazon Linux 2023 arm64 AMI, read from AWS's public SSM parameter at each deploy; a newer AMI is a new launch template version that rolls every instance.", false, func(c *Config, v any) { c.AMIID = v.(string) }},
	{"minHealthyPercentage", Integer, 100, "Minimum healthy percentage of desired capacity during a rolling instance refresh (ha).", false, func(c *Config, v any) { c.MinHealthyPercentage = v.(int) }},
	{"maxHealthyPercentage", Integer, 200, "Maximum healthy-or-pending percentage during a rolling instance refresh (ha): above 100, replacements launch before old instances terminate.", false, func(c *Config, v any) { c.MaxHealthyPercentage = v.(int) }},
	{"cpuTargetPercent", Integer, 50, "Target average CPU utilisation of the Auto Scaling groups (ha).", false, func(c *Config, v any) { c.CPUTargetPercent = v.(int) }},
	{"dbInstanceClass", String, "db.r6g.large", "DocumentDB instance class.", false, func(c *Config, v any) { c.Database.InstanceClass = v.(string) }},
	{"dbInstanceCount", Integer, 3, "DocumentDB instances (ha needs at least 2, spread across AZs).", false, func(c *Config, v any) { c.Database.InstanceCount = v.(int) }},
	{"dbBackupRetentionDays", Integer, 14, "DocumentDB backup retention, days (7 to 35).", false, func(c *Config, v any) { c.Database.BackupRetentionDays = v.(int) }},
	{"dbBackupWindow", String, "03:00-04:00", "DocumentDB daily backup window, UTC (hh:mm-hh:mm).", false, func(c *Config, v any) { c.Database.BackupWindow = v.(string) }},
	{"dbMaintenanceWindow", String, "sun:04:30-sun:05:30", "DocumentDB weekly maintenance window, UTC (ddd:hh:mm-ddd:hh:mm).", false, func(c *Config, v any) { c.Database.MaintenanceWindow = v.(string) }},
	{"dbAudit", Boolean, true, "Enable DocumentDB audit logs (cluster parameter audit_logs).", false, func(c *Config, v any) { c.Database.Audit = v.(bool) }},
	{"dbDeletionProtection", Boolean, true, "DocumentDB deletion protection.", false, func(c *Config, v any) { c.Database.DeletionProtection = v.(bool) }},
	{"dbSkipFinalSnapshot", Boolean, false, "Skip the final snapshot when the cluster is deleted (dev only).", false, func(c *Config, v any) { c.Database.SkipFinalSnapshot = v.(bool) }},
	{"dbApplyImmediately", Boolean, true, "Apply DocumentDB changes (instance class, parameters) during pulumi up; false: in the maintenance window (a refresh shows the pending change until then).", false, func(c *Config, v any) { c.Database.ApplyImmediately = v.(bool) }},
	{"dbLogExports", Array, []string{"audit", "profiler"}, "DocumentDB log types exported to CloudWatch Logs ('audit', 'profiler').", false, func(c *Config, v any) { c.Database.LogExports = v.([]string) }},
	{"certificateArn", String, "", "ACM certificate ARN of the public HTTPS listener (ha). Required unless allowHttp is true.", false, func(c *Config, v any) { c.Edge.CertificateArn = v.(string) }},
	{"hostname", String, "", "The site's public name, the one on its certificate (e.g. conduit.example.com): the url output uses it, and the deploy guide's checks (docs/deploy.md) resolve it to the stack's address. Empty: the url is the address itself.", false, func(c *Config, v any) { c.Edge.Hostname = v.(string) }},
	{"allowHttp", Boolean, false, "Explicit opt-out: serve plain HTTP (ha: on the public ALB without certificateArn; single: on the web instance without webTlsSecretArn, open to httpIngressCidrs).", false, func(c *Config, v any) { c.Edge.AllowHTTP = v.(bool) }},
	{"webTlsSecretArn", String, "", "Secrets Manager secret (JSON {\"certificate\": PEM chain, \"privateKey\": PEM}) the single web instance serves HTTPS on 443 with (80 redirects); only the web role may read it. Required in single unless allowHttp is true.", false, func(c *Config, v any) { c.Edge.WebTLSSecretArn = v.(string) }},
	{"httpIngressCidrs", Array, []string{}, "With allowHttp in single: the CIDRs plain HTTP is open to (e.g. your office's); required then.", false, func(c *Config, v any) { c.Edge.HTTPIngressCIDRs = v.([]string) }},
	{"wafMode", String, "block", "AWS WAF rule action: 'block' or 'count' (observe only).", false, func(c *Config, v any) { c.Edge.WAFMode = v.(string) }},
	{"wafRateLimit", Integer, 2000, "AWS WAF rate-based rule: requests per client IP per 5 minutes (100 to 2000000000).", false, func(c *Config, v any) { c.Edge.WAFRateLimit = v.(int) }},
	{"wafLoginRateLimit", Integer, 20, "AWS WAF sign-in rate rule: POST /api/users/login and /login per client IP per minute (10 to 1000); it blocks even when wafMode is count.", false, func(c *Config, v any) { c.Edge.WAFLoginRateLimit = v.(int) }},
	{"wafLogRetentionDays", Integer, 90, "Retention of the AWS WAF log group, days.", false, func(c *Config, v any) { c.Edge.WAFLogRetentionDays = v.(int) }},
	{"shieldAdvanced", Boolean, false, "Create a Shield Advanced protection for the entry point. Needs an existing Shield Advanced subscription; this program never creates one.", false, func(c *Config, v any) { c.Edge.ShieldAdvanced = v.(bool) }},
	{"albDeletionProtection", Boolean, false, "Deletion protection on the public ALB (ha).", false, func(c *Config, v any) { c.Edge.ALBDeletionProtection = v.(bool) }},
	{"albAccessLogs", Boolean, false, "Public ALB access logs to an encrypted S3 bucket (ha).", false, func(c *Config, v any) { c.Edge.ALBAccessLogs = v.(bool) }},
	{"desyncMitigationMode", String, "defensive", "ALB HTTP desync mitigation: 'defensive' or 'strictest'.", false, func(c *Config, v any) { c.Edge.DesyncMitigationMode = v.(string) }},
	{"alarmEmail", String, "", "Email address subscribed to the stack's alarm topic (AWS sends a confirmation first). Empty: no subscription.", false, func(c *Config, v any) { c.Ops.AlarmEmail = v.(string) }},
	{"logRetentionDays", Integer, 30, "Retention of the app's log groups (/webstack/<stack>/web, …/api), days.", false, func(c *Config, v any) { c.Ops.LogRetentionDays = v.(int) }},
	{"budgetPercent", Integer, 125, "Monthly AWS Budgets limit as a percentage of the stack's offline cost estimate (`make cost`); alerts at 80 % actual and 100 % forecast.", false, func(c *Config, v any) { c.Ops.BudgetPercent = v.(int) }},
	{"budgetEstimateUsd", String, "", "The stack's monthly cost estimate in USD, as `make cost` prints it; `make diagrams` writes it into each Pulumi.<stack>.yaml and a test fails when it is stale. The budget is this × budgetPercent. Empty: no budget.", false, func(c *Config, v any) {
		c.Ops.budgetEstimate = v.(string)
	}},
	{"backupRetentionDays", Integer, 35, "AWS Backup daily backups of the DocumentDB cluster (ha), kept this many days, besides DocumentDB's own retention.", false, func(c *Config, v any) { c.Ops.BackupRetentionDays = v.(int) }},
	{"backupCopyRegion", String, "", "Copy each AWS Backup recovery point to this region (ha). Empty: no copy.", false, func(c *Config, v any) { c.Ops.BackupCopyRegion = v.(string) }},
	{"alarmErrorPercent", Integer, 5, "Alarm when 5xx answers exceed this percentage of the public ALB's requests (its own, and its targets').", false, func(c *Config, v any) { c.Ops.Thresholds.ErrorPercent = v.(int) }},
	{"alarmServerErrorsPer5Min", Integer, 10, "Alarm when a tier (web, api) answers more 5xx than this in 5 minutes (the app's own count).", false, func(c *Config, v any) { c.Ops.Thresholds.ServerErrorsPer5Min = v.(int) }},
	{"alarmLatencyMs", Integer, 1000, "Alarm when p99 response time exceeds this many milliseconds (ALB targets, each tier).", false, func(c *Config, v any) { c.Ops.Thresholds.LatencyMs = v.(int) }},
	{"alarmDbCpuPercent", Integer, 80, "Alarm when a DocumentDB instance's CPU exceeds this percentage.", false, func(c *Config, v any) { c.Ops.Thresholds.DBCPUPercent = v.(int) }},
	{"alarmDbFreeMemoryMiB", Integer, 256, "Alarm when a DocumentDB instance's freeable memory falls below this many MiB.", false, func(c *Config, v any) { c.Ops.Thresholds.DBFreeMemoryMiB = v.(int) }},
	{"alarmDbConnectionsPercent", Integer, 80, "Alarm when a DocumentDB instance holds this percentage of its class's connection limit.", false, func(c *Config, v any) { c.Ops.Thresholds.DBConnectionsPercent = v.(int) }},
	{"alarmDbGrowthGiBPerDay", Integer, 5, "Alarm when the DocumentDB cluster volume grows faster than this many GiB a day.", false, func(c *Config, v any) { c.Ops.Thresholds.DBGrowthGiBPerDay = v.(int) }},
	{"alarmCpuCreditsMin", Integer, 20, "Alarm when a burstable (t4g) instance's CPU credit balance falls below this.", false, func(c *Config, v any) { c.Ops.Thresholds.CPUCreditsMin = v.(int) }},
	{"alarmWafBlockedPer5Min", Integer, 500, "Alarm when AWS WAF blocks (or, in count mode, would block) more than this many requests in 5 minutes (ha).", false, func(c *Config, v any) { c.Ops.Thresholds.WAFBlockedPer5Min = v.(int) }},
	{"artifactPath", String, "dist/conduit-linux-arm64", "The linux/arm64 conduit build to deploy, relative to the project (built by `make build`).", false, func(c *Config, v any) { c.ArtifactPath = v.(string) }},
	{"jwtSecret", String, nil, "Secret that signs the API's tokens (32+ characters); stored in Secrets Manager, read by the api at start. Set with: pulumi config set --secret jwtSecret \"$(openssl rand -hex 32)\"", true, func(c *Config, v any) {
		if v, ok := v.(Secret); ok {
			c.jwtSecretLen = len(v)
			c.JWTSecret = pulumi.ToSecret(pulumi.String(string(v))).(pulumi.StringOutput)
		}
	}},
}

// Source is where raw values come from: Pulumi's config in a real run, a map
// in tests and in the offline plan. Keys are given without namespace.
type Source interface {
	// Get returns the raw value of a plain project key, and whether it is set.
	Get(key string) (string, bool)
	// Secret returns the value of a key marked secret, and whether it is
	// set. Load reads secret keys through Secret only.
	Secret(key string) (Secret, bool)
}

// MapSource is a Source over a map of unqualified keys.
type MapSource map[string]string

// Get implements Source.
func (m MapSource) Get(key string) (string, bool) { v, ok := m[key]; return v, ok }

// Secret implements Source.
func (m MapSource) Secret(key string) (Secret, bool) { v, ok := m[key]; return Secret(v), ok }

// stackNameRule is the stack names this program supports: they become part
// of AWS names with stricter rules than Pulumi's (Backup vaults: at most 50
// characters of letters, digits, '-' and '_'; DocumentDB identifiers:
// letters, digits and single hyphens, starting with a letter).
var stackNameRule = regexp.MustCompile(`^[a-z](?:[a-z0-9]|-[a-z0-9])*$`)

// MaxStackName is the longest stack name supported.
const MaxStackName = 20

// MaxPrefix is the longest "<project>-<stack>": the name of the backup copy
// vault, "<prefix>-backup-copy", must fit AWS Backup's 50 characters.
const MaxPrefix = 50 - len("-backup-copy")

// validateNames refuses, up front and by name, the stack (and project)
// names whose AWS names would break a service's rules.
func (c *Config) validateNames() []error {
	var errs []error
	if !stackNameRule.MatchString(c.Stack) || len(c.Stack) > MaxStackName {
		errs = append(errs, fmt.Errorf("stack name %q is not supported: use at most 20 lowercase letters, digits and single hyphens, "+
			"starting with a letter (e.g. %q); it becomes part of AWS names (backup vaults, DocumentDB identifiers, SNS topics) "+
			"that allow nothing else: create the stack under such a name (`pulumi stack init`)", c.Stack, suggestStack(c.Stack)))
	}
	if n := len(c.Project) + 1 + len(c.Stack); n > MaxPrefix {
		errs = append(errs, fmt.Errorf("project and stack names make %q, %d characters: AWS Backup's vault names allow %d here; "+
			"use a shorter stack name", c.Project+"-"+c.Stack, n, MaxPrefix))
	}
	return errs
}

// suggestStack is name made to follow stackNameRule.
func suggestStack(name string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(name) {
		switch {
		case r >= 'a' && r <= 'z' || r >= '0' && r <= '9' && b.Len() > 0:
			b.WriteRune(r)
		case b.Len() > 0 && !strings.HasSuffix(b.String(), "-"):
			b.WriteByte('-')
		}
	}
	out := strings.Trim(b.String(), "-")
	if len(out) > MaxStackName {
		out = strings.TrimRight(out[:MaxStackName], "-")
	}
	if out == "" {
		return "dev"
	}
	return out
}

// validateARNs refuses a certificate or secret of another region (ACM
// certificates and Secrets Manager secrets are regional: the ALB or the
// instances could not use them, and up would fail late) and ARNs of
// different accounts. The account itself is checked against the caller's
// when the program runs (CheckAccount).
func (c *Config) validateARNs() []error {
	var errs []error
	accounts := map[string]string{}
	for _, a := range []struct{ key, arn string }{{"certificateArn", c.Edge.CertificateArn}, {"webTlsSecretArn", c.Edge.WebTLSSecretArn}} {
		parts := strings.Split(a.arn, ":")
		if a.arn == "" || len(parts) < 6 {
			continue
		}
		if parts[3] != c.Region {
			errs = append(errs, fmt.Errorf("%s:%s: %q is in %s, and this stack is in %s: use a %s in %s (they are regional)",
				Namespace, a.key, a.arn, parts[3], c.Region, map[string]string{"certificateArn": "certificate", "webTlsSecretArn": "secret"}[a.key], c.Region))
		}
		accounts[a.key] = parts[4]
	}
	if len(accounts) == 2 && accounts["certificateArn"] != accounts["webTlsSecretArn"] {
		errs = append(errs, fmt.Errorf("%s:certificateArn and %s:webTlsSecretArn are in different accounts (%s, %s)",
			Namespace, Namespace, accounts["certificateArn"], accounts["webTlsSecretArn"]))
	}
	return errs
}

// Accounts are the AWS accounts the configuration's ARNs name.
func (c *Config) Accounts() map[string]string {
	out := map[string]string{}
	for _, a := range []struct{ key, arn string }{{"certificateArn", c.Edge.CertificateArn}, {"webTlsSecretArn", c.Edge.WebTLSSecretArn}} {
		if parts := strings.Split(a.arn, ":"); a.arn != "" && len(parts) >= 6 {
			out[a.key] = parts[4]
		}
	}
	return out
}

// CheckAccount refuses ARNs of another account than the one the program
// deploys to (account, the caller's).
func (c *Config) CheckAccount(account string) error {
	var errs []error
	for key, acct := range c.Accounts() {
		if acct != account {
			errs = append(errs, fmt.Errorf("%s:%s names account %s, and this stack deploys to account %s: use one of this account's",
				Namespace, key, acct, account))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("invalid configuration for stack %q:\n%w", c.Stack, errors.Join(errs...))
	}
	return nil
}

// Load reads every key from src (applying defaults), then validates the
// result. Errors name the key and the fix; all problems are reported at once.
func Load(src Source, project, stack, region string) (*Config, error) {
	c := &Config{Project: project, Stack: stack, Region: region}
	var errs []error
	if region == "" {
		errs = append(errs, errors.New("aws:region is not set: run `pulumi config set aws:region us-east-1` (or your region)"))
	}
	for _, k := range keys {
		if k.Secret {
			if v, ok := src.Secret(k.Name); ok && v != "" {
				k.set(c, v)
			}
			continue
		}
		raw, ok := src.Get(k.Name)
		v := k.Default
		if ok {
			parsed, err := parse(k.Kind, raw)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s:%s: %w", Namespace, k.Name, err))
				continue
			}
			v = parsed
		}
		k.set(c, v)
	}
	if len(errs) == 0 {
		errs = append(errs, c.validate()...)
		errs = append(errs, c.validateNames()...)
		errs = append(errs, c.validateARNs()...)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("invalid configuration for stack %q:\n%w", stack, errors.Join(errs...))
	}
	return c, nil
}

func parse(kind Kind, raw string) (any, error) {
	raw = strings.TrimSpace(raw)
	switch kind {
	case Integer:
		n, err := strconv.Atoi(raw)
		if err != nil {
			return nil, fmt.Errorf("%q is not an integer", raw)
		}
		return n, nil
	case Boolean:
		b, err := strconv.ParseBool(raw)
		if err != nil {
			return nil, fmt.Errorf("%q is not true or false", raw)
		}
		return b, nil
	case Array:
		if raw == "" {
			return []string{}, nil
		}
		var list []string
		if strings.HasPrefix(raw, "[") {
			if err := json.Unmarshal([]byte(raw), &list); err != nil {
				return nil, fmt.Errorf("%q is not a list of strings: %w", raw, err)
			}
		} else { // "a,b" is accepted for -c overrides on the command line.
			for _, s := range strings.Split(raw, ",") {
				list = append(list, strings.TrimSpace(s))
			}
		}
		return list, nil
	default:
		return raw, nil
	}
}

var (
	emailRE  = regexp.MustCompile(`^[^@\s]+@[^@\s]+\.[^@\s]+$`)
	regionRE = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-\d$`)
)

func (o *Ops) validate() []error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s:%s: %s", Namespace, key, fmt.Sprintf(format, args...)))
	}
	if o.AlarmEmail != "" && !emailRE.MatchString(o.AlarmEmail) {
		bad("alarmEmail", "%q is not an email address: use e.g. oncall@example.com, or leave it empty", o.AlarmEmail)
	}
	if o.budgetEstimate != "" {
		v, err := strconv.ParseFloat(o.budgetEstimate, 64)
		if err != nil || v < 0 || math.IsInf(v, 0) || math.IsNaN(v) {
			bad("budgetEstimateUsd", "%q is not an amount of US dollars: run `make diagrams`, which writes the estimate", o.budgetEstimate)
		}
		o.BudgetEstimateUSD = v
	}
	if !slices.Contains(logRetentions, o.LogRetentionDays) {
		bad("logRetentionDays", "%d is not a CloudWatch Logs retention: use one of %v", o.LogRetentionDays, logRetentions)
	}
	if o.BudgetPercent < 100 || o.BudgetPercent > 1000 {
		bad("budgetPercent", "%d: use 100..1000 (125 = the estimate plus a quarter)", o.BudgetPercent)
	}
	if o.BackupRetentionDays < 1 || o.BackupRetentionDays > 36500 {
		bad("backupRetentionDays", "%d: use 1..36500 days", o.BackupRetentionDays)
	}
	if o.BackupCopyRegion != "" && !regionRE.MatchString(o.BackupCopyRegion) {
		bad("backupCopyRegion", "%q is not a region: use e.g. us-west-2, or leave it empty", o.BackupCopyRegion)
	}
	t := o.Thresholds
	for _, p := range []struct {
		key     string
		v, l, h int
	}{
		{"alarmErrorPercent", t.ErrorPercent, 1, 100}, {"alarmServerErrorsPer5Min", t.ServerErrorsPer5Min, 1, 1 << 30}, {"alarmLatencyMs", t.LatencyMs, 10, 60_000},
		{"alarmDbCpuPercent", t.DBCPUPercent, 1, 100}, {"alarmDbFreeMemoryMiB", t.DBFreeMemoryMiB, 1, 1 << 20},
		{"alarmDbConnectionsPercent", t.DBConnectionsPercent, 1, 100}, {"alarmDbGrowthGiBPerDay", t.DBGrowthGiBPerDay, 1, 1 << 20},
		{"alarmCpuCreditsMin", t.CPUCreditsMin, 0, 10_000}, {"alarmWafBlockedPer5Min", t.WAFBlockedPer5Min, 1, 1 << 30},
	} {
		if p.v < p.l || p.v > p.h {
			bad(p.key, "%d: use %d..%d", p.v, p.l, p.h)
		}
	}
	return errs
}

// CloudWatch Logs accepts only these retention values.
var logRetentions = []int{1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653}

var (
	// Graviton families put "g" right after the generation digit (t4g, m7g,
	// c6gn, im4gn, x2gd, g5g); a1 is the first Graviton. g4dn and g5 are x86.
	instanceTypeRE = regexp.MustCompile(`^(a1|[a-z]+[0-9]+g[a-z]*)\.[a-z0-9]+$`)
	dbClassRE      = regexp.MustCompile(`^db\.[a-z]+[0-9]+g[a-z]*\.[a-z0-9]+$`)
	amiRE          = regexp.MustCompile(`^ami-([0-9a-f]{8}|[0-9a-f]{17})$`)
	azRE           = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-\d[a-z]$`)
	backupWindowRE = regexp.MustCompile(`^([01]\d|2[0-3]):[0-5]\d-([01]\d|2[0-3]):[0-5]\d$`)
	maintenanceRE  = regexp.MustCompile(`^(mon|tue|wed|thu|fri|sat|sun):([01]\d|2[0-3]):[0-5]\d-(mon|tue|wed|thu|fri|sat|sun):([01]\d|2[0-3]):[0-5]\d$`)
)

// badFunc records a problem with a key: its name and what to do.
type badFunc func(key, format string, args ...any)

// validate checks every value and how they go together, section by
// section; each problem names its key and the fix.
func (c *Config) validate() []error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s:%s: %s", Namespace, key, fmt.Sprintf(format, args...)))
	}
	c.validateTopology(bad)
	c.validateNetwork(bad)
	c.validateCompute(bad)
	c.validateDatabase(bad)
	c.validateEdge(bad)
	c.validateApp(bad)
	return append(errs, c.Ops.validate()...)
}

// validateTopology checks the topology.
func (c *Config) validateTopology(bad badFunc) {
	switch c.Topology {
	case Single, HA:
	default:
		bad("topology", "%q is not a topology: use 'single' (dev) or 'ha' (staging, prod)", c.Topology)
	}
}

// validateNetwork checks the VPC: its CIDR, zones, NAT and flow logs.
func (c *Config) validateNetwork(bad badFunc) {
	if p, err := netip.ParsePrefix(c.Network.CIDR); err != nil || !p.Addr().Is4() {
		bad("vpcCidr", "%q is not an IPv4 CIDR: use a private range such as 10.0.0.0/16", c.Network.CIDR)
	} else if p.Bits() < 16 || p.Bits() > 20 {
		bad("vpcCidr", "/%d is outside /16../20: a smaller VPC cannot hold three subnet tiers across AZs; use e.g. 10.0.0.0/16", p.Bits())
	} else if p.Masked() != p {
		bad("vpcCidr", "%s has host bits set: use %s", p, p.Masked())
	} else if !p.Addr().IsPrivate() {
		bad("vpcCidr", "%s is not a private (RFC 1918) range: use e.g. 10.0.0.0/16", p)
	}
	azCount := c.Network.AZCount
	if n := len(c.Network.AvailabilityZones); n > 0 {
		azCount = n
		if n < 2 {
			bad("availabilityZones", "%d zone given: DocumentDB subnet groups and the ALB need at least 2; list two or more", n)
		}
		for _, az := range c.Network.AvailabilityZones {
			if !azRE.MatchString(az) || !strings.HasPrefix(az, c.Region) {
				bad("availabilityZones", "%q is not an availability zone of %s (e.g. %sa)", az, c.Region, c.Region)
			}
		}
		if seen := slices.Compact(slices.Sorted(slices.Values(c.Network.AvailabilityZones))); len(seen) != n {
			bad("availabilityZones", "zones are repeated: list each once")
		}
	} else if c.Network.AZCount < 2 || c.Network.AZCount > 6 {
		bad("azCount", "%d: use 2 to 6 (DocumentDB subnet groups and the ALB need at least 2 AZs)", c.Network.AZCount)
	}
	if p, err := netip.ParsePrefix(c.Network.CIDR); err == nil && p.Addr().Is4() && p.Masked() == p && azCount >= 1 {
		if _, err := netlayout.Layout(p, azCount, netlayout.Specs()); err != nil {
			bad("vpcCidr", "%s across %d AZs: %v", p, azCount, err)
		}
	}
	if c.Network.NATStrategy != "Single" && c.Network.NATStrategy != "OnePerAz" {
		bad("natStrategy", "%q is not a NAT strategy: use 'Single' or 'OnePerAz'", c.Network.NATStrategy)
	}
	if !slices.Contains(logRetentions, c.Network.FlowLogRetentionDays) {
		bad("flowLogRetentionDays", "%d is not a CloudWatch Logs retention: use one of %v", c.Network.FlowLogRetentionDays, logRetentions)
	}
}

// validateCompute checks the tiers: instance types, ports, group sizes, refreshes.
func (c *Config) validateCompute(bad badFunc) {
	for _, t := range []struct {
		prefix string
		tier   Tier
	}{{"web", c.Web}, {"api", c.API}} {
		if !instanceTypeRE.MatchString(t.tier.InstanceType) {
			bad(t.prefix+"InstanceType", "%q is not a Graviton (arm64) instance type: the AMI is arm64; use e.g. t4g.small or m7g.large", t.tier.InstanceType)
		}
		if t.tier.Port < 1 || t.tier.Port > 65535 {
			bad(t.prefix+"Port", "%d is not a TCP port: use 1..65535", t.tier.Port)
		}
		if c.Topology == HA {
			if t.tier.MinSize < 1 {
				bad(t.prefix+"MinSize", "%d instances: use at least 1", t.tier.MinSize)
			}
			if t.tier.MinSize > t.tier.MaxSize {
				bad(t.prefix+"MaxSize", "%d is below %sMinSize %d: set %sMaxSize >= %sMinSize", t.tier.MaxSize, t.prefix, t.tier.MinSize, t.prefix, t.prefix)
			}
		}
	}
	if c.Web.Port == c.API.Port {
		bad("apiPort", "%d is also webPort: give the tiers different ports", c.API.Port)
	}
	if c.Topology == Single && c.Web.Port != 80 {
		bad("webPort", "%d: the single topology serves the internet directly on port 80; set webPort 80", c.Web.Port)
	}
	if c.RootVolumeGiB < 8 || c.RootVolumeGiB > 1024 {
		bad("rootVolumeGiB", "%d: use 8..1024 (Amazon Linux 2023 needs at least 8 GiB)", c.RootVolumeGiB)
	}
	if c.AMIID != "" && !amiRE.MatchString(c.AMIID) {
		bad("amiId", "%q is not an AMI id: use ami- and 8 or 17 hex digits, or leave it empty for the latest Amazon Linux 2023", c.AMIID)
	}
	if c.MinHealthyPercentage < 0 || c.MinHealthyPercentage > 100 {
		bad("minHealthyPercentage", "%d: use 0..100", c.MinHealthyPercentage)
	}
	// Auto Scaling accepts 100..200 with at most 100 between the two; at
	// 100 it terminates before it launches, which takes a group of two
	// down to one instance during every refresh.
	if c.MaxHealthyPercentage <= 100 || c.MaxHealthyPercentage > 200 {
		bad("maxHealthyPercentage", "%d: use 101..200, so that a refresh launches replacements before it terminates", c.MaxHealthyPercentage)
	} else if c.MaxHealthyPercentage-c.MinHealthyPercentage > 100 {
		bad("maxHealthyPercentage", "%d is more than 100 above minHealthyPercentage %d, which Auto Scaling refuses: lower it or raise minHealthyPercentage", c.MaxHealthyPercentage, c.MinHealthyPercentage)
	}
	if c.CPUTargetPercent < 10 || c.CPUTargetPercent > 90 {
		bad("cpuTargetPercent", "%d: use 10..90", c.CPUTargetPercent)
	}
}

// validateDatabase checks DocumentDB: class, instances, backups, windows, logs, teardown.
func (c *Config) validateDatabase(bad badFunc) {
	if !dbClassRE.MatchString(c.Database.InstanceClass) {
		bad("dbInstanceClass", "%q is not a Graviton DocumentDB class: use e.g. db.t4g.medium or db.r6g.large", c.Database.InstanceClass)
	}
	if c.Database.InstanceCount < 1 {
		bad("dbInstanceCount", "%d instances: use at least 1", c.Database.InstanceCount)
	} else if c.Topology == HA && c.Database.InstanceCount < 2 {
		bad("dbInstanceCount", "%d: the ha topology needs at least 2 instances across AZs for failover", c.Database.InstanceCount)
	} else if c.Database.InstanceCount > 16 {
		bad("dbInstanceCount", "%d: DocumentDB allows at most 16 instances", c.Database.InstanceCount)
	}
	if c.Database.BackupRetentionDays < 7 || c.Database.BackupRetentionDays > 35 {
		bad("dbBackupRetentionDays", "%d: use 7..35 days", c.Database.BackupRetentionDays)
	}
	if !backupWindowRE.MatchString(c.Database.BackupWindow) {
		bad("dbBackupWindow", "%q: use hh:mm-hh:mm in UTC, e.g. 03:00-04:00", c.Database.BackupWindow)
	}
	if !maintenanceRE.MatchString(c.Database.MaintenanceWindow) {
		bad("dbMaintenanceWindow", "%q: use ddd:hh:mm-ddd:hh:mm in UTC, e.g. sun:04:30-sun:05:30", c.Database.MaintenanceWindow)
	}
	for _, e := range c.Database.LogExports {
		if e != "audit" && e != "profiler" {
			bad("dbLogExports", "%q is not a DocumentDB log type: use 'audit' and/or 'profiler'", e)
		}
	}
	if slices.Contains(c.Database.LogExports, "audit") && !c.Database.Audit {
		bad("dbLogExports", "'audit' is exported but dbAudit is false: set dbAudit true or drop 'audit'")
	}
	if c.Topology == HA && c.Database.SkipFinalSnapshot {
		bad("dbSkipFinalSnapshot", "the ha topology keeps its data: a deleted cluster leaves its final snapshot; set dbSkipFinalSnapshot false")
	}
	if c.Topology == HA && !c.Database.DeletionProtection {
		// The documented teardown's first step (docs/deploy.md): accepted,
		// and said out loud.
		c.Warnings = append(c.Warnings, fmt.Sprintf("%s:dbDeletionProtection is false: this stack's DocumentDB cluster can be deleted "+
			"(the teardown's first step; its final snapshot is kept). Set it back to true unless you are destroying the stack.", Namespace))
	}
}

// validateEdge checks what faces the internet: WAF, TLS, plain HTTP.
func (c *Config) validateEdge(bad badFunc) {
	if c.Edge.WAFMode != "block" && c.Edge.WAFMode != "count" {
		bad("wafMode", "%q is not a WAF mode: use 'block' or 'count'", c.Edge.WAFMode)
	}
	if c.Edge.WAFLoginRateLimit < 10 || c.Edge.WAFLoginRateLimit > 1000 {
		bad("wafLoginRateLimit", "%d: use 10..1000 sign-in attempts per minute (AWS WAF's least is 10)", c.Edge.WAFLoginRateLimit)
	}
	if c.Edge.WAFRateLimit < 100 || c.Edge.WAFRateLimit > 2_000_000_000 {
		bad("wafRateLimit", "%d: use 100..2000000000 requests per 5 minutes", c.Edge.WAFRateLimit)
	}
	if !slices.Contains(logRetentions, c.Edge.WAFLogRetentionDays) {
		bad("wafLogRetentionDays", "%d is not a CloudWatch Logs retention: use one of %v", c.Edge.WAFLogRetentionDays, logRetentions)
	}
	if c.Edge.DesyncMitigationMode != "defensive" && c.Edge.DesyncMitigationMode != "strictest" {
		bad("desyncMitigationMode", "%q: use 'defensive' or 'strictest'", c.Edge.DesyncMitigationMode)
	}
	if c.Edge.CertificateArn != "" && !awsarn.IsCertificate(c.Edge.CertificateArn) {
		bad("certificateArn", "%q is not an ACM certificate ARN (arn:aws:acm:<region>:<account>:certificate/<id>)", c.Edge.CertificateArn)
	}
	if c.Topology == Single {
		switch {
		case c.Edge.WebTLSSecretArn != "" && !awsarn.IsSecret(c.Edge.WebTLSSecretArn):
			bad("webTlsSecretArn", "%q is not a Secrets Manager secret ARN (arn:aws:secretsmanager:<region>:<account>:secret:<name>)", c.Edge.WebTLSSecretArn)
		case c.Edge.WebTLSSecretArn == "" && !c.Edge.AllowHTTP:
			bad("webTlsSecretArn", "the single topology serves the site from the web instance: store its certificate and key in Secrets Manager as JSON {\"certificate\": \"<PEM chain>\", \"privateKey\": \"<PEM>\"} and run `pulumi config set webTlsSecretArn arn:aws:secretsmanager:...`, or opt out explicitly with `pulumi config set allowHttp true` and `pulumi config set --path 'httpIngressCidrs[0]' <CIDR>`")
		case c.Edge.WebTLSSecretArn == "" && len(c.Edge.HTTPIngressCIDRs) == 0:
			bad("httpIngressCidrs", "allowHttp serves passwords in clear text: say which networks may reach it, e.g. `pulumi config set --path 'httpIngressCidrs[0]' 203.0.113.0/24` (0.0.0.0/0 only on purpose)")
		}
		for _, cidr := range c.Edge.HTTPIngressCIDRs {
			if p, err := netip.ParsePrefix(cidr); err != nil || !p.Addr().Is4() || p.Masked() != p {
				bad("httpIngressCidrs", "%q is not an IPv4 CIDR", cidr)
			}
		}
	}
	if c.Topology == HA && c.Edge.WebTLSSecretArn != "" {
		bad("webTlsSecretArn", "the ha topology terminates TLS at the ALB: use certificateArn, and unset webTlsSecretArn")
	}
	if c.Topology == HA && c.Edge.CertificateArn == "" && !c.Edge.AllowHTTP {
		bad("certificateArn", "the ha topology terminates TLS at the ALB: run `pulumi config set certificateArn arn:aws:acm:...`, or opt out explicitly with `pulumi config set allowHttp true`")
	}
}

// validateApp checks what the app needs: its signing secret and its build.
func (c *Config) validateApp(bad badFunc) {
	if c.jwtSecretLen == 0 {
		bad("jwtSecret", "not set: run `pulumi config set --secret jwtSecret \"$(openssl rand -hex 32)\"`")
	} else if c.jwtSecretLen < 32 {
		bad("jwtSecret", "%d characters: use at least 32, e.g. `pulumi config set --secret jwtSecret \"$(openssl rand -hex 32)\"`", c.jwtSecretLen)
	}
	if c.ArtifactPath == "" {
		bad("artifactPath", "empty: set it to the build, by default dist/conduit-linux-arm64 (`make build`)")
	}
}

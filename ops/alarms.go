package ops

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/cloudwatch"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// Columns of the dashboard, left to right: the request path.
const (
	colEntry    = "entry"
	colWAF      = "waf"
	colWeb      = "web"
	colInternal = "internal"
	colAPI      = "api"
	colDatabase = "database"
)

var columns = []string{colEntry, colWAF, colWeb, colInternal, colAPI, colDatabase}

// dim is one metric dimension.
type dim struct {
	name  string
	value pulumi.StringOutput
}

func fixed(name, value string) dim { return dim{name, pulumi.String(value).ToStringOutput()} }

// metric is one CloudWatch metric and the statistic read from it.
type metric struct {
	namespace, name, stat string
	dims                  []dim
}

// spec is one graph on the dashboard and, unless graphOnly, the alarm on
// it: the dashboard and the alarms are built from the same specs, so a
// widget shows exactly what its alarm evaluates.
type spec struct {
	what, column, title string
	desc                string // what fired, and what to look at first
	metrics             []metric
	expr                string // metric math over m1, m2, ...; "" for metrics[0] alone
	op                  string
	threshold           float64
	period, periods     int
	missing             string
	recover             bool // EC2 recover action too
	graphOnly           bool
}

const (
	above       = "GreaterThanThreshold"
	below       = "LessThanThreshold"
	notBreach   = "notBreaching" // no data: nothing happening (no traffic, no errors)
	missingMiss = "missing"      // no data: keep the state (INSUFFICIENT_DATA until the resource first reports)
	// No alarm treats missing data as breaching: every one of them would
	// be in ALARM, and email, on a fresh stack before its resources first
	// report. Healthy hosts, instances in service and DocumentDB's
	// instances report every minute once they exist, so "missing" keeps
	// the alarm out of ALARM until then and follows the data after; a
	// resource that stops reporting is seen by the alarms on what it
	// serves (the ALBs' and the app's 5xx).
)

// burstable reports whether instanceType earns CPU credits.
func burstable(instanceType string) bool { return strings.HasPrefix(instanceType, "t") }

// alarms are the stack's alarm and graph specs, by what exists in it.
func alarms(a *MonitoringArgs) []spec {
	t := a.Thresholds
	errPct, latency := float64(t.ErrorPercent), float64(t.LatencyMs)/1000
	var out []spec
	add := func(s ...spec) { out = append(out, s...) }

	// Entry point.
	if lb := a.LoadBalancer; lb != nil {
		alb := []dim{{"LoadBalancer", lb.Public}}
		albMetric := func(name, stat string) metric {
			return metric{"AWS/ApplicationELB", name, stat, alb}
		}
		add(
			spec{what: "alb-requests", column: colEntry, title: "Public ALB requests", graphOnly: true,
				metrics: []metric{albMetric("RequestCount", "Sum")}, period: 60},
			spec{what: "alb-5xx-rate", column: colEntry, title: "Public ALB: its own 5xx, % of requests",
				desc:    "The public ALB answered 5xx itself (no healthy target, target unreachable or timed out). Check first: the target groups' healthy hosts; the web ASG's activity; the web log group for crashes.",
				metrics: []metric{albMetric("HTTPCode_ELB_5XX_Count", "Sum"), albMetric("RequestCount", "Sum")},
				expr:    "100 * FILL(m1, 0) / m2", op: above, threshold: errPct, period: 60, periods: 5, missing: notBreach},
			spec{what: "alb-target-5xx-rate", column: colEntry, title: "Web targets' 5xx, % of requests",
				desc:    "The web tier answered 5xx. Check first: Logs Insights \"errors by route\"; the api's 5xx alarm (the web tier passes the api's errors on); the database alarms.",
				metrics: []metric{albMetric("HTTPCode_Target_5XX_Count", "Sum"), albMetric("RequestCount", "Sum")},
				expr:    "100 * FILL(m1, 0) / m2", op: above, threshold: errPct, period: 60, periods: 5, missing: notBreach},
			spec{what: "alb-p99-latency", column: colEntry, title: "Web targets' p99 response time (s)",
				desc:    "Responses are slow at p99. Check first: Logs Insights \"slowest requests\"; the api's p99 and the database's CPU; the ASGs' CPU (scaling at its maximum?).",
				metrics: []metric{albMetric("TargetResponseTime", "p99")}, op: above, threshold: latency, period: 60, periods: 5, missing: notBreach},
			spec{what: "alb-rejected-connections", column: colEntry, title: "Public ALB rejected connections",
				desc:    "The ALB refused connections: it hit its connection limit. Check first: the request rate (an attack? AWS WAF's rate rule); ALB capacity units.",
				metrics: []metric{albMetric("RejectedConnectionCount", "Sum")}, op: above, threshold: 0, period: 60, periods: 1, missing: notBreach},
		)
		for _, tg := range lb.Targets {
			col := colWeb
			if tg.Tier == "api" {
				col = colInternal
			}
			d := []dim{{"TargetGroup", tg.ArnSuffix}, {"LoadBalancer", tg.LoadBalancer}}
			add(
				spec{what: tg.Tier + "-unhealthy-hosts", column: col, title: tg.Tier + " targets unhealthy",
					desc:    fmt.Sprintf("A %s instance fails its health check (/healthz). Check first: the %s log group for that instance's stream; `aws ssm start-session` to it and `journalctl -u conduit`; the ASG's activity history.", tg.Tier, tg.Tier),
					metrics: []metric{{"AWS/ApplicationELB", "UnHealthyHostCount", "Maximum", d}}, op: above, threshold: 0, period: 60, periods: 3, missing: notBreach},
				spec{what: tg.Tier + "-healthy-hosts", column: col, title: tg.Tier + " targets healthy",
					desc:    fmt.Sprintf("Fewer healthy %s targets than the group's minimum (%d). Check first: the unhealthy-hosts alarm; the ASG's activity history (launch failures, instance refresh); the %s log group.", tg.Tier, tg.MinHealthy, tg.Tier),
					metrics: []metric{{"AWS/ApplicationELB", "HealthyHostCount", "Minimum", d}}, op: below, threshold: float64(tg.MinHealthy), period: 60, periods: 3, missing: missingMiss},
			)
		}
		add(spec{what: "internal-alb-requests", column: colInternal, title: "Internal ALB requests", graphOnly: true,
			metrics: []metric{{"AWS/ApplicationELB", "RequestCount", "Sum", []dim{{"LoadBalancer", lb.Internal}}}}, period: 60})
		for _, g := range lb.Groups {
			add(spec{what: g.Tier + "-in-service", column: tierColumn(g.Tier), title: g.Tier + " instances in service",
				desc:    fmt.Sprintf("The %s Auto Scaling group has fewer instances in service than its minimum (%d). Check first: the group's activity history (capacity, quota, AMI, launch template); the healthy-hosts alarm.", g.Tier, g.Min),
				metrics: []metric{{"AWS/AutoScaling", "GroupInServiceInstances", "Minimum", []dim{{"AutoScalingGroupName", g.Name}}}},
				op:      below, threshold: float64(g.Min), period: 60, periods: 5, missing: missingMiss})
			add(spec{what: g.Tier + "-cpu", column: tierColumn(g.Tier), title: g.Tier + " CPU %", graphOnly: true,
				metrics: []metric{{"AWS/EC2", "CPUUtilization", "Average", []dim{{"AutoScalingGroupName", g.Name}}}}, period: 60})
			if burstable(g.InstanceType) {
				add(creditAlarm(g.Tier, []dim{{"AutoScalingGroupName", g.Name}}, t.CPUCreditsMin, "Minimum"))
			}
		}
	}
	for _, in := range a.Instances {
		d := []dim{{"InstanceId", in.ID}}
		col := tierColumn(in.Tier)
		if in.Tier == "web" {
			add(spec{what: "web-network-in", column: colEntry, title: "Web instance (Elastic IP) bytes in", graphOnly: true,
				metrics: []metric{{"AWS/EC2", "NetworkIn", "Sum", d}}, period: 300})
		} else {
			add(spec{what: "api-network-in", column: col, title: "api instance bytes in", graphOnly: true,
				metrics: []metric{{"AWS/EC2", "NetworkIn", "Sum", d}}, period: 300})
		}
		add(
			spec{what: in.Tier + "-system-check", column: col, title: in.Tier + " system status check",
				desc:    fmt.Sprintf("AWS's hardware or network under the %s instance failed; the alarm also recovers the instance onto healthy hardware (same id, addresses and volume). Check first: the AWS Health dashboard; that the instance came back (`aws ec2 describe-instance-status`).", in.Tier),
				metrics: []metric{{"AWS/EC2", "StatusCheckFailed_System", "Maximum", d}}, op: above, threshold: 0, period: 60, periods: 2, missing: missingMiss, recover: true},
			spec{what: in.Tier + "-instance-check", column: col, title: in.Tier + " instance status check",
				desc:    fmt.Sprintf("The %s instance's OS does not answer (kernel, memory, disk full). Check first: `aws ec2 get-console-output`; an SSM session (`df -h`, `free -m`, `journalctl -p err`); reboot it if it does not answer.", in.Tier),
				metrics: []metric{{"AWS/EC2", "StatusCheckFailed_Instance", "Maximum", d}}, op: above, threshold: 0, period: 60, periods: 3, missing: missingMiss},
			spec{what: in.Tier + "-cpu", column: col, title: in.Tier + " CPU %", graphOnly: true,
				metrics: []metric{{"AWS/EC2", "CPUUtilization", "Average", d}}, period: 60},
		)
		if burstable(in.InstanceType) {
			add(creditAlarm(in.Tier, d, t.CPUCreditsMin, "Minimum"))
		}
	}

	// WAF.
	if w := a.WebACL; w != nil {
		what, metricName, title := "waf-blocked", "BlockedRequests", "AWS WAF blocked requests (5 min)"
		desc := "AWS WAF blocked many requests: an attack, or a rule blocking real users. Check first: the WAF log group (terminatingRuleId, client IP); the web ACL's sampled requests; the app's 4xx."
		if w.Count {
			what, metricName, title = "waf-would-block", "CountedRequests", "AWS WAF requests it would block (count mode, 5 min)"
			desc = "In count mode AWS WAF saw many requests its rules would block. Check first: the WAF log group (which rules, which clients) before switching wafMode to block; false positives are excluded per rule."
		}
		d := []dim{{"WebACL", w.Name}, fixed("Region", a.Region), fixed("Rule", "ALL")}
		add(
			spec{what: "waf-allowed", column: colWAF, title: "AWS WAF allowed requests", graphOnly: true,
				metrics: []metric{{"AWS/WAFV2", "AllowedRequests", "Sum", d}}, period: 300},
			spec{what: what, column: colWAF, title: title, desc: desc,
				metrics: []metric{{"AWS/WAFV2", metricName, "Sum", d}}, op: above, threshold: float64(t.WAFBlockedPer5Min), period: 300, periods: 1, missing: notBreach},
		)
	}

	// The app's own metrics, per tier (the CloudWatch agent's EMF).
	for _, tier := range []string{"web", "api"} {
		role := []dim{fixed("role", tier)}
		add(
			// A count, not a share of requests: the share would need a
			// second custom metric per tier (the ALBs give it in the
			// ha topology), and at a dev stack's traffic one error
			// is a large share.
			spec{what: tier + "-app-5xx", column: tierColumn(tier), title: tier + " 5xx answers (5 min, app)",
				desc:    fmt.Sprintf("The %s tier answers 5xx. Check first: Logs Insights \"errors by route\" on the %s log group; the database alarms (a 503 is the database unavailable); the last deployment.", tier, tier),
				metrics: []metric{{a.Names.Namespace, "conduit_http_server_errors_total", "Sum", role}},
				op:      above, threshold: float64(t.ServerErrorsPer5Min), period: 300, periods: 1, missing: notBreach},
			spec{what: tier + "-app-p99-latency", column: tierColumn(tier), title: tier + " p99 latency (s, app)",
				desc:    fmt.Sprintf("The %s tier's p99 latency is high. Check first: Logs Insights \"slowest requests\"; CPU of the tier; the database's CPU and connections.", tier),
				metrics: []metric{{a.Names.Namespace, "conduit_http_latency_seconds", "Maximum", append(role, fixed("quantile", "0.99"))}},
				op:      above, threshold: latency, period: 60, periods: 5, missing: notBreach},
		)
	}
	add(
		spec{what: "api-db-errors", column: colAPI, title: "api database errors (app)",
			desc:    "The api's database operations fail (unavailable, timed out, refused credentials). Check first: the DocumentDB alarms; the cluster's events (failover, maintenance); the api log group for \"database\" errors; a credential rotation in progress.",
			metrics: []metric{{a.Names.Namespace, "conduit_db_errors_total", "Sum", []dim{fixed("role", "api")}}},
			op:      above, threshold: 5, period: 60, periods: 3, missing: notBreach},
		spec{what: "web-waf-blocks", column: colWAF, title: "web tier WAF (CRS) blocks (5 min, app)",
			desc:    "The web tier's own WAF (OWASP CRS) blocked many requests. Check first: Logs Insights \"WAF blocks\" (rule, path): an attack, or a rule that needs a narrow exclusion for a real route.",
			metrics: []metric{{a.Names.Namespace, "conduit_waf_blocked_total", "Sum", []dim{fixed("role", "web")}}},
			op:      above, threshold: float64(t.WAFBlockedPer5Min), period: 300, periods: 1, missing: notBreach},
	)

	// NAT gateways (the api's and the instances' way out).
	for i, id := range a.NATGatewayIDs {
		d := []dim{{"NatGatewayId", id}}
		n := fmt.Sprintf("nat-%d", i+1)
		add(
			spec{what: n + "-port-allocation", column: colAPI, title: fmt.Sprintf("NAT %d port allocation errors", i+1),
				desc:    "The NAT gateway ran out of source ports for one destination (too many concurrent connections). Check first: connections to one host (Secrets Manager, S3 outside the endpoint, an external API) left open; connection reuse in the client.",
				metrics: []metric{{"AWS/NATGateway", "ErrorPortAllocation", "Sum", d}}, op: above, threshold: 0, period: 300, periods: 1, missing: notBreach},
			spec{what: n + "-packet-drops", column: colAPI, title: fmt.Sprintf("NAT %d dropped packets", i+1),
				desc:    "The NAT gateway drops packets. Check first: the AWS Health dashboard for the AZ; the gateway's bandwidth (BytesOutToDestination); route tables.",
				metrics: []metric{{"AWS/NATGateway", "PacketsDropCount", "Sum", d}}, op: above, threshold: 0, period: 300, periods: 2, missing: notBreach},
		)
	}

	// Database.
	db := a.Database
	limit := db.ConnectionLimit
	connAlarm := min(db.PlannedConnections, limit*a.Thresholds.DBConnectionsPercent/100)
	for i, id := range db.InstanceIDs {
		d := []dim{{"DBInstanceIdentifier", id}}
		n := fmt.Sprintf("docdb-%d", i+1)
		add(
			spec{what: n + "-cpu", column: colDatabase, title: fmt.Sprintf("DocumentDB %d CPU %%", i+1),
				desc:    "A DocumentDB instance is busy. Check first: the profiler log (slow operations: a query no index serves?); the api's request rate; whether reads can move to replicas.",
				metrics: []metric{{"AWS/DocDB", "CPUUtilization", "Average", d}}, op: above, threshold: float64(a.Thresholds.DBCPUPercent), period: 300, periods: 3, missing: missingMiss},
			spec{what: n + "-freeable-memory", column: colDatabase, title: fmt.Sprintf("DocumentDB %d freeable memory (bytes)", i+1),
				desc:    "A DocumentDB instance is short of memory (its working set no longer fits). Check first: the connections alarm; index sizes; a larger instance class (dbInstanceClass).",
				metrics: []metric{{"AWS/DocDB", "FreeableMemory", "Minimum", d}}, op: below, threshold: float64(a.Thresholds.DBFreeMemoryMiB) * (1 << 20), period: 300, periods: 3, missing: missingMiss},
			spec{what: n + "-connections", column: colDatabase, title: fmt.Sprintf("DocumentDB %d connections (limit %d)", i+1, limit),
				desc: fmt.Sprintf("A DocumentDB instance holds more than %d connections: the most the api's connection budget plans for (every api instance of a refresh, two clients each during a credential rotation) or %d%% of the %d its class allows. "+
					"Check first: the api group's size; a client the budget does not know (mongosh, a tool); connection leaks after errors (api log group).", connAlarm, a.Thresholds.DBConnectionsPercent, limit),
				metrics: []metric{{"AWS/DocDB", "DatabaseConnections", "Maximum", d}}, op: above, threshold: float64(connAlarm), period: 300, periods: 2, missing: missingMiss},
		)
		if len(db.InstanceIDs) > 1 {
			add(spec{what: n + "-replica-lag", column: colDatabase, title: fmt.Sprintf("DocumentDB %d replica lag (ms)", i+1),
				desc:    "A replica lags the primary: anonymous reads served from it are stale. Check first: the primary's write rate and CPU; the replica's CPU; its class against the primary's.",
				metrics: []metric{{"AWS/DocDB", "DBInstanceReplicaLag", "Maximum", d}}, op: above, threshold: 10_000, period: 60, periods: 5, missing: notBreach})
		}
	}
	add(spec{what: "docdb-volume-growth", column: colDatabase, title: "DocumentDB volume growth (GiB/day)",
		desc:    "The cluster's storage grows faster than expected. Check first: which collection grows (db.stats() from an SSM session on an api instance); abuse (many accounts or articles from few clients: AWS WAF rate rule); comment threads at their bound.",
		metrics: []metric{{"AWS/DocDB", "VolumeBytesUsed", "Average", []dim{{"DBClusterIdentifier", db.ClusterID}}}},
		expr:    "RATE(m1) * 86400 / 1073741824", op: above, threshold: float64(a.Thresholds.DBGrowthGiBPerDay), period: 3600, periods: 3, missing: notBreach})
	return out
}

// creditAlarm watches a burstable instance's (or group's) CPU credits.
func creditAlarm(tier string, d []dim, min int, stat string) spec {
	return spec{what: tier + "-cpu-credits", column: tierColumn(tier), title: tier + " CPU credit balance",
		desc:    fmt.Sprintf("The %s tier's burstable instances are running out of CPU credits: they will be throttled to their baseline. Check first: CPU (a busy loop, an attack); a non-burstable instance type (%sInstanceType).", tier, tier),
		metrics: []metric{{"AWS/EC2", "CPUCreditBalance", stat, d}}, op: below, threshold: float64(min), period: 300, periods: 3, missing: missingMiss}
}

// Runbook is the anchor in docs/operations.md of the alarm what: its
// family, without the number of the instance or gateway it watches
// (docdb-2-cpu → docdb-cpu).
func Runbook(what string) string { return numbered.ReplaceAllString(what, "-") }

var numbered = regexp.MustCompile(`-\d+-`)

func tierColumn(tier string) string {
	if tier == "api" {
		return colAPI
	}
	return colWeb
}

// alarm creates s's alarm, acting on topic (and recovering the instance
// when s says so).
func (c *Monitoring) alarm(ctx *pulumi.Context, name string, a *MonitoringArgs, s spec, topic pulumi.StringOutput) error {
	if s.graphOnly {
		return nil
	}
	actions := pulumi.Array{topic}
	if s.recover {
		actions = append(actions, pulumi.Sprintf("arn:aws:automate:%s:ec2:recover", a.Region))
	}
	args := &cloudwatch.MetricAlarmArgs{
		Name:               pulumi.String(a.Names.Prefix + "-" + s.what),
		AlarmDescription:   pulumi.String(s.desc + " Runbook: docs/operations.md#" + Runbook(s.what)),
		ComparisonOperator: pulumi.String(s.op),
		Threshold:          pulumi.Float64(s.threshold),
		EvaluationPeriods:  pulumi.Int(s.periods),
		DatapointsToAlarm:  pulumi.Int(s.periods),
		TreatMissingData:   pulumi.String(s.missing),
		AlarmActions:       actions,
		OkActions:          pulumi.Array{topic},
		Tags:               pulumi.StringMap{"Name": pulumi.String(a.Names.Prefix + "-" + s.what)},
	}
	dims := func(m metric) pulumi.StringMap {
		out := pulumi.StringMap{}
		for _, d := range m.dims {
			out[d.name] = d.value
		}
		return out
	}
	if s.expr == "" {
		m := s.metrics[0]
		args.Namespace, args.MetricName, args.Period, args.Dimensions = pulumi.String(m.namespace), pulumi.String(m.name), pulumi.Int(s.period), dims(m)
		if strings.HasPrefix(m.stat, "p") {
			args.ExtendedStatistic = pulumi.String(m.stat)
		} else {
			args.Statistic = pulumi.String(m.stat)
		}
	} else {
		q := cloudwatch.MetricAlarmMetricQueryArray{cloudwatch.MetricAlarmMetricQueryArgs{
			Id: pulumi.String("e1"), Expression: pulumi.String(s.expr), Label: pulumi.String(s.title), ReturnData: pulumi.Bool(true),
		}}
		for i, m := range s.metrics {
			q = append(q, cloudwatch.MetricAlarmMetricQueryArgs{
				Id: pulumi.Sprintf("m%d", i+1), ReturnData: pulumi.Bool(false),
				Metric: &cloudwatch.MetricAlarmMetricQueryMetricArgs{
					Namespace: pulumi.String(m.namespace), MetricName: pulumi.String(m.name), Stat: pulumi.String(m.stat),
					Period: pulumi.Int(s.period), Dimensions: dims(m),
				},
			})
		}
		args.MetricQueries = q
	}
	if _, err := cloudwatch.NewMetricAlarm(ctx, name+"-"+s.what, args, pulumi.Parent(c)); err != nil {
		return fmt.Errorf("ops: alarm %s: %w", s.what, err)
	}
	return nil
}

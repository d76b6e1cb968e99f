// Package ops is the operations tier: where a running stack tells its
// operators that something is wrong and where they look. One component,
// webstack:ops:Monitoring, composed last: an encrypted SNS topic, alarms on
// every resource the other tiers made, a dashboard laid out as the request
// path, the app's log groups and the grants to write them, saved Logs
// Insights queries, a cost budget, and AWS Backup for the database.
package ops

import (
	"encoding/json"
	"fmt"

	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/cloudwatch"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/iam"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/kms"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/sns"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"webstack/internal/config"
)

// Names are a stack's monitoring names, derived from project and stack:
// the prefix of every alarm (<project>-<stack>-<what>), the app's log
// groups (/<project>/<stack>/<tier>) and its metric namespace.
type Names struct {
	Prefix                   string
	WebLogGroup, APILogGroup string // each tier's logs and metric records
	Namespace                string
}

// NamesFor returns the names of project's stack.
func NamesFor(project, stack string) Names {
	lg := "/" + project + "/" + stack
	return Names{
		Prefix:      project + "-" + stack,
		WebLogGroup: lg + "/web", APILogGroup: lg + "/api",
		Namespace: project + "/" + stack,
	}
}

// RefreshAlarms are the alarms that fail an instance refresh of tier's
// Auto Scaling group (compute.LoadBalancerArgs.RefreshAlarms): its targets
// unhealthy, and its 5xx answers (the app's own count). NewMonitoring makes
// alarms of exactly these names (TestRefreshAlarmsExist).
func (n Names) RefreshAlarms(tier string) []string {
	return []string{n.Prefix + "-" + tier + "-unhealthy-hosts", n.Prefix + "-" + tier + "-app-5xx"}
}

// MonitoringArgs configures NewMonitoring. What it watches comes from the
// other tiers' outputs; a topology's parts that are absent are nil or empty.
type MonitoringArgs struct {
	// Names of the stack (NamesFor). Required.
	Names Names
	// Region of the stack. Required.
	Region string
	// AlarmEmail is subscribed to the topic. Defaults to "" (none).
	AlarmEmail string
	// LogRetentionDays of the app's log groups. Defaults to the config
	// table's logRetentionDays.
	LogRetentionDays int
	// Thresholds of the alarms; a zero field takes the config table's
	// default.
	Thresholds config.Thresholds
	// Shippers are the instance roles (by tier: "web", "api") allowed to
	// write their tier's log group.
	Shippers map[string]pulumi.StringInput
	// Instances are the single topology's instances.
	Instances []Instance
	// LoadBalancer is the ha topology's ALBs and groups.
	LoadBalancer *LoadBalancer
	// Database is the DocumentDB cluster. Required.
	Database Database
	// WebACL is the AWS WAF web ACL (ha topology).
	WebACL *WebACL
	// NATGatewayIDs are the NAT gateways.
	NATGatewayIDs []pulumi.StringOutput
	// Budget, when set, creates the stack's monthly cost budget.
	Budget *Budget
	// Backup, when set, backs the cluster up with AWS Backup.
	Backup *Backup
}

// Instance is one standalone instance.
type Instance struct {
	Tier         string // "web" or "api"
	ID           pulumi.StringOutput
	InstanceType string
}

// LoadBalancer is the ha topology as CloudWatch names it.
type LoadBalancer struct {
	// Public and Internal are the ALBs' ARN suffixes.
	Public, Internal pulumi.StringOutput
	// Targets are the target groups; Groups the Auto Scaling groups.
	Targets []TargetGroup
	Groups  []Group
}

// TargetGroup is one target group behind one ALB.
type TargetGroup struct {
	Tier         string
	ArnSuffix    pulumi.StringOutput
	LoadBalancer pulumi.StringOutput // the ARN suffix of the ALB it is behind
	MinHealthy   int                 // the group's minimum size
}

// Group is one Auto Scaling group.
type Group struct {
	Tier         string
	Name         pulumi.StringOutput
	Min          int
	InstanceType string
}

// Database is the DocumentDB cluster.
type Database struct {
	ClusterID     pulumi.StringOutput
	ClusterArn    pulumi.StringOutput
	InstanceIDs   []pulumi.StringOutput
	InstanceClass string
	// ConnectionLimit is what one instance of the class takes
	// (database.LimitsOf); PlannedConnections the most the api may open
	// to one (internal/stack's connection budget, at most the limit). The
	// connections alarm fires above the lower of the planned figure and
	// alarmDbConnectionsPercent of the limit: more than planned is a leak
	// or a client the budget does not know.
	ConnectionLimit, PlannedConnections int
}

// WebACL is the AWS WAF web ACL.
type WebACL struct {
	Name pulumi.StringOutput
	// Count is true when its rules only count (wafMode count): the alarm
	// then watches what would have been blocked.
	Count bool
}

// Budget is the monthly cost budget.
type Budget struct {
	// LimitUSD is the budget: the offline estimate × budgetPercent / 100.
	LimitUSD float64
	// EstimateUSD is the estimate it was computed from (for the record).
	EstimateUSD float64
}

// Backup is the database's AWS Backup plan.
type Backup struct {
	RetentionDays int
	// CopyTo, when set, is a provider for another region, which receives
	// a copy of each recovery point.
	CopyTo pulumi.ProviderResource
}

// Monitoring is the operations tier.
type Monitoring struct {
	pulumi.ResourceState

	// TopicArn is where every alarm and the budget notify.
	TopicArn pulumi.StringOutput
	// DashboardName is the stack's dashboard.
	DashboardName pulumi.StringOutput
	// Alarms are the alarms' names.
	Alarms []string
}

// NewMonitoring creates the operations tier.
func NewMonitoring(ctx *pulumi.Context, name string, args *MonitoringArgs, opts ...pulumi.ResourceOption) (*Monitoring, error) {
	c := &Monitoring{}
	if err := ctx.RegisterComponentResource("webstack:ops:Monitoring", name, c, opts...); err != nil {
		return nil, err
	}
	a := *args
	if a.Names.Prefix == "" || a.Region == "" || a.Database.ClusterID == (pulumi.StringOutput{}) {
		return nil, fmt.Errorf("ops: Monitoring needs Names, Region and Database")
	}
	if a.LogRetentionDays == 0 {
		a.LogRetentionDays = config.Default[int]("logRetentionDays")
	}
	a.Thresholds = withDefaults(a.Thresholds)
	if d := a.Database; d.ConnectionLimit <= 0 || d.PlannedConnections <= 0 || d.PlannedConnections > d.ConnectionLimit {
		return nil, fmt.Errorf("ops: Database needs its class's ConnectionLimit and the PlannedConnections of the connection budget (at most the limit), have %d and %d",
			d.ConnectionLimit, d.PlannedConnections)
	}
	parent := pulumi.Parent(c)

	caller, err := aws.GetCallerIdentity(ctx, nil, parent)
	if err != nil {
		return nil, fmt.Errorf("ops: caller identity: %w", err)
	}
	topic, err := c.topic(ctx, name, &a, caller.AccountId)
	if err != nil {
		return nil, err
	}
	c.TopicArn = topic.Arn

	if err := c.logs(ctx, name, &a); err != nil {
		return nil, err
	}

	specs := alarms(&a)
	for _, s := range specs {
		if s.graphOnly {
			continue
		}
		if err := c.alarm(ctx, name, &a, s, topic.Arn); err != nil {
			return nil, err
		}
		c.Alarms = append(c.Alarms, a.Names.Prefix+"-"+s.what)
	}
	board, err := c.dashboard(ctx, name, &a, specs)
	if err != nil {
		return nil, err
	}
	c.DashboardName = board.DashboardName

	if a.Budget != nil {
		if err := c.budget(ctx, name, &a, topic.Arn); err != nil {
			return nil, err
		}
	}
	if a.Backup != nil {
		if err := c.backup(ctx, name, &a); err != nil {
			return nil, err
		}
	}
	if err := ctx.RegisterResourceOutputs(c, pulumi.Map{
		"topicArn":      c.TopicArn,
		"dashboardName": c.DashboardName,
		"alarmCount":    pulumi.Int(len(c.Alarms)),
	}); err != nil {
		return nil, err
	}
	return c, nil
}

// withDefaults fills zero thresholds from the config table.
func withDefaults(t config.Thresholds) config.Thresholds {
	for _, f := range []struct {
		v   *int
		key string
	}{
		{&t.ErrorPercent, "alarmErrorPercent"}, {&t.ServerErrorsPer5Min, "alarmServerErrorsPer5Min"}, {&t.LatencyMs, "alarmLatencyMs"}, {&t.DBCPUPercent, "alarmDbCpuPercent"},
		{&t.DBFreeMemoryMiB, "alarmDbFreeMemoryMiB"}, {&t.DBConnectionsPercent, "alarmDbConnectionsPercent"},
		{&t.DBGrowthGiBPerDay, "alarmDbGrowthGiBPerDay"}, {&t.CPUCreditsMin, "alarmCpuCreditsMin"},
		{&t.WAFBlockedPer5Min, "alarmWafBlockedPer5Min"},
	} {
		if *f.v == 0 {
			*f.v = config.Default[int](f.key)
		}
	}
	return t
}

// topic is the stack's notification topic, encrypted with a key of its own.
// Not the AWS-managed SNS key: its policy cannot be changed, and neither
// CloudWatch alarms nor Budgets may use it, so an alarm on such a topic
// never reaches anyone. This key lets exactly those two services (for this
// account) encrypt to it; the topic lets only them publish, over TLS.
func (c *Monitoring) topic(ctx *pulumi.Context, name string, a *MonitoringArgs, account string) (*sns.Topic, error) {
	parent := pulumi.Parent(c)
	services := []string{"cloudwatch.amazonaws.com", "budgets.amazonaws.com"}
	keyPolicy, err := json.Marshal(map[string]any{
		"Version": "2012-10-17",
		"Statement": []any{
			map[string]any{
				"Sid": "AccountAdministersTheKey", "Effect": "Allow",
				"Principal": map[string]any{"AWS": fmt.Sprintf("arn:aws:iam::%s:root", account)},
				"Action":    "kms:*", "Resource": "*",
			},
			map[string]any{
				"Sid": "AlarmsAndBudgetsEncryptNotifications", "Effect": "Allow",
				"Principal": map[string]any{"Service": services},
				"Action":    []string{"kms:Decrypt", "kms:GenerateDataKey*"}, "Resource": "*",
				"Condition": map[string]any{"StringEquals": map[string]any{"aws:SourceAccount": account}},
			},
		},
	})
	if err != nil {
		return nil, err
	}
	key, err := kms.NewKey(ctx, name+"-topic", &kms.KeyArgs{
		Description:       pulumi.String(a.Names.Prefix + " alarm notifications"),
		EnableKeyRotation: pulumi.Bool(true),
		Policy:            pulumi.String(string(keyPolicy)),
		Tags:              pulumi.StringMap{"Name": pulumi.String(name + "-topic")},
	}, parent)
	if err != nil {
		return nil, fmt.Errorf("ops: topic key: %w", err)
	}
	topic, err := sns.NewTopic(ctx, name+"-alarms", &sns.TopicArgs{
		Name:           pulumi.String(a.Names.Prefix + "-alarms"),
		KmsMasterKeyId: key.Arn,
		Tags:           pulumi.StringMap{"Name": pulumi.String(name + "-alarms")},
	}, parent)
	if err != nil {
		return nil, fmt.Errorf("ops: topic: %w", err)
	}
	policy := topic.Arn.ApplyT(func(arn string) (string, error) {
		b, err := json.Marshal(map[string]any{
			"Version": "2012-10-17",
			"Statement": []any{
				map[string]any{
					"Sid": "AlarmsAndBudgetsOfThisAccountPublish", "Effect": "Allow",
					"Principal": map[string]any{"Service": services},
					"Action":    "sns:Publish", "Resource": arn,
					"Condition": map[string]any{"StringEquals": map[string]any{"aws:SourceAccount": account}},
				},
				map[string]any{
					"Sid": "TLSOnly", "Effect": "Deny", "Principal": "*", "Action": "sns:Publish", "Resource": arn,
					"Condition": map[string]any{"Bool": map[string]any{"aws:SecureTransport": "false"}},
				},
			},
		})
		return string(b), err
	}).(pulumi.StringOutput)
	if _, err := sns.NewTopicPolicy(ctx, name+"-alarms", &sns.TopicPolicyArgs{Arn: topic.Arn, Policy: policy}, pulumi.Parent(topic)); err != nil {
		return nil, fmt.Errorf("ops: topic policy: %w", err)
	}
	if a.AlarmEmail != "" {
		if _, err := sns.NewTopicSubscription(ctx, name+"-email", &sns.TopicSubscriptionArgs{
			Topic: topic.Arn, Protocol: pulumi.String("email"), Endpoint: pulumi.String(a.AlarmEmail),
		}, pulumi.Parent(topic)); err != nil {
			return nil, fmt.Errorf("ops: email subscription: %w", err)
		}
	}
	return topic, nil
}

// logs creates the app's log groups, the grants to write them (to exactly
// these groups: no wildcard beyond their streams), and the saved Logs
// Insights queries operators start from.
func (c *Monitoring) logs(ctx *pulumi.Context, name string, a *MonitoringArgs) error {
	parent := pulumi.Parent(c)
	groups := map[string]string{"web": a.Names.WebLogGroup, "api": a.Names.APILogGroup}
	arns := map[string]pulumi.StringOutput{}
	made := map[string]pulumi.StringOutput{} // by name, for what must wait for the group
	for _, tier := range []string{"web", "api"} {
		g, err := cloudwatch.NewLogGroup(ctx, name+"-"+tier, &cloudwatch.LogGroupArgs{
			Name:            pulumi.String(groups[tier]),
			RetentionInDays: pulumi.Int(a.LogRetentionDays),
			Tags:            pulumi.StringMap{"Name": pulumi.String(name + "-" + tier)},
		}, parent)
		if err != nil {
			return fmt.Errorf("ops: log group %s: %w", tier, err)
		}
		arns[tier] = g.Arn
		made[groups[tier]] = g.Name
	}
	for _, tier := range []string{"web", "api"} {
		role, ok := a.Shippers[tier]
		if !ok {
			continue
		}
		policy := arns[tier].ApplyT(func(arn string) (string, error) {
			res := []string{arn, arn + ":log-stream:*"}
			b, err := json.Marshal(map[string]any{
				"Version": "2012-10-17",
				"Statement": []any{map[string]any{
					"Sid": "ShipLogsAndMetrics", "Effect": "Allow",
					"Action":   []string{"logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"},
					"Resource": res,
				}},
			})
			return string(b), err
		}).(pulumi.StringOutput)
		if _, err := iam.NewRolePolicy(ctx, name+"-"+tier+"-ship", &iam.RolePolicyArgs{Role: role, Policy: policy}, parent); err != nil {
			return fmt.Errorf("ops: %s log grant: %w", tier, err)
		}
	}
	for _, q := range queries(a) {
		var names pulumi.StringArray
		for _, g := range q.groups {
			names = append(names, made[g])
		}
		if _, err := cloudwatch.NewQueryDefinition(ctx, name+"-"+q.slug, &cloudwatch.QueryDefinitionArgs{
			Name:          pulumi.String(a.Names.Prefix + "/" + q.title),
			LogGroupNames: names,
			QueryString:   pulumi.String(q.query),
		}, parent); err != nil {
			return fmt.Errorf("ops: query %s: %w", q.slug, err)
		}
	}
	return nil
}

// query is a saved Logs Insights query.
type query struct {
	slug, title, query string
	groups             []string
}

// queries are the saved Logs Insights queries. conduit logs JSON (slog):
// "request" records for failed or slow requests (route, status, duration
// in nanoseconds), "request failed" errors, and the WAF's "waf blocked"
// (rule, method, path).
func queries(a *MonitoringArgs) []query {
	both := []string{a.Names.WebLogGroup, a.Names.APILogGroup}
	return []query{
		{"errors-by-route", "errors by route",
			"fields @timestamp, role, route, status, error\n| filter level = \"ERROR\" or status >= 500\n| stats count(*) as errors by role, route\n| sort errors desc", both},
		{"slowest-requests", "slowest requests",
			"fields @timestamp, role, method, route, status, duration / 1000000 as ms, request_id\n| filter msg = \"request\"\n| sort duration desc\n| limit 50", both},
		{"waf-blocks", "WAF blocks",
			"fields @timestamp, rule, method, path, request_id\n| filter msg = \"waf blocked\"\n| stats count(*) as blocked by rule, path\n| sort blocked desc", []string{a.Names.WebLogGroup}},
	}
}

package security

import (
	"fmt"

	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/cloudwatch"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/wafv2"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// WebACLArgs configures the AWS WAF web ACL of the public ALB.
type WebACLArgs struct {
	// Mode is "block" (rules block) or "count" (rules only count, to observe
	// before enforcing). Defaults to "block".
	Mode string
	// RateLimit is the most requests one client IP may send in 5 minutes
	// before the rate rule acts. Defaults to 2000.
	RateLimit int
	// LogRetentionDays is the retention of the aws-waf-logs-… log group. Defaults to 90.
	LogRetentionDays int
}

// ManagedRuleGroups are the AWS managed rule groups on the web ACL, in
// priority order, with their capacity in WCU (from AWS's documentation of
// each group). A web ACL may use 1500 WCU before AWS bills extra.
var ManagedRuleGroups = []struct {
	Name     string
	Capacity int
}{
	{"AWSManagedRulesAmazonIpReputationList", 25},
	{"AWSManagedRulesCommonRuleSet", 700},
	{"AWSManagedRulesKnownBadInputsRuleSet", 200},
	{"AWSManagedRulesSQLiRuleSet", 200},
}

// RateRuleCapacity is the WCU of a rate-based rule keyed on the client IP.
const RateRuleCapacity = 2

// newWebACL creates a REGIONAL web ACL that allows by default, the managed
// rule groups and a per-IP rate rule, each with CloudWatch metrics and
// sampled requests, and logs to CloudWatch Logs with the Authorization header
// redacted.
func newWebACL(ctx *pulumi.Context, parent pulumi.Resource, name string, args *WebACLArgs) (*wafv2.WebAcl, error) {
	a := *args
	if a.Mode == "" {
		a.Mode = "block"
	}
	if a.RateLimit == 0 {
		a.RateLimit = 2000
	}
	if a.LogRetentionDays == 0 {
		a.LogRetentionDays = 90
	}
	visibility := func(metric string) wafv2.WebAclRuleVisibilityConfigArgs {
		return wafv2.WebAclRuleVisibilityConfigArgs{
			CloudwatchMetricsEnabled: pulumi.Bool(true),
			SampledRequestsEnabled:   pulumi.Bool(true),
			MetricName:               pulumi.String(metric),
		}
	}
	override := &wafv2.WebAclRuleOverrideActionArgs{None: &wafv2.WebAclRuleOverrideActionNoneArgs{}}
	rateAction := &wafv2.WebAclRuleActionArgs{Block: &wafv2.WebAclRuleActionBlockArgs{}}
	if a.Mode == "count" {
		override = &wafv2.WebAclRuleOverrideActionArgs{Count: &wafv2.WebAclRuleOverrideActionCountArgs{}}
		rateAction = &wafv2.WebAclRuleActionArgs{Count: &wafv2.WebAclRuleActionCountArgs{}}
	}
	var rules wafv2.WebAclRuleArray
	for i, g := range ManagedRuleGroups {
		rules = append(rules, wafv2.WebAclRuleArgs{
			Name:           pulumi.String(g.Name),
			Priority:       pulumi.Int(10 * (i + 1)),
			OverrideAction: override,
			Statement: wafv2.WebAclRuleStatementArgs{
				ManagedRuleGroupStatement: &wafv2.WebAclRuleStatementManagedRuleGroupStatementArgs{
					VendorName: pulumi.String("AWS"),
					Name:       pulumi.String(g.Name),
				},
			},
			VisibilityConfig: visibility(g.Name),
		})
	}
	rules = append(rules, wafv2.WebAclRuleArgs{
		Name:     pulumi.String("RateLimitPerIP"),
		Priority: pulumi.Int(0), // first: a flood is cut before the costlier groups run.
		Action:   rateAction,
		Statement: wafv2.WebAclRuleStatementArgs{
			RateBasedStatement: &wafv2.WebAclRuleStatementRateBasedStatementArgs{
				AggregateKeyType: pulumi.String("IP"),
				Limit:            pulumi.Int(a.RateLimit),
			},
		},
		VisibilityConfig: visibility("RateLimitPerIP"),
	})

	acl, err := wafv2.NewWebAcl(ctx, name, &wafv2.WebAclArgs{
		Scope:         pulumi.String("REGIONAL"),
		Description:   pulumi.String("webstack public ALB"),
		DefaultAction: wafv2.WebAclDefaultActionArgs{Allow: &wafv2.WebAclDefaultActionAllowArgs{}},
		Rules:         rules,
		VisibilityConfig: wafv2.WebAclVisibilityConfigArgs{
			CloudwatchMetricsEnabled: pulumi.Bool(true),
			SampledRequestsEnabled:   pulumi.Bool(true),
			MetricName:               pulumi.String(name),
		},
		Tags: pulumi.StringMap{"Name": pulumi.String(name)},
	}, pulumi.Parent(parent))
	if err != nil {
		return nil, fmt.Errorf("security: web ACL: %w", err)
	}

	// AWS WAF only delivers to log groups whose name starts with aws-waf-logs-.
	logs, err := cloudwatch.NewLogGroup(ctx, name+"-logs", &cloudwatch.LogGroupArgs{
		Name:            pulumi.Sprintf("aws-waf-logs-webstack-%s-%s", ctx.Stack(), name),
		RetentionInDays: pulumi.Int(a.LogRetentionDays),
		Tags:            pulumi.StringMap{"Name": pulumi.String(name + "-logs")},
	}, pulumi.Parent(acl))
	if err != nil {
		return nil, fmt.Errorf("security: web ACL log group: %w", err)
	}
	if _, err := wafv2.NewWebAclLoggingConfiguration(ctx, name+"-logging", &wafv2.WebAclLoggingConfigurationArgs{
		ResourceArn:           acl.Arn,
		LogDestinationConfigs: pulumi.StringArray{logs.Arn},
		RedactedFields: wafv2.WebAclLoggingConfigurationRedactedFieldArray{
			wafv2.WebAclLoggingConfigurationRedactedFieldArgs{
				SingleHeader: &wafv2.WebAclLoggingConfigurationRedactedFieldSingleHeaderArgs{Name: pulumi.String("authorization")},
			},
		},
	}, pulumi.Parent(acl)); err != nil {
		return nil, fmt.Errorf("security: web ACL logging: %w", err)
	}
	return acl, nil
}

package security

import (
	"fmt"

	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/cloudwatch"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/wafv2"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"webstack/internal/config"
)

// WebACLArgs configures the AWS WAF web ACL of the public ALB.
type WebACLArgs struct {
	// Name is the web ACL's resource name; its log group's name is made of
	// it, so it cannot change without replacing that log group. Defaults to
	// "<edge name>-acl".
	Name string
	// Aliases are where the web ACL was before (e.g. its former parent
	// component), so that moving it is not a replacement; its children
	// (log group, logging configuration) inherit them. Defaults to none.
	Aliases []pulumi.Alias
	// Mode is "block" (rules block) or "count" (rules only count, to observe
	// before enforcing). Defaults to block (the config table's wafMode).
	Mode string
	// RateLimit is the most requests one client IP may send in 5 minutes
	// before the rate rule acts. Defaults to 2000 (the config table's wafRateLimit).
	RateLimit int
	// LoginRateLimit is the most sign-in attempts (POST /api/users/login,
	// POST /login) one client IP may make in a minute; past it they are
	// blocked whatever Mode says. Defaults to 20 (the config table's
	// wafLoginRateLimit).
	LoginRateLimit int
	// LogRetentionDays is the retention of the aws-waf-logs-… log group.
	// Defaults to 90 (the config table's wafLogRetentionDays).
	LogRetentionDays int
}

// ManagedRuleGroup is an AWS managed rule group on the web ACL.
type ManagedRuleGroup struct {
	Name     string
	Capacity int // WCU, from AWS's documentation of the group
}

// ManagedRuleGroups are the AWS managed rule groups on the web ACL, in
// priority order. A web ACL may use 1500 WCU before AWS bills extra.
func ManagedRuleGroups() []ManagedRuleGroup {
	return []ManagedRuleGroup{
		{"AWSManagedRulesAmazonIpReputationList", 25},
		{"AWSManagedRulesCommonRuleSet", 700},
		{"AWSManagedRulesKnownBadInputsRuleSet", 200},
		{"AWSManagedRulesSQLiRuleSet", 200},
	}
}

// The sign-in rate rule: its name, and the method and paths it counts
// (the API's and the site's sign-in).
const (
	SignInRuleName = "RateLimitSignIn"
	SignInMethod   = "^POST$"
	SignInPath     = "^/(api/users/)?login$"
)

// regexMatch is a statement matching the request's method, or its URI
// path, against pattern, untransformed.
func regexMatch(pattern string, path bool) wafv2.WebAclRuleStatementArgs {
	field := &wafv2.WebAclRuleStatementRegexMatchStatementFieldToMatchArgs{Method: &wafv2.WebAclRuleStatementRegexMatchStatementFieldToMatchMethodArgs{}}
	if path {
		field = &wafv2.WebAclRuleStatementRegexMatchStatementFieldToMatchArgs{UriPath: &wafv2.WebAclRuleStatementRegexMatchStatementFieldToMatchUriPathArgs{}}
	}
	return wafv2.WebAclRuleStatementArgs{RegexMatchStatement: &wafv2.WebAclRuleStatementRegexMatchStatementArgs{
		RegexString:  pulumi.String(pattern),
		FieldToMatch: field,
		TextTransformations: wafv2.WebAclRuleStatementRegexMatchStatementTextTransformationArray{
			wafv2.WebAclRuleStatementRegexMatchStatementTextTransformationArgs{Priority: pulumi.Int(0), Type: pulumi.String("NONE")},
		},
	}}
}

// RateRuleCapacity is the WCU of a rate-based rule keyed on the client IP.
const RateRuleCapacity = 2

// BodyRule is a managed rule that inspects the request body, with the label
// it adds to a request it matches (AWS's rule group documentation).
type BodyRule struct {
	Group, Rule, Label string
}

// BodyRules are the managed rules that a blog's own content sets off:
// SizeRestrictions_BODY refuses bodies over 8 KB (the app accepts 1 MiB
// articles), and markdown with code in it looks like XSS, SQL injection,
// file inclusion or SSRF to the others. On the web ACL they only count and
// label; the rule BodyRulesOutsideContent then blocks on their labels
// unless the request is one of ContentWrites. The web tier's Coraza still
// inspects every field of those requests but the content fields.
func BodyRules() []BodyRule {
	const crs, sqli, bad = "awswaf:managed:aws:core-rule-set:", "awswaf:managed:aws:sql-database:", "awswaf:managed:aws:known-bad-inputs:"
	common, sql, known := "AWSManagedRulesCommonRuleSet", "AWSManagedRulesSQLiRuleSet", "AWSManagedRulesKnownBadInputsRuleSet"
	return []BodyRule{
		{common, "SizeRestrictions_BODY", crs + "SizeRestrictions_Body"},
		{common, "CrossSiteScripting_BODY", crs + "CrossSiteScripting_Body"},
		{common, "GenericLFI_BODY", crs + "GenericLFI_Body"},
		{common, "GenericRFI_BODY", crs + "GenericRFI_Body"},
		{common, "EC2MetaDataSSRF_BODY", crs + "EC2MetaDataSSRF_Body"},
		{sql, "SQLi_BODY", sqli + "SQLi_Body"},
		{sql, "SQLiExtendedPatterns_BODY", sqli + "SQLiExtendedPatterns_Body"},
		{known, "Log4JRCE_BODY", bad + "Log4JRCE_Body"},
		{known, "JavaDeserializationRCE_BODY", bad + "JavaDeserializationRCE_Body"},
	}
}

// ContentWrite is a request whose body is user-written content: a method
// and a path, both regular expressions matched in full.
type ContentWrite struct {
	Methods, Path string
}

// ContentWrites are the requests that carry user-written text — articles,
// comments and bios, through the api and through the site's forms — the
// only ones whose bodies the BodyRules may not block. The web tier's WAF
// excludes the same fields on the same routes (app/waf).
func ContentWrites() []ContentWrite {
	return []ContentWrite{
		{"^(POST|PUT)$", "^/api/articles(/[a-z0-9-]+)?$"},
		{"^POST$", "^/api/articles/[a-z0-9-]+/comments$"},
		{"^PUT$", "^/api/user$"},
		{"^POST$", "^/editor(/[a-z0-9-]+)?$"},
		{"^POST$", "^/article/[a-z0-9-]+(/comments)?$"},
		{"^POST$", "^/settings$"},
	}
}

// BodyRuleName is the web ACL rule that blocks on the body rules' labels
// outside ContentWrites.
const BodyRuleName = "BodyRulesOutsideContent"

// newWebACL creates a REGIONAL web ACL that allows by default, the managed
// rule groups and a per-IP rate rule, each with CloudWatch metrics and
// sampled requests, and logs to CloudWatch Logs with the Authorization header
// redacted.
func newWebACL(ctx *pulumi.Context, parent pulumi.Resource, name string, args *WebACLArgs) (*wafv2.WebAcl, error) {
	a := *args
	if a.Name != "" {
		name = a.Name
	}
	if a.Mode == "" {
		a.Mode = config.Default[string]("wafMode")
	}
	if a.RateLimit == 0 {
		a.RateLimit = config.Default[int]("wafRateLimit")
	}
	if a.LogRetentionDays == 0 {
		a.LogRetentionDays = config.Default[int]("wafLogRetentionDays")
	}
	if a.LoginRateLimit == 0 {
		a.LoginRateLimit = config.Default[int]("wafLoginRateLimit")
	}
	visibility := func(metric string) wafv2.WebAclRuleVisibilityConfigArgs {
		return wafv2.WebAclRuleVisibilityConfigArgs{
			CloudwatchMetricsEnabled: pulumi.Bool(true),
			SampledRequestsEnabled:   pulumi.Bool(true),
			MetricName:               pulumi.String(metric),
		}
	}
	override := &wafv2.WebAclRuleOverrideActionArgs{None: &wafv2.WebAclRuleOverrideActionNoneArgs{}}
	ruleAction := &wafv2.WebAclRuleActionArgs{Block: &wafv2.WebAclRuleActionBlockArgs{}}
	if a.Mode == "count" {
		override = &wafv2.WebAclRuleOverrideActionArgs{Count: &wafv2.WebAclRuleOverrideActionCountArgs{}}
		ruleAction = &wafv2.WebAclRuleActionArgs{Count: &wafv2.WebAclRuleActionCountArgs{}}
	}
	var rules wafv2.WebAclRuleArray
	groups := ManagedRuleGroups()
	for i, g := range groups {
		var counted wafv2.WebAclRuleStatementManagedRuleGroupStatementRuleActionOverrideArray
		for _, b := range BodyRules() {
			if b.Group == g.Name {
				counted = append(counted, wafv2.WebAclRuleStatementManagedRuleGroupStatementRuleActionOverrideArgs{
					Name: pulumi.String(b.Rule),
					ActionToUse: wafv2.WebAclRuleStatementManagedRuleGroupStatementRuleActionOverrideActionToUseArgs{
						Count: &wafv2.WebAclRuleStatementManagedRuleGroupStatementRuleActionOverrideActionToUseCountArgs{},
					},
				})
			}
		}
		rules = append(rules, wafv2.WebAclRuleArgs{
			Name:           pulumi.String(g.Name),
			Priority:       pulumi.Int(10 * (i + 1)),
			OverrideAction: override,
			Statement: wafv2.WebAclRuleStatementArgs{
				ManagedRuleGroupStatement: &wafv2.WebAclRuleStatementManagedRuleGroupStatementArgs{
					VendorName:          pulumi.String("AWS"),
					Name:                pulumi.String(g.Name),
					RuleActionOverrides: counted,
				},
			},
			VisibilityConfig: visibility(g.Name),
		})
	}
	rules = append(rules, wafv2.WebAclRuleArgs{
		Name:             pulumi.String(BodyRuleName),
		Priority:         pulumi.Int(10 * (len(groups) + 1)), // after the groups that label
		Action:           ruleAction,
		Statement:        bodyRulesOutsideContent(),
		VisibilityConfig: visibility(BodyRuleName),
	})
	rules = append(rules, wafv2.WebAclRuleArgs{
		Name:     pulumi.String("RateLimitPerIP"),
		Priority: pulumi.Int(0), // first: a flood is cut before the costlier groups run.
		Action:   ruleAction,
		Statement: wafv2.WebAclRuleStatementArgs{
			RateBasedStatement: &wafv2.WebAclRuleStatementRateBasedStatementArgs{
				AggregateKeyType: pulumi.String("IP"),
				Limit:            pulumi.Int(a.RateLimit),
			},
		},
		VisibilityConfig: visibility("RateLimitPerIP"),
	})
	rules = append(rules, wafv2.WebAclRuleArgs{
		Name:     pulumi.String(SignInRuleName),
		Priority: pulumi.Int(1),
		// Always blocks: nobody signs in 20 times a minute, and the app's
		// own throttle counts per instance (see app/httpapi/throttle.go).
		Action: &wafv2.WebAclRuleActionArgs{Block: &wafv2.WebAclRuleActionBlockArgs{}},
		Statement: wafv2.WebAclRuleStatementArgs{
			RateBasedStatement: &wafv2.WebAclRuleStatementRateBasedStatementArgs{
				AggregateKeyType:    pulumi.String("IP"),
				Limit:               pulumi.Int(a.LoginRateLimit),
				EvaluationWindowSec: pulumi.Int(60),
				ScopeDownStatement: &wafv2.WebAclRuleStatementRateBasedStatementScopeDownStatementArgs{
					AndStatement: &wafv2.WebAclRuleStatementRateBasedStatementScopeDownStatementAndStatementArgs{
						Statements: wafv2.WebAclRuleStatementArray{
							regexMatch(SignInMethod, false),
							regexMatch(SignInPath, true),
						},
					},
				},
			},
		},
		VisibilityConfig: visibility(SignInRuleName),
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
	}, pulumi.Parent(parent), pulumi.Aliases(a.Aliases))
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

// bodyRulesOutsideContent matches a request that any body rule labelled and
// that is not a content write: (label₁ ∨ … ∨ labelₙ) ∧ ¬(write₁ ∨ … ∨ writeₘ).
func bodyRulesOutsideContent() wafv2.WebAclRuleStatementArgs {
	var labels wafv2.WebAclRuleStatementArray
	for _, b := range BodyRules() {
		labels = append(labels, wafv2.WebAclRuleStatementArgs{
			LabelMatchStatement: &wafv2.WebAclRuleStatementLabelMatchStatementArgs{Scope: pulumi.String("LABEL"), Key: pulumi.String(b.Label)},
		})
	}
	none := wafv2.WebAclRuleStatementRegexMatchStatementTextTransformationArray{
		wafv2.WebAclRuleStatementRegexMatchStatementTextTransformationArgs{Priority: pulumi.Int(0), Type: pulumi.String("NONE")},
	}
	var writes wafv2.WebAclRuleStatementArray
	for _, w := range ContentWrites() {
		writes = append(writes, wafv2.WebAclRuleStatementArgs{AndStatement: &wafv2.WebAclRuleStatementAndStatementArgs{
			Statements: wafv2.WebAclRuleStatementArray{
				wafv2.WebAclRuleStatementArgs{RegexMatchStatement: &wafv2.WebAclRuleStatementRegexMatchStatementArgs{
					RegexString:         pulumi.String(w.Methods),
					FieldToMatch:        &wafv2.WebAclRuleStatementRegexMatchStatementFieldToMatchArgs{Method: &wafv2.WebAclRuleStatementRegexMatchStatementFieldToMatchMethodArgs{}},
					TextTransformations: none,
				}},
				wafv2.WebAclRuleStatementArgs{RegexMatchStatement: &wafv2.WebAclRuleStatementRegexMatchStatementArgs{
					RegexString:         pulumi.String(w.Path),
					FieldToMatch:        &wafv2.WebAclRuleStatementRegexMatchStatementFieldToMatchArgs{UriPath: &wafv2.WebAclRuleStatementRegexMatchStatementFieldToMatchUriPathArgs{}},
					TextTransformations: none,
				}},
			},
		}})
	}
	return wafv2.WebAclRuleStatementArgs{AndStatement: &wafv2.WebAclRuleStatementAndStatementArgs{
		Statements: wafv2.WebAclRuleStatementArray{
			wafv2.WebAclRuleStatementArgs{OrStatement: &wafv2.WebAclRuleStatementOrStatementArgs{Statements: labels}},
			wafv2.WebAclRuleStatementArgs{NotStatement: &wafv2.WebAclRuleStatementNotStatementArgs{
				Statements: wafv2.WebAclRuleStatementArray{
					wafv2.WebAclRuleStatementArgs{OrStatement: &wafv2.WebAclRuleStatementOrStatementArgs{Statements: writes}},
				},
			}},
		},
	}}
}

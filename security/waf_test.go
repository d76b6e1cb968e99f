package security_test

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"webstack/internal/config"
	"webstack/internal/offline/plan"
	"webstack/security"
)

func webACLGraph(t *testing.T, args security.WebACLArgs) *plan.Graph {
	t.Helper()
	g, err := plan.Components("us-east-1", func(ctx *pulumi.Context) error {
		_, err := security.NewEdge(ctx, "edge", &security.EdgeArgs{
			ResourceArn: pulumi.String("arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/public/0123456789abcdef"),
			WebACL:      &args,
		})
		return err
	})
	require.NoError(t, err)
	return g
}

func webACL(t *testing.T, args security.WebACLArgs) plan.Resource {
	t.Helper()
	acls := webACLGraph(t, args).OfType("aws:wafv2/webAcl:WebAcl")
	require.Len(t, acls, 1)
	return acls[0]
}

func TestWebACLZeroArgsTakeTheConfigDefaults(t *testing.T) {
	g := webACLGraph(t, security.WebACLArgs{})
	acl := g.OfType("aws:wafv2/webAcl:WebAcl")[0]
	for _, r := range plan.List(acl.Inputs["rules"]) {
		if rate := plan.Get(r, "statement", "rateBasedStatement"); rate != nil {
			key := map[any]string{"RateLimitPerIP": "wafRateLimit", security.SignInRuleName: "wafLoginRateLimit"}[plan.Get(r, "name")]
			assert.EqualValues(t, config.Default[int](key), plan.Get(rate, "limit"))
			assert.NotNil(t, plan.Get(r, "action", config.Default[string]("wafMode")))
		}
	}
	logs := g.OfType("aws:cloudwatch/logGroup:LogGroup")
	require.Len(t, logs, 1)
	assert.EqualValues(t, config.Default[int]("wafLogRetentionDays"), logs[0].Inputs["retentionInDays"])
}

func TestWebACLHasManagedRulesRateLimitMetricsAndLogging(t *testing.T) {
	g := webACLGraph(t, security.WebACLArgs{Mode: "block", RateLimit: 500})
	acl := g.OfType("aws:wafv2/webAcl:WebAcl")[0]
	assert.Equal(t, "REGIONAL", acl.Inputs["scope"])
	assert.NotNil(t, plan.Get(acl.Inputs, "defaultAction", "allow"))
	assert.Equal(t, true, plan.Get(acl.Inputs, "visibilityConfig", "cloudwatchMetricsEnabled"))
	assert.Equal(t, true, plan.Get(acl.Inputs, "visibilityConfig", "sampledRequestsEnabled"))
	var names []string
	wcu := 0
	groups := security.ManagedRuleGroups()
	for _, r := range plan.List(acl.Inputs["rules"]) {
		name := fmt.Sprint(plan.Get(r, "name"))
		names = append(names, name)
		assert.Equal(t, true, plan.Get(r, "visibilityConfig", "cloudwatchMetricsEnabled"), "rule %s metrics", name)
		assert.Equal(t, true, plan.Get(r, "visibilityConfig", "sampledRequestsEnabled"), "rule %s samples", name)
		if group := plan.Get(r, "statement", "managedRuleGroupStatement", "name"); group != nil {
			assert.NotNil(t, plan.Get(r, "overrideAction", "none"), "block mode enforces %v", group)
			i := slices.IndexFunc(groups, func(m security.ManagedRuleGroup) bool { return m.Name == group })
			require.GreaterOrEqual(t, i, 0, "capacity of %v unknown", group)
			wcu += groups[i].Capacity
		}
		if name == security.BodyRuleName {
			wcu += bodyRuleWCU(plan.Get(r, "statement"))
		}
		if rate := plan.Get(r, "statement", "rateBasedStatement"); rate != nil {
			want := map[string]int{"RateLimitPerIP": 500, security.SignInRuleName: config.Default[int]("wafLoginRateLimit")}[name]
			assert.EqualValues(t, want, plan.Get(rate, "limit"), name)
			assert.Equal(t, "IP", plan.Get(rate, "aggregateKeyType"))
			assert.NotNil(t, plan.Get(r, "action", "block"))
			wcu += security.RateRuleCapacity + bodyRuleWCU(plan.Get(rate, "scopeDownStatement"))
		}
	}
	assert.ElementsMatch(t, []string{"AWSManagedRulesCommonRuleSet", "AWSManagedRulesKnownBadInputsRuleSet", "AWSManagedRulesSQLiRuleSet", "AWSManagedRulesAmazonIpReputationList", "RateLimitPerIP", security.SignInRuleName, security.BodyRuleName}, names)
	assert.LessOrEqual(t, wcu, 1500, "web ACL capacity")
	t.Logf("web ACL capacity: %d WCU", wcu)

	logCfg := g.OfType("aws:wafv2/webAclLoggingConfiguration:WebAclLoggingConfiguration")
	require.Len(t, logCfg, 1)
	dest := fmt.Sprint(plan.Get(logCfg[0].Inputs, "logDestinationConfigs", 0))
	assert.Contains(t, dest, ":log-group:aws-waf-logs-", "WAF logs only to aws-waf-logs-* groups")
	assert.Equal(t, "authorization", plan.Get(logCfg[0].Inputs, "redactedFields", 0, "singleHeader", "name"))
}

func TestWAFCountModeOnlyCounts(t *testing.T) {
	acl := webACL(t, security.WebACLArgs{Mode: "count"})
	for _, r := range plan.List(acl.Inputs["rules"]) {
		if plan.Get(r, "name") == security.SignInRuleName {
			assert.NotNil(t, plan.Get(r, "action", "block"), "the sign-in rate rule blocks in every mode")
			continue
		}
		if plan.Get(r, "overrideAction") != nil {
			assert.NotNil(t, plan.Get(r, "overrideAction", "count"), "%v", plan.Get(r, "name"))
		} else {
			assert.NotNil(t, plan.Get(r, "action", "count"), "%v", plan.Get(r, "name"))
		}
	}
}

// AWS WAF's AND/OR need at least two statements and NOT exactly one;
// the rule's WCU counts toward the 1500 budget.
func bodyRuleWCU(stmt any) int {
	total := 0
	var walk func(s any)
	walk = func(s any) {
		m, _ := s.(map[string]any)
		for k, v := range m {
			switch k {
			case "andStatement", "orStatement", "notStatement":
				for _, c := range plan.List(plan.Get(v, "statements")) {
					walk(c)
				}
			case "labelMatchStatement":
				total++
			case "regexMatchStatement":
				total += 3
			}
		}
	}
	walk(stmt)
	return total
}

// request is what the web ACL sees of a request in this model: its method
// and path, and the labels the managed rules add for its body.
type request struct {
	method, path string
	bodyMatches  []string // managed rule names that match the body
}

// evalACL evaluates the plan's web ACL on req the way AWS WAF does for the
// statements it uses: rules in priority order; a managed rule group labels
// every matching rule and terminates with the rule's action unless the
// rule is overridden to count or the group's override action is count;
// label and regex matches in later rules see those labels.
func evalACL(t *testing.T, acl plan.Resource, req request) string {
	t.Helper()
	rules := plan.List(acl.Inputs["rules"])
	ordered := make([]any, len(rules))
	copy(ordered, rules)
	for i := range ordered {
		for j := i + 1; j < len(ordered); j++ {
			if plan.Number(plan.Get(ordered[j], "priority")) < plan.Number(plan.Get(ordered[i], "priority")) {
				ordered[i], ordered[j] = ordered[j], ordered[i]
			}
		}
	}
	labels := map[string]bool{}
	for _, r := range ordered {
		if g := plan.Get(r, "statement", "managedRuleGroupStatement"); g != nil {
			group := fmt.Sprint(plan.Get(g, "name"))
			overridden := map[string]bool{}
			for _, o := range plan.List(plan.Get(g, "ruleActionOverrides")) {
				if plan.Get(o, "actionToUse", "count") != nil {
					overridden[fmt.Sprint(plan.Get(o, "name"))] = true
				}
			}
			for _, b := range security.BodyRules() {
				if b.Group != group || !slices.Contains(req.bodyMatches, b.Rule) {
					continue
				}
				labels[b.Label] = true
				if !overridden[b.Rule] && plan.Get(r, "overrideAction", "count") == nil {
					return "block by " + group + "#" + b.Rule
				}
			}
			continue
		}
		if plan.Get(r, "statement", "rateBasedStatement") != nil {
			continue
		}
		if match(t, plan.Get(r, "statement"), req, labels) {
			if plan.Get(r, "action", "block") != nil {
				return "block by " + fmt.Sprint(plan.Get(r, "name"))
			}
		}
	}
	return "allow"
}

func match(t *testing.T, s any, req request, labels map[string]bool) bool {
	t.Helper()
	switch {
	case plan.Get(s, "andStatement") != nil:
		sts := plan.List(plan.Get(s, "andStatement", "statements"))
		require.GreaterOrEqual(t, len(sts), 2, "AWS WAF: an AND needs two statements")
		for _, c := range sts {
			if !match(t, c, req, labels) {
				return false
			}
		}
		return true
	case plan.Get(s, "orStatement") != nil:
		sts := plan.List(plan.Get(s, "orStatement", "statements"))
		require.GreaterOrEqual(t, len(sts), 2, "AWS WAF: an OR needs two statements")
		for _, c := range sts {
			if match(t, c, req, labels) {
				return true
			}
		}
		return false
	case plan.Get(s, "notStatement") != nil:
		sts := plan.List(plan.Get(s, "notStatement", "statements"))
		require.Len(t, sts, 1, "AWS WAF: a NOT takes one statement")
		return !match(t, sts[0], req, labels)
	case plan.Get(s, "labelMatchStatement") != nil:
		return labels[fmt.Sprint(plan.Get(s, "labelMatchStatement", "key"))]
	case plan.Get(s, "regexMatchStatement") != nil:
		rx := regexp.MustCompile(fmt.Sprint(plan.Get(s, "regexMatchStatement", "regexString")))
		field := plan.Get(s, "regexMatchStatement", "fieldToMatch")
		switch {
		case plan.Get(field, "method") != nil:
			return rx.MatchString(req.method)
		case plan.Get(field, "uriPath") != nil:
			return rx.MatchString(req.path)
		}
	}
	t.Fatalf("statement the model does not know: %v", s)
	return false
}

// AWS WAF blocks bodies over 8 KB (SizeRestrictions_BODY) and markdown
// with code (CrossSiteScripting_BODY, SQLi_BODY…); the app accepts 1 MiB
// articles. Content writes pass in block mode, the same bodies elsewhere
// are still blocked.
func TestWebACLLetsContentWritesThroughAndBlocksTheSameBodiesElsewhere(t *testing.T) {
	acl := webACL(t, security.WebACLArgs{Mode: "block"})
	code := []string{"SizeRestrictions_BODY", "CrossSiteScripting_BODY", "SQLi_BODY", "GenericLFI_BODY"}
	tests := []struct {
		req  request
		want string
	}{
		{request{"POST", "/api/articles", code}, "allow"},
		{request{"PUT", "/api/articles/how-to-train-your-dragon", code}, "allow"},
		{request{"POST", "/api/articles/how-to-train-your-dragon/comments", code}, "allow"},
		{request{"POST", "/api/users", code}, "block by " + security.BodyRuleName},
		{request{"PUT", "/api/user", []string{"CrossSiteScripting_BODY"}}, "allow"},
		{request{"POST", "/editor", code}, "allow"},
		{request{"POST", "/editor/how-to-train-your-dragon", code}, "allow"},
		{request{"POST", "/article/how-to-train-your-dragon/comments", code}, "allow"},
		{request{"POST", "/article/how-to-train-your-dragon", code}, "allow"},
		{request{"POST", "/settings", []string{"CrossSiteScripting_BODY"}}, "allow"},
		{request{"POST", "/login", code}, "block by " + security.BodyRuleName},
		{request{"POST", "/article/x/delete", []string{"SizeRestrictions_BODY"}}, "block by " + security.BodyRuleName},
		{request{"POST", "/api/articles/x/favorite", []string{"SQLi_BODY"}}, "block by " + security.BodyRuleName},
		{request{"DELETE", "/api/articles/x", []string{"SizeRestrictions_BODY"}}, "block by " + security.BodyRuleName},
		{request{"POST", "/api/articles/../users", []string{"SQLiExtendedPatterns_BODY"}}, "block by " + security.BodyRuleName},
		{request{"GET", "/api/articles", nil}, "allow"},
	}
	for _, tt := range tests {
		got := evalACL(t, acl, tt.req)
		assert.Equal(t, tt.want, got, "%s %s with %v", tt.req.method, tt.req.path, tt.req.bodyMatches)
	}
	// Only the body rules are relaxed: every override in the groups is one of them.
	for _, r := range plan.List(acl.Inputs["rules"]) {
		for _, o := range plan.List(plan.Get(r, "statement", "managedRuleGroupStatement", "ruleActionOverrides")) {
			name := fmt.Sprint(plan.Get(o, "name"))
			assert.True(t, strings.HasSuffix(name, "_BODY"), "override %s is a body rule", name)
		}
	}
}

// The sign-in rate rule counts sign-in posts, and only those, per client
// IP over a minute, before any other rule but the site-wide rate rule.
func TestTheSignInRateRuleCountsSignInsOnly(t *testing.T) {
	acl := webACL(t, security.WebACLArgs{Mode: "block", LoginRateLimit: 15})
	var rule any
	for _, r := range plan.List(acl.Inputs["rules"]) {
		if plan.Get(r, "name") == security.SignInRuleName {
			rule = r
		}
	}
	require.NotNil(t, rule)
	rate := plan.Get(rule, "statement", "rateBasedStatement")
	assert.EqualValues(t, 15, plan.Get(rate, "limit"))
	assert.EqualValues(t, 60, plan.Get(rate, "evaluationWindowSec"), "a short window")
	assert.EqualValues(t, 1, plan.Get(rule, "priority"))
	stmts := plan.List(plan.Get(rate, "scopeDownStatement", "andStatement", "statements"))
	require.Len(t, stmts, 2, "AWS's AND needs two statements")
	method := regexp.MustCompile(fmt.Sprint(plan.Get(stmts[0], "regexMatchStatement", "regexString")))
	path := regexp.MustCompile(fmt.Sprint(plan.Get(stmts[1], "regexMatchStatement", "regexString")))
	assert.NotNil(t, plan.Get(stmts[0], "regexMatchStatement", "fieldToMatch", "method"))
	assert.NotNil(t, plan.Get(stmts[1], "regexMatchStatement", "fieldToMatch", "uriPath"))
	for _, tt := range []struct {
		method, path string
		counted      bool
	}{
		{"POST", "/api/users/login", true},
		{"POST", "/login", true},
		{"GET", "/login", false},
		{"POST", "/api/users", false},
		{"POST", "/login/x", false},
		{"POST", "/xlogin", false},
	} {
		assert.Equal(t, tt.counted, method.MatchString(tt.method) && path.MatchString(tt.path), "%s %s", tt.method, tt.path)
	}
}

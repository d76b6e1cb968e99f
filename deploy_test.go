package main

// Rules a first `pulumi up` (and every later up, rollback, rotation and
// delete) depends on, which mocks alone never enforce: what AWS refuses,
// what the provider turns into a perpetual diff, and creation order. Each
// test names the rule; the source of the rule is in its comment.

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"webstack/database"
	"webstack/internal/plan"
	"webstack/security"
)

// The provider (terraform-provider-aws internal/service/ec2
// ec2_instance.go, buildInstanceOpts) builds a network interface for
// RunInstances whenever subnet_id is set; EC2 then refuses security groups
// in the launch template ("Network interfaces and an instance-level
// security groups may not be specified on the same request").
// associate_public_ip_address is ForceNew+Computed: set to false on an
// instance that then gets an Elastic IP, it reads back true and replaces
// the instance on every run.
func TestStandaloneInstancesHaveAShapeEC2AcceptsAndThatIsStable(t *testing.T) {
	g := planOf(t, "dev")
	insts := g.OfType("aws:ec2/instance:Instance")
	require.Len(t, insts, 2)
	for _, inst := range insts {
		require.NotEmpty(t, inst.Inputs["subnetId"], inst.Name)
		lt, ok := g.ByKey("aws:ec2/launchTemplate:LaunchTemplate::" + inst.Name)
		require.True(t, ok)
		assert.Empty(t, lt.Inputs["vpcSecurityGroupIds"], "%s: a template used with a subnet carries no security groups", lt.Name)
		assert.Empty(t, lt.Inputs["securityGroupNames"], lt.Name)
		assert.Empty(t, lt.Inputs["networkInterfaces"], "%s: the instance's subnet makes the interface", lt.Name)
		assert.NotContains(t, inst.Inputs, "associatePublicIpAddress", "%s: ForceNew and drifts with the Elastic IP", inst.Name)
		sg, _ := g.ByKey("aws:ec2/securityGroup:SecurityGroup::security-" + strings.TrimPrefix(inst.Name, "app-"))
		assert.Equal(t, []any{sg.ID}, inst.Inputs["vpcSecurityGroupIds"], "%s carries its tier's group", inst.Name)
	}
}

// ELB checks that it may write to the access log bucket when logging is
// turned on, so the bucket policy must exist first.
func TestALBWaitsForItsAccessLogBucketPolicy(t *testing.T) {
	g := planOf(t, "prod")
	alb := "aws:lb/loadBalancer:LoadBalancer::app-public"
	assert.True(t, g.Waits(alb, "aws:s3/bucketPolicy:BucketPolicy::app-public-logs"))
}

// An instance refresh with MaxHealthyPercentage 100 terminates before it
// launches: a group of two runs on one instance during every rollout.
func TestInstanceRefreshLaunchesBeforeItTerminates(t *testing.T) {
	for _, s := range []string{"staging", "prod"} {
		for _, asg := range planOf(t, s).OfType("aws:autoscaling/group:Group") {
			prefs := plan.Get(asg.Inputs, "instanceRefresh", "preferences")
			minH, maxH := plan.Number(plan.Get(prefs, "minHealthyPercentage")), plan.Number(plan.Get(prefs, "maxHealthyPercentage"))
			assert.Greater(t, maxH, 100.0, "%s %s launches replacements first", s, asg.Name)
			assert.LessOrEqual(t, maxH, 200.0)
			assert.LessOrEqual(t, maxH-minH, 100.0, "Auto Scaling refuses a wider band")
			assert.GreaterOrEqual(t, minH, 100.0, "%s %s keeps full capacity during a refresh", s, asg.Name)
		}
	}
}

// DocumentDB refuses a final snapshot name that exists already, and any
// name with characters other than letters, digits and single hyphens.
func TestFinalSnapshotNameIsUniqueAndValidForAnyStackName(t *testing.T) {
	valid := regexp.MustCompile(`^[a-z](-?[a-z0-9])*$`)
	for _, stack := range []string{"dev", "my_team.dev", "--x--", "9lives", strings.Repeat("a", 300)} {
		id := database.FinalSnapshotIdentifier("webstack", stack, "database", fixedTime(0))
		assert.Regexp(t, valid, id, "stack %q", stack)
		assert.LessOrEqual(t, len(id), 255)
		assert.NotEqual(t, id, database.FinalSnapshotIdentifier("webstack", stack, "database", fixedTime(1)), "a later cluster gets another name")
	}
	c := planOf(t, "prod").OfType("aws:docdb/cluster:Cluster")[0]
	assert.Regexp(t, valid, c.Inputs["finalSnapshotIdentifier"])
	assert.Equal(t, []any{"finalSnapshotIdentifier"}, c.Options["ignoreChanges"], "each cluster keeps the name it was created with")
	dev := planOf(t, "dev").OfType("aws:docdb/cluster:Cluster")[0]
	assert.NotEmpty(t, dev.Inputs["finalSnapshotIdentifier"], "named even when skipped, so turning snapshots on later works")
}

// VPC flow logs need logs:DescribeLogGroups (AWS's documented role
// policy) and check the role when created.
func TestFlowLogRoleHasTheDocumentedPermissionsBeforeTheFlowLog(t *testing.T) {
	g := planOf(t, "dev")
	pol, ok := g.ByKey("aws:iam/rolePolicy:RolePolicy::network-flow-logs")
	require.True(t, ok)
	var actions []string
	for _, st := range policyDoc(t, pol.Inputs["policy"])["Statement"].([]any) {
		actions = append(actions, asList(plan.Get(st, "Action"))...)
	}
	assert.Subset(t, actions, []string{"logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams", "logs:DescribeLogGroups"})
	assert.True(t, g.Waits("aws:ec2/flowLog:FlowLog::network-flow-logs", pol.Key()))
}

// An instance that boots before its grants exist fails its download or
// secret read; an api that boots before the database instances cannot
// connect.
func TestInstancesBootAfterTheirGrantsAndTheDatabase(t *testing.T) {
	for _, s := range allStacks {
		t.Run(s, func(t *testing.T) {
			g := planOf(t, s)
			booters := map[string]string{} // key → tier
			for _, r := range append(g.OfType("aws:ec2/instance:Instance"), g.OfType("aws:autoscaling/group:Group")...) {
				booters[r.Key()] = strings.TrimPrefix(r.Name, "app-")
			}
			require.Len(t, booters, 2)
			for key, tier := range booters {
				assert.True(t, g.Waits(key, "aws:iam/rolePolicy:RolePolicy::release-"+tier+"-read"), "%s waits for its release grant", key)
				if tier != "api" {
					continue
				}
				assert.True(t, g.Waits(key, "aws:iam/rolePolicy:RolePolicy::secrets-api-read"), "%s waits for its secret grant", key)
				for _, db := range g.OfType("aws:docdb/clusterInstance:ClusterInstance") {
					assert.True(t, g.Waits(key, db.Key()), "%s waits for %s", key, db.Name)
				}
			}
		})
	}
}

// An instance refresh that rolls back launches the previous template
// version, whose user data fetches the previous build: builds stay in the
// bucket, and the grant covers the release prefix of this stack's bucket.
func TestOlderReleasesStayFetchable(t *testing.T) {
	g := planOf(t, "prod")
	obj := g.OfType("aws:s3/bucketObjectv2:BucketObjectv2")[0]
	assert.Equal(t, true, obj.Options["retainOnDelete"], "a replaced build is kept")
	bucket := str(obj.Inputs["bucket"])
	for _, tier := range []string{"web", "api"} {
		grant, _ := g.ByKey("aws:iam/rolePolicy:RolePolicy::release-" + tier + "-read")
		st := policyDoc(t, grant.Inputs["policy"])["Statement"].([]any)
		assert.Equal(t, []any{"arn:aws:s3:::" + bucket + "/conduit/*"}, plan.Get(st[0], "Resource"))
		assert.True(t, strings.HasPrefix(str(obj.Inputs["key"]), "conduit/"), "the build lies under the granted prefix")
	}
	b, _ := g.ByKey("aws:s3/bucketV2:BucketV2::release-artifacts")
	assert.Equal(t, true, b.Inputs["forceDestroy"], "retained builds do not block deleting the stack")
}

// Looked-up zones exclude opt-in Local Zones (whose names sort first) and
// zones that do not offer the stack's instance types. The mock answers
// with a Local Zone unless filtered out, and offers no Graviton type in
// zone e.
func TestLookedUpZonesAreRealAZsThatOfferTheInstanceTypes(t *testing.T) {
	g := planOf(t, "staging", "azCount=4")
	azs := plan.Get(g.OfType("awsx:ec2:Vpc")[0].Inputs, "availabilityZoneNames")
	assert.Equal(t, []any{"us-east-1a", "us-east-1b", "us-east-1c", "us-east-1d"}, azs)
	cfg, err := plan.Config(".", "webstack", "staging", []string{"certificateArn=" + testCert, "azCount=5", "artifactPath=" + testArtifact(t)})
	require.NoError(t, err)
	cfg["webstack:jwtSecret"] = testJWTSecret
	_, err = plan.Run("webstack", "staging", cfg, stack)
	require.Error(t, err, "only 4 zones can run the stack")
	assert.Contains(t, err.Error(), "lower azCount")
}

// The AMI is an explicit choice: pinned, or the latest read at deploy time
// (shown as a stack output, so that preview shows a new one).
func TestAMIIsPinnedOrResolvedVisibly(t *testing.T) {
	g := planOf(t, "dev", "amiId=ami-0abcdef1234567890")
	for _, lt := range g.OfType("aws:ec2/launchTemplate:LaunchTemplate") {
		assert.Equal(t, "ami-0abcdef1234567890", lt.Inputs["imageId"])
	}
	assert.Equal(t, "ami-0abcdef1234567890", g.Outputs["amiId"])
	g = planOf(t, "dev")
	lts := g.OfType("aws:ec2/launchTemplate:LaunchTemplate")
	assert.Equal(t, lts[0].Inputs["imageId"], g.Outputs["amiId"], "the resolved AMI is an output")
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
			group := str(plan.Get(g, "name"))
			overridden := map[string]bool{}
			for _, o := range plan.List(plan.Get(g, "ruleActionOverrides")) {
				if plan.Get(o, "actionToUse", "count") != nil {
					overridden[str(plan.Get(o, "name"))] = true
				}
			}
			for _, b := range security.BodyRules() {
				if b.Group != group || !contains(req.bodyMatches, b.Rule) {
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
				return "block by " + str(plan.Get(r, "name"))
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
		return labels[str(plan.Get(s, "labelMatchStatement", "key"))]
	case plan.Get(s, "regexMatchStatement") != nil:
		rx := regexp.MustCompile(str(plan.Get(s, "regexMatchStatement", "regexString")))
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

func fixedTime(sec int64) time.Time { return time.Unix(sec, 0) }

func contains(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

// AWS WAF blocks bodies over 8 KB (SizeRestrictions_BODY) and markdown
// with code (CrossSiteScripting_BODY, SQLi_BODY…); the app accepts 1 MiB
// articles. Content writes pass in block mode, the same bodies elsewhere
// are still blocked.
func TestWebACLLetsContentWritesThroughAndBlocksTheSameBodiesElsewhere(t *testing.T) {
	acl := planOf(t, "prod").OfType("aws:wafv2/webAcl:WebAcl")[0]
	code := []string{"SizeRestrictions_BODY", "CrossSiteScripting_BODY", "SQLi_BODY", "GenericLFI_BODY"}
	tests := []struct {
		req  request
		want string
	}{
		{request{"POST", "/api/articles", code}, "allow"},
		{request{"PUT", "/api/articles/how-to-train-your-dragon", code}, "allow"},
		{request{"POST", "/api/articles/how-to-train-your-dragon/comments", code}, "allow"},
		{request{"POST", "/api/users", code}, "block by " + security.BodyRuleName},
		{request{"PUT", "/api/user", []string{"CrossSiteScripting_BODY"}}, "block by " + security.BodyRuleName},
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
			name := str(plan.Get(o, "name"))
			assert.True(t, strings.HasSuffix(name, "_BODY"), "override %s is a body rule", name)
		}
	}
}

// The plan JSON carries each resource's dependencies and lifecycle
// options (make plan FORMAT=json).
func TestPlanShowsDependenciesAndLifecycleOptions(t *testing.T) {
	g := planOf(t, "prod")
	for _, r := range g.Resources {
		assert.NotNil(t, r.DependsOn, r.Key())
		assert.NotNil(t, r.Options, r.Key())
		for _, d := range r.DependsOn {
			_, ok := g.ByKey(d)
			assert.True(t, ok, "%s depends on %s, which is in the graph", r.Key(), d)
		}
	}
	lt, _ := g.ByKey("aws:ec2/launchTemplate:LaunchTemplate::app-web")
	assert.Contains(t, lt.DependsOn, "aws:iam/instanceProfile:InstanceProfile::security-web", "inputs' resources are dependencies")
	assert.Equal(t, []any{"masterPassword"}, g.OfType("aws:docdb/cluster:Cluster")[0].Options["additionalSecretOutputs"])
}

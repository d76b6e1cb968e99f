package main

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"webstack/internal/architecture"
	"webstack/internal/cloudinit"
	"webstack/internal/cost"
	"webstack/internal/offline"
	"webstack/internal/plan"
	"webstack/security"
)

const (
	testCert      = "arn:aws:acm:us-east-1:123456789012:certificate/example"
	testJWTSecret = "test-jwt-secret-0123456789abcdef0123456789"
	// testBuildSHA is the sha256 of testArtifact's content.
	testBuildSHA = "2bd9a07eddf2828e1f9fdf26fb92161b6ecef4e434d96eb9a9fa9874a073d909"
)

// testArtifact writes a stand-in build; its content fixes testBuildSHA.
func testArtifact(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "conduit-linux-arm64")
	require.NoError(t, os.WriteFile(path, []byte("a build"), 0o755))
	return path
}

// planOf runs the real program for a stack file under mocks, with overrides
// ("key=value", project namespace implied) applied like `pulumi -c`.
func planOf(t *testing.T, stackName string, overrides ...string) *plan.Graph {
	t.Helper()
	cfg, err := plan.StackConfig(".", stackName)
	require.NoError(t, err)
	if stackName != "dev" && !slices.ContainsFunc(overrides, func(s string) bool {
		return strings.HasPrefix(s, "certificateArn=") || strings.HasPrefix(s, "allowHttp=")
	}) {
		overrides = append(overrides, "certificateArn="+testCert)
	}
	cfg["webstack:jwtSecret"] = testJWTSecret
	cfg["webstack:artifactPath"] = testArtifact(t)
	for _, kv := range overrides {
		k, v, _ := strings.Cut(kv, "=")
		if !strings.Contains(k, ":") {
			k = "webstack:" + k
		}
		cfg[k] = v
	}
	g, err := plan.Run("webstack", stackName, cfg, stack)
	require.NoError(t, err)
	return g
}

var allStacks = []string{"dev", "staging", "prod"}

func str(v any) string { return fmt.Sprint(v) }

// policyDoc decodes a JSON policy input.
func policyDoc(t *testing.T, raw any) map[string]any {
	t.Helper()
	var doc map[string]any
	require.NoError(t, json.Unmarshal([]byte(str(raw)), &doc), "policy %v", raw)
	return doc
}

func TestStackShapes(t *testing.T) {
	tests := []struct {
		stack                                       string
		albs, asgs, instances, dbInstances, webACLs int
	}{
		{"dev", 0, 0, 2, 1, 0},
		{"staging", 2, 2, 0, 2, 1},
		{"prod", 2, 2, 0, 3, 1},
	}
	for _, tt := range tests {
		t.Run(tt.stack, func(t *testing.T) {
			g := planOf(t, tt.stack)
			assert.Len(t, g.OfType("aws:lb/loadBalancer:LoadBalancer"), tt.albs, "load balancers")
			assert.Len(t, g.OfType("aws:autoscaling/group:Group"), tt.asgs, "auto scaling groups")
			assert.Len(t, g.OfType("aws:ec2/instance:Instance"), tt.instances, "standalone instances")
			assert.Len(t, g.OfType("aws:docdb/clusterInstance:ClusterInstance"), tt.dbInstances, "DocumentDB instances")
			assert.Len(t, g.OfType("aws:wafv2/webAcl:WebAcl"), tt.webACLs, "web ACLs")
			assert.Len(t, g.OfType("aws:docdb/cluster:Cluster"), 1)
			assert.Len(t, g.OfType("awsx:ec2:Vpc"), 1)
		})
	}
}

func TestDevWebInstanceHasElasticIPAndAPIInstanceIsPrivate(t *testing.T) {
	g := planOf(t, "dev")
	eips := g.OfType("aws:ec2/eip:Eip")
	require.Len(t, eips, 1)
	web, ok := g.ByKey("aws:ec2/instance:Instance::app-web")
	require.True(t, ok)
	api, ok := g.ByKey("aws:ec2/instance:Instance::app-api")
	require.True(t, ok)
	assert.Equal(t, web.ID, eips[0].Inputs["instance"], "the Elastic IP is on the web instance")
	assert.Equal(t, plan.Get(g.Outputs, "publicSubnetIds", 0), web.Inputs["subnetId"])
	assert.Equal(t, plan.Get(g.Outputs, "privateSubnetIds", 0), api.Inputs["subnetId"])
	for _, inst := range []plan.Resource{web, api} {
		assert.Equal(t, true, inst.Inputs["userDataReplaceOnChange"], "%s is replaced when its user data changes", inst.Name)
	}
	assert.Equal(t, "http://203.0.113.10", g.Outputs["url"])
}

func TestHATiersSpanEveryAZ(t *testing.T) {
	for _, s := range []string{"staging", "prod"} {
		t.Run(s, func(t *testing.T) {
			g := planOf(t, s)
			azs := plan.Get(g.OfType("awsx:ec2:Vpc")[0].Inputs, "availabilityZoneNames").([]any)
			assert.GreaterOrEqual(t, len(azs), 2)
			private := g.Outputs["privateSubnetIds"].([]any)
			public := g.Outputs["publicSubnetIds"].([]any)
			require.Len(t, private, len(azs))
			for _, asg := range g.OfType("aws:autoscaling/group:Group") {
				assert.ElementsMatch(t, private, asg.Inputs["vpcZoneIdentifiers"], "%s spans every private subnet", asg.Name)
			}
			for _, alb := range g.OfType("aws:lb/loadBalancer:LoadBalancer") {
				want := public
				if alb.Inputs["internal"] == true {
					want = private
				}
				assert.ElementsMatch(t, want, alb.Inputs["subnets"], "%s spans every AZ", alb.Name)
			}
			var zones []string
			for _, inst := range g.OfType("aws:docdb/clusterInstance:ClusterInstance") {
				zones = append(zones, str(inst.Inputs["availabilityZone"]))
			}
			assert.GreaterOrEqual(t, len(slices.Compact(slices.Sorted(slices.Values(zones)))), 2, "DocumentDB instances in at least two AZs: %v", zones)
		})
	}
}

func TestAvailabilityZonesArePinnedSortedAndCut(t *testing.T) {
	// The mock answers us-east-1c, a, d, b: the program must sort, then cut.
	g := planOf(t, "prod") // azCount 3
	assert.Equal(t, []any{"us-east-1a", "us-east-1b", "us-east-1c"}, g.OfType("awsx:ec2:Vpc")[0].Inputs["availabilityZoneNames"])
	g = planOf(t, "dev", `availabilityZones=["us-east-1d","us-east-1b"]`)
	assert.Equal(t, []any{"us-east-1d", "us-east-1b"}, g.OfType("awsx:ec2:Vpc")[0].Inputs["availabilityZoneNames"], "pinned zones are used as given")
}

func TestVPCHasThreeSubnetTiersAndNATPerStack(t *testing.T) {
	for stackName, nat := range map[string]string{"dev": "Single", "staging": "Single", "prod": "OnePerAz"} {
		t.Run(stackName, func(t *testing.T) {
			vpc := planOf(t, stackName).OfType("awsx:ec2:Vpc")[0]
			assert.Equal(t, nat, plan.Get(vpc.Inputs, "natGateways", "strategy"))
			var types []string
			for _, s := range vpc.Inputs["subnetSpecs"].([]any) {
				types = append(types, str(plan.Get(s, "type")))
			}
			assert.ElementsMatch(t, []string{"Public", "Private", "Isolated"}, types)
		})
	}
}

func TestS3GatewayEndpointAndEmptyDefaultSecurityGroup(t *testing.T) {
	g := planOf(t, "dev")
	eps := g.OfType("aws:ec2/vpcEndpoint:VpcEndpoint")
	require.Len(t, eps, 1)
	assert.Equal(t, "com.amazonaws.us-east-1.s3", eps[0].Inputs["serviceName"])
	assert.Equal(t, "Gateway", eps[0].Inputs["vpcEndpointType"])
	assert.NotEmpty(t, eps[0].Inputs["routeTableIds"])
	dsg := g.OfType("aws:ec2/defaultSecurityGroup:DefaultSecurityGroup")
	require.Len(t, dsg, 1)
	assert.Empty(t, dsg[0].Inputs["ingress"], "default security group allows no ingress")
	assert.Empty(t, dsg[0].Inputs["egress"], "default security group allows no egress")
}

func TestFlowLogsGoToARetainedLogGroupThroughAScopedRole(t *testing.T) {
	for _, s := range allStacks {
		t.Run(s, func(t *testing.T) {
			g := planOf(t, s)
			fls := g.OfType("aws:ec2/flowLog:FlowLog")
			require.Len(t, fls, 1)
			fl := fls[0]
			assert.Equal(t, "ALL", fl.Inputs["trafficType"])
			assert.Equal(t, g.Outputs["vpcId"], fl.Inputs["vpcId"])
			group, ok := g.ByKey("aws:cloudwatch/logGroup:LogGroup::network-flow-logs")
			require.True(t, ok)
			assert.Positive(t, group.Inputs["retentionInDays"])
			groupArn := "arn:aws:logs:us-east-1:" + plan.Account + ":log-group:" + str(group.Inputs["name"])
			assert.Equal(t, groupArn, fl.Inputs["logDestination"])
			pol, ok := g.ByKey("aws:iam/rolePolicy:RolePolicy::network-flow-logs")
			require.True(t, ok)
			accountGroups := "arn:aws:logs:us-east-1:" + plan.Account + ":log-group:*"
			for _, st := range policyDoc(t, pol.Inputs["policy"])["Statement"].([]any) {
				for _, r := range st.(map[string]any)["Resource"].([]any) {
					if r == accountGroups {
						// Listing log groups cannot be narrowed to one group.
						assert.Equal(t, []any{"logs:DescribeLogGroups"}, plan.Get(st, "Action"), "only the listing reaches every log group")
						continue
					}
					assert.True(t, strings.HasPrefix(str(r), groupArn), "flow log role reaches %v, beyond its log group", r)
				}
			}
		})
	}
}

// ingressEdges returns "source -> sg-name:port" for every ingress rule.
func ingressEdges(g *plan.Graph) []string {
	sgName := map[string]string{}
	for _, sg := range g.OfType("aws:ec2/securityGroup:SecurityGroup") {
		sgName[sg.ID] = strings.TrimPrefix(sg.Name, "security-")
	}
	var edges []string
	for _, r := range g.OfType("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule") {
		src := str(r.Inputs["cidrIpv4"])
		if ref, ok := r.Inputs["referencedSecurityGroupId"]; ok {
			src = sgName[str(ref)]
		}
		edges = append(edges, fmt.Sprintf("%s -> %s:%v", src, sgName[str(r.Inputs["securityGroupId"])], r.Inputs["fromPort"]))
	}
	sort.Strings(edges)
	return edges
}

func TestSecurityGroupChainAllowsOnlyTheArchitecturePath(t *testing.T) {
	tests := []struct {
		stack string
		extra []string
		want  []string
	}{
		{"dev", nil, []string{"0.0.0.0/0 -> web:80", "api -> db:27017", "web -> api:8081"}},
		{"prod", nil, []string{
			"0.0.0.0/0 -> public-alb:443", "0.0.0.0/0 -> public-alb:80", "api -> db:27017",
			"internal-alb -> api:8081", "public-alb -> web:8080", "web -> internal-alb:8081",
		}},
		{"staging", []string{"allowHttp=true"}, []string{
			"0.0.0.0/0 -> public-alb:80", "api -> db:27017",
			"internal-alb -> api:8081", "public-alb -> web:8080", "web -> internal-alb:8081",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.stack, func(t *testing.T) {
			assert.Equal(t, tt.want, ingressEdges(planOf(t, tt.stack, tt.extra...)))
		})
	}
}

func TestNoSSHAndNoKeyPairs(t *testing.T) {
	for _, s := range allStacks {
		t.Run(s, func(t *testing.T) {
			g := planOf(t, s)
			for _, r := range g.OfType("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule") {
				from, to := r.Inputs["fromPort"].(int64), r.Inputs["toPort"].(int64)
				assert.False(t, from <= 22 && 22 <= to, "%s opens port 22", r.Name)
				assert.NotEqual(t, "-1", r.Inputs["ipProtocol"], "%s allows all protocols", r.Name)
			}
			for _, typ := range []string{"aws:ec2/launchTemplate:LaunchTemplate", "aws:ec2/instance:Instance"} {
				for _, r := range g.OfType(typ) {
					assert.NotContains(t, r.Inputs, "keyName", "%s has a key pair", r.Name)
				}
			}
			assert.Empty(t, g.OfType("aws:ec2/keyPair:KeyPair"))
		})
	}
}

func TestDatabaseIsReachableOnlyFromTheAPITier(t *testing.T) {
	for _, s := range allStacks {
		t.Run(s, func(t *testing.T) {
			g := planOf(t, s)
			db, _ := g.ByKey("aws:ec2/securityGroup:SecurityGroup::security-db")
			api, _ := g.ByKey("aws:ec2/securityGroup:SecurityGroup::security-api")
			var sources []string
			for _, r := range g.OfType("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule") {
				if r.Inputs["securityGroupId"] == db.ID {
					sources = append(sources, fmt.Sprintf("%v:%v", r.Inputs["referencedSecurityGroupId"], r.Inputs["fromPort"]))
				}
			}
			assert.Equal(t, []string{api.ID + ":27017"}, sources)
			cluster := g.OfType("aws:docdb/cluster:Cluster")[0]
			assert.Equal(t, []any{db.ID}, cluster.Inputs["vpcSecurityGroupIds"])
			subnets := g.OfType("aws:docdb/subnetGroup:SubnetGroup")[0]
			assert.Equal(t, g.Outputs["isolatedSubnetIds"], subnets.Inputs["subnetIds"], "DocumentDB sits in the isolated subnets")
		})
	}
}

func TestLaunchTemplatesRequireIMDSv2AndEncryptRootVolumes(t *testing.T) {
	for _, s := range allStacks {
		t.Run(s, func(t *testing.T) {
			lts := planOf(t, s).OfType("aws:ec2/launchTemplate:LaunchTemplate")
			require.Len(t, lts, 2)
			for _, lt := range lts {
				assert.Equal(t, "required", plan.Get(lt.Inputs, "metadataOptions", "httpTokens"), "%s IMDSv2", lt.Name)
				assert.Equal(t, int64(1), plan.Get(lt.Inputs, "metadataOptions", "httpPutResponseHopLimit"), "%s hop limit", lt.Name)
				assert.Equal(t, "true", plan.Get(lt.Inputs, "blockDeviceMappings", 0, "ebs", "encrypted"), "%s root volume encrypted", lt.Name)
				assert.Equal(t, "gp3", plan.Get(lt.Inputs, "blockDeviceMappings", 0, "ebs", "volumeType"))
				assert.Equal(t, "ami-0123456789abcdef0", lt.Inputs["imageId"], "AMI comes from the SSM parameter")
				assert.Regexp(t, `^[a-z][a-z0-9]*g[a-z0-9]*\.`, lt.Inputs["instanceType"], "Graviton")
				assert.NotEmpty(t, plan.Get(lt.Inputs, "iamInstanceProfile", "name"))
				if ni := plan.Get(lt.Inputs, "networkInterfaces", 0); ni != nil {
					assert.Equal(t, "false", plan.Get(ni, "associatePublicIpAddress"), "%s private tiers get no public IP", lt.Name)
				}
			}
		})
	}
}

func TestEncryptionAtRest(t *testing.T) {
	g := planOf(t, "prod")
	assert.Equal(t, true, g.OfType("aws:docdb/cluster:Cluster")[0].Inputs["storageEncrypted"])
	buckets := g.OfType("aws:s3/bucketV2:BucketV2")
	require.NotEmpty(t, buckets)
	sse := g.OfType("aws:s3/bucketServerSideEncryptionConfigurationV2:BucketServerSideEncryptionConfigurationV2")
	pab := g.OfType("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")
	assert.Len(t, sse, len(buckets), "every bucket is encrypted")
	assert.Len(t, pab, len(buckets), "every bucket blocks public access")
	for _, p := range pab {
		for _, k := range []string{"blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets"} {
			assert.Equal(t, true, p.Inputs[k], k)
		}
	}
	for _, p := range g.OfType("aws:s3/bucketPolicy:BucketPolicy") {
		assert.Contains(t, str(p.Inputs["policy"]), `"aws:SecureTransport":"false"`, "bucket policy denies plain HTTP")
	}
}

func TestNoWildcardIAMAndOneSSMRolePerTier(t *testing.T) {
	for _, s := range allStacks {
		t.Run(s, func(t *testing.T) {
			g := planOf(t, s)
			var docs []any
			for _, r := range g.OfType("aws:iam/rolePolicy:RolePolicy") {
				docs = append(docs, r.Inputs["policy"])
			}
			for _, r := range g.OfType("aws:iam/policy:Policy") {
				docs = append(docs, r.Inputs["policy"])
			}
			for _, raw := range docs {
				for _, st := range policyDoc(t, raw)["Statement"].([]any) {
					st := st.(map[string]any)
					if st["Effect"] != "Allow" {
						continue
					}
					assert.False(t, fmt.Sprint(st["Action"]) == "*" || slices.Contains(asList(st["Action"]), "*"), "Action * in %v", raw)
					assert.False(t, fmt.Sprint(st["Resource"]) == "*" || slices.Contains(asList(st["Resource"]), "*"), "Resource * in %v", raw)
				}
			}
			for _, tier := range []string{"web", "api"} {
				role, ok := g.ByKey("aws:iam/role:Role::security-" + tier)
				require.True(t, ok)
				assert.Contains(t, str(role.Inputs["assumeRolePolicy"]), `"Service":"ec2.amazonaws.com"`)
				att, ok := g.ByKey("aws:iam/rolePolicyAttachment:RolePolicyAttachment::security-" + tier + "-ssm")
				require.True(t, ok)
				assert.Equal(t, role.ID, att.Inputs["role"])
				assert.Equal(t, "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore", att.Inputs["policyArn"])
			}
			for _, att := range g.OfType("aws:iam/rolePolicyAttachment:RolePolicyAttachment") {
				assert.NotContains(t, str(att.Inputs["policyArn"]), "AdministratorAccess")
			}
		})
	}
}

func asList(v any) []string {
	var out []string
	if a, ok := v.([]any); ok {
		for _, e := range a {
			out = append(out, str(e))
		}
	}
	return out
}

func TestHTTPSListenerUsesTLS13PolicyAndHTTPRedirects(t *testing.T) {
	g := planOf(t, "prod")
	https, ok := g.ByKey("aws:lb/listener:Listener::app-https")
	require.True(t, ok)
	assert.Equal(t, "HTTPS", https.Inputs["protocol"])
	assert.Equal(t, "ELBSecurityPolicy-TLS13-1-2-2021-06", https.Inputs["sslPolicy"])
	assert.Equal(t, testCert, https.Inputs["certificateArn"])
	http, ok := g.ByKey("aws:lb/listener:Listener::app-http")
	require.True(t, ok)
	assert.Equal(t, "redirect", plan.Get(http.Inputs, "defaultActions", 0, "type"))
	assert.Equal(t, "HTTPS", plan.Get(http.Inputs, "defaultActions", 0, "redirect", "protocol"))
	assert.True(t, strings.HasPrefix(str(g.Outputs["url"]), "https://"))

	// Plain HTTP only as an explicit opt-out.
	g = planOf(t, "staging", "allowHttp=true")
	_, ok = g.ByKey("aws:lb/listener:Listener::app-https")
	assert.False(t, ok)
	http, _ = g.ByKey("aws:lb/listener:Listener::app-http")
	assert.Equal(t, "forward", plan.Get(http.Inputs, "defaultActions", 0, "type"))
	assert.True(t, strings.HasPrefix(str(g.Outputs["url"]), "http://"))
}

func TestLoadBalancersDropInvalidHeadersAndMitigateDesync(t *testing.T) {
	for stackName, mode := range map[string]string{"staging": "defensive", "prod": "strictest"} {
		t.Run(stackName, func(t *testing.T) {
			g := planOf(t, stackName)
			for _, alb := range g.OfType("aws:lb/loadBalancer:LoadBalancer") {
				assert.Equal(t, true, alb.Inputs["dropInvalidHeaderFields"], alb.Name)
				assert.Equal(t, mode, alb.Inputs["desyncMitigationMode"], alb.Name)
			}
			for _, tg := range g.OfType("aws:lb/targetGroup:TargetGroup") {
				assert.Equal(t, "/healthz", plan.Get(tg.Inputs, "healthCheck", "path"), tg.Name)
			}
		})
	}
	pub, _ := planOf(t, "prod").ByKey("aws:lb/loadBalancer:LoadBalancer::app-public")
	assert.Equal(t, true, pub.Inputs["enableDeletionProtection"], "prod public ALB refuses deletion")
	assert.Equal(t, true, plan.Get(pub.Inputs, "accessLogs", "enabled"), "prod keeps access logs")
	g := planOf(t, "prod")
	pol, ok := g.ByKey("aws:s3/bucketPolicy:BucketPolicy::app-public-logs")
	require.True(t, ok)
	assert.Contains(t, str(pol.Inputs["policy"]), "arn:aws:iam::127311923021:root", "ELB log delivery may write")
}

func TestAutoScalingGroupsUseELBHealthRollingRefreshAndCPUTracking(t *testing.T) {
	g := planOf(t, "prod")
	asgs := g.OfType("aws:autoscaling/group:Group")
	require.Len(t, asgs, 2)
	for _, asg := range asgs {
		assert.Equal(t, "ELB", asg.Inputs["healthCheckType"])
		assert.Equal(t, "Rolling", plan.Get(asg.Inputs, "instanceRefresh", "strategy"))
		assert.Equal(t, true, plan.Get(asg.Inputs, "instanceRefresh", "preferences", "skipMatching"))
		assert.NotEmpty(t, asg.Inputs["targetGroupArns"])
		assert.Equal(t, int64(3), asg.Inputs["minSize"])
	}
	pols := g.OfType("aws:autoscaling/policy:Policy")
	require.Len(t, pols, 2)
	for _, p := range pols {
		assert.Equal(t, "TargetTrackingScaling", p.Inputs["policyType"])
		assert.Equal(t, "ASGAverageCPUUtilization", plan.Get(p.Inputs, "targetTrackingConfiguration", "predefinedMetricSpecification", "predefinedMetricType"))
	}
}

func TestWebACLHasManagedRulesRateLimitMetricsAndLogging(t *testing.T) {
	g := planOf(t, "prod", "wafRateLimit=500")
	acl := g.OfType("aws:wafv2/webAcl:WebAcl")[0]
	assert.Equal(t, "REGIONAL", acl.Inputs["scope"])
	assert.NotNil(t, plan.Get(acl.Inputs, "defaultAction", "allow"))
	assert.Equal(t, true, plan.Get(acl.Inputs, "visibilityConfig", "cloudwatchMetricsEnabled"))
	assert.Equal(t, true, plan.Get(acl.Inputs, "visibilityConfig", "sampledRequestsEnabled"))
	var names []string
	wcu := 0
	for _, r := range acl.Inputs["rules"].([]any) {
		names = append(names, str(plan.Get(r, "name")))
		assert.Equal(t, true, plan.Get(r, "visibilityConfig", "cloudwatchMetricsEnabled"), "rule %v metrics", plan.Get(r, "name"))
		assert.Equal(t, true, plan.Get(r, "visibilityConfig", "sampledRequestsEnabled"), "rule %v samples", plan.Get(r, "name"))
		if group := plan.Get(r, "statement", "managedRuleGroupStatement", "name"); group != nil {
			assert.NotNil(t, plan.Get(r, "overrideAction", "none"), "block mode enforces %v", group)
			groups := security.ManagedRuleGroups()
			i := slices.IndexFunc(groups, func(m security.ManagedRuleGroup) bool { return m.Name == group })
			require.GreaterOrEqual(t, i, 0, "capacity of %v unknown", group)
			wcu += groups[i].Capacity
		}
		if plan.Get(r, "name") == security.BodyRuleName {
			wcu += bodyRuleWCU(plan.Get(r, "statement"))
		}
		if rate := plan.Get(r, "statement", "rateBasedStatement"); rate != nil {
			assert.Equal(t, int64(500), plan.Get(rate, "limit"))
			assert.Equal(t, "IP", plan.Get(rate, "aggregateKeyType"))
			assert.NotNil(t, plan.Get(r, "action", "block"))
			wcu += security.RateRuleCapacity
		}
	}
	assert.ElementsMatch(t, []string{"AWSManagedRulesCommonRuleSet", "AWSManagedRulesKnownBadInputsRuleSet", "AWSManagedRulesSQLiRuleSet", "AWSManagedRulesAmazonIpReputationList", "RateLimitPerIP", security.BodyRuleName}, names)
	assert.LessOrEqual(t, wcu, 1500, "web ACL capacity")

	logCfg := g.OfType("aws:wafv2/webAclLoggingConfiguration:WebAclLoggingConfiguration")
	require.Len(t, logCfg, 1)
	dest := str(plan.Get(logCfg[0].Inputs, "logDestinationConfigs", 0))
	assert.Contains(t, dest, ":log-group:aws-waf-logs-", "WAF logs only to aws-waf-logs-* groups")
	assert.Equal(t, "authorization", plan.Get(logCfg[0].Inputs, "redactedFields", 0, "singleHeader", "name"))

	assoc := g.OfType("aws:wafv2/webAclAssociation:WebAclAssociation")
	require.Len(t, assoc, 1)
	pub, _ := g.ByKey("aws:lb/loadBalancer:LoadBalancer::app-public")
	assert.Contains(t, str(assoc[0].Inputs["resourceArn"]), pub.ID, "web ACL protects the public ALB")
	assert.Contains(t, str(assoc[0].Inputs["webAclArn"]), acl.ID)
}

func TestWAFCountModeOnlyCounts(t *testing.T) {
	acl := planOf(t, "staging").OfType("aws:wafv2/webAcl:WebAcl")[0] // staging: wafMode count
	for _, r := range acl.Inputs["rules"].([]any) {
		if plan.Get(r, "overrideAction") != nil {
			assert.NotNil(t, plan.Get(r, "overrideAction", "count"), "%v", plan.Get(r, "name"))
		} else {
			assert.NotNil(t, plan.Get(r, "action", "count"), "%v", plan.Get(r, "name"))
		}
	}
}

func TestShieldAdvancedIsOptInAndNeverSubscribes(t *testing.T) {
	for _, s := range allStacks {
		g := planOf(t, s)
		assert.Empty(t, g.OfType("aws:shield/protection:Protection"), "%s: off by default", s)
		assert.Empty(t, g.OfType("aws:shield/subscription:Subscription"))
	}
	g := planOf(t, "prod", "shieldAdvanced=true")
	p := g.OfType("aws:shield/protection:Protection")
	require.Len(t, p, 1)
	pub, _ := g.ByKey("aws:lb/loadBalancer:LoadBalancer::app-public")
	assert.Contains(t, str(p[0].Inputs["resourceArn"]), pub.ID)
	assert.Empty(t, g.OfType("aws:shield/subscription:Subscription"))

	g = planOf(t, "dev", "shieldAdvanced=true")
	p = g.OfType("aws:shield/protection:Protection")
	require.Len(t, p, 1)
	eip := g.OfType("aws:ec2/eip:Eip")[0]
	assert.Equal(t, "arn:aws:ec2:us-east-1:"+plan.Account+":eip-allocation/"+eip.ID, p[0].Inputs["resourceArn"])
}

func TestDocumentDBIsEncryptedTLSAuditedAndBackedUp(t *testing.T) {
	tests := []struct {
		stack      string
		retention  int64
		protected  bool
		logExports []any
	}{
		{"dev", 7, false, []any{}},
		{"staging", 7, true, []any{"audit", "profiler"}},
		{"prod", 14, true, []any{"audit", "profiler"}},
	}
	for _, tt := range tests {
		t.Run(tt.stack, func(t *testing.T) {
			g := planOf(t, tt.stack)
			c := g.OfType("aws:docdb/cluster:Cluster")[0]
			assert.Equal(t, "5.0.0", c.Inputs["engineVersion"])
			assert.Equal(t, true, c.Inputs["manageMasterUserPassword"])
			assert.NotContains(t, c.Inputs, "masterPassword", "no password in config or state")
			assert.NotContains(t, c.Inputs, "availabilityZones", "setting AZs replaces the cluster on every run")
			assert.Equal(t, tt.retention, c.Inputs["backupRetentionPeriod"])
			assert.NotEmpty(t, c.Inputs["preferredBackupWindow"])
			assert.NotEmpty(t, c.Inputs["preferredMaintenanceWindow"])
			assert.Equal(t, tt.protected, c.Inputs["deletionProtection"])
			assert.Equal(t, !tt.protected, c.Inputs["skipFinalSnapshot"])
			if tt.protected {
				assert.NotEmpty(t, c.Inputs["finalSnapshotIdentifier"])
			}
			assert.ElementsMatch(t, tt.logExports, c.Inputs["enabledCloudwatchLogsExports"])
			pg := g.OfType("aws:docdb/clusterParameterGroup:ClusterParameterGroup")[0]
			assert.Equal(t, "docdb5.0", pg.Inputs["family"])
			params := map[string]any{}
			for _, p := range pg.Inputs["parameters"].([]any) {
				params[str(plan.Get(p, "name"))] = plan.Get(p, "value")
			}
			assert.Equal(t, "enabled", params["tls"])
			if tt.protected {
				assert.Equal(t, "enabled", params["audit_logs"])
			}
		})
	}
}

func TestProviderDefaultTagsAndNameTagEverywhere(t *testing.T) {
	// Types the AWS API gives no tags.
	untaggable := map[string]bool{
		"aws:iam/rolePolicy:RolePolicy": true, "aws:iam/rolePolicyAttachment:RolePolicyAttachment": true,
		"aws:s3/bucketPolicy:BucketPolicy": true, "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock": true,
		"aws:s3/bucketOwnershipControls:BucketOwnershipControls":                                     true,
		"aws:s3/bucketServerSideEncryptionConfigurationV2:BucketServerSideEncryptionConfigurationV2": true,
		"aws:s3/bucketVersioningV2:BucketVersioningV2":                                               true, "aws:s3/bucketLifecycleConfigurationV2:BucketLifecycleConfigurationV2": true,
		"aws:wafv2/webAclAssociation:WebAclAssociation": true, "aws:wafv2/webAclLoggingConfiguration:WebAclLoggingConfiguration": true,
		"aws:autoscaling/policy:Policy": true, "pulumi:providers:aws": true,
		"aws:secretsmanager/secretVersion:SecretVersion": true,
	}
	for _, s := range allStacks {
		t.Run(s, func(t *testing.T) {
			g := planOf(t, s, "shieldAdvanced=true")
			p := g.OfType("pulumi:providers:aws")
			require.Len(t, p, 1)
			assert.Equal(t, map[string]any{"Project": "webstack", "Stack": s, "ManagedBy": "pulumi", "Owner": "platform-team"}, plan.Get(p[0].Inputs, "defaultTags", "tags"))
			for _, r := range g.Resources {
				if !r.Custom || untaggable[r.Type] {
					continue
				}
				if r.Type == "aws:autoscaling/group:Group" {
					assert.Equal(t, "Name", plan.Get(r.Inputs, "tags", 0, "key"), r.Key())
					continue
				}
				assert.NotEmpty(t, plan.Get(r.Inputs, "tags", "Name"), "%s has no Name tag", r.Key())
			}
		})
	}
}

func TestEveryResourceIsInsideATierComponent(t *testing.T) {
	g := planOf(t, "prod")
	for _, r := range g.Resources {
		if r.Parent == "" {
			assert.True(t, !r.Custom && strings.HasPrefix(r.Type, "webstack:") || r.Type == "pulumi:providers:aws", "%s is not inside a component", r.Key())
		}
	}
}

func TestStackOutputs(t *testing.T) {
	common := []string{"url", "vpcId", "publicSubnetIds", "privateSubnetIds", "isolatedSubnetIds", "dbEndpoint", "dbReaderEndpoint", "dbPort", "dbSecretArn"}
	for stackName, extra := range map[string][]string{
		"dev":     {"webInstanceId", "apiInstanceId"},
		"staging": {"webAclArn", "webAsgName", "apiAsgName"},
		"prod":    {"webAclArn", "webAsgName", "apiAsgName"},
	} {
		t.Run(stackName, func(t *testing.T) {
			g := planOf(t, stackName)
			for _, k := range append(common, extra...) {
				assert.NotEmpty(t, g.Outputs[k], "output %s", k)
			}
			assert.Contains(t, str(g.Outputs["dbSecretArn"]), ":secretsmanager:")
		})
	}
}

func TestInvalidConfigFailsBeforeAnyResource(t *testing.T) {
	tests := []struct {
		name string
		set  map[string]string
		want []string
	}{
		{"bad keys", map[string]string{"webstack:azCount": "1", "webstack:jwtSecret": testJWTSecret}, []string{"webstack:azCount", "webstack:certificateArn"}},
		{"no JWT secret", map[string]string{"webstack:certificateArn": testCert}, []string{"pulumi config set --secret jwtSecret"}},
		{"no build", map[string]string{"webstack:certificateArn": testCert, "webstack:jwtSecret": testJWTSecret, "webstack:artifactPath": "dist/missing"}, []string{"run `make build`"}},
	}
	for _, tt := range tests {
		cfg, err := plan.StackConfig(".", "prod")
		require.NoError(t, err)
		for k, v := range tt.set {
			cfg[k] = v
		}
		g, err := plan.Run("webstack", "prod", cfg, stack)
		require.Error(t, err, tt.name)
		for _, w := range tt.want {
			assert.Contains(t, err.Error(), w, tt.name)
		}
		assert.Empty(t, g.Resources, "%s: nothing is registered", tt.name)
	}
}

// userData decodes a launch template's or instance's base64 user data.
func userData(t *testing.T, r plan.Resource, key string) string {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(str(r.Inputs[key]))
	require.NoError(t, err, "%s %s is base64", r.Name, key)
	return string(raw)
}

func TestUserDataIsValidCloudConfigThatInstallsThisBuild(t *testing.T) {
	for _, s := range allStacks {
		t.Run(s, func(t *testing.T) {
			g := planOf(t, s)
			key := "conduit/" + testBuildSHA + "/conduit-linux-arm64"
			internal, _ := g.ByKey("aws:lb/loadBalancer:LoadBalancer::app-internal")
			upstream := "http://10.0.32.10:8081" // the dev api instance's private address
			if s != "dev" {
				upstream = fmt.Sprintf("http://internal-app-internal-%s.us-east-1.elb.amazonaws.com:8081", internal.ID[len(internal.ID)-6:])
			}
			for _, lt := range g.OfType("aws:ec2/launchTemplate:LaunchTemplate") {
				doc := userData(t, lt, "userData")
				require.True(t, strings.HasPrefix(doc, "#cloud-config\n"), lt.Name)
				lintUserData(t, doc)
				script, err := cloudinit.Script(doc)
				require.NoError(t, err)
				assert.Contains(t, script, "want='"+testBuildSHA+"'", "%s verifies this build", lt.Name)
				assert.Contains(t, script, "key='"+key+"'")
				env, err := cloudinit.File(doc, cloudinit.EnvFile)
				require.NoError(t, err)
				assert.NotContains(t, doc, testJWTSecret, "no secret value in user data")
				if lt.Name == "app-api" {
					assert.Contains(t, env, "CONDUIT_DB_HOST="+str(g.Outputs["dbEndpoint"])+"\n")
					assert.Contains(t, env, "CONDUIT_DB_SECRET_ARN="+str(g.Outputs["dbSecretArn"])+"\n")
					assert.Contains(t, env, "CONDUIT_JWT_SECRET_ARN="+str(g.Outputs["jwtSecretArn"])+"\n")
				} else {
					assert.Contains(t, env, "CONDUIT_UPSTREAM="+upstream+"\n")
				}
			}
			for _, inst := range g.OfType("aws:ec2/instance:Instance") {
				lt, _ := g.ByKey("aws:ec2/launchTemplate:LaunchTemplate::" + inst.Name)
				assert.Equal(t, lt.Inputs["userData"], inst.Inputs["userDataBase64"], "%s boots the same document", inst.Name)
			}
		})
	}
}

func lintUserData(t *testing.T, doc string) {
	t.Helper()
	err := cloudinit.Lint(doc)
	if errors.Is(err, cloudinit.ErrLinterMissing) {
		if os.Getenv("CI") != "" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	assert.NoError(t, err)
}

func TestANewBuildIsANewObjectAndANewLaunchTemplate(t *testing.T) {
	other := filepath.Join(t.TempDir(), "conduit-linux-arm64")
	require.NoError(t, os.WriteFile(other, []byte("another build"), 0o755))
	for _, s := range []string{"dev", "prod"} {
		a, b := planOf(t, s), planOf(t, s, "artifactPath="+other)
		objA, objB := a.OfType("aws:s3/bucketObjectv2:BucketObjectv2")[0], b.OfType("aws:s3/bucketObjectv2:BucketObjectv2")[0]
		assert.NotEqual(t, objA.Inputs["key"], objB.Inputs["key"], "%s: new key", s)
		for _, name := range []string{"app-web", "app-api"} {
			ltA, _ := a.ByKey("aws:ec2/launchTemplate:LaunchTemplate::" + name)
			ltB, _ := b.ByKey("aws:ec2/launchTemplate:LaunchTemplate::" + name)
			assert.NotEqual(t, ltA.Inputs["userData"], ltB.Inputs["userData"], "%s %s: new launch template version", s, name)
		}
	}
}

func TestArtefactBucketIsPrivateVersionedAndReadOnlyByTheTiers(t *testing.T) {
	g := planOf(t, "prod")
	obj := g.OfType("aws:s3/bucketObjectv2:BucketObjectv2")
	require.Len(t, obj, 1)
	key := "conduit/" + testBuildSHA + "/conduit-linux-arm64"
	assert.Equal(t, key, obj[0].Inputs["key"])
	assert.Equal(t, "AES256", obj[0].Inputs["serverSideEncryption"])
	assert.NotNil(t, plan.Get(obj[0].Inputs, "source", "asset", "path"), "the build is uploaded as a file asset")
	bucketID := str(obj[0].Inputs["bucket"])
	vers := g.OfType("aws:s3/bucketVersioningV2:BucketVersioningV2")
	require.NotEmpty(t, vers)
	assert.Equal(t, bucketID, vers[0].Inputs["bucket"])
	assert.Equal(t, "Enabled", plan.Get(vers[0].Inputs, "versioningConfiguration", "status"))
	for _, tier := range []string{"web", "api"} {
		role, _ := g.ByKey("aws:iam/role:Role::security-" + tier)
		grant, ok := g.ByKey("aws:iam/rolePolicy:RolePolicy::release-" + tier + "-read")
		require.True(t, ok, tier)
		assert.Equal(t, role.ID, grant.Inputs["role"])
		st := policyDoc(t, grant.Inputs["policy"])["Statement"].([]any)
		require.Len(t, st, 1)
		assert.Equal(t, []any{"s3:GetObject"}, plan.Get(st[0], "Action"))
		assert.Equal(t, []any{"arn:aws:s3:::" + bucketID + "/conduit/*"}, plan.Get(st[0], "Resource"), "%s reads the releases of this stack's bucket, nothing wider", tier)
	}
}

func TestOnlyTheAPIRoleReadsSecretsAndValuesStaySecret(t *testing.T) {
	for _, s := range allStacks {
		t.Run(s, func(t *testing.T) {
			g := planOf(t, s)
			raw, err := json.Marshal(g)
			require.NoError(t, err)
			assert.NotContains(t, string(raw), testJWTSecret, "the JWT secret never appears in the graph")
			ver := g.OfType("aws:secretsmanager/secretVersion:SecretVersion")
			require.Len(t, ver, 1)
			assert.Equal(t, "[secret]", ver[0].Inputs["secretString"])
			webRole, _ := g.ByKey("aws:iam/role:Role::security-web")
			apiRole, _ := g.ByKey("aws:iam/role:Role::security-api")
			var readers []string
			for _, p := range g.OfType("aws:iam/rolePolicy:RolePolicy") {
				if !strings.Contains(str(p.Inputs["policy"]), "secretsmanager:") {
					continue
				}
				readers = append(readers, str(p.Inputs["role"]))
				assert.NotEqual(t, webRole.ID, p.Inputs["role"], "web may not read secrets")
				st := policyDoc(t, p.Inputs["policy"])["Statement"].([]any)
				assert.ElementsMatch(t, []any{g.Outputs["jwtSecretArn"], g.Outputs["dbSecretArn"]}, plan.Get(st[0], "Resource"))
			}
			assert.Equal(t, []string{apiRole.ID}, readers)
		})
	}
}

func TestDiagramFollowsTheGraph(t *testing.T) {
	dev, err := architecture.From(planOf(t, "dev"))
	require.NoError(t, err)
	m := dev.Mermaid()
	assert.NotContains(t, m, "ALB", "dev has no load balancer")
	assert.Contains(t, m, "Coraza WAF", "dev's web instance carries its own WAF")
	assert.Contains(t, m, "Elastic IP")

	for azs, webNodes := range map[string]int{"2": 2, "3": 3} {
		d, err := architecture.From(planOf(t, "staging", "azCount="+azs))
		require.NoError(t, err)
		m := d.Mermaid()
		assert.Equal(t, webNodes, strings.Count(m, `["web ASG`), "azCount=%s: one web node per AZ", azs)
		assert.Contains(t, m, "VPC 10.0.0.0/16 · "+azs+" AZs")
		assert.Contains(t, m, "AWS WAF: 6 rules, count", "staging counts")
		assert.Contains(t, m, `alb -->|"SG web :8080"|`, "ports come from the security group rules")
		assert.Contains(t, m, "-.->|\"replication\"|", "replicas hang off the primary")
	}
	prod, err := architecture.From(planOf(t, "prod", "shieldAdvanced=true"))
	require.NoError(t, err)
	assert.Contains(t, prod.DOT(), "Shield Advanced")
}

func TestCheckedInArchitectureDocsAreCurrent(t *testing.T) {
	files, err := offline.Docs(".", []string{"artifactPath=" + testArtifact(t)}, stack)
	require.NoError(t, err)
	readme, err := os.ReadFile("README.md")
	require.NoError(t, err)
	current, err := offline.SpliceReadme(string(readme), files[offline.ReadmeSection])
	require.NoError(t, err)
	assert.Equal(t, current, string(readme), "README.md's architecture section is stale: run `make diagrams`")
	delete(files, offline.ReadmeSection)
	for name, want := range files {
		got, err := os.ReadFile(filepath.Join("docs", name))
		require.NoError(t, err, "docs/%s is missing: run `make diagrams`", name)
		assert.Equal(t, want, string(got), "docs/%s is stale: run `make diagrams`", name)
		if strings.HasSuffix(name, ".dot") {
			svg := filepath.Join("docs", strings.TrimSuffix(name, ".dot")+".svg")
			_, err := os.Stat(svg)
			assert.NoError(t, err, "%s is missing: run `make diagrams`", svg)
		}
	}
}

func TestDevIsCheapByDesign(t *testing.T) {
	g := planOf(t, "dev")
	assert.Empty(t, g.OfType("aws:lb/loadBalancer:LoadBalancer"))
	assert.Empty(t, g.OfType("aws:wafv2/webAcl:WebAcl"))
	assert.Equal(t, "Single", plan.Get(g.OfType("awsx:ec2:Vpc")[0].Inputs, "natGateways", "strategy"))
	r, err := cost.Estimate(g, cost.DefaultTable(), cost.DefaultAssumptions())
	require.NoError(t, err)
	assert.Empty(t, r.NotPriced, "every resource of dev is priced or free")
	assert.LessOrEqual(t, r.Total(), 130.0, "dev costs at most $130/month")
	for _, s := range []string{"staging", "prod"} {
		r, err := cost.Estimate(planOf(t, s), cost.DefaultTable(), cost.DefaultAssumptions())
		require.NoError(t, err)
		assert.Empty(t, r.NotPriced, "%s: every resource is priced or free", s)
	}
}

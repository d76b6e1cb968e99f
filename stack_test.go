package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"webstack/internal/cloudinit"
	"webstack/internal/cloudinit/cloudinittest"
	"webstack/internal/offline"
	"webstack/internal/offline/architecture"
	"webstack/internal/offline/cost"
	"webstack/internal/offline/plan"
	"webstack/internal/stack"
	"webstack/security"
)

const (
	testCert      = offline.ExampleCertificate
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
// testWebTLSSecret is the dev web instance's certificate secret in tests.
const testWebTLSSecret = offline.ExampleWebTLSSecret

func planOf(t *testing.T, stackName string, overrides ...string) *plan.Graph {
	t.Helper()
	cfg, err := plan.StackConfig(".", stackName)
	require.NoError(t, err)
	if !slices.ContainsFunc(overrides, func(s string) bool {
		return strings.HasPrefix(s, "certificateArn=") || strings.HasPrefix(s, "allowHttp=") || strings.HasPrefix(s, "webTlsSecretArn=")
	}) {
		if stackName == "dev" {
			overrides = append(overrides, "webTlsSecretArn="+testWebTLSSecret)
		} else {
			overrides = append(overrides, "certificateArn="+testCert)
		}
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
	g, err := plan.Run("webstack", stackName, cfg, stack.Compose)
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

// The chain itself is the security tier's rule (security/); what only the
// composed stack shows is that each stack's configuration (topology,
// certificate, allowHttp, httpIngressCidrs, ports) reaches it as asked.
func TestEachStackOpensTheChainItsConfigurationAsksFor(t *testing.T) {
	tests := []struct {
		stack string
		extra []string
		want  []string
	}{
		{"dev", nil, []string{"0.0.0.0/0 -> web:443", "0.0.0.0/0 -> web:80", "api -> db:27017", "web -> api:8081"}},
		{"dev", []string{"allowHttp=true", "httpIngressCidrs=[\"203.0.113.0/24\"]"}, []string{"203.0.113.0/24 -> web:80", "api -> db:27017", "web -> api:8081"}},
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

// The database tier uses the security tier's database group (which only
// the api may reach: security's tests) and the network's isolated subnets.
func TestDatabaseSitsBehindItsGroupInTheIsolatedSubnets(t *testing.T) {
	for _, s := range allStacks {
		t.Run(s, func(t *testing.T) {
			g := planOf(t, s)
			db, _ := g.ByKey("aws:ec2/securityGroup:SecurityGroup::security-db")
			cluster := g.OfType("aws:docdb/cluster:Cluster")[0]
			assert.Equal(t, []any{db.ID}, cluster.Inputs["vpcSecurityGroupIds"])
			subnets := g.OfType("aws:docdb/subnetGroup:SubnetGroup")[0]
			assert.Equal(t, g.Outputs["isolatedSubnetIds"], subnets.Inputs["subnetIds"], "DocumentDB sits in the isolated subnets")
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

func TestNoWildcardIAMAnywhere(t *testing.T) {
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

// What each stack file chooses for its edge, and that the composition
// hands it to the tiers: staging counts and is lenient on desync, prod
// blocks, is strict, keeps access logs and refuses deletion; the web ACL
// protects the public ALB.
func TestStackFilesChooseTheirEdge(t *testing.T) {
	for stackName, want := range map[string]struct {
		mode, waf string
		protect   bool
	}{"staging": {"defensive", "count", false}, "prod": {"strictest", "block", true}} {
		t.Run(stackName, func(t *testing.T) {
			g := planOf(t, stackName)
			for _, alb := range g.OfType("aws:lb/loadBalancer:LoadBalancer") {
				assert.Equal(t, want.mode, alb.Inputs["desyncMitigationMode"], alb.Name)
			}
			pub, _ := g.ByKey("aws:lb/loadBalancer:LoadBalancer::app-public")
			assert.Equal(t, want.protect, pub.Inputs["enableDeletionProtection"])
			assert.Equal(t, want.protect, plan.Get(pub.Inputs, "accessLogs", "enabled") == true, "access logs")
			acl := g.OfType("aws:wafv2/webAcl:WebAcl")[0]
			for _, r := range plan.List(acl.Inputs["rules"]) {
				switch {
				case plan.Get(r, "name") == security.SignInRuleName:
					assert.NotNil(t, plan.Get(r, "action", "block"), "sign-in attempts are limited in every stack")
				case plan.Get(r, "overrideAction") != nil:
					assert.NotNil(t, plan.Get(r, "overrideAction", map[string]string{"count": "count", "block": "none"}[want.waf]), "%v", plan.Get(r, "name"))
				default:
					assert.NotNil(t, plan.Get(r, "action", want.waf), "%v", plan.Get(r, "name"))
				}
			}
			assoc := g.OfType("aws:wafv2/webAclAssociation:WebAclAssociation")
			require.Len(t, assoc, 1)
			assert.Contains(t, str(assoc[0].Inputs["resourceArn"]), pub.ID, "web ACL protects the public ALB")
			assert.Contains(t, str(assoc[0].Inputs["webAclArn"]), acl.ID)
		})
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

// What each stack file chooses for its data: dev keeps nothing, staging
// and prod are protected, audited and keep backups.
func TestStackFilesChooseTheirDataRetention(t *testing.T) {
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
			c := planOf(t, tt.stack).OfType("aws:docdb/cluster:Cluster")[0]
			assert.Equal(t, tt.retention, c.Inputs["backupRetentionPeriod"])
			assert.Equal(t, tt.protected, c.Inputs["deletionProtection"])
			assert.Equal(t, !tt.protected, c.Inputs["skipFinalSnapshot"])
			assert.ElementsMatch(t, tt.logExports, c.Inputs["enabledCloudwatchLogsExports"])
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
		"aws:cloudwatch/dashboard:Dashboard":             true, "aws:cloudwatch/queryDefinition:QueryDefinition": true,
		"aws:sns/topicPolicy:TopicPolicy": true, "aws:sns/topicSubscription:TopicSubscription": true, "aws:backup/selection:Selection": true,
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
	common := []string{"url", "amiId", "vpcId", "publicSubnetIds", "privateSubnetIds", "isolatedSubnetIds", "dbEndpoint", "dbReaderEndpoint", "dbPort", "dbSecretArn"}
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

// The url output says the scheme the site is served with: a hostname with
// a certificate is https, one with allowHttp and no certificate is http
// (issue #31, hygiene).
func TestTheURLSaysTheSchemeTheSiteServes(t *testing.T) {
	for _, tt := range []struct {
		name      string
		overrides []string
		want      string
	}{
		{"certificate", []string{"hostname=conduit.example.com"}, "https://conduit.example.com"},
		{"allowHttp, no certificate", []string{"hostname=conduit.example.com", "allowHttp=true"}, "http://conduit.example.com"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			g := planOf(t, "staging", tt.overrides...)
			assert.Equal(t, tt.want, str(g.Outputs["url"]))
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
		{"certificate of another region", map[string]string{"webstack:certificateArn": "arn:aws:acm:eu-west-1:123456789012:certificate/x", "webstack:jwtSecret": testJWTSecret},
			[]string{"is in eu-west-1, and this stack is in us-east-1"}},
		{"certificate of another account", map[string]string{"webstack:certificateArn": "arn:aws:acm:us-east-1:999999999999:certificate/x", "webstack:jwtSecret": testJWTSecret},
			[]string{"names account 999999999999, and this stack deploys to account " + plan.Account}},
	}
	for _, tt := range tests {
		cfg, err := plan.StackConfig(".", "prod")
		require.NoError(t, err)
		for k, v := range tt.set {
			cfg[k] = v
		}
		g, err := plan.Run("webstack", "prod", cfg, stack.Compose)
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
			upstream := "" // dev: the api instance's private address, as EC2 gives it
			if api, ok := g.ByKey("aws:ec2/instance:Instance::app-api"); ok {
				upstream = fmt.Sprintf("http://%s:8081", api.Outputs["privateIp"])
			}
			if s != "dev" {
				upstream = fmt.Sprintf("http://internal-app-internal-%s.us-east-1.elb.amazonaws.com:8081", internal.ID[len(internal.ID)-6:])
			}
			for _, lt := range g.OfType("aws:ec2/launchTemplate:LaunchTemplate") {
				doc := userData(t, lt, "userData")
				require.True(t, strings.HasPrefix(doc, "#cloud-config\n"), lt.Name)
				cloudinittest.Check(t, doc)
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
				st := policyDoc(t, p.Inputs["policy"])["Statement"].([]any)
				if p.Inputs["role"] == webRole.ID {
					// dev's web serves HTTPS: its own certificate, nothing else.
					assert.Equal(t, []any{testWebTLSSecret}, plan.Get(st[0], "Resource"), "web reads its certificate only")
					continue
				}
				assert.ElementsMatch(t, []any{g.Outputs["jwtSecretArn"], g.Outputs["dbSecretArn"]}, plan.Get(st[0], "Resource"))
			}
			want := []string{apiRole.ID}
			if s == "dev" {
				want = append(want, webRole.ID)
			}
			assert.ElementsMatch(t, want, readers)
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
		assert.Contains(t, m, "AWS WAF: 7 rules, count", "staging counts")
		assert.Contains(t, m, `alb -->|"SG web :8080"|`, "ports come from the security group rules")
		assert.Contains(t, m, "-.->|\"replication\"|", "replicas hang off the primary")
	}
	prod, err := architecture.From(planOf(t, "prod", "shieldAdvanced=true"))
	require.NoError(t, err)
	assert.Contains(t, prod.DOT(), "Shield Advanced")
}

func TestCheckedInArchitectureDocsAreCurrent(t *testing.T) {
	files, err := offline.Docs(".", []string{"artifactPath=" + testArtifact(t)}, stack.Compose)
	require.NoError(t, err)
	readme, err := os.ReadFile("README.md")
	require.NoError(t, err)
	current, err := offline.SpliceReadme(string(readme), files[offline.ReadmeSection])
	require.NoError(t, err)
	assert.Equal(t, current, string(readme), "README.md's architecture section is stale: run `make diagrams`")
	delete(files, offline.ReadmeSection)
	project, err := os.ReadFile("Pulumi.yaml")
	require.NoError(t, err)
	assert.Equal(t, files[offline.ProjectFileName], string(project), "Pulumi.yaml's config block is stale (it is written from internal/config's key table): run `make diagrams`")
	delete(files, offline.ProjectFileName)
	for name, want := range files {
		path := filepath.Join("docs", name)
		if s, ok := strings.CutPrefix(name, offline.StackFilePrefix); ok {
			// The stack file carries the estimate its budget is a share of.
			path = "Pulumi." + s + ".yaml"
			got, err := os.ReadFile(path)
			require.NoError(t, err)
			assert.Equal(t, want, string(got), "%s's %s is stale: run `make diagrams`", path, offline.EstimateKey)
			continue
		}
		got, err := os.ReadFile(path)
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

package compute_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/iam"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"webstack/compute"
	"webstack/internal/artifact"
	"webstack/internal/config"
	"webstack/internal/offline/plan"
)

// appGraph builds a release and the compute tier with args, the required
// inputs filled in with stand-ins, and returns the graph.
func appGraph(t *testing.T, args compute.AppArgs, build ...string) *plan.Graph {
	t.Helper()
	content := "a build"
	if len(build) > 0 {
		content = build[0]
	}
	path := filepath.Join(t.TempDir(), "conduit-linux-arm64")
	require.NoError(t, os.WriteFile(path, []byte(content), 0o755))
	a, err := artifact.Open(path)
	require.NoError(t, err)
	g, err := plan.Components("us-east-1", func(ctx *pulumi.Context) error {
		var readers []compute.Reader
		for _, tier := range []string{"web", "api"} {
			role, err := iam.NewRole(ctx, "role-"+tier, &iam.RoleArgs{AssumeRolePolicy: pulumi.String("{}")})
			if err != nil {
				return err
			}
			readers = append(readers, compute.Reader{Tier: tier, Role: role})
		}
		rel, err := compute.NewRelease(ctx, "release", &compute.ReleaseArgs{ArtifactPath: a.Path, SHA256: a.SHA256, Key: a.Key(), Readers: readers})
		if err != nil {
			return err
		}
		args.Release, args.Region = rel, "us-east-1"
		args.PublicSubnetIDs = pulumi.ToStringArray([]string{"subnet-public-1", "subnet-public-2"})
		args.PrivateSubnetIDs = pulumi.ToStringArray([]string{"subnet-private-1", "subnet-private-2"})
		args.VpcCIDR = "10.0.0.0/16"
		args.DBHost, args.DBPort = pulumi.String("db.cluster-x.us-east-1.docdb.amazonaws.com"), pulumi.Int(27017)
		args.DBSecretArn = pulumi.String("arn:aws:secretsmanager:us-east-1:123456789012:secret:rds!cluster-x-AbCdEf")
		args.JWTSecretArn = pulumi.String("arn:aws:secretsmanager:us-east-1:123456789012:secret:jwt-AbCdEf")
		args.DBMaxPool = 17
		for tier, ta := range map[string]*compute.TierArgs{"web": &args.Web, "api": &args.API} {
			if ta.Port == 0 {
				ta.Port = map[string]int{"web": 8080, "api": 8081}[tier]
			}
			ta.SecurityGroupID = pulumi.String("sg-" + tier)
			ta.InstanceProfileName = pulumi.String("profile-" + tier)
		}
		if lb := args.LoadBalancer; lb != nil {
			lb.VpcID = pulumi.String("vpc-1")
			lb.PublicSecurityGroupID, lb.InternalSecurityGroupID = pulumi.String("sg-public-alb"), pulumi.String("sg-internal-alb")
		}
		_, err = compute.NewApp(ctx, "app", &args)
		return err
	})
	require.NoError(t, err)
	return g
}

func https() *compute.LoadBalancerArgs {
	return &compute.LoadBalancerArgs{CertificateArn: "arn:aws:acm:us-east-1:123456789012:certificate/example"}
}

func TestZeroArgsTakeTheConfigDefaults(t *testing.T) {
	g := appGraph(t, compute.AppArgs{LoadBalancer: https()})
	for _, lt := range g.OfType("aws:ec2/launchTemplate:LaunchTemplate") {
		tier := strings.TrimPrefix(lt.Name, "app-")
		assert.Equal(t, config.Default[string](tier+"InstanceType"), lt.Inputs["instanceType"])
		assert.EqualValues(t, config.Default[int]("rootVolumeGiB"), plan.Get(lt.Inputs, "blockDeviceMappings", 0, "ebs", "volumeSize"))
	}
	for _, asg := range g.OfType("aws:autoscaling/group:Group") {
		tier := strings.TrimPrefix(asg.Name, "app-")
		assert.EqualValues(t, config.Default[int](tier+"MinSize"), asg.Inputs["minSize"])
		assert.EqualValues(t, config.Default[int](tier+"MaxSize"), asg.Inputs["maxSize"])
		prefs := plan.Get(asg.Inputs, "instanceRefresh", "preferences")
		assert.EqualValues(t, config.Default[int]("minHealthyPercentage"), plan.Get(prefs, "minHealthyPercentage"))
		assert.EqualValues(t, config.Default[int]("maxHealthyPercentage"), plan.Get(prefs, "maxHealthyPercentage"))
	}
	for _, alb := range g.OfType("aws:lb/loadBalancer:LoadBalancer") {
		assert.Equal(t, config.Default[string]("desyncMitigationMode"), alb.Inputs["desyncMitigationMode"])
	}
	for _, p := range g.OfType("aws:autoscaling/policy:Policy") {
		assert.EqualValues(t, config.Default[int]("cpuTargetPercent"), plan.Get(p.Inputs, "targetTrackingConfiguration", "targetValue"))
	}
}

func TestLaunchTemplatesRequireIMDSv2AndEncryptRootVolumes(t *testing.T) {
	for _, lb := range []*compute.LoadBalancerArgs{nil, https()} {
		lts := appGraph(t, compute.AppArgs{LoadBalancer: lb}).OfType("aws:ec2/launchTemplate:LaunchTemplate")
		require.Len(t, lts, 2)
		for _, lt := range lts {
			assert.Equal(t, "required", plan.Get(lt.Inputs, "metadataOptions", "httpTokens"), "%s IMDSv2", lt.Name)
			assert.EqualValues(t, 1, plan.Get(lt.Inputs, "metadataOptions", "httpPutResponseHopLimit"), "%s hop limit", lt.Name)
			assert.Equal(t, "true", plan.Get(lt.Inputs, "blockDeviceMappings", 0, "ebs", "encrypted"), "%s root volume encrypted", lt.Name)
			assert.Equal(t, "gp3", plan.Get(lt.Inputs, "blockDeviceMappings", 0, "ebs", "volumeType"))
			assert.NotContains(t, lt.Inputs, "keyName", "%s has a key pair", lt.Name)
			if ni := plan.Get(lt.Inputs, "networkInterfaces", 0); ni != nil {
				assert.Equal(t, "false", plan.Get(ni, "associatePublicIpAddress"), "%s private tiers get no public IP", lt.Name)
			}
		}
	}
}

// The provider (terraform-provider-aws internal/service/ec2
// ec2_instance.go, buildInstanceOpts) builds a network interface for
// RunInstances whenever subnet_id is set; EC2 then refuses security groups
// in the launch template ("Network interfaces and an instance-level
// security groups may not be specified on the same request").
// associate_public_ip_address is ForceNew+Computed: set to false on an
// instance that then gets an Elastic IP, it reads back true and replaces
// the instance on every run.
func TestStandaloneInstancesHaveAShapeEC2AcceptsAndThatIsStable(t *testing.T) {
	g := appGraph(t, compute.AppArgs{Web: compute.TierArgs{Port: 80}})
	insts := g.OfType("aws:ec2/instance:Instance")
	require.Len(t, insts, 2)
	for _, inst := range insts {
		tier := strings.TrimPrefix(inst.Name, "app-")
		lt, ok := g.ByKey("aws:ec2/launchTemplate:LaunchTemplate::" + inst.Name)
		require.True(t, ok)
		assert.Empty(t, lt.Inputs["vpcSecurityGroupIds"], "%s: a template used with a subnet carries no security groups", lt.Name)
		assert.Empty(t, lt.Inputs["securityGroupNames"], lt.Name)
		assert.Empty(t, lt.Inputs["networkInterfaces"], "%s: the instance's subnet makes the interface", lt.Name)
		assert.NotContains(t, inst.Inputs, "associatePublicIpAddress", "%s: ForceNew and drifts with the Elastic IP", inst.Name)
		assert.Equal(t, []any{"sg-" + tier}, inst.Inputs["vpcSecurityGroupIds"], "%s carries its tier's group", inst.Name)
		assert.Equal(t, true, inst.Inputs["userDataReplaceOnChange"], "%s is replaced when its user data changes", inst.Name)
		assert.Equal(t, lt.Inputs["userData"], inst.Inputs["userDataBase64"], "%s boots the template's document", inst.Name)
	}
	web, _ := g.ByKey("aws:ec2/instance:Instance::app-web")
	api, _ := g.ByKey("aws:ec2/instance:Instance::app-api")
	assert.Equal(t, "subnet-public-1", web.Inputs["subnetId"])
	assert.Equal(t, "subnet-private-1", api.Inputs["subnetId"])
	eips := g.OfType("aws:ec2/eip:Eip")
	require.Len(t, eips, 1)
	assert.Equal(t, web.ID, eips[0].Inputs["instance"], "the Elastic IP is on the web instance")
}

func TestHTTPSListenerUsesTLS13PolicyAndHTTPRedirects(t *testing.T) {
	g := appGraph(t, compute.AppArgs{LoadBalancer: https()})
	l, ok := g.ByKey("aws:lb/listener:Listener::app-https")
	require.True(t, ok)
	assert.Equal(t, "HTTPS", l.Inputs["protocol"])
	assert.Equal(t, compute.TLSPolicy, l.Inputs["sslPolicy"])
	assert.Equal(t, "ELBSecurityPolicy-TLS13-1-2-2021-06", compute.TLSPolicy)
	http, _ := g.ByKey("aws:lb/listener:Listener::app-http")
	assert.Equal(t, "redirect", plan.Get(http.Inputs, "defaultActions", 0, "type"))
	assert.Equal(t, "HTTPS", plan.Get(http.Inputs, "defaultActions", 0, "redirect", "protocol"))

	// Plain HTTP only as an explicit opt-out, and never by accident.
	g = appGraph(t, compute.AppArgs{LoadBalancer: &compute.LoadBalancerArgs{AllowHTTP: true}})
	_, ok = g.ByKey("aws:lb/listener:Listener::app-https")
	assert.False(t, ok)
	http, _ = g.ByKey("aws:lb/listener:Listener::app-http")
	assert.Equal(t, "forward", plan.Get(http.Inputs, "defaultActions", 0, "type"))
	_, err := plan.Components("us-east-1", func(ctx *pulumi.Context) error {
		_, err := compute.NewApp(ctx, "app", &compute.AppArgs{LoadBalancer: &compute.LoadBalancerArgs{}})
		return err
	})
	require.Error(t, err)
}

func TestLoadBalancersDropInvalidHeadersMitigateDesyncAndCheckHealth(t *testing.T) {
	g := appGraph(t, compute.AppArgs{LoadBalancer: &compute.LoadBalancerArgs{CertificateArn: "arn:aws:acm:us-east-1:123456789012:certificate/x", DesyncMitigationMode: "strictest", DeletionProtection: true, AccessLogs: true}})
	albs := g.OfType("aws:lb/loadBalancer:LoadBalancer")
	require.Len(t, albs, 2)
	for _, alb := range albs {
		assert.Equal(t, true, alb.Inputs["dropInvalidHeaderFields"], alb.Name)
		assert.Equal(t, "strictest", alb.Inputs["desyncMitigationMode"], alb.Name)
		want := []any{"subnet-public-1", "subnet-public-2"}
		if alb.Inputs["internal"] == true {
			want = []any{"subnet-private-1", "subnet-private-2"}
		}
		assert.Equal(t, want, alb.Inputs["subnets"], "%s spans every AZ", alb.Name)
	}
	for _, tg := range g.OfType("aws:lb/targetGroup:TargetGroup") {
		assert.Equal(t, compute.HealthCheckPath, plan.Get(tg.Inputs, "healthCheck", "path"), tg.Name)
	}
	pub, _ := g.ByKey("aws:lb/loadBalancer:LoadBalancer::app-public")
	assert.Equal(t, true, pub.Inputs["enableDeletionProtection"])
	assert.Equal(t, true, plan.Get(pub.Inputs, "accessLogs", "enabled"))
	pol, ok := g.ByKey("aws:s3/bucketPolicy:BucketPolicy::app-public-logs")
	require.True(t, ok)
	assert.Contains(t, fmt.Sprint(pol.Inputs["policy"]), "arn:aws:iam::127311923021:root", "ELB log delivery may write")
	// ELB checks that it may write to the bucket when logging is turned
	// on, so the bucket policy must exist first.
	assert.True(t, g.Waits(pub.Key(), pol.Key()), "the ALB waits for its access log bucket's policy")
}

func TestAutoScalingGroupsUseELBHealthRefreshThatLaunchesFirstAndCPUTracking(t *testing.T) {
	g := appGraph(t, compute.AppArgs{LoadBalancer: https(), Web: compute.TierArgs{MinSize: 2, MaxSize: 3}, API: compute.TierArgs{MinSize: 2, MaxSize: 3}})
	asgs := g.OfType("aws:autoscaling/group:Group")
	require.Len(t, asgs, 2)
	for _, asg := range asgs {
		assert.Equal(t, "ELB", asg.Inputs["healthCheckType"])
		assert.Equal(t, []any{"subnet-private-1", "subnet-private-2"}, asg.Inputs["vpcZoneIdentifiers"])
		assert.NotEmpty(t, asg.Inputs["targetGroupArns"])
		assert.Equal(t, "Rolling", plan.Get(asg.Inputs, "instanceRefresh", "strategy"))
		prefs := plan.Get(asg.Inputs, "instanceRefresh", "preferences")
		assert.Equal(t, true, plan.Get(prefs, "skipMatching"))
		assert.Equal(t, true, plan.Get(prefs, "autoRollback"))
		// With MaxHealthyPercentage 100 a refresh terminates before it
		// launches: a group of two runs on one instance during a rollout.
		minH, maxH := plan.Number(plan.Get(prefs, "minHealthyPercentage")), plan.Number(plan.Get(prefs, "maxHealthyPercentage"))
		assert.Greater(t, maxH, 100.0, "%s launches replacements first", asg.Name)
		assert.LessOrEqual(t, maxH-minH, 100.0, "Auto Scaling refuses a wider band")
	}
	for _, p := range g.OfType("aws:autoscaling/policy:Policy") {
		assert.Equal(t, "TargetTrackingScaling", p.Inputs["policyType"])
		assert.Equal(t, "ASGAverageCPUUtilization", plan.Get(p.Inputs, "targetTrackingConfiguration", "predefinedMetricSpecification", "predefinedMetricType"))
	}
}

// Instances and groups wait for their release grant and what their tier
// names in BootDependsOn.
func TestInstancesBootAfterWhatTheyNeed(t *testing.T) {
	for _, lb := range []*compute.LoadBalancerArgs{nil, https()} {
		g := appGraph(t, compute.AppArgs{LoadBalancer: lb})
		booters := append(g.OfType("aws:ec2/instance:Instance"), g.OfType("aws:autoscaling/group:Group")...)
		require.Len(t, booters, 2)
		for _, b := range booters {
			tier := strings.TrimPrefix(b.Name, "app-")
			assert.True(t, g.Waits(b.Key(), "aws:iam/rolePolicy:RolePolicy::release-"+tier+"-read"), "%s waits for its release grant", b.Key())
		}
	}
}

// The AMI is an explicit choice: pinned, or the latest read at deploy
// time (an output, so that preview shows a new one).
func TestAMIIsPinnedOrResolvedFromSSM(t *testing.T) {
	g := appGraph(t, compute.AppArgs{AMIID: "ami-0abcdef1234567890"})
	for _, lt := range g.OfType("aws:ec2/launchTemplate:LaunchTemplate") {
		assert.Equal(t, "ami-0abcdef1234567890", lt.Inputs["imageId"])
	}
	g = appGraph(t, compute.AppArgs{})
	for _, lt := range g.OfType("aws:ec2/launchTemplate:LaunchTemplate") {
		assert.Equal(t, "ami-0123456789abcdef0", lt.Inputs["imageId"], "the mock's answer for "+compute.AMIParameter)
	}
}

// An instance refresh that rolls back launches the previous template
// version, whose user data fetches the previous build: builds stay in the
// bucket, and the grant covers the release prefix of this bucket only.
func TestOlderReleasesStayFetchable(t *testing.T) {
	g := appGraph(t, compute.AppArgs{})
	obj := g.OfType("aws:s3/bucketObjectv2:BucketObjectv2")[0]
	assert.Equal(t, true, obj.Options["retainOnDelete"], "a replaced build is kept")
	assert.True(t, strings.HasPrefix(fmt.Sprint(obj.Inputs["key"]), compute.ReleasePrefix), "the build lies under the granted prefix")
	bucket := fmt.Sprint(obj.Inputs["bucket"])
	for _, tier := range []string{"web", "api"} {
		grant, _ := g.ByKey("aws:iam/rolePolicy:RolePolicy::release-" + tier + "-read")
		var doc struct {
			Statement []struct{ Action, Resource []string }
		}
		require.NoError(t, json.Unmarshal([]byte(fmt.Sprint(grant.Inputs["policy"])), &doc))
		require.Len(t, doc.Statement, 1)
		assert.Equal(t, []string{"s3:GetObject"}, doc.Statement[0].Action)
		assert.Equal(t, []string{"arn:aws:s3:::" + bucket + "/" + compute.ReleasePrefix + "*"}, doc.Statement[0].Resource, "%s: this bucket's releases, nothing wider", tier)
	}
	b, _ := g.ByKey("aws:s3/bucketV2:BucketV2::release-artifacts")
	assert.Equal(t, true, b.Inputs["forceDestroy"], "retained builds do not block deleting the stack")
	vers := g.OfType("aws:s3/bucketVersioningV2:BucketVersioningV2")
	require.Len(t, vers, 1)
	assert.Equal(t, "Enabled", plan.Get(vers[0].Inputs, "versioningConfiguration", "status"))
}

func TestANewBuildIsANewObjectAndANewLaunchTemplateVersion(t *testing.T) {
	for _, lb := range []*compute.LoadBalancerArgs{nil, https()} {
		a, b := appGraph(t, compute.AppArgs{LoadBalancer: lb}), appGraph(t, compute.AppArgs{LoadBalancer: lb}, "another build")
		objA, objB := a.OfType("aws:s3/bucketObjectv2:BucketObjectv2")[0], b.OfType("aws:s3/bucketObjectv2:BucketObjectv2")[0]
		assert.NotEqual(t, objA.Inputs["key"], objB.Inputs["key"], "new key")
		for _, name := range []string{"app-web", "app-api"} {
			ltA, _ := a.ByKey("aws:ec2/launchTemplate:LaunchTemplate::" + name)
			ltB, _ := b.ByKey("aws:ec2/launchTemplate:LaunchTemplate::" + name)
			assert.NotEqual(t, ltA.Inputs["userData"], ltB.Inputs["userData"], "%s: new launch template version", name)
		}
	}
}

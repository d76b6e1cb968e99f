// Package compute provides the webstack compute tier: one hardened launch
// template per tier (web, api) and, by topology, either two instances with an
// Elastic IP on web (no load balancer: dev) or a public ALB → web Auto
// Scaling group → internal ALB → api Auto Scaling group (staging, prod).
package compute

import (
	"encoding/base64"
	"fmt"
	"strconv"

	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/ec2"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/ssm"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"webstack/internal/cloudinit"
	"webstack/internal/config"
)

// AMIParameter is AWS's public SSM parameter naming the latest Amazon Linux
// 2023 arm64 AMI, read at each deployment unless AppArgs.AMIID pins one.
const AMIParameter = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-arm64"

// HealthCheckPath is the path load balancers probe; the app answers it
// without touching the database.
const HealthCheckPath = "/healthz"

// AdminAddr is where every instance's conduit serves /metrics: loopback only.
const AdminAddr = "127.0.0.1:9090"

// TierArgs configures one tier.
type TierArgs struct {
	// InstanceType is a Graviton type. Defaults to t4g.small (the config
	// table's webInstanceType and apiInstanceType).
	InstanceType string
	// Port the tier listens on. Required.
	Port int
	// MinSize and MaxSize bound the tier's Auto Scaling group (with a
	// LoadBalancer only). Default to 2 and 4 (the config table's
	// webMinSize/webMaxSize and apiMinSize/apiMaxSize).
	MinSize, MaxSize int
	// SecurityGroupID is the tier's security group. Required.
	SecurityGroupID pulumi.StringInput
	// InstanceProfileName is the tier's instance profile. Required.
	InstanceProfileName pulumi.StringInput
	// BootDependsOn are what an instance of the tier needs when it boots,
	// beyond its release grant (which comes with Release): the api's
	// secret grant and the database instances. Instances and groups wait
	// for them. Defaults to none.
	BootDependsOn []pulumi.Resource
}

// Telemetry is where each tier's instances send their logs and metrics.
type Telemetry struct {
	// WebLogGroup and APILogGroup receive each tier's log file and its
	// metrics (embedded-metric-format records).
	WebLogGroup, APILogGroup string
	// Namespace is the metrics' CloudWatch namespace.
	Namespace string
}

// boot completes b with the tier's telemetry.
func (t *Telemetry) boot(b cloudinit.Boot) cloudinit.Boot {
	if t == nil {
		return b
	}
	group := t.APILogGroup
	if b.Role == "web" {
		group = t.WebLogGroup
	}
	b.Telemetry = &cloudinit.Telemetry{LogGroup: group, Namespace: t.Namespace, MetricsAddr: AdminAddr}
	return b
}

// AppArgs configures NewApp.
type AppArgs struct {
	// PublicSubnetIDs host the public ALB, or the web instance when there is
	// no LoadBalancer. Required.
	PublicSubnetIDs pulumi.StringArrayInput
	// PrivateSubnetIDs host the api instance, the Auto Scaling groups and the internal ALB. Required.
	PrivateSubnetIDs pulumi.StringArrayInput
	// VpcCIDR is the VPC's range. The api believes X-Forwarded-For (the
	// client's address) from peers in it — only the web tier or the
	// internal ALB reach it — and behind a public ALB so does the web tier
	// (X-Forwarded-Proto too). Required.
	VpcCIDR string
	// Web and API configure the tiers (see TierArgs for their defaults).
	Web, API TierArgs
	// Release is the build every instance installs at boot. Required.
	Release *Release
	// Region of the stack (the release bucket's). Required.
	Region string
	// DBHost, DBPort and DBSecretArn tell the api where DocumentDB is and
	// which managed secret holds its credentials. Required.
	DBHost      pulumi.StringInput
	DBPort      pulumi.IntInput
	DBSecretArn pulumi.StringInput
	// DBMaxPool is the api's connection pool per DocumentDB instance
	// (CONDUIT_DB_MAX_POOL): internal/stack's connection budget. Required.
	DBMaxPool int
	// JWTSecretArn is the Secrets Manager secret the api signs tokens with. Required.
	JWTSecretArn pulumi.StringInput
	// RootVolumeGiB is every instance's encrypted gp3 root volume. Defaults
	// to 16 (the config table's rootVolumeGiB).
	RootVolumeGiB int
	// Telemetry names where the instances ship their logs and metrics
	// (the CloudWatch agent). Defaults to nil: they stay on the instances.
	Telemetry *Telemetry
	// CostTags are the tags the stack's costs are allocated by (Project,
	// Stack, Owner): the provider's default tags do not reach the instances
	// and volumes an Auto Scaling group launches, so the launch templates
	// carry them, and the budget's Stack filter sees EC2's spend. Defaults
	// to none.
	CostTags map[string]string
	// AMIID pins the AMI. Defaults to "": the latest Amazon Linux 2023 arm64
	// AMI, read from AMIParameter at each deployment (a newer one is a new
	// launch template version, rolled out like a new build).
	AMIID string
	// WebTLSSecretArn (single topology only) is the secret the web instance
	// reads its certificate and key from: it serves HTTPS on 443 and
	// redirects on Web.Port. Defaults to "": plain HTTP on Web.Port.
	WebTLSSecretArn string
	// LoadBalancer selects the ha topology (public ALB → web group →
	// internal ALB → api group). Defaults to nil: one web instance with an
	// Elastic IP and one api instance.
	LoadBalancer *LoadBalancerArgs
}

// App is the compute tier.
type App struct {
	pulumi.ResourceState

	// URL is where users reach the app (by its address: the Elastic IP or
	// the public ALB's DNS name).
	URL pulumi.StringOutput
	// EntryAddress is that address alone: what the site's hostname
	// resolves to.
	EntryAddress pulumi.StringOutput
	// EntryPointArn is what faces the internet: the public ALB, or the web
	// Elastic IP allocation. Edge protection attaches to it.
	EntryPointArn pulumi.StringOutput
	// AMIID is the AMI the launch templates boot.
	AMIID pulumi.StringOutput
	// Instances is set without a LoadBalancer.
	Instances *Instances
	// Groups is set with a LoadBalancer.
	Groups *Groups
}

// Instances are the single topology's two instances.
type Instances struct {
	WebID, APIID pulumi.StringOutput
}

// Groups are the ha topology's Auto Scaling groups, the internal
// ALB's URL (the web tier's upstream), and the ARN suffixes CloudWatch
// names the load balancers and target groups by.
type Groups struct {
	WebName, APIName, InternalURL pulumi.StringOutput
	// PublicALB and InternalALB are the load balancers' ARN suffixes
	// (app/<name>/<id>); WebTargetGroup and APITargetGroup the target
	// groups' (targetgroup/<name>/<id>).
	PublicALB, InternalALB, WebTargetGroup, APITargetGroup pulumi.StringOutput
}

// NewApp creates the compute tier.
func NewApp(ctx *pulumi.Context, name string, args *AppArgs, opts ...pulumi.ResourceOption) (*App, error) {
	c := &App{}
	if err := ctx.RegisterComponentResource("webstack:compute:App", name, c, opts...); err != nil {
		return nil, err
	}
	a := *args
	for tier, t := range map[string]*TierArgs{"web": &a.Web, "api": &a.API} {
		if t.InstanceType == "" {
			t.InstanceType = config.Default[string](tier + "InstanceType")
		}
		if t.MinSize == 0 {
			t.MinSize = config.Default[int](tier + "MinSize")
		}
		if t.MaxSize == 0 {
			t.MaxSize = config.Default[int](tier + "MaxSize")
		}
		if t.Port == 0 || t.SecurityGroupID == nil || t.InstanceProfileName == nil {
			return nil, fmt.Errorf("compute: %s tier needs Port, SecurityGroupID and InstanceProfileName", tier)
		}
	}
	if a.RootVolumeGiB == 0 {
		a.RootVolumeGiB = config.Default[int]("rootVolumeGiB")
	}
	if a.DBMaxPool <= 0 {
		return nil, fmt.Errorf("compute: DBMaxPool is required (internal/stack's connection budget)")
	}
	if a.Release == nil || a.Region == "" || a.DBHost == nil || a.DBPort == nil || a.DBSecretArn == nil || a.JWTSecretArn == nil ||
		a.PublicSubnetIDs == nil || a.PrivateSubnetIDs == nil || a.VpcCIDR == "" {
		return nil, fmt.Errorf("compute: PublicSubnetIDs, PrivateSubnetIDs, VpcCIDR, Release, Region, DBHost, DBPort, DBSecretArn and JWTSecretArn are required")
	}

	ami := a.AMIID
	if ami == "" {
		p, err := ssm.LookupParameter(ctx, &ssm.LookupParameterArgs{Name: AMIParameter}, pulumi.Parent(c))
		if err != nil {
			return nil, fmt.Errorf("compute: resolve AMI from %s: %w", AMIParameter, err)
		}
		ami = p.Value
	}
	c.AMIID = pulumi.String(ami).ToStringOutput()

	var err error
	if a.LoadBalancer != nil {
		err = c.cluster(ctx, name, &a, ami)
	} else {
		err = c.single(ctx, name, &a, ami)
	}
	if err != nil {
		return nil, err
	}

	outs := pulumi.Map{"url": c.URL, "entryAddress": c.EntryAddress, "entryPointArn": c.EntryPointArn, "amiId": c.AMIID}
	if c.Instances != nil {
		outs["webInstanceId"], outs["apiInstanceId"] = c.Instances.WebID, c.Instances.APIID
	}
	if c.Groups != nil {
		outs["webGroupName"], outs["apiGroupName"] = c.Groups.WebName, c.Groups.APIName
	}
	if err := ctx.RegisterResourceOutputs(c, outs); err != nil {
		return nil, err
	}
	return c, nil
}

// launchTemplate is the hardened template of one tier: IMDSv2 only with a
// hop limit of 1 (containers cannot reach the instance's credentials), an
// encrypted gp3 root volume, no key pair, no public address, the tier's
// instance profile. With a load balancer it pins the network interface
// (security group, no public IP); a standalone instance carries those itself.
func (c *App) launchTemplate(ctx *pulumi.Context, name, ami string, a *AppArgs, t *TierArgs, userData pulumi.StringInput) (*ec2.LaunchTemplate, error) {
	args := &ec2.LaunchTemplateArgs{
		Description:  pulumi.String("webstack " + name),
		ImageId:      pulumi.String(ami),
		InstanceType: pulumi.String(t.InstanceType),
		IamInstanceProfile: &ec2.LaunchTemplateIamInstanceProfileArgs{
			Name: t.InstanceProfileName,
		},
		MetadataOptions: &ec2.LaunchTemplateMetadataOptionsArgs{
			HttpEndpoint:            pulumi.String("enabled"),
			HttpTokens:              pulumi.String("required"),
			HttpPutResponseHopLimit: pulumi.Int(1),
			InstanceMetadataTags:    pulumi.String("disabled"),
		},
		BlockDeviceMappings: ec2.LaunchTemplateBlockDeviceMappingArray{
			ec2.LaunchTemplateBlockDeviceMappingArgs{
				DeviceName: pulumi.String("/dev/xvda"),
				Ebs: &ec2.LaunchTemplateBlockDeviceMappingEbsArgs{
					VolumeSize:          pulumi.Int(a.RootVolumeGiB),
					VolumeType:          pulumi.String("gp3"),
					Encrypted:           pulumi.String("true"),
					DeleteOnTermination: pulumi.String("true"),
				},
			},
		},
		Monitoring:           &ec2.LaunchTemplateMonitoringArgs{Enabled: pulumi.Bool(true)},
		UpdateDefaultVersion: pulumi.Bool(true),
		UserData:             userData,
		TagSpecifications: ec2.LaunchTemplateTagSpecificationArray{
			ec2.LaunchTemplateTagSpecificationArgs{ResourceType: pulumi.String("instance"), Tags: launchTags(name, a.CostTags)},
			ec2.LaunchTemplateTagSpecificationArgs{ResourceType: pulumi.String("volume"), Tags: launchTags(name, a.CostTags)},
			ec2.LaunchTemplateTagSpecificationArgs{ResourceType: pulumi.String("network-interface"), Tags: launchTags(name, a.CostTags)},
		},
		Tags: pulumi.StringMap{"Name": pulumi.String(name)},
	}
	if a.LoadBalancer != nil {
		// Auto Scaling fills in the subnet; the interface pins "no public IP".
		args.NetworkInterfaces = ec2.LaunchTemplateNetworkInterfaceArray{
			ec2.LaunchTemplateNetworkInterfaceArgs{
				DeviceIndex:              pulumi.Int(0),
				AssociatePublicIpAddress: pulumi.String("false"),
				SecurityGroups:           pulumi.StringArray{t.SecurityGroupID},
				DeleteOnTermination:      pulumi.String("true"),
			},
		}
	}
	// Without a load balancer no security group goes here: given a subnet,
	// the provider always builds a network interface for RunInstances, and
	// EC2 refuses one beside template-level security groups ("Network
	// interfaces and an instance-level security groups may not be
	// specified on the same request"). The instance names its group.
	lt, err := ec2.NewLaunchTemplate(ctx, name, args, pulumi.Parent(c))
	if err != nil {
		return nil, fmt.Errorf("compute: launch template %s: %w", name, err)
	}
	return lt, nil
}

// launchTags are what a launched instance, volume or interface is tagged
// with: its Name and the cost allocation tags.
func launchTags(name string, cost map[string]string) pulumi.StringMap {
	tags := pulumi.StringMap{"Name": pulumi.String(name)}
	for k, v := range cost {
		tags[k] = pulumi.String(v)
	}
	return tags
}

// bootDependsOn is what an instance of tier must wait for: its release
// grant and the tier's own BootDependsOn. An instance that boots earlier
// fails its first download or secret read (it retries, but a group's
// health check grace period may run out first).
func (c *App) bootDependsOn(a *AppArgs, tier string, t *TierArgs) pulumi.ResourceOption {
	deps := append([]pulumi.Resource{a.Release.Grant(tier)}, t.BootDependsOn...)
	return pulumi.DependsOn(deps)
}

// apiUserData boots the api tier: settings and secret ARNs, never values.
func (c *App) apiUserData(a *AppArgs) pulumi.StringOutput {
	return pulumi.All(a.Release.Bucket, a.DBHost, a.DBPort, a.DBSecretArn, a.JWTSecretArn).ApplyT(func(v []any) (string, error) {
		return render(a, cloudinit.Boot{
			Role: "api", Port: a.API.Port, DocumentDBCA: true,
			Env: map[string]string{
				"CONDUIT_API_ADDR":        fmt.Sprintf("0.0.0.0:%d", a.API.Port),
				"CONDUIT_ADMIN_ADDR":      AdminAddr,
				"CONDUIT_DB_HOST":         v[1].(string),
				"CONDUIT_DB_PORT":         strconv.Itoa(v[2].(int)),
				"CONDUIT_DB_CA_FILE":      cloudinit.CABundle,
				"CONDUIT_DB_SECRET_ARN":   v[3].(string),
				"CONDUIT_JWT_SECRET_ARN":  v[4].(string),
				"CONDUIT_TRUSTED_PROXIES": a.VpcCIDR,
				"CONDUIT_DB_MAX_POOL":     strconv.Itoa(a.DBMaxPool),
			},
		}, v[0].(string))
	}).(pulumi.StringOutput)
}

// webUserData boots the web tier in front of upstream (the api's base URL).
func (c *App) webUserData(a *AppArgs, upstream pulumi.StringOutput) pulumi.StringOutput {
	return pulumi.All(a.Release.Bucket, upstream).ApplyT(func(v []any) (string, error) {
		env := map[string]string{
			"CONDUIT_WEB_ADDR":   fmt.Sprintf("0.0.0.0:%d", a.Web.Port),
			"CONDUIT_ADMIN_ADDR": AdminAddr,
			"CONDUIT_UPSTREAM":   v[1].(string),
			"CONDUIT_WAF":        "on",
		}
		if a.LoadBalancer != nil {
			env["CONDUIT_TRUSTED_PROXIES"] = a.VpcCIDR
		} else if a.WebTLSSecretArn != "" {
			env["CONDUIT_WEB_ADDR"] = "0.0.0.0:443"
			env["CONDUIT_TLS_SECRET_ARN"] = a.WebTLSSecretArn
			env["CONDUIT_REDIRECT_ADDR"] = fmt.Sprintf("0.0.0.0:%d", a.Web.Port)
		}
		return render(a, cloudinit.Boot{Role: "web", Port: a.Web.Port, Env: env}, v[0].(string))
	}).(pulumi.StringOutput)
}

// render completes b with the release and returns it base64-encoded, as
// launch templates and instances take user data.
func render(a *AppArgs, b cloudinit.Boot, bucket string) (string, error) {
	b.Release = cloudinit.Release{Bucket: bucket, Key: a.Release.Key, SHA256: a.Release.SHA256, Region: a.Region}
	b = a.Telemetry.boot(b)
	doc, err := cloudinit.Render(b)
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString([]byte(doc)), nil
}

// version pins a launch template's latest version, so that a new version
// (new AMI, new build) is a change the instances or groups must roll out.
func version(lt *ec2.LaunchTemplate) pulumi.StringOutput {
	return lt.LatestVersion.ApplyT(strconv.Itoa).(pulumi.StringOutput)
}

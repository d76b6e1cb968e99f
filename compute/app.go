// Package compute provides the webstack compute tier: one hardened launch
// template per tier (web, api) and, by topology, either two instances with an
// Elastic IP on web (single) or a public ALB → web Auto Scaling group →
// internal ALB → api Auto Scaling group (ha).
package compute

import (
	"encoding/base64"
	"fmt"
	"strconv"

	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/ec2"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/ssm"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"webstack/internal/cloudinit"
)

// DefaultAMIParameter is AWS's public SSM parameter naming the latest Amazon
// Linux 2023 arm64 AMI. Each deployment resolves it once, so a new AMI is a
// new launch template version, rolled out like a new build.
const DefaultAMIParameter = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-arm64"

// HealthCheckPath is the path load balancers probe; the app answers it
// without touching the database.
const HealthCheckPath = "/healthz"

// TierArgs configures one tier.
type TierArgs struct {
	// InstanceType is a Graviton type. Defaults to "t4g.small".
	InstanceType string
	// Port the tier listens on. Required.
	Port int
	// MinSize and MaxSize bound the Auto Scaling group (ha only). Default to 2 and 4.
	MinSize, MaxSize int
	// SecurityGroupID is the tier's security group. Required.
	SecurityGroupID pulumi.StringInput
	// InstanceProfileName is the tier's instance profile. Required.
	InstanceProfileName pulumi.StringInput
}

// AppArgs configures NewApp.
type AppArgs struct {
	// LoadBalanced selects the ha shape (ALBs and Auto Scaling groups);
	// false builds the single shape (two instances). Defaults to false.
	LoadBalanced bool
	// VpcID of the target groups (ha). Required for ha.
	VpcID pulumi.StringInput
	// PublicSubnetIDs host the public ALB (ha) or the web instance (single). Required.
	PublicSubnetIDs pulumi.StringArrayInput
	// PrivateSubnetIDs host the api instance, the Auto Scaling groups and the internal ALB. Required.
	PrivateSubnetIDs pulumi.StringArrayInput
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
	// JWTSecretArn is the Secrets Manager secret the api signs tokens with. Required.
	JWTSecretArn pulumi.StringInput
	// RootVolumeGiB is every instance's encrypted gp3 root volume. Defaults to 16.
	RootVolumeGiB int
	// AMIParameter is the SSM parameter holding the AMI id. Defaults to DefaultAMIParameter.
	AMIParameter string

	// The rest applies to ha only.

	// PublicALBSecurityGroupID and InternalALBSecurityGroupID are the load
	// balancers' groups. Required for ha.
	PublicALBSecurityGroupID, InternalALBSecurityGroupID pulumi.StringInput
	// CertificateArn of the HTTPS listener. Defaults to "" (no HTTPS
	// listener): then AllowHTTP must be true.
	CertificateArn string
	// AllowHTTP forwards plain HTTP when there is no certificate (explicit
	// opt-out). Defaults to false: port 80 only redirects to HTTPS.
	AllowHTTP bool
	// DesyncMitigationMode of both ALBs: "defensive" or "strictest". Defaults to "defensive".
	DesyncMitigationMode string
	// DeletionProtection on the public ALB. Defaults to false.
	DeletionProtection bool
	// AccessLogs sends the public ALB's access logs to a new private S3 bucket. Defaults to false.
	AccessLogs bool
	// MinHealthyPercentage during an instance refresh. Defaults to 90.
	MinHealthyPercentage int
	// CPUTargetPercent is the target tracking goal of both groups. Defaults to 50.
	CPUTargetPercent int
}

// App is the compute tier.
type App struct {
	pulumi.ResourceState

	// URL is where users reach the app.
	URL pulumi.StringOutput
	// EntryPointArn is what faces the internet: the public ALB (ha) or the
	// web Elastic IP allocation (single). Edge protection attaches to it.
	EntryPointArn pulumi.StringOutput
	// WebLaunchTemplateID and APILaunchTemplateID identify the launch templates.
	WebLaunchTemplateID, APILaunchTemplateID pulumi.StringOutput

	// Single only: instance ids.
	WebInstanceID, APIInstanceID pulumi.StringOutput
	// HA only: Auto Scaling group names and the internal ALB's DNS name (the web tier's upstream).
	WebGroupName, APIGroupName, InternalURL pulumi.StringOutput
}

// NewApp creates the compute tier.
func NewApp(ctx *pulumi.Context, name string, args *AppArgs, opts ...pulumi.ResourceOption) (*App, error) {
	c := &App{}
	if err := ctx.RegisterComponentResource("webstack:compute:App", name, c, opts...); err != nil {
		return nil, err
	}
	a := *args
	for _, t := range []*TierArgs{&a.Web, &a.API} {
		if t.InstanceType == "" {
			t.InstanceType = "t4g.small"
		}
		if t.MinSize == 0 {
			t.MinSize = 2
		}
		if t.MaxSize == 0 {
			t.MaxSize = 4
		}
	}
	if a.RootVolumeGiB == 0 {
		a.RootVolumeGiB = 16
	}
	if a.AMIParameter == "" {
		a.AMIParameter = DefaultAMIParameter
	}
	if a.DesyncMitigationMode == "" {
		a.DesyncMitigationMode = "defensive"
	}
	if a.MinHealthyPercentage == 0 {
		a.MinHealthyPercentage = 90
	}
	if a.CPUTargetPercent == 0 {
		a.CPUTargetPercent = 50
	}
	if a.Web.Port == 0 || a.API.Port == 0 {
		return nil, fmt.Errorf("compute: Web.Port and API.Port are required")
	}
	if a.Release == nil || a.Region == "" || a.DBHost == nil || a.DBPort == nil || a.DBSecretArn == nil || a.JWTSecretArn == nil {
		return nil, fmt.Errorf("compute: Release, Region, DBHost, DBPort, DBSecretArn and JWTSecretArn are required")
	}

	ami, err := ssm.LookupParameter(ctx, &ssm.LookupParameterArgs{Name: a.AMIParameter}, pulumi.Parent(c))
	if err != nil {
		return nil, fmt.Errorf("compute: resolve AMI from %s: %w", a.AMIParameter, err)
	}

	empty := pulumi.String("").ToStringOutput()
	c.WebInstanceID, c.APIInstanceID, c.WebGroupName, c.APIGroupName, c.InternalURL = empty, empty, empty, empty, empty

	if a.LoadBalanced {
		err = c.cluster(ctx, name, &a, ami.Value)
	} else {
		err = c.single(ctx, name, &a, ami.Value)
	}
	if err != nil {
		return nil, err
	}

	if err := ctx.RegisterResourceOutputs(c, pulumi.Map{
		"url":           c.URL,
		"entryPointArn": c.EntryPointArn,
		"webInstanceId": c.WebInstanceID,
		"apiInstanceId": c.APIInstanceID,
		"webGroupName":  c.WebGroupName,
		"apiGroupName":  c.APIGroupName,
	}); err != nil {
		return nil, err
	}
	return c, nil
}

// launchTemplate is the hardened template of one tier: IMDSv2 only with a
// hop limit of 1 (containers cannot reach the instance's credentials), an
// encrypted gp3 root volume, no key pair, no public address, the tier's
// instance profile and security group.
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
			ec2.LaunchTemplateTagSpecificationArgs{ResourceType: pulumi.String("instance"), Tags: pulumi.StringMap{"Name": pulumi.String(name)}},
			ec2.LaunchTemplateTagSpecificationArgs{ResourceType: pulumi.String("volume"), Tags: pulumi.StringMap{"Name": pulumi.String(name)}},
		},
		Tags: pulumi.StringMap{"Name": pulumi.String(name)},
	}
	if a.LoadBalanced {
		// Auto Scaling fills in the subnet; the interface pins "no public IP".
		args.NetworkInterfaces = ec2.LaunchTemplateNetworkInterfaceArray{
			ec2.LaunchTemplateNetworkInterfaceArgs{
				DeviceIndex:              pulumi.Int(0),
				AssociatePublicIpAddress: pulumi.String("false"),
				SecurityGroups:           pulumi.StringArray{t.SecurityGroupID},
				DeleteOnTermination:      pulumi.String("true"),
			},
		}
	} else {
		// A standalone instance names its subnet itself, which EC2 refuses
		// alongside a template network interface; the instance turns public
		// addressing off instead.
		args.VpcSecurityGroupIds = pulumi.StringArray{t.SecurityGroupID}
	}
	lt, err := ec2.NewLaunchTemplate(ctx, name, args, pulumi.Parent(c))
	if err != nil {
		return nil, fmt.Errorf("compute: launch template %s: %w", name, err)
	}
	if t == &a.Web {
		c.WebLaunchTemplateID = lt.ID().ToStringOutput()
	} else {
		c.APILaunchTemplateID = lt.ID().ToStringOutput()
	}
	return lt, nil
}

// apiUserData boots the api tier: settings and secret ARNs, never values.
func (c *App) apiUserData(a *AppArgs) pulumi.StringOutput {
	return pulumi.All(a.Release.Bucket, a.DBHost, a.DBPort, a.DBSecretArn, a.JWTSecretArn).ApplyT(func(v []any) (string, error) {
		return render(a, cloudinit.Boot{
			Role: "api", Port: a.API.Port, DocumentDBCA: true,
			Env: map[string]string{
				"CONDUIT_API_ADDR":       fmt.Sprintf("0.0.0.0:%d", a.API.Port),
				"CONDUIT_ADMIN_ADDR":     "127.0.0.1:9090",
				"CONDUIT_DB_HOST":        v[1].(string),
				"CONDUIT_DB_PORT":        strconv.Itoa(v[2].(int)),
				"CONDUIT_DB_CA_FILE":     cloudinit.CABundle,
				"CONDUIT_DB_SECRET_ARN":  v[3].(string),
				"CONDUIT_JWT_SECRET_ARN": v[4].(string),
			},
		}, v[0].(string))
	}).(pulumi.StringOutput)
}

// webUserData boots the web tier in front of upstream (the api's base URL).
func (c *App) webUserData(a *AppArgs, upstream pulumi.StringOutput) pulumi.StringOutput {
	return pulumi.All(a.Release.Bucket, upstream).ApplyT(func(v []any) (string, error) {
		return render(a, cloudinit.Boot{
			Role: "web", Port: a.Web.Port,
			Env: map[string]string{
				"CONDUIT_WEB_ADDR":   fmt.Sprintf("0.0.0.0:%d", a.Web.Port),
				"CONDUIT_ADMIN_ADDR": "127.0.0.1:9090",
				"CONDUIT_UPSTREAM":   v[1].(string),
				"CONDUIT_WAF":        "on",
			},
		}, v[0].(string))
	}).(pulumi.StringOutput)
}

// render completes b with the release and returns it base64-encoded, as
// launch templates and instances take user data.
func render(a *AppArgs, b cloudinit.Boot, bucket string) (string, error) {
	b.Release = cloudinit.Release{Bucket: bucket, Key: a.Release.Key, SHA256: a.Release.SHA256, Region: a.Region}
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

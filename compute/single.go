package compute

import (
	"fmt"
	"strings"

	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/ec2"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// single builds the single topology, without a load balancer: a web instance in the
// first public subnet behind an Elastic IP, and an api instance in the
// first private subnet.
func (c *App) single(ctx *pulumi.Context, name string, a *AppArgs, ami string) error {
	instance := func(tier string, t *TierArgs, userData pulumi.StringOutput, subnets pulumi.StringArrayInput) (*ec2.Instance, error) {
		lt, err := c.launchTemplate(ctx, name+"-"+tier, ami, a, t, userData)
		if err != nil {
			return nil, err
		}
		inst, err := ec2.NewInstance(ctx, name+"-"+tier, &ec2.InstanceArgs{
			LaunchTemplate: &ec2.InstanceLaunchTemplateArgs{
				Id:      lt.ID(),
				Version: version(lt),
			},
			// The provider turns SubnetId into the network interface of the
			// RunInstances request, with these groups on it. Public
			// addressing is left to the subnet: associatePublicIpAddress is
			// ForceNew and reads back true once the Elastic IP is attached,
			// which would replace the web instance on every run.
			SubnetId:            subnets.ToStringArrayOutput().Index(pulumi.Int(0)),
			VpcSecurityGroupIds: pulumi.StringArray{t.SecurityGroupID},
			// A new build means new user data: replace the instance rather
			// than edit it in place, which cloud-init would ignore.
			UserDataBase64:          userData,
			UserDataReplaceOnChange: pulumi.Bool(true),
			Tags:                    pulumi.StringMap{"Name": pulumi.String(name + "-" + tier)},
		}, pulumi.Parent(c), c.bootDependsOn(a, tier, t))
		if err != nil {
			return nil, fmt.Errorf("compute: %s instance: %w", tier, err)
		}
		return inst, nil
	}
	api, err := instance("api", &a.API, c.apiUserData(a), a.PrivateSubnetIDs)
	if err != nil {
		return err
	}
	upstream := pulumi.Sprintf("http://%s:%d", api.PrivateIp, a.API.Port)
	web, err := instance("web", &a.Web, c.webUserData(a, upstream), a.PublicSubnetIDs)
	if err != nil {
		return err
	}
	eip, err := ec2.NewEip(ctx, name+"-web", &ec2.EipArgs{
		Domain:   pulumi.String("vpc"),
		Instance: web.ID(),
		Tags:     pulumi.StringMap{"Name": pulumi.String(name + "-web")},
	}, pulumi.Parent(c))
	if err != nil {
		return fmt.Errorf("compute: web elastic IP: %w", err)
	}
	caller, err := aws.GetCallerIdentity(ctx, nil, pulumi.Parent(c))
	if err != nil {
		return fmt.Errorf("compute: caller identity: %w", err)
	}
	region, err := aws.GetRegion(ctx, nil, pulumi.Parent(c))
	if err != nil {
		return fmt.Errorf("compute: region: %w", err)
	}
	c.Instances = &Instances{WebID: web.ID().ToStringOutput(), APIID: api.ID().ToStringOutput()}
	scheme := "http"
	if a.WebTLSSecretArn != "" {
		scheme = "https"
	}
	c.URL = pulumi.Sprintf("%s://%s", scheme, eip.PublicIp)
	c.EntryAddress = eip.PublicIp
	// Shield identifies an Elastic IP by its allocation.
	c.EntryPointArn = pulumi.Sprintf("arn:%s:ec2:%s:%s:eip-allocation/%s", partition(caller.Arn), region.Name, caller.AccountId, eip.AllocationId)
	return nil
}

// partition is the partition ("aws", "aws-cn", ...) of an ARN.
func partition(arn string) string {
	if parts := strings.SplitN(arn, ":", 3); len(parts) == 3 && parts[1] != "" {
		return parts[1]
	}
	return "aws"
}

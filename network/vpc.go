// Package network provides the webstack VPC: public, private and isolated
// subnets across pinned availability zones, NAT, an S3 gateway endpoint, flow
// logs, and a default security group that allows nothing.
package network

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/cloudwatch"
	awsec2 "github.com/pulumi/pulumi-aws/sdk/v6/go/aws/ec2"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/iam"
	"github.com/pulumi/pulumi-awsx/sdk/v2/go/awsx/ec2"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"webstack/internal/config"
	"webstack/internal/iampolicy"
	"webstack/internal/netlayout"
)

// VPCArgs configures NewVPC.
type VPCArgs struct {
	// CIDR is the VPC's IPv4 range, /16 to /20. Defaults to the config
	// table's vpcCidr.
	CIDR string
	// AvailabilityZones pins the AZ names. Defaults to the region's available
	// AZs, sorted by name, cut to AZCount, so that adding AZs later appends
	// subnets instead of renumbering them.
	AvailabilityZones []string
	// AZCount is how many AZs to use when AvailabilityZones is empty.
	// Defaults to 2 (the config table's azCount).
	AZCount int
	// NATStrategy is "Single" or "OnePerAz". Defaults to Single (the config table's natStrategy).
	NATStrategy string
	// FlowLogRetentionDays is the flow log group's retention. Defaults to
	// 30 (the config table's flowLogRetentionDays).
	FlowLogRetentionDays int
	// Region is the AWS region, used for the S3 endpoint's service name. Required.
	Region string
	// InstanceTypes are the EC2 types the stack runs: looked-up zones that
	// do not offer every one of them are skipped. Defaults to none (no
	// filter by type).
	InstanceTypes []string
}

// VPC is the network tier.
type VPC struct {
	pulumi.ResourceState

	// VpcID is the VPC's id.
	VpcID pulumi.StringOutput
	// AvailabilityZones are the AZs the subnets span, in subnet order.
	AvailabilityZones []string
	// PublicSubnetIDs, one per AZ: load balancers, NAT, the single topology's web instance.
	PublicSubnetIDs pulumi.StringArrayOutput
	// PrivateSubnetIDs, one per AZ: application instances, egress through NAT.
	PrivateSubnetIDs pulumi.StringArrayOutput
	// IsolatedSubnetIDs, one per AZ: the database, no route to the internet.
	IsolatedSubnetIDs pulumi.StringArrayOutput
	// FlowLogGroupName is the CloudWatch log group receiving VPC flow logs.
	FlowLogGroupName pulumi.StringOutput
	// NATGatewayIDs are the NAT gateways (one, or one per AZ), sorted: what
	// their CloudWatch metrics are dimensioned by.
	NATGatewayIDs []pulumi.StringOutput
}

// NewVPC creates the network tier.
func NewVPC(ctx *pulumi.Context, name string, args *VPCArgs, opts ...pulumi.ResourceOption) (*VPC, error) {
	c := &VPC{}
	if err := ctx.RegisterComponentResource("webstack:network:VPC", name, c, opts...); err != nil {
		return nil, err
	}
	a := *args
	if a.CIDR == "" {
		a.CIDR = config.Default[string]("vpcCidr")
	}
	if a.AZCount == 0 {
		a.AZCount = config.Default[int]("azCount")
	}
	if a.NATStrategy == "" {
		a.NATStrategy = config.Default[string]("natStrategy")
	}
	if a.FlowLogRetentionDays == 0 {
		a.FlowLogRetentionDays = config.Default[int]("flowLogRetentionDays")
	}
	if a.Region == "" {
		return nil, fmt.Errorf("network: Region is required")
	}
	prefix, err := netip.ParsePrefix(a.CIDR)
	if err != nil {
		return nil, fmt.Errorf("network: parse CIDR: %w", err)
	}
	parent := pulumi.Parent(c)

	azs := slices.Clone(a.AvailabilityZones)
	if len(azs) == 0 {
		if azs, err = lookUpZones(ctx, c, a.AZCount, a.InstanceTypes); err != nil {
			return nil, err
		}
	}
	c.AvailabilityZones = azs

	// Each AZ gets a private subnet of 1/16 of the VPC (instances) and a
	// public and an isolated subnet of 1/64 each (load balancers and NAT; the
	// database), placed as netlayout computes (awsx's allocation), which
	// refuses a layout awsx would overlap.
	if _, err := netlayout.Layout(prefix, len(azs), netlayout.Specs()); err != nil {
		return nil, fmt.Errorf("network: %w", err)
	}
	var specs []ec2.SubnetSpecArgs
	for _, sp := range netlayout.Specs() {
		specs = append(specs, ec2.SubnetSpecArgs{
			Type: ec2.SubnetType(sp.Tier), Name: pulumi.StringRef(strings.ToLower(string(sp.Tier))), CidrMask: pulumi.IntRef(prefix.Bits() + sp.NewBits),
		})
	}
	strategy := ec2.SubnetAllocationStrategyAuto
	vpc, err := ec2.NewVpc(ctx, name, &ec2.VpcArgs{
		CidrBlock:             &a.CIDR,
		AvailabilityZoneNames: azs,
		SubnetStrategy:        &strategy,
		SubnetSpecs:           specs,
		NatGateways:           &ec2.NatGatewayConfigurationArgs{Strategy: ec2.NatGatewayStrategy(a.NATStrategy)},
		EnableDnsHostnames:    pulumi.Bool(true),
		EnableDnsSupport:      pulumi.Bool(true),
		Tags:                  pulumi.StringMap{"Name": pulumi.String(name)},
	}, parent)
	if err != nil {
		return nil, fmt.Errorf("network: vpc: %w", err)
	}
	c.VpcID = vpc.VpcId
	c.PublicSubnetIDs = vpc.PublicSubnetIds
	c.PrivateSubnetIDs = vpc.PrivateSubnetIds
	c.IsolatedSubnetIDs = vpc.IsolatedSubnetIds

	// The default security group is adopted and emptied: anything launched
	// without an explicit group gets no traffic at all.
	if _, err := awsec2.NewDefaultSecurityGroup(ctx, name+"-default-sg", &awsec2.DefaultSecurityGroupArgs{
		VpcId:   vpc.VpcId,
		Ingress: awsec2.DefaultSecurityGroupIngressArray{},
		Egress:  awsec2.DefaultSecurityGroupEgressArray{},
		Tags:    pulumi.StringMap{"Name": pulumi.String(name + "-default-deny")},
	}, parent); err != nil {
		return nil, fmt.Errorf("network: default security group: %w", err)
	}

	// S3 gateway endpoint on every route table: artefacts and logs reach S3
	// without NAT charges. awsx does not export route table ids as strings,
	// so they are read back once the VPC exists.
	routeTables := awsec2.GetRouteTablesOutput(ctx, awsec2.GetRouteTablesOutputArgs{VpcId: vpc.VpcId}, pulumi.Parent(c))
	if _, err := awsec2.NewVpcEndpoint(ctx, name+"-s3", &awsec2.VpcEndpointArgs{
		VpcId:           vpc.VpcId,
		ServiceName:     pulumi.Sprintf("com.amazonaws.%s.s3", a.Region),
		VpcEndpointType: pulumi.String("Gateway"),
		RouteTableIds:   routeTables.Ids(),
		Tags:            pulumi.StringMap{"Name": pulumi.String(name + "-s3")},
	}, parent); err != nil {
		return nil, fmt.Errorf("network: s3 endpoint: %w", err)
	}

	// awsx does not export its NAT gateways' ids as strings either; their
	// number is known from the strategy.
	nats := awsec2.GetNatGatewaysOutput(ctx, awsec2.GetNatGatewaysOutputArgs{
		VpcId:   vpc.VpcId,
		Filters: awsec2.GetNatGatewaysFilterArray{awsec2.GetNatGatewaysFilterArgs{Name: pulumi.String("state"), Values: pulumi.ToStringArray([]string{"available"})}},
	}, pulumi.Parent(c))
	natCount := 1
	if a.NATStrategy == "OnePerAz" {
		natCount = len(azs)
	}
	for i := range natCount {
		c.NATGatewayIDs = append(c.NATGatewayIDs, nats.Ids().ApplyT(func(ids []string) string {
			ids = slices.Sorted(slices.Values(ids))
			if i < len(ids) {
				return ids[i]
			}
			return ""
		}).(pulumi.StringOutput))
	}

	if err := c.flowLogs(ctx, name, vpc.VpcId, a.FlowLogRetentionDays); err != nil {
		return nil, err
	}

	if err := ctx.RegisterResourceOutputs(c, pulumi.Map{
		"vpcId":             c.VpcID,
		"publicSubnetIds":   c.PublicSubnetIDs,
		"privateSubnetIds":  c.PrivateSubnetIDs,
		"isolatedSubnetIds": c.IsolatedSubnetIDs,
		"flowLogGroupName":  c.FlowLogGroupName,
	}); err != nil {
		return nil, err
	}
	return c, nil
}

// lookUpZones returns the first count (by name) of the region's zones the
// stack can run in: Availability Zones proper, available, not opt-in (Local
// Zones and Wavelength Zones are opt-in, and a Local Zone's name, such as
// us-east-1-bos-1a, sorts before the region's own zones), offering every
// instance type the stack uses. Sorting then cutting means adding AZs later
// appends subnets instead of renumbering them.
func lookUpZones(ctx *pulumi.Context, parent pulumi.Resource, count int, instanceTypes []string) ([]string, error) {
	res, err := aws.GetAvailabilityZones(ctx, &aws.GetAvailabilityZonesArgs{
		State: pulumi.StringRef("available"),
		Filters: []aws.GetAvailabilityZonesFilter{
			{Name: "opt-in-status", Values: []string{"opt-in-not-required"}},
			{Name: "zone-type", Values: []string{"availability-zone"}},
		},
	}, pulumi.Parent(parent))
	if err != nil {
		return nil, fmt.Errorf("network: look up availability zones: %w", err)
	}
	zones := slices.Sorted(slices.Values(res.Names))
	for _, typ := range slices.Compact(slices.Sorted(slices.Values(instanceTypes))) {
		offers, err := awsec2.GetInstanceTypeOfferings(ctx, &awsec2.GetInstanceTypeOfferingsArgs{
			LocationType: pulumi.StringRef("availability-zone"),
			Filters:      []awsec2.GetInstanceTypeOfferingsFilter{{Name: "instance-type", Values: []string{typ}}},
		}, pulumi.Parent(parent))
		if err != nil {
			return nil, fmt.Errorf("network: look up where %s is offered: %w", typ, err)
		}
		zones = slices.DeleteFunc(zones, func(z string) bool { return !slices.Contains(offers.Locations, z) })
	}
	if len(zones) < count {
		return nil, fmt.Errorf("network: the region has %d availability zones offering %v, azCount is %d: lower azCount or choose other instance types", len(zones), instanceTypes, count)
	}
	return zones[:count], nil
}

// flowLogs sends all of the VPC's traffic records to a CloudWatch log group,
// through a role that may write to that group only.
func (c *VPC) flowLogs(ctx *pulumi.Context, name string, vpcID pulumi.StringOutput, retention int) error {
	parent := pulumi.Parent(c)
	group, err := cloudwatch.NewLogGroup(ctx, name+"-flow-logs", &cloudwatch.LogGroupArgs{
		Name:            pulumi.Sprintf("/webstack/%s/%s/vpc-flow-logs", ctx.Stack(), name),
		RetentionInDays: pulumi.Int(retention),
		Tags:            pulumi.StringMap{"Name": pulumi.String(name + "-flow-logs")},
	}, parent)
	if err != nil {
		return fmt.Errorf("network: flow log group: %w", err)
	}
	c.FlowLogGroupName = group.Name

	role, err := iam.NewRole(ctx, name+"-flow-logs", &iam.RoleArgs{
		AssumeRolePolicy: pulumi.String(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"vpc-flow-logs.amazonaws.com"},"Action":"sts:AssumeRole"}]}`),
		Tags:             pulumi.StringMap{"Name": pulumi.String(name + "-flow-logs")},
	}, parent)
	if err != nil {
		return fmt.Errorf("network: flow log role: %w", err)
	}
	// The permissions AWS documents for publishing flow logs to CloudWatch
	// Logs: writing to this group, and listing the account's groups (which
	// IAM cannot narrow to one group: the listing is scoped to
	// log-group:*).
	policy, err := iam.NewRolePolicy(ctx, name+"-flow-logs", &iam.RolePolicyArgs{
		Role: role.ID(),
		Policy: iampolicy.Document(iampolicy.Allow{
			Sid:       "WriteFlowLogs",
			Actions:   []string{"logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"},
			Resources: pulumi.StringArray{group.Arn, pulumi.Sprintf("%s:*", group.Arn)},
		}, iampolicy.Allow{
			Sid:       "FindLogGroup",
			Actions:   []string{"logs:DescribeLogGroups"},
			Resources: pulumi.StringArray{logGroupsOfAccount(group.Arn)},
		}),
	}, parent)
	if err != nil {
		return fmt.Errorf("network: flow log policy: %w", err)
	}
	// The flow log checks its role when it is created: it waits for the
	// policy, not just the role.
	if _, err := awsec2.NewFlowLog(ctx, name+"-flow-logs", &awsec2.FlowLogArgs{
		VpcId:              vpcID,
		TrafficType:        pulumi.String("ALL"),
		LogDestinationType: pulumi.String("cloud-watch-logs"),
		LogDestination:     group.Arn,
		IamRoleArn:         role.Arn,
		Tags:               pulumi.StringMap{"Name": pulumi.String(name + "-flow-logs")},
	}, parent, pulumi.DependsOn([]pulumi.Resource{policy})); err != nil {
		return fmt.Errorf("network: flow log: %w", err)
	}
	return nil
}

// logGroupsOfAccount turns a log group's ARN into the ARN of all the
// account's log groups in its region (arn:…:log-group:*).
func logGroupsOfAccount(groupArn pulumi.StringOutput) pulumi.StringOutput {
	return groupArn.ApplyT(func(arn string) (string, error) {
		i := strings.Index(arn, ":log-group:")
		if i < 0 {
			return "", fmt.Errorf("network: %q is not a log group ARN", arn)
		}
		return arn[:i] + ":log-group:*", nil
	}).(pulumi.StringOutput)
}

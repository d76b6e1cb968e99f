package network_test

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"webstack/internal/config"
	"webstack/internal/netlayout"
	"webstack/internal/offline/plan"
	"webstack/network"
)

func vpcGraph(t *testing.T, args network.VPCArgs) *plan.Graph {
	t.Helper()
	if args.Region == "" {
		args.Region = "us-east-1"
	}
	g, err := plan.Components(args.Region, func(ctx *pulumi.Context) error {
		_, err := network.NewVPC(ctx, "network", &args)
		return err
	})
	require.NoError(t, err)
	return g
}

func only(t *testing.T, g *plan.Graph, typ string) plan.Resource {
	t.Helper()
	rs := g.OfType(typ)
	require.Len(t, rs, 1, typ)
	return rs[0]
}

// Zero-value Args (but the region) take the config table's defaults.
func TestZeroArgsTakeTheConfigDefaults(t *testing.T) {
	vpc := only(t, vpcGraph(t, network.VPCArgs{}), "awsx:ec2:Vpc")
	assert.Equal(t, config.Default[string]("vpcCidr"), vpc.Inputs["cidrBlock"])
	assert.Len(t, vpc.Inputs["availabilityZoneNames"], config.Default[int]("azCount"))
	assert.Equal(t, config.Default[string]("natStrategy"), plan.Get(vpc.Inputs, "natGateways", "strategy"))
	g := vpcGraph(t, network.VPCArgs{})
	group, _ := g.ByKey("aws:cloudwatch/logGroup:LogGroup::network-flow-logs")
	assert.EqualValues(t, config.Default[int]("flowLogRetentionDays"), group.Inputs["retentionInDays"])
}

func TestRegionIsRequired(t *testing.T) {
	_, err := plan.Components("us-east-1", func(ctx *pulumi.Context) error {
		_, err := network.NewVPC(ctx, "network", &network.VPCArgs{})
		return err
	})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "Region is required")
}

// The subnets awsx allocates are the ones netlayout computes: the specs
// handed to awsx are netlayout's, in its order, with absolute masks.
func TestSubnetSpecsAreTheCheckedLayout(t *testing.T) {
	for _, cidr := range []string{"10.0.0.0/16", "10.8.0.0/20"} {
		vpc := only(t, vpcGraph(t, network.VPCArgs{CIDR: cidr, AZCount: 3}), "awsx:ec2:Vpc")
		assert.Equal(t, "Auto", vpc.Inputs["subnetStrategy"], "the allocation netlayout mirrors")
		bits := netip.MustParsePrefix(cidr).Bits()
		var got []string
		for _, s := range plan.List(vpc.Inputs["subnetSpecs"]) {
			got = append(got, fmt.Sprintf("%v/%v", plan.Get(s, "type"), plan.Get(s, "cidrMask")))
		}
		var want []string
		for _, s := range netlayout.Specs() {
			want = append(want, fmt.Sprintf("%s/%d", s.Tier, bits+s.NewBits))
		}
		assert.Equal(t, want, got, cidr)
	}
	_, err := plan.Components("us-east-1", func(ctx *pulumi.Context) error {
		_, err := network.NewVPC(ctx, "network", &network.VPCArgs{Region: "us-east-1", CIDR: "10.0.0.0/24"})
		return err
	})
	require.Error(t, err, "a layout AWS would refuse is refused before awsx sees it")
}

// The NAT gateways the tier reports (which the operations tier alarms on,
// one pair each) are as many as the strategy makes: one for the VPC by
// default, else one per AZ.
func TestNATGatewaysAreAsManyAsTheStrategyMakes(t *testing.T) {
	for _, tc := range []struct {
		strategy, sent string
		azs, want      int
	}{
		{"", "Single", 3, 1},
		{"Single", "Single", 3, 1},
		{"OnePerAz", "OnePerAz", 3, 3},
		{"OnePerAz", "OnePerAz", 2, 2},
	} {
		var vpc *network.VPC
		g, err := plan.Components("us-east-1", func(ctx *pulumi.Context) (err error) {
			vpc, err = network.NewVPC(ctx, "network", &network.VPCArgs{Region: "us-east-1", AZCount: tc.azs, NATStrategy: tc.strategy})
			return err
		})
		require.NoError(t, err)
		assert.Equal(t, tc.sent, plan.Get(only(t, g, "awsx:ec2:Vpc").Inputs, "natGateways", "strategy"), "%q", tc.strategy)
		assert.Len(t, vpc.NATGatewayIDs, tc.want, "%q over %d AZs", tc.strategy, tc.azs)
	}
}

func TestAvailabilityZonesArePinnedOrSortedAndCut(t *testing.T) {
	// The mock answers us-east-1c, a, d, b, e: the tier must sort, then cut.
	vpc := only(t, vpcGraph(t, network.VPCArgs{AZCount: 3}), "awsx:ec2:Vpc")
	assert.Equal(t, []any{"us-east-1a", "us-east-1b", "us-east-1c"}, vpc.Inputs["availabilityZoneNames"])
	vpc = only(t, vpcGraph(t, network.VPCArgs{AvailabilityZones: []string{"us-east-1d", "us-east-1b"}}), "awsx:ec2:Vpc")
	assert.Equal(t, []any{"us-east-1d", "us-east-1b"}, vpc.Inputs["availabilityZoneNames"], "pinned zones are used as given")
}

// Looked-up zones exclude opt-in Local Zones (whose names sort first) and
// zones that do not offer the stack's instance types. The mock answers
// with a Local Zone unless filtered out, and offers no Graviton type in
// zone e.
func TestLookedUpZonesAreRealAZsThatOfferTheInstanceTypes(t *testing.T) {
	vpc := only(t, vpcGraph(t, network.VPCArgs{AZCount: 4, InstanceTypes: []string{"t4g.small", "m7g.large"}}), "awsx:ec2:Vpc")
	assert.Equal(t, []any{"us-east-1a", "us-east-1b", "us-east-1c", "us-east-1d"}, vpc.Inputs["availabilityZoneNames"])
	_, err := plan.Components("us-east-1", func(ctx *pulumi.Context) error {
		_, err := network.NewVPC(ctx, "network", &network.VPCArgs{Region: "us-east-1", AZCount: 5, InstanceTypes: []string{"t4g.small"}})
		return err
	})
	require.Error(t, err, "only 4 zones can run the stack")
	assert.Contains(t, err.Error(), "lower azCount")
}

func TestS3GatewayEndpointAndEmptyDefaultSecurityGroup(t *testing.T) {
	g := vpcGraph(t, network.VPCArgs{})
	ep := only(t, g, "aws:ec2/vpcEndpoint:VpcEndpoint")
	assert.Equal(t, "com.amazonaws.us-east-1.s3", ep.Inputs["serviceName"])
	assert.Equal(t, "Gateway", ep.Inputs["vpcEndpointType"])
	assert.NotEmpty(t, ep.Inputs["routeTableIds"])
	dsg := only(t, g, "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup")
	assert.Empty(t, dsg.Inputs["ingress"], "default security group allows no ingress")
	assert.Empty(t, dsg.Inputs["egress"], "default security group allows no egress")
}

func TestFlowLogsGoToARetainedLogGroupThroughAScopedRole(t *testing.T) {
	g := vpcGraph(t, network.VPCArgs{FlowLogRetentionDays: 90})
	fl := only(t, g, "aws:ec2/flowLog:FlowLog")
	assert.Equal(t, "ALL", fl.Inputs["trafficType"])
	group, ok := g.ByKey("aws:cloudwatch/logGroup:LogGroup::network-flow-logs")
	require.True(t, ok)
	assert.EqualValues(t, 90, group.Inputs["retentionInDays"])
	groupArn := "arn:aws:logs:us-east-1:" + plan.Account + ":log-group:" + fmt.Sprint(group.Inputs["name"])
	assert.Equal(t, groupArn, fl.Inputs["logDestination"])
	pol, ok := g.ByKey("aws:iam/rolePolicy:RolePolicy::network-flow-logs")
	require.True(t, ok)
	var doc struct {
		Statement []struct{ Action, Resource []string }
	}
	require.NoError(t, json.Unmarshal([]byte(fmt.Sprint(pol.Inputs["policy"])), &doc))
	var actions []string
	for _, st := range doc.Statement {
		actions = append(actions, st.Action...)
		for _, r := range st.Resource {
			if strings.HasSuffix(r, ":log-group:*") {
				// Listing log groups cannot be narrowed to one group.
				assert.Equal(t, []string{"logs:DescribeLogGroups"}, st.Action, "only the listing reaches every log group")
				assert.Equal(t, "arn:aws:logs:us-east-1:"+plan.Account+":log-group:*", r)
				continue
			}
			assert.True(t, strings.HasPrefix(r, groupArn), "flow log role reaches %v, beyond its log group", r)
		}
	}
	// AWS's documented role policy for publishing flow logs to CloudWatch Logs.
	assert.Subset(t, actions, []string{"logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams", "logs:DescribeLogGroups"})
	assert.True(t, g.Waits(fl.Key(), pol.Key()), "the flow log checks its role's policy when created")
}

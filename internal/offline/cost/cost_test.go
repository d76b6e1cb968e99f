package cost

import (
	"math"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"webstack/internal/offline/plan"
)

const smallTable = `key,region,unit,usd,source,date
ec2:t4g.small,xx-test-1,instance-hour,0.02,https://example.test/ec2,2026-01
ebs:gp3,xx-test-1,GB-month,0.1,https://example.test/ebs,2026-01
vpc:public-ipv4,xx-test-1,address-hour,0.005,https://example.test/vpc,2026-01
vpc:nat-gateway,xx-test-1,gateway-hour,0.05,https://example.test/vpc,2026-01
vpc:nat-data,xx-test-1,GB,0.04,https://example.test/vpc,2026-01
waf:web-acl,xx-test-1,acl-month,5,https://example.test/waf,2026-01
waf:rule,xx-test-1,rule-month,1,https://example.test/waf,2026-01
waf:requests,xx-test-1,million,0.6,https://example.test/waf,2026-01
`

func graph() *plan.Graph {
	return &plan.Graph{Stack: "t", Resources: []plan.Resource{
		{Type: "pulumi:providers:aws", Name: "aws", Custom: true, Inputs: map[string]any{"region": "xx-test-1"}},
		{Type: "webstack:compute:App", Name: "app"},
		{Type: "awsx:ec2:Vpc", Name: "vpc", Parent: "webstack:compute:App::app", Inputs: map[string]any{
			"availabilityZoneNames": []any{"a", "b", "c"}, "natGateways": map[string]any{"strategy": "OnePerAz"}}},
		{Type: "aws:ec2/launchTemplate:LaunchTemplate", Name: "lt", ID: "lt-1", Custom: true, Parent: "webstack:compute:App::app", Inputs: map[string]any{
			"instanceType": "t4g.small", "blockDeviceMappings": []any{map[string]any{"ebs": map[string]any{"volumeSize": int64(10)}}}}},
		{Type: "aws:autoscaling/group:Group", Name: "asg", Custom: true, Parent: "webstack:compute:App::app", Inputs: map[string]any{
			"minSize": int64(2), "launchTemplate": map[string]any{"id": "lt-1"}}},
		{Type: "aws:wafv2/webAcl:WebAcl", Name: "acl", Custom: true, Parent: "webstack:compute:App::app", Inputs: map[string]any{"rules": []any{1, 2, 3}}},
		{Type: "aws:ec2/securityGroup:SecurityGroup", Name: "sg", Custom: true, Parent: "webstack:compute:App::app"},
		{Type: "aws:sqs/queue:Queue", Name: "mystery", Custom: true, Parent: "webstack:compute:App::app"},
		{Type: "aws:docdb/clusterInstance:ClusterInstance", Name: "db-1", Custom: true, Parent: "webstack:compute:App::app", Inputs: map[string]any{"instanceClass": "db.r6g.large"}},
	}}
}

func TestEstimateArithmetic(t *testing.T) {
	table, err := ParseTable(strings.NewReader(smallTable))
	require.NoError(t, err)
	a := Assumptions{NATDataGB: 100, WAFMillionRequests: 10}
	r, err := Estimate(graph(), table, a)
	require.NoError(t, err)
	lines := map[string]float64{}
	for _, l := range r.Lines {
		lines[strings.SplitN(l.Resource, "::", 2)[1]+"/"+l.Item] = l.Monthly
	}
	near := func(want, got float64, what string) {
		t.Helper()
		assert.InDelta(t, want, got, 1e-9, what)
	}
	near(3*730*0.05, lines["vpc/NAT gateway"], "3 NAT gateways (OnePerAz × 3 AZs) × 730 h")
	near(3*100*0.04, lines["vpc/NAT data processed"], "assumed data per gateway")
	near(3*730*0.005, lines["vpc/NAT public IPv4"], "one public IPv4 per NAT")
	near(2*730*0.02, lines["asg/instances t4g.small"], "minSize instances × 730 h")
	near(2*10*0.1, lines["asg/gp3 root volumes"], "volume size from the launch template")
	near(5+3*1+10*0.6, lines["acl/web ACL"]+lines["acl/rules and managed rule groups"]+lines["acl/requests inspected"], "web ACL + rules + requests")
	var sum float64
	for _, v := range lines {
		sum += v
	}
	near(sum, r.Total(), "total is the sum of the lines")
	near(r.Total(), r.ByTier()["app"], "every line belongs to its top-level component")
	assert.Equal(t, 3, r.Free, "the provider, the launch template and the security group cost nothing themselves")
}

func TestUnknownTypesAndMissingPricesAreListedNotDropped(t *testing.T) {
	table, err := ParseTable(strings.NewReader(smallTable))
	require.NoError(t, err)
	r, err := Estimate(graph(), table, DefaultAssumptions())
	require.NoError(t, err)
	require.Len(t, r.NotPriced, 2)
	assert.Contains(t, r.NotPriced[0], "aws:sqs/queue:Queue::mystery")
	assert.Contains(t, r.NotPriced[1], "no price for docdb:db.r6g.large in xx-test-1")
	var b strings.Builder
	Write(&b, r)
	assert.Contains(t, b.String(), "not priced (2)")
}

func TestParseTableRejectsBadRows(t *testing.T) {
	for _, bad := range []string{
		"key,region,usd\n",
		"key,region,unit,usd,source,date\nec2:x,r,h,-1,s,d\n",
		"key,region,unit,usd,source,date\nec2:x,r,h,abc,s,d\n",
		"key,region,unit,usd,source,date\nec2:x,r,h,1,,d\n",
	} {
		_, err := ParseTable(strings.NewReader(bad))
		assert.Error(t, err, bad)
	}
}

func TestCheckedInTableHasSourceAndDateOnEveryRow(t *testing.T) {
	for k, p := range DefaultTable() {
		assert.True(t, strings.HasPrefix(p.Source, "https://aws.amazon.com/"), k)
		assert.NotEmpty(t, p.Date, k)
		assert.False(t, math.IsNaN(p.USD), k)
	}
}

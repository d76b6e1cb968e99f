package security_test

import (
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"webstack/internal/offline/plan"
	"webstack/security"
)

const testALB = "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/public/0123456789abcdef"

// TestEdgeIsTheWebACLItsAssociationAndShield: the edge component alone
// makes and attaches what stands in front of the entry point, and nothing
// when nothing is asked (the single topology: AWS WAF cannot attach to an
// Elastic IP).
func TestEdgeIsTheWebACLItsAssociationAndShield(t *testing.T) {
	for _, tc := range []struct {
		name string
		args security.EdgeArgs
		want []string // types under the component, sorted by key
	}{
		{"nothing asked", security.EdgeArgs{}, nil},
		{"web ACL", security.EdgeArgs{WebACL: &security.WebACLArgs{}}, []string{
			"aws:cloudwatch/logGroup:LogGroup::edge-acl-logs",
			"aws:wafv2/webAcl:WebAcl::edge-acl",
			"aws:wafv2/webAclAssociation:WebAclAssociation::edge-waf",
			"aws:wafv2/webAclLoggingConfiguration:WebAclLoggingConfiguration::edge-acl-logging",
		}},
		{"Shield Advanced", security.EdgeArgs{ShieldAdvanced: true}, []string{"aws:shield/protection:Protection::edge-shield"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.args.ResourceArn = pulumi.String(testALB)
			var edge *security.Edge
			g, err := plan.Components("us-east-1", func(ctx *pulumi.Context) (err error) {
				edge, err = security.NewEdge(ctx, "edge", &tc.args)
				return err
			})
			require.NoError(t, err)
			var got []string
			for _, r := range g.Resources {
				if r.Custom {
					got = append(got, r.Key())
				}
			}
			assert.Equal(t, tc.want, got)
			assert.Equal(t, tc.args.WebACL != nil, edge.HasWebACL)
			for _, a := range g.OfType("aws:wafv2/webAclAssociation:WebAclAssociation") {
				acl := g.OfType("aws:wafv2/webAcl:WebAcl")[0]
				assert.Equal(t, testALB, a.Inputs["resourceArn"])
				assert.Equal(t, acl.Outputs["arn"], a.Inputs["webAclArn"], "the association attaches the edge's own web ACL")
			}
			for _, p := range g.OfType("aws:shield/protection:Protection") {
				assert.Equal(t, testALB, p.Inputs["resourceArn"])
			}
		})
	}
}

// TestAMovedWebACLKeepsItsNameAndIsAliased: a stack whose web ACL was made
// under another parent keeps it: the same name (its log group's name is made
// of it) and an alias to the old parent that its children inherit.
func TestAMovedWebACLKeepsItsNameAndIsAliased(t *testing.T) {
	g, err := plan.Components("us-east-1", func(ctx *pulumi.Context) error {
		old := &struct{ pulumi.ResourceState }{}
		if err := ctx.RegisterComponentResource("webstack:security:Security", "security", old); err != nil {
			return err
		}
		_, err := security.NewEdge(ctx, "edge", &security.EdgeArgs{
			ResourceArn: pulumi.String(testALB),
			WebACL:      &security.WebACLArgs{Name: "security-waf", Aliases: []pulumi.Alias{{Parent: old}}},
		})
		return err
	})
	require.NoError(t, err)
	for _, r := range g.Resources {
		if r.Parent == "aws:wafv2/webAcl:WebAcl::security-waf" || r.Key() == "aws:wafv2/webAcl:WebAcl::security-waf" {
			require.Len(t, r.Aliases, 1, r.Key())
			assert.Contains(t, r.Aliases[0], "webstack:security:Security$aws:wafv2/webAcl:WebAcl", r.Key())
			assert.NotContains(t, r.URN, "webstack:security:Security$", r.Key())
		}
	}
	require.Len(t, g.OfType("aws:cloudwatch/logGroup:LogGroup"), 1)
	assert.Contains(t, g.OfType("aws:cloudwatch/logGroup:LogGroup")[0].Inputs["name"], "-security-waf", "the log group's name is unchanged")
}

func TestEdgeNeedsItsEntryPoint(t *testing.T) {
	_, err := plan.Components("us-east-1", func(ctx *pulumi.Context) error {
		_, err := security.NewEdge(ctx, "edge", &security.EdgeArgs{})
		return err
	})
	assert.ErrorContains(t, err, "ResourceArn is required")
}

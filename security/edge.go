package security

import (
	"fmt"

	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/shield"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/wafv2"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// EdgeProtectionArgs configures NewEdgeProtection.
type EdgeProtectionArgs struct {
	// ResourceArn is the entry point: the public ALB (ha) or the web Elastic
	// IP's eip-allocation ARN (single). Required.
	ResourceArn pulumi.StringInput
	// WebACLArn, when set, associates that AWS WAF web ACL with ResourceArn
	// (ALBs only). Defaults to nil: no association.
	WebACLArn pulumi.StringInput
	// ShieldAdvanced creates a Shield Advanced protection for ResourceArn. It
	// needs an active Shield Advanced subscription, which this program never
	// creates (a one-year commitment). Defaults to false: Shield Standard only.
	ShieldAdvanced bool
}

// EdgeProtection attaches the edge controls to the entry point once compute
// has created it.
type EdgeProtection struct {
	pulumi.ResourceState
}

// NewEdgeProtection associates the web ACL and the Shield protection.
func NewEdgeProtection(ctx *pulumi.Context, name string, args *EdgeProtectionArgs, opts ...pulumi.ResourceOption) (*EdgeProtection, error) {
	c := &EdgeProtection{}
	if err := ctx.RegisterComponentResource("webstack:security:EdgeProtection", name, c, opts...); err != nil {
		return nil, err
	}
	if args.WebACLArn != nil {
		if _, err := wafv2.NewWebAclAssociation(ctx, name+"-waf", &wafv2.WebAclAssociationArgs{
			ResourceArn: args.ResourceArn,
			WebAclArn:   args.WebACLArn,
		}, pulumi.Parent(c)); err != nil {
			return nil, fmt.Errorf("security: web ACL association: %w", err)
		}
	}
	if args.ShieldAdvanced {
		if _, err := shield.NewProtection(ctx, name+"-shield", &shield.ProtectionArgs{
			Name:        pulumi.String(name + "-shield"),
			ResourceArn: args.ResourceArn,
			Tags:        pulumi.StringMap{"Name": pulumi.String(name + "-shield")},
		}, pulumi.Parent(c)); err != nil {
			return nil, fmt.Errorf("security: shield protection: %w", err)
		}
	}
	if err := ctx.RegisterResourceOutputs(c, pulumi.Map{}); err != nil {
		return nil, err
	}
	return c, nil
}

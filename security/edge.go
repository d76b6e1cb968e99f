package security

import (
	"fmt"

	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/shield"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/wafv2"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// EdgeArgs configures NewEdge.
type EdgeArgs struct {
	// ResourceArn is the entry point: the public ALB (ha topology) or the
	// web Elastic IP's eip-allocation ARN (single topology). Required.
	ResourceArn pulumi.StringInput
	// WebACL creates an AWS WAF web ACL and associates it with ResourceArn
	// (ALBs only: AWS WAF cannot attach to an EC2 instance or an Elastic
	// IP, which is why the single topology's web tier carries its own WAF).
	// Defaults to nil: no web ACL.
	WebACL *WebACLArgs
	// ShieldAdvanced creates a Shield Advanced protection for ResourceArn. It
	// needs an active Shield Advanced subscription, which this program never
	// creates (a one-year commitment). Defaults to false: Shield Standard only.
	ShieldAdvanced bool
}

// Edge is what stands in front of the entry point: the AWS WAF web ACL,
// its association, and Shield Advanced. It is made after compute, which
// makes the entry point.
type Edge struct {
	pulumi.ResourceState

	// WebACLArn and WebACLName are set with a WebACL; CloudWatch dimensions
	// the web ACL's metrics by its name.
	WebACLArn, WebACLName pulumi.StringOutput
	HasWebACL             bool
}

// NewEdge creates the edge controls. The component keeps the type token
// it had when it only attached them (webstack:security:EdgeProtection): a
// component's type is part of every child's URN.
func NewEdge(ctx *pulumi.Context, name string, args *EdgeArgs, opts ...pulumi.ResourceOption) (*Edge, error) {
	c := &Edge{}
	if err := ctx.RegisterComponentResource("webstack:security:EdgeProtection", name, c, opts...); err != nil {
		return nil, err
	}
	if args.ResourceArn == nil {
		return nil, fmt.Errorf("security: edge: ResourceArn is required")
	}
	outs := pulumi.Map{}
	if args.WebACL != nil {
		acl, err := newWebACL(ctx, c, name+"-acl", args.WebACL)
		if err != nil {
			return nil, err
		}
		c.WebACLArn, c.WebACLName, c.HasWebACL = acl.Arn, acl.Name, true
		outs["webAclArn"] = acl.Arn
		if _, err := wafv2.NewWebAclAssociation(ctx, name+"-waf", &wafv2.WebAclAssociationArgs{
			ResourceArn: args.ResourceArn,
			WebAclArn:   acl.Arn,
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
	if err := ctx.RegisterResourceOutputs(c, outs); err != nil {
		return nil, err
	}
	return c, nil
}

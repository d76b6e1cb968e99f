// Package bucket provides a private S3 bucket with the controls every bucket
// of the stack needs: public access blocked, owner-enforced objects,
// server-side encryption, and a policy that refuses plain-HTTP access.
package bucket

import (
	"fmt"

	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/s3"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// PrivateArgs configures NewPrivate.
type PrivateArgs struct {
	// Versioning keeps every object version. Defaults to false.
	Versioning bool
	// ExpireDays deletes objects (and noncurrent versions) after that many days. Defaults to 0: never.
	ExpireDays int
	// ForceDestroy deletes the bucket with whatever it still holds when the
	// stack is destroyed; for buckets of rebuildable content only. Defaults
	// to false: a bucket with objects refuses deletion.
	ForceDestroy bool
	// Statements returns extra bucket policy statements (for example a log
	// delivery grant), given the bucket's ARN. Defaults to none.
	Statements func(arn pulumi.StringOutput) pulumi.Array
}

// Private is a private, encrypted, TLS-only bucket.
type Private struct {
	pulumi.ResourceState

	// Name (the bucket's id) and Arn.
	Name, Arn pulumi.StringOutput
	// Policy is the bucket policy. An AWS service that delivers into the
	// bucket under a grant in Statements (ELB access logs) checks that
	// grant when it is configured, so whatever configures it must
	// DependsOn Policy.
	Policy *s3.BucketPolicy
}

// NewPrivate creates the bucket and its controls.
func NewPrivate(ctx *pulumi.Context, name string, args *PrivateArgs, opts ...pulumi.ResourceOption) (*Private, error) {
	c := &Private{}
	if err := ctx.RegisterComponentResource("webstack:storage:PrivateBucket", name, c, opts...); err != nil {
		return nil, err
	}
	if args == nil {
		args = &PrivateArgs{}
	}
	parent := pulumi.Parent(c)
	b, err := s3.NewBucketV2(ctx, name, &s3.BucketV2Args{
		ForceDestroy: pulumi.Bool(args.ForceDestroy),
		Tags:         pulumi.StringMap{"Name": pulumi.String(name)},
	}, parent)
	if err != nil {
		return nil, fmt.Errorf("bucket %s: %w", name, err)
	}
	c.Name, c.Arn = b.ID().ToStringOutput(), b.Arn

	if _, err := s3.NewBucketPublicAccessBlock(ctx, name, &s3.BucketPublicAccessBlockArgs{
		Bucket:                b.ID(),
		BlockPublicAcls:       pulumi.Bool(true),
		BlockPublicPolicy:     pulumi.Bool(true),
		IgnorePublicAcls:      pulumi.Bool(true),
		RestrictPublicBuckets: pulumi.Bool(true),
	}, parent); err != nil {
		return nil, fmt.Errorf("bucket %s public access block: %w", name, err)
	}
	if _, err := s3.NewBucketOwnershipControls(ctx, name, &s3.BucketOwnershipControlsArgs{
		Bucket: b.ID(),
		Rule:   &s3.BucketOwnershipControlsRuleArgs{ObjectOwnership: pulumi.String("BucketOwnerEnforced")},
	}, parent); err != nil {
		return nil, fmt.Errorf("bucket %s ownership: %w", name, err)
	}
	// SSE-S3: the one server-side encryption every AWS log deliverer supports.
	if _, err := s3.NewBucketServerSideEncryptionConfigurationV2(ctx, name, &s3.BucketServerSideEncryptionConfigurationV2Args{
		Bucket: b.ID(),
		Rules: s3.BucketServerSideEncryptionConfigurationV2RuleArray{
			s3.BucketServerSideEncryptionConfigurationV2RuleArgs{
				ApplyServerSideEncryptionByDefault: &s3.BucketServerSideEncryptionConfigurationV2RuleApplyServerSideEncryptionByDefaultArgs{
					SseAlgorithm: pulumi.String("AES256"),
				},
			},
		},
	}, parent); err != nil {
		return nil, fmt.Errorf("bucket %s encryption: %w", name, err)
	}
	if args.Versioning {
		if _, err := s3.NewBucketVersioningV2(ctx, name, &s3.BucketVersioningV2Args{
			Bucket:                  b.ID(),
			VersioningConfiguration: &s3.BucketVersioningV2VersioningConfigurationArgs{Status: pulumi.String("Enabled")},
		}, parent); err != nil {
			return nil, fmt.Errorf("bucket %s versioning: %w", name, err)
		}
	}
	if args.ExpireDays > 0 {
		if _, err := s3.NewBucketLifecycleConfigurationV2(ctx, name, &s3.BucketLifecycleConfigurationV2Args{
			Bucket: b.ID(),
			Rules: s3.BucketLifecycleConfigurationV2RuleArray{
				s3.BucketLifecycleConfigurationV2RuleArgs{
					Id:         pulumi.String("expire"),
					Status:     pulumi.String("Enabled"),
					Filter:     &s3.BucketLifecycleConfigurationV2RuleFilterArgs{Prefix: pulumi.String("")},
					Expiration: &s3.BucketLifecycleConfigurationV2RuleExpirationArgs{Days: pulumi.Int(args.ExpireDays)},
					NoncurrentVersionExpiration: &s3.BucketLifecycleConfigurationV2RuleNoncurrentVersionExpirationArgs{
						NoncurrentDays: pulumi.Int(args.ExpireDays),
					},
				},
			},
		}, parent); err != nil {
			return nil, fmt.Errorf("bucket %s lifecycle: %w", name, err)
		}
	}

	statements := pulumi.Array{pulumi.Map{
		"Sid":       pulumi.String("DenyInsecureTransport"),
		"Effect":    pulumi.String("Deny"),
		"Principal": pulumi.String("*"),
		"Action":    pulumi.String("s3:*"),
		"Resource":  pulumi.StringArray{b.Arn, pulumi.Sprintf("%s/*", b.Arn)},
		"Condition": pulumi.Map{"Bool": pulumi.Map{"aws:SecureTransport": pulumi.String("false")}},
	}}
	if args.Statements != nil {
		statements = append(statements, args.Statements(b.Arn)...)
	}
	if c.Policy, err = s3.NewBucketPolicy(ctx, name, &s3.BucketPolicyArgs{
		Bucket: b.ID(),
		Policy: pulumi.JSONMarshal(pulumi.Map{"Version": pulumi.String("2012-10-17"), "Statement": statements}),
	}, parent); err != nil {
		return nil, fmt.Errorf("bucket %s policy: %w", name, err)
	}
	if err := ctx.RegisterResourceOutputs(c, pulumi.Map{"name": c.Name, "arn": c.Arn}); err != nil {
		return nil, err
	}
	return c, nil
}

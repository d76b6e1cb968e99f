package compute

import (
	"fmt"
	"strings"

	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/iam"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/s3"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"webstack/internal/bucket"
	"webstack/internal/iampolicy"
)

// ReleaseArgs configures NewRelease.
type ReleaseArgs struct {
	// ArtifactPath is the linux/arm64 build to upload. Required.
	ArtifactPath string
	// SHA256 is the build's hex sha256; it is in the object key, so a new
	// build is a new object and a new launch template version. Required.
	SHA256 string
	// Key is the object key (artifact.Artifact.Key); it must lie under
	// ReleasePrefix. Required.
	Key string
	// Readers may download this release and nothing else from the bucket. Required.
	Readers []Reader
}

// Reader is a tier role that downloads the release.
type Reader struct {
	Tier string
	Role *iam.Role
}

// ReleasePrefix is where builds live in the artefact bucket; readers may
// fetch any object under it, so that an instance booted from an older
// launch template version (an instance refresh that rolls back) still
// fetches its own build.
const ReleasePrefix = "conduit/"

// Release is one build, uploaded to the stack's artefact bucket.
type Release struct {
	pulumi.ResourceState

	Bucket pulumi.StringOutput
	Key    string
	SHA256 string

	grants map[string]pulumi.Resource
}

// Grant is the read grant of tier's role: an instance of the tier must not
// boot before it exists.
func (r *Release) Grant(tier string) pulumi.Resource { return r.grants[tier] }

// NewRelease creates the stack's private, versioned artefact bucket (the
// same bucket across releases), uploads the build under its sha256, and
// lets each tier role read the releases in that bucket, nothing else.
func NewRelease(ctx *pulumi.Context, name string, args *ReleaseArgs, opts ...pulumi.ResourceOption) (*Release, error) {
	c := &Release{Key: args.Key, SHA256: args.SHA256, grants: map[string]pulumi.Resource{}}
	if err := ctx.RegisterComponentResource("webstack:compute:Release", name, c, opts...); err != nil {
		return nil, err
	}
	if args.ArtifactPath == "" || len(args.SHA256) != 64 || !strings.HasPrefix(args.Key, ReleasePrefix) || len(args.Readers) == 0 {
		return nil, fmt.Errorf("compute: release needs ArtifactPath, SHA256, a Key under %s and Readers", ReleasePrefix)
	}
	// Retained releases would keep the bucket from being deleted with the
	// stack: it is emptied on delete (every object is a rebuildable build).
	b, err := bucket.NewPrivate(ctx, name+"-artifacts", &bucket.PrivateArgs{Versioning: true, ForceDestroy: true}, pulumi.Parent(c))
	if err != nil {
		return nil, err
	}
	obj, err := s3.NewBucketObjectv2(ctx, name+"-conduit", &s3.BucketObjectv2Args{
		Bucket:               b.Name,
		Key:                  pulumi.String(args.Key),
		Source:               pulumi.NewFileAsset(args.ArtifactPath),
		ContentType:          pulumi.String("application/octet-stream"),
		ServerSideEncryption: pulumi.String("AES256"),
		ChecksumAlgorithm:    pulumi.String("SHA256"),
		Metadata:             pulumi.StringMap{"sha256": pulumi.String(args.SHA256)},
		Tags:                 pulumi.StringMap{"Name": pulumi.String(name + "-conduit")},
	},
		pulumi.Parent(c),
		// A new build is a new key, so the object is replaced; the old one
		// stays in the bucket for the launch template versions that still
		// name it (rollback, instance refresh to an older version).
		pulumi.RetainOnDelete(true))
	if err != nil {
		return nil, fmt.Errorf("compute: upload release: %w", err)
	}
	for _, r := range args.Readers {
		tier := r.Tier
		grant, err := iam.NewRolePolicy(ctx, name+"-"+tier+"-read", &iam.RolePolicyArgs{
			Role: r.Role.ID(),
			Policy: iampolicy.Document(iampolicy.Allow{
				Sid:       "ReadReleases",
				Actions:   []string{"s3:GetObject"},
				Resources: pulumi.StringArray{pulumi.Sprintf("%s/%s*", b.Arn, ReleasePrefix)},
			}),
		}, pulumi.Parent(c))
		if err != nil {
			return nil, fmt.Errorf("compute: %s release grant: %w", tier, err)
		}
		c.grants[tier] = grant
	}
	c.Bucket = obj.Bucket
	if err := ctx.RegisterResourceOutputs(c, pulumi.Map{"bucket": c.Bucket, "key": pulumi.String(c.Key), "sha256": pulumi.String(c.SHA256)}); err != nil {
		return nil, err
	}
	return c, nil
}

package security

import (
	"fmt"

	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/iam"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/secretsmanager"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"webstack/internal/iampolicy"
)

// SecretsArgs configures NewSecrets.
type SecretsArgs struct {
	// JWTSecret is the API's token-signing secret, from `pulumi config set
	// --secret jwtSecret`: a secret output. Required.
	JWTSecret pulumi.StringOutput
	// DatabaseSecretArn is DocumentDB's managed master user secret. Required.
	DatabaseSecretArn pulumi.StringInput
	// APIRole is the only role that may read the secrets. Required.
	APIRole *iam.Role
	// RecoveryWindowDays keeps a deleted secret recoverable. Defaults to 7.
	RecoveryWindowDays int
}

// Secrets holds the api tier's secrets and its read grant.
type Secrets struct {
	pulumi.ResourceState

	// JWTSecretArn is what the api is told; never the value.
	JWTSecretArn pulumi.StringOutput
	// Grant is the api role's read grant: the api must not boot before it.
	Grant pulumi.Resource
}

// NewSecrets stores the JWT secret in Secrets Manager and lets the api role,
// and only it, read that secret and the database's.
func NewSecrets(ctx *pulumi.Context, name string, args *SecretsArgs, opts ...pulumi.ResourceOption) (*Secrets, error) {
	c := &Secrets{}
	if err := ctx.RegisterComponentResource("webstack:security:Secrets", name, c, opts...); err != nil {
		return nil, err
	}
	if args.JWTSecret == (pulumi.StringOutput{}) || args.DatabaseSecretArn == nil || args.APIRole == nil {
		return nil, fmt.Errorf("security: secrets need JWTSecret, DatabaseSecretArn and APIRole")
	}
	window := args.RecoveryWindowDays
	if window == 0 {
		window = 7
	}
	secret, err := secretsmanager.NewSecret(ctx, name+"-jwt", &secretsmanager.SecretArgs{
		NamePrefix:           pulumi.Sprintf("webstack/%s/jwt-", ctx.Stack()),
		Description:          pulumi.String("Signs the Conduit API's tokens; read by the api tier at start"),
		RecoveryWindowInDays: pulumi.Int(window),
		Tags:                 pulumi.StringMap{"Name": pulumi.String(name + "-jwt")},
	}, pulumi.Parent(c))
	if err != nil {
		return nil, fmt.Errorf("security: jwt secret: %w", err)
	}
	if _, err := secretsmanager.NewSecretVersion(ctx, name+"-jwt", &secretsmanager.SecretVersionArgs{
		SecretId:     secret.ID(),
		SecretString: pulumi.ToSecret(args.JWTSecret).(pulumi.StringOutput),
	}, pulumi.Parent(secret)); err != nil {
		return nil, fmt.Errorf("security: jwt secret value: %w", err)
	}
	grant, err := iam.NewRolePolicy(ctx, name+"-api-read", &iam.RolePolicyArgs{
		Role: args.APIRole.ID(),
		Policy: iampolicy.Document(iampolicy.Allow{
			Sid:       "ReadAppSecrets",
			Actions:   []string{"secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"},
			Resources: pulumi.StringArray{secret.Arn, args.DatabaseSecretArn},
		}),
	}, pulumi.Parent(c))
	if err != nil {
		return nil, fmt.Errorf("security: api secret grant: %w", err)
	}
	c.JWTSecretArn, c.Grant = secret.Arn, grant
	if err := ctx.RegisterResourceOutputs(c, pulumi.Map{"jwtSecretArn": c.JWTSecretArn}); err != nil {
		return nil, err
	}
	return c, nil
}

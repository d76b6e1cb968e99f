// Package secrets reads the app's secrets from AWS Secrets Manager: the JWT
// signing key (and its previous version while a rotation's grace lasts),
// the DocumentDB credentials that DocumentDB itself manages and rotates,
// and dev's web certificate. Nothing secret is ever passed in user
// data or the environment; only the secrets' ARNs are.
package secrets

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
)

// Value is secret material; it never prints or logs.
type Value []byte

// LogValue implements slog.LogValuer.
func (Value) LogValue() slog.Value { return slog.StringValue("[redacted]") }

// String implements fmt.Stringer.
func (Value) String() string { return "[redacted]" }

// MarshalJSON implements json.Marshaler: encoders see no material either.
func (Value) MarshalJSON() ([]byte, error) { return []byte(`"[redacted]"`), nil }

// GoString implements fmt.GoStringer, for %#v.
func (Value) GoString() string { return "[redacted]" }

// API is the part of the Secrets Manager client this package uses.
type API interface {
	GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, opts ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error)
}

// Client reads secrets.
type Client struct{ api API }

// NewClient wraps a Secrets Manager client (or a stand-in).
func NewClient(api API) *Client { return &Client{api: api} }

// New builds a client from the default AWS configuration. On EC2 the region
// comes from the instance metadata (IMDSv2) and the credentials from the
// instance role; AWS_REGION and AWS_ENDPOINT_URL_SECRETS_MANAGER override.
func New(ctx context.Context) (*Client, error) {
	cfg, err := awsconfig.LoadDefaultConfig(ctx, awsconfig.WithEC2IMDSRegion())
	if err != nil {
		return nil, fmt.Errorf("load AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		return nil, fmt.Errorf("AWS region unknown: not on EC2 and AWS_REGION is not set")
	}
	return NewClient(secretsmanager.NewFromConfig(cfg)), nil
}

// Version stages of a secret: a rotation writes the new value as
// AWSPENDING, sets it in the database, then promotes it to AWSCURRENT.
const (
	Current  = "AWSCURRENT"
	Pending  = "AWSPENDING"
	Previous = "AWSPREVIOUS"
)

// Version is a secret's value at a stage, and when that version was made.
type Version struct {
	Value   Value
	Created time.Time
}

// GetVersion returns the secret arn at a version stage with its creation
// time: when a new value was put, the old one became AWSPREVIOUS.
func (c *Client) GetVersion(ctx context.Context, arn, stage string) (Version, error) {
	out, err := c.api.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(arn), VersionStage: aws.String(stage)})
	if err != nil {
		return Version{}, fmt.Errorf("read secret %s (%s): %w", arn, stage, err)
	}
	if out.SecretString == nil {
		return Version{}, fmt.Errorf("read secret %s: it has no string value", arn)
	}
	v := Version{Value: Value(*out.SecretString)}
	if out.CreatedDate != nil {
		v.Created = *out.CreatedDate
	}
	return v, nil
}

// IsNotFound reports a stage the secret does not have (AWSPREVIOUS before
// the first rotation).
func IsNotFound(err error) bool {
	var nf *types.ResourceNotFoundException
	return errors.As(err, &nf)
}

// Get returns the current string value of the secret arn.
func (c *Client) Get(ctx context.Context, arn string) (Value, error) {
	return c.GetStage(ctx, arn, Current)
}

// GetStage returns the string value of the secret arn at a version stage.
func (c *Client) GetStage(ctx context.Context, arn, stage string) (Value, error) {
	out, err := c.api.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(arn), VersionStage: aws.String(stage)})
	if err != nil {
		return nil, fmt.Errorf("read secret %s (%s): %w", arn, stage, err)
	}
	if out.SecretString == nil {
		return nil, fmt.Errorf("read secret %s: it has no string value", arn)
	}
	return Value(*out.SecretString), nil
}

// Credentials are a database user and password.
type Credentials struct {
	Username string
	Password Value
}

// DatabaseCredentials reads a DocumentDB/RDS managed master user secret at
// a version stage: a JSON object {"username": …, "password": …}.
func (c *Client) DatabaseCredentials(ctx context.Context, arn, stage string) (Credentials, error) {
	v, err := c.GetStage(ctx, arn, stage)
	if err != nil {
		return Credentials{}, err
	}
	var doc struct {
		Username string `json:"username"`
		Password string `json:"password"`
	}
	if err := json.Unmarshal(v, &doc); err != nil {
		return Credentials{}, fmt.Errorf("secret %s is not a JSON username/password document", arn)
	}
	if doc.Username == "" || doc.Password == "" {
		return Credentials{}, fmt.Errorf("secret %s lacks username or password", arn)
	}
	return Credentials{Username: doc.Username, Password: Value(doc.Password)}, nil
}

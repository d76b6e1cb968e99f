package secrets_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"webstack/app/secrets"
	"webstack/app/secrets/secretstest"
)

const (
	jwtArn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:webstack-jwt-AbCdEf"
	dbArn  = "arn:aws:secretsmanager:us-east-1:123456789012:secret:rds!cluster-1-AbCdEf"
	badArn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:not-json-AbCdEf"
)

// fakeSecretsManager is the real SDK client against the stand-in.
func fakeSecretsManager(t *testing.T) *secrets.Client {
	t.Helper()
	fake, client := secretstest.Start(t)
	fake.Set(jwtArn, secrets.Current, "0123456789abcdef0123456789abcdef")
	fake.Set(dbArn, secrets.Current, `{"username":"conduit","password":"s3cr3t-p@ss"}`)
	fake.Set(badArn, secrets.Current, "plain text")
	return client
}

func TestGetReadsTheSecretString(t *testing.T) {
	c := fakeSecretsManager(t)
	v, err := c.Get(context.Background(), jwtArn)
	require.NoError(t, err)
	assert.Equal(t, "0123456789abcdef0123456789abcdef", string(v))
}

func TestDatabaseCredentials(t *testing.T) {
	c := fakeSecretsManager(t)
	cred, err := c.DatabaseCredentials(context.Background(), dbArn, secrets.Current)
	require.NoError(t, err)
	assert.Equal(t, "conduit", cred.Username)
	assert.Equal(t, "s3cr3t-p@ss", string(cred.Password))

	_, err = c.DatabaseCredentials(context.Background(), badArn, secrets.Current)
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "plain text", "errors never echo secret material")
}

func TestMissingSecretIsAnErrorNamingIt(t *testing.T) {
	_, err := fakeSecretsManager(t).Get(context.Background(), "arn:aws:secretsmanager:us-east-1:123456789012:secret:nope")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "secret:nope")
	assert.Contains(t, err.Error(), "ResourceNotFoundException")
}

func TestValuesNeverPrint(t *testing.T) {
	v := secrets.Value("hunter2-hunter2")
	var b strings.Builder
	slog.New(slog.NewJSONHandler(&b, nil)).Info("x", "secret", v, "cred", secrets.Credentials{Username: "u", Password: v})
	for _, s := range []string{b.String(), fmt.Sprint(v), fmt.Sprintf("%v %s %#v", v, v, v), fmt.Sprintf("%+v", secrets.Credentials{Password: v})} {
		assert.NotContains(t, s, "hunter2", s)
		assert.NotContains(t, s, base64.StdEncoding.EncodeToString(v)[:12], "not even encoded: %s", s)
	}
}

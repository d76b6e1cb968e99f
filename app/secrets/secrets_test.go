package secrets_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"webstack/app/secrets"
)

const (
	jwtArn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:webstack-jwt-AbCdEf"
	dbArn  = "arn:aws:secretsmanager:us-east-1:123456789012:secret:rds!cluster-1-AbCdEf"
	badArn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:not-json-AbCdEf"
)

// fakeSecretsManager speaks Secrets Manager's JSON protocol over HTTP, as
// the real service does, so the real SDK client is exercised.
func fakeSecretsManager(t *testing.T) *secrets.Client {
	t.Helper()
	values := map[string]string{
		jwtArn: "0123456789abcdef0123456789abcdef",
		dbArn:  `{"username":"conduit","password":"s3cr3t-p@ss"}`,
		badArn: "plain text",
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		assert.Equal(t, "secretsmanager.GetSecretValue", r.Header.Get("X-Amz-Target"))
		assert.Contains(t, r.Header.Get("Authorization"), "AWS4-HMAC-SHA256", "requests are signed")
		var in struct{ SecretId string }
		require.NoError(t, json.NewDecoder(r.Body).Decode(&in))
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		v, ok := values[in.SecretId]
		if !ok {
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprintf(w, `{"__type":"ResourceNotFoundException","message":"Secrets Manager can't find the specified secret."}`)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"ARN": in.SecretId, "Name": "n", "SecretString": v, "VersionId": "v1"})
	}))
	t.Cleanup(srv.Close)
	api := secretsmanager.NewFromConfig(aws.Config{
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "secret", ""),
		BaseEndpoint: aws.String(srv.URL),
	})
	return secrets.NewClient(api)
}

func TestGetReadsTheSecretString(t *testing.T) {
	c := fakeSecretsManager(t)
	v, err := c.Get(context.Background(), jwtArn)
	require.NoError(t, err)
	assert.Equal(t, "0123456789abcdef0123456789abcdef", string(v))
}

func TestDatabaseCredentials(t *testing.T) {
	c := fakeSecretsManager(t)
	cred, err := c.DatabaseCredentials(context.Background(), dbArn)
	require.NoError(t, err)
	assert.Equal(t, "conduit", cred.Username)
	assert.Equal(t, "s3cr3t-p@ss", string(cred.Password))

	_, err = c.DatabaseCredentials(context.Background(), badArn)
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

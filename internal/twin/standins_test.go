package twin

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	jwtARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:jwt-AbCdEf"
	dbARN  = "arn:aws:secretsmanager:us-east-1:123456789012:secret:rds!cluster-x-AbCdEf"
)

// world: a web instance whose role reads the release, an api instance
// whose role also reads both secrets — as the plan's grants say.
func testModel(t *testing.T) *Model {
	t.Helper()
	read := func(actions, resources string) Policy {
		var p Policy
		require.NoError(t, json.Unmarshal([]byte(`{"Statement":[{"Effect":"Allow","Action":`+actions+`,"Resource":`+resources+`}]}`), &p))
		return p
	}
	release := read(`["s3:GetObject"]`, `["arn:aws:s3:::bucket/conduit/*"]`)
	return &Model{
		Stack: "t",
		Hosts: []Host{
			{Name: "web", Tier: Web, Address: netip.MustParseAddr("10.0.16.10"), Role: "web-role", Boot: &Boot{}, Metadata: Metadata{TokensRequired: true, HopLimit: 1}},
			{Name: "api", Tier: API, Address: netip.MustParseAddr("10.0.0.10"), Role: "api-role", Boot: &Boot{}, Metadata: Metadata{TokensRequired: true, HopLimit: 1}},
		},
		AWS: World{Region: "us-east-1", JWTSecretARN: jwtARN,
			Release: Release{Bucket: "bucket", Key: "conduit/abc/conduit-linux-arm64"},
			DB:      Database{Username: "conduit", SecretARN: dbARN},
			Policies: map[string][]Policy{
				"web-role": {release},
				"api-role": {release, read(`"secretsmanager:GetSecretValue"`, `["`+jwtARN+`","`+dbARN+`"]`)},
			}},
	}
}

func TestIAMEvaluation(t *testing.T) {
	w := testModel(t).AWS
	deny := Policy{Statement: []Statement{{Effect: "Deny", Action: stringList{"secretsmanager:*"}, Resource: stringList{dbARN}}}}
	tests := []struct {
		name, role, action, resource string
		extra                        []Policy
		want                         bool
	}{
		{"the release, by the grant's wildcard", "web-role", "s3:GetObject", "arn:aws:s3:::bucket/conduit/abc/conduit-linux-arm64", nil, true},
		{"another bucket", "web-role", "s3:GetObject", "arn:aws:s3:::other/conduit/x", nil, false},
		{"outside the prefix", "web-role", "s3:GetObject", "arn:aws:s3:::bucket/secrets/x", nil, false},
		{"an action not granted", "web-role", "s3:PutObject", "arn:aws:s3:::bucket/conduit/x", nil, false},
		{"actions are case-insensitive", "api-role", "SecretsManager:GetSecretValue", jwtARN, nil, true},
		{"web may not read the secrets", "web-role", "secretsmanager:GetSecretValue", jwtARN, nil, false},
		{"an unknown role has nothing", "nobody", "s3:GetObject", "arn:aws:s3:::bucket/conduit/x", nil, false},
		{"an explicit deny wins", "api-role", "secretsmanager:GetSecretValue", dbARN, []Policy{deny}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := w
			w.Policies = map[string][]Policy{tt.role: append(append([]Policy(nil), w.Policies[tt.role]...), tt.extra...)}
			assert.Equal(t, tt.want, w.Allows(tt.role, tt.action, tt.resource))
		})
	}
}

// call sends r to h as if from instance address from.
func call(h http.Handler, r *http.Request, from string) *httptest.ResponseRecorder {
	r.RemoteAddr = from + ":40000"
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	return rec
}

func TestStandInsServeWhatThePlanGrantsToWhomItGrantsIt(t *testing.T) {
	m := testModel(t)
	p, err := newPKI()
	require.NoError(t, err)
	s, err := newStandIns(m, p, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	imds, endpoints := s.imds(), s.endpoints()

	// IMDSv2 only: without a token nothing; a token, then the role's keys.
	assert.Equal(t, http.StatusUnauthorized, call(imds, httptest.NewRequest("GET", "/latest/meta-data/iam/security-credentials/", nil), "10.0.0.10").Code)
	assert.Equal(t, http.StatusForbidden, call(imds, httptest.NewRequest("GET", "/latest/meta-data/placement/region", nil), "10.9.9.9").Code, "not an instance")
	keys := map[string]map[string]string{}
	for _, h := range m.Hosts {
		put := httptest.NewRequest("PUT", "/latest/api/token", nil)
		put.Header.Set("X-Aws-Ec2-Metadata-Token-Ttl-Seconds", "60")
		tok := call(imds, put, h.Address.String()).Body.String()
		get := func(path string) string {
			r := httptest.NewRequest("GET", path, nil)
			r.Header.Set("X-Aws-Ec2-Metadata-Token", tok)
			rec := call(imds, r, h.Address.String())
			require.Equal(t, http.StatusOK, rec.Code, path)
			return rec.Body.String()
		}
		role := get("/latest/meta-data/iam/security-credentials/")
		assert.Equal(t, h.Role, role, "each instance gets its own profile's role")
		var k map[string]string
		require.NoError(t, json.Unmarshal([]byte(get("/latest/meta-data/iam/security-credentials/"+role)), &k))
		keys[h.Name] = k
	}

	secret := func(who, arn string) (int, string) {
		r := httptest.NewRequest("POST", "https://secretsmanager.us-east-1.amazonaws.com/", strings.NewReader(`{"SecretId":"`+arn+`"}`))
		r.Host = "secretsmanager.us-east-1.amazonaws.com"
		r.Header.Set("X-Amz-Target", "secretsmanager.GetSecretValue")
		if k := keys[who]; k != nil {
			r.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential="+k["AccessKeyId"]+"/20261125/us-east-1/secretsmanager/aws4_request, SignedHeaders=host, Signature=x")
			r.Header.Set("X-Amz-Security-Token", k["Token"])
		}
		rec := call(endpoints, r, "10.0.0.10")
		return rec.Code, rec.Header().Get("X-Amzn-ErrorType")
	}
	code, _ := secret("api", jwtARN)
	assert.Equal(t, http.StatusOK, code)
	code, _ = secret("api", dbARN)
	assert.Equal(t, http.StatusOK, code)
	_, typ := secret("web", jwtARN)
	assert.Equal(t, "AccessDeniedException", typ, "the web role is not granted the secrets")
	_, typ = secret("nobody", jwtARN)
	assert.Equal(t, "UnrecognizedClientException", typ, "unsigned requests are refused")

	object := func(who, key string) int {
		r := httptest.NewRequest("GET", "https://bucket.s3.us-east-1.amazonaws.com/"+key, nil)
		r.Host = "bucket.s3.us-east-1.amazonaws.com"
		if k := keys[who]; k != nil {
			r.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential="+k["AccessKeyId"]+"/20261125/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=x")
			r.Header.Set("X-Amz-Security-Token", k["Token"])
		}
		return call(endpoints, r, "10.0.16.10").Code
	}
	dir := t.TempDir()
	m.AWS.Release.Path = filepath.Join(dir, "conduit")
	require.NoError(t, os.WriteFile(m.AWS.Release.Path, []byte("build"), 0o644))
	assert.Equal(t, http.StatusOK, object("web", m.AWS.Release.Key))
	assert.Equal(t, http.StatusNotFound, object("web", "conduit/other"), "granted prefix, no such key")
	assert.Equal(t, http.StatusForbidden, object("nobody", m.AWS.Release.Key))

	r := httptest.NewRequest("GET", "https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem", nil)
	r.Host = "truststore.pki.rds.amazonaws.com"
	body, _ := io.ReadAll(call(endpoints, r, "10.0.0.10").Body)
	assert.Equal(t, string(p.CAPEM), string(body), "the CA bundle is the twin's CA, which signs the cluster's certificate")
}

func TestTheTwinRefusesUserDataItWouldNotRun(t *testing.T) {
	_, err := parseCloudConfig("#cloud-config\nwrite_files:\n  - path: /x\n    content: y\nruncmd:\n  - [true]\n")
	require.NoError(t, err)
	_, err = parseCloudConfig("#cloud-config\npackages: [nginx]\nruncmd:\n  - [true]\n")
	assert.ErrorContains(t, err, "packages", "a module the twin would skip is an error, not a silent pass")
	_, err = parseCloudConfig("#!/bin/bash\necho hi\n")
	assert.Error(t, err)
}

func TestEnvironmentFilesAsSystemdReadsThem(t *testing.T) {
	p := filepath.Join(t.TempDir(), "env")
	require.NoError(t, os.WriteFile(p, []byte("# comment\n; also\nA=1\nB=\"two words\"\n\nC='x'\n"), 0o644))
	got, err := readEnvFile(p)
	require.NoError(t, err)
	assert.Equal(t, []string{"A=1", "B=two words", "C=x"}, got)
	require.NoError(t, os.WriteFile(p, []byte("not a pair\n"), 0o644))
	_, err = readEnvFile(p)
	assert.Error(t, err)
}

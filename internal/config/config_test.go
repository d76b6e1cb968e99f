package config

import (
	"context"

	"fmt"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi/internals"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
)

// valid is a complete ha configuration that loads without error.
func valid() MapSource {
	return MapSource{"certificateArn": "arn:aws:acm:us-east-1:123456789012:certificate/abc-123", "jwtSecret": strings.Repeat("s", 32)}
}

func TestDefaultsLoad(t *testing.T) {
	c, err := Load(valid(), "webstack", "prod", "us-east-1")
	require.NoError(t, err)
	assert.Equal(t, HA, c.Topology)
	assert.Equal(t, "10.0.0.0/16", c.Network.CIDR)
	assert.Equal(t, 2, c.Network.AZCount)
	assert.Equal(t, 8080, c.Web.Port)
	assert.Equal(t, 8081, c.API.Port)
	assert.True(t, c.HTTPS())
}

// validHA is valid with overrides.
func validHA(over map[string]string) map[string]string {
	m := map[string]string(valid())
	for k, v := range over {
		m[k] = v
	}
	return m
}

// single is a dev-shaped configuration: serving HTTPS from a secret.
func single() MapSource {
	return MapSource{"topology": "single", "webPort": "80", "dbInstanceCount": "1", "dbDeletionProtection": "false", "dbSkipFinalSnapshot": "true",
		"jwtSecret": strings.Repeat("s", 40), "webTlsSecretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:webstack/dev/tls-AbCdEf"}
}

func TestSingleTopologyLoads(t *testing.T) {
	c, err := Load(single(), "webstack", "dev", "us-east-1")
	require.NoError(t, err)
	assert.Equal(t, Single, c.Topology)
	assert.True(t, c.HTTPS())
}

// Plain HTTP on the dev web instance is an explicit, named opt-out, with
// the networks it is open to; HTTPS from a secret is the default path.
func TestDevServesHTTPSUnlessPlainHTTPIsChosenWithItsAudience(t *testing.T) {
	tests := []struct {
		name    string
		set     map[string]string
		wantKey string
		wantFix string
	}{
		{"neither", map[string]string{"webTlsSecretArn": ""}, "webTlsSecretArn", "allowHttp true"},
		{"allowHttp without CIDRs", map[string]string{"webTlsSecretArn": "", "allowHttp": "true"}, "httpIngressCidrs", "httpIngressCidrs[0]"},
		{"allowHttp with a bad CIDR", map[string]string{"webTlsSecretArn": "", "allowHttp": "true", "httpIngressCidrs": `["10.0.0.1/8"]`}, "httpIngressCidrs", "IPv4 CIDR"},
		{"not a secret ARN", map[string]string{"webTlsSecretArn": "arn:aws:acm:us-east-1:123456789012:certificate/x"}, "webTlsSecretArn", "arn:aws:secretsmanager:"},
		{"allowHttp with CIDRs", map[string]string{"webTlsSecretArn": "", "allowHttp": "true", "httpIngressCidrs": `["203.0.113.0/24"]`}, "", ""},
		{"a secret", nil, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := single()
			for k, v := range tt.set {
				src[k] = v
			}
			c, err := Load(src, "webstack", "dev", "us-east-1")
			if tt.wantKey == "" {
				require.NoError(t, err)
				assert.Equal(t, tt.set["allowHttp"] != "true", c.HTTPS())
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.wantKey)
			assert.Contains(t, err.Error(), tt.wantFix)
		})
	}
	src := valid()
	src["webTlsSecretArn"] = "arn:aws:secretsmanager:us-east-1:123456789012:secret:x-AbCdEf"
	_, err := Load(src, "webstack", "prod", "us-east-1")
	assert.ErrorContains(t, err, "webTlsSecretArn", "ha terminates TLS at the ALB")
}

func TestInvalidConfigNamesTheKeyAndTheFix(t *testing.T) {
	tests := []struct {
		name    string
		set     map[string]string
		region  string
		wantKey string
		wantFix string
	}{
		{"malformed CIDR", map[string]string{"vpcCidr": "10.0.0/16"}, "", "vpcCidr", "10.0.0.0/16"},
		{"CIDR too small", map[string]string{"vpcCidr": "10.0.0.0/24"}, "", "vpcCidr", "/16../20"},
		{"CIDR host bits", map[string]string{"vpcCidr": "10.0.1.0/16"}, "", "vpcCidr", "use 10.0.0.0/16"},
		{"public CIDR", map[string]string{"vpcCidr": "8.8.0.0/16"}, "", "vpcCidr", "private"},
		{"one AZ", map[string]string{"azCount": "1"}, "", "azCount", "at least 2"},
		{"one pinned AZ", map[string]string{"availabilityZones": `["us-east-1a"]`}, "", "availabilityZones", "at least 2"},
		{"AZ of another region", map[string]string{"availabilityZones": `["eu-west-1a","eu-west-1b"]`}, "", "availabilityZones", "us-east-1a"},
		{"zero web instances", map[string]string{"webMinSize": "0"}, "", "webMinSize", "at least 1"},
		{"zero DB instances", map[string]string{"dbInstanceCount": "0"}, "", "dbInstanceCount", "at least 1"},
		{"ha with one DB instance", map[string]string{"dbInstanceCount": "1"}, "", "dbInstanceCount", "at least 2"},
		{"ASG min above max", map[string]string{"apiMinSize": "5", "apiMaxSize": "3"}, "", "apiMaxSize", "apiMaxSize >= apiMinSize"},
		{"unknown NAT strategy", map[string]string{"natStrategy": "PerSubnet"}, "", "natStrategy", "'Single' or 'OnePerAz'"},
		{"unknown WAF mode", map[string]string{"wafMode": "monitor"}, "", "wafMode", "'block' or 'count'"},
		{"ha without certificate", map[string]string{"certificateArn": ""}, "", "certificateArn", "allowHttp true"},
		{"malformed certificate", map[string]string{"certificateArn": "arn:aws:iam::1:cert"}, "", "certificateArn", "arn:aws:acm:"},
		{"unknown topology", map[string]string{"topology": "cluster"}, "", "topology", "'single'"},
		{"x86 instance type", map[string]string{"webInstanceType": "t3.small"}, "", "webInstanceType", "t4g.small"},
		{"x86 GPU type with a g", map[string]string{"apiInstanceType": "g4dn.xlarge"}, "", "apiInstanceType", "Graviton"},
		{"x86 GPU type g5", map[string]string{"webInstanceType": "g5.xlarge"}, "", "webInstanceType", "Graviton"},
		{"x86 database class", map[string]string{"dbInstanceClass": "db.r5.large"}, "", "dbInstanceClass", "db.t4g.medium"},
		{"malformed AMI", map[string]string{"amiId": "ami-xyz"}, "", "amiId", "latest Amazon Linux 2023"},
		{"refresh terminates first", map[string]string{"maxHealthyPercentage": "100"}, "", "maxHealthyPercentage", "launches replacements before it terminates"},
		{"refresh band too wide", map[string]string{"minHealthyPercentage": "50", "maxHealthyPercentage": "200"}, "", "maxHealthyPercentage", "raise minHealthyPercentage"},
		{"not an integer", map[string]string{"webPort": "eighty"}, "", "webPort", "not an integer"},
		{"not a boolean", map[string]string{"allowHttp": "yes please"}, "", "allowHttp", "true or false"},
		{"bad retention", map[string]string{"flowLogRetentionDays": "10"}, "", "flowLogRetentionDays", "one of"},
		{"short backup retention", map[string]string{"dbBackupRetentionDays": "3"}, "", "dbBackupRetentionDays", "7..35"},
		{"bad backup window", map[string]string{"dbBackupWindow": "3am"}, "", "dbBackupWindow", "hh:mm-hh:mm"},
		{"bad maintenance window", map[string]string{"dbMaintenanceWindow": "sunday"}, "", "dbMaintenanceWindow", "sun:04:30"},
		{"unknown log export", map[string]string{"dbLogExports": `["slowlog"]`}, "", "dbLogExports", "'audit'"},
		{"ha without a final snapshot", map[string]string{"dbSkipFinalSnapshot": "true"}, "", "dbSkipFinalSnapshot", "set dbSkipFinalSnapshot false"},
		{"certificate of another region", map[string]string{"certificateArn": "arn:aws:acm:eu-west-1:123456789012:certificate/abc"}, "", "certificateArn", "is in eu-west-1, and this stack is in us-east-1"},
		{"same ports", map[string]string{"apiPort": "8080"}, "", "apiPort", "different ports"},
		{"single not on 80", map[string]string{"topology": "single", "dbInstanceCount": "1"}, "", "webPort", "webPort 80"},
		{"rate limit too low", map[string]string{"wafRateLimit": "10"}, "", "wafRateLimit", "100..2000000000"},
		{"bad desync mode", map[string]string{"desyncMitigationMode": "monitor"}, "", "desyncMitigationMode", "'strictest'"},
		{"no region", nil, "-", "aws:region", "pulumi config set aws:region"},
		{"no JWT secret", map[string]string{"jwtSecret": ""}, "", "jwtSecret", "pulumi config set --secret jwtSecret"},
		{"short JWT secret", map[string]string{"jwtSecret": "short"}, "", "jwtSecret", "at least 32"},
		{"empty artifact path", map[string]string{"artifactPath": ""}, "", "artifactPath", "make build"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := valid()
			for k, v := range tt.set {
				src[k] = v
			}
			region := "us-east-1"
			if tt.region == "-" {
				region = ""
			}
			_, err := Load(src, "webstack", "prod", region)
			require.Error(t, err, "Load(%v) accepted bad config", tt.set)
			assert.Contains(t, err.Error(), tt.wantKey)
			assert.Contains(t, err.Error(), tt.wantFix)
		})
	}
}

func TestGravitonTypesAreAccepted(t *testing.T) {
	for _, typ := range []string{"t4g.micro", "m7g.large", "c6gn.xlarge", "im4gn.large", "x2gd.medium", "g5g.xlarge", "a1.large", "r8g.medium"} {
		src := valid()
		src["webInstanceType"] = typ
		_, err := Load(src, "webstack", "prod", "us-east-1")
		assert.NoError(t, err, "webInstanceType %s", typ)
	}
}

// Every VPC size and AZ count the config accepts has a subnet layout awsx
// allocates without overlap (internal/netlayout mirrors awsx).
func TestAcceptedNetworksHaveAValidSubnetLayout(t *testing.T) {
	for _, cidr := range []string{"10.0.0.0/16", "10.0.0.0/20", "172.16.0.0/18"} {
		for azs := 2; azs <= 6; azs++ {
			src := valid()
			src["vpcCidr"], src["azCount"] = cidr, fmt.Sprint(azs)
			_, err := Load(src, "webstack", "prod", "us-east-1")
			assert.NoError(t, err, "%s with %d AZs", cidr, azs)
		}
	}
}

func TestSecretsNeverPrint(t *testing.T) {
	c, err := Load(valid(), "webstack", "prod", "us-east-1")
	require.NoError(t, err)
	for _, s := range []string{fmt.Sprint(c.JWTSecret), fmt.Sprintf("%v %+v %#v", c, c, c)} {
		assert.NotContains(t, s, strings.Repeat("s", 32))
	}
}

func TestAllProblemsAreReportedTogether(t *testing.T) {
	_, err := Load(MapSource{"azCount": "1", "wafMode": "x"}, "webstack", "prod", "us-east-1")
	require.Error(t, err)
	for _, key := range []string{"azCount", "wafMode", "certificateArn"} {
		assert.Contains(t, err.Error(), "webstack:"+key)
	}
}

// Pulumi.yaml's schema must describe exactly the keys Load reads, with the
// same types and defaults, so `pulumi config` and the program agree.
func TestPulumiYAMLSchemaMatchesKeys(t *testing.T) {
	data, err := os.ReadFile("../../Pulumi.yaml")
	require.NoError(t, err)
	var project struct {
		Name   string `yaml:"name"`
		Config map[string]struct {
			Type        string `yaml:"type"`
			Description string `yaml:"description"`
			Default     any    `yaml:"default"`
			Secret      bool   `yaml:"secret"`
		} `yaml:"config"`
	}
	require.NoError(t, yaml.Unmarshal(data, &project))
	assert.Equal(t, Namespace, project.Name)
	assert.Len(t, project.Config, len(Keys()))
	for _, k := range Keys() {
		got, ok := project.Config[k.Name]
		if !assert.True(t, ok, "Pulumi.yaml lacks %s", k.Name) {
			continue
		}
		assert.Equal(t, string(k.Kind), got.Type, k.Name)
		assert.NotEmpty(t, got.Description, k.Name)
		want := k.Default
		if list, ok := want.([]string); ok {
			anyList := []any{}
			for _, s := range list {
				anyList = append(anyList, s)
			}
			want = anyList
		}
		assert.Equal(t, want, got.Default, "default of %s", k.Name)
		assert.Equal(t, k.Secret, got.Secret, "secret flag of %s", k.Name)
	}
}

func TestStackFilesSetOnlyKnownKeys(t *testing.T) {
	known := map[string]bool{"aws:region": true}
	for _, k := range Keys() {
		known[Namespace+":"+k.Name] = true
	}
	for _, stack := range []string{"dev", "staging", "prod"} {
		data, err := os.ReadFile("../../Pulumi." + stack + ".yaml")
		require.NoError(t, err)
		var doc struct {
			Config map[string]any `yaml:"config"`
		}
		require.NoError(t, yaml.Unmarshal(data, &doc))
		for k := range doc.Config {
			assert.True(t, known[k] || strings.HasPrefix(k, "aws:"), "%s sets unknown key %s", stack, k)
		}
	}
}

// recordingSource fails the test when a secret key is read as a plain value.
type recordingSource struct {
	t       *testing.T
	m       MapSource
	secrets []string
}

func (r *recordingSource) Get(key string) (string, bool) {
	for _, k := range Keys() {
		if k.Name == key && k.Secret {
			r.t.Errorf("secret key %s read plain", key)
		}
	}
	return r.m.Get(key)
}

func (r *recordingSource) Secret(key string) (Secret, bool) {
	r.secrets = append(r.secrets, key)
	return r.m.Secret(key)
}

func TestSecretKeysAreReadAsSecretsAndStaySecret(t *testing.T) {
	src := &recordingSource{t: t, m: valid()}
	c, err := Load(src, "webstack", "prod", "us-east-1")
	require.NoError(t, err)
	var want []string
	for _, k := range Keys() {
		if k.Secret {
			want = append(want, k.Name)
		}
	}
	assert.Equal(t, want, src.secrets, "every secret key is read through Source.Secret")
	res, err := internals.UnsafeAwaitOutput(context.Background(), c.JWTSecret)
	require.NoError(t, err)
	assert.True(t, res.Secret, "the JWT secret is a secret output from the start")
	assert.Equal(t, strings.Repeat("s", 32), res.Value)
}

// The documented teardown of staging/prod starts by turning deletion
// protection off: the configuration accepts it, and warns.
func TestTeardownStepIsAcceptedWithAWarning(t *testing.T) {
	c, err := Load(MapSource(validHA(map[string]string{"dbDeletionProtection": "false"})), "webstack", "prod", "us-east-1")
	require.NoError(t, err)
	require.Len(t, c.Warnings, 1)
	assert.Contains(t, c.Warnings[0], "dbDeletionProtection is false")
	assert.Contains(t, c.Warnings[0], "final snapshot is kept")
	on, err := Load(MapSource(validHA(nil)), "webstack", "prod", "us-east-1")
	require.NoError(t, err)
	assert.Empty(t, on.Warnings)
}

// Every stack name the configuration accepts makes AWS names that every
// service accepts; the others are refused up front, by name, with a
// suggestion.
func TestStackNamesAWSRefusesAreRefusedUpFront(t *testing.T) {
	for _, tc := range []struct {
		stack string
		ok    bool
		hint  string
	}{
		{"dev", true, ""},
		{"eu-prod-2", true, ""},
		{"abcdefghij-klmnopq9r", true, ""}, // 20 characters
		{"eu.prod-2", false, `"eu-prod-2"`},
		{"Prod", false, `"prod"`},
		{"prod_2", false, `"prod-2"`},
		{"2prod", false, `"prod"`},
		{"prod--2", false, ""},
		{"prod-", false, ""},
		{"abcdefghij-klmnopq9rs", false, ""}, // 21
	} {
		t.Run(tc.stack, func(t *testing.T) {
			_, err := Load(MapSource(validHA(nil)), "webstack", tc.stack, "us-east-1")
			if tc.ok {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), "stack name \""+tc.stack+"\" is not supported")
			assert.Contains(t, err.Error(), tc.hint)
		})
	}
	_, err := Load(MapSource(validHA(nil)), "a-much-longer-project-name", "abcdefghij-klmnopq9r", "us-east-1")
	require.Error(t, err, "a long project name too")
	assert.Contains(t, err.Error(), "AWS Backup's vault names")
}

// A certificate or secret of another account is refused when the program
// learns the caller's account, before any resource.
func TestARNsOfAnotherAccountAreRefused(t *testing.T) {
	c, err := Load(MapSource(validHA(nil)), "webstack", "prod", "us-east-1")
	require.NoError(t, err)
	acct := c.Accounts()["certificateArn"]
	require.NotEmpty(t, acct)
	assert.NoError(t, c.CheckAccount(acct))
	err = c.CheckAccount("999999999999")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "certificateArn names account "+acct+", and this stack deploys to account 999999999999")
}

// Args docs give their default's value and name the key it comes from
// ("Defaults to 30 (the config table's logRetentionDays)"): the value must
// be the table's, or the doc lies.
func TestArgsDocsStateTheTablesDefaults(t *testing.T) {
	defaults := map[string]string{}
	for _, k := range Keys() {
		defaults[k.Name] = fmt.Sprint(k.Default)
	}
	doc := regexp.MustCompile(`(?s)Defaults? to (\S+)(?: and (\S+))?\s+(?://\s*)?\(the config\s+(?://\s*)?table's\s+(?://\s*)?([\w/]+)(?:\s+(?://\s*)?and\s+(?://\s*)?([\w/]+))?\)`)
	files, err := filepath.Glob("../../*/*.go")
	require.NoError(t, err)
	checked := 0
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		require.NoError(t, err)
		for _, m := range doc.FindAllStringSubmatch(string(src), -1) {
			values, groups := []string{m[1], m[2]}, []string{m[3], m[4]}
			byPosition := strings.Contains(m[3], "/")
			for g, keys := range groups {
				for j, key := range strings.Split(keys, "/") {
					if key == "" {
						continue
					}
					want, ok := defaults[key]
					if !assert.True(t, ok, "%s names no key %q", f, key) {
						continue
					}
					value := values[0]
					switch {
					case byPosition && values[1] != "":
						value = values[j]
					case values[1] != "":
						value = values[g]
					}
					assert.Equal(t, want, value, "%s: the default of %s", f, key)
					checked++
				}
			}
		}
	}
	assert.GreaterOrEqual(t, checked, 20, "the docs were found")
}

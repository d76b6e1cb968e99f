package main

// Rules a first `pulumi up` (and every later up, rollback, rotation and
// delete) depends on, which mocks alone never enforce: what AWS refuses,
// what the provider turns into a perpetual diff, and creation order. Each
// test names the rule; the source of the rule is in its comment.

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"webstack/internal/awsarn"
	"webstack/internal/offline"
	"webstack/internal/offline/cost"
	"webstack/internal/offline/plan"
	"webstack/internal/stack"
)

// An instance that boots before its grants exist fails its download or
// secret read; an api that boots before the database instances cannot
// connect.
func TestInstancesBootAfterTheirGrantsAndTheDatabase(t *testing.T) {
	for _, s := range allStacks {
		t.Run(s, func(t *testing.T) {
			g := planOf(t, s)
			booters := map[string]string{} // key → tier
			for _, r := range append(g.OfType("aws:ec2/instance:Instance"), g.OfType("aws:autoscaling/group:Group")...) {
				booters[r.Key()] = strings.TrimPrefix(r.Name, "app-")
			}
			require.Len(t, booters, 2)
			for key, tier := range booters {
				assert.True(t, g.Waits(key, "aws:iam/rolePolicy:RolePolicy::release-"+tier+"-read"), "%s waits for its release grant", key)
				if tier != "api" {
					continue
				}
				assert.True(t, g.Waits(key, "aws:iam/rolePolicy:RolePolicy::secrets-api-read"), "%s waits for its secret grant", key)
				for _, db := range g.OfType("aws:docdb/clusterInstance:ClusterInstance") {
					assert.True(t, g.Waits(key, db.Key()), "%s waits for %s", key, db.Name)
				}
			}
		})
	}
}

// The plan JSON carries each resource's dependencies and lifecycle
// options (make plan FORMAT=json).
func TestPlanShowsDependenciesAndLifecycleOptions(t *testing.T) {
	g := planOf(t, "prod")
	for _, r := range g.Resources {
		assert.NotNil(t, r.DependsOn, r.Key())
		assert.NotNil(t, r.Options, r.Key())
		for _, d := range r.DependsOn {
			_, ok := g.ByKey(d)
			assert.True(t, ok, "%s depends on %s, which is in the graph", r.Key(), d)
		}
	}
	lt, _ := g.ByKey("aws:ec2/launchTemplate:LaunchTemplate::app-web")
	assert.Contains(t, lt.DependsOn, "aws:iam/instanceProfile:InstanceProfile::security-web", "inputs' resources are dependencies")
	assert.Equal(t, []any{"masterPassword"}, g.OfType("aws:docdb/cluster:Cluster")[0].Options["additionalSecretOutputs"])
}

// `pulumi up` starts an instance refresh and returns; the post-deploy
// check waits for the latest refresh of each group and fails unless it
// succeeded (a refresh that AutoRollback undid leaves the stack's state
// saying the new version).
func TestPostDeployCheckFailsUnlessTheRefreshSucceeded(t *testing.T) {
	for _, tc := range []struct {
		statuses string // what describe-instance-refreshes answers, in turn
		ok       bool
		says     string
	}{
		{"Successful", true, "succeeded"},
		{"InProgress InProgress Successful", true, "succeeded"},
		{"None", true, "no instance refresh"},
		{"RollbackSuccessful", false, "ended RollbackSuccessful"},
		{"Failed", false, "ended Failed"},
		{"Cancelled", false, "ended Cancelled"},
	} {
		t.Run(tc.statuses, func(t *testing.T) {
			bin := t.TempDir()
			state := filepath.Join(bin, "calls")
			shim := func(name, body string) {
				require.NoError(t, os.WriteFile(filepath.Join(bin, name), []byte("#!/usr/bin/env bash\n"+body), 0o755))
			}
			shim("pulumi", `case "$3" in webAsgName) echo web-asg ;; apiAsgName) echo api-asg ;; esac`)
			// Each group walks the statuses; the reason is asked after a bad end.
			shim("aws", `if [[ "$*" == *StatusReason* ]]; then echo "alarm web-unhealthy-hosts fired"; exit 0; fi
group="$4"; n=$(grep -c "^$group$" "`+state+`" 2>/dev/null || true); echo "$group" >> "`+state+`"
read -ra st <<< "$STATUSES"; i=$(( n < ${#st[@]} ? n : ${#st[@]} - 1 )); echo "${st[$i]}"`)
			cmd := exec.Command("bash", "scripts/check-refresh.sh", "prod", "60")
			cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"), "STATUSES="+tc.statuses, "CHECK_REFRESH_INTERVAL=0")
			out, err := cmd.CombinedOutput()
			if tc.ok {
				assert.NoError(t, err, "%s", out)
			} else {
				assert.Error(t, err, "%s", out)
			}
			assert.Contains(t, string(out), tc.says)
			assert.Contains(t, string(out), "web-asg")
		})
	}
}

// planAs is planOf for a stack file under another stack name.
func planAs(t *testing.T, stackFile, stackName string, overrides ...string) *plan.Graph {
	t.Helper()
	cfg, err := plan.StackConfig(".", stackFile)
	require.NoError(t, err)
	cfg["webstack:jwtSecret"] = testJWTSecret
	cfg["webstack:artifactPath"] = testArtifact(t)
	if stackFile == "dev" {
		cfg["webstack:webTlsSecretArn"] = testWebTLSSecret
	} else {
		cfg["webstack:certificateArn"] = testCert
	}
	for _, kv := range overrides {
		k, v, _ := strings.Cut(kv, "=")
		cfg["webstack:"+k] = v
	}
	g, err := plan.Run("webstack", stackName, cfg, stack.Compose)
	require.NoError(t, err)
	return g
}

// nameRules are AWS's rules for the names the program sets itself (the
// others are Pulumi's auto-names, built from the program's own logical
// names): each service's documented characters and length.
var nameRules = []struct {
	typ, field string
	rule       *regexp.Regexp
}{
	{"aws:sns/topic:Topic", "name", regexp.MustCompile(`^[A-Za-z0-9_-]{1,256}$`)},
	{"aws:cloudwatch/dashboard:Dashboard", "dashboardName", regexp.MustCompile(`^[A-Za-z0-9_-]{1,255}$`)},
	{"aws:backup/vault:Vault", "name", regexp.MustCompile(`^[A-Za-z0-9_-]{2,50}$`)},
	{"aws:backup/plan:Plan", "name", regexp.MustCompile(`^[A-Za-z0-9_.-]{1,50}$`)},
	{"aws:backup/selection:Selection", "name", regexp.MustCompile(`^[A-Za-z0-9_.-]{1,50}$`)},
	{"aws:budgets/budget:Budget", "name", regexp.MustCompile(`^[^:\\]{1,100}$`)},
	{"aws:cloudwatch/metricAlarm:MetricAlarm", "name", regexp.MustCompile(`^[ -~]{1,255}$`)},
	{"aws:cloudwatch/logGroup:LogGroup", "name", regexp.MustCompile(`^[.\-_/#A-Za-z0-9]{1,512}$`)},
	{"aws:cloudwatch/queryDefinition:QueryDefinition", "name", regexp.MustCompile(`^[ -~]{1,255}$`)},
	{"aws:docdb/cluster:Cluster", "clusterIdentifier", regexp.MustCompile(`^[a-z](-?[a-z0-9]){0,62}$`)},
	{"aws:docdb/cluster:Cluster", "finalSnapshotIdentifier", regexp.MustCompile(`^[a-zA-Z](-?[a-zA-Z0-9]){0,254}$`)},
	{"aws:shield/protection:Protection", "name", regexp.MustCompile(`^[ a-zA-Z0-9_.-]{1,128}$`)},
}

// Every physical name the program sets satisfies its service's rule for
// the longest stack name the configuration accepts, in both topologies (the
// configuration refuses the others up front: internal/config).
func TestEveryPhysicalNameFitsItsServiceForTheLongestStackName(t *testing.T) {
	longest := "abcdefghij-klmnopq9r"
	for _, file := range []string{"dev", "prod"} {
		g := planAs(t, file, longest, "shieldAdvanced=true")
		checked := 0
		for _, nr := range nameRules {
			for _, r := range g.OfType(nr.typ) {
				name, _ := r.Inputs[nr.field].(string)
				require.NotEmpty(t, name, "%s has a %s", r.Key(), nr.field)
				assert.Regexp(t, nr.rule, name, "%s %s", r.Key(), nr.field)
				checked++
			}
		}
		assert.Greater(t, checked, 20, "%s: the rules met the names", file)
	}
}

// docs/deploy.md's teardown of staging/prod — deletion protection off, up,
// then destroy — runs unattended: nothing in the plan is protected, and
// every store AWS refuses to delete while it holds something is emptied
// by destroy itself (buckets, backup vaults), or keeps what it must under
// a name of its own (the cluster's final snapshot).
func TestTeardownAsDocumentedSucceedsUnattended(t *testing.T) {
	for _, s := range []string{"staging", "prod"} {
		t.Run(s, func(t *testing.T) {
			g := planOf(t, s, "dbDeletionProtection=false", "albDeletionProtection=false")
			for _, r := range g.Resources {
				assert.NotEqual(t, true, r.Options["protect"], "%s is protected", r.Key())
			}
			for _, c := range g.OfType("aws:docdb/cluster:Cluster") {
				assert.Equal(t, false, c.Inputs["deletionProtection"])
				assert.Equal(t, false, c.Inputs["skipFinalSnapshot"], "the data is kept as a final snapshot")
				assert.Equal(t, str(c.Inputs["clusterIdentifier"])+"-final", c.Inputs["finalSnapshotIdentifier"], "named after this cluster alone")
			}
			for _, lb := range g.OfType("aws:lb/loadBalancer:LoadBalancer") {
				assert.NotEqual(t, true, lb.Inputs["enableDeletionProtection"], lb.Key())
			}
			for _, b := range g.OfType("aws:s3/bucketV2:BucketV2") {
				assert.Equal(t, true, b.Inputs["forceDestroy"], "%s holds objects (builds, access logs) at destroy", b.Key())
			}
			for _, v := range g.OfType("aws:backup/vault:Vault") {
				assert.Equal(t, true, v.Inputs["forceDestroy"], "%s holds recovery points after the first daily job", v.Key())
			}
			for _, r := range g.Resources {
				if r.Options["retainOnDelete"] == true {
					assert.Equal(t, "aws:s3/bucketObjectv2:BucketObjectv2", r.Type, "only builds are retained, in a force-destroyed bucket: %s", r.Key())
				}
			}
			// DocumentDB's own log groups would outlive the stack: they are
			// the stack's, made before the cluster.
			for _, c := range g.OfType("aws:docdb/cluster:Cluster") {
				for _, kind := range plan.List(c.Inputs["enabledCloudwatchLogsExports"]) {
					name := "/aws/docdb/" + str(c.Inputs["clusterIdentifier"]) + "/" + str(kind)
					found := false
					for _, lg := range g.OfType("aws:cloudwatch/logGroup:LogGroup") {
						if lg.Inputs["name"] == name {
							found = true
							assert.True(t, g.Waits(c.Key(), lg.Key()), "the cluster waits for %s", name)
							assert.NotNil(t, lg.Inputs["retentionInDays"])
						}
					}
					assert.True(t, found, "%s is the stack's", name)
				}
			}
		})
	}
}

// The budget filters on the Stack tag, and Auto Scaling launches
// instances and volumes without the provider's default tags: the launch
// templates carry the cost allocation tags themselves.
func TestLaunchedInstancesAndVolumesCarryTheCostTags(t *testing.T) {
	for _, s := range allStacks {
		g := planOf(t, s)
		for _, lt := range g.OfType("aws:ec2/launchTemplate:LaunchTemplate") {
			kinds := map[string]bool{}
			for _, spec := range plan.List(lt.Inputs["tagSpecifications"]) {
				kind := str(plan.Get(spec, "resourceType"))
				kinds[kind] = true
				tags, _ := plan.Get(spec, "tags").(map[string]any)
				assert.Equal(t, "webstack", tags["Project"], "%s %s", lt.Key(), kind)
				assert.Equal(t, s, tags["Stack"], "%s %s", lt.Key(), kind)
				assert.NotEmpty(t, tags["Owner"], "%s %s", lt.Key(), kind)
			}
			assert.True(t, kinds["instance"] && kinds["volume"], "%s tags instances and volumes", lt.Key())
		}
	}
}

// A refresh whose new instances go unhealthy or answer 5xx fails and rolls
// back (AWS's AlarmSpecification): the alarms it names are the stack's own
// alarms on each tier.
func TestInstanceRefreshesRollBackOnTheTiersAlarms(t *testing.T) {
	for _, s := range []string{"staging", "prod"} {
		g := planOf(t, s)
		alarms := map[string]bool{}
		for _, a := range g.OfType("aws:cloudwatch/metricAlarm:MetricAlarm") {
			alarms[str(a.Inputs["name"])] = true
		}
		for _, asg := range g.OfType("aws:autoscaling/group:Group") {
			prefs := plan.Get(asg.Inputs["instanceRefresh"], "preferences")
			assert.Equal(t, true, plan.Get(prefs, "autoRollback"), asg.Key())
			names := plan.List(plan.Get(prefs, "alarmSpecification", "alarms"))
			require.Len(t, names, 2, asg.Key())
			for _, n := range names {
				assert.True(t, alarms[str(n)], "%s rolls back on %s, an alarm of the stack", asg.Key(), n)
			}
		}
	}
}

// No alarm is in ALARM on a fresh stack before its resources first report:
// none treats missing data as breaching.
func TestNoAlarmFiresBeforeItsResourceReports(t *testing.T) {
	for _, s := range allStacks {
		for _, a := range planOf(t, s).OfType("aws:cloudwatch/metricAlarm:MetricAlarm") {
			assert.Contains(t, []any{"notBreaching", "missing"}, a.Inputs["treatMissingData"], a.Key())
		}
	}
}

// The default quota is 5 Elastic IPs per Region and account: the deploy
// guide states each stack's count, and it is the plan's.
func TestDeployGuideStatesEachStacksElasticIPs(t *testing.T) {
	readme, err := os.ReadFile("docs/deploy.md")
	require.NoError(t, err)
	m := regexp.MustCompile(`dev uses (\d+) Elastic IPs, staging (\d+), prod (\d+)`).FindStringSubmatch(string(readme))
	require.NotNil(t, m, "docs/deploy.md states the Elastic IPs per stack")
	total := 0
	for i, s := range allStacks {
		r, err := cost.Estimate(planOf(t, s), cost.DefaultTable(), cost.DefaultAssumptions())
		require.NoError(t, err)
		assert.Equal(t, m[i+1], strconv.Itoa(r.ElasticIPs), "%s's Elastic IPs", s)
		total += r.ElasticIPs
	}
	assert.Greater(t, total, cost.DefaultEIPQuota, "the guide's warning holds: together they exceed the default quota")
	assert.Contains(t, string(readme), "L-0263D0A3")
}

// The example ARNs the docs print are the ones the offline tools fill in
// when a stack file leaves them out (and which the config accepts), so a
// command copied from the docs plans the same graph as `make plan` alone.
func TestTheDocsExampleARNsAreTheOfflineTools(t *testing.T) {
	want := map[string]string{"certificateArn": offline.ExampleCertificate, "webTlsSecretArn": offline.ExampleWebTLSSecret}
	seen := map[string]int{}
	for _, f := range []string{"README.md", "Makefile", "docs/deploy.md", "docs/twin.md", "docs/app.md"} {
		raw, err := os.ReadFile(f)
		require.NoError(t, err)
		for _, m := range regexp.MustCompile(`(certificateArn|webTlsSecretArn)=(arn:[^"\s]+)`).FindAllStringSubmatch(string(raw), -1) {
			assert.Equal(t, want[m[1]], m[2], "%s: %s", f, m[0])
			seen[m[1]]++
		}
	}
	assert.Positive(t, seen["certificateArn"])
	assert.Positive(t, seen["webTlsSecretArn"])
	assert.True(t, awsarn.IsCertificate(offline.ExampleCertificate))
	assert.True(t, awsarn.IsSecret(offline.ExampleWebTLSSecret))
}

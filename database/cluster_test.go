package database_test

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"webstack/database"
	"webstack/internal/config"
	"webstack/internal/offline/plan"
)

func clusterGraph(t *testing.T, args database.ClusterArgs) *plan.Graph {
	t.Helper()
	if args.SubnetIDs == nil {
		args.SubnetIDs = pulumi.ToStringArray([]string{"subnet-1", "subnet-2"})
	}
	if args.AvailabilityZones == nil {
		args.AvailabilityZones = []string{"us-east-1a", "us-east-1b"}
	}
	if args.SecurityGroupID == nil {
		args.SecurityGroupID = pulumi.String("sg-0123456789abcdef0")
	}
	g, err := plan.Components("us-east-1", func(ctx *pulumi.Context) error {
		_, err := database.NewCluster(ctx, "database", &args)
		return err
	})
	require.NoError(t, err)
	return g
}

func cluster(t *testing.T, g *plan.Graph) plan.Resource {
	t.Helper()
	cs := g.OfType("aws:docdb/cluster:Cluster")
	require.Len(t, cs, 1)
	return cs[0]
}

func TestZeroArgsTakeTheConfigDefaults(t *testing.T) {
	g := clusterGraph(t, database.ClusterArgs{})
	c := cluster(t, g)
	insts := g.OfType("aws:docdb/clusterInstance:ClusterInstance")
	assert.Len(t, insts, config.Default[int]("dbInstanceCount"))
	for _, i := range insts {
		assert.Equal(t, config.Default[string]("dbInstanceClass"), i.Inputs["instanceClass"])
	}
	assert.EqualValues(t, config.Default[int]("dbBackupRetentionDays"), c.Inputs["backupRetentionPeriod"])
	assert.Equal(t, config.Default[string]("dbBackupWindow"), c.Inputs["preferredBackupWindow"])
	assert.Equal(t, config.Default[string]("dbMaintenanceWindow"), c.Inputs["preferredMaintenanceWindow"])
}

func TestRequiredArgsAreRequired(t *testing.T) {
	_, err := plan.Components("us-east-1", func(ctx *pulumi.Context) error {
		_, err := database.NewCluster(ctx, "database", &database.ClusterArgs{})
		return err
	})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "required")
}

func TestDocumentDBIsEncryptedTLSOnlyAndManagesItsPassword(t *testing.T) {
	for _, audit := range []bool{false, true} {
		exports := []string{}
		if audit {
			exports = []string{"audit", "profiler"}
		}
		g := clusterGraph(t, database.ClusterArgs{Audit: audit, LogExports: exports})
		c := cluster(t, g)
		assert.Equal(t, true, c.Inputs["storageEncrypted"])
		assert.Equal(t, "5.0.0", c.Inputs["engineVersion"])
		assert.Equal(t, true, c.Inputs["manageMasterUserPassword"])
		assert.NotContains(t, c.Inputs, "masterPassword", "no password in config or state")
		assert.NotContains(t, c.Inputs, "availabilityZones", "setting AZs replaces the cluster on every run")
		pg := g.OfType("aws:docdb/clusterParameterGroup:ClusterParameterGroup")[0]
		assert.Equal(t, "docdb5.0", pg.Inputs["family"])
		params := map[string]any{}
		for _, p := range plan.List(pg.Inputs["parameters"]) {
			params[plan.Get(p, "name").(string)] = plan.Get(p, "value")
		}
		assert.Equal(t, "enabled", params["tls"])
		want := map[bool]string{true: "enabled", false: "disabled"}[audit]
		assert.Equal(t, want, params["audit_logs"])
		assert.Equal(t, want, params["profiler"])
	}
}

func TestInstancesSpreadOverTheZonesAndCanFailOver(t *testing.T) {
	g := clusterGraph(t, database.ClusterArgs{InstanceCount: 3, AvailabilityZones: []string{"us-east-1a", "us-east-1b", "us-east-1c"}})
	var zones []any
	var tiers []any
	for _, i := range g.OfType("aws:docdb/clusterInstance:ClusterInstance") {
		zones = append(zones, i.Inputs["availabilityZone"])
		tiers = append(tiers, i.Inputs["promotionTier"])
		assert.Equal(t, "rds-ca-rsa2048-g1", i.Inputs["caCertIdentifier"])
	}
	assert.ElementsMatch(t, []any{"us-east-1a", "us-east-1b", "us-east-1c"}, zones)
	assert.ElementsMatch(t, []any{int64(0), int64(1), int64(2)}, tiers)
}

// DocumentDB refuses a final snapshot name that exists already, and any
// name with characters other than letters, digits and single hyphens
// (starting with a letter, at most 255).
func TestFinalSnapshotNameIsUniqueAndValidForAnyStackName(t *testing.T) {
	valid := regexp.MustCompile(`^[a-z](-?[a-z0-9])*$`)
	for _, stack := range []string{"dev", "my_team.dev", "--x--", "9lives", strings.Repeat("a", 300)} {
		id := database.FinalSnapshotIdentifier("webstack", stack, "database", time.Unix(0, 0))
		assert.Regexp(t, valid, id, "stack %q", stack)
		assert.LessOrEqual(t, len(id), 255)
		assert.NotEqual(t, id, database.FinalSnapshotIdentifier("webstack", stack, "database", time.Unix(1, 0)), "a later cluster gets another name")
	}
	for _, skip := range []bool{false, true} {
		c := cluster(t, clusterGraph(t, database.ClusterArgs{SkipFinalSnapshot: skip, Now: func() time.Time { return time.Unix(1764000000, 0) }}))
		assert.Equal(t, "webstack-test-database-final-20251124160000", c.Inputs["finalSnapshotIdentifier"], "named even when skipped, so turning snapshots on later works")
		assert.Equal(t, []any{"finalSnapshotIdentifier"}, c.Options["ignoreChanges"], "each cluster keeps the name it was created with")
		assert.Equal(t, skip, c.Inputs["skipFinalSnapshot"])
	}
}

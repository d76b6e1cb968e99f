package database_test

import (
	"regexp"
	"strings"
	"testing"

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
		assert.Equal(t, "2.0", params["planner_version"], "planner v2: $in on a compound index without a sort stage (the feed)")
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
// identifier with characters other than letters, digits and single
// hyphens (starting with a letter, at most 63). A replaced cluster, or a
// stack destroyed and made again, must not meet its predecessor's
// snapshot: the identifier (and so the snapshot's name) carries a digest
// of what makes a new cluster.
func TestClusterIdentifierAndFinalSnapshotAreEachClustersOwn(t *testing.T) {
	valid := regexp.MustCompile(`^[a-z](-?[a-z0-9])*$`)
	for _, stack := range []string{"dev", "my_team.dev", "--x--", "9lives", strings.Repeat("a", 300)} {
		id := database.ClusterIdentifier("webstack", stack, "database", "docdb", "subnets-1")
		assert.Regexp(t, valid, id, "stack %q", stack)
		assert.LessOrEqual(t, len(id), 63)
		assert.Equal(t, id, database.ClusterIdentifier("webstack", stack, "database", "docdb", "subnets-1"), "stable while nothing replaces it")
		assert.NotEqual(t, id, database.ClusterIdentifier("webstack", stack, "database", "docdb", "subnets-2"), "a new subnet group is a new cluster, a new name")
	}
	for _, skip := range []bool{false, true} {
		g := clusterGraph(t, database.ClusterArgs{SkipFinalSnapshot: skip})
		c := cluster(t, g)
		id, _ := c.Inputs["clusterIdentifier"].(string)
		require.Regexp(t, `^webstack-test-database-[0-9a-f]{8}$`, id)
		assert.Equal(t, id+"-final", c.Inputs["finalSnapshotIdentifier"], "named even when skipped, so turning snapshots on later works")
		assert.Empty(t, c.Options["ignoreChanges"], "nothing is kept from an earlier cluster")
		assert.Equal(t, skip, c.Inputs["skipFinalSnapshot"])
	}
}

// DocumentDB makes /aws/docdb/<cluster>/<log> itself when it first
// exports, never expiring and left behind by destroy; the program makes
// them first, with the stack's retention.
func TestExportedLogsGoToLogGroupsTheStackOwns(t *testing.T) {
	g := clusterGraph(t, database.ClusterArgs{LogExports: []string{"audit", "profiler"}, Audit: true, LogRetentionDays: 14})
	c := cluster(t, g)
	id := c.Inputs["clusterIdentifier"].(string)
	groups := g.OfType("aws:cloudwatch/logGroup:LogGroup")
	require.Len(t, groups, 2)
	for _, lg := range groups {
		assert.Contains(t, []any{"/aws/docdb/" + id + "/audit", "/aws/docdb/" + id + "/profiler"}, lg.Inputs["name"])
		assert.EqualValues(t, 14, lg.Inputs["retentionInDays"])
		assert.True(t, g.Waits(c.Key(), lg.Key()), "the cluster waits for %s", lg.Name)
	}
}

// Changes apply during up unless the stack defers them to the maintenance
// window (then a refresh shows them pending until it).
func TestChangesApplyDuringUpUnlessDeferred(t *testing.T) {
	for _, deferred := range []bool{false, true} {
		g := clusterGraph(t, database.ClusterArgs{DeferChanges: deferred})
		assert.Equal(t, !deferred, cluster(t, g).Inputs["applyImmediately"])
		for _, i := range g.OfType("aws:docdb/clusterInstance:ClusterInstance") {
			assert.Equal(t, !deferred, i.Inputs["applyImmediately"])
		}
	}
}

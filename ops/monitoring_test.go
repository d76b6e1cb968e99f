package ops_test

import (
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"webstack/internal/config"
	"webstack/internal/offline/plan"
	"webstack/ops"
)

// minimal is the least a Monitoring needs: names, region, a database.
func minimal() *ops.MonitoringArgs {
	id := func(s string) pulumi.StringOutput { return pulumi.String(s).ToStringOutput() }
	return &ops.MonitoringArgs{
		Names: ops.NamesFor("webstack", "test"), Region: "us-east-1",
		Database: ops.Database{ClusterID: id("db"), ClusterArn: id("arn:aws:rds:us-east-1:123456789012:cluster:db"),
			InstanceIDs: []pulumi.StringOutput{id("db-1")}, InstanceClass: "db.t4g.medium", ConnectionLimit: 1000, PlannedConnections: 900},
	}
}

func monitoringGraph(t *testing.T, a *ops.MonitoringArgs) *plan.Graph {
	t.Helper()
	g, err := plan.Components("us-east-1", func(ctx *pulumi.Context) error {
		_, err := ops.NewMonitoring(ctx, "ops", a)
		return err
	})
	require.NoError(t, err)
	return g
}

func TestZeroArgsTakeTheConfigDefaults(t *testing.T) {
	g := monitoringGraph(t, minimal())
	for _, lg := range g.OfType("aws:cloudwatch/logGroup:LogGroup") {
		assert.EqualValues(t, config.Default[int]("logRetentionDays"), lg.Inputs["retentionInDays"], lg.Key())
	}
	thresholds := map[string]float64{}
	for _, a := range g.OfType("aws:cloudwatch/metricAlarm:MetricAlarm") {
		thresholds[a.Name] = plan.Number(a.Inputs["threshold"])
	}
	assert.EqualValues(t, config.Default[int]("alarmDbCpuPercent"), thresholds["ops-docdb-1-cpu"])
	assert.EqualValues(t, config.Default[int]("alarmDbFreeMemoryMiB")<<20, thresholds["ops-docdb-1-freeable-memory"])
	assert.EqualValues(t, min(900, 1000*config.Default[int]("alarmDbConnectionsPercent")/100), thresholds["ops-docdb-1-connections"])
	assert.EqualValues(t, config.Default[int]("alarmServerErrorsPer5Min"), thresholds["ops-api-app-5xx"])
	assert.EqualValues(t, float64(config.Default[int]("alarmLatencyMs"))/1000, thresholds["ops-web-app-p99-latency"])
	assert.Empty(t, g.OfType("aws:budgets/budget:Budget"), "no budget unless asked")
	assert.Empty(t, g.OfType("aws:backup/plan:Plan"), "no backup unless asked")
}

func TestRequiredArgsAreRequired(t *testing.T) {
	for name, a := range map[string]*ops.MonitoringArgs{
		"nothing":                 {},
		"no connection limit":     func() *ops.MonitoringArgs { a := minimal(); a.Database.ConnectionLimit = 0; return a }(),
		"no connection budget":    func() *ops.MonitoringArgs { a := minimal(); a.Database.PlannedConnections = 0; return a }(),
		"a budget past the limit": func() *ops.MonitoringArgs { a := minimal(); a.Database.PlannedConnections = 1001; return a }(),
	} {
		_, err := plan.Components("us-east-1", func(ctx *pulumi.Context) error {
			_, err := ops.NewMonitoring(ctx, "ops", a)
			return err
		})
		assert.Error(t, err, name)
	}
}

func TestRunbookAnchorsDropTheNumber(t *testing.T) {
	for what, want := range map[string]string{"docdb-2-cpu": "docdb-cpu", "nat-3-packet-drops": "nat-packet-drops", "alb-5xx-rate": "alb-5xx-rate", "web-app-5xx": "web-app-5xx"} {
		assert.Equal(t, want, ops.Runbook(what))
	}
}

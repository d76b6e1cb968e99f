package main

import (
	"fmt"
	"regexp"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"webstack/database"
	"webstack/internal/cloudinit"
	"webstack/internal/offline/plan"
	"webstack/internal/stack"
)

// No stack can hold more connections to a DocumentDB instance than its
// class takes, or run more operations on one at once than it serves, even
// at the worst moment: every api instance an instance refresh may run at
// once (the api group's maximum × the refresh's maximum healthy
// percentage; dev's replaced instance beside the old one), each with two
// clients (a credential rotation), each with the pool the plan gives the
// api (CONDUIT_DB_MAX_POOL) and two monitoring connections, to every
// instance. All figures are read from the plan, as AWS would get them;
// the connections alarm fires above the same planned figure.
func TestNoStackCanExceedItsDatabaseConnectionLimits(t *testing.T) {
	poolRE := regexp.MustCompile(`(?m)^CONDUIT_DB_MAX_POOL=([0-9]+)$`)
	for _, s := range allStacks {
		t.Run(s, func(t *testing.T) {
			g := planOf(t, s)
			dbs := g.OfType("aws:docdb/clusterInstance:ClusterInstance")
			require.NotEmpty(t, dbs)
			class := str(dbs[0].Inputs["instanceClass"])
			limits, ok := database.LimitsOf(class)
			require.True(t, ok, "the limits of %s are known", class)

			lt, ok := g.ByKey("aws:ec2/launchTemplate:LaunchTemplate::app-api")
			require.True(t, ok)
			env, err := cloudinit.File(userData(t, lt, "userData"), cloudinit.EnvFile)
			require.NoError(t, err)
			m := poolRE.FindStringSubmatch(env)
			require.NotNil(t, m, "the api is given its pool size")
			pool, _ := strconv.Atoi(m[1])

			peak := 2 // dev: the replacement beside the old instance
			if asg, ok := g.ByKey("aws:autoscaling/group:Group::app-api"); ok {
				maxSize := int(plan.Number(asg.Inputs["maxSize"]))
				maxHealthy := int(plan.Number(plan.Get(asg.Inputs, "instanceRefresh", "preferences", "maxHealthyPercentage")))
				peak = (maxSize*maxHealthy + 99) / 100
			}
			connections := peak * 2 * (pool + 2)
			assert.LessOrEqual(t, connections, limits.Connections*9/10,
				"%s: %d api instances × 2 clients × (%d pool + 2 monitors) against %d connections (less a tenth for people and tools)", class, peak, pool, limits.Connections)
			assert.LessOrEqual(t, peak*pool, limits.Active, "%s: %d api instances × %d pool against %d active connections", class, peak, pool, limits.Active)
			assert.GreaterOrEqual(t, pool, stack.MinPool)

			alarms := 0
			for _, a := range g.OfType("aws:cloudwatch/metricAlarm:MetricAlarm") {
				if str(a.Inputs["metricName"]) != "DatabaseConnections" {
					continue
				}
				alarms++
				assert.LessOrEqual(t, plan.Number(a.Inputs["threshold"]), float64(connections), "%s fires above the planned peak at the latest", a.Name)
				assert.Contains(t, str(a.Inputs["alarmDescription"]), fmt.Sprint(limits.Connections), "%s names the class's limit", a.Name)
			}
			assert.Equal(t, len(dbs), alarms, "one connections alarm per DocumentDB instance")
		})
	}
}

// A group the database class cannot serve is refused before any resource,
// naming the settings to change.
func TestAGroupTheDatabaseCannotServeIsRefused(t *testing.T) {
	cfg, err := plan.StackConfig(".", "staging")
	require.NoError(t, err)
	cfg["webstack:certificateArn"] = testCert
	cfg["webstack:jwtSecret"] = testJWTSecret
	cfg["webstack:artifactPath"] = testArtifact(t)
	cfg["webstack:apiMaxSize"] = "30" // × 200 % = 60 instances on db.t4g.medium's 102 active connections
	g, err := plan.Run("webstack", "staging", cfg, stack.Compose)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "dbInstanceClass")
	assert.Contains(t, err.Error(), "apiMaxSize")
	assert.Empty(t, g.Resources, "nothing is registered")
}

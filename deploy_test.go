package main

// Rules a first `pulumi up` (and every later up, rollback, rotation and
// delete) depends on, which mocks alone never enforce: what AWS refuses,
// what the provider turns into a perpetual diff, and creation order. Each
// test names the rule; the source of the rule is in its comment.

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
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

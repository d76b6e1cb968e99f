package ops_test

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"webstack/internal/offline/plan"
	"webstack/ops"
	"webstack/ops/opstest"
)

// topologies are what NewMonitoring watches in each topology, as the stack
// passes it: the single topology's two instances, or the ha topology's ALBs,
// groups, web ACL and backup; a NAT gateway and a database in both.
func topologies() map[string]*ops.MonitoringArgs {
	id := func(s string) pulumi.StringOutput { return pulumi.String(s).ToStringOutput() }
	single := minimal()
	single.Instances = []ops.Instance{
		{Tier: "web", ID: id("i-0web"), InstanceType: "t4g.small"},
		{Tier: "api", ID: id("i-0api"), InstanceType: "t4g.small"},
	}
	single.NATGatewayIDs = []pulumi.StringOutput{id("nat-1")}
	single.Shippers = map[string]pulumi.StringInput{"web": pulumi.String("web-role"), "api": pulumi.String("api-role")}

	ha := minimal()
	ha.Database.InstanceIDs = append(ha.Database.InstanceIDs, id("db-2"))
	ha.NATGatewayIDs = []pulumi.StringOutput{id("nat-1"), id("nat-2")}
	ha.Shippers = single.Shippers
	pub, internal := id("app/public/1"), id("app/internal/2")
	ha.LoadBalancer = &ops.LoadBalancer{
		Public: pub, Internal: internal,
		Targets: []ops.TargetGroup{
			{Tier: "web", ArnSuffix: id("targetgroup/web/1"), LoadBalancer: pub, MinHealthy: 2},
			{Tier: "api", ArnSuffix: id("targetgroup/api/2"), LoadBalancer: internal, MinHealthy: 2},
		},
		Groups: []ops.Group{
			{Tier: "web", Name: id("web-asg"), Min: 2, InstanceType: "t4g.small"},
			{Tier: "api", Name: id("api-asg"), Min: 2, InstanceType: "t4g.small"},
		},
	}
	ha.WebACL = &ops.WebACL{Name: id("security-waf")}
	ha.Backup = &ops.Backup{RetentionDays: 14}
	return map[string]*ops.MonitoringArgs{"single": single, "ha": ha}
}

// eachTopology runs test on the monitoring graph of each topology.
func eachTopology(t *testing.T, test func(t *testing.T, g *plan.Graph)) {
	for topology, args := range topologies() {
		t.Run(topology, func(t *testing.T) { test(t, monitoringGraph(t, args)) })
	}
}

func policyDoc(t *testing.T, raw any) map[string]any {
	t.Helper()
	var doc map[string]any
	require.NoError(t, json.Unmarshal([]byte(fmt.Sprint(raw)), &doc), "policy %v", raw)
	return doc
}

// Every alarm notifies the stack's topic when it fires and when it clears,
// is named <project>-<stack>-<what>, says what to look at first, and treats
// missing data on purpose; the topic is encrypted with a key CloudWatch may
// use, and only this account's alarms and budgets may publish.
func TestAlarmsActOnTheStackTopic(t *testing.T) {
	eachTopology(t, func(t *testing.T, g *plan.Graph) {
		topics := g.OfType("aws:sns/topic:Topic")
		require.Len(t, topics, 1)
		topic := fmt.Sprint(topics[0].Outputs["arn"])
		assert.Equal(t, "webstack-test-alarms", topics[0].Inputs["name"])
		keys := g.OfType("aws:kms/key:Key")
		require.Len(t, keys, 1)
		assert.Equal(t, fmt.Sprint(keys[0].Outputs["arn"]), topics[0].Inputs["kmsMasterKeyId"], "encrypted with a key CloudWatch may use")
		assert.Contains(t, fmt.Sprint(policyDoc(t, keys[0].Inputs["policy"])), "cloudwatch.amazonaws.com")
		alarms := opstest.Alarms(g)
		require.NotEmpty(t, alarms)
		for _, a := range alarms {
			assert.Contains(t, plan.List(a.Inputs["alarmActions"]), topic, a.Key())
			assert.Equal(t, []any{topic}, plan.List(a.Inputs["okActions"]), a.Key())
			assert.True(t, strings.HasPrefix(fmt.Sprint(a.Inputs["name"]), "webstack-test-"), a.Key())
			assert.Contains(t, fmt.Sprint(a.Inputs["alarmDescription"]), "Check first", a.Key())
			assert.Contains(t, []any{"notBreaching", "breaching", "missing"}, a.Inputs["treatMissingData"], a.Key())
		}
		pol := g.OfType("aws:sns/topicPolicy:TopicPolicy")
		require.Len(t, pol, 1)
		allows := 0
		for _, st := range plan.List(policyDoc(t, pol[0].Inputs["policy"])["Statement"]) {
			if plan.Get(st, "Effect") == "Allow" {
				allows++
				assert.ElementsMatch(t, []any{"cloudwatch.amazonaws.com", "budgets.amazonaws.com"}, plan.List(plan.Get(st, "Principal", "Service")))
				assert.Equal(t, plan.Account, plan.Get(st, "Condition", "StringEquals", "aws:SourceAccount"), "this account's alarms and budgets only")
			}
		}
		assert.Positive(t, allows)
	})
}

// The dashboard draws the request path left to right and every alarm in
// its column, with its threshold; the database last.
func TestDashboardIsTheRequestPath(t *testing.T) {
	eachTopology(t, func(t *testing.T, g *plan.Graph) {
		boards := g.OfType("aws:cloudwatch/dashboard:Dashboard")
		require.Len(t, boards, 1)
		var body struct {
			Widgets []struct {
				Type       string         `json:"type"`
				X          int            `json:"x"`
				Properties map[string]any `json:"properties"`
			} `json:"widgets"`
		}
		require.NoError(t, json.Unmarshal([]byte(fmt.Sprint(boards[0].Inputs["dashboardBody"])), &body))
		var heads []string
		annotated := map[string]int{}
		for _, w := range body.Widgets {
			if md := fmt.Sprint(w.Properties["markdown"]); w.Type == "text" && strings.HasPrefix(md, "### ") {
				heads = append(heads, strings.TrimPrefix(md, "### "))
			}
			for _, h := range plan.List(plan.Get(w.Properties, "annotations", "horizontal")) {
				annotated[strings.TrimPrefix(fmt.Sprint(plan.Get(h, "label")), "alarm ")] = w.X
			}
		}
		assert.Equal(t, []string{"Entry", "WAF", "Web tier", "Internal ALB", "API tier (and NAT)", "DocumentDB"}, heads)
		var names []string
		for _, a := range opstest.Alarms(g) {
			names = append(names, fmt.Sprint(a.Inputs["name"]))
		}
		slices.Sort(names)
		drawn := slices.Sorted(maps.Keys(annotated))
		assert.Equal(t, names, drawn, "every alarm has its graph")
		assert.Equal(t, 5*4, annotated["webstack-test-docdb-volume-growth"], "database last")
	})
}

// Every alarm links to its row in docs/operations.md, and the row is there.
func TestEveryAlarmHasARunbook(t *testing.T) {
	raw, err := os.ReadFile("../docs/operations.md")
	require.NoError(t, err)
	doc := string(raw)
	for topology, args := range topologies() {
		for _, a := range opstest.Alarms(monitoringGraph(t, args)) {
			desc := fmt.Sprint(a.Inputs["alarmDescription"])
			i := strings.Index(desc, "docs/operations.md#")
			require.GreaterOrEqual(t, i, 0, "%s: %s links its runbook", topology, a.Key())
			anchor := desc[i+len("docs/operations.md#"):]
			assert.Contains(t, doc, `<a id="`+anchor+`"></a>`, "%s: %s: docs/operations.md has no row %q", topology, a.Key(), anchor)
		}
	}
}

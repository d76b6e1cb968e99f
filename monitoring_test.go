package main

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"webstack/internal/offline/cost"
	"webstack/internal/offline/plan"
	"webstack/ops/opstest"
)

// nameOf is a resource's physical name: its name input, else what the
// provider names it.
func nameOf(r plan.Resource) string {
	if n, ok := r.Inputs["name"].(string); ok && n != "" {
		return n
	}
	return str(r.Outputs["name"])
}

// Every resource the operators must hear about has its alarms, dimensioned
// by what the same graph calls it; a resource added without alarms fails
// here. And no alarm watches something the graph does not hold.
func TestEveryWatchedResourceHasItsAlarms(t *testing.T) {
	for _, s := range allStacks {
		t.Run(s, func(t *testing.T) {
			g := planOf(t, s)
			alarms := opstest.Alarms(g)
			require.NotEmpty(t, alarms)
			known := map[string]bool{}
			expect := func(ns, metric string, dims map[string]string, n int, why string) {
				t.Helper()
				assert.Len(t, opstest.Watching(alarms, ns, metric, dims), n, "%s %s %v: %s", ns, metric, dims, why)
				for _, v := range dims {
					known[v] = true
				}
			}

			lbs := map[string]string{} // arn → arnSuffix
			for _, lb := range g.OfType("aws:lb/loadBalancer:LoadBalancer") {
				lbs[str(lb.Outputs["arn"])] = str(lb.Outputs["arnSuffix"])
				if lb.Inputs["internal"] != true {
					d := map[string]string{"LoadBalancer": str(lb.Outputs["arnSuffix"])}
					for _, m := range []string{"HTTPCode_ELB_5XX_Count", "HTTPCode_Target_5XX_Count", "TargetResponseTime", "RejectedConnectionCount"} {
						expect("AWS/ApplicationELB", m, d, 1, "the public ALB")
					}
				}
			}
			// A target group is watched behind the ALB whose listener
			// forwards to it.
			behind := map[string]string{}
			for _, l := range g.OfType("aws:lb/listener:Listener") {
				for _, act := range plan.List(l.Inputs["defaultActions"]) {
					if tg := plan.Get(act, "targetGroupArn"); tg != nil {
						behind[str(tg)] = lbs[str(l.Inputs["loadBalancerArn"])]
					}
				}
			}
			for _, tg := range g.OfType("aws:lb/targetGroup:TargetGroup") {
				d := map[string]string{"TargetGroup": str(tg.Outputs["arnSuffix"]), "LoadBalancer": behind[str(tg.Outputs["arn"])]}
				require.NotEmpty(t, d["LoadBalancer"], "%s is behind no listener", tg.Key())
				expect("AWS/ApplicationELB", "UnHealthyHostCount", d, 1, tg.Key())
				healthy := opstest.Watching(alarms, "AWS/ApplicationELB", "HealthyHostCount", d)
				expect("AWS/ApplicationELB", "HealthyHostCount", d, 1, tg.Key())
				if len(healthy) == 1 {
					assert.Equal(t, "LessThanThreshold", healthy[0].Inputs["comparisonOperator"])
				}
			}
			for _, asg := range g.OfType("aws:autoscaling/group:Group") {
				d := map[string]string{"AutoScalingGroupName": nameOf(asg)}
				inService := opstest.Watching(alarms, "AWS/AutoScaling", "GroupInServiceInstances", d)
				expect("AWS/AutoScaling", "GroupInServiceInstances", d, 1, asg.Key())
				if len(inService) == 1 {
					assert.Equal(t, plan.Number(asg.Inputs["minSize"]), plan.Number(inService[0].Inputs["threshold"]), "below the group's minimum")
				}
				assert.Contains(t, plan.List(asg.Inputs["enabledMetrics"]), "GroupInServiceInstances", "the group publishes what its alarm watches")
			}
			for _, in := range g.OfType("aws:ec2/instance:Instance") {
				d := map[string]string{"InstanceId": in.ID}
				system := opstest.Watching(alarms, "AWS/EC2", "StatusCheckFailed_System", d)
				expect("AWS/EC2", "StatusCheckFailed_System", d, 1, in.Key())
				expect("AWS/EC2", "StatusCheckFailed_Instance", d, 1, in.Key())
				expect("AWS/EC2", "CPUCreditBalance", d, 1, in.Key()+" is a t4g")
				if len(system) == 1 {
					assert.Contains(t, plan.List(system[0].Inputs["alarmActions"]), "arn:aws:automate:us-east-1:ec2:recover", "a failed system check recovers the instance")
				}
			}
			instances := g.OfType("aws:docdb/clusterInstance:ClusterInstance")
			for _, db := range instances {
				d := map[string]string{"DBInstanceIdentifier": db.ID}
				for _, m := range []string{"CPUUtilization", "FreeableMemory", "DatabaseConnections"} {
					expect("AWS/DocDB", m, d, 1, db.Key())
				}
				lag := 0
				if len(instances) > 1 {
					lag = 1
				}
				expect("AWS/DocDB", "DBInstanceReplicaLag", d, lag, "replica lag where there are replicas")
			}
			for _, c := range g.OfType("aws:docdb/cluster:Cluster") {
				expect("AWS/DocDB", "VolumeBytesUsed", map[string]string{"DBClusterIdentifier": c.ID}, 1, c.Key())
			}
			for _, acl := range g.OfType("aws:wafv2/webAcl:WebAcl") {
				d := map[string]string{"WebACL": nameOf(acl), "Region": "us-east-1", "Rule": "ALL"}
				metric := "BlockedRequests"
				if s == "staging" { // wafMode count
					metric = "CountedRequests"
				}
				expect("AWS/WAFV2", metric, d, 1, acl.Key())
			}
			nats := 1
			if s == "prod" {
				nats = 3 // one per AZ
			}
			assert.Len(t, opstest.Watching(alarms, "AWS/NATGateway", "ErrorPortAllocation", nil), nats)
			assert.Len(t, opstest.Watching(alarms, "AWS/NATGateway", "PacketsDropCount", nil), nats)

			// Nothing dangles: every AWS dimension value is something of
			// this graph (NAT gateways are awsx's children: the mocks' ids).
			for _, a := range alarms {
				for _, m := range a.Metrics {
					if !strings.HasPrefix(m.Namespace, "AWS/") {
						assert.Equal(t, "webstack/"+s, m.Namespace, a.Key())
						continue
					}
					for k, v := range m.Dims {
						if k == "NatGatewayId" {
							assert.True(t, strings.HasPrefix(v, "nat-"), a.Key())
							continue
						}
						assert.True(t, known[v], "%s: %s=%s is nothing of this graph", a.Key(), k, v)
					}
				}
			}
		})
	}
}

// Thresholds, retention and the email come from the configuration.
func TestMonitoringFollowsItsConfiguration(t *testing.T) {
	g := planOf(t, "staging", "alarmLatencyMs=250", "alarmDbCpuPercent=66", "alarmDbConnectionsPercent=20",
		"alarmServerErrorsPer5Min=3", "alarmWafBlockedPer5Min=42", "alarmErrorPercent=2", "logRetentionDays=60", "alarmEmail=oncall@example.com")
	alarms := opstest.Alarms(g)
	threshold := func(ns, metric string) []float64 {
		var out []float64
		for _, a := range opstest.Watching(alarms, ns, metric, nil) {
			out = append(out, plan.Number(a.Inputs["threshold"]))
		}
		return out
	}
	assert.Equal(t, []float64{0.25}, threshold("AWS/ApplicationELB", "TargetResponseTime"))
	assert.Equal(t, []float64{0.25, 0.25}, threshold("webstack/staging", "conduit_http_latency_seconds"))
	assert.Equal(t, []float64{66, 66}, threshold("AWS/DocDB", "CPUUtilization"))
	assert.Equal(t, []float64{200, 200}, threshold("AWS/DocDB", "DatabaseConnections"), "20 % of db.t4g.medium's 1,000 (DocumentDB 5.0): below the connection budget's 228")
	assert.Equal(t, []float64{3, 3}, threshold("webstack/staging", "conduit_http_server_errors_total"))
	assert.Equal(t, []float64{42}, threshold("AWS/WAFV2", "CountedRequests"))
	assert.Equal(t, []float64{2}, threshold("AWS/ApplicationELB", "HTTPCode_ELB_5XX_Count"), "percent of requests")
	for _, lg := range g.OfType("aws:cloudwatch/logGroup:LogGroup") {
		if strings.HasPrefix(str(lg.Inputs["name"]), "/webstack/staging/") && !strings.Contains(str(lg.Inputs["name"]), "flow-logs") {
			assert.Equal(t, 60.0, plan.Number(lg.Inputs["retentionInDays"]), lg.Key())
		}
	}
	subs := g.OfType("aws:sns/topicSubscription:TopicSubscription")
	require.Len(t, subs, 1)
	assert.Equal(t, "oncall@example.com", subs[0].Inputs["endpoint"])
	assert.Empty(t, planOf(t, "dev").OfType("aws:sns/topicSubscription:TopicSubscription"), "no email, no subscription")
}

// Each tier's instances may write their own log group, and nothing else:
// exact group ARNs and their streams, no wildcard.
func TestLogShippingGrantsAreScopedToTheTiersGroups(t *testing.T) {
	for _, s := range allStacks {
		t.Run(s, func(t *testing.T) {
			g := planOf(t, s)
			groups := map[string]string{}
			for _, lg := range g.OfType("aws:cloudwatch/logGroup:LogGroup") {
				groups[str(lg.Inputs["name"])] = str(lg.Outputs["arn"])
			}
			for _, tier := range []string{"web", "api"} {
				name := "/webstack/" + s + "/" + tier
				arn, ok := groups[name]
				require.True(t, ok, "log group %s", name)
				var found bool
				for _, p := range g.OfType("aws:iam/rolePolicy:RolePolicy") {
					if p.Name != "ops-"+tier+"-ship" {
						continue
					}
					found = true
					doc := policyDoc(t, p.Inputs["policy"])
					for _, st := range plan.List(doc["Statement"]) {
						assert.ElementsMatch(t, []any{arn, arn + ":log-stream:*"}, plan.List(plan.Get(st, "Resource")))
						assert.ElementsMatch(t, []any{"logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"}, plan.List(plan.Get(st, "Action")))
					}
					assert.Contains(t, str(p.Inputs["role"]), tier, "granted to the tier's own role")
				}
				assert.True(t, found, "%s has a shipping grant", tier)
			}
			// The user data points each tier's agent at its group.
			for _, lt := range g.OfType("aws:ec2/launchTemplate:LaunchTemplate") {
				tier := lt.Name[strings.LastIndex(lt.Name, "-")+1:]
				doc := userData(t, lt, "userData")
				assert.Contains(t, doc, "/webstack/"+s+"/"+tier, lt.Key())
				assert.Contains(t, doc, "webstack/"+s, lt.Key())
			}
		})
	}
}

// The budget is the stack's own estimate (what `make cost` prints) times
// budgetPercent, and notifies the topic at 80 % spent and 100 % forecast.
func TestBudgetIsTheEstimateTimesTheFactor(t *testing.T) {
	for _, tc := range []struct {
		stack     string
		overrides []string
		percent   float64
	}{
		{"dev", nil, 125}, {"staging", nil, 125}, {"prod", []string{"budgetPercent=150"}, 150},
	} {
		t.Run(tc.stack, func(t *testing.T) {
			g := planOf(t, tc.stack, tc.overrides...)
			r, err := cost.Estimate(g, cost.DefaultTable(), cost.DefaultAssumptions())
			require.NoError(t, err)
			require.Empty(t, r.NotPriced)
			budgets := g.OfType("aws:budgets/budget:Budget")
			require.Len(t, budgets, 1)
			b := budgets[0].Inputs
			limit, err := strconv.ParseFloat(str(b["limitAmount"]), 64)
			require.NoError(t, err)
			assert.InDelta(t, r.Total()*tc.percent/100, limit, 0.01, "estimate %.2f × %g %%", r.Total(), tc.percent)
			assert.Equal(t, "MONTHLY", b["timeUnit"])
			assert.Equal(t, "user:Stack$"+tc.stack, plan.Get(b, "costFilters", 0, "values", 0), "this stack's spend only")
			topic := str(g.OfType("aws:sns/topic:Topic")[0].Outputs["arn"])
			var got []string
			for _, n := range plan.List(b["notifications"]) {
				got = append(got, fmt.Sprintf("%s %g", plan.Get(n, "notificationType"), plan.Number(plan.Get(n, "threshold"))))
				assert.Equal(t, []any{topic}, plan.List(plan.Get(n, "subscriberSnsTopicArns")))
			}
			assert.ElementsMatch(t, []string{"ACTUAL 80", "FORECASTED 100"}, got)
		})
	}
}

// dev's goal: at most $130 a month, monitoring included.
func TestDevStaysWithinItsCostGoal(t *testing.T) {
	r, err := cost.Estimate(planOf(t, "dev"), cost.DefaultTable(), cost.DefaultAssumptions())
	require.NoError(t, err)
	assert.LessOrEqual(t, r.Total(), 130.0)
	assert.Greater(t, r.ByTier()["ops"], 0.0, "monitoring is priced")
}

// AWS Backup protects the cluster where data matters (ha), kept
// backupRetentionDays.
func TestBackupPlanCoversTheCluster(t *testing.T) {
	assert.Empty(t, planOf(t, "dev").OfType("aws:backup/plan:Plan"), "dev relies on DocumentDB's own backups")
	for _, s := range []string{"staging", "prod"} {
		g := planOf(t, s, "backupCopyRegion=us-west-2")
		plans := g.OfType("aws:backup/plan:Plan")
		require.Len(t, plans, 1, s)
		rule := plan.Get(plans[0].Inputs, "rules", 0)
		want := map[string]float64{"staging": 14, "prod": 35}[s]
		assert.Equal(t, want, plan.Number(plan.Get(rule, "lifecycle", "deleteAfter")), s)
		assert.NotNil(t, plan.Get(rule, "copyActions", 0, "destinationVaultArn"), "copied to the second region")
		sel := g.OfType("aws:backup/selection:Selection")
		require.Len(t, sel, 1)
		cluster := g.OfType("aws:docdb/cluster:Cluster")[0]
		assert.Equal(t, []any{str(cluster.Outputs["arn"])}, plan.List(sel[0].Inputs["resources"]))
		providers := g.OfType("pulumi:providers:aws")
		require.Len(t, providers, 2)
		for _, p := range providers {
			assert.Equal(t, s, plan.Get(p.Inputs, "defaultTags", "tags", "Stack"), "the copy region's provider tags too")
		}
	}
}

// Package cost estimates a stack's monthly on-demand cost from its offline
// plan: every custom resource of the graph is priced from a checked-in price
// table (region, unit price, source and date on each row), billed 730 hours a
// month, with usage-priced items (NAT data, WAF requests, DocumentDB storage
// and I/O, logs, ALB capacity units) computed from stated assumptions that
// flags can change. A resource type the estimator does not know is listed as
// not priced, never dropped.
package cost

import (
	"embed"
	"encoding/csv"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"

	"webstack/internal/offline/plan"
)

// HoursPerMonth is the billing month.
const HoursPerMonth = 730

//go:embed prices.csv
var pricesFS embed.FS

// Price is one row of the price table.
type Price struct {
	Key, Region, Unit string
	USD               float64
	Source, Date      string
}

// Table maps "key@region" to its price.
type Table map[string]Price

// ParseTable reads a price table: a CSV with the header
// key,region,unit,usd,source,date.
func ParseTable(r io.Reader) (Table, error) {
	rows, err := csv.NewReader(r).ReadAll()
	if err != nil {
		return nil, fmt.Errorf("read price table: %w", err)
	}
	if len(rows) == 0 || strings.Join(rows[0], ",") != "key,region,unit,usd,source,date" {
		return nil, fmt.Errorf("price table: want header key,region,unit,usd,source,date")
	}
	t := Table{}
	for i, row := range rows[1:] {
		usd, err := strconv.ParseFloat(row[3], 64)
		if err != nil || usd < 0 {
			return nil, fmt.Errorf("price table line %d: usd %q", i+2, row[3])
		}
		if row[0] == "" || row[1] == "" || row[4] == "" || row[5] == "" {
			return nil, fmt.Errorf("price table line %d: key, region, source and date are required", i+2)
		}
		t[row[0]+"@"+row[1]] = Price{Key: row[0], Region: row[1], Unit: row[2], USD: usd, Source: row[4], Date: row[5]}
	}
	return t, nil
}

// DefaultTable is the checked-in price table.
func DefaultTable() Table {
	f, err := pricesFS.Open("prices.csv")
	if err != nil {
		panic(err) // embedded at build time
	}
	defer f.Close()
	t, err := ParseTable(f)
	if err != nil {
		panic(err) // a test parses the same file
	}
	return t
}

// Assumptions are the usage the estimate prices.
type Assumptions struct {
	NATDataGB           float64 // GB through each NAT gateway a month
	WAFMillionRequests  float64 // requests a month through each web ACL
	ALBCapacityUnits    float64 // average LCUs of each ALB
	DocDBStorageGB      float64 // stored data
	DocDBMillionIO      float64 // I/Os a month
	LogGBPerGroup       float64 // GB ingested into each log group a month
	AppLogGBPerInstance float64 // GB of logs and metric records each app instance ships a month
	BucketGB            float64 // GB stored in each bucket
}

// DefaultAssumptions are a small production-ish month.
func DefaultAssumptions() Assumptions {
	return Assumptions{NATDataGB: 50, WAFMillionRequests: 10, ALBCapacityUnits: 1, DocDBStorageGB: 20, DocDBMillionIO: 20, LogGBPerGroup: 5, AppLogGBPerInstance: 0.1, BucketGB: 1}
}

// Flags binds the assumptions to command-line flags.
func (a *Assumptions) Flags(fs *flag.FlagSet) {
	fs.Float64Var(&a.NATDataGB, "nat-gb", a.NATDataGB, "GB processed by each NAT gateway a month")
	fs.Float64Var(&a.WAFMillionRequests, "waf-mreq", a.WAFMillionRequests, "million requests a month through each web ACL")
	fs.Float64Var(&a.ALBCapacityUnits, "alb-lcu", a.ALBCapacityUnits, "average load balancer capacity units of each ALB")
	fs.Float64Var(&a.DocDBStorageGB, "docdb-gb", a.DocDBStorageGB, "DocumentDB storage, GB")
	fs.Float64Var(&a.DocDBMillionIO, "docdb-mio", a.DocDBMillionIO, "DocumentDB million I/Os a month")
	fs.Float64Var(&a.LogGBPerGroup, "log-gb", a.LogGBPerGroup, "GB ingested into each CloudWatch log group a month")
	fs.Float64Var(&a.AppLogGBPerInstance, "app-log-gb", a.AppLogGBPerInstance, "GB of logs and metric records each app instance ships a month (metric records ~0.07, quiet INFO logs)")
	fs.Float64Var(&a.BucketGB, "s3-gb", a.BucketGB, "GB stored in each S3 bucket")
}

// Line is one priced item.
type Line struct {
	Tier     string // top-level component: network, security, database, compute...
	Resource string // "<type>::<name>"
	Item     string
	Quantity float64
	Unit     string
	UnitUSD  float64
	Monthly  float64
	Note     string
}

// Report is a stack's estimate.
type Report struct {
	Stack, Region string
	Lines         []Line
	NotPriced     []string // resources the table cannot price, with the reason
	Free          int      // resources with no charge of their own
	Assumptions   Assumptions
	// ElasticIPs is how many Elastic IPs the stack allocates: one per NAT
	// gateway (awsx makes them) and one per aws:ec2/eip:Eip. An account
	// holds 5 per Region by default (EC2 quota L-0263D0A3): more, and up
	// fails with AddressLimitExceeded.
	ElasticIPs int
}

// DefaultEIPQuota is EC2's default Elastic IP quota per Region.
const DefaultEIPQuota = 5

// Total is the monthly total of the priced lines.
func (r *Report) Total() float64 {
	var t float64
	for _, l := range r.Lines {
		t += l.Monthly
	}
	return t
}

// ByTier sums the lines per tier.
func (r *Report) ByTier() map[string]float64 {
	out := map[string]float64{}
	for _, l := range r.Lines {
		out[l.Tier] += l.Monthly
	}
	return out
}

// free are types with no charge of their own (their cost, if any, is in
// another line: flow logs in the log group, the association in the web ACL).
var free = map[string]bool{
	"pulumi:providers:aws": true, "aws:ec2/securityGroup:SecurityGroup": true, "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup": true,
	"aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule": true, "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule": true,
	"aws:ec2/vpcEndpoint:VpcEndpoint": true, // gateway endpoints are free
	"aws:ec2/flowLog:FlowLog":         true, "aws:iam/role:Role": true, "aws:iam/rolePolicy:RolePolicy": true,
	"aws:iam/rolePolicyAttachment:RolePolicyAttachment": true, "aws:iam/instanceProfile:InstanceProfile": true,
	"aws:ec2/launchTemplate:LaunchTemplate": true, "aws:lb/targetGroup:TargetGroup": true, "aws:lb/listener:Listener": true,
	"aws:autoscaling/policy:Policy": true, "aws:docdb/subnetGroup:SubnetGroup": true, "aws:docdb/clusterParameterGroup:ClusterParameterGroup": true,
	"aws:wafv2/webAclAssociation:WebAclAssociation": true, "aws:wafv2/webAclLoggingConfiguration:WebAclLoggingConfiguration": true,
	"aws:secretsmanager/secretVersion:SecretVersion": true, "aws:s3/bucketObjectv2:BucketObjectv2": true,
	"aws:s3/bucketPolicy:BucketPolicy": true, "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock": true,
	"aws:s3/bucketOwnershipControls:BucketOwnershipControls": true, "aws:s3/bucketVersioningV2:BucketVersioningV2": true,
	"aws:s3/bucketServerSideEncryptionConfigurationV2:BucketServerSideEncryptionConfigurationV2": true,
	"aws:s3/bucketLifecycleConfigurationV2:BucketLifecycleConfigurationV2":                       true,
	// Operations: notifications are within SNS's free million publishes and
	// thousand emails; budgets that only notify are free; saved queries
	// cost nothing until run; the vault and plan are priced by what they
	// store (on the selection).
	"aws:sns/topic:Topic": true, "aws:sns/topicPolicy:TopicPolicy": true, "aws:sns/topicSubscription:TopicSubscription": true,
	"aws:budgets/budget:Budget": true, "aws:cloudwatch/queryDefinition:QueryDefinition": true,
	"aws:backup/vault:Vault": true, "aws:backup/plan:Plan": true,
}

// Estimate prices every custom resource of g.
func Estimate(g *plan.Graph, t Table, a Assumptions) (*Report, error) {
	e := &estimator{g: g, t: t, a: a, r: &Report{Stack: g.Stack, Assumptions: a}, byKey: map[string]plan.Resource{}}
	for _, r := range g.Resources {
		e.byKey[r.Key()] = r
		if r.Type == "pulumi:providers:aws" && e.r.Region == "" {
			e.r.Region, _ = r.Inputs["region"].(string) // the stack's ("aws" sorts before any other provider)
		}
	}
	if e.r.Region == "" {
		return nil, fmt.Errorf("cost: the graph has no aws provider region")
	}
	for _, r := range g.Resources {
		if !r.Custom && r.Type != "awsx:ec2:Vpc" {
			continue // components cost nothing themselves
		}
		if free[r.Type] {
			e.r.Free++
			continue
		}
		if err := e.price(r); err != nil {
			e.r.NotPriced = append(e.r.NotPriced, fmt.Sprintf("%s (%v)", r.Key(), err))
		}
	}
	return e.r, nil
}

type estimator struct {
	g     *plan.Graph
	t     Table
	a     Assumptions
	r     *Report
	byKey map[string]plan.Resource
}

// errUnknownType marks a resource type the estimator has no rule for.
var errUnknownType = fmt.Errorf("no pricing rule for this type")

func (e *estimator) price(r plan.Resource) error {
	in := r.Inputs
	switch r.Type {
	case "awsx:ec2:Vpc":
		azs := len(plan.List(in["availabilityZoneNames"]))
		nats := 1
		if plan.Get(in, "natGateways", "strategy") == "OnePerAz" {
			nats = azs
		}
		e.r.ElasticIPs += nats
		return e.add(r,
			item{"NAT gateway", "vpc:nat-gateway", float64(nats) * HoursPerMonth, fmt.Sprintf("%d × 730 h", nats)},
			item{"NAT data processed", "vpc:nat-data", float64(nats) * e.a.NATDataGB, fmt.Sprintf("assumes %g GB per gateway (--nat-gb)", e.a.NATDataGB)},
			item{"NAT public IPv4", "vpc:public-ipv4", float64(nats) * HoursPerMonth, ""})
	case "aws:ec2/instance:Instance":
		lt, err := e.launchTemplate(in)
		if err != nil {
			return err
		}
		return e.instances(r, lt, 1, "1 instance × 730 h")
	case "aws:autoscaling/group:Group":
		lt, err := e.launchTemplate(in)
		if err != nil {
			return err
		}
		n := plan.Number(in["minSize"])
		return e.instances(r, lt, n, fmt.Sprintf("%g instances (minSize; scaling adds more) × 730 h", n))
	case "aws:ec2/eip:Eip":
		e.r.ElasticIPs++
		return e.add(r, item{"public IPv4 address", "vpc:public-ipv4", HoursPerMonth, ""})
	case "aws:lb/loadBalancer:LoadBalancer":
		items := []item{
			{"ALB hours", "elb:alb", HoursPerMonth, ""},
			{"ALB capacity units", "elb:alb-lcu", e.a.ALBCapacityUnits * HoursPerMonth, fmt.Sprintf("assumes %g LCU on average (--alb-lcu)", e.a.ALBCapacityUnits)},
		}
		if in["internal"] != true {
			n := float64(len(plan.List(in["subnets"])))
			items = append(items, item{"public IPv4 addresses", "vpc:public-ipv4", n * HoursPerMonth, fmt.Sprintf("one per AZ (%g)", n)})
		}
		return e.add(r, items...)
	case "aws:wafv2/webAcl:WebAcl":
		rules := float64(len(plan.List(in["rules"])))
		return e.add(r,
			item{"web ACL", "waf:web-acl", 1, ""},
			item{"rules and managed rule groups", "waf:rule", rules, ""},
			item{"requests inspected", "waf:requests", e.a.WAFMillionRequests, fmt.Sprintf("assumes %g M requests (--waf-mreq)", e.a.WAFMillionRequests)})
	case "aws:docdb/clusterInstance:ClusterInstance":
		class, _ := in["instanceClass"].(string)
		return e.add(r, item{"instance " + class, "docdb:" + class, HoursPerMonth, ""})
	case "aws:docdb/cluster:Cluster":
		items := []item{
			{"storage", "docdb:storage", e.a.DocDBStorageGB, fmt.Sprintf("assumes %g GB (--docdb-gb)", e.a.DocDBStorageGB)},
			{"I/O", "docdb:io", e.a.DocDBMillionIO, fmt.Sprintf("assumes %g M I/Os (--docdb-mio)", e.a.DocDBMillionIO)},
		}
		if in["manageMasterUserPassword"] == true {
			items = append(items, item{"managed master user secret", "secrets:secret", 1, "created by DocumentDB"})
		}
		return e.add(r, items...)
	case "aws:cloudwatch/logGroup:LogGroup":
		days := math.Min(plan.Number(in["retentionInDays"]), 365)
		gb, note := e.a.LogGBPerGroup, fmt.Sprintf("assumes %g GB a month (--log-gb)", e.a.LogGBPerGroup)
		if e.tier(r) == "ops" { // a tier's logs and metric records, from each of its instances
			n := e.instancesOf(r.Inputs["name"])
			gb, note = n*e.a.AppLogGBPerInstance, fmt.Sprintf("assumes %g GB a month from each of %g instances (--app-log-gb)", e.a.AppLogGBPerInstance, n)
		}
		return e.add(r,
			item{"log ingestion", "logs:ingest", gb, note},
			item{"log storage", "logs:storage", gb * days / 30, fmt.Sprintf("%g days retained", days)})
	case "aws:cloudwatch/metricAlarm:MetricAlarm":
		n := 1.0
		if q := plan.List(in["metricQueries"]); len(q) > 0 {
			n = 0
			for _, m := range q {
				if plan.Get(m, "metric") != nil {
					n++
				}
			}
		}
		return e.add(r, item{"alarm metrics", "cloudwatch:alarm-metric", n, "standard resolution"})
	case "aws:cloudwatch/dashboard:Dashboard":
		custom, err := customMetrics(in["dashboardBody"])
		if err != nil {
			return err
		}
		return e.add(r,
			item{"dashboard", "cloudwatch:dashboard", 1, ""},
			item{"custom metrics it shows (the app's, via the CloudWatch agent)", "cloudwatch:metric", float64(custom), ""})
	case "aws:kms/key:Key":
		return e.add(r, item{"customer managed key", "kms:key", 1, "rotation included"})
	case "aws:backup/selection:Selection":
		return e.add(r, item{"backup storage", "docdb:backup", e.a.DocDBStorageGB, fmt.Sprintf("assumes the retained backups hold about the data (%g GB, --docdb-gb)", e.a.DocDBStorageGB)})
	case "aws:secretsmanager/secret:Secret":
		return e.add(r, item{"secret", "secrets:secret", 1, ""})
	case "aws:s3/bucketV2:BucketV2":
		return e.add(r, item{"storage", "s3:standard", e.a.BucketGB, fmt.Sprintf("assumes %g GB (--s3-gb)", e.a.BucketGB)})
	case "aws:shield/protection:Protection":
		e.r.Lines = append(e.r.Lines, Line{Tier: e.tier(r), Resource: r.Key(), Item: "Shield Advanced protection",
			Note: "no per-resource charge; needs the Shield Advanced subscription (USD 3,000/month per organisation, not created by this program, not included)"})
		return nil
	}
	return errUnknownType
}

type item struct {
	name, key string
	quantity  float64
	note      string
}

func (e *estimator) add(r plan.Resource, items ...item) error {
	for _, it := range items {
		p, ok := e.t[it.key+"@"+e.r.Region]
		if !ok {
			return fmt.Errorf("no price for %s in %s", it.key, e.r.Region)
		}
		e.r.Lines = append(e.r.Lines, Line{Tier: e.tier(r), Resource: r.Key(), Item: it.name, Quantity: it.quantity,
			Unit: p.Unit, UnitUSD: p.USD, Monthly: it.quantity * p.USD, Note: it.note})
	}
	return nil
}

func (e *estimator) instances(r plan.Resource, lt plan.Resource, n float64, note string) error {
	typ, _ := lt.Inputs["instanceType"].(string)
	gb := plan.Number(plan.Get(lt.Inputs, "blockDeviceMappings", 0, "ebs", "volumeSize"))
	return e.add(r,
		item{"instances " + typ, "ec2:" + typ, n * HoursPerMonth, note},
		item{"gp3 root volumes", "ebs:gp3", n * gb, fmt.Sprintf("%g × %g GB", n, gb)})
}

func (e *estimator) launchTemplate(in map[string]any) (plan.Resource, error) {
	id := plan.Get(in, "launchTemplate", "id")
	for _, r := range e.g.OfType("aws:ec2/launchTemplate:LaunchTemplate") {
		if r.ID == id {
			return r, nil
		}
	}
	return plan.Resource{}, fmt.Errorf("launch template %v not in the graph", id)
}

// tier is the name of the top-level component r sits in.
func (e *estimator) tier(r plan.Resource) string {
	for r.Parent != "" {
		p, ok := e.byKey[r.Parent]
		if !ok {
			break
		}
		r = p
	}
	return r.Name
}

// instancesOf is how many instances ship to the app log group name
// (/<project>/<stack>/<tier>): the tier's standalone instance, or its Auto
// Scaling group's minimum.
func (e *estimator) instancesOf(name any) float64 {
	s, _ := name.(string)
	tier := s[strings.LastIndex(s, "/")+1:]
	n := 0.0
	for _, r := range e.g.Resources {
		if !strings.HasSuffix(r.Name, "-"+tier) {
			continue
		}
		switch r.Type {
		case "aws:ec2/instance:Instance":
			n++
		case "aws:autoscaling/group:Group":
			n += plan.Number(r.Inputs["minSize"])
		}
	}
	return n
}

// customMetrics counts the distinct custom metrics (namespaces not AWS/*)
// a dashboard body graphs: each is billed as a metric.
func customMetrics(body any) (int, error) {
	s, _ := body.(string)
	var b struct {
		Widgets []struct {
			Properties struct {
				Metrics [][]any `json:"metrics"`
			} `json:"properties"`
		} `json:"widgets"`
	}
	if err := json.Unmarshal([]byte(s), &b); err != nil {
		return 0, fmt.Errorf("dashboard body: %w", err)
	}
	seen := map[string]bool{}
	for _, w := range b.Widgets {
		for _, row := range w.Properties.Metrics {
			ns, ok := row[0].(string)
			if !ok || strings.HasPrefix(ns, "AWS/") {
				continue
			}
			var key []string
			for _, v := range row {
				if s, ok := v.(string); ok {
					key = append(key, s)
				}
			}
			seen[strings.Join(key, "|")] = true
		}
	}
	return len(seen), nil
}

// Write prints the estimate: every line by tier, subtotals, the total, the
// assumptions and whatever could not be priced.
func Write(w io.Writer, r *Report) {
	fmt.Fprintf(w, "monthly estimate, stack %s (%s, on-demand, %d h/month):\n", r.Stack, r.Region, HoursPerMonth)
	byTier := r.ByTier()
	tiers := make([]string, 0, len(byTier))
	for t := range byTier {
		tiers = append(tiers, t)
	}
	slices.Sort(tiers)
	for _, t := range tiers {
		fmt.Fprintf(w, "  %-10s %10s\n", t, usd(byTier[t]))
		for _, l := range r.Lines {
			if l.Tier != t {
				continue
			}
			detail := fmt.Sprintf("%s × %s/%s", trim(l.Quantity), usd4(l.UnitUSD), l.Unit)
			if l.Unit == "" {
				detail = "—"
			}
			fmt.Fprintf(w, "    %10s  %-42s %-30s %s\n", usd(l.Monthly), short(l.Resource)+" "+l.Item, detail, l.Note)
		}
	}
	fmt.Fprintf(w, "  %-10s %10s\n", "TOTAL", usd(r.Total()))
	fmt.Fprintf(w, "  Elastic IPs: %d (an account holds %d per Region unless its quota is raised)\n", r.ElasticIPs, DefaultEIPQuota)
	fmt.Fprintf(w, "  %d resources have no charge of their own (security groups, IAM, listeners, ...)\n", r.Free)
	if len(r.NotPriced) > 0 {
		fmt.Fprintf(w, "  not priced (%d):\n", len(r.NotPriced))
		for _, n := range r.NotPriced {
			fmt.Fprintf(w, "    %s\n", n)
		}
	}
}

// Compare prints the totals of several stacks side by side, by tier.
func Compare(w io.Writer, reports []*Report) {
	tierSet := map[string]bool{}
	for _, r := range reports {
		for t := range r.ByTier() {
			tierSet[t] = true
		}
	}
	tiers := make([]string, 0, len(tierSet))
	for t := range tierSet {
		tiers = append(tiers, t)
	}
	slices.Sort(tiers)
	fmt.Fprintf(w, "%-10s", "tier")
	for _, r := range reports {
		fmt.Fprintf(w, " %12s", r.Stack)
	}
	fmt.Fprintln(w)
	for _, t := range append(tiers, "TOTAL") {
		fmt.Fprintf(w, "%-10s", t)
		for _, r := range reports {
			v := r.ByTier()[t]
			if t == "TOTAL" {
				v = r.Total()
			}
			fmt.Fprintf(w, " %12s", usd(v))
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "%-10s", "EIPs")
	total := 0
	for _, r := range reports {
		fmt.Fprintf(w, " %12d", r.ElasticIPs)
		total += r.ElasticIPs
	}
	fmt.Fprintln(w)
	if total > DefaultEIPQuota {
		fmt.Fprintf(w, "together %d Elastic IPs: more than the default %d per Region of one account; deploy the stacks to separate accounts, or raise the quota first (docs: Deploying for real, step 2)\n", total, DefaultEIPQuota)
	}
}

func usd(v float64) string  { return fmt.Sprintf("$%.2f", v) }
func usd4(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) + " USD" }
func trim(v float64) string { return strconv.FormatFloat(v, 'g', 4, 64) }

// short drops the provider prefix of a resource key for display.
func short(key string) string {
	typ, name, _ := strings.Cut(key, "::")
	return typ[strings.LastIndex(typ, ":")+1:] + " " + name
}

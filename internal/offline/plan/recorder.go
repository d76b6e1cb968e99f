// Package plan runs the webstack Pulumi program offline, under Pulumi's mocks,
// and records the resource graph it registers: every resource's type, name,
// parent and inputs as the provider would receive them, and the stack's
// outputs. The tests assert policies on that graph; the plan command prints it.
package plan

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/common/tokens"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"

	"webstack/internal/netlayout"
)

// Account is the AWS account id the mocks pretend to run in.
const Account = "123456789012"

// Resource is one registered resource.
type Resource struct {
	Type   string         `json:"type"`
	Name   string         `json:"name"`
	ID     string         `json:"id"`
	Parent string         `json:"parent"` // "<type>::<name>" of the parent, or empty for the stack.
	Inputs map[string]any `json:"inputs"`
	// DependsOn is the "<type>::<name>" of every resource this one waits
	// for: explicit DependsOn and the resources whose outputs its inputs
	// use (component dependencies expanded to their children), sorted.
	DependsOn []string `json:"dependsOn"`
	// Options are the lifecycle options that are set: protect,
	// retainOnDelete, deleteBeforeReplace, ignoreChanges,
	// replaceOnChanges, additionalSecretOutputs.
	Options map[string]any `json:"options"`
	// Outputs are the computed outputs the mocks answered with (arn,
	// arnSuffix, name...), for tests that relate resources.
	Outputs map[string]any `json:"-"`
	Custom  bool           `json:"-"`
	// URN is the resource's identity in a stack's state: a resource whose
	// URN changes is deleted and created again unless an alias names the
	// old one.
	URN string `json:"urn"`
	// Aliases are the URNs the resource was known by before (its aliases,
	// and those it inherits from its parent's the way the engine derives
	// them), sorted; empty for most.
	Aliases []string `json:"aliases,omitempty"`
}

// Key is "<type>::<name>", the way Parent names a resource.
func (r Resource) Key() string { return r.Type + "::" + r.Name }

// Recorder is a pulumi.MockResourceMonitor that records every resource and
// answers with plausible ids, ARNs and computed outputs.
type Recorder struct {
	Region string

	mu        sync.Mutex
	resources []Resource
	// aliases are the alias URNs of each registered resource by URN, for
	// its children to inherit.
	aliases map[string][]string
	// subnets are the CIDRs of the mocked VPC's subnets by id (awsx's
	// layout); placed counts the instances put in each so far.
	subnets map[string]netip.Prefix
	placed  map[string]int
}

var _ pulumi.MockResourceMonitor = (*Recorder)(nil)

// Resources returns the recorded resources in registration order.
func (r *Recorder) Resources() []Resource {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Resource(nil), r.resources...)
}

// NewResource implements pulumi.MockResourceMonitor.
func (r *Recorder) NewResource(args pulumi.MockResourceArgs) (string, resource.PropertyMap, error) {
	id := mockID(args.TypeToken, args.Name)
	if !args.Custom && !strings.HasPrefix(args.TypeToken, "awsx:") {
		id = "" // components have no physical id
	}
	rec := Resource{
		Type:      args.TypeToken,
		Name:      args.Name,
		ID:        id,
		Inputs:    plainMap(args.Inputs),
		DependsOn: []string{},
		Options:   map[string]any{},
		Custom:    args.Custom,
	}
	if req := args.RegisterRPC; req != nil {
		rec.Parent = parentKey(req.GetParent())
		for _, urn := range req.GetDependencies() {
			rec.DependsOn = append(rec.DependsOn, parentKey(urn))
		}
		sort.Strings(rec.DependsOn)
		rec.DependsOn = slices.Compact(rec.DependsOn)
		rec.Options = lifecycle(req)
		rec.URN, rec.Aliases = r.identity(req, args.TypeToken, args.Name)
	}
	computed := r.computed(args.TypeToken, args.Name, id, rec.Inputs)
	rec.Outputs = computed
	r.mu.Lock()
	r.resources = append(r.resources, rec)
	r.mu.Unlock()

	state := args.Inputs.Copy()
	for k, v := range computed {
		if _, set := state[resource.PropertyKey(k)]; !set || k == "arn" {
			state[resource.PropertyKey(k)] = resource.NewPropertyValue(v)
		}
	}
	return id, state, nil
}

// lifecycle returns the options of req that change a resource's lifecycle,
// only those that are set.
func lifecycle(req *pulumirpc.RegisterResourceRequest) map[string]any {
	out := map[string]any{}
	set := func(k string, on bool) {
		if on {
			out[k] = true
		}
	}
	list := func(k string, v []string) {
		if len(v) > 0 {
			var l []any
			for _, e := range slices.Sorted(slices.Values(v)) {
				l = append(l, e)
			}
			out[k] = l
		}
	}
	set("protect", req.GetProtect())
	set("retainOnDelete", req.GetRetainOnDelete())
	set("deleteBeforeReplace", req.GetDeleteBeforeReplace())
	list("ignoreChanges", req.GetIgnoreChanges())
	list("replaceOnChanges", req.GetReplaceOnChanges())
	list("additionalSecretOutputs", req.GetAdditionalSecretOutputs())
	return out
}

// Call implements pulumi.MockResourceMonitor: the invokes the program makes.
func (r *Recorder) Call(args pulumi.MockCallArgs) (resource.PropertyMap, error) {
	var out map[string]any
	switch args.Token {
	case "aws:index/getAvailabilityZones:getAvailabilityZones":
		// Deliberately unsorted: the program must sort before cutting. As
		// AWS does, a Local Zone (opt-in, and its name sorts first) is in
		// the answer unless the filters exclude it.
		names := []any{r.Region + "c", r.Region + "a", r.Region + "d", r.Region + "b", r.Region + "e"}
		if !filtersExclude(args.Args["filters"], "opt-in-status", "opt-in-not-required") &&
			!filtersExclude(args.Args["filters"], "zone-type", "availability-zone") {
			names = append(names, r.Region+"-bos-1a")
		}
		out = map[string]any{"id": r.Region, "names": names}
	case "aws:ec2/getInstanceTypeOfferings:getInstanceTypeOfferings":
		// Every type is offered in a to d; zone e offers no Graviton type.
		locs := []any{r.Region + "a", r.Region + "b", r.Region + "c", r.Region + "d", r.Region + "-bos-1a"}
		out = map[string]any{"id": r.Region, "locations": locs, "locationTypes": []any{"availability-zone"}, "instanceTypes": []any{}}
	case "aws:ec2/getNatGateways:getNatGateways":
		// As many as any stack here has (one per AZ, at most three).
		out = map[string]any{"id": r.Region, "ids": []any{"nat-0a1b2c3d4e5f60003", "nat-0a1b2c3d4e5f60001", "nat-0a1b2c3d4e5f60002"}}
	case "aws:ec2/getRouteTables:getRouteTables":
		out = map[string]any{"id": r.Region, "ids": []any{"rtb-0a1b2c3d4e5f60001", "rtb-0a1b2c3d4e5f60002", "rtb-0a1b2c3d4e5f60003"}}
	case "aws:ssm/getParameter:getParameter":
		name, _ := args.Args["name"].V.(string)
		out = map[string]any{"id": name, "name": name, "type": "String", "value": "ami-0123456789abcdef0",
			"arn": fmt.Sprintf("arn:aws:ssm:%s::parameter%s", r.Region, name)}
	case "aws:index/getCallerIdentity:getCallerIdentity":
		out = map[string]any{"id": Account, "accountId": Account, "arn": "arn:aws:iam::" + Account + ":user/plan", "userId": "AIDAPLAN"}
	case "aws:index/getRegion:getRegion":
		out = map[string]any{"id": r.Region, "name": r.Region, "region": r.Region, "endpoint": "ec2." + r.Region + ".amazonaws.com"}
	case "aws:elb/getServiceAccount:getServiceAccount":
		out = map[string]any{"id": "127311923021", "arn": "arn:aws:iam::127311923021:root"}
	default:
		return nil, fmt.Errorf("plan: no mock for invoke %s", args.Token)
	}
	return resource.NewPropertyMapFromMap(out), nil
}

// filtersExclude reports whether a filters argument (a list of {name,
// values}) keeps only want for name.
func filtersExclude(filters resource.PropertyValue, name, want string) bool {
	if !filters.IsArray() {
		return false
	}
	for _, f := range filters.ArrayValue() {
		if !f.IsObject() {
			continue
		}
		o := f.ObjectValue()
		if o["name"].IsString() && o["name"].StringValue() == name && o["values"].IsArray() {
			vs := o["values"].ArrayValue()
			return len(vs) == 1 && vs[0].IsString() && vs[0].StringValue() == want
		}
	}
	return false
}

// computed returns the outputs a provider would compute for a resource.
func (r *Recorder) computed(typ, name, id string, in map[string]any) map[string]any {
	arn := fmt.Sprintf("arn:aws:%s:%s:%s:%s/%s", service(typ), r.Region, Account, strings.ToLower(kind(typ)), id)
	out := map[string]any{"arn": arn, "id": id, "name": name}
	switch typ {
	case "awsx:ec2:Vpc":
		azs, _ := in["availabilityZoneNames"].([]any)
		subnets := func(kind string) []any {
			ids := make([]any, len(azs))
			for i := range azs {
				ids[i] = mockID("aws:ec2/subnet:Subnet", fmt.Sprintf("%s-%s-%d", name, kind, i+1))
			}
			return ids
		}
		out = map[string]any{"vpcId": mockID("aws:ec2/vpc:Vpc", name),
			"publicSubnetIds": subnets("public"), "privateSubnetIds": subnets("private"), "isolatedSubnetIds": subnets("isolated")}
		r.layout(name, in, len(azs))
	case "aws:lb/loadBalancer:LoadBalancer":
		prefix := ""
		if in["internal"] == true {
			prefix = "internal-"
		}
		out["dnsName"] = fmt.Sprintf("%s%s-%s.%s.elb.amazonaws.com", prefix, name, id[len(id)-6:], r.Region)
		out["arn"] = fmt.Sprintf("arn:aws:elasticloadbalancing:%s:%s:loadbalancer/app/%s/%s", r.Region, Account, name, id)
		out["arnSuffix"] = fmt.Sprintf("app/%s/%s", name, id)
	case "aws:lb/targetGroup:TargetGroup":
		out["arn"] = fmt.Sprintf("arn:aws:elasticloadbalancing:%s:%s:targetgroup/%s/%s", r.Region, Account, name, id)
		out["arnSuffix"] = fmt.Sprintf("targetgroup/%s/%s", name, id)
	case "aws:docdb/cluster:Cluster":
		host := fmt.Sprintf("%s.cluster-%s.%s.docdb.amazonaws.com", name, id[len(id)-12:], r.Region)
		out["endpoint"] = host
		out["readerEndpoint"] = strings.Replace(host, ".cluster-", ".cluster-ro-", 1)
		out["port"] = 27017
		out["arn"] = fmt.Sprintf("arn:aws:rds:%s:%s:cluster:%s", r.Region, Account, name)
		out["masterUserSecrets"] = []any{map[string]any{
			"secretArn":    fmt.Sprintf("arn:aws:secretsmanager:%s:%s:secret:rds!cluster-%s-AbCdEf", r.Region, Account, id),
			"secretStatus": "active",
		}}
	case "aws:ec2/launchTemplate:LaunchTemplate":
		out["latestVersion"] = 1
	case "aws:ec2/eip:Eip":
		out["publicIp"] = "203.0.113.10"
		out["allocationId"] = id
	case "aws:ec2/instance:Instance":
		out["privateIp"] = r.privateIP(fmt.Sprint(in["subnetId"]))
	case "aws:cloudwatch/logGroup:LogGroup":
		if n, ok := in["name"].(string); ok {
			out["name"] = n
		}
		out["arn"] = fmt.Sprintf("arn:aws:logs:%s:%s:log-group:%s", r.Region, Account, out["name"])
	case "aws:s3/bucketV2:BucketV2":
		out["bucket"] = id
		out["arn"] = "arn:aws:s3:::" + id
	case "aws:iam/role:Role", "aws:iam/instanceProfile:InstanceProfile":
		out["arn"] = fmt.Sprintf("arn:aws:iam::%s:%s/%s", Account, strings.ToLower(kind(typ)), id)
		out["name"] = id
	case "aws:secretsmanager/secret:Secret":
		out["arn"] = fmt.Sprintf("arn:aws:secretsmanager:%s:%s:secret:%s-AbCdEf", r.Region, Account, id)
	case "aws:wafv2/webAcl:WebAcl":
		out["arn"] = fmt.Sprintf("arn:aws:wafv2:%s:%s:regional/webacl/%s/%s", r.Region, Account, name, id)
	}
	return out
}

// layout records the CIDR of each subnet of a mocked awsx VPC, allocated
// as awsx allocates them (internal/netlayout).
func (r *Recorder) layout(name string, in map[string]any, azs int) {
	vpc, err := netip.ParsePrefix(fmt.Sprint(in["cidrBlock"]))
	if err != nil || azs == 0 {
		return
	}
	subnets, err := netlayout.Layout(vpc, azs, netlayout.Specs())
	if err != nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.subnets == nil {
		r.subnets, r.placed = map[string]netip.Prefix{}, map[string]int{}
	}
	for _, s := range subnets {
		id := mockID("aws:ec2/subnet:Subnet", fmt.Sprintf("%s-%s-%d", name, strings.ToLower(string(s.Tier)), s.AZ+1))
		r.subnets[id] = s.Prefix
	}
}

// privateIP is the address EC2 would give the next instance of subnet id:
// one inside its CIDR (from .10: AWS keeps the first four of each subnet);
// 10.0.0.10 when the subnet is unknown.
func (r *Recorder) privateIP(subnet string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	p, ok := r.subnets[subnet]
	if !ok {
		return "10.0.0.10"
	}
	r.placed[subnet]++
	a := p.Addr()
	for range 9 + r.placed[subnet] {
		a = a.Next()
	}
	return a.String()
}

// mockID is a stable, plausible physical id: the AWS prefix of the type and
// a hash of the name.
func mockID(typ, name string) string {
	sum := sha256.Sum256([]byte(typ + "::" + name))
	h := hex.EncodeToString(sum[:])
	prefixes := map[string]string{
		"aws:ec2/vpc:Vpc": "vpc-", "aws:ec2/subnet:Subnet": "subnet-", "aws:ec2/securityGroup:SecurityGroup": "sg-",
		"aws:ec2/defaultSecurityGroup:DefaultSecurityGroup": "sg-", "aws:ec2/instance:Instance": "i-",
		"aws:ec2/launchTemplate:LaunchTemplate": "lt-", "aws:ec2/eip:Eip": "eipalloc-", "aws:ec2/vpcEndpoint:VpcEndpoint": "vpce-",
		"aws:ec2/flowLog:FlowLog": "fl-", "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule": "sgr-",
		"aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule": "sgr-", "awsx:ec2:Vpc": "vpc-",
	}
	if p, ok := prefixes[typ]; ok {
		return p + h[:17]
	}
	return name + "-" + h[:8]
}

// service is the ARN service of a type token ("aws:ec2/vpc:Vpc" → "ec2").
func service(typ string) string {
	parts := strings.Split(typ, ":")
	if len(parts) < 2 {
		return "unknown"
	}
	mod, _, _ := strings.Cut(parts[1], "/")
	return mod
}

// kind is the type name of a token ("aws:ec2/vpc:Vpc" → "Vpc").
func kind(typ string) string {
	return typ[strings.LastIndex(typ, ":")+1:]
}

// identity is the URN a registration gets and the alias URNs it carries:
// its own alias specs (with no parent given, an alias keeps the current
// one) and, for each alias of its parent, the same name under that alias —
// the engine derives those for a child so that moving a component moves its
// children with it.
func (r *Recorder) identity(req *pulumirpc.RegisterResourceRequest, typ, name string) (string, []string) {
	parent := resource.URN(req.GetParent())
	parentType := tokens.Type("")
	if parent != "" {
		parentType = parent.QualifiedType()
	}
	stack, project := parent.Stack(), parent.Project()
	self := resource.NewURN(stack, project, parentType, tokens.Type(typ), name)
	var aliases []string
	for _, a := range req.GetAliases() {
		if u := a.GetUrn(); u != "" {
			aliases = append(aliases, u)
			continue
		}
		spec := a.GetSpec()
		aName, aType, aParentType := name, typ, parentType
		if n := spec.GetName(); n != "" {
			aName = n
		}
		if t := spec.GetType(); t != "" {
			aType = t
		}
		if p := spec.GetParentUrn(); p != "" {
			aParentType = resource.URN(p).QualifiedType()
		} else if spec.GetNoParent() {
			aParentType = ""
		}
		aliases = append(aliases, string(resource.NewURN(stack, project, aParentType, tokens.Type(aType), aName)))
	}
	r.mu.Lock()
	for _, pa := range r.aliases[string(parent)] {
		aliases = append(aliases, string(resource.NewURN(stack, project, resource.URN(pa).QualifiedType(), tokens.Type(typ), name)))
	}
	sort.Strings(aliases)
	aliases = slices.Compact(aliases)
	if len(aliases) > 0 {
		if r.aliases == nil {
			r.aliases = map[string][]string{}
		}
		r.aliases[string(self)] = aliases
	}
	r.mu.Unlock()
	return string(self), aliases
}

// parentKey turns a parent URN into "<type>::<name>"; the root stack is "".
func parentKey(urn string) string {
	if urn == "" {
		return ""
	}
	parts := strings.Split(urn, "::")
	if len(parts) < 4 {
		return urn
	}
	typ := parts[2]
	if i := strings.LastIndex(typ, "$"); i >= 0 {
		typ = typ[i+1:]
	}
	if typ == "pulumi:pulumi:Stack" {
		return ""
	}
	return typ + "::" + strings.Join(parts[3:], "::")
}

// plainMap turns provider inputs into JSON-ready values; secrets print as
// "[secret]" and unknowns as "[unknown]".
func plainMap(m resource.PropertyMap) map[string]any {
	out := make(map[string]any, len(m))
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, string(k))
	}
	sort.Strings(keys)
	for _, k := range keys {
		if strings.HasPrefix(k, "__") {
			continue
		}
		out[k] = plain(m[resource.PropertyKey(k)])
	}
	return out
}

func plain(v resource.PropertyValue) any {
	switch {
	case v.IsSecret():
		return "[secret]"
	case v.IsComputed():
		return "[unknown]"
	case v.IsOutput():
		o := v.OutputValue()
		if o.Secret {
			return "[secret]"
		}
		if !o.Known {
			return "[unknown]"
		}
		return plain(o.Element)
	case v.IsAsset():
		a := v.AssetValue()
		return map[string]any{"asset": map[string]any{"path": a.Path, "sha256": a.Hash}}
	case v.IsArchive():
		a := v.ArchiveValue()
		return map[string]any{"archive": map[string]any{"path": a.Path, "sha256": a.Hash}}
	case v.IsResourceReference():
		ref := v.ResourceReferenceValue()
		return string(ref.URN)
	case v.IsArray():
		arr := v.ArrayValue()
		out := make([]any, len(arr))
		for i, e := range arr {
			out[i] = plain(e)
		}
		return out
	case v.IsObject():
		return plainMap(v.ObjectValue())
	case v.IsNumber():
		f := v.NumberValue()
		if f == float64(int64(f)) {
			return int64(f)
		}
		return f
	case v.IsNull():
		return nil
	default:
		return v.V
	}
}

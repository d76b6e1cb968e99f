// Package twin builds a local twin of a stack from its offline plan: the
// stack's hosts as Linux network namespaces on this machine, its subnets as
// bridges in a router namespace, its security groups compiled to nftables,
// and the flows between them probed with real packets. Everything is
// derived from the plan graph: a change to the program changes the twin.
//
// The model (this file), the nftables rulesets and the expected flows are
// plain Go, tested without privileges; bringing namespaces up needs root,
// `ip` (iproute2) and `nft` (nftables).
package twin

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"webstack/internal/netlayout"
	"webstack/internal/offline/plan"
)

// Host tiers.
const (
	Internet    = "internet"
	AWS         = "aws"
	Web         = "web"
	API         = "api"
	DB          = "db"
	ALB         = "alb"
	InternalALB = "internal-alb"
)

// Host is one namespace of the twin.
type Host struct {
	Name      string     `json:"name"`
	Tier      string     `json:"tier"`
	Namespace string     `json:"namespace"`
	Address   netip.Addr `json:"address"`
	AZ        string     `json:"az"`
	Subnet    string     `json:"subnet"` // public, private, isolated; "" outside the VPC
	Listens   []int      `json:"listens"`
	// Public is the address the internet reaches the host at (the Elastic
	// IP, or the public ALB's), when it has one.
	Public netip.Addr `json:"public,omitzero"`
	// Groups are its security groups' ids; none outside the VPC.
	Groups []string `json:"-"`
	// Resource is the plan resource it stands for ("<type>::<name>").
	Resource string `json:"-"`
	// Instances only: the user data they boot from, the IAM role their
	// instance profile carries, and their launch template's IMDS options.
	Boot *Boot `json:"-"`
	// Load balancers only: the DNS name the plan gives it.
	DNSName  string   `json:"-"`
	Role     string   `json:"-"`
	Metadata Metadata `json:"-"`
}

// Rule is one security-group rule of the plan.
type Rule struct {
	Name     string
	Group    string // the group it belongs to
	Ingress  bool
	Protocol string // "tcp", "udp", "-1" (all)
	From, To int
	CIDR     netip.Prefix // set, or Ref is
	Ref      string       // a referenced group's id
}

// Matches reports whether the rule covers tcp port.
func (r Rule) Matches(port int) bool {
	return r.Protocol == "-1" || r.Protocol == "tcp" && port >= r.From && port <= r.To
}

// Subnet is one subnet of the VPC.
type Subnet struct {
	Tier   string // public, private, isolated
	AZ     string
	Prefix netip.Prefix
}

// Model is the twin of one stack.
type Model struct {
	Stack      string
	VPC        netip.Prefix
	AZs        []string
	Subnets    []Subnet
	Hosts      []Host
	Rules      []Rule
	GroupNames map[string]string // id → logical name
	// Entry is the URL the internet uses.
	Entry string
	// AWS is what the stand-ins serve: the release object, the secrets and
	// the IAM policies of the roles, all from the plan.
	AWS World
	// Listeners (by load balancer "<type>::<name>") and target groups (by
	// ARN) of the load balancers.
	Listeners    map[string][]Listener
	TargetGroups map[string]*TargetGroup
}

// Addresses outside the VPC: the internet client, the AWS stand-ins, the
// public addresses the internet reaches.
var (
	internetAddr = netip.MustParseAddr("198.51.100.10")
	awsAddr      = netip.MustParseAddr("198.18.0.10")
	imdsAddr     = netip.MustParseAddr("169.254.169.254")
	publicBase   = netip.MustParseAddr("203.0.113.10")
)

// From builds the twin's model from a stack's plan, in the order the
// addresses are handed out (a host's address must not change between runs):
// the network, the security groups' rules, the hosts, then what stands
// around them.
func From(g *plan.Graph) (*Model, error) {
	b, err := newBuilder(g)
	if err != nil {
		return nil, err
	}
	for _, step := range []func() error{b.rules, b.instances, b.elasticIPs, b.groups, b.loadBalancers, b.database, b.surroundings} {
		if err := step(); err != nil {
			return nil, err
		}
	}
	return b.m, nil
}

// builder is From's work in progress: the model, and where each subnet's
// next address comes from (skipping the addresses the plan itself gave).
type builder struct {
	g         *plan.Graph
	m         *Model
	subnetOf  map[string]Subnet        // plan subnet id → subnet
	templates map[string]plan.Resource // launch templates by id
	next      map[netip.Prefix]int
	taken     map[netip.Addr]bool
	publics   int
}

// newBuilder reads the network: the VPC, its AZs and subnets (awsx's
// layout, as netlayout computes it).
func newBuilder(g *plan.Graph) (*builder, error) {
	vpcs := g.OfType("awsx:ec2:Vpc")
	if len(vpcs) != 1 {
		return nil, fmt.Errorf("twin: want one awsx Vpc in the plan, found %d", len(vpcs))
	}
	in := vpcs[0].Inputs
	vpc, err := netip.ParsePrefix(fmt.Sprint(in["cidrBlock"]))
	if err != nil {
		return nil, fmt.Errorf("twin: VPC CIDR: %w", err)
	}
	b := &builder{g: g, m: &Model{Stack: g.Stack, VPC: vpc, GroupNames: map[string]string{}},
		subnetOf: map[string]Subnet{}, templates: map[string]plan.Resource{}, next: map[netip.Prefix]int{}, taken: map[netip.Addr]bool{}}
	m := b.m
	for _, az := range plan.List(in["availabilityZoneNames"]) {
		m.AZs = append(m.AZs, fmt.Sprint(az))
	}
	layout, err := netlayout.Layout(vpc, len(m.AZs), netlayout.Specs())
	if err != nil {
		return nil, fmt.Errorf("twin: %w", err)
	}
	for _, s := range layout {
		m.Subnets = append(m.Subnets, Subnet{Tier: strings.ToLower(string(s.Tier)), AZ: m.AZs[s.AZ], Prefix: s.Prefix})
	}
	for _, tier := range []string{"public", "private", "isolated"} {
		for i, id := range plan.List(g.Outputs[tier+"SubnetIds"]) {
			b.subnetOf[fmt.Sprint(id)] = m.subnet(tier, m.AZs[i%len(m.AZs)])
		}
	}
	for _, lt := range g.OfType("aws:ec2/launchTemplate:LaunchTemplate") {
		b.templates[lt.ID] = lt
	}
	return b, nil
}

// place is the next free address of subnet s.
func (b *builder) place(s Subnet) netip.Addr {
	for {
		b.next[s.Prefix]++
		a := s.Prefix.Addr()
		for range 9 + b.next[s.Prefix] {
			a = a.Next()
		}
		if !b.taken[a] {
			b.taken[a] = true
			return a
		}
	}
}

// nextPublic is the next public address the internet reaches.
func (b *builder) nextPublic() netip.Addr {
	a := publicBase
	for range b.publics * 10 {
		a = a.Next()
	}
	b.publics++
	return a
}

// rules are the security groups and their ingress and egress rules.
func (b *builder) rules() error {
	for _, sg := range b.g.OfType("aws:ec2/securityGroup:SecurityGroup") {
		b.m.GroupNames[sg.ID] = sg.Name
	}
	for _, typ := range []string{"aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule", "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"} {
		for _, r := range b.g.OfType(typ) {
			rule := Rule{Name: r.Name, Group: fmt.Sprint(r.Inputs["securityGroupId"]), Ingress: strings.Contains(typ, "Ingress"),
				Protocol: fmt.Sprint(r.Inputs["ipProtocol"]), From: int(plan.Number(r.Inputs["fromPort"])), To: int(plan.Number(r.Inputs["toPort"]))}
			if c, ok := r.Inputs["cidrIpv4"].(string); ok {
				var err error
				if rule.CIDR, err = netip.ParsePrefix(c); err != nil {
					return fmt.Errorf("twin: rule %s: %w", r.Name, err)
				}
			} else if ref, ok := r.Inputs["referencedSecurityGroupId"].(string); ok {
				rule.Ref = ref
			} else {
				return fmt.Errorf("twin: rule %s has neither a CIDR nor a group (prefix lists are not modelled)", r.Name)
			}
			b.m.Rules = append(b.m.Rules, rule)
		}
	}
	return nil
}

// instances are the single topology's standalone instances, each at the
// address the program wires (its privateIp), so its peers' settings are
// true.
func (b *builder) instances() error {
	for _, r := range b.g.OfType("aws:ec2/instance:Instance") {
		tier := tierOf(r.Name)
		s, ok := b.subnetOf[fmt.Sprint(r.Inputs["subnetId"])]
		if !ok {
			return fmt.Errorf("twin: %s is in no known subnet", r.Key())
		}
		addr, err := netip.ParseAddr(fmt.Sprint(r.Outputs["privateIp"]))
		if err != nil || !s.Prefix.Contains(addr) {
			return fmt.Errorf("twin: %s has private address %v, outside its subnet %s", r.Key(), r.Outputs["privateIp"], s.Prefix)
		}
		b.taken[addr] = true
		h := Host{Name: tier, Tier: tier, AZ: s.AZ, Subnet: s.Tier, Address: addr, Groups: strs(r.Inputs["vpcSecurityGroupIds"]), Resource: r.Key()}
		lt := b.templates[fmt.Sprint(plan.Get(r.Inputs, "launchTemplate", "id"))]
		h.Listens = listens(lt)
		if err := instance(b.g, &h, r, lt); err != nil {
			return err
		}
		b.m.Hosts = append(b.m.Hosts, h)
	}
	return nil
}

// elasticIPs make their instance public.
func (b *builder) elasticIPs() error {
	for _, e := range b.g.OfType("aws:ec2/eip:Eip") {
		for i := range b.m.Hosts {
			if b.m.Hosts[i].Tier == tierOf(e.Name) {
				b.m.Hosts[i].Public = b.nextPublic()
			}
		}
	}
	return nil
}

// groups are the ha topology's Auto Scaling groups: minSize instances over
// each group's subnets.
func (b *builder) groups() error {
	for _, r := range b.g.OfType("aws:autoscaling/group:Group") {
		tier := tierOf(r.Name)
		lt := b.templates[fmt.Sprint(plan.Get(r.Inputs, "launchTemplate", "id"))]
		groups := strs(plan.Get(lt.Inputs, "networkInterfaces", 0, "securityGroups"))
		subnets := strs(r.Inputs["vpcZoneIdentifiers"])
		for i := range int(plan.Number(r.Inputs["minSize"])) {
			s := b.subnetOf[subnets[i%len(subnets)]]
			h := Host{Name: fmt.Sprintf("%s-%d", tier, i+1), Tier: tier, AZ: s.AZ, Subnet: s.Tier, Address: b.place(s),
				Groups: groups, Listens: listens(lt), Resource: r.Key()}
			if err := instance(b.g, &h, lt, lt); err != nil {
				return err
			}
			b.m.Hosts = append(b.m.Hosts, h)
		}
	}
	return nil
}

// loadBalancers: one namespace each, in the first of their subnets,
// listening on their listeners' ports.
func (b *builder) loadBalancers() error {
	for _, r := range b.g.OfType("aws:lb/loadBalancer:LoadBalancer") {
		subnets := strs(r.Inputs["subnets"])
		s := b.subnetOf[subnets[0]]
		h := Host{Name: "alb", Tier: ALB, AZ: s.AZ, Subnet: s.Tier, Address: b.place(s), Groups: strs(r.Inputs["securityGroups"]), Resource: r.Key(),
			DNSName: fmt.Sprint(r.Outputs["dnsName"])}
		if r.Inputs["internal"] == true {
			h.Name, h.Tier = "internal-alb", InternalALB
		} else {
			h.Public = b.nextPublic()
		}
		for _, l := range b.g.OfType("aws:lb/listener:Listener") {
			if l.Inputs["loadBalancerArn"] == r.Outputs["arn"] {
				h.Listens = append(h.Listens, int(plan.Number(l.Inputs["port"])))
			}
		}
		slices.Sort(h.Listens)
		b.m.Hosts = append(b.m.Hosts, h)
	}
	return nil
}

// database: one namespace in the first isolated subnet, on the cluster's
// port (AWS's default, 27017, when the plan sets none).
func (b *builder) database() error {
	for _, r := range b.g.OfType("aws:docdb/cluster:Cluster") {
		port := 27017
		if p, ok := r.Inputs["port"]; ok {
			port = int(plan.Number(p))
		}
		s := b.m.subnet("isolated", b.m.AZs[0])
		b.m.Hosts = append(b.m.Hosts, Host{Name: "db", Tier: DB, AZ: s.AZ, Subnet: s.Tier, Address: b.place(s), Groups: strs(r.Inputs["vpcSecurityGroupIds"]), Listens: []int{port}, Resource: r.Key()})
	}
	return nil
}

// surroundings are what is outside the VPC (the internet, AWS's
// stand-ins), each host's namespace, the entry point the internet uses,
// and the load balancers' listeners and target groups.
func (b *builder) surroundings() error {
	m := b.m
	m.Hosts = append(m.Hosts,
		Host{Name: "internet", Tier: Internet, Address: internetAddr},
		Host{Name: "aws", Tier: AWS, Address: awsAddr, Listens: []int{80, 443}})
	for i := range m.Hosts {
		m.Hosts[i].Namespace = m.Namespace(m.Hosts[i].Name)
		if m.Hosts[i].Listens == nil {
			m.Hosts[i].Listens = []int{}
		}
	}
	for _, h := range m.Hosts {
		if h.Public.IsValid() && (h.Tier == ALB || h.Tier == Web) {
			scheme, port := "http", 80
			if slices.Contains(h.Listens, 443) {
				scheme, port = "https", 443
			}
			m.Entry = fmt.Sprintf("%s://%s", scheme, h.Public)
			if port != 80 && port != 443 {
				m.Entry += ":" + strconv.Itoa(port)
			}
		}
	}
	if m.Entry == "" {
		return fmt.Errorf("twin: the plan has no public entry point (Elastic IP or public ALB)")
	}
	var err error
	if m.AWS, err = world(b.g); err != nil {
		return err
	}
	for _, h := range m.Hosts {
		if h.Boot == nil {
			continue
		}
		for _, line := range strings.Split(h.Boot.Env, "\n") {
			if v, ok := strings.CutPrefix(line, "CONDUIT_TLS_SECRET_ARN="); ok {
				m.AWS.WebTLS = append(m.AWS.WebTLS, WebTLS{SecretARN: v, Host: h.Name})
			}
		}
	}
	m.Listeners, m.TargetGroups, err = balancers(b.g, m)
	return err
}

// Namespace is the network namespace name of host name.
func (m *Model) Namespace(name string) string { return "twin-" + m.Stack + "-" + name }

// Router is the namespace routing between the subnets, the internet and AWS.
func (m *Model) Router() string { return m.Namespace("rtr") }

func (m *Model) subnet(tier, az string) Subnet {
	for _, s := range m.Subnets {
		if s.Tier == tier && s.AZ == az {
			return s
		}
	}
	return Subnet{}
}

// Host returns the host named name.
func (m *Model) Host(name string) (Host, bool) {
	for _, h := range m.Hosts {
		if h.Name == name {
			return h, true
		}
	}
	return Host{}, false
}

// members are the private addresses of the hosts in group.
func (m *Model) members(group string) []netip.Addr {
	var out []netip.Addr
	for _, h := range m.Hosts {
		if slices.Contains(h.Groups, group) {
			out = append(out, h.Address)
		}
	}
	return out
}

// InVPC reports whether h is one of the VPC's hosts.
func (h Host) InVPC() bool { return h.Subnet != "" }

// tierOf is the tier a compute resource named "<x>-web" / "<x>-api" runs.
func tierOf(name string) string {
	if strings.HasSuffix(name, "-api") {
		return API
	}
	return Web
}

// listens are the ports a launch template's conduit listens on: the
// *_ADDR settings of its rendered user data.
func listens(lt plan.Resource) []int {
	doc, err := UserData(lt)
	if err != nil {
		return nil
	}
	var out []int
	for _, line := range strings.Split(doc.Env, "\n") {
		k, v, ok := strings.Cut(line, "=")
		if !ok || k == "CONDUIT_ADMIN_ADDR" || !strings.HasSuffix(k, "_ADDR") {
			continue
		}
		if i := strings.LastIndex(v, ":"); i >= 0 {
			if p, err := strconv.Atoi(v[i+1:]); err == nil {
				out = append(out, p)
			}
		}
	}
	slices.Sort(out)
	return out
}

func strs(v any) []string {
	var out []string
	for _, x := range plan.List(v) {
		out = append(out, fmt.Sprint(x))
	}
	return out
}

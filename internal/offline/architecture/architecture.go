// Package architecture draws a stack's architecture from its offline plan:
// the request path (users → entry point and its protections → web tier per AZ
// → internal ALB → api tier → DocumentDB primary and replicas), inside the VPC
// and its subnet tiers, with the security groups' ports on every hop. Nothing
// is hand-drawn: change the config (say, 3 AZs) and the picture changes.
// The same diagram renders as Mermaid or as Graphviz DOT.
package architecture

import (
	"fmt"
	"slices"
	"strings"

	"webstack/internal/offline/plan"
)

// Diagram is a renderer-neutral picture: nested boxes of nodes, and edges.
type Diagram struct {
	Title string
	Root  Box
	Edges []Edge
}

// Box is a boundary (VPC, subnet tier) holding nodes and boxes.
type Box struct {
	ID, Label string
	Nodes     []Node
	Boxes     []Box
}

// Node is one element on the path.
type Node struct {
	ID, Label string
	Shape     string // "actor", "box", "db"
}

// Edge is a hop, labelled with what guards it.
type Edge struct {
	From, To, Label string
	Dashed          bool
}

// From builds the diagram of g.
func From(g *plan.Graph) (*Diagram, error) {
	m, err := readModel(g)
	if err != nil {
		return nil, err
	}
	return m.diagram(), nil
}

// model is what the picture needs, read from the graph.
type model struct {
	stack, cidr, nat string
	azs              []string
	public, private  []any // subnet ids, in AZ order
	alb              bool
	https            bool
	waf              string // "" or "AWS WAF (n rules, mode)"
	shieldAdvanced   bool
	eip              string
	web, api         tier
	dbInstances      []dbInstance
	ports            map[string][]int // "from>to" security group rule ports, sorted
	monitoring       string           // the operations tier, one line; "" without one
}

type tier struct {
	kind, instanceType string // kind: "ASG" or "instance"
	min, max           int64
	azs                []string
}

type dbInstance struct{ class, az string }

func readModel(g *plan.Graph) (*model, error) {
	vpcs := g.OfType("awsx:ec2:Vpc")
	if len(vpcs) != 1 {
		return nil, fmt.Errorf("architecture: want one awsx Vpc, found %d", len(vpcs))
	}
	vpc := vpcs[0].Inputs
	m := &model{stack: g.Stack, cidr: str(vpc["cidrBlock"]), nat: str(plan.Get(vpc, "natGateways", "strategy")), ports: map[string][]int{}}
	for _, az := range plan.List(vpc["availabilityZoneNames"]) {
		m.azs = append(m.azs, str(az))
	}
	m.public, m.private = plan.List(g.Outputs["publicSubnetIds"]), plan.List(g.Outputs["privateSubnetIds"])
	if topics := g.OfType("aws:sns/topic:Topic"); len(topics) > 0 {
		parts := []string{fmt.Sprintf("%d alarms → SNS %s", len(g.OfType("aws:cloudwatch/metricAlarm:MetricAlarm")), str(topics[0].Inputs["name"]))}
		if len(g.OfType("aws:cloudwatch/dashboard:Dashboard")) > 0 {
			parts = append(parts, "dashboard")
		}
		parts = append(parts, fmt.Sprintf("%d log groups", len(g.OfType("aws:cloudwatch/logGroup:LogGroup"))))
		for _, b := range g.OfType("aws:budgets/budget:Budget") {
			parts = append(parts, "budget $"+str(b.Inputs["limitAmount"]))
		}
		if len(g.OfType("aws:backup/plan:Plan")) > 0 {
			parts = append(parts, "AWS Backup")
		}
		m.monitoring = "CloudWatch monitoring<br/>" + strings.Join(parts, " · ")
	}

	for _, lb := range g.OfType("aws:lb/loadBalancer:LoadBalancer") {
		if lb.Inputs["internal"] != true {
			m.alb = true
		}
	}
	for _, l := range g.OfType("aws:lb/listener:Listener") {
		if l.Inputs["protocol"] == "HTTPS" {
			m.https = true
		}
	}
	for _, acl := range g.OfType("aws:wafv2/webAcl:WebAcl") {
		mode := "block"
		for _, r := range plan.List(acl.Inputs["rules"]) {
			if plan.Get(r, "overrideAction", "count") != nil || plan.Get(r, "action", "count") != nil {
				mode = "count"
			}
		}
		m.waf = fmt.Sprintf("AWS WAF: %d rules, %s", len(plan.List(acl.Inputs["rules"])), mode)
	}
	m.shieldAdvanced = len(g.OfType("aws:shield/protection:Protection")) > 0
	if len(g.OfType("aws:ec2/eip:Eip")) > 0 {
		m.eip = "Elastic IP"
	}

	lts := map[string]plan.Resource{}
	for _, lt := range g.OfType("aws:ec2/launchTemplate:LaunchTemplate") {
		lts[lt.ID] = lt
	}
	for _, r := range append(g.OfType("aws:autoscaling/group:Group"), g.OfType("aws:ec2/instance:Instance")...) {
		t := tier{kind: "instance", instanceType: str(lts[str(plan.Get(r.Inputs, "launchTemplate", "id"))].Inputs["instanceType"]), min: 1, max: 1}
		if r.Type == "aws:autoscaling/group:Group" {
			t.kind, t.min, t.max = "ASG", int64(plan.Number(r.Inputs["minSize"])), int64(plan.Number(r.Inputs["maxSize"]))
			for _, s := range plan.List(r.Inputs["vpcZoneIdentifiers"]) {
				t.azs = append(t.azs, m.azOf(s))
			}
		} else {
			t.azs = []string{m.azOf(r.Inputs["subnetId"])}
		}
		switch {
		case strings.HasSuffix(r.Name, "-web"):
			m.web = t
		case strings.HasSuffix(r.Name, "-api"):
			m.api = t
		}
	}
	if m.web.kind == "" || m.api.kind == "" {
		return nil, fmt.Errorf("architecture: the graph has no web or api tier")
	}
	for _, d := range g.OfType("aws:docdb/clusterInstance:ClusterInstance") {
		m.dbInstances = append(m.dbInstances, dbInstance{class: str(d.Inputs["instanceClass"]), az: str(d.Inputs["availabilityZone"])})
	}

	sgName := map[string]string{}
	for _, sg := range g.OfType("aws:ec2/securityGroup:SecurityGroup") {
		sgName[sg.ID] = sg.Name[strings.Index(sg.Name, "-")+1:]
	}
	for _, r := range g.OfType("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule") {
		from := "internet"
		if ref, ok := r.Inputs["referencedSecurityGroupId"]; ok {
			from = sgName[str(ref)]
		}
		key := from + ">" + sgName[str(r.Inputs["securityGroupId"])]
		if p := int(plan.Number(r.Inputs["fromPort"])); !slices.Contains(m.ports[key], p) {
			m.ports[key] = append(m.ports[key], p)
			slices.Sort(m.ports[key])
		}
	}
	return m, nil
}

func (m *model) azOf(subnet any) string {
	for _, ids := range [][]any{m.public, m.private} {
		if i := slices.Index(ids, subnet); i >= 0 && i < len(m.azs) {
			return m.azs[i]
		}
	}
	return "?"
}

// hop labels an edge with the security group rule that allows it.
func (m *model) hop(from, to, extra string) string {
	label := ""
	if ps, ok := m.ports[from+">"+to]; ok {
		var s []string
		for _, p := range ps {
			s = append(s, fmt.Sprintf(":%d", p))
		}
		label = fmt.Sprintf("SG %s %s", to, strings.Join(s, ", "))
	}
	if extra != "" {
		label = strings.TrimPrefix(label+" · "+extra, " · ")
	}
	return label
}

func (m *model) diagram() *Diagram {
	d := &Diagram{Title: fmt.Sprintf("webstack %s", m.stack)}
	users := Node{ID: "users", Label: "Users (internet)", Shape: "actor"}
	public := Box{ID: "public", Label: "public subnets"}
	private := Box{ID: "private", Label: "private subnets"}
	isolated := Box{ID: "isolated", Label: "isolated subnets"}

	shield := "Shield Standard"
	if m.shieldAdvanced {
		shield = "Shield Advanced"
	}
	tierNodes := func(name string, t tier, box *Box) []string {
		var ids []string
		for _, az := range t.azs {
			id := name + "_" + ident(az)
			label := fmt.Sprintf("%s · %s<br/>%s", name, t.instanceType, az)
			if t.kind == "ASG" {
				label = fmt.Sprintf("%s ASG (%d–%d) · %s<br/>%s", name, t.min, t.max, t.instanceType, az)
			}
			if name == "web" && !m.alb {
				label += "<br/>Coraza WAF (OWASP CRS)"
			}
			box.Nodes = append(box.Nodes, Node{ID: id, Label: label, Shape: "box"})
			ids = append(ids, id)
		}
		return ids
	}

	var webIDs []string
	if m.alb {
		proto := "HTTP :80"
		if m.https {
			proto = "HTTPS :443 (TLS 1.3), :80 redirects"
		}
		public.Nodes = append(public.Nodes, Node{ID: "alb", Label: fmt.Sprintf("public ALB · %d AZs<br/>%s", len(m.azs), proto), Shape: "box"})
		edge := shield
		if m.waf != "" {
			edge += " · " + m.waf
		}
		d.Edges = append(d.Edges, Edge{From: "users", To: "alb", Label: m.hop("internet", "public-alb", edge)})
		webIDs = tierNodes("web", m.web, &private)
		for _, w := range webIDs {
			d.Edges = append(d.Edges, Edge{From: "alb", To: w, Label: m.hop("public-alb", "web", "")})
		}
	} else {
		webIDs = tierNodes("web", m.web, &public)
		for _, w := range webIDs {
			d.Edges = append(d.Edges, Edge{From: "users", To: w, Label: m.hop("internet", "web", shield+" · "+m.eip)})
		}
	}
	apiIDs := tierNodes("api", m.api, &private)
	if m.alb {
		private.Nodes = append(private.Nodes, Node{ID: "ialb", Label: "internal ALB", Shape: "box"})
		for _, w := range webIDs {
			d.Edges = append(d.Edges, Edge{From: w, To: "ialb", Label: m.hop("web", "internal-alb", "")})
		}
		for _, a := range apiIDs {
			d.Edges = append(d.Edges, Edge{From: "ialb", To: a, Label: m.hop("internal-alb", "api", "")})
		}
	} else {
		for _, w := range webIDs {
			for _, a := range apiIDs {
				d.Edges = append(d.Edges, Edge{From: w, To: a, Label: m.hop("web", "api", "")})
			}
		}
	}
	for i, db := range m.dbInstances {
		id, role := fmt.Sprintf("db%d", i+1), "replica"
		if i == 0 {
			role = "primary"
		}
		isolated.Nodes = append(isolated.Nodes, Node{ID: id, Label: fmt.Sprintf("DocumentDB %s<br/>%s · %s", role, db.class, db.az), Shape: "db"})
		if i == 0 {
			for _, a := range apiIDs {
				d.Edges = append(d.Edges, Edge{From: a, To: id, Label: m.hop("api", "db", "TLS")})
			}
		} else {
			d.Edges = append(d.Edges, Edge{From: "db1", To: id, Label: "replication", Dashed: true})
		}
	}
	vpc := Box{ID: "vpc", Label: fmt.Sprintf("VPC %s · %d AZs · NAT %s", m.cidr, len(m.azs), m.nat)}
	for _, b := range []Box{public, private, isolated} {
		if len(b.Nodes) > 0 {
			vpc.Boxes = append(vpc.Boxes, b)
		}
	}
	d.Root = Box{ID: "root", Nodes: []Node{users}, Boxes: []Box{vpc}}
	if m.monitoring != "" {
		d.Root.Nodes = append(d.Root.Nodes, Node{ID: "monitoring", Label: m.monitoring, Shape: "box"})
	}
	return d
}

// Mermaid renders the diagram as a Mermaid flowchart.
func (d *Diagram) Mermaid() string {
	var b strings.Builder
	b.WriteString("flowchart LR\n")
	var box func(x Box, indent string)
	box = func(x Box, indent string) {
		for _, n := range x.Nodes {
			open, close := "[\"", "\"]"
			switch n.Shape {
			case "actor":
				open, close = "([\"", "\"])"
			case "db":
				open, close = "[(\"", "\")]"
			}
			fmt.Fprintf(&b, "%s%s%s%s%s\n", indent, n.ID, open, n.Label, close)
		}
		for _, c := range x.Boxes {
			fmt.Fprintf(&b, "%ssubgraph %s[\"%s\"]\n", indent, c.ID, c.Label)
			box(c, indent+"  ")
			fmt.Fprintf(&b, "%send\n", indent)
		}
	}
	box(d.Root, "  ")
	for _, e := range d.Edges {
		arrow := "-->"
		if e.Dashed {
			arrow = "-.->"
		}
		if e.Label != "" {
			fmt.Fprintf(&b, "  %s %s|\"%s\"| %s\n", e.From, arrow, e.Label, e.To)
		} else {
			fmt.Fprintf(&b, "  %s %s %s\n", e.From, arrow, e.To)
		}
	}
	return b.String()
}

// DOT renders the diagram for Graphviz, boxes as clusters.
func (d *Diagram) DOT() string {
	var b strings.Builder
	fmt.Fprintf(&b, "digraph %q {\n  rankdir=LR;\n  fontname=\"Helvetica\";\n  node [fontname=\"Helvetica\", fontsize=10];\n  edge [fontname=\"Helvetica\", fontsize=9];\n  label=%q;\n", d.Title, d.Title)
	var box func(x Box, indent string)
	box = func(x Box, indent string) {
		for _, n := range x.Nodes {
			shape := "box"
			switch n.Shape {
			case "actor":
				shape = "ellipse"
			case "db":
				shape = "cylinder"
			}
			fmt.Fprintf(&b, "%s%s [label=%q, shape=%s];\n", indent, n.ID, strings.ReplaceAll(n.Label, "<br/>", "\n"), shape)
		}
		for _, c := range x.Boxes {
			fmt.Fprintf(&b, "%ssubgraph cluster_%s {\n%s  label=%q;\n", indent, c.ID, indent, c.Label)
			box(c, indent+"  ")
			fmt.Fprintf(&b, "%s}\n", indent)
		}
	}
	box(d.Root, "  ")
	for _, e := range d.Edges {
		style := ""
		if e.Dashed {
			style = ", style=dashed"
		}
		fmt.Fprintf(&b, "  %s -> %s [label=%q%s];\n", e.From, e.To, e.Label, style)
	}
	b.WriteString("}\n")
	return b.String()
}

func ident(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return '_'
	}, s)
}

func str(v any) string {
	if v == nil {
		return ""
	}
	return fmt.Sprint(v)
}

package twin

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// Ruleset is the nftables ruleset of h's namespace: its security groups,
// stateful like a security group (what was let in or out may answer),
// everything else dropped. Group references become the twin addresses of
// the group's members. Instances may reach the metadata service, which
// security groups do not filter on AWS either. Hosts outside the VPC have
// no security group: an empty ruleset.
func (m *Model) Ruleset(h Host) string {
	if !h.InVPC() {
		return ""
	}
	var in, out []string
	for _, r := range m.Rules {
		if !slices.Contains(h.Groups, r.Group) {
			continue
		}
		dir := "daddr"
		if r.Ingress {
			dir = "saddr"
		}
		var peers string
		if r.Ref != "" {
			addrs := m.members(r.Ref)
			if len(addrs) == 0 {
				continue // a group nobody is in lets nothing through
			}
			var s []string
			for _, a := range addrs {
				s = append(s, a.String())
			}
			peers = "{ " + strings.Join(s, ", ") + " }"
		} else {
			peers = r.CIDR.String()
		}
		match := fmt.Sprintf("ip %s %s", dir, peers)
		switch r.Protocol {
		case "-1":
		case "tcp", "udp":
			ports := fmt.Sprint(r.From)
			if r.To != r.From {
				ports = fmt.Sprintf("%d-%d", r.From, r.To)
			}
			match += fmt.Sprintf(" %s dport %s", r.Protocol, ports)
		default:
			match += " meta l4proto " + r.Protocol
		}
		line := fmt.Sprintf("    %s accept comment %q", match, r.Name)
		if r.Ingress {
			in = append(in, line)
		} else {
			out = append(out, line)
		}
	}
	if h.Tier == Web || h.Tier == API {
		out = append(out, fmt.Sprintf("    ip daddr %s tcp dport 80 accept comment \"instance metadata (not filtered by security groups)\"", imdsAddr))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "table inet twin {\n  chain input {\n    type filter hook input priority 0; policy drop;\n    iif lo accept\n    ct state established,related accept\n")
	for _, l := range in {
		b.WriteString(l + "\n")
	}
	fmt.Fprintf(&b, "  }\n  chain output {\n    type filter hook output priority 0; policy drop;\n    oif lo accept\n    ct state established,related accept\n")
	for _, l := range out {
		b.WriteString(l + "\n")
	}
	b.WriteString("  }\n}\n")
	return b.String()
}

// Flow is one probe: from a namespace to an address and port.
type Flow struct {
	From    string     // host name
	To      string     // host name the address belongs to
	Address netip.Addr // private, or the public address
	Port    int
}

// Flows are every probe of the reachability matrix: from each host but
// the AWS stand-ins (which answer, never call) to each VPC host's address
// and every port any listener or rule names; the internet probes the
// public addresses too.
func (m *Model) Flows() []Flow {
	portSet := map[int]bool{}
	for _, h := range m.Hosts {
		for _, p := range h.Listens {
			portSet[p] = true
		}
	}
	for _, r := range m.Rules {
		if r.Protocol == "tcp" && r.From == r.To {
			portSet[r.From] = true
		}
	}
	var ports []int
	for p := range portSet {
		ports = append(ports, p)
	}
	slices.Sort(ports)
	var out []Flow
	for _, src := range m.Hosts {
		if src.Tier == AWS {
			continue
		}
		for _, dst := range m.Hosts {
			if !dst.InVPC() || dst.Name == src.Name {
				continue
			}
			addrs := []netip.Addr{dst.Address}
			if dst.Public.IsValid() && src.Tier == Internet {
				addrs = append(addrs, dst.Public)
			}
			for _, a := range addrs {
				for _, p := range ports {
					out = append(out, Flow{From: src.Name, To: dst.Name, Address: a, Port: p})
				}
			}
		}
	}
	return out
}

// Allowed is what the plan says of f: the network routes it (the internet
// reaches only public addresses, which lead to their host; the isolated
// subnets have no route out), the source's groups let it out and the
// destination's let it in.
func (m *Model) Allowed(f Flow) bool {
	src, _ := m.Host(f.From)
	dst, _ := m.Host(f.To)
	if src.Tier == Internet && f.Address != dst.Public {
		return false
	}
	if src.Tier != Internet && f.Address != dst.Address {
		return false
	}
	return m.lets(src, dst, f.Port, false) && m.lets(dst, src, f.Port, true)
}

// lets reports whether h's groups let traffic with peer on port through:
// out (ingress false: h sends to peer) or in.
func (m *Model) lets(h, peer Host, port int, ingress bool) bool {
	if !h.InVPC() {
		return true
	}
	for _, r := range m.Rules {
		if r.Ingress != ingress || !slices.Contains(h.Groups, r.Group) || !r.Matches(port) {
			continue
		}
		if r.Ref != "" && slices.Contains(peer.Groups, r.Ref) || r.Ref == "" && r.CIDR.Contains(peer.Address) {
			return true
		}
	}
	return false
}

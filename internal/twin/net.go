package twin

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
)

// Preflight says, in one line, what this machine lacks to run a twin.
func Preflight() error {
	if os.Geteuid() != 0 {
		return errors.New("the twin needs root (network namespaces and nftables): run it as root")
	}
	for _, tool := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("the twin needs %q: apt-get install -y iproute2 nftables", tool)
		}
	}
	probe := "twin-preflight"
	_ = exec.Command("ip", "netns", "del", probe).Run()
	if out, err := exec.Command("ip", "netns", "add", probe).CombinedOutput(); err != nil {
		return fmt.Errorf("this kernel refuses network namespaces: %s", strings.TrimSpace(string(out)))
	}
	defer exec.Command("ip", "netns", "del", probe).Run()
	if out, err := exec.Command("ip", "netns", "exec", probe, "nft", "list", "tables").CombinedOutput(); err != nil {
		return fmt.Errorf("nftables does not work in a namespace here: %s", strings.TrimSpace(string(out)))
	}
	return nil
}

// run runs a command, with its output in the error.
func run(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// nftIn loads ruleset into namespace ns.
func nftIn(ns, ruleset string) error {
	cmd := exec.Command("ip", "netns", "exec", ns, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(ruleset)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("nft in %s: %w: %s\n%s", ns, err, strings.TrimSpace(string(out)), ruleset)
	}
	return nil
}

// gateway is a subnet's router address (the VPC router's, .1).
func gateway(p netip.Prefix) netip.Addr { return p.Addr().Next() }

// Up builds the twin's network: the router namespace with a bridge per
// subnet in use, a namespace per host wired to its subnet's bridge, the
// internet and AWS stand-in namespaces on links of their own, the router's
// NAT for public addresses, and each host's security groups as nftables.
// Every link is made inside the namespaces: nothing is added to the
// machine's own network.
func (m *Model) Up() error {
	if err := m.Down(); err != nil {
		return err
	}
	rtr := m.Router()
	steps := [][]string{
		{"ip", "netns", "add", rtr},
		{"ip", "-n", rtr, "link", "set", "lo", "up"},
		{"ip", "netns", "exec", rtr, "sysctl", "-qw", "net.ipv4.ip_forward=1"},
	}
	bridges := map[netip.Prefix]string{}
	for i, s := range m.Subnets {
		used := slices.ContainsFunc(m.Hosts, func(h Host) bool { return h.InVPC() && s.Prefix.Contains(h.Address) })
		if !used {
			continue
		}
		br := fmt.Sprintf("br%d", i)
		bridges[s.Prefix] = br
		steps = append(steps,
			[]string{"ip", "-n", rtr, "link", "add", br, "type", "bridge"},
			[]string{"ip", "-n", rtr, "addr", "add", netip.PrefixFrom(gateway(s.Prefix), s.Prefix.Bits()).String(), "dev", br},
			[]string{"ip", "-n", rtr, "link", "set", br, "up"})
	}
	for i, h := range m.Hosts {
		ns := h.Namespace
		peer := fmt.Sprintf("h%d", i)
		switch h.Tier {
		case Internet:
			peer = "igw"
		case AWS:
			peer = "awsx"
		}
		steps = append(steps, []string{"ip", "netns", "add", ns}, []string{"ip", "-n", ns, "link", "set", "lo", "up"},
			[]string{"ip", "link", "add", "eth0", "netns", ns, "type", "veth", "peer", "name", peer, "netns", rtr},
			[]string{"ip", "-n", ns, "link", "set", "eth0", "up"}, []string{"ip", "-n", rtr, "link", "set", peer, "up"})
		switch {
		case h.InVPC():
			s := m.subnetOfAddr(h.Address)
			steps = append(steps,
				[]string{"ip", "-n", ns, "addr", "add", netip.PrefixFrom(h.Address, s.Prefix.Bits()).String(), "dev", "eth0"},
				[]string{"ip", "-n", rtr, "link", "set", peer, "master", bridges[s.Prefix]},
				[]string{"ip", "-n", ns, "route", "add", "default", "via", gateway(s.Prefix).String()})
		case h.Tier == Internet:
			// The internet reaches the public addresses, and nothing else.
			steps = append(steps,
				[]string{"ip", "-n", ns, "addr", "add", h.Address.String() + "/24", "dev", "eth0"},
				[]string{"ip", "-n", rtr, "addr", "add", "198.51.100.1/24", "dev", "igw"},
				[]string{"ip", "-n", ns, "route", "add", "203.0.113.0/24", "via", "198.51.100.1"})
		case h.Tier == AWS:
			steps = append(steps,
				[]string{"ip", "-n", ns, "addr", "add", h.Address.String() + "/24", "dev", "eth0"},
				[]string{"ip", "-n", ns, "addr", "add", imdsAddr.String() + "/32", "dev", "eth0"},
				[]string{"ip", "-n", rtr, "addr", "add", "198.18.0.1/24", "dev", "awsx"},
				[]string{"ip", "-n", rtr, "route", "add", imdsAddr.String() + "/32", "via", h.Address.String()},
				[]string{"ip", "-n", ns, "route", "add", m.VPC.String(), "via", "198.18.0.1"})
		}
	}
	for _, s := range steps {
		if err := run(s[0], s[1:]...); err != nil {
			_ = m.Down()
			return err
		}
	}
	if err := nftIn(rtr, m.routerRuleset(bridges)); err != nil {
		_ = m.Down()
		return err
	}
	for _, h := range m.Hosts {
		if rs := m.Ruleset(h); rs != "" {
			if err := nftIn(h.Namespace, rs); err != nil {
				_ = m.Down()
				return err
			}
		}
	}
	return nil
}

// routerRuleset is the VPC's edge: public addresses are NATed one to one
// to their host (the internet gateway), the internet reaches only them,
// and the isolated subnets have no route out.
func (m *Model) routerRuleset(bridges map[netip.Prefix]string) string {
	var b strings.Builder
	b.WriteString("table ip twin {\n  chain prerouting {\n    type nat hook prerouting priority dstnat;\n")
	for _, h := range m.Hosts {
		if h.Public.IsValid() {
			fmt.Fprintf(&b, "    iifname \"igw\" ip daddr %s dnat to %s comment %q\n", h.Public, h.Address, h.Name)
		}
	}
	b.WriteString("  }\n  chain forward {\n    type filter hook forward priority 0; policy accept;\n")
	b.WriteString("    iifname \"igw\" ct status dnat accept\n    iifname \"igw\" ct state established,related accept\n    iifname \"igw\" drop comment \"the internet reaches public addresses only\"\n")
	b.WriteString("    iifname \"awsx\" ct state established,related accept\n    iifname \"awsx\" drop comment \"AWS answers, never calls\"\n")
	for _, s := range m.Subnets {
		if br, ok := bridges[s.Prefix]; ok && s.Tier == "isolated" {
			fmt.Fprintf(&b, "    iifname %q oifname { \"igw\", \"awsx\" } drop comment \"isolated subnets have no route out\"\n", br)
		}
	}
	b.WriteString("  }\n}\n")
	return b.String()
}

func (m *Model) subnetOfAddr(a netip.Addr) Subnet {
	for _, s := range m.Subnets {
		if s.Prefix.Contains(a) {
			return s
		}
	}
	return Subnet{}
}

// Down removes every namespace of the stack's twin (their links, bridges
// and nftables go with them) after killing what runs inside. Safe to run
// twice, or after a crash.
func (m *Model) Down() error {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return fmt.Errorf("ip netns list: %w", err)
	}
	prefix := "twin-" + m.Stack + "-"
	var errs []error
	for _, line := range strings.Split(string(out), "\n") {
		ns, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		if !strings.HasPrefix(ns, prefix) {
			continue
		}
		if pids, err := exec.Command("ip", "netns", "pids", ns).Output(); err == nil {
			for _, p := range bytes.Fields(pids) {
				var pid int
				// Not this process: a thread of it that probed the twin
				// may still sit in the namespace (see inNamespace).
				if _, err := fmt.Sscan(string(p), &pid); err == nil && pid != os.Getpid() {
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		}
		if err := run("ip", "netns", "del", ns); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// ClosedWorld checks that no twin namespace reaches the machine's own
// addresses: the twin's only links are between its namespaces.
func (m *Model) ClosedWorld() error {
	out, err := exec.Command("ip", "-4", "-o", "addr", "show", "scope", "global").Output()
	if err != nil {
		return fmt.Errorf("ip addr: %w", err)
	}
	var targets []string
	for _, f := range strings.Split(string(out), "\n") {
		fields := strings.Fields(f)
		for i, x := range fields {
			if x == "inet" && i+1 < len(fields) {
				if p, err := netip.ParsePrefix(fields[i+1]); err == nil {
					for _, port := range []string{"22", "80", "443", "8080"} {
						targets = append(targets, netip.AddrPortFrom(p.Addr(), 0).Addr().String()+":"+port)
					}
				}
			}
		}
	}
	if len(targets) == 0 {
		return nil // the machine has no global address to leak to
	}
	for _, ns := range append([]string{m.Router()}, m.namespaces()...) {
		open, err := probeIn(ns, targets)
		if err != nil {
			return fmt.Errorf("closed world: %w", err)
		}
		for t, ok := range open {
			if ok {
				return fmt.Errorf("twin namespace %s reaches this machine at %s", ns, t)
			}
		}
	}
	return nil
}

func (m *Model) namespaces() []string {
	var out []string
	for _, h := range m.Hosts {
		out = append(out, h.Namespace)
	}
	return out
}

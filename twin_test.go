package main

import (
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"webstack/internal/offline/architecture"
	"webstack/internal/twin"
)

// hop is one flow between hosts on a port.
type hop struct {
	from, to string
	port     int
}

// pathFlows are the flows the twin's model allows along the architecture's
// path: admitted by a group reference, or from the internet. (Flows that
// only 0.0.0.0/0 rules admit between VPC hosts — an instance reaching the
// public ALB's HTTPS listener, open to anyone — are not drawn.)
func pathFlows(m *twin.Model) []hop {
	seen := map[hop]bool{}
	for _, f := range m.Flows() {
		if !m.Allowed(f) {
			continue
		}
		src, _ := m.Host(f.From)
		dst, _ := m.Host(f.To)
		byRef := false
		for _, r := range m.Rules {
			if r.Ingress && slices.Contains(dst.Groups, r.Group) && r.Matches(f.Port) && r.Ref != "" && slices.Contains(src.Groups, r.Ref) {
				byRef = true
			}
		}
		if byRef || src.Tier == twin.Internet {
			seen[hop{f.From, f.To, f.Port}] = true
		}
	}
	var out []hop
	for h := range seen {
		out = append(out, h)
	}
	return out
}

var sgPorts = regexp.MustCompile(`SG \S+ ((?::\d+(?:, )?)+)`)

// diagramFlows are the diagram's security-group edges, as twin hosts.
func diagramFlows(t *testing.T, d *architecture.Diagram, m *twin.Model) []hop {
	t.Helper()
	hostsOf := func(node string) []string {
		switch {
		case node == "users":
			return []string{"internet"}
		case node == "alb":
			return []string{"alb"}
		case node == "ialb":
			return []string{"internal-alb"}
		case strings.HasPrefix(node, "db"):
			return []string{"db"}
		}
		tier, az, _ := strings.Cut(node, "_")
		var out []string
		for _, h := range m.Hosts {
			if h.Tier == tier && strings.ReplaceAll(h.AZ, "-", "_") == az {
				out = append(out, h.Name)
			}
		}
		return out
	}
	var out []hop
	for _, e := range d.Edges {
		mm := sgPorts.FindStringSubmatch(e.Label)
		if e.Dashed || mm == nil {
			continue
		}
		for _, p := range strings.Split(mm[1], ", ") {
			port, _ := strconv.Atoi(strings.TrimPrefix(p, ":"))
			for _, from := range hostsOf(e.From) {
				for _, to := range hostsOf(e.To) {
					out = append(out, hop{from, to, port})
				}
			}
		}
	}
	return out
}

// The twin is the plan's: its hosts sit where the plan puts them, and the
// flows its security groups allow along the path are exactly the
// diagrams' edges.
func TestTwinAndDiagramsAgreeOnTheFlows(t *testing.T) {
	for _, s := range allStacks {
		t.Run(s, func(t *testing.T) {
			g := planOf(t, s)
			m, err := twin.From(g)
			require.NoError(t, err)
			d, err := architecture.From(g)
			require.NoError(t, err)
			want := diagramFlows(t, d, m)
			require.NotEmpty(t, want)
			assert.ElementsMatch(t, want, pathFlows(m))

			for _, h := range m.Hosts {
				if !h.InVPC() {
					continue
				}
				assert.True(t, slices.ContainsFunc(m.Subnets, func(sn twin.Subnet) bool {
					return sn.Prefix.Contains(h.Address) && sn.Tier == h.Subnet && sn.AZ == h.AZ
				}), "%s sits in its %s subnet of %s", h.Name, h.Subnet, h.AZ)
				assert.NotEmpty(t, h.Listens, h.Name)
			}
			web := 0
			for _, h := range m.Hosts {
				if h.Tier == twin.Web {
					web++
				}
			}
			assert.Equal(t, map[string]int{"dev": 1, "staging": 2, "prod": 3}[s], web, "minSize instances per group")
		})
	}
}

// twinOrSkip says why the packet tests cannot run here.
func twinOrSkip(t *testing.T) {
	t.Helper()
	if err := twin.Preflight(); err != nil {
		if os.Geteuid() == 0 {
			t.Fatalf("running as root, so the twin must run: %v", err)
		}
		t.Skipf("the twin cannot run here: %v", err)
	}
}

// With the plan's rules, every probe agrees with the plan; without one
// rule, the packets show exactly that rule's flow missing — the matrix
// cannot pass vacuously. And down leaves nothing behind.
func TestTwinMatrixCatchesAMissingRule(t *testing.T) {
	twinOrSkip(t)
	g := planOf(t, "dev")
	g.Stack = "test" // namespaces twin-test-*: apart from a twin someone runs
	m, err := twin.From(g)
	require.NoError(t, err)
	t.Cleanup(func() { _ = m.Down() })

	broken := *m
	broken.Rules = slices.DeleteFunc(slices.Clone(m.Rules), func(r twin.Rule) bool { return r.Name == "security-web-to-api" && r.Ingress })
	require.Len(t, broken.Rules, len(m.Rules)-1)
	require.NoError(t, broken.Up())
	results, err := m.Matrix() // the plan's expectations, the broken twin's packets
	require.NoError(t, err)
	var deviations []string
	for _, r := range results {
		if r.Want != r.Got {
			deviations = append(deviations, r.From+"→"+r.To+":"+strconv.Itoa(r.Port))
		}
	}
	assert.Equal(t, []string{"web→api:8081"}, deviations)

	require.NoError(t, m.Up())
	results, err = m.Matrix()
	require.NoError(t, err)
	for _, r := range results {
		assert.Equal(t, r.Want, r.Got, "%+v", r.Flow)
	}
	require.NoError(t, m.ClosedWorld())

	require.NoError(t, m.Down())
	require.NoError(t, m.Down(), "twice is fine")
	out, err := exec.Command("ip", "netns", "list").Output()
	require.NoError(t, err)
	assert.NotContains(t, string(out), "twin-test-", "no namespace left")
}

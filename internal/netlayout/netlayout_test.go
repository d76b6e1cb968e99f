package netlayout

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestLayoutMatchesAwsxAllocation(t *testing.T) {
	// awsx v2.22.0, subnetStrategy Auto, 10.0.0.0/16, 3 AZs, specs
	// private /20, public /22, isolated /22: AZ blocks are /18.
	got, err := Layout(netip.MustParsePrefix("10.0.0.0/16"), 3, Specs())
	require.NoError(t, err)
	var s []string
	for _, n := range got {
		s = append(s, fmt.Sprintf("%s-%d %s", n.Tier, n.AZ+1, n.Prefix))
	}
	assert.Equal(t, []string{
		"Private-1 10.0.0.0/20", "Public-1 10.0.16.0/22", "Isolated-1 10.0.20.0/22",
		"Private-2 10.0.64.0/20", "Public-2 10.0.80.0/22", "Isolated-2 10.0.84.0/22",
		"Private-3 10.0.128.0/20", "Public-3 10.0.144.0/22", "Isolated-3 10.0.148.0/22",
	}, s)
}

func TestEveryAcceptedVPCHasANonOverlappingLayout(t *testing.T) {
	for bits := 16; bits <= 20; bits++ {
		for azs := 1; azs <= 6; azs++ {
			vpc := netip.PrefixFrom(netip.MustParseAddr("10.0.0.0"), bits)
			subnets, err := Layout(vpc, azs, Specs())
			require.NoError(t, err, "/%d with %d AZs", bits, azs)
			require.Len(t, subnets, azs*len(Specs()))
			for i, a := range subnets {
				assert.True(t, vpc.Contains(a.Prefix.Addr()), "%s inside %s", a.Prefix, vpc)
				for _, b := range subnets[i+1:] {
					assert.False(t, a.Prefix.Overlaps(b.Prefix), "/%d %d AZs: %s overlaps %s", bits, azs, a.Prefix, b.Prefix)
				}
			}
		}
	}
}

func TestLayoutRefusesWhatAwsxWouldOverlap(t *testing.T) {
	// The order this project used before: a /+6 subnet first pushes the
	// /+4 one to its alignment, and with 5 or 6 AZs (blocks of 1/8) the
	// isolated subnet spills into the next AZ. awsx's own check (sizes
	// add up: 6/64 <= 8/64) lets it through.
	old := []Spec{{Public, 6}, {Private, 4}, {Isolated, 6}}
	for _, azs := range []int{5, 6} {
		_, err := Layout(netip.MustParsePrefix("10.0.0.0/16"), azs, old)
		require.Error(t, err, "%d AZs", azs)
		assert.Contains(t, err.Error(), "use fewer AZs")
	}
	_, err := Layout(netip.MustParsePrefix("10.0.0.0/16"), 4, old)
	assert.NoError(t, err, "4 AZs fit even in the old order")
	_, err = Layout(netip.MustParsePrefix("10.0.0.0/24"), 2, Specs())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "at least /28")
}

// Package netlayout computes where the VPC's subnets go: the same address
// arithmetic as awsx's ec2.Vpc with subnetStrategy "Auto" (its "new"
// allocator, awsx/ec2/subnetDistributorNew.ts in pulumi-awsx v2.22.0), done
// in Go so that a layout awsx would get wrong is refused before anything is
// registered, and so that tools (the diagrams, the local twin) know every
// subnet's range without AWS.
//
// awsx gives each AZ a block of the VPC of 1/2^ceil(log2(azCount)), then
// places the subnet specs in order inside it, each aligned to its own size
// right after the previous one. It only checks that the sizes add up, not
// that the aligned subnets fit: a small subnet followed by a large one
// wastes the alignment gap and can spill into the next AZ's block, which
// AWS then refuses as overlapping CIDRs. Layout reports that instead.
package netlayout

import (
	"fmt"
	"math/bits"
	"net/netip"
)

// Tier is a subnet tier, as awsx names its subnet types.
type Tier string

const (
	Private  Tier = "Private"  // application instances, egress through NAT
	Public   Tier = "Public"   // load balancers, NAT, the dev web instance
	Isolated Tier = "Isolated" // the database; no route out
)

// Spec is one subnet per AZ of a tier, NewBits longer than the VPC prefix.
type Spec struct {
	Tier    Tier
	NewBits int
}

// Specs are the webstack subnets, in the order awsx allocates them: the
// largest first, so that alignment wastes nothing. Each AZ takes 6/64 of
// the VPC: private 1/16 (instances), public and isolated 1/64 each.
func Specs() []Spec {
	return []Spec{{Private, 4}, {Public, 6}, {Isolated, 6}}
}

// Subnet is one allocated subnet.
type Subnet struct {
	Tier   Tier
	AZ     int // index into the AZ list, from 0
	Prefix netip.Prefix
}

// Layout places specs in vpc across azCount AZs as awsx does, and fails
// when a subnet would leave its AZ's block or be smaller than AWS allows
// (/28).
func Layout(vpc netip.Prefix, azCount int, specs []Spec) ([]Subnet, error) {
	if !vpc.Addr().Is4() || vpc.Masked() != vpc {
		return nil, fmt.Errorf("VPC CIDR %s: want a masked IPv4 prefix", vpc)
	}
	if azCount < 1 || len(specs) == 0 {
		return nil, fmt.Errorf("need at least one AZ and one subnet spec")
	}
	azBits := vpc.Bits() + newBits(azCount)
	if azBits > 32 {
		return nil, fmt.Errorf("%d AZs do not fit in %s", azCount, vpc)
	}
	azSize := uint64(1) << (32 - azBits)
	base := u32(vpc.Addr())
	var out []Subnet
	for az := range azCount {
		azStart := uint64(base) + uint64(az)*azSize
		next := azStart // first free address in the AZ block
		for _, s := range specs {
			mask := vpc.Bits() + s.NewBits
			if mask > 28 {
				return nil, fmt.Errorf("%s subnets of %s would be /%d: AWS subnets are at least /28; use a larger VPC CIDR", s.Tier, vpc, mask)
			}
			size := uint64(1) << (32 - mask)
			start := (next + size - 1) / size * size // aligned to its own size
			if start+size > azStart+azSize {
				return nil, fmt.Errorf("%s subnet of AZ %d (/%d) does not fit in the AZ's block of %s (/%d, %d AZs): awsx would overlap the next AZ; use fewer AZs or smaller subnets", s.Tier, az+1, mask, vpc, azBits, azCount)
			}
			out = append(out, Subnet{Tier: s.Tier, AZ: az, Prefix: netip.PrefixFrom(addr(uint32(start)), mask)})
			next = start + size
		}
	}
	return out, nil
}

// newBits is ceil(log2(n)), as awsx computes it.
func newBits(n int) int {
	if n <= 1 {
		return 0
	}
	return bits.Len(uint(n - 1))
}

func u32(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func addr(v uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

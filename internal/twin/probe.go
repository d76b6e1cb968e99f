package twin

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// probeTimeout is how long a connection attempt may take before the flow
// counts as dropped (a security group drops silently; a closed port
// answers at once).
const probeTimeout = 700 * time.Millisecond

// dial connects to target (host:port) and reports whether the packets got
// through: the connection opened, or the host refused it (it was
// reached). A security group drops silently, so a timeout is "blocked".
func dial(target string) bool {
	c, err := net.DialTimeout("tcp", target, probeTimeout)
	if err == nil {
		c.Close()
		return true
	}
	return errors.Is(err, syscall.ECONNREFUSED)
}

// probeIn dials every target from inside namespace ns, all at once, and
// returns which got through.
func probeIn(ns string, targets []string) (map[string]bool, error) {
	var (
		mu   sync.Mutex
		got  = map[string]bool{}
		wg   sync.WaitGroup
		errs = make([]error, len(targets))
	)
	for i, t := range targets {
		wg.Go(func() {
			errs[i] = inNamespace(ns, func() {
				ok := dial(t)
				mu.Lock()
				got[t] = ok
				mu.Unlock()
			})
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("probe from %s: %w", ns, err)
	}
	return got, nil
}

// probeFrom probes the flows of one source namespace.
func probeFrom(ns string, flows []Flow) (map[Flow]bool, error) {
	var targets []string
	byTarget := map[string][]Flow{}
	for _, f := range flows {
		t := netip.AddrPortFrom(f.Address, uint16(f.Port)).String()
		if _, seen := byTarget[t]; !seen {
			targets = append(targets, t)
		}
		byTarget[t] = append(byTarget[t], f)
	}
	open, err := probeIn(ns, targets)
	if err != nil {
		return nil, err
	}
	got := map[Flow]bool{}
	for t, fs := range byTarget {
		for _, f := range fs {
			got[f] = open[t]
		}
	}
	return got, nil
}

// Result is one probed flow.
type Result struct {
	Flow
	Want, Got bool
}

// Matrix probes every flow of the model and returns them with what the
// plan says and what the packets did.
func (m *Model) Matrix() ([]Result, error) {
	bySource := map[string][]Flow{}
	for _, f := range m.Flows() {
		bySource[f.From] = append(bySource[f.From], f)
	}
	var (
		mu   sync.Mutex
		got  = map[Flow]bool{}
		errs []error
		wg   sync.WaitGroup
	)
	for src, flows := range bySource {
		h, _ := m.Host(src)
		wg.Go(func() {
			g, err := probeFrom(h.Namespace, flows)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			for f, ok := range g {
				got[f] = ok
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	var out []Result
	for _, f := range m.Flows() {
		out = append(out, Result{Flow: f, Want: m.Allowed(f), Got: got[f]})
	}
	return out, nil
}

// WriteMatrix prints the flows that get through (or should), then every
// deviation, then the summary line; it reports whether all agree.
func WriteMatrix(w io.Writer, results []Result) bool {
	var open, wrong []Result
	for _, r := range results {
		if r.Got || r.Want {
			open = append(open, r)
		}
		if r.Got != r.Want {
			wrong = append(wrong, r)
		}
	}
	slices.SortFunc(open, func(a, b Result) int { return strings.Compare(a.From+a.To, b.From+b.To) })
	fmt.Fprintf(w, "flows that get through (every other probe of %d is dropped):\n", len(results))
	fmt.Fprintf(w, "  %-14s %-14s %-22s %-9s %s\n", "from", "to", "address", "plan", "packets")
	for _, r := range open {
		fmt.Fprintf(w, "  %-14s %-14s %-22s %-9s %s\n", r.From, r.To, netip.AddrPortFrom(r.Address, uint16(r.Port)), verdict(r.Want), verdict(r.Got))
	}
	for _, r := range wrong {
		fmt.Fprintf(w, "DEVIATION: %s → %s %s: the plan says %s, the packets %s\n", r.From, r.To, netip.AddrPortFrom(r.Address, uint16(r.Port)), verdict(r.Want), verdict(r.Got))
	}
	fmt.Fprintf(w, "reachability: %d/%d flows as the security groups say\n", len(results)-len(wrong), len(results))
	return len(wrong) == 0
}

func verdict(ok bool) string {
	if ok {
		return "open"
	}
	return "dropped"
}

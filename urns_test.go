package main

import (
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var updateURNs = flag.Bool("update-urns", false, "rewrite testdata/urns/<stack>.txt from the current plans (a deliberate change of what a stack holds)")

// TestEveryStackKeepsItsResourcesIdentity holds each stack's URNs to
// testdata/urns/<stack>.txt: a resource whose URN changes (a rename, a move
// to another component) is deleted and created again by `pulumi up` — for a
// database or a web ACL that is an outage — unless an alias names the old
// URN. So every URN in the file must still be answered, by a resource or by
// one of its aliases (its own, or inherited from a moved parent), and every
// resource must be in the file or be aliased to an entry of it. A resource
// added or removed on purpose: go test -run TestEveryStackKeepsItsResourcesIdentity -update-urns .
func TestEveryStackKeepsItsResourcesIdentity(t *testing.T) {
	for _, stackName := range []string{"dev", "staging", "prod"} {
		t.Run(stackName, func(t *testing.T) {
			g := planOf(t, stackName)
			var now []string
			answered := map[string]bool{}
			for _, r := range g.Resources {
				require.NotEmpty(t, r.URN, r.Key())
				now = append(now, r.URN)
				answered[r.URN] = true
				for _, a := range r.Aliases {
					answered[a] = true
				}
			}
			slices.Sort(now)
			path := filepath.Join("testdata", "urns", stackName+".txt")
			if *updateURNs {
				require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
				require.NoError(t, os.WriteFile(path, []byte(strings.Join(now, "\n")+"\n"), 0o644))
			}
			data, err := os.ReadFile(path)
			require.NoError(t, err, "no URN record; write it: go test -run TestEveryStackKeepsItsResourcesIdentity -update-urns .")
			known := strings.Fields(string(data))
			var lost []string
			for _, u := range known {
				if !answered[u] {
					lost = append(lost, u)
				}
			}
			assert.Empty(t, lost, "these URNs are answered by no resource and no alias: `pulumi up` would delete them (and create their successors anew); add an alias (pulumi.Aliases) where a resource moved or was renamed")
			var unknown []string
			for _, r := range g.Resources {
				if slices.Contains(known, r.URN) || slices.ContainsFunc(r.Aliases, func(a string) bool { return slices.Contains(known, a) }) {
					continue
				}
				unknown = append(unknown, r.URN)
			}
			assert.Empty(t, unknown, "new resources: if meant, record them with -update-urns; if they replace an old one, alias it")
		})
	}
}

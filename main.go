// Command webstack is the webstack Pulumi program (`pulumi up`, `pulumi
// preview`): internal/stack composes the tiers. The offline tools are
// commands of their own: internal/cmd/offline (plan, docs, cost) and
// internal/cmd/twin (the local twin); this program links neither.
package main

import (
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"webstack/internal/stack"
)

func main() { pulumi.Run(stack.Run) }

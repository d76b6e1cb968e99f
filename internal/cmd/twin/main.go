// Command twin boots a stack's local twin (make twin): the plan's network
// as namespaces, AWS as stand-ins, every instance from its own user data.
// It is also the shims it installs in the instances (systemctl, aws, dnf).
// See internal/twin and internal/offline.
//
//	twin up|down|check --stack <stack> [--conduit bin/conduit] [--newman …] [--postman <collection>]
package main

import (
	"fmt"
	"os"

	"webstack/internal/offline"
	"webstack/internal/stack"
)

func main() {
	args := os.Args[1:]
	if len(args) > 0 && args[0] == "twin" {
		args = args[1:] // how the twin runs itself (boot, shims, serve)
	}
	if err := offline.Main(append([]string{"twin"}, args...), os.Stdout, stack.Compose); err != nil {
		fmt.Fprintln(os.Stderr, "twin:", err)
		os.Exit(1)
	}
}

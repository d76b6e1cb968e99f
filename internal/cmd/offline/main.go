// Command offline runs the webstack program under mocks, with no
// credentials and no Pulumi CLI, and prints what it would make:
//
//	go run ./internal/cmd/offline plan --stack prod [--format text|json|mermaid|dot|cost] [-c key=value]...
//	go run ./internal/cmd/offline docs [--out docs]
//
// (make plan, make cost, make diagrams). See internal/offline.
package main

import (
	"fmt"
	"os"

	"webstack/internal/offline"
	"webstack/internal/stack"
)

func main() {
	if err := offline.Main(os.Args[1:], os.Stdout, stack.Compose); err != nil {
		fmt.Fprintln(os.Stderr, "offline:", err)
		os.Exit(1)
	}
}

// Command conduit is the webstack application server, in one of three roles:
//
//	conduit api    the RealWorld Conduit API on MongoDB/DocumentDB
//	conduit web    the public tier: OWASP CRS WAF in front of a reverse proxy to the api
//	conduit local  web → api → an embedded FerretDB, all on loopback
//
// Every flag has an environment twin (CONDUIT_*); `conduit <role> -h` lists
// them, `conduit <role> --check-config` validates them and exits. The
// settings are in settings.go, the server's lifecycle in server.go.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"webstack/app/observe"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Environ(), os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "conduit:", err)
		}
		os.Exit(1)
	}
}

// version is set at build time: -ldflags "-X main.version=…" (make build).
var version = "dev"

// run starts the role named by args[0] with its settings from the rest of
// args and env (KEY=value pairs), and serves until ctx is cancelled.
// LogFileMaxBytes is where --log-file rotates.
const LogFileMaxBytes = 32 << 20

func run(ctx context.Context, args, env []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New(usage)
	}
	role := args[0]
	if role == "version" {
		fmt.Fprintln(stdout, version)
		return nil
	}
	s, err := parseSettings(role, args[1:], env, stderr)
	if err != nil {
		return err
	}
	if s.CheckOnly {
		fmt.Fprintf(stdout, "conduit %s: settings OK\n", role)
		return nil
	}
	out := stderr
	if s.LogFile != "" {
		f, err := observe.OpenLogFile(s.LogFile, LogFileMaxBytes)
		if err != nil {
			return err
		}
		defer f.Close()
		out = io.MultiWriter(stderr, f)
	}
	log := slog.New(slog.NewJSONHandler(out, &slog.HandlerOptions{Level: s.LogLevel})).With("role", role, "version", version)
	return (&server{Settings: s, log: log, stdout: stdout}).run(ctx)
}

// Command cellgate is the whole cellgate backend in one binary: the API, the Temporal worker,
// migrations, admin commands and a dev stack, as subcommands.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

type subcommand struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string) error
}

var subcommands = []subcommand{
	{"api", "serve the REST API, the device API and health endpoints", runAPI},
	{"worker", "run the Temporal worker on task queue \"cellgate\"", runWorker},
	{"migrate", "apply the embedded database migrations (idempotent); start the password migration when legacy plaintext rows exist; --drop-legacy-plaintext after it", runMigrate},
	{"import-legacy", "import connections with plaintext passwords from an older system (CSV or JSON lines)", runImportLegacy},
	{"dev", "start everything for a laptop: Postgres, Temporal dev server, api and worker", runDev},
	{"operator", "manage operators: operator create --email E [--password-stdin] [--admin], operator admin --email E [--revoke]", runOperator},
	{"tunnel", "run the relay's device tunnel (cg0, UDP :7400, control API); tunnel keygen writes its key", runTunnel},
	{"ovpn-hook", "run by OpenVPN: ovpn-hook auth|connect|disconnect ask the API (deferred auth, routing)", runOVPNHook},
	{"agent", "run a device: enroll, heartbeat, hold the tunnel session and NAT clients' traffic (or --simulate N)", runAgent},
	{"openvpn", "openvpn init: CA, server certificate, tls-crypt key and server.conf for the relay's OpenVPN server", runOpenVPN},
}

func usage() {
	fmt.Fprintf(os.Stderr, "Usage: cellgate <command> [flags]\n\nCommands:\n")
	for _, c := range subcommands {
		fmt.Fprintf(os.Stderr, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(os.Stderr, "\nRun cellgate <command> -h for the command's flags and environment variables.\n")
}

func main() {
	if len(os.Args) < 2 || os.Args[1] == "-h" || os.Args[1] == "--help" || os.Args[1] == "help" {
		usage()
		if len(os.Args) < 2 {
			os.Exit(2)
		}
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	for _, c := range subcommands {
		if c.name != os.Args[1] {
			continue
		}
		err := c.run(ctx, os.Args[2:])
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		var code exitCode
		if errors.As(err, &code) {
			os.Exit(int(code))
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "cellgate %s: %v\n", c.name, err)
			os.Exit(1)
		}
		return
	}
	fmt.Fprintf(os.Stderr, "cellgate: unknown command %q\n\n", os.Args[1])
	usage()
	os.Exit(2)
}

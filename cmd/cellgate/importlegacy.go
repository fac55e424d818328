package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"

	"github.com/cellgate/cellgate/legacyexport"
	"github.com/cellgate/cellgate/store"
	"github.com/cellgate/cellgate/workflows"
)

const importLegacySummary = `Imports an operator's proxy connections from an older system, each with its password in
plaintext (proxy_connections.password_plain) and no hash: the state a deploy from that system
starts in. The PasswordMigration workflow (started by cellgate migrate) then hashes them.

The file is CSV or JSON lines, one connection per row or line, with the fields
  username, password, device, protocol, bandwidth_limit, bandwidth_used
(device is the name of one of the operator's devices, also accepted as device_name; protocol
is openvpn (the default), http or socks5; the bandwidth fields are bytes, default 0). A CSV
file may start with a header row naming its columns; without one they are in that order.

Bad rows are reported by line number and not imported; the others are imported in one
transaction. The exit status is 1 when any row was bad.`

// importOptions are import-legacy's flags.
type importOptions struct {
	email  string
	file   string // "-" is standard input
	format string // csv, jsonl or auto
}

func runImportLegacy(ctx context.Context, args []string) error {
	var (
		cfg common
		o   importOptions
	)
	f := newFlags("import-legacy", importLegacySummary)
	cfg.register(f, false)
	f.StringVar(&o.email, "operator", "", "email of the operator who owns the connections (required)")
	f.StringVar(&o.file, "file", "", "the CSV or JSON-lines file, - for standard input (required)")
	f.StringVar(&o.format, "format", "auto", "csv, jsonl, or auto: by the file name's extension, else by its first character")
	if err := f.parse(args); err != nil {
		return err
	}
	if err := cfg.check(); err != nil {
		return err
	}
	switch {
	case o.email == "":
		return errors.New("--operator EMAIL is required")
	case o.file == "":
		return errors.New("--file F is required (- for standard input)")
	case o.format != "auto" && o.format != "csv" && o.format != "jsonl":
		return fmt.Errorf("--format %q: want csv, jsonl or auto", o.format)
	}
	st, err := openStore(ctx, cfg.databaseURL)
	if err != nil {
		return err
	}
	defer st.Close()
	return importLegacy(ctx, st, o, os.Stdin, os.Stdout, os.Stderr)
}

// importLegacy reads o.file (stdin for "-"), imports its good rows for the operator, lists
// the bad ones on stderr and sums up on stdout.
func importLegacy(ctx context.Context, st *store.Store, o importOptions, stdin io.Reader, stdout, stderr io.Writer) error {
	op, err := st.OperatorByEmail(ctx, o.email)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("no operator has the email %s (create it with cellgate operator create)", o.email)
	}
	if err != nil {
		return err
	}
	in := stdin
	if o.file != "-" {
		fh, err := os.Open(o.file)
		if err != nil {
			return err
		}
		defer fh.Close()
		in = fh
	}
	format := o.format
	br := bufio.NewReader(in)
	if format == "auto" {
		format = legacyexport.SniffFormat(o.file, br)
	}
	rows, bad, err := legacyexport.Read(br, format)
	if err != nil {
		return fmt.Errorf("read %s: %w", o.file, err)
	}
	res, err := st.ImportLegacyConnections(ctx, op.ID, rows)
	if errors.Is(err, store.ErrLegacyPlaintextDropped) {
		return fmt.Errorf("%w; create connections through the API instead", err)
	}
	if err != nil {
		return err
	}
	bad = append(bad, res.Bad...)
	slices.SortStableFunc(bad, func(a, b store.LegacyRowError) int { return a.Line - b.Line })
	for _, b := range bad {
		fmt.Fprintln(stderr, b.Error())
	}
	fmt.Fprintf(stdout, "imported %d legacy connections for %s", res.Imported, op.Email)
	if len(bad) > 0 {
		fmt.Fprintf(stdout, "; %d bad rows not imported", len(bad))
	}
	fmt.Fprintln(stdout)
	if res.Imported > 0 {
		fmt.Fprintf(stdout, "Their passwords are plaintext until the PasswordMigration workflow hashes them: run cellgate migrate\n"+
			"(or temporal workflow start --type %s --task-queue %s --workflow-id %s).\n",
			workflows.PasswordMigrationType, workflows.TaskQueue, workflows.PasswordMigrationID)
	}
	if len(bad) > 0 {
		return fmt.Errorf("%d rows were not imported (listed above)", len(bad))
	}
	return nil
}

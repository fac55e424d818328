package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/cellgate/cellgate/credential"
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

// legacyColumns are the fields of a legacy row, in their headerless CSV order.
var legacyColumns = []string{"username", "password", "device", "protocol", "bandwidth_limit", "bandwidth_used"}

// legacyUsername is the API's rule for usernames an operator chooses: imported ones end up in
// the same places (.ovpn file names, OpenVPN's auth hook).
var legacyUsername = regexp.MustCompile(`^[A-Za-z0-9_.@-]{3,64}$`)

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
		format = sniffFormat(o.file, br)
	}
	rows, bad, err := readLegacy(br, format)
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

// sniffFormat picks csv or jsonl by the file name's extension, else by the first character
// that is not a space or a byte-order mark: '{' is JSON lines.
func sniffFormat(name string, r *bufio.Reader) string {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".csv":
		return "csv"
	case ".jsonl", ".ndjson", ".json":
		return "jsonl"
	}
	head, _ := r.Peek(512)
	head = bytes.TrimLeft(bytes.TrimPrefix(head, []byte("\ufeff")), " \t\r\n")
	if len(head) > 0 && head[0] == '{' {
		return "jsonl"
	}
	return "csv"
}

// readLegacy parses a legacy file. Rows that cannot be parsed or fail a check come back in
// bad; err is for a file that cannot be read at all.
func readLegacy(r io.Reader, format string) (rows []store.LegacyConnection, bad []store.LegacyRowError, err error) {
	if format == "jsonl" {
		return readLegacyJSONL(r)
	}
	return readLegacyCSV(r)
}

// legacyFields is a row's fields as read, before checks.
type legacyFields struct {
	username, password, device, protocol, limit, used string
}

func readLegacyCSV(r io.Reader) ([]store.LegacyConnection, []store.LegacyRowError, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	var (
		rows    []store.LegacyConnection
		bad     []store.LegacyRowError
		columns []string // field names in file order; nil until the first record
	)
	for first := true; ; first = false {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		var perr *csv.ParseError
		if errors.As(err, &perr) {
			bad = append(bad, store.LegacyRowError{Line: perr.StartLine, Message: "not valid CSV: " + perr.Err.Error()})
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		line, _ := cr.FieldPos(0)
		if first {
			rec[0] = strings.TrimPrefix(rec[0], "\ufeff")
			if header, ok := csvHeader(rec); ok {
				columns = header
				if missing := missingColumns(columns); len(missing) > 0 {
					return nil, nil, fmt.Errorf("line %d: the header lacks %s", line, strings.Join(missing, ", "))
				}
				continue
			}
			columns = legacyColumns
		}
		if len(rec) == 1 && strings.TrimSpace(rec[0]) == "" {
			continue
		}
		if len(rec) != len(columns) {
			bad = append(bad, store.LegacyRowError{Line: line, Message: fmt.Sprintf("has %d fields, want %d (%s)", len(rec), len(columns), strings.Join(columns, ","))})
			continue
		}
		var lf legacyFields
		for i, name := range columns {
			*lf.field(name) = rec[i]
		}
		row, errs := checkLegacy(line, lf)
		if len(errs) > 0 {
			bad = append(bad, errs...)
			continue
		}
		rows = append(rows, row)
	}
	return rows, bad, nil
}

// csvHeader reports whether rec is a header row: every field names a column (in any case and
// order, "device_name" and "device name" for device). It returns the columns in file order.
func csvHeader(rec []string) ([]string, bool) {
	var cols []string
	for _, f := range rec {
		name := strings.ToLower(strings.TrimSpace(f))
		if name == "device_name" || name == "device name" {
			name = "device"
		}
		if !slices.Contains(legacyColumns, name) || slices.Contains(cols, name) {
			return nil, false
		}
		cols = append(cols, name)
	}
	return cols, true
}

func missingColumns(cols []string) []string {
	var missing []string
	for _, c := range []string{"username", "password", "device"} {
		if !slices.Contains(cols, c) {
			missing = append(missing, c)
		}
	}
	return missing
}

// field returns the field of the column name.
func (lf *legacyFields) field(name string) *string {
	switch name {
	case "username":
		return &lf.username
	case "password":
		return &lf.password
	case "device":
		return &lf.device
	case "protocol":
		return &lf.protocol
	case "bandwidth_limit":
		return &lf.limit
	default:
		return &lf.used
	}
}

// legacyJSON is one JSON line. Numbers may be JSON numbers or strings of digits.
type legacyJSON struct {
	Username       string          `json:"username"`
	Password       string          `json:"password"`
	Device         string          `json:"device"`
	DeviceName     string          `json:"device_name"`
	Protocol       string          `json:"protocol"`
	BandwidthLimit json.RawMessage `json:"bandwidth_limit"`
	BandwidthUsed  json.RawMessage `json:"bandwidth_used"`
}

func readLegacyJSONL(r io.Reader) ([]store.LegacyConnection, []store.LegacyRowError, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var (
		rows []store.LegacyConnection
		bad  []store.LegacyRowError
	)
	for line := 1; sc.Scan(); line++ {
		text := sc.Bytes()
		if line == 1 {
			text = bytes.TrimPrefix(text, []byte("\ufeff"))
		}
		if len(bytes.TrimSpace(text)) == 0 {
			continue
		}
		var j legacyJSON
		dec := json.NewDecoder(bytes.NewReader(text))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&j); err != nil {
			bad = append(bad, store.LegacyRowError{Line: line, Message: "not a JSON object of the legacy fields: " + err.Error()})
			continue
		}
		if dec.More() {
			bad = append(bad, store.LegacyRowError{Line: line, Message: "holds more than one JSON value"})
			continue
		}
		if j.Device == "" {
			j.Device = j.DeviceName
		}
		row, errs := checkLegacy(line, legacyFields{username: j.Username, password: j.Password, device: j.Device, protocol: j.Protocol,
			limit: jsonNumber(j.BandwidthLimit), used: jsonNumber(j.BandwidthUsed)})
		if len(errs) > 0 {
			bad = append(bad, errs...)
			continue
		}
		rows = append(rows, row)
	}
	if err := sc.Err(); err != nil {
		return nil, nil, err
	}
	return rows, bad, nil
}

// jsonNumber returns a JSON number's or string's text; checkLegacy parses it.
func jsonNumber(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	if string(raw) == "null" {
		return ""
	}
	return string(raw)
}

// checkLegacy checks one row's fields and returns the row, or every problem it has. The
// password is taken as it is (spaces included); it must be one bcrypt can hash.
func checkLegacy(line int, lf legacyFields) (store.LegacyConnection, []store.LegacyRowError) {
	var errs []store.LegacyRowError
	bad := func(field, format string, args ...any) {
		errs = append(errs, store.LegacyRowError{Line: line, Field: field, Message: fmt.Sprintf(format, args...)})
	}
	row := store.LegacyConnection{
		Line:       line,
		Username:   strings.TrimSpace(lf.username),
		Password:   lf.password,
		DeviceName: strings.TrimSpace(lf.device),
		Protocol:   strings.ToLower(strings.TrimSpace(lf.protocol)),
	}
	if !legacyUsername.MatchString(row.Username) {
		bad("username", "must be 3 to 64 characters of A-Z a-z 0-9 _ . @ -")
	}
	switch p := row.Password; {
	case p == "":
		bad("password", "is empty")
	case len(p) > credential.MaxPasswordBytes:
		bad("password", "is longer than %d bytes, which bcrypt cannot hash", credential.MaxPasswordBytes)
	case !utf8.ValidString(p) || strings.IndexFunc(p, unicode.IsControl) >= 0:
		bad("password", "must be UTF-8 without control characters")
	}
	if row.DeviceName == "" {
		bad("device", "is empty")
	}
	switch row.Protocol {
	case "":
		row.Protocol = store.ProtocolOpenVPN
	case store.ProtocolOpenVPN, store.ProtocolHTTP, store.ProtocolSOCKS5:
	default:
		bad("protocol", "%q is not openvpn, http or socks5", row.Protocol)
	}
	for _, n := range []struct {
		name string
		text string
		dst  *int64
	}{{"bandwidth_limit", lf.limit, &row.BandwidthLimit}, {"bandwidth_used", lf.used, &row.BandwidthUsed}} {
		text := strings.TrimSpace(n.text)
		if text == "" {
			continue
		}
		v, err := strconv.ParseInt(text, 10, 64)
		if err != nil || v < 0 {
			bad(n.name, "%q is not a whole number of bytes", text)
			continue
		}
		*n.dst = v
	}
	return row, errs
}

// Package legacyexport reads an older proxy panel's export of proxy connections (CSV or JSON
// lines, passwords in plaintext) into rows for store.ImportLegacyConnections: each row checked,
// the bad ones reported by line number.
package legacyexport

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/cellgate/cellgate/credential"
	"github.com/cellgate/cellgate/store"
)

// The formats of an export.
const (
	CSV   = "csv"
	JSONL = "jsonl"
)

// columns are the fields of a legacy row, in their headerless CSV order.
var columns = []string{"username", "password", "device", "protocol", "bandwidth_limit", "bandwidth_used"}

// validUsername is the API's rule for usernames an operator chooses: imported ones end up in
// the same places (.ovpn file names, OpenVPN's auth hook).
var validUsername = regexp.MustCompile(`^[A-Za-z0-9_.@-]{3,64}$`)

// SniffFormat picks CSV or JSONL by the file name's extension, else by the first character
// that is not a space or a byte-order mark: '{' is JSON lines.
func SniffFormat(name string, r *bufio.Reader) string {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".csv":
		return CSV
	case ".jsonl", ".ndjson", ".json":
		return JSONL
	}
	head, _ := r.Peek(512)
	head = bytes.TrimLeft(bytes.TrimPrefix(head, []byte("\ufeff")), " \t\r\n")
	if len(head) > 0 && head[0] == '{' {
		return JSONL
	}
	return CSV
}

// Read parses an export in format (CSV or JSONL). Rows that cannot be parsed or fail a check come back in
// bad; err is for a file that cannot be read at all.
func Read(r io.Reader, format string) (rows []store.LegacyConnection, bad []store.LegacyRowError, err error) {
	if format == JSONL {
		return readJSONL(r)
	}
	return readCSV(r)
}

// fields is a row's fields as read, before checks.
type fields struct {
	username, password, device, protocol, limit, used string
}

func readCSV(r io.Reader) ([]store.LegacyConnection, []store.LegacyRowError, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	var (
		rows []store.LegacyConnection
		bad  []store.LegacyRowError
		cols []string // field names in file order; nil until the first record
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
				cols = header
				if missing := missingColumns(cols); len(missing) > 0 {
					return nil, nil, fmt.Errorf("line %d: the header lacks %s", line, strings.Join(missing, ", "))
				}
				continue
			}
			cols = columns
		}
		if len(rec) == 1 && strings.TrimSpace(rec[0]) == "" {
			continue
		}
		if len(rec) != len(cols) {
			bad = append(bad, store.LegacyRowError{Line: line, Message: fmt.Sprintf("has %d fields, want %d (%s)", len(rec), len(cols), strings.Join(cols, ","))})
			continue
		}
		var lf fields
		for i, name := range cols {
			*lf.field(name) = rec[i]
		}
		row, errs := check(line, lf)
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
		if !slices.Contains(columns, name) || slices.Contains(cols, name) {
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
func (lf *fields) field(name string) *string {
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

// jsonLine is one JSON line. Numbers may be JSON numbers or strings of digits.
type jsonLine struct {
	Username       string          `json:"username"`
	Password       string          `json:"password"`
	Device         string          `json:"device"`
	DeviceName     string          `json:"device_name"`
	Protocol       string          `json:"protocol"`
	BandwidthLimit json.RawMessage `json:"bandwidth_limit"`
	BandwidthUsed  json.RawMessage `json:"bandwidth_used"`
}

func readJSONL(r io.Reader) ([]store.LegacyConnection, []store.LegacyRowError, error) {
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
		var j jsonLine
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
		row, errs := check(line, fields{username: j.Username, password: j.Password, device: j.Device, protocol: j.Protocol,
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

// jsonNumber returns a JSON number's or string's text; check parses it.
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

// check checks one row's fields and returns the row, or every problem it has. The
// password is taken as it is (spaces included); it must be one bcrypt can hash.
func check(line int, lf fields) (store.LegacyConnection, []store.LegacyRowError) {
	var errs []store.LegacyRowError
	bad := func(field, format string, args ...any) {
		errs = append(errs, store.LegacyRowError{Line: line, Field: field, Message: fmt.Sprintf(format, args...)})
	}
	row := store.LegacyConnection{
		Line:       line,
		Username:   strings.TrimSpace(lf.username),
		Password:   lf.password,
		DeviceName: strings.TrimSpace(lf.device),
		Protocol:   store.Protocol(strings.ToLower(strings.TrimSpace(lf.protocol))),
	}
	if !validUsername.MatchString(row.Username) {
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

package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/cellgate/cellgate/internal/testenv"
	"github.com/cellgate/cellgate/store"
)

// rowsOf describes parsed rows compactly: line:username/password@device/protocol/limit/used.
func rowsOf(rows []store.LegacyConnection) []string {
	var out []string
	for _, r := range rows {
		out = append(out, fmt.Sprintf("%d:%s/%s@%s/%s/%d/%d", r.Line, r.Username, r.Password, r.DeviceName, r.Protocol, r.BandwidthLimit, r.BandwidthUsed))
	}
	return out
}

func errorsOf(bad []store.LegacyRowError) []string {
	var out []string
	for _, b := range bad {
		out = append(out, b.Error())
	}
	return out
}

func TestReadLegacy(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, format, in string
		rows, bad        []string
	}{
		{
			name:   "csv with a header in another order",
			format: "csv",
			in: "\ufeffpassword,username,Device Name,bandwidth_used,protocol,bandwidth_limit\n" +
				"s3cret pw ,alice,Pixel 7,10,OpenVPN,1000\n" +
				"\"multi\nline\",bob,Pixel 7,0,,\n" +
				"x,carol,Pixel 7,-1,ftp,lots\n" +
				",dave,,0,openvpn,0\n" +
				"pw,eve\n" +
				"pw\x00nul,frank,Pixel 7,,,\n",
			rows: []string{"2:alice/s3cret pw @Pixel 7/openvpn/1000/10"},
			bad: []string{
				"line 3: password: must be UTF-8 without control characters",
				`line 5: protocol: "ftp" is not openvpn, http or socks5`,
				`line 5: bandwidth_limit: "lots" is not a whole number of bytes`,
				`line 5: bandwidth_used: "-1" is not a whole number of bytes`,
				"line 6: password: is empty",
				"line 6: device: is empty",
				"line 7: has 2 fields, want 6 (password,username,device,bandwidth_used,protocol,bandwidth_limit)",
				"line 8: password: must be UTF-8 without control characters",
			},
		},
		{
			name:   "csv without a header",
			format: "csv",
			in:     "alice,pw-1,Pixel 7,socks5,5,1\n\nbo,pw-2,Pixel 7,http,,\n" + "carol," + strings.Repeat("p", 73) + ",Pixel 7,,,\n",
			rows:   []string{"1:alice/pw-1@Pixel 7/socks5/5/1"},
			bad: []string{
				"line 3: username: must be 3 to 64 characters of A-Z a-z 0-9 _ . @ -",
				"line 4: password: is longer than 72 bytes, which bcrypt cannot hash",
			},
		},
		{
			name:   "csv with a broken quote",
			format: "csv",
			in:     "alice,pw-1,Pixel 7,,,\nbob,\"pw\"x,Pixel 7,,,\ncarol,pw-3,Pixel 7,,,\n",
			rows:   []string{"1:alice/pw-1@Pixel 7/openvpn/0/0", "3:carol/pw-3@Pixel 7/openvpn/0/0"},
			bad:    []string{`line 2: not valid CSV: extraneous or missing " in quoted-field`},
		},
		{
			name:   "json lines",
			format: "jsonl",
			in: `{"username":"alice","password":"pw 1","device":"Pixel 7","protocol":"openvpn","bandwidth_limit":1000,"bandwidth_used":"20"}` + "\n" +
				"\n" +
				`{"username":"bob","password":"pw-2","device_name":"Pixel 7"}` + "\n" +
				`{"username":"carol","password":"pw-3","device":"Pixel 7","colour":"red"}` + "\n" +
				`["dave"]` + "\n" +
				`{"username":"erin","password":"","device":"Pixel 7","bandwidth_limit":1.5}` + "\n" +
				`{"username":"frank","password":"pw","device":"Pixel 7"} {}` + "\n",
			rows: []string{"1:alice/pw 1@Pixel 7/openvpn/1000/20", "3:bob/pw-2@Pixel 7/openvpn/0/0"},
			bad: []string{
				`line 4: not a JSON object of the legacy fields: json: unknown field "colour"`,
				"line 5: not a JSON object of the legacy fields: json: cannot unmarshal array into Go value of type main.legacyJSON",
				"line 6: password: is empty",
				`line 6: bandwidth_limit: "1.5" is not a whole number of bytes`,
				"line 7: holds more than one JSON value",
			},
		},
	}
	for _, tt := range tests {
		rows, bad, err := readLegacy(strings.NewReader(tt.in), tt.format)
		if err != nil {
			t.Errorf("readLegacy(%s) error: %v", tt.name, err)
			continue
		}
		if got := rowsOf(rows); strings.Join(got, "|") != strings.Join(tt.rows, "|") {
			t.Errorf("readLegacy(%s) rows = %q, want %q", tt.name, got, tt.rows)
		}
		if got := errorsOf(bad); strings.Join(got, "|") != strings.Join(tt.bad, "|") {
			t.Errorf("readLegacy(%s) bad = %q, want %q", tt.name, got, tt.bad)
		}
	}

	_, _, err := readLegacy(strings.NewReader("username,device\nalice,Pixel 7\n"), "csv")
	if err == nil || !strings.Contains(err.Error(), "line 1: the header lacks password") {
		t.Errorf("readLegacy(header without password) error = %v, want \"line 1: the header lacks password\"", err)
	}
}

func TestSniffFormat(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ name, head, want string }{
		{"legacy.csv", `{"looks":"like json"}`, "csv"},
		{"legacy.JSONL", "username,password", "jsonl"},
		{"legacy.ndjson", "", "jsonl"},
		{"-", "\ufeff  \n{\"username\":\"a\"}", "jsonl"},
		{"-", "username,password", "csv"},
		{"export.txt", "", "csv"},
	} {
		if got := sniffFormat(tt.name, bufio.NewReader(strings.NewReader(tt.head))); got != tt.want {
			t.Errorf("sniffFormat(%q, %q) = %s, want %s", tt.name, tt.head, got, tt.want)
		}
	}
}

// TestImportLegacy imports a file into a database: good rows land as plaintext without a hash,
// bad ones are listed by line on stderr, and the exit is an error that says how many.
func TestImportLegacy(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := testenv.Store(t)
	op, err := st.CreateOperator(ctx, "import@example.com", "not a real hash")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateDevice(ctx, op.ID, "Pixel 7", []byte("enrollment")); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "legacy.jsonl")
	var in strings.Builder
	for i := range 3 {
		fmt.Fprintf(&in, `{"username":"imported-%d","password":"legacy pw %d","device":"Pixel 7","bandwidth_limit":%d}`+"\n", i, i, i*1000)
	}
	in.WriteString(`{"username":"lost","password":"pw","device":"Pixel 8"}` + "\n")
	in.WriteString(`{"username":"imported-1","password":"pw","device":"Pixel 7"}` + "\n")
	in.WriteString(`{"username":"empty","password":"","device":"Pixel 7"}` + "\n")
	if err := os.WriteFile(file, []byte(in.String()), 0o600); err != nil {
		t.Fatal(err)
	}

	var stdout, stderr bytes.Buffer
	err = importLegacy(ctx, st, importOptions{email: "IMPORT@example.com", file: file, format: "auto"}, nil, &stdout, &stderr)
	if err == nil || err.Error() != "3 rows were not imported (listed above)" {
		t.Errorf("importLegacy error = %v, want \"3 rows were not imported (listed above)\"", err)
	}
	wantStderr := `line 4: device: the operator has no device named "Pixel 8"` + "\n" +
		"line 5: username: repeats line 2\n" +
		"line 6: password: is empty\n"
	if stderr.String() != wantStderr {
		t.Errorf("importLegacy stderr = %q, want %q", stderr.String(), wantStderr)
	}
	if !strings.HasPrefix(stdout.String(), "imported 3 legacy connections for import@example.com; 3 bad rows not imported\n") ||
		!strings.Contains(stdout.String(), "run cellgate migrate") {
		t.Errorf("importLegacy stdout = %q, want the count and the next step", stdout.String())
	}
	if strings.Contains(stdout.String()+stderr.String(), "legacy pw") {
		t.Errorf("importLegacy printed a password: %q %q", stdout.String(), stderr.String())
	}
	ids, err := st.LegacyBatch(ctx, uuid.Nil, 10)
	if err != nil || len(ids) != 3 {
		t.Fatalf("LegacyBatch() = %v, %v; want the 3 imported rows", ids, err)
	}
	list, _ := st.LegacyPasswords(ctx, ids)
	for i, p := range list {
		if p.Plaintext != fmt.Sprintf("legacy pw %d", i) || p.HasHash || p.Username != fmt.Sprintf("imported-%d", i) {
			t.Errorf("imported row %d = %+v, want imported-%d with its plaintext and no hash", i, p, i)
		}
	}

	// The same file again: every row is now taken or bad, nothing changes.
	stdout.Reset()
	stderr.Reset()
	importLegacy(ctx, st, importOptions{email: "import@example.com", file: "-", format: "jsonl"}, strings.NewReader(in.String()), &stdout, &stderr)
	if !strings.HasPrefix(stdout.String(), "imported 0 legacy connections") || strings.Count(stderr.String(), "is already taken") != 4 {
		t.Errorf("second import: stdout %q, stderr %q; want nothing imported, 4 usernames taken", stdout.String(), stderr.String())
	}

	err = importLegacy(ctx, st, importOptions{email: "nobody@example.com", file: file, format: "auto"}, nil, &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "no operator has the email nobody@example.com") {
		t.Errorf("importLegacy(unknown operator) = %v, want \"no operator has the email\"", err)
	}
}

func TestImportLegacyFlags(t *testing.T) {
	t.Parallel()
	url := testenv.DatabaseURL(t)
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--file", "x.csv"}, "--operator EMAIL is required"},
		{[]string{"--operator", "a@example.com"}, "--file F is required"},
		{[]string{"--operator", "a@example.com", "--file", "x", "--format", "xml"}, `--format "xml"`},
		{[]string{"--operator", "a@example.com", "--file", "/nonexistent/legacy.csv"}, "no operator has the email a@example.com"},
	} {
		err := runImportLegacy(context.Background(), append([]string{"-database-url", url}, tt.args...))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("import-legacy %q = %v, want %q", tt.args, err, tt.want)
		}
	}
}

package legacyexport

import (
	"bufio"
	"fmt"
	"strings"
	"testing"

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

func TestRead(t *testing.T) {
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
				"line 5: not a JSON object of the legacy fields: json: cannot unmarshal array into Go value of type legacyexport.jsonLine",
				"line 6: password: is empty",
				`line 6: bandwidth_limit: "1.5" is not a whole number of bytes`,
				"line 7: holds more than one JSON value",
			},
		},
	}
	for _, tt := range tests {
		rows, bad, err := Read(strings.NewReader(tt.in), tt.format)
		if err != nil {
			t.Errorf("Read(%s) error: %v", tt.name, err)
			continue
		}
		if got := rowsOf(rows); strings.Join(got, "|") != strings.Join(tt.rows, "|") {
			t.Errorf("Read(%s) rows = %q, want %q", tt.name, got, tt.rows)
		}
		if got := errorsOf(bad); strings.Join(got, "|") != strings.Join(tt.bad, "|") {
			t.Errorf("Read(%s) bad = %q, want %q", tt.name, got, tt.bad)
		}
	}

	_, _, err := Read(strings.NewReader("username,device\nalice,Pixel 7\n"), "csv")
	if err == nil || !strings.Contains(err.Error(), "line 1: the header lacks password") {
		t.Errorf("Read(header without password) error = %v, want \"line 1: the header lacks password\"", err)
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
		if got := SniffFormat(tt.name, bufio.NewReader(strings.NewReader(tt.head))); got != tt.want {
			t.Errorf("SniffFormat(%q, %q) = %s, want %s", tt.name, tt.head, got, tt.want)
		}
	}
}

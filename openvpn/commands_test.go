package openvpn

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

// statusOutput is `status 3` of OpenVPN 2.6.14 with two clients, one of them still without a
// username, without the END line.
var statusOutput = strings.Split(strings.Join([]string{
	"TITLE\tOpenVPN 2.6.14 x86_64-pc-linux-gnu [SSL (OpenSSL)] [LZO] [LZ4] [EPOLL] [PKCS11] [MH/PKTINFO] [AEAD] [DCO]",
	"TIME\t2026-11-29 17:13:55\t1795972435",
	"HEADER\tCLIENT_LIST\tCommon Name\tReal Address\tVirtual Address\tVirtual IPv6 Address\tBytes Received\tBytes Sent\tConnected Since\tConnected Since (time_t)\tUsername\tClient ID\tPeer ID\tData Channel Cipher",
	"CLIENT_LIST\talice\t192.0.2.2:39024\t10.9.0.2\t\t4711\t815\t2026-11-29 17:13:53\t1795972433\talice\t3\t0\tAES-256-GCM",
	"CLIENT_LIST\tUNDEF\t192.0.2.3:5000\t\t\t10\t20\t2026-11-29 17:13:54\t1795972434\tUNDEF\t4\t1\tNone",
	"HEADER\tROUTING_TABLE\tVirtual Address\tCommon Name\tReal Address\tLast Ref\tLast Ref (time_t)",
	"ROUTING_TABLE\t10.9.0.2\talice\t192.0.2.2:39024\t2026-11-29 17:13:55\t1795972435",
	"GLOBAL_STATS\tMax bcast/mcast queue length\t0",
	"GLOBAL_STATS\tdco_enabled\t0",
}, "\n"), "\n")

func TestOpenVPNParseStatus(t *testing.T) {
	got, err := parseStatus(statusOutput)
	if err != nil {
		t.Fatalf("parseStatus = %v", err)
	}
	want := []Client{
		{CommonName: "alice", RealAddress: "192.0.2.2:39024", VirtualAddress: netip.MustParseAddr("10.9.0.2"),
			BytesReceived: 4711, BytesSent: 815, ConnectedSince: time.Unix(1795972433, 0), ClientID: 3, PeerID: 0, Username: "alice"},
		{CommonName: "UNDEF", RealAddress: "192.0.2.3:5000", BytesReceived: 10, BytesSent: 20,
			ConnectedSince: time.Unix(1795972434, 0), ClientID: 4, PeerID: 1},
	}
	if len(got) != len(want) {
		t.Fatalf("parseStatus = %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("parseStatus client %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}

// TestOpenVPNParseStatusColumns checks that columns are found by the header's names.
func TestOpenVPNParseStatusColumns(t *testing.T) {
	got, err := parseStatus([]string{
		"HEADER\tCLIENT_LIST\tClient ID\tNew Column\tCommon Name\tVirtual Address",
		"CLIENT_LIST\t9\tx\tbob\t10.9.0.7",
	})
	want := Client{CommonName: "bob", ClientID: 9, VirtualAddress: netip.MustParseAddr("10.9.0.7")}
	if err != nil || len(got) != 1 || got[0] != want {
		t.Errorf("parseStatus(reordered columns) = %+v, %v, want [%+v]", got, err, want)
	}
	if _, err := parseStatus([]string{"CLIENT_LIST\talice\t192.0.2.2:1\t10.9.0.2\t\tmany"}); err == nil {
		t.Errorf("parseStatus(bytes \"many\") = nil error, want one")
	}
}

func TestOpenVPNQuoteArg(t *testing.T) {
	tests := map[string]string{`alice`: `"alice"`, `a"b`: `"a\"b"`, `a\b`: `"a\\b"`, `two words`: `"two words"`}
	for in, want := range tests {
		if got, err := quoteArg(in); got != want || err != nil {
			t.Errorf("quoteArg(%q) = %q, %v, want %q", in, got, err, want)
		}
	}
	if got, err := quoteArg("a\nkill b"); err == nil {
		t.Errorf("quoteArg(with newline) = %q, want an error", got)
	}
}

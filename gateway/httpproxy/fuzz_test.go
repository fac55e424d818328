package httpproxy

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"testing"
)

// FuzzReadRequest checks ReadRequest's promises on any input: no panic; an accepted request
// ends at the first empty line, within MaxHeaderBytes, and has a dialable Target; a CONNECT
// leaves every following byte to the server; a Forward carries no Proxy-* or
// Connection-listed field and writes an origin-form request. The seed corpus is in
// testdata/fuzz/FuzzReadRequest.
func FuzzReadRequest(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		// A small buffer, so that lines longer than it take the ErrBufferFull path.
		br := bufio.NewReaderSize(bytes.NewReader(data), 64)
		req, err := ReadRequest(br)
		if err != nil {
			return
		}
		end := bytes.Index(data, []byte("\r\n\r\n")) + 4
		if end < 4 || end > MaxHeaderBytes {
			t.Fatalf("accepted a header block ending at %d (limit %d)", end, MaxHeaderBytes)
		}
		checkTarget(t, req)
		if req.Method == http.MethodConnect {
			rest, _ := io.ReadAll(br)
			if !bytes.Equal(rest, data[end:]) {
				t.Fatalf("CONNECT: left %q after the request, want %q", rest, data[end:])
			}
			if req.Forward != nil {
				t.Fatalf("CONNECT has a Forward")
			}
			return
		}
		checkForward(t, req, data[:end])
	})
}

// checkTarget fails unless req's Target is Host and Port joined, with a non-zero port and a
// host of visible ASCII.
func checkTarget(t *testing.T, req *Request) {
	t.Helper()
	if req.Port == 0 || req.Host == "" {
		t.Fatalf("accepted host %q port %d", req.Host, req.Port)
	}
	if want := net.JoinHostPort(req.Host, strconv.Itoa(int(req.Port))); req.Target != want {
		t.Fatalf("Target = %q, want %q", req.Target, want)
	}
	if strings.ContainsFunc(req.Host, func(c rune) bool { return c <= ' ' || c >= 0x7f }) {
		t.Fatalf("Host %q has a space, control or non-ASCII character", req.Host)
	}
}

// checkForward fails if req.Forward keeps a field it must not, or writes anything but an
// origin-form HTTP/1.1 request without Proxy-Authorization. block is the request's header
// block, which ReadRequest accepted.
func checkForward(t *testing.T, req *Request, block []byte) {
	t.Helper()
	fw := req.Forward
	if fw == nil {
		t.Fatalf("%s request without Forward", req.Method)
	}
	orig, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(block)))
	if err != nil {
		t.Fatalf("net/http refuses an accepted block: %v", err)
	}
	for k := range fw.Header {
		if strings.HasPrefix(k, "Proxy-") {
			t.Fatalf("Forward keeps %s", k)
		}
	}
	for _, v := range orig.Header["Connection"] {
		for _, opt := range strings.Split(v, ",") {
			k := http.CanonicalHeaderKey(textproto.TrimString(opt))
			if _, ok := fw.Header[k]; ok && k != "Connection" {
				t.Fatalf("Forward keeps %s, listed in Connection: %q", k, v)
			}
		}
	}
	if got := fw.Header.Get("Connection"); got != "close" {
		t.Fatalf("Forward's Connection = %q, want close", got)
	}
	var out bytes.Buffer
	if err := fw.Write(&out); err != nil {
		return // a body shorter than declared, or malformed chunks
	}
	up, err := http.ReadRequest(bufio.NewReader(&out))
	if err != nil {
		t.Fatalf("Forward wrote a request net/http refuses (%v): %q", err, out.String())
	}
	if !strings.HasPrefix(up.RequestURI, "/") || up.Header.Get("Proxy-Authorization") != "" {
		t.Fatalf("Forward wrote target %q, Proxy-Authorization %q", up.RequestURI, up.Header.Get("Proxy-Authorization"))
	}
}

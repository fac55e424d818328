package httpproxy

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"testing/iotest"
)

// read runs ReadRequest over s with a bufio.Reader of the given size.
func read(s string, size int) (*Request, *bufio.Reader, error) {
	br := bufio.NewReaderSize(strings.NewReader(s), size)
	req, err := ReadRequest(br)
	return req, br, err
}

// statusOf is the status an error of ReadRequest asks for, 0 for nil, -1 for an I/O error.
func statusOf(err error) int {
	var e *Error
	switch {
	case err == nil:
		return 0
	case errors.As(err, &e):
		return e.Status
	}
	return -1
}

// authField is a valid Proxy-Authorization field (user u, password p).
const authField = "Proxy-Authorization: Basic dTpw\r\n"

// statusCase is an input of ReadRequest and the status it must ask for (0: served).
type statusCase struct {
	name, in string
	status   int
}

// checkStatuses runs ReadRequest over each case.
func checkStatuses(t *testing.T, tests []statusCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := read(tt.in, 4096)
			if got := statusOf(err); got != tt.status {
				t.Errorf("ReadRequest(%q) = %v (status %d), want status %d", tt.in, err, got, tt.status)
			}
		})
	}
}

// TestReadRequestServed checks the requests ReadRequest serves.
func TestReadRequestServed(t *testing.T) {
	checkStatuses(t, []statusCase{
		{"connect", "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", 0},
		{"connect http/1.0", "CONNECT example.com:443 HTTP/1.0\r\n\r\n", 0},
		{"connect ipv6", "CONNECT [2001:db8::1]:443 HTTP/1.1\r\n\r\n", 0},
		{"connect ipv4", "CONNECT 192.0.2.1:8443 HTTP/1.1\r\n\r\n", 0},
		{"connect content-length 0", "CONNECT a.example:443 HTTP/1.1\r\nContent-Length: 0\r\n\r\n", 0},
		{"absolute", "GET http://example.com/a?b=c HTTP/1.1\r\nHost: example.com\r\n" + authField + "\r\n", 0},
		{"absolute no path", "GET http://example.com HTTP/1.1\r\n\r\n", 0},
		{"absolute upper scheme", "GET HTTP://example.com/ HTTP/1.1\r\n\r\n", 0},
		{"absolute http/1.0", "GET http://example.com/ HTTP/1.0\r\n\r\n", 0},
		{"post with body", "POST http://example.com/ HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc", 0},
		{"post chunked", "POST http://example.com/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", 0},
	})
}

// TestReadRequestTargetRefused checks the refusals of a request's target.
func TestReadRequestTargetRefused(t *testing.T) {
	checkStatuses(t, []statusCase{
		{"connect no port", "CONNECT example.com HTTP/1.1\r\n\r\n", 400},
		{"connect empty port", "CONNECT example.com: HTTP/1.1\r\n\r\n", 400},
		{"connect path", "CONNECT /rpc HTTP/1.1\r\n\r\n", 400},
		{"connect url", "CONNECT http://example.com:443 HTTP/1.1\r\n\r\n", 400},
		{"connect host path", "CONNECT example.com:443/x HTTP/1.1\r\n\r\n", 400},
		{"connect userinfo", "CONNECT u@example.com:443 HTTP/1.1\r\n\r\n", 400},
		{"connect port 0", "CONNECT example.com:0 HTTP/1.1\r\n\r\n", 400},
		{"connect port 65536", "CONNECT example.com:65536 HTTP/1.1\r\n\r\n", 400},
		{"connect port sign", "CONNECT example.com:+443 HTTP/1.1\r\n\r\n", 400},
		{"connect missing host", "CONNECT :443 HTTP/1.1\r\n\r\n", 400},
		{"connect unbracketed ipv6", "CONNECT 2001:db8::1:443 HTTP/1.1\r\n\r\n", 400},
		{"connect ipv6 zone", "CONNECT [fe80::1%25eth0]:443 HTTP/1.1\r\n\r\n", 400},
		{"connect bracketed ipv4", "CONNECT [192.0.2.1]:443 HTTP/1.1\r\n\r\n", 400},
		{"connect short ipv4", "CONNECT 127.1:443 HTTP/1.1\r\n\r\n", 400},
		{"connect hex ipv4", "CONNECT 0x7f.1:443 HTTP/1.1\r\n\r\n", 400},
		{"connect octal ipv4", "CONNECT 010.0.0.1:443 HTTP/1.1\r\n\r\n", 400},
		{"connect body", "CONNECT example.com:443 HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello", 400},
		{"connect chunked", "CONNECT example.com:443 HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
		{"space in target", "CONNECT exa mple.com:443 HTTP/1.1\r\n\r\n", 400},
		{"tab in target", "CONNECT exa\tmple.com:443 HTTP/1.1\r\n\r\n", 400},
		{"nul in target", "GET http://exa\x00mple.com/ HTTP/1.1\r\n\r\n", 400},
		{"non-ascii target", "GET http://ex\xc3\xa9.com/ HTTP/1.1\r\n\r\n", 400},
		{"underscore host", "GET http://a_b.example/ HTTP/1.1\r\n\r\n", 0},
		{"percent host", "GET http://a%20b/ HTTP/1.1\r\n\r\n", 400},
		{"doubled space", "GET  http://example.com/ HTTP/1.1\r\n\r\n", 400},
	})
}

// TestReadRequestFormRefused checks the refusals of request forms and versions a forward proxy does not serve.
func TestReadRequestFormRefused(t *testing.T) {
	checkStatuses(t, []statusCase{
		{"https absolute", "GET https://example.com/ HTTP/1.1\r\n\r\n", 400},
		{"ftp absolute", "GET ftp://example.com/ HTTP/1.1\r\n\r\n", 400},
		{"origin form", "GET /index.html HTTP/1.1\r\nHost: example.com\r\n\r\n", 400},
		{"asterisk form", "OPTIONS * HTTP/1.1\r\n\r\n", 400},
		{"absolute no host", "GET http:///x HTTP/1.1\r\n\r\n", 400},
		{"absolute opaque", "GET http:example.com HTTP/1.1\r\n\r\n", 400},
		{"absolute userinfo", "GET http://u:p@example.com/ HTTP/1.1\r\n\r\n", 400},
		{"absolute port 0", "GET http://example.com:0/ HTTP/1.1\r\n\r\n", 400},
		{"absolute bad port", "GET http://example.com:99999/ HTTP/1.1\r\n\r\n", 400},
		{"http/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505},
		{"http/1.2", "GET http://example.com/ HTTP/1.2\r\n\r\n", 505},
		{"http/0.9", "GET http://example.com/\r\n\r\n", 400},
		{"lowercase version", "GET http://example.com/ http/1.1\r\n\r\n", 400},
		{"empty request line", "\r\nGET http://example.com/ HTTP/1.1\r\n\r\n", 400},
		{"invalid method", "G(T http://example.com/ HTTP/1.1\r\n\r\n", 400},
	})
}

// TestReadRequestSmugglingRefused checks the refusals of ambiguous framing and header syntax.
func TestReadRequestSmugglingRefused(t *testing.T) {
	checkStatuses(t, []statusCase{
		{"cl and te", "POST http://example.com/ HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
		{"te and cl", "POST http://example.com/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", 400},
		{"two identical cl", "POST http://example.com/ HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc", 400},
		{"two different cl", "POST http://example.com/ HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabc", 400},
		{"cl list", "POST http://example.com/ HTTP/1.1\r\nContent-Length: 3, 3\r\n\r\nabc", 400},
		{"cl sign", "POST http://example.com/ HTTP/1.1\r\nContent-Length: +3\r\n\r\nabc", 400},
		{"cl lowercase name twice", "POST http://example.com/ HTTP/1.1\r\ncontent-length: 3\r\nCONTENT-LENGTH: 3\r\n\r\nabc", 400},
		{"te gzip chunked", "POST http://example.com/ HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 400},
		{"te chunked chunked", "POST http://example.com/ HTTP/1.1\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", 400},
		{"te identity", "POST http://example.com/ HTTP/1.1\r\nTransfer-Encoding: identity\r\n\r\n", 400},
		{"te twice", "POST http://example.com/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
		{"te xchunked", "POST http://example.com/ HTTP/1.1\r\nTransfer-Encoding: xchunked\r\n\r\n", 400},
		{"te on http/1.0", "POST http://example.com/ HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
		{"te upper case", "POST http://example.com/ HTTP/1.1\r\nTransfer-Encoding: CHUNKED\r\n\r\n0\r\n\r\n", 0},
		{"obs-fold", "GET http://example.com/ HTTP/1.1\r\nX-A: 1\r\n 2\r\n\r\n", 400},
		{"obs-fold tab", "GET http://example.com/ HTTP/1.1\r\nX-A: 1\r\n\t2\r\n\r\n", 400},
		{"leading space first field", "GET http://example.com/ HTTP/1.1\r\n Host: x\r\n\r\n", 400},
		{"space before colon", "POST http://example.com/ HTTP/1.1\r\nTransfer-Encoding : chunked\r\n\r\n", 400},
		{"tab before colon", "GET http://example.com/ HTTP/1.1\r\nHost\t: x\r\n\r\n", 400},
		{"space in name", "GET http://example.com/ HTTP/1.1\r\nX A: 1\r\n\r\n", 400},
		{"no colon", "GET http://example.com/ HTTP/1.1\r\nXA\r\n\r\n", 400},
		{"empty name", "GET http://example.com/ HTTP/1.1\r\n: 1\r\n\r\n", 400},
		{"bare lf", "GET http://example.com/ HTTP/1.1\nHost: x\n\n", 400},
		{"bare lf end", "GET http://example.com/ HTTP/1.1\r\nHost: x\r\n\n", 400},
		{"bare cr", "GET http://example.com/ HTTP/1.1\r\nX-A: 1\rX-B: 2\r\n\r\n", 400},
		{"nul in value", "GET http://example.com/ HTTP/1.1\r\nX-A: 1\x002\r\n\r\n", 400},
		{"two hosts", "GET http://example.com/ HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
		{"obs-text in value", "GET http://example.com/ HTTP/1.1\r\nX-A: caf\xc3\xa9\r\n\r\n", 0},
	})
}

// TestReadRequestAuthRefused checks the refusals of Proxy-Authorization fields.
func TestReadRequestAuthRefused(t *testing.T) {
	checkStatuses(t, []statusCase{
		{"non-basic auth", "CONNECT example.com:443 HTTP/1.1\r\nProxy-Authorization: Bearer abc\r\n\r\n", 407},
		{"bad base64", "CONNECT example.com:443 HTTP/1.1\r\nProxy-Authorization: Basic !!!\r\n\r\n", 400},
		{"two auth", "CONNECT example.com:443 HTTP/1.1\r\n" + authField + authField + "\r\n", 400},
	})
}

func TestReadRequestTarget(t *testing.T) {
	tests := []struct {
		in, target, host string
		port             uint16
	}{
		{"CONNECT Example.COM:443 HTTP/1.1\r\n\r\n", "example.com:443", "example.com", 443},
		{"CONNECT [2001:DB8::1]:8443 HTTP/1.1\r\n\r\n", "[2001:db8::1]:8443", "2001:db8::1", 8443},
		{"CONNECT 192.0.2.1:65535 HTTP/1.1\r\n\r\n", "192.0.2.1:65535", "192.0.2.1", 65535},
		{"CONNECT example.com.:1 HTTP/1.1\r\n\r\n", "example.com.:1", "example.com.", 1},
		{"GET http://example.com/x HTTP/1.1\r\n\r\n", "example.com:80", "example.com", 80},
		{"GET http://example.com:/x HTTP/1.1\r\n\r\n", "example.com:80", "example.com", 80},
		{"GET http://example.com:8080 HTTP/1.1\r\n\r\n", "example.com:8080", "example.com", 8080},
		{"GET http://[::1]/ HTTP/1.1\r\n\r\n", "[::1]:80", "::1", 80},
		{"GET http://h0st.example:080/ HTTP/1.1\r\n\r\n", "h0st.example:80", "h0st.example", 80},
	}
	for _, tt := range tests {
		req, _, err := read(tt.in, 4096)
		if err != nil {
			t.Errorf("ReadRequest(%q): %v", tt.in, err)
			continue
		}
		if req.Target != tt.target || req.Host != tt.host || req.Port != tt.port {
			t.Errorf("ReadRequest(%q) = target %q host %q port %d, want %q %q %d",
				tt.in, req.Target, req.Host, req.Port, tt.target, tt.host, tt.port)
		}
	}
}

func TestReadRequestIOErrors(t *testing.T) {
	if _, _, err := read("", 4096); err != io.EOF {
		t.Errorf("ReadRequest(empty) = %v, want io.EOF", err)
	}
	if _, _, err := read("CONNECT example.com:443 HTTP/1.1\r\nHost: exa", 4096); err != io.ErrUnexpectedEOF {
		t.Errorf("ReadRequest(cut) = %v, want io.ErrUnexpectedEOF", err)
	}
	br := bufio.NewReader(iotest.TimeoutReader(strings.NewReader("CONNECT example.com:443 HTTP/1.1\r\n")))
	br.Peek(1) // the first read succeeds, the second times out
	if _, err := ReadRequest(br); !errors.Is(err, iotest.ErrTimeout) || statusOf(err) != -1 {
		t.Errorf("ReadRequest(timeout) = %v, want an I/O error wrapping iotest.ErrTimeout", err)
	}
}

// sized returns a CONNECT whose header block is exactly n bytes, padded with an X-Pad field.
func sized(t *testing.T, n int) string {
	const head, tail = "CONNECT example.com:443 HTTP/1.1\r\nX-Pad: ", "\r\n\r\n"
	pad := n - len(head) - len(tail)
	if pad < 0 {
		t.Fatalf("sized(%d): too small", n)
	}
	return head + strings.Repeat("a", pad) + tail
}

func TestReadRequestSizeLimit(t *testing.T) {
	for _, size := range []int{16, 4096, 64 << 10} {
		for _, tt := range []struct {
			n      int
			status int
		}{{MaxHeaderBytes - 1, 0}, {MaxHeaderBytes, 0}, {MaxHeaderBytes + 1, 431}} {
			_, _, err := read(sized(t, tt.n)+"tunnel bytes", size)
			if got := statusOf(err); got != tt.status {
				t.Errorf("ReadRequest(%d-byte header, bufio size %d) = %v, want status %d", tt.n, size, err, tt.status)
			}
		}
	}
	// One request line longer than the limit, never ended.
	long := "GET http://example.com/" + strings.Repeat("a", 2*MaxHeaderBytes)
	if _, _, err := read(long, 4096); err != ErrTooLarge {
		t.Errorf("ReadRequest(endless request line) = %v, want ErrTooLarge", err)
	}
	// Many small fields.
	many := "CONNECT example.com:443 HTTP/1.1\r\n" + strings.Repeat("A: b\r\n", MaxHeaderBytes/6+1) + "\r\n"
	if _, _, err := read(many, 4096); err != ErrTooLarge {
		t.Errorf("ReadRequest(%d fields) = %v, want ErrTooLarge", MaxHeaderBytes/6+1, err)
	}
}

func TestConnectKeepsTunnelBytes(t *testing.T) {
	hello := "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + strings.Repeat("\x00", 100)
	in := "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n" + hello
	for _, size := range []int{16, 64, 4096} {
		req, br, err := read(in, size)
		if err != nil {
			t.Fatalf("ReadRequest(CONNECT + ClientHello, bufio size %d): %v", size, err)
		}
		if req.Forward != nil {
			t.Errorf("ReadRequest(CONNECT).Forward = %v, want nil", req.Forward)
		}
		got := TakeBuffered(br)
		if br.Buffered() != 0 {
			t.Errorf("after TakeBuffered, br.Buffered() = %d, want 0", br.Buffered())
		}
		rest, _ := io.ReadAll(br)
		if got := string(got) + string(rest); got != hello {
			t.Errorf("bufio size %d: TakeBuffered + rest = %q, want the ClientHello %q", size, got, hello)
		}
	}
	// One read delivering everything, the way one TCP segment would.
	br := bufio.NewReader(iotest.OneByteReader(strings.NewReader(in)))
	if _, err := ReadRequest(br); err != nil {
		t.Fatalf("ReadRequest(one byte a read): %v", err)
	}
	if rest, _ := io.ReadAll(br); string(rest) != hello {
		t.Errorf("one byte a read: rest = %q, want %q", rest, hello)
	}
}

func TestTakeBufferedEmpty(t *testing.T) {
	_, br, err := read("CONNECT example.com:443 HTTP/1.1\r\n\r\n", 4096)
	if err != nil {
		t.Fatal(err)
	}
	if got := TakeBuffered(br); got != nil {
		t.Errorf("TakeBuffered(nothing buffered) = %q, want nil", got)
	}
}

// forward reads an absolute-form request and returns what Forward writes upstream.
func forward(t *testing.T, in string) (*Request, string) {
	t.Helper()
	req, _, err := read(in, 4096)
	if err != nil {
		t.Fatalf("ReadRequest(%q): %v", in, err)
	}
	var out bytes.Buffer
	if err := req.Forward.Write(&out); err != nil {
		t.Fatalf("Forward.Write: %v", err)
	}
	return req, out.String()
}

func TestForward(t *testing.T) {
	in := "GET http://Example.com:8080/a%2Fb/c?q=1&r HTTP/1.1\r\n" +
		"Host: evil.example\r\n" +
		"User-Agent: curl/8.0\r\n" +
		"Proxy-Authorization: Basic dTpw\r\n" +
		"Proxy-Connection: keep-alive\r\n" +
		"Proxy-Foo: bar\r\n" +
		"Connection: keep-alive, X-Secret, Upgrade\r\n" +
		"X-Secret: s\r\n" +
		"Keep-Alive: timeout=5\r\n" +
		"TE: trailers\r\n" +
		"Trailer: X-T\r\n" +
		"Upgrade: websocket\r\n" +
		"Accept: */*\r\n" +
		"\r\n"
	req, got := forward(t, in)
	want := "GET /a%2Fb/c?q=1&r HTTP/1.1\r\n" +
		"Host: Example.com:8080\r\n" +
		"User-Agent: curl/8.0\r\n" +
		"Accept: */*\r\n" +
		"Connection: close\r\n" +
		"\r\n"
	if got != want {
		t.Errorf("Forward.Write =\n%q\nwant\n%q", got, want)
	}
	if req.User != "u" || req.Password != "p" || !req.HasAuth {
		t.Errorf("ReadRequest auth = %q %q %v, want u p true", req.User, req.Password, req.HasAuth)
	}
	if req.Method != "GET" || req.Forward.URL.String() != "/a%2Fb/c?q=1&r" {
		t.Errorf("Forward = %s %s, want GET /a%%2Fb/c?q=1&r", req.Method, req.Forward.URL)
	}
}

func TestForwardNoUserAgentAdded(t *testing.T) {
	_, got := forward(t, "GET http://example.com HTTP/1.0\r\n\r\n")
	want := "GET / HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n"
	if got != want {
		t.Errorf("Forward.Write = %q, want %q", got, want)
	}
}

func TestForwardBody(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"content-length", "POST http://example.com/ HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcNEXT",
			"POST / HTTP/1.1\r\nHost: example.com\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc"},
		{"chunked", "POST http://example.com/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
			"POST / HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nabcde\r\n0\r\n\r\n"},
		{"no body", "DELETE http://example.com/x HTTP/1.1\r\n\r\nNEXT",
			"DELETE /x HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, got := forward(t, tt.in)
			if got != tt.want {
				t.Errorf("Forward.Write =\n%q\nwant\n%q", got, tt.want)
			}
		})
	}
}

func TestForwardShortBody(t *testing.T) {
	req, _, err := read("POST http://example.com/ HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc", 4096)
	if err != nil {
		t.Fatal(err)
	}
	if err := req.Forward.Write(io.Discard); err == nil {
		t.Errorf("Forward.Write(body 3 of 10 bytes) = nil, want an error")
	}
}

func TestErrorIsStatus(t *testing.T) {
	_, _, err := read("GET /x HTTP/1.1\r\n\r\n", 4096)
	var e *Error
	if !errors.As(err, &e) || e.Status != http.StatusBadRequest || e.Msg == "" {
		t.Fatalf("ReadRequest(origin-form) = %v, want a 400 *Error with a message", err)
	}
	if got, want := e.Error(), "httpproxy: 400 "+e.Msg; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

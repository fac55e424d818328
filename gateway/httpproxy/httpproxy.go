// Package httpproxy reads and checks the requests a forward HTTP/1.1 proxy serves —
// `CONNECT host:port` and absolute-form `GET http://host/path` — and writes the proxy's own
// plain-text replies.
//
// It holds the request/response layer only: no dialing, no authentication decisions, no
// socket deadlines (the server in package gateway sets them and maps their timeouts to a
// reply). What it guarantees to that server:
//
//   - ReadRequest consumes at most the request line and headers (never a byte of what
//     follows a CONNECT), and refuses a header block over MaxHeaderBytes, counted byte-exactly
//     whatever the size of the bufio.Reader.
//   - Every refusal is an *Error carrying the status to answer; nothing in a refused request
//     may be forwarded. Errors of any other type are I/O errors of the connection (io.EOF
//     before the first byte: the client went away; a timeout: the server's deadline).
//   - Request.Forward, for absolute-form, is safe to write upstream with
//     (*http.Request).Write: origin-form target, no hop-by-hop or Proxy-* header, its own
//     framing, Connection: close.
package httpproxy

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"strconv"
)

// MaxHeaderBytes bounds the request line and header fields of one request, counted from the
// request line's first byte through the CRLF of the empty line that ends the header block.
// A block of exactly MaxHeaderBytes is read; one byte more is refused with ErrTooLarge.
const MaxHeaderBytes = 16 << 10

// Request is one checked proxy request.
type Request struct {
	// Method is "CONNECT" or the method of a request to forward.
	Method string
	// Target is the host:port to dial, as net.JoinHostPort(Host, Port): the CONNECT
	// authority (whose port is required), or the absolute-form URL's authority with port 80
	// by default.
	Target string
	// Host is Target's host, lower-cased, without brackets for an IPv6 literal: a DNS name
	// of letters, digits, '-', '.' and '_', an IPv4 literal or an IPv6 literal without zone.
	Host string
	// Port is Target's port, 1–65535.
	Port uint16
	// User and Password come from a "Proxy-Authorization: Basic" field (RFC 7617), either
	// possibly empty; a malformed field is refused by ReadRequest (see parseBasic).
	User, Password string
	// HasAuth says whether the request carried a Proxy-Authorization field: without one the
	// server answers 407 (WriteReply adds the challenge).
	HasAuth bool
	// Forward is, for absolute-form, the request to send upstream with its Write method;
	// its Body reads the request's body from the bufio.Reader given to ReadRequest, so it
	// must be written before that reader is used again. Nil for CONNECT.
	Forward *http.Request
}

// Error is a refusal: the reply the server must write (with WriteReply) before closing the
// connection, having forwarded nothing of the request.
type Error struct {
	// Status is the HTTP status code of the reply.
	Status int
	// Msg is the reply's plain-text body, without the final newline.
	Msg string
}

// Error returns the status and message, e.g. "httpproxy: 400 obs-fold header line".
func (e *Error) Error() string {
	return "httpproxy: " + strconv.Itoa(e.Status) + " " + e.Msg
}

// ErrTooLarge refuses a request line and headers longer than MaxHeaderBytes: 431 Request
// Header Fields Too Large (RFC 6585), also for one long request line, since the client
// cannot tell which part of the block it must shorten.
var ErrTooLarge = &Error{Status: http.StatusRequestHeaderFieldsTooLarge, Msg: "request header too large"}

// Realm is the realm of the Basic challenge in every 407 reply.
const Realm = "cellgate"

// WriteReply writes the proxy's own reply: the status line, "Content-Type: text/plain;
// charset=utf-8", Content-Length, "Connection: close", for 407 a
// `Proxy-Authenticate: Basic realm="cellgate"` challenge, the extra header fields (the fixed
// ones win over extra's), and msg plus a newline as the body. Fields are written in sorted
// order, so the bytes are the same on every call. The server closes the connection after it.
func WriteReply(w io.Writer, status int, msg string, extra http.Header) error {
	h := make(http.Header, len(extra)+4)
	for k, vv := range extra {
		h[http.CanonicalHeaderKey(k)] = vv
	}
	body := msg + "\n"
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("Connection", "close")
	if status == http.StatusProxyAuthRequired {
		h.Set("Proxy-Authenticate", `Basic realm="`+Realm+`"`)
	}
	text := http.StatusText(status)
	if text == "" {
		text = "Status " + strconv.Itoa(status)
	}
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "HTTP/1.1 %03d %s\r\n", status, text)
	if err := h.Write(bw); err != nil {
		return err
	}
	bw.WriteString("\r\n")
	bw.WriteString(body)
	return bw.Flush()
}

// WriteEstablished writes the answer to a CONNECT whose tunnel is open:
// "HTTP/1.1 200 Connection established\r\n\r\n". The tunnel's bytes follow it.
func WriteEstablished(w io.Writer) error {
	_, err := io.WriteString(w, "HTTP/1.1 200 Connection established\r\n\r\n")
	return err
}

// TakeBuffered returns a copy of the bytes br holds beyond the request ReadRequest read, and
// discards them from br. After a CONNECT the server must send them into the tunnel first
// (a client may send its TLS ClientHello in the same segment as the CONNECT), then copy from
// the connection itself. Nil when br holds nothing.
func TakeBuffered(br *bufio.Reader) []byte {
	n := br.Buffered()
	if n == 0 {
		return nil
	}
	b, _ := br.Peek(n) // n bytes are buffered: Peek cannot fail
	out := append([]byte(nil), b...)
	br.Discard(n)
	return out
}

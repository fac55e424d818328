package httpproxy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// ReadRequest reads and checks one proxy request from br: its request line and header fields,
// at most MaxHeaderBytes (else ErrTooLarge), and nothing after them. br may have any size;
// no limiting reader is needed under it, since the count is made here, line by line.
//
// A refused request is an *Error with the status to answer, every one 400 unless said
// otherwise:
//   - request line and headers over MaxHeaderBytes: ErrTooLarge (431);
//   - a request line that is not `METHOD SP target SP HTTP/1.x` (control or non-ASCII bytes,
//     a space in the target, doubled spaces); HTTP/1.0 and HTTP/1.1 are served, any other
//     HTTP/x version, the HTTP/2 preface `PRI * HTTP/2.0` included: 505;
//   - lines not ended by CRLF (bare LF), bare CR, obs-fold continuation lines, header names
//     that are not tokens (whitespace before the colon), control characters in a value;
//   - framing two parsers could read differently: Content-Length together with
//     Transfer-Encoding, several Content-Length fields (even identical), a Content-Length
//     that is not digits, several Transfer-Encoding fields, a Transfer-Encoding other than
//     chunked (compared case-insensitively), Transfer-Encoding in an HTTP/1.0 request, any
//     body on CONNECT (a Content-Length other than 0, a Transfer-Encoding);
//   - anything net/http's ReadRequest refuses (an invalid method or URL, several Host
//     fields);
//   - the target: see setConnectTarget, setForward and setTarget (400 each);
//   - Proxy-Authorization: see parseBasic (400, or 407 for a scheme other than Basic).
//
// Any other error comes from br: io.EOF when the connection ended before the request's first
// byte (the server answers nothing), io.ErrUnexpectedEOF when it ended inside the header
// block, or the connection's own error (such as the timeout of the server's deadline),
// wrapped.
func ReadRequest(br *bufio.Reader) (*Request, error) {
	raw, sc, err := readHeaderBlock(br)
	if err != nil {
		return nil, err
	}
	if err := sc.checkFraming(); err != nil {
		return nil, err
	}
	// The block has passed the checks above; net/http parses it from memory, so it can
	// neither read beyond the block nor buffer what follows it.
	hr, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(raw)))
	if err != nil {
		return nil, badRequest("malformed request")
	}
	req := &Request{Method: hr.Method}
	if err := req.setAuth(hr.Header); err != nil {
		return nil, err
	}
	if hr.Method == http.MethodConnect {
		err = req.setConnectTarget(hr.RequestURI)
	} else {
		err = req.setForward(hr, br)
	}
	if err != nil {
		return nil, err
	}
	return req, nil
}

// badRequest is a 400 refusal.
func badRequest(msg string) *Error {
	return &Error{Status: http.StatusBadRequest, Msg: msg}
}

// smuggling is a 400 refusal of a request whose framing or header syntax two HTTP parsers
// could read differently; the message says so, so that logs can count them.
func smuggling(msg string) *Error {
	return badRequest("request refused (possible smuggling): " + msg)
}

// scan is what readHeaderBlock found in the raw lines that net/http would hide: it merges
// duplicate Content-Length fields and drops Transfer-Encoding from the header.
type scan struct {
	method           string
	http10           bool
	contentLength    []string // the values of every Content-Length field, trimmed
	transferEncoding []string // the values of every Transfer-Encoding field, trimmed
}

// readHeaderBlock reads the request line and header fields from br up to and including the
// empty line that ends them, checking each line as it comes (so that the HTTP/2 preface is
// refused at its first line). It returns the block's bytes.
func readHeaderBlock(br *bufio.Reader) ([]byte, *scan, error) {
	var raw []byte
	sc := &scan{}
	for first := true; ; first = false {
		start := len(raw)
		var err error
		raw, err = readLine(br, raw)
		if err != nil {
			return nil, nil, readError(err, len(raw))
		}
		line := raw[start:]
		if line[len(line)-2] != '\r' {
			return nil, nil, smuggling("line not ended by CRLF")
		}
		line = line[:len(line)-2]
		if bytes.IndexByte(line, '\r') >= 0 {
			return nil, nil, smuggling("bare CR")
		}
		switch {
		case first:
			err = sc.requestLine(line)
		case len(line) == 0:
			return raw, sc, nil
		default:
			err = sc.fieldLine(line)
		}
		if err != nil {
			return nil, nil, err
		}
	}
}

// readError is what ReadRequest returns for readLine's error err after n bytes: a refusal
// as it is, io.EOF before the first byte, io.ErrUnexpectedEOF after it, any other error
// wrapped.
func readError(err error, n int) error {
	var refusal *Error
	switch {
	case errors.As(err, &refusal):
		return err
	case errors.Is(err, io.EOF) && n == 0:
		return io.EOF
	case errors.Is(err, io.EOF):
		return io.ErrUnexpectedEOF
	}
	return fmt.Errorf("read request header: %w", err)
}

// readLine appends one line of br, through its '\n', to raw, refusing to let raw grow past
// MaxHeaderBytes. A line it returns without error ends in '\n' and is at least 2 bytes long
// (else it is refused as not ended by CRLF).
func readLine(br *bufio.Reader, raw []byte) ([]byte, error) {
	start := len(raw)
	for {
		frag, err := br.ReadSlice('\n')
		if len(raw)+len(frag) > MaxHeaderBytes {
			return raw, ErrTooLarge
		}
		raw = append(raw, frag...)
		switch {
		case err == nil && len(raw)-start < 2:
			return raw, smuggling("line not ended by CRLF")
		case err == nil:
			return raw, nil
		case err != bufio.ErrBufferFull:
			return raw, err
		}
	}
}

// requestLine checks `METHOD SP request-target SP HTTP-version` (RFC 9112 §3): visible ASCII
// only, exactly two single spaces, HTTP/1.0 or HTTP/1.1.
func (sc *scan) requestLine(line []byte) error {
	for _, b := range line {
		if b != ' ' && (b <= ' ' || b >= 0x7f) {
			return smuggling("control character or non-ASCII byte in request line")
		}
	}
	parts := strings.Split(string(line), " ")
	switch {
	case len(line) == 0:
		return badRequest("empty request line")
	case len(parts) > 3:
		return smuggling("space in request target")
	case len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "":
		return badRequest("malformed request line")
	}
	switch version := parts[2]; {
	case version == "HTTP/1.1":
	case version == "HTTP/1.0":
		sc.http10 = true
	case strings.HasPrefix(version, "HTTP/"):
		return &Error{Status: http.StatusHTTPVersionNotSupported, Msg: "only HTTP/1.1 and HTTP/1.0 are served"}
	default:
		return badRequest("malformed HTTP version")
	}
	sc.method = parts[0]
	return nil
}

// fieldLine checks one `name: value` line (RFC 9112 §5): no obs-fold, a token name with no
// whitespace before the colon, no control characters but HTAB in the value. It records the
// framing fields.
func (sc *scan) fieldLine(line []byte) error {
	if line[0] == ' ' || line[0] == '\t' {
		return smuggling("obs-fold header continuation line")
	}
	name, value, ok := bytes.Cut(line, []byte(":"))
	if !ok {
		return badRequest("header line without colon")
	}
	if n := len(name); n > 0 && (name[n-1] == ' ' || name[n-1] == '\t') {
		return smuggling("whitespace before colon in header field")
	}
	if !isToken(name) {
		return badRequest("invalid header field name")
	}
	for _, b := range value {
		if (b < ' ' && b != '\t') || b == 0x7f {
			return smuggling("control character in header field value")
		}
	}
	v := strings.Trim(string(value), " \t")
	switch {
	case strings.EqualFold(string(name), "Content-Length"):
		sc.contentLength = append(sc.contentLength, v)
	case strings.EqualFold(string(name), "Transfer-Encoding"):
		sc.transferEncoding = append(sc.transferEncoding, v)
	}
	return nil
}

// checkFraming refuses a body whose length two parsers could disagree on (RFC 9112 §6.3,
// §11.2), and any body on CONNECT.
func (sc *scan) checkFraming() error {
	cl, te := sc.contentLength, sc.transferEncoding
	switch {
	case len(cl) > 0 && len(te) > 0:
		return smuggling("both Content-Length and Transfer-Encoding")
	case len(cl) > 1:
		return smuggling("several Content-Length fields")
	case len(cl) == 1 && !isDigits(cl[0]):
		return smuggling("invalid Content-Length")
	case len(te) > 1:
		return smuggling("several Transfer-Encoding fields")
	case len(te) == 1 && sc.http10:
		return smuggling("Transfer-Encoding in an HTTP/1.0 request")
	case len(te) == 1 && !strings.EqualFold(te[0], "chunked"):
		return smuggling("Transfer-Encoding other than chunked")
	case sc.method == http.MethodConnect && (len(te) > 0 || len(cl) > 0 && strings.Trim(cl[0], "0") != ""):
		return smuggling("request body on CONNECT")
	}
	return nil
}

// isDigits reports whether s is 1 to 18 ASCII digits (so that it fits an int64).
func isDigits(s string) bool {
	if len(s) == 0 || len(s) > 18 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// isToken reports whether b is a non-empty RFC 9110 token.
func isToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if !isTchar(c) {
			return false
		}
	}
	return true
}

// isTchar reports whether c may appear in a token (RFC 9110 §5.6.2).
func isTchar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

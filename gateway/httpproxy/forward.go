package httpproxy

import (
	"bufio"
	"io"
	"net/http"
	"net/http/httputil"
	"net/textproto"
	"net/url"
	"strings"
)

// setForward checks an absolute-form request (RFC 9112 §3.2.2) and builds its Forward.
// Refused with 400: origin-form (`GET /path`, the proxy used as a web server) and
// asterisk-form; a scheme other than http (https:// and others are for CONNECT); no host;
// user info in the URL (RFC 9110 §4.2.4: deprecated, and a way to disguise the host).
func (r *Request) setForward(hr *http.Request, br *bufio.Reader) error {
	u := hr.URL
	switch u.Scheme {
	case "http":
	case "":
		return badRequest("this is a proxy: send GET http://host/path or CONNECT host:port")
	case "https":
		return badRequest("https:// is not forwarded: use CONNECT host:443")
	default:
		return badRequest("only http:// is forwarded: use CONNECT for other protocols")
	}
	switch {
	case u.Opaque != "" || u.Host == "":
		return badRequest("missing host in request target")
	case u.User != nil:
		return badRequest("user info in request target")
	}
	if err := r.setTarget(u.Host, "80"); err != nil {
		return err
	}
	r.Forward = forwardRequest(hr, br)
	return nil
}

// forwardRequest is hr as the proxy sends it upstream: origin-form URL, Host from the
// absolute-form URL (RFC 9112 §3.2.2: a received Host field is replaced), the header cleaned
// by forwardHeader, Connection: close, and the body read from br with the framing that
// checkFraming accepted. A chunked body's trailer fields stay unread in br: they are not
// forwarded, and the client connection must not be reused after such a request.
func forwardRequest(hr *http.Request, br *bufio.Reader) *http.Request {
	fw := &http.Request{
		Method: hr.Method,
		URL: &url.URL{
			Path:       hr.URL.Path,
			RawPath:    hr.URL.RawPath,
			RawQuery:   hr.URL.RawQuery,
			ForceQuery: hr.URL.ForceQuery,
		},
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     forwardHeader(hr.Header),
		Host:       hr.URL.Host,
		Close:      true,
		Body:       http.NoBody,
	}
	switch {
	case len(hr.TransferEncoding) > 0:
		fw.TransferEncoding = []string{"chunked"}
		fw.ContentLength = -1
		fw.Body = io.NopCloser(httputil.NewChunkedReader(br))
	case hr.ContentLength > 0:
		fw.ContentLength = hr.ContentLength
		fw.Body = io.NopCloser(io.LimitReader(br, hr.ContentLength))
	}
	return fw
}

// hopByHop are the fields removed from every forwarded request, besides those Connection
// lists and every Proxy-* field: the hop-by-hop fields of RFC 9110 §7.6.1, and the framing
// and Host fields, which (*http.Request).Write writes from the request's own fields.
//
// Upgrade is stripped, not refused: an upgrade is an offer the origin may ignore, so without
// it (and with Connection: close) the origin answers plain HTTP/1.1 and the server never has
// to relay a 101. WebSocket clients tunnel through a proxy with CONNECT (RFC 6455 §4.1).
var hopByHop = []string{
	"Connection", "Keep-Alive", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
	"Host", "Content-Length",
}

// forwardHeader is a copy of h without hop-by-hop fields (hopByHop, those Connection lists,
// every Proxy-* field: Proxy-Authorization is for this proxy alone, Proxy-Connection is a
// pre-standard Connection), with "Connection: close", and with User-Agent kept empty when the
// client sent none, so that net/http does not add its own.
func forwardHeader(h http.Header) http.Header {
	out := h.Clone()
	for _, v := range h["Connection"] {
		for _, opt := range strings.Split(v, ",") {
			if opt = textproto.TrimString(opt); opt != "" {
				delete(out, http.CanonicalHeaderKey(opt))
			}
		}
	}
	for _, k := range hopByHop {
		delete(out, k)
	}
	for k := range out {
		if strings.HasPrefix(k, "Proxy-") {
			delete(out, k)
		}
	}
	out.Set("Connection", "close")
	if _, ok := out["User-Agent"]; !ok {
		out["User-Agent"] = []string{""}
	}
	return out
}

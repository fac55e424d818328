package webhook

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"os"
	"syscall"
)

// ErrorCategory is what an operator is told about a failed delivery attempt: one of a small
// closed set, never the error's text. A dial error names the address and port that were tried
// ("dial tcp 10.0.0.5:5432: connect: connection refused"), which would make "Send test" and the
// delivery log a scanner of the platform's network and DNS; the full error goes to the server
// log instead, with the delivery's id.
type ErrorCategory string

// The categories. The HTTP ones go with the answer's status code, which is shown as well.
const (
	CategoryAddressNotAllowed ErrorCategory = "address not allowed"
	CategoryDNS               ErrorCategory = "DNS error"
	CategoryConnRefused       ErrorCategory = "connection refused"
	CategoryTimeout           ErrorCategory = "timeout"
	CategoryTLS               ErrorCategory = "TLS error"
	CategoryTooManyRedirects  ErrorCategory = "too many redirects"
	CategoryInvalidURL        ErrorCategory = "invalid URL"
	CategoryNetwork           ErrorCategory = "network error"
	CategoryHTTP1xx           ErrorCategory = "HTTP 1xx"
	CategoryHTTP3xx           ErrorCategory = "HTTP 3xx"
	CategoryHTTP4xx           ErrorCategory = "HTTP 4xx"
	CategoryHTTP5xx           ErrorCategory = "HTTP 5xx"
	CategoryHTTPOther         ErrorCategory = "unexpected HTTP status"
	CategoryInternal          ErrorCategory = "internal error"
	// CategoryNoEndpoint is "Send test" without a saved endpoint.
	CategoryNoEndpoint ErrorCategory = "no webhook endpoint saved"
)

// Categories lists every ErrorCategory.
var Categories = []ErrorCategory{
	CategoryAddressNotAllowed, CategoryDNS, CategoryConnRefused, CategoryTimeout, CategoryTLS,
	CategoryTooManyRedirects, CategoryInvalidURL, CategoryNetwork, CategoryHTTP1xx, CategoryHTTP3xx,
	CategoryHTTP4xx, CategoryHTTP5xx, CategoryHTTPOther, CategoryInternal, CategoryNoEndpoint,
}

// ParseCategory returns s as an ErrorCategory when it is one, else CategoryNetwork: a delivery
// log row written before categories existed may hold a raw error, which must not be shown.
func ParseCategory(s string) ErrorCategory {
	for _, c := range Categories {
		if string(c) == s {
			return c
		}
	}
	return CategoryNetwork
}

// errTooManyRedirects is returned by the sender's redirect check.
var errTooManyRedirects = errors.New("too many redirects")

// errInvalidURL wraps every refusal of CheckURL that is about the URL's form.
var errInvalidURL = errors.New("invalid webhook URL")

// Categorize says what went wrong with one attempt: err is Send's error, res its result; a
// delivered attempt is "".
func Categorize(res Result, err error) ErrorCategory {
	if err != nil {
		return categorizeError(err)
	}
	if res.Delivered() {
		return ""
	}
	switch res.StatusCode / 100 {
	case 1:
		return CategoryHTTP1xx
	case 2:
		return "" // unreachable: Delivered
	case 3:
		return CategoryHTTP3xx
	case 4:
		return CategoryHTTP4xx
	case 5:
		return CategoryHTTP5xx
	}
	return CategoryHTTPOther
}

// categorizeError maps an error of Send (usually a *url.Error around a net.OpError) to its
// category. The guard's refusal comes first: it is also a dial error.
func categorizeError(err error) ErrorCategory {
	var (
		dnsErr      *net.DNSError
		netErr      net.Error
		certErr     *tls.CertificateVerificationError
		alertErr    tls.AlertError
		recordErr   tls.RecordHeaderError
		unknownCA   x509.UnknownAuthorityError
		hostnameErr x509.HostnameError
		invalidCert x509.CertificateInvalidError
	)
	switch {
	case errors.Is(err, ErrForbiddenAddress):
		return CategoryAddressNotAllowed
	case errors.Is(err, errInvalidURL):
		return CategoryInvalidURL
	case errors.Is(err, errTooManyRedirects):
		return CategoryTooManyRedirects
	case errors.Is(err, ErrBadSecret):
		return CategoryInternal
	case errors.As(err, &dnsErr):
		if dnsErr.IsTimeout {
			return CategoryTimeout
		}
		return CategoryDNS
	case errors.Is(err, syscall.ECONNREFUSED):
		return CategoryConnRefused
	case errors.As(err, &certErr), errors.As(err, &alertErr), errors.As(err, &recordErr),
		errors.As(err, &unknownCA), errors.As(err, &hostnameErr), errors.As(err, &invalidCert):
		return CategoryTLS
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded),
		errors.As(err, &netErr) && netErr.Timeout():
		return CategoryTimeout
	case errors.Is(err, http.ErrSchemeMismatch):
		return CategoryTLS // an https URL answered by a plain HTTP server, or the reverse
	}
	return CategoryNetwork
}

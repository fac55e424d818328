package httpproxy

import (
	"encoding/base64"
	"net/http"
	"strings"
)

// setAuth sets User, Password and HasAuth from the request's Proxy-Authorization field, if
// any; several such fields are refused with 400.
func (r *Request) setAuth(h http.Header) error {
	vv := h["Proxy-Authorization"]
	switch len(vv) {
	case 0:
		return nil
	case 1:
	default:
		return badRequest("several Proxy-Authorization fields")
	}
	user, password, err := parseBasic(vv[0])
	if err != nil {
		return err
	}
	r.User, r.Password, r.HasAuth = user, password, true
	return nil
}

// parseBasic decodes `Basic base64(user-id ":" password)` (RFC 7617). The scheme is
// case-insensitive; the password may contain colons (the user-id ends at the first one); an
// empty user-id or password is returned as it is, for the server's authentication to refuse
// like any wrong password.
//
// A scheme other than Basic (Bearer, Digest, NTLM, …) is refused with 407: the credentials
// are not acceptable, and the 407's `Basic` challenge tells the client which are. Credentials
// that are not standard, padded base64, lack the colon or hold control characters (which
// RFC 7617 forbids) are a malformed request: 400.
func parseBasic(v string) (user, password string, err error) {
	scheme, cred, _ := strings.Cut(strings.Trim(v, " \t"), " ")
	if !strings.EqualFold(scheme, "Basic") {
		return "", "", &Error{Status: http.StatusProxyAuthRequired, Msg: "only Basic proxy authentication is supported"}
	}
	dec, err := base64.StdEncoding.Strict().DecodeString(strings.TrimLeft(cred, " "))
	if err != nil {
		return "", "", badRequest("malformed Basic credentials: not base64")
	}
	user, password, ok := strings.Cut(string(dec), ":")
	if !ok {
		return "", "", badRequest("malformed Basic credentials: no colon")
	}
	if strings.ContainsFunc(string(dec), func(c rune) bool { return c < ' ' || c == 0x7f }) {
		return "", "", badRequest("malformed Basic credentials: control character")
	}
	return user, password, nil
}

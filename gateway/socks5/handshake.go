package socks5

import (
	"fmt"
	"io"
)

// ReadGreeting reads the client's greeting (VER NMETHODS METHODS) and returns the methods it
// offers, in its order, duplicates and unknown methods included: the server picks one it
// supports and answers with WriteMethod, or NoAcceptable when there is none.
//
// It fails with ErrVersion when VER is not 5 and with ErrNoMethods when NMETHODS is 0.
func ReadGreeting(r io.Reader) ([]Method, error) {
	b := getBuffer()
	defer putBuffer(b)
	if err := readFull(r, b[:2], true); err != nil {
		return nil, fmt.Errorf("socks5: read greeting: %w", err)
	}
	if b[0] != Version {
		return nil, fmt.Errorf("%w %d in greeting", ErrVersion, b[0])
	}
	n := int(b[1])
	if n == 0 {
		return nil, ErrNoMethods
	}
	if err := readFull(r, b[:n], false); err != nil {
		return nil, fmt.Errorf("socks5: read greeting: %w", err)
	}
	methods := make([]Method, n)
	for i, m := range b[:n] {
		methods[i] = Method(m)
	}
	return methods, nil
}

// WriteMethod writes the server's choice of method (VER METHOD). After NoAcceptable the
// client closes the connection.
func WriteMethod(w io.Writer, m Method) error {
	b := getBuffer()
	b[0], b[1] = Version, byte(m)
	return send(w, b, 2, "method")
}

// ReadUserPass reads RFC 1929's username/password request (VER ULEN UNAME PLEN PASSWD). The
// username and the password are returned as sent: 1–255 arbitrary bytes each, not
// necessarily UTF-8.
//
// It fails with ErrAuthVersion when VER is not 1, and with ErrEmptyCredential when ULEN or
// PLEN is 0: RFC 1929 allows neither (both are 1–255 octets), and an empty password is never
// a credential, so it is refused here rather than left to every caller. That error comes after
// the whole message was read; the server answers WriteUserPassStatus(w, false).
func ReadUserPass(r io.Reader) (user, pass string, err error) {
	b := getBuffer()
	defer putBuffer(b) // clears the password
	if err := readFull(r, b[:2], true); err != nil {
		return "", "", fmt.Errorf("socks5: read username/password: %w", err)
	}
	if b[0] != userPassVersion {
		return "", "", fmt.Errorf("%w %d", ErrAuthVersion, b[0])
	}
	ulen := int(b[1])
	if err := readFull(r, b[:ulen+1], false); err != nil { // UNAME and PLEN
		return "", "", fmt.Errorf("socks5: read username/password: %w", err)
	}
	plen := int(b[ulen])
	if ulen > 0 && plen > 0 {
		user = string(b[:ulen])
	}
	if err := readFull(r, b[:plen], false); err != nil {
		return "", "", fmt.Errorf("socks5: read username/password: %w", err)
	}
	switch {
	case ulen == 0:
		return "", "", fmt.Errorf("%w: username", ErrEmptyCredential)
	case plen == 0:
		return "", "", fmt.Errorf("%w: password", ErrEmptyCredential)
	}
	return user, string(b[:plen]), nil
}

// WriteUserPassStatus writes RFC 1929's status (VER STATUS): 0x00 when ok, 0x01 otherwise.
// After a failure the server must close the connection (RFC 1929 section 2).
func WriteUserPassStatus(w io.Writer, ok bool) error {
	b := getBuffer()
	b[0], b[1] = userPassVersion, 0x01
	if ok {
		b[1] = 0x00
	}
	return send(w, b, 2, "username/password status")
}

// send writes b[:n], returns b to the pool and names what in its error. The message is built in
// a pooled buffer because a slice handed to an io.Writer escapes to the heap.
func send(w io.Writer, b *buffer, n int, what string) error {
	_, err := w.Write(b[:n])
	putBuffer(b)
	if err != nil {
		return fmt.Errorf("socks5: write %s: %w", what, err)
	}
	return nil
}

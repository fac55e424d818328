package socks5

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net/netip"
	"strings"
	"testing"
)

// trailer follows every message in the tests: a read that takes any of it read too far.
const trailer = "NEXT"

// encodeAddr is the client's encoding of ATYP DST.ADDR DST.PORT, written apart from the
// package's so that the two check each other.
func encodeAddr(a Addr) []byte {
	var b []byte
	switch {
	case a.IP.Is4():
		ip := a.IP.As4()
		b = append([]byte{1}, ip[:]...)
	case a.IP.Is6():
		ip := a.IP.As16()
		b = append([]byte{4}, ip[:]...)
	default:
		b = append([]byte{3, byte(len(a.Name))}, a.Name...)
	}
	return binary.BigEndian.AppendUint16(b, a.Port)
}

// encodeRequest is what a client sends for req.
func encodeRequest(req Request) []byte {
	return append([]byte{Version, byte(req.Command), 0}, encodeAddr(req.Addr)...)
}

// readReply is the client's reading of a reply, apart from the package's.
func readReply(t *testing.T, r io.Reader) (Reply, Addr) {
	t.Helper()
	head := make([]byte, 4)
	if _, err := io.ReadFull(r, head); err != nil {
		t.Fatalf("read reply header: %v", err)
	}
	if head[0] != Version || head[2] != 0 {
		t.Fatalf("reply header % x: want VER 5 and RSV 0", head)
	}
	size := map[byte]int{1: 4, 4: 16}[head[3]]
	if size == 0 {
		t.Fatalf("reply ATYP %d: want 1 or 4", head[3])
	}
	rest := make([]byte, size+2)
	if _, err := io.ReadFull(r, rest); err != nil {
		t.Fatalf("read reply address: %v", err)
	}
	ip, _ := netip.AddrFromSlice(rest[:size])
	return Reply(head[1]), Addr{IP: ip, Port: binary.BigEndian.Uint16(rest[size:])}
}

// withTrailer returns a reader of msg followed by trailer.
func withTrailer(msg []byte) *bytes.Reader {
	return bytes.NewReader(append(append([]byte{}, msg...), trailer...))
}

// left returns what r has not handed out.
func left(r *bytes.Reader) string {
	b, _ := io.ReadAll(r)
	return string(b)
}

func TestReadGreeting(t *testing.T) {
	all := make([]byte, 255)
	for i := range all {
		all[i] = byte(i)
	}
	tests := []struct {
		name string
		in   []byte
		want []Method
		err  error
	}{
		{"no auth", []byte{5, 1, 0}, []Method{NoAuth}, nil},
		{"two in order", []byte{5, 2, 2, 0}, []Method{UserPass, NoAuth}, nil},
		{"duplicates and unknown", []byte{5, 3, 0x80, 2, 2}, []Method{0x80, UserPass, UserPass}, nil},
		{"255 methods", append([]byte{5, 255}, all...), func() []Method {
			m := make([]Method, 255)
			for i := range m {
				m[i] = Method(i)
			}
			return m
		}(), nil},
		{"SOCKS4", []byte{4, 1, 0}, nil, ErrVersion},
		{"HTTP", []byte("GET / HTTP/1.1\r\n"), nil, ErrVersion},
		{"no methods", []byte{5, 0}, nil, ErrNoMethods},
		{"empty", nil, nil, io.EOF},
		{"version only", []byte{5}, nil, io.ErrUnexpectedEOF},
		{"methods short", []byte{5, 3, 0, 2}, nil, io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ReadGreeting(bytes.NewReader(tt.in))
			if !errors.Is(err, tt.err) || (err != nil) != (tt.err != nil) {
				t.Fatalf("ReadGreeting(% x) error = %v, want %v", tt.in, err, tt.err)
			}
			if !equalMethods(got, tt.want) {
				t.Errorf("ReadGreeting(% x) = %v, want %v", tt.in, got, tt.want)
			}
			if _, ok := ReplyFor(err); ok {
				t.Errorf("ReplyFor(%v) = true, want no reply for a greeting", err)
			}
		})
	}
}

func equalMethods(a, b []Method) bool {
	return string(methodBytes(a)) == string(methodBytes(b))
}

func methodBytes(ms []Method) []byte {
	b := make([]byte, len(ms))
	for i, m := range ms {
		b[i] = byte(m)
	}
	return b
}

func TestReadGreetingLeavesTheRest(t *testing.T) {
	r := withTrailer([]byte{5, 2, 0, 2})
	if _, err := ReadGreeting(r); err != nil {
		t.Fatalf("ReadGreeting: %v", err)
	}
	if got := left(r); got != trailer {
		t.Errorf("after ReadGreeting the reader holds %q, want %q", got, trailer)
	}
}

func TestWriteMethodAndStatusBytes(t *testing.T) {
	tests := []struct {
		name  string
		write func(w io.Writer) error
		want  []byte
	}{
		{"no auth", func(w io.Writer) error { return WriteMethod(w, NoAuth) }, []byte{5, 0}},
		{"user/pass", func(w io.Writer) error { return WriteMethod(w, UserPass) }, []byte{5, 2}},
		{"no acceptable", func(w io.Writer) error { return WriteMethod(w, NoAcceptable) }, []byte{5, 0xff}},
		{"status ok", func(w io.Writer) error { return WriteUserPassStatus(w, true) }, []byte{1, 0}},
		{"status failed", func(w io.Writer) error { return WriteUserPassStatus(w, false) }, []byte{1, 1}},
	}
	for _, tt := range tests {
		var buf bytes.Buffer
		if err := tt.write(&buf); err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if !bytes.Equal(buf.Bytes(), tt.want) {
			t.Errorf("%s wrote % x, want % x", tt.name, buf.Bytes(), tt.want)
		}
	}
}

func TestWriteErrorsAreWrapped(t *testing.T) {
	broken := errors.New("broken pipe")
	w := failingWriter{broken}
	for name, err := range map[string]error{
		"WriteMethod":         WriteMethod(w, NoAuth),
		"WriteUserPassStatus": WriteUserPassStatus(w, true),
		"WriteReply":          WriteReply(w, Succeeded, netip.AddrPort{}),
	} {
		if !errors.Is(err, broken) {
			t.Errorf("%s to a broken writer = %v, want it to wrap %v", name, err, broken)
		}
	}
}

// failingWriter fails every write with its error.
type failingWriter struct{ err error }

func (w failingWriter) Write([]byte) (int, error) { return 0, w.err }

func userPass(user, pass string) []byte {
	b := append([]byte{1, byte(len(user))}, user...)
	return append(append(b, byte(len(pass))), pass...)
}

func TestReadUserPass(t *testing.T) {
	long := strings.Repeat("u", 255)
	tests := []struct {
		name       string
		in         []byte
		user, pass string
		err        error
		readWhole  bool // the message was consumed up to the trailer
	}{
		{"ok", userPass("alice", "s3cret"), "alice", "s3cret", nil, true},
		{"one byte each", userPass("a", "b"), "a", "b", nil, true},
		{"255 bytes each", userPass(long, long), long, long, nil, true},
		{"not UTF-8", userPass("\xff\x00", "\x80"), "\xff\x00", "\x80", nil, true},
		{"version 5", append([]byte{5}, userPass("a", "b")[1:]...), "", "", ErrAuthVersion, false},
		{"empty user", userPass("", "pw"), "", "", ErrEmptyCredential, true},
		{"empty password", userPass("alice", ""), "", "", ErrEmptyCredential, true},
		{"both empty", userPass("", ""), "", "", ErrEmptyCredential, true},
		{"empty input", nil, "", "", io.EOF, false},
		{"short user", []byte{1, 5, 'a', 'b'}, "", "", io.ErrUnexpectedEOF, false},
		{"no PLEN", []byte{1, 1, 'a'}, "", "", io.ErrUnexpectedEOF, false},
		{"short password", []byte{1, 1, 'a', 3, 'x'}, "", "", io.ErrUnexpectedEOF, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := tt.in
			if tt.readWhole {
				in = append(append([]byte{}, in...), trailer...)
			}
			r := bytes.NewReader(in)
			user, pass, err := ReadUserPass(r)
			if !errors.Is(err, tt.err) || (err != nil) != (tt.err != nil) {
				t.Fatalf("ReadUserPass(% x) error = %v, want %v", tt.in, err, tt.err)
			}
			if user != tt.user || pass != tt.pass {
				t.Errorf("ReadUserPass(% x) = %q, %q, want %q, %q", tt.in, user, pass, tt.user, tt.pass)
			}
			if rest := left(r); tt.readWhole && rest != trailer {
				t.Errorf("after ReadUserPass(% x) the reader holds %q, want %q", tt.in, rest, trailer)
			}
		})
	}
}

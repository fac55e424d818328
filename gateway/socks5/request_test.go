package socks5

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

var (
	v4   = netip.MustParseAddr("192.0.2.10")
	v6   = netip.MustParseAddr("2001:db8::1")
	name = strings.Repeat("a", 251) + ".com" // 255 bytes
)

// rawRequest is VER CMD RSV ATYP followed by addr (DST.ADDR DST.PORT as bytes).
func rawRequest(cmd, rsv, atyp byte, addr ...byte) []byte {
	return append([]byte{Version, cmd, rsv, atyp}, addr...)
}

// nameRequest is a CONNECT to name:80 with the name's bytes as given.
func nameRequest(name string) []byte {
	return rawRequest(1, 0, 3, append(append([]byte{byte(len(name))}, name...), 0, 80)...)
}

func TestReadRequest(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want Request
		err  error
	}{
		{"IPv4 CONNECT", rawRequest(1, 0, 1, 192, 0, 2, 10, 0x01, 0xbb),
			Request{Connect, Addr{IP: v4, Port: 443}}, nil},
		{"IPv6 BIND", encodeRequest(Request{Bind, Addr{IP: v6, Port: 8080}}),
			Request{Bind, Addr{IP: v6, Port: 8080}}, nil},
		{"UDP ASSOCIATE from 0.0.0.0:0", rawRequest(3, 0, 1, 0, 0, 0, 0, 0, 0),
			Request{UDPAssociate, Addr{IP: netip.IPv4Unspecified()}}, nil},
		{"domain", nameRequest("example.com"), Request{Connect, Addr{Name: "example.com", Port: 80}}, nil},
		{"255-byte domain", nameRequest(name), Request{Connect, Addr{Name: name, Port: 80}}, nil},
		{"underscore, digits, trailing dot", nameRequest("_x-1.Example.COM."),
			Request{Connect, Addr{Name: "_x-1.Example.COM.", Port: 80}}, nil},
		{"RSV not zero", rawRequest(1, 0xff, 1, 192, 0, 2, 10, 0, 80),
			Request{Connect, Addr{IP: v4, Port: 80}}, nil},
		{"IPv4-mapped IPv6 is IPv4", encodeRequest(Request{Connect, Addr{IP: netip.MustParseAddr("::ffff:192.0.2.10"), Port: 80}}),
			Request{Connect, Addr{IP: v4, Port: 80}}, nil},
		{"IPv4 literal name is an IP", nameRequest("192.0.2.10"), Request{Connect, Addr{IP: v4, Port: 80}}, nil},
		{"IPv6 literal name is an IP", nameRequest("2001:db8::1"), Request{Connect, Addr{IP: v6, Port: 80}}, nil},
		{"mapped literal name is IPv4", nameRequest("::ffff:192.0.2.10"), Request{Connect, Addr{IP: v4, Port: 80}}, nil},

		{"SOCKS4", []byte{4, 1, 0, 80, 192, 0, 2, 10, 0}, Request{}, ErrVersion},
		{"command 0", rawRequest(0, 0, 1, 192, 0, 2, 10, 0, 80), Request{}, ErrCommand},
		{"command 4", rawRequest(4, 0, 1, 192, 0, 2, 10, 0, 80), Request{}, ErrCommand},
		{"command before name", append(rawRequest(9, 0, 3, 1, 0), 0, 80), Request{}, ErrCommand},
		{"ATYP 0", rawRequest(1, 0, 0), Request{}, ErrAddressType},
		{"ATYP 2", rawRequest(1, 0, 2), Request{}, ErrAddressType},
		{"ATYP 5", rawRequest(1, 0, 5), Request{}, ErrAddressType},
		{"ATYP before command", rawRequest(9, 0, 7), Request{}, ErrAddressType},
		{"empty name", rawRequest(1, 0, 3, 0, 0, 80), Request{}, ErrName},
		{"NUL", nameRequest("a\x00b.com"), Request{}, ErrName},
		{"control byte", nameRequest("a\nb.com"), Request{}, ErrName},
		{"DEL", nameRequest("a\x7fb.com"), Request{}, ErrName},
		{"space", nameRequest("a b.com"), Request{}, ErrName},
		{"non-ASCII", nameRequest("bücher.example"), Request{}, ErrName},
		{"colon", nameRequest("example.com:22"), Request{}, ErrName},
		{"bracketed IPv6", nameRequest("[::1]"), Request{}, ErrName},
		{"zone", nameRequest("fe80::1%eth0"), Request{}, ErrName},
		{"slash", nameRequest("a/b"), Request{}, ErrName},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := withTrailer(tt.in)
			got, err := ReadRequest(r)
			if !errors.Is(err, tt.err) || (err != nil) != (tt.err != nil) {
				t.Fatalf("ReadRequest(% x) error = %v, want %v", tt.in, err, tt.err)
			}
			if got != tt.want {
				t.Errorf("ReadRequest(% x) = %+v, want %+v", tt.in, got, tt.want)
			}
			if rest := left(r); !errors.Is(err, ErrVersion) && rest != trailer {
				t.Errorf("after ReadRequest(% x) the reader holds %q, want %q", tt.in, rest, trailer)
			}
		})
	}
}

// validRequests holds one request of every address type.
var validRequests = []Request{
	{Connect, Addr{IP: v4, Port: 443}},
	{UDPAssociate, Addr{IP: v6, Port: 53}},
	{Connect, Addr{Name: "example.com", Port: 80}},
}

func TestReadRequestTruncated(t *testing.T) {
	for _, req := range validRequests {
		msg := encodeRequest(req)
		for n := range len(msg) {
			got, err := ReadRequest(bytes.NewReader(msg[:n]))
			want := io.ErrUnexpectedEOF
			if n == 0 {
				want = io.EOF
			}
			if !errors.Is(err, want) {
				t.Errorf("ReadRequest(% x) = %+v, %v, want %v", msg[:n], got, err, want)
			}
			if rep, ok := ReplyFor(err); ok {
				t.Errorf("ReplyFor(%v) = %v, true, want no reply for a short read", err, rep)
			}
		}
	}
}

func TestReadRequestOneByteAtATime(t *testing.T) {
	for _, req := range validRequests {
		msg := encodeRequest(req)
		got, err := ReadRequest(iotest.OneByteReader(bytes.NewReader(msg)))
		if err != nil || got != req {
			t.Errorf("ReadRequest(one byte at a time of % x) = %+v, %v, want %+v", msg, got, err, req)
		}
	}
}

// TestRequestReplyOverPipe runs a client and the package's server side over a connection,
// one request per address type, each answered on the same connection.
func TestRequestReplyOverPipe(t *testing.T) {
	client, server := net.Pipe()
	defer client.Close()
	// A read past a message would wait for bytes that never come: fail instead of hanging.
	deadline := time.Now().Add(10 * time.Second)
	if err := errors.Join(client.SetDeadline(deadline), server.SetDeadline(deadline)); err != nil {
		t.Fatal(err)
	}
	bound := []netip.AddrPort{
		netip.MustParseAddrPort("198.51.100.7:40000"),
		netip.MustParseAddrPort("[2001:db8::7]:40001"),
		{}, // a failure: no bound address
	}
	done := make(chan error, 1)
	go func() {
		defer server.Close()
		for i := range validRequests {
			req, err := ReadRequest(server)
			if err != nil {
				done <- err
				return
			}
			if req != validRequests[i] {
				done <- errors.New("read " + req.Addr.String() + ", want " + validRequests[i].Addr.String())
				return
			}
			if err := WriteReply(server, Reply(i), bound[i]); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	for i, req := range validRequests {
		if _, err := client.Write(encodeRequest(req)); err != nil {
			t.Fatalf("client write: %v", err)
		}
		rep, addr := readReply(t, client)
		want := Addr{IP: bound[i].Addr(), Port: bound[i].Port()}
		if i == 2 {
			want = Addr{IP: netip.IPv4Unspecified()}
		}
		if rep != Reply(i) || addr != want {
			t.Errorf("reply to %+v = %v %v, want %v %v", req, rep, addr, Reply(i), want)
		}
	}
	if err := <-done; err != nil {
		t.Fatalf("server: %v", err)
	}
}

func TestWriteReplyBytes(t *testing.T) {
	tests := []struct {
		name  string
		rep   Reply
		bound netip.AddrPort
		want  []byte
	}{
		{"IPv4", Succeeded, netip.MustParseAddrPort("192.0.2.10:443"),
			[]byte{5, 0, 0, 1, 192, 0, 2, 10, 0x01, 0xbb}},
		{"IPv6", Succeeded, netip.MustParseAddrPort("[2001:db8::1]:80"),
			append(append([]byte{5, 0, 0, 4}, v6.AsSlice()...), 0, 80)},
		{"IPv4-mapped written as IPv4", Succeeded, netip.MustParseAddrPort("[::ffff:192.0.2.10]:80"),
			[]byte{5, 0, 0, 1, 192, 0, 2, 10, 0, 80}},
		{"zone dropped", Succeeded, netip.MustParseAddrPort("[fe80::1%eth0]:80"),
			append(append([]byte{5, 0, 0, 4}, netip.MustParseAddr("fe80::1").AsSlice()...), 0, 80)},
		{"invalid bound", HostUnreachable, netip.AddrPort{}, []byte{5, 4, 0, 1, 0, 0, 0, 0, 0, 0}},
		{"every reply code", AddressTypeNotSupported, netip.AddrPort{}, []byte{5, 8, 0, 1, 0, 0, 0, 0, 0, 0}},
	}
	for _, tt := range tests {
		var buf bytes.Buffer
		if err := WriteReply(&buf, tt.rep, tt.bound); err != nil {
			t.Fatalf("WriteReply(%v, %v): %v", tt.rep, tt.bound, err)
		}
		if !bytes.Equal(buf.Bytes(), tt.want) {
			t.Errorf("%s: WriteReply(%v, %v) wrote % x, want % x", tt.name, tt.rep, tt.bound, buf.Bytes(), tt.want)
		}
	}
}

func TestReplyFor(t *testing.T) {
	errOf := func(in []byte) error {
		_, err := ReadRequest(bytes.NewReader(in))
		return err
	}
	tests := []struct {
		name string
		err  error
		want Reply
		ok   bool
	}{
		{"unknown command", errOf(rawRequest(9, 0, 1, 1, 2, 3, 4, 0, 80)), CommandNotSupported, true},
		{"unknown address type", errOf(rawRequest(1, 0, 9)), AddressTypeNotSupported, true},
		{"refused name", errOf(nameRequest("a b")), HostUnreachable, true},
		{"wrong version", errOf([]byte{4, 1, 0, 1}), 0, false},
		{"short read", errOf([]byte{5, 1, 0, 1, 1}), 0, false},
		{"closed", errOf(nil), 0, false},
		{"other", errors.New("connection reset"), 0, false},
		{"nil", nil, 0, false},
	}
	for _, tt := range tests {
		if got, ok := ReplyFor(tt.err); got != tt.want || ok != tt.ok {
			t.Errorf("%s: ReplyFor(%v) = %v, %v, want %v, %v", tt.name, tt.err, got, ok, tt.want, tt.ok)
		}
	}
}

func TestAddrString(t *testing.T) {
	tests := []struct {
		a    Addr
		want string
	}{
		{Addr{IP: v4, Port: 443}, "192.0.2.10:443"},
		{Addr{IP: v6, Port: 80}, "[2001:db8::1]:80"},
		{Addr{Name: "example.com", Port: 8080}, "example.com:8080"},
		{Addr{Name: "odd:name", Port: 1}, "[odd:name]:1"},
		{Addr{IP: v4, Name: "ignored", Port: 1}, "192.0.2.10:1"},
	}
	for _, tt := range tests {
		if got := tt.a.String(); got != tt.want {
			t.Errorf("%#v.String() = %q, want %q", tt.a, got, tt.want)
		}
	}
}

func TestNames(t *testing.T) {
	tests := []struct{ got, want string }{
		{NoAuth.String(), "no authentication"},
		{UserPass.String(), "username/password"},
		{NoAcceptable.String(), "no acceptable methods"},
		{Method(0x01).String(), "method 0x1"},
		{Connect.String(), "CONNECT"},
		{Bind.String(), "BIND"},
		{UDPAssociate.String(), "UDP ASSOCIATE"},
		{Command(9).String(), "command 0x9"},
		{Succeeded.String(), "succeeded"},
		{AddressTypeNotSupported.String(), "address type not supported"},
		{Reply(9).String(), "reply 0x9"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("String() = %q, want %q", tt.got, tt.want)
		}
	}
}

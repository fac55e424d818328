package socks5

import (
	"bytes"
	"io"
	"testing"
	"testing/iotest"
)

// countingReader hands out its bytes one at a time (so every read is a short read) and counts
// how many it handed out.
type countingReader struct {
	r io.Reader
	n int
}

func newCountingReader(b []byte) *countingReader {
	return &countingReader{r: iotest.OneByteReader(bytes.NewReader(b))}
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// addrFieldLen is the length of ATYP DST.ADDR DST.PORT at the head of b as RFC 1928 delimits
// it, worked out apart from the package: -1 when b is too short to tell, and 1 for an unknown
// address type, after which nothing can be delimited.
func addrFieldLen(b []byte) int {
	if len(b) < 1 {
		return -1
	}
	switch b[0] {
	case 1:
		return 1 + 4 + 2
	case 4:
		return 1 + 16 + 2
	case 3:
		if len(b) < 2 {
			return -1
		}
		return 1 + 1 + int(b[1]) + 2
	}
	return 1
}

// FuzzReadRequest checks that ReadRequest never panics, never reads past the request at the
// head of its input, takes exactly the request when it succeeds, and that what it parsed reads
// back the same once encoded again.
func FuzzReadRequest(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		r := newCountingReader(data)
		req, err := ReadRequest(r)
		msgLen := -1 // unknown: data ends before the request can be delimited
		if len(data) >= 4 {
			if n := addrFieldLen(data[3:]); n >= 0 {
				msgLen = 3 + n
			}
		}
		if msgLen >= 0 && r.n > msgLen {
			t.Fatalf("ReadRequest(% x) read %d bytes, past the %d-byte request", data, r.n, msgLen)
		}
		if err != nil {
			return
		}
		if r.n != msgLen {
			t.Fatalf("ReadRequest(% x) = %+v after reading %d bytes, want the whole %d-byte request", data, req, r.n, msgLen)
		}
		again := encodeRequest(req)
		r2 := newCountingReader(again)
		req2, err := ReadRequest(r2)
		if err != nil || req2 != req || r2.n != len(again) {
			t.Fatalf("ReadRequest(% x) = %+v, %v after %d bytes, want %+v after %d (re-encoding of % x)",
				again, req2, err, r2.n, req, len(again), data)
		}
	})
}

// FuzzParseDatagram checks that ParseDatagram never panics, that its payload is exactly what
// follows the header, and that the parsed address, sent back with AppendDatagramHeader,
// parses the same.
func FuzzParseDatagram(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		_, dst, payload, err := ParseDatagram(b)
		if err != nil {
			return
		}
		header := 3 + addrFieldLen(b[3:])
		if len(b)-len(payload) != header {
			t.Fatalf("ParseDatagram(% x) payload is the last %d bytes, want all after the %d-byte header", b, len(payload), header)
		}
		if len(payload) > 0 && &payload[0] != &b[header] {
			t.Fatalf("ParseDatagram(% x) payload is a copy, want it to alias the datagram", b)
		}
		again := append(AppendDatagramHeader(nil, dst), payload...)
		frag2, dst2, payload2, err := ParseDatagram(again)
		if err != nil || frag2 != 0 || dst2 != dst || !bytes.Equal(payload2, payload) {
			t.Fatalf("ParseDatagram(% x) = %d, %+v, %q, %v, want 0, %+v, %q (re-encoding of % x)",
				again, frag2, dst2, payload2, err, dst, payload, b)
		}
	})
}

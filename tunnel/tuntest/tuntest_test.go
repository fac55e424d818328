package tuntest

import (
	"errors"
	"testing"
	"time"
)

func TestDeviceBatches(t *testing.T) {
	d := New(16)
	for i := range 3 {
		if err := d.Inject([]byte{byte(i), 1, 2}); err != nil {
			t.Fatal(err)
		}
	}
	const offset = 4
	bufs := [][]byte{make([]byte, 10), make([]byte, 10)}
	sizes := make([]int, 2)
	n, err := d.Read(bufs, sizes, offset)
	if err != nil || n != 2 {
		t.Fatalf("Read(2 buffers) = %d, %v, want 2 packets", n, err)
	}
	for i := range n {
		if sizes[i] != 3 || bufs[i][offset] != byte(i) {
			t.Errorf("packet %d = %d bytes starting %d, want 3 starting %d", i, sizes[i], bufs[i][offset], i)
		}
	}
	if n, err := d.Read(bufs, sizes, offset); n != 1 || err != nil || bufs[0][offset] != 2 {
		t.Errorf("Read() = %d, %v (first byte %d), want the third packet alone", n, err, bufs[0][offset])
	}

	out := [][]byte{{9, 9, 9, 9, 7}, {9, 9, 9, 9, 8, 8}}
	if got, err := d.Write(out, offset); got != 3 || err != nil {
		t.Errorf("Write() = %d, %v, want 3 bytes written", got, err)
	}
	for _, want := range []int{1, 2} {
		if b, err := d.Receive(time.Second); err != nil || len(b) != want {
			t.Errorf("Receive() = %v, %v, want %d bytes", b, err, want)
		}
	}

	d.Close()
	if _, err := d.Read(bufs, sizes, offset); !errors.Is(err, ErrClosed) {
		t.Errorf("Read() after Close = %v, want %v", err, ErrClosed)
	}
	if _, err := d.Write(out, offset); !errors.Is(err, ErrClosed) {
		t.Errorf("Write() after Close = %v, want %v", err, ErrClosed)
	}
}

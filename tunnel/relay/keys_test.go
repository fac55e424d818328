package relay

import (
	"testing"

	"github.com/cellgate/cellgate/tunnel/wire"
)

// mustKeyPair generates a key pair or fails the test.
func mustKeyPair(t testing.TB) wire.KeyPair {
	t.Helper()
	kp, err := wire.GenerateKeyPair(nil)
	if err != nil {
		t.Fatalf("GenerateKeyPair: %v", err)
	}
	return kp
}

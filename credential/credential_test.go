package credential

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

func TestNewPassword(t *testing.T) {
	seen := map[string]bool{}
	for range 200 {
		p := NewPassword()
		if len(p) != PasswordLength {
			t.Fatalf("NewPassword() = %q, len %d, want %d", p, len(p), PasswordLength)
		}
		if strings.Trim(p, alphabet) != "" {
			t.Fatalf("NewPassword() = %q, want only letters and digits", p)
		}
		if seen[p] {
			t.Fatalf("NewPassword() repeated %q", p)
		}
		seen[p] = true
	}
}

func TestHashAndCheckPassword(t *testing.T) {
	h, err := HashPassword("correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	if cost, err := bcrypt.Cost([]byte(h)); err != nil || cost != 12 {
		t.Errorf("bcrypt.Cost(HashPassword(...)) = %d, %v, want 12", cost, err)
	}
	if !CheckPassword(h, "correct horse battery") {
		t.Error("CheckPassword(hash, right password) = false, want true")
	}
	if CheckPassword(h, "correct horse batterY") {
		t.Error("CheckPassword(hash, wrong password) = true, want false")
	}
	if CheckPassword("", "cellgate-dummy-password") {
		t.Error("CheckPassword(\"\", the dummy's password) = true, want false")
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{"12345678", true},
		{"äöüäöüäö", true}, // 8 characters, 16 bytes
		{"1234567", false},
		{strings.Repeat("a", 72), true},
		{strings.Repeat("a", 73), false},
		{strings.Repeat("ä", 37), false}, // 74 bytes
		{"password\x00", false},
		{"pass\nword", false},
		{"pass\xffword", false},
	} {
		err := Validate(tc.in)
		if (err == nil) != tc.ok {
			t.Errorf("Validate(%q) = %v, want ok=%v", tc.in, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrWeakPassword) {
			t.Errorf("Validate(%q) = %v, want it to wrap ErrWeakPassword", tc.in, err)
		}
	}
}

func TestNewToken(t *testing.T) {
	tok, hash := NewToken(DevicePrefix)
	if !strings.HasPrefix(tok, DevicePrefix) {
		t.Errorf("NewToken(%q) = %q, want that prefix", DevicePrefix, tok)
	}
	// 256 bits of base64url without padding: 43 characters.
	if got := len(tok) - len(DevicePrefix); got != 43 {
		t.Errorf("NewToken() random part has %d characters, want 43", got)
	}
	want := sha256.Sum256([]byte(tok))
	if !bytes.Equal(hash, want[:]) || !bytes.Equal(HashToken(tok), want[:]) {
		t.Errorf("NewToken() hash = %x, want SHA-256 of the token %x", hash, want)
	}
	if tok2, _ := NewToken(DevicePrefix); tok2 == tok {
		t.Errorf("NewToken() repeated %q", tok)
	}
}

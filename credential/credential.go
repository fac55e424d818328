// Package credential makes and checks the secrets cellgate hands out: bcrypt password hashes,
// generated passwords, and bearer tokens that are stored only as their SHA-256; and it bounds
// how many bcrypt checks run at once (Slots).
package credential

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"golang.org/x/crypto/bcrypt"
)

// BcryptCost is the cost of every password hash cellgate writes.
const BcryptCost = 12

// PasswordLength is the length of generated passwords: 24 characters of a 62-letter alphabet,
// about 143 bits.
const PasswordLength = 24

const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

// NewPassword returns a random password of PasswordLength letters and digits.
func NewPassword() string {
	b := make([]byte, PasswordLength)
	// Rejection sampling keeps every letter equally likely: 248 = 4*62.
	var buf [64]byte
	for i := 0; i < len(b); {
		rand.Read(buf[:])
		for _, r := range buf {
			if r < 248 && i < len(b) {
				b[i] = alphabet[int(r)%len(alphabet)]
				i++
			}
		}
	}
	return string(b)
}

// HashPassword returns the bcrypt hash (cost BcryptCost) of password.
func HashPassword(password string) (string, error) {
	h, err := bcrypt.GenerateFromPassword([]byte(password), BcryptCost)
	if err != nil {
		return "", err
	}
	return string(h), nil
}

// dummyHash is checked against when there is no real hash, so a missing user costs the same
// bcrypt time as a wrong password. It is made on first use: every cellgate command would
// otherwise pay for a bcrypt hash at start-up.
var dummyHash = sync.OnceValue(func() []byte {
	h, err := bcrypt.GenerateFromPassword([]byte("cellgate-dummy-password"), BcryptCost)
	if err != nil {
		panic(err)
	}
	return h
})

// CheckPassword reports whether password matches the bcrypt hash. An empty hash is checked
// against a dummy so the caller's timing does not reveal that the account is missing.
func CheckPassword(hash, password string) bool {
	if hash == "" {
		bcrypt.CompareHashAndPassword(dummyHash(), []byte(password))
		return false
	}
	err := bcrypt.CompareHashAndPassword([]byte(hash), []byte(password))
	return err == nil
}

// ErrMalformedToken is returned for a token that cellgate cannot have issued.
var ErrMalformedToken = errors.New("malformed token")

// Token prefixes name what a token is for, so a leaked token is recognisable.
const (
	SessionPrefix    = "cgs_"
	APITokenPrefix   = "cgp_"
	DevicePrefix     = "cgd_"
	EnrollmentPrefix = "cge_"
)

// NewToken returns a token of 256 random bits with the given prefix, and its SHA-256, which is
// all that is stored.
func NewToken(prefix string) (token string, hash []byte) {
	var b [32]byte
	rand.Read(b[:])
	token = prefix + base64.RawURLEncoding.EncodeToString(b[:])
	return token, HashToken(token)
}

// HashToken returns the SHA-256 of a token, the form it is stored and looked up in.
func HashToken(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// Bounds of a password a person chooses. bcrypt reads at most 72 bytes, so longer ones are
// refused rather than silently cut.
const (
	MinPasswordLength = 8
	MaxPasswordBytes  = 72
)

// ErrWeakPassword is wrapped by Validate's errors.
var ErrWeakPassword = errors.New("unacceptable password")

// Validate checks a password a person chose: MinPasswordLength characters or more, at most
// MaxPasswordBytes bytes, valid UTF-8, no control characters.
func Validate(p string) error {
	switch {
	case utf8.RuneCountInString(p) < MinPasswordLength:
		return fmt.Errorf("%w: must be at least %d characters", ErrWeakPassword, MinPasswordLength)
	case len(p) > MaxPasswordBytes:
		return fmt.Errorf("%w: must be at most %d bytes", ErrWeakPassword, MaxPasswordBytes)
	case !utf8.ValidString(p) || strings.IndexFunc(p, unicode.IsControl) >= 0:
		return fmt.Errorf("%w: must be valid UTF-8 without control characters", ErrWeakPassword)
	}
	return nil
}

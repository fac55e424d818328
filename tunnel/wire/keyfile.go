package wire

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"github.com/cellgate/cellgate/internal/atomicfile"
)

// ErrInsecureKeyFile is returned by ReadKeyFile for a key file that group or others may read.
var ErrInsecureKeyFile = errors.New("key file is accessible by group or others")

// maxKeyFile is the most bytes ReadKeyFile reads; a key file is 45.
const maxKeyFile = 4 << 10

// WriteKeyFile writes kp's private key, in base64 and a newline, to path with mode 0600, and its
// public key the same way to path+".pub" with mode 0644. Without force it refuses to replace an
// existing private key (the error wraps fs.ErrExist); with force it replaces it atomically (a
// temporary file in the same directory, renamed over it). The public key file is always
// replaced.
func WriteKeyFile(path string, kp KeyPair, force bool) error {
	priv, _ := kp.Private.MarshalText()
	priv = append(priv, '\n')
	if force {
		if err := atomicfile.Replace(path, priv, 0o600); err != nil {
			return fmt.Errorf("write key file: %w", err)
		}
	} else if err := atomicfile.Create(path, priv, 0o600); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("write key file: %s exists; not replacing a key without force: %w", path, err)
		}
		return fmt.Errorf("write key file: %w", err)
	}
	if err := atomicfile.Replace(path+".pub", []byte(kp.Public.String()+"\n"), 0o644); err != nil {
		return fmt.Errorf("write public key file: %w", err)
	}
	return nil
}

// ReadKeyFile reads a private key written by WriteKeyFile (base64, surrounding whitespace
// ignored) and returns its key pair. It refuses a file that group or others may access (the
// error wraps ErrInsecureKeyFile and says how to fix it), and anything but a regular file.
func ReadKeyFile(path string) (KeyPair, error) {
	f, err := os.Open(path)
	if err != nil {
		return KeyPair{}, fmt.Errorf("read key file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return KeyPair{}, fmt.Errorf("read key file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return KeyPair{}, fmt.Errorf("read key file %s: not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return KeyPair{}, fmt.Errorf("read key file %s: mode %04o; run chmod 600 %s: %w", path, perm, path, ErrInsecureKeyFile)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return KeyPair{}, fmt.Errorf("read key file %s: %w", path, err)
	}
	if len(data) > maxKeyFile {
		return KeyPair{}, fmt.Errorf("read key file %s: larger than %d bytes, not a key", path, maxKeyFile)
	}
	priv, err := ParsePrivateKey(strings.TrimSpace(string(data)))
	clear(data)
	if err != nil {
		return KeyPair{}, fmt.Errorf("read key file %s: %w", path, err)
	}
	kp, err := NewKeyPair(priv)
	if err != nil {
		return KeyPair{}, fmt.Errorf("read key file %s: %w", path, err)
	}
	return kp, nil
}

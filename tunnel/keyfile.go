package tunnel

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
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
		if err := replaceFile(path, priv, 0o600); err != nil {
			return fmt.Errorf("write key file: %w", err)
		}
	} else if err := createFile(path, priv); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("write key file: %s exists; not replacing a key without force: %w", path, err)
		}
		return fmt.Errorf("write key file: %w", err)
	}
	if err := replaceFile(path+".pub", []byte(kp.Public.String()+"\n"), 0o644); err != nil {
		return fmt.Errorf("write public key file: %w", err)
	}
	return nil
}

// createFile creates path, which must not exist, with mode 0600 and writes data to it. A file
// it could not write completely is removed.
func createFile(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(path)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// replaceFile writes data to a temporary file next to path, gives it mode perm and renames it
// over path, so that path holds either its old or its new contents, never a part.
func replaceFile(path string, data []byte, perm fs.FileMode) error {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(perm)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
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

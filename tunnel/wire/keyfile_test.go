package wire

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func fileMode(t *testing.T, path string) fs.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func TestKeyFileRoundTrip(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "tunnel.key")
	kp := mustKeyPair(t)
	if err := WriteKeyFile(path, kp, false); err != nil {
		t.Fatalf("WriteKeyFile(%s) = %v", path, err)
	}
	if m := fileMode(t, path); m != 0o600 {
		t.Errorf("mode of %s = %04o, want 0600", path, m)
	}
	if m := fileMode(t, path+".pub"); m != 0o644 {
		t.Errorf("mode of %s.pub = %04o, want 0644", path, m)
	}
	pub, err := os.ReadFile(path + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	if string(pub) != kp.Public.String()+"\n" {
		t.Errorf("%s.pub = %q, want %q", path, pub, kp.Public.String()+"\n")
	}
	priv, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if text, _ := kp.Private.MarshalText(); string(priv) != string(text)+"\n" {
		t.Error("private key file is not the key's base64 and a newline")
	}
	got, err := ReadKeyFile(path)
	if err != nil {
		t.Fatalf("ReadKeyFile(%s) = %v", path, err)
	}
	if got != kp {
		t.Errorf("ReadKeyFile(%s) = public %v, want %v (and the same private key)", path, got.Public, kp.Public)
	}
}

func TestKeyFileNoOverwriteWithoutForce(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "tunnel.key")
	first, second := mustKeyPair(t), mustKeyPair(t)
	if err := WriteKeyFile(path, first, false); err != nil {
		t.Fatal(err)
	}
	if err := WriteKeyFile(path, second, false); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("WriteKeyFile over an existing key without force = %v, want fs.ErrExist", err)
	}
	if got, err := ReadKeyFile(path); err != nil || got != first {
		t.Fatalf("ReadKeyFile after a refused overwrite = %v, %v, want the first key", got.Public, err)
	}

	if err := WriteKeyFile(path, second, true); err != nil {
		t.Fatalf("WriteKeyFile with force = %v", err)
	}
	if got, err := ReadKeyFile(path); err != nil || got != second {
		t.Errorf("ReadKeyFile after a forced overwrite = %v, %v, want the second key %v", got.Public, err, second.Public)
	}
	if m := fileMode(t, path); m != 0o600 {
		t.Errorf("mode after a forced overwrite = %04o, want 0600", m)
	}
	if pub, _ := os.ReadFile(path + ".pub"); string(pub) != second.Public.String()+"\n" {
		t.Errorf("%s.pub after a forced overwrite = %q, want the second public key", path, pub)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("directory after writes = %v, want only the key and .pub (no temporary files)", names)
	}
}

func TestReadKeyFileRefusesPermissiveMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tunnel.key")
	if err := WriteKeyFile(path, mustKeyPair(t), false); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []fs.FileMode{0o640, 0o604, 0o644, 0o660} {
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		_, err := ReadKeyFile(path)
		if !errors.Is(err, ErrInsecureKeyFile) || !strings.Contains(err.Error(), "chmod 600") {
			t.Errorf("ReadKeyFile(mode %04o) = %v, want ErrInsecureKeyFile saying chmod 600", mode, err)
		}
	}
	if err := os.Chmod(path, 0o400); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadKeyFile(path); err != nil {
		t.Errorf("ReadKeyFile(mode 0400) = %v, want the key", err)
	}
}

func TestReadKeyFileBadContent(t *testing.T) {
	dir := t.TempDir()
	kp := mustKeyPair(t)
	text, _ := kp.Private.MarshalText()
	for _, tt := range []struct {
		name, content string
		ok            bool
	}{
		{"surrounded by whitespace", "\n  " + string(text) + " \n\n", true},
		{"empty", "", false},
		{"not base64", "this is not a key\n", false},
		{"too short", "AAAA\n", false},
		{"two keys", string(text) + "\n" + string(text) + "\n", false},
		{"huge", strings.Repeat("A", maxKeyFile+10), false},
	} {
		path := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "_"))
		if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := ReadKeyFile(path)
		switch {
		case tt.ok && (err != nil || got != kp):
			t.Errorf("ReadKeyFile(%s) = %v, %v, want the key", tt.name, got.Public, err)
		case !tt.ok && err == nil:
			t.Errorf("ReadKeyFile(%s) = %v, want an error", tt.name, got.Public)
		case !tt.ok && strings.Contains(err.Error(), string(text)):
			t.Errorf("ReadKeyFile(%s) error %q contains the key", tt.name, err)
		}
	}
	if _, err := ReadKeyFile(filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadKeyFile(missing) = %v, want fs.ErrNotExist", err)
	}
	if _, err := ReadKeyFile(dir); err == nil {
		t.Errorf("ReadKeyFile(a directory) = nil error, want one")
	}
}

package atomicfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

func TestCreate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "key")
	if err := Create(path, []byte("secret"), 0o600); err != nil {
		t.Fatalf("Create(%s) = %v", path, err)
	}
	if b, err := os.ReadFile(path); err != nil || string(b) != "secret" {
		t.Errorf("ReadFile = %q, %v, want secret", b, err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode = %v, want 0600", fi.Mode().Perm())
	}
	if err := Create(path, []byte("other"), 0o600); !errors.Is(err, fs.ErrExist) {
		t.Errorf("Create over an existing file = %v, want fs.ErrExist", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "secret" {
		t.Errorf("after a refused Create the file holds %q, want secret", b)
	}
}

func TestReplace(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")
	for _, content := range []string{"first", "second"} {
		if err := Replace(path, []byte(content), 0o640); err != nil {
			t.Fatalf("Replace(%s) = %v", path, err)
		}
		if b, err := os.ReadFile(path); err != nil || string(b) != content {
			t.Errorf("ReadFile = %q, %v, want %q", b, err, content)
		}
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o640 {
		t.Errorf("mode = %v, want 0640", fi.Mode().Perm())
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("the directory holds %d entries, want only the file (no temporary left)", len(entries))
	}
	if err := Replace(filepath.Join(dir, "missing", "f"), []byte("x"), 0o600); err == nil {
		t.Error("Replace into a missing directory = nil, want an error")
	}
}

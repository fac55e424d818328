package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/cellgate/cellgate/internal/testenv"
)

// TestImportLegacy imports a file into a database: good rows land as plaintext without a hash,
// bad ones are listed by line on stderr, and the exit is an error that says how many.
func TestImportLegacy(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := testenv.Store(t)
	op, err := st.CreateOperator(ctx, "import@example.com", "not a real hash")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateDevice(ctx, op.ID, "Pixel 7", []byte("enrollment")); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "legacy.jsonl")
	var in strings.Builder
	for i := range 3 {
		fmt.Fprintf(&in, `{"username":"imported-%d","password":"legacy pw %d","device":"Pixel 7","bandwidth_limit":%d}`+"\n", i, i, i*1000)
	}
	in.WriteString(`{"username":"lost","password":"pw","device":"Pixel 8"}` + "\n")
	in.WriteString(`{"username":"imported-1","password":"pw","device":"Pixel 7"}` + "\n")
	in.WriteString(`{"username":"empty","password":"","device":"Pixel 7"}` + "\n")
	if err := os.WriteFile(file, []byte(in.String()), 0o600); err != nil {
		t.Fatal(err)
	}

	var stdout, stderr bytes.Buffer
	err = importLegacy(ctx, st, importOptions{email: "IMPORT@example.com", file: file, format: "auto"}, nil, &stdout, &stderr)
	if err == nil || err.Error() != "3 rows were not imported (listed above)" {
		t.Errorf("importLegacy error = %v, want \"3 rows were not imported (listed above)\"", err)
	}
	wantStderr := `line 4: device: the operator has no device named "Pixel 8"` + "\n" +
		"line 5: username: repeats line 2\n" +
		"line 6: password: is empty\n"
	if stderr.String() != wantStderr {
		t.Errorf("importLegacy stderr = %q, want %q", stderr.String(), wantStderr)
	}
	if !strings.HasPrefix(stdout.String(), "imported 3 legacy connections for import@example.com; 3 bad rows not imported\n") ||
		!strings.Contains(stdout.String(), "run cellgate migrate") {
		t.Errorf("importLegacy stdout = %q, want the count and the next step", stdout.String())
	}
	if strings.Contains(stdout.String()+stderr.String(), "legacy pw") {
		t.Errorf("importLegacy printed a password: %q %q", stdout.String(), stderr.String())
	}
	ids, err := st.LegacyBatch(ctx, uuid.Nil, 10)
	if err != nil || len(ids) != 3 {
		t.Fatalf("LegacyBatch() = %v, %v; want the 3 imported rows", ids, err)
	}
	list, _ := st.LegacyPasswords(ctx, ids)
	for i, p := range list {
		if p.Plaintext != fmt.Sprintf("legacy pw %d", i) || p.HasHash || p.Username != fmt.Sprintf("imported-%d", i) {
			t.Errorf("imported row %d = %+v, want imported-%d with its plaintext and no hash", i, p, i)
		}
	}

	// The same file again: every row is now taken or bad, nothing changes.
	stdout.Reset()
	stderr.Reset()
	importLegacy(ctx, st, importOptions{email: "import@example.com", file: "-", format: "jsonl"}, strings.NewReader(in.String()), &stdout, &stderr)
	if !strings.HasPrefix(stdout.String(), "imported 0 legacy connections") || strings.Count(stderr.String(), "is already taken") != 4 {
		t.Errorf("second import: stdout %q, stderr %q; want nothing imported, 4 usernames taken", stdout.String(), stderr.String())
	}

	err = importLegacy(ctx, st, importOptions{email: "nobody@example.com", file: file, format: "auto"}, nil, &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "no operator has the email nobody@example.com") {
		t.Errorf("importLegacy(unknown operator) = %v, want \"no operator has the email\"", err)
	}
}

func TestImportLegacyFlags(t *testing.T) {
	t.Parallel()
	url := testenv.DatabaseURL(t)
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--file", "x.csv"}, "--operator EMAIL is required"},
		{[]string{"--operator", "a@example.com"}, "--file F is required"},
		{[]string{"--operator", "a@example.com", "--file", "x", "--format", "xml"}, `--format "xml"`},
		{[]string{"--operator", "a@example.com", "--file", "/nonexistent/legacy.csv"}, "no operator has the email a@example.com"},
	} {
		err := runImportLegacy(context.Background(), append([]string{"-database-url", url}, tt.args...))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("import-legacy %q = %v, want %q", tt.args, err, tt.want)
		}
	}
}

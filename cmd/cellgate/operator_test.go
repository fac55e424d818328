package main

import (
	"context"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"golang.org/x/crypto/bcrypt"

	"github.com/cellgate/cellgate/credential"
	"github.com/cellgate/cellgate/internal/testenv"
)

var generatedPassword = regexp.MustCompile(`(?m)^password: (\S+)$`)

// operatorRows returns the stored operators' password hashes by email.
func operatorRows(t *testing.T, url string) map[string]string {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect to %s: %v", url, err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, "SELECT email, password_hash FROM operators")
	if err != nil {
		t.Fatal(err)
	}
	hashes := map[string]string{}
	var email, hash string
	if _, err := pgx.ForEachRow(rows, []any{&email, &hash}, func() error {
		hashes[email] = hash
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return hashes
}

func TestOperatorCreate(t *testing.T) {
	t.Parallel()
	url := testenv.DatabaseURL(t)
	env := []string{"DATABASE_URL=" + url}
	_, api := startAPI(t, url)

	// Generated password: printed once, and it logs in.
	p := runCellgate(t, env, "", "operator", "create", "--email", "Alice@Example.com")
	p.wantExit(t, 0)
	m := generatedPassword.FindAllStringSubmatch(p.stdout.String(), -1)
	if len(m) != 1 {
		t.Fatalf("%s: want one line \"password: ...\" on stdout, got %d\n%s", p.name, len(m), p.output())
	}
	alicePassword := m[0][1]
	if n := strings.Count(p.stdout.String()+p.stderr.String(), alicePassword); n != 1 {
		t.Errorf("%s: the password appears %d times in the output, want once\n%s", p.name, n, p.output())
	}
	if len(alicePassword) < credential.PasswordLength {
		t.Errorf("generated password %q has %d characters, want at least %d", alicePassword, len(alicePassword), credential.PasswordLength)
	}
	if status, _ := login(t, api, "alice@example.com", alicePassword); status != http.StatusOK {
		t.Errorf("login with the generated password = %d, want 200", status)
	}
	if status, _ := login(t, api, "alice@example.com", alicePassword+"x"); status != http.StatusUnauthorized {
		t.Errorf("login with a wrong password = %d, want 401", status)
	}

	// --password-stdin: the given password, nothing printed.
	const bobPassword = "correct horse battery staple"
	p = runCellgate(t, env, bobPassword+"\n", "operator", "create", "--email", "bob@example.com", "--password-stdin")
	p.wantExit(t, 0)
	if strings.Contains(p.stdout.String(), "password:") || strings.Contains(p.stdout.String(), bobPassword) {
		t.Errorf("%s printed a password\n%s", p.name, p.output())
	}
	if status, _ := login(t, api, "bob@example.com", bobPassword); status != http.StatusOK {
		t.Errorf("login with the --password-stdin password = %d, want 200", status)
	}

	// Refused: nothing is created.
	for _, tt := range []struct {
		stdin      string
		args       []string
		wantStderr string
	}{
		{"", []string{"--email", "ALICE@example.COM"}, "an operator with email ALICE@example.COM already exists"},
		{"", []string{"--email", "not-an-email"}, `--email "not-an-email" is not a plain email address`},
		{"", []string{"--email", "Eve <eve@example.com>"}, "is not a plain email address"},
		{"", []string{}, "is not a plain email address"},
		{"short\n", []string{"--email", "carol@example.com", "--password-stdin"}, "password: unacceptable password: must be at least 8 characters"},
	} {
		args := append([]string{"operator", "create"}, tt.args...)
		runCellgate(t, env, tt.stdin, args...).wantExit(t, 1, tt.wantStderr)
	}

	hashes := operatorRows(t, url)
	want := map[string]string{"alice@example.com": alicePassword, "bob@example.com": bobPassword}
	wantAdmins(t, url, "")
	if len(hashes) != len(want) {
		t.Errorf("stored operators %v, want exactly %v", hashes, want)
	}
	for email, password := range want {
		hash, ok := hashes[email]
		if !ok {
			t.Errorf("no operator row for %s (rows %v)", email, hashes)
			continue
		}
		if cost, err := bcrypt.Cost([]byte(hash)); err != nil || cost != credential.BcryptCost {
			t.Errorf("password_hash of %s: bcrypt cost %d (err %v), want %d", email, cost, err, credential.BcryptCost)
		}
		if bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)) != nil {
			t.Errorf("password_hash of %s does not match its password", email)
		}
	}
}

// wantAdmins fails unless the operators with is_admin are exactly those listed (comma-separated,
// in email order).
func wantAdmins(t *testing.T, url, want string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, _ := conn.Query(ctx, "SELECT email FROM operators WHERE is_admin ORDER BY email")
	admins, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(admins, ","); got != want {
		t.Errorf("admins = %q, want %q", got, want)
	}
}

// TestOperatorAdmin: --admin makes an admin, `operator admin` makes or (--revoke) unmakes one,
// and an unknown email changes nothing.
func TestOperatorAdmin(t *testing.T) {
	t.Parallel()
	url := testenv.DatabaseURL(t)
	env := []string{"DATABASE_URL=" + url}
	wantStdout(t, runCellgate(t, env, "", "operator", "create", "--email", "root@example.com", "--admin"), "admin operator root@example.com created")
	runCellgate(t, env, "", "operator", "create", "--email", "plain@example.com").wantExit(t, 0)
	wantAdmins(t, url, "root@example.com")
	wantStdout(t, runCellgate(t, env, "", "operator", "admin", "--email", "Plain@Example.com"), "plain@example.com is an admin")
	wantAdmins(t, url, "plain@example.com,root@example.com")
	wantStdout(t, runCellgate(t, env, "", "operator", "admin", "--email", "root@example.com", "--revoke"), "root@example.com is no longer an admin")
	wantAdmins(t, url, "plain@example.com")
	runCellgate(t, env, "", "operator", "admin", "--email", "nobody@example.com").wantExit(t, 1, "no operator with email nobody@example.com")
	runCellgate(t, env, "", "operator", "admin").wantExit(t, 1, "--email is required")
	runCellgate(t, env, "", "operator", "promote").wantExit(t, 1, "usage: cellgate operator create")
	wantAdmins(t, url, "plain@example.com")
}

// wantStdout fails unless the process exited 0 and printed want.
func wantStdout(t *testing.T, p *process, want string) {
	t.Helper()
	p.wantExit(t, 0)
	if !strings.Contains(p.stdout.String(), want) {
		t.Errorf("%s: stdout lacks %q\n%s", p.name, want, p.output())
	}
}

package proxyauth_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cellgate/cellgate/proxyauth"
)

// TestReasonCodes: every Reason the package declares has a code of its own, so a front end
// that maps codes (the relay's gateway) can tell each refusal apart; a string that is no
// reason has none.
func TestReasonCodes(t *testing.T) {
	reasons := map[string]proxyauth.Reason{
		"ReasonWrongCredentials": proxyauth.ReasonWrongCredentials,
		"ReasonQuotaExceeded":    proxyauth.ReasonQuotaExceeded,
		"ReasonDisabled":         proxyauth.ReasonDisabled,
		"ReasonDeviceOffline":    proxyauth.ReasonDeviceOffline,
		"ReasonTooManyAttempts":  proxyauth.ReasonTooManyAttempts,
		"ReasonBusy":             proxyauth.ReasonBusy,
		"ReasonQuotaUnavailable": proxyauth.ReasonQuotaUnavailable,
	}
	// The table above must name every Reason constant of the package: a new reason without a
	// code would reach the gateway as "".
	for _, name := range declaredReasons(t) {
		if _, ok := reasons[name]; !ok {
			t.Errorf("proxyauth declares %s, which this test (and maybe Reason.Code) does not know", name)
		}
	}
	seen := map[string]string{}
	for name, r := range reasons {
		code := r.Code()
		if code == "" || strings.ContainsAny(code, " :[]") {
			t.Errorf("%s.Code() = %q, want a machine word", name, code)
		}
		if other, dup := seen[code]; dup {
			t.Errorf("%s.Code() = %q, the code of %s too", name, code, other)
		}
		seen[code] = name
	}
	for _, r := range []proxyauth.Reason{"", "TEMP[backoff 30]: authentication service unavailable", "wrong_credentials"} {
		if code := r.Code(); code != "" {
			t.Errorf("Reason(%q).Code() = %q, want \"\"", r, code)
		}
	}
}

// declaredReasons returns the names of the constants of type Reason in the package's
// non-test files.
func declaredReasons(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, file := range files {
		if strings.HasSuffix(file, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), file, nil, 0)
		if err != nil {
			t.Fatalf("parse %s: %v", file, err)
		}
		for _, d := range f.Decls {
			g, ok := d.(*ast.GenDecl)
			if !ok || g.Tok != token.CONST {
				continue
			}
			for _, spec := range g.Specs {
				vs := spec.(*ast.ValueSpec)
				if id, ok := vs.Type.(*ast.Ident); ok && id.Name == "Reason" {
					for _, n := range vs.Names {
						names = append(names, n.Name)
					}
				}
			}
		}
	}
	if len(names) == 0 {
		t.Fatal("found no Reason constants in the package")
	}
	slices.Sort(names)
	return names
}

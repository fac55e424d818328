package api

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestYAMLToJSON(t *testing.T) {
	for _, tc := range []struct {
		in, want string
	}{
		{"b: 1\na: [x, 2.5, true, null]\n", `{"b":1,"a":["x",2.5,true,null]}`},
		{"\"200\": {description: ok}\n404: {}\n", `{"200":{"description":"ok"},"404":{}}`},
		{"when: 2026-01-02\nv: 3.1.0\nnot: \"<&>\"\n", `{"when":"2026-01-02","v":"3.1.0","not":"<&>"}`},
		{"a: &x {k: v}\nb: *x\n", `{"a":{"k":"v"},"b":{"k":"v"}}`},
		{"s: |\n  two\n  lines\n", `{"s":"two\nlines\n"}`},
	} {
		got, err := yamlToJSON([]byte(tc.in))
		if err != nil || string(got) != tc.want {
			t.Errorf("yamlToJSON(%q) = %s, %v; want %s", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"a: 1\na: 2\n", "? [k]\n: v\n", "a: .nan\n", "a: [1\n"} {
		if got, err := yamlToJSON([]byte(bad)); err == nil {
			t.Errorf("yamlToJSON(%q) = %s, want an error", bad, got)
		}
	}
}

// TestOpenAPIDocument: the embedded document converts to JSON that keeps the source's order.
func TestOpenAPIDocument(t *testing.T) {
	doc, err := openAPIJSON()
	if err != nil {
		t.Fatalf("openapi.yaml: %v", err)
	}
	if !json.Valid(doc) || !strings.HasPrefix(string(doc), `{"openapi":"3.1.0","info":`) {
		t.Errorf("openAPIJSON() = %.60s…, want JSON that starts with openapi 3.1.0, then info", doc)
	}
}

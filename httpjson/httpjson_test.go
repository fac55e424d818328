package httpjson_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/cellgate/cellgate/httpjson"
)

func TestWriteError(t *testing.T) {
	w := httptest.NewRecorder()
	httpjson.WriteError(w, httpjson.BadRequest("name", "invalid", "%s must not be empty", "name"))
	const want = `{"error":{"code":"invalid","message":"name must not be empty","field":"name"}}` + "\n"
	if w.Code != http.StatusBadRequest || w.Body.String() != want || w.Header().Get("Content-Type") != "application/json; charset=utf-8" {
		t.Errorf("WriteError = %d %q (%s), want 400 %q as JSON", w.Code, w.Body, w.Header().Get("Content-Type"), want)
	}
}

func TestRequireJSON(t *testing.T) {
	for ct, ok := range map[string]bool{
		"application/json": true, "application/json; charset=UTF-8": true,
		"": false, "text/plain": false, "application/json; boundary=x": false,
	} {
		r := httptest.NewRequest(http.MethodPost, "/", nil)
		r.Header.Set("Content-Type", ct)
		if err := httpjson.RequireJSON(r); (err == nil) != ok {
			t.Errorf("RequireJSON(%q) = %v, want ok %v", ct, err, ok)
		}
	}
}

func TestDecode(t *testing.T) {
	type obj struct {
		N    *int64    `json:"n"`
		S    *string   `json:"s"`
		List *[]string `json:"list"`
	}
	for _, tc := range []struct {
		name, body string
		v          any
		status     int
		code       string
		field      string
		message    string
	}{
		{"ok", `{"n":1}`, &obj{}, 0, "", "", ""},
		{"array", `[1,2]`, &[]int{}, 0, "", "", ""},
		{"empty", ``, &obj{}, 400, "invalid_json", "", "request body is empty; send a JSON object"},
		{"not json", `{`, &obj{}, 400, "invalid_json", "", ""},
		{"unknown field", `{"x":1}`, &obj{}, 400, "unknown_field", "x", `unknown field "x"`},
		{"wrong type", `{"n":"1"}`, &obj{}, 400, "invalid_type", "n", "n must be a integer"},
		{"not an array field", `{"list":1}`, &obj{}, 400, "invalid_type", "list", "list must be an array"},
		{"object for array", `{}`, &[]int{}, 400, "invalid_json", "", "request body must be a JSON array"},
		{"array for object", `[]`, &obj{}, 400, "invalid_json", "", "request body must be a JSON object"},
		{"trailing", `{} {}`, &obj{}, 400, "invalid_json", "", "request body must hold a single JSON object"},
		{"too large", `{"s":"` + strings.Repeat("a", 64) + `"}`, &obj{}, 413, "body_too_large", "", "request body is larger than 32 bytes"},
	} {
		r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(tc.body))
		if tc.name == "too large" {
			r.ContentLength = -1 // unknown: the reader's limit must catch it
		}
		err := httpjson.Decode(httptest.NewRecorder(), r, tc.v, 32)
		var e *httpjson.Error
		switch {
		case tc.status == 0 && err != nil:
			t.Errorf("Decode(%s) = %v, want nil", tc.name, err)
		case tc.status == 0:
		case !errors.As(err, &e):
			t.Errorf("Decode(%s) = %v, want an *Error", tc.name, err)
		case e.Status != tc.status || e.Code != tc.code || e.Field != tc.field || (tc.message != "" && e.Message != tc.message):
			t.Errorf("Decode(%s) = %+v, want %d %s field %q message %q", tc.name, e, tc.status, tc.code, tc.field, tc.message)
		}
	}
}

// TestFail: an *Error is answered as it is, a mapped error as its mapping, a request whose
// client went away not at all, and anything else as a 500 that says nothing of the error,
// which goes to the log instead.
func TestFail(t *testing.T) {
	errMissing := errors.New("row missing")
	known := func(err error) *httpjson.Error {
		if errors.Is(err, errMissing) {
			return &httpjson.Error{Status: http.StatusNotFound, Code: "not_found", Message: "not found"}
		}
		return nil
	}
	var logged strings.Builder
	log := slog.New(slog.NewTextHandler(&logged, nil))
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		name       string
		err        error
		ctx        context.Context
		wantStatus int
		wantBody   string
	}{
		{"an Error", fmt.Errorf("wrapped: %w", httpjson.BadRequest("x", "invalid", "bad x")), context.Background(), http.StatusBadRequest, `"code":"invalid"`},
		{"a known error", fmt.Errorf("look-up: %w", errMissing), context.Background(), http.StatusNotFound, `"code":"not_found"`},
		{"the client went away", context.Canceled, gone, 0, ""},
		{"anything else", errors.New("secret detail"), context.Background(), http.StatusInternalServerError, `"code":"internal"`},
	} {
		w := httptest.NewRecorder()
		r := httptest.NewRequest(http.MethodGet, "/things/1", nil).WithContext(tc.ctx)
		httpjson.Fail(w, r, "/things/:id", log, tc.err, known)
		if tc.wantStatus == 0 {
			if w.Body.Len() != 0 {
				t.Errorf("%s: answered %d %q, want nothing", tc.name, w.Code, w.Body)
			}
			continue
		}
		if w.Code != tc.wantStatus || !strings.Contains(w.Body.String(), tc.wantBody) || strings.Contains(w.Body.String(), "secret") {
			t.Errorf("%s: answered %d %s, want %d with %s and no detail", tc.name, w.Code, w.Body, tc.wantStatus, tc.wantBody)
		}
	}
	if !strings.Contains(logged.String(), "secret detail") || !strings.Contains(logged.String(), "/things/:id") {
		t.Errorf("log = %q, want the unexpected error with its route", logged.String())
	}
}

package api_test

import (
	"bytes"
	"encoding/json"
	"maps"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"
	"github.com/santhosh-tekuri/jsonschema/v6"
)

// The contract tests hold api/openapi.yaml, as GET /api/v1/openapi.json serves it, to the
// server: every route is documented and every documented operation is a route
// (TestOpenAPIRoutes), the documented security is what the server enforces
// (TestOpenAPISecurity), every example request fits its schema (TestOpenAPIExamples), and the
// answers of real requests fit theirs (TestOpenAPIAnswers, openapi_answers_test.go).
//
// Schemas are validated with santhosh-tekuri/jsonschema (JSON Schema 2020-12, which is what
// OpenAPI 3.1's schemas are), formats (uuid, date-time, ipv4, uri) asserted.

// docURL names the served document for the schema compiler; nothing is fetched from it, since
// every $ref in the document points into the document.
const docURL = "https://cellgate.invalid/api/v1/openapi.json"

// contract is the served OpenAPI document, ready to validate requests and answers with.
type contract struct {
	doc      map[string]any // as jsonschema.UnmarshalJSON decodes it: numbers are json.Number
	compiler *jsonschema.Compiler

	mu       sync.Mutex // guards compiled and answered
	compiled map[string]*jsonschema.Schema
	answered map[string]bool // operations (operation.String) a 2xx answer of which was checked
}

// loadContract fetches the document from the env's API, without credentials.
func loadContract(t testing.TB, e *env) *contract {
	t.Helper()
	r := e.anon().must(t, http.StatusOK, http.MethodGet, "/api/v1/openapi.json", nil)
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("%s Content-Type = %q, want application/json", r, ct)
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(r.raw))
	if err != nil {
		t.Fatalf("%s: %v", r, err)
	}
	doc, _ := v.(map[string]any)
	if version, _ := doc["openapi"].(string); !strings.HasPrefix(version, "3.1.") {
		t.Fatalf("%s openapi = %v, want 3.1.x", r, doc["openapi"])
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	if err := c.AddResource(docURL, v); err != nil {
		t.Fatalf("add the document to the schema compiler: %v", err)
	}
	k := &contract{doc: doc, compiler: c, compiled: map[string]*jsonschema.Schema{}, answered: map[string]bool{}}
	k.check(t, r, nil) // the document is an answer too
	return k
}

// schema compiles the schema at a JSON pointer into the document.
func (k *contract) schema(t testing.TB, pointer string) *jsonschema.Schema {
	t.Helper()
	k.mu.Lock()
	defer k.mu.Unlock()
	if s, ok := k.compiled[pointer]; ok {
		return s
	}
	s, err := k.compiler.Compile(docURL + "#" + pointer)
	if err != nil {
		t.Fatalf("compile the schema at %s: %v", pointer, err)
	}
	k.compiled[pointer] = s
	return s
}

// lookup returns the value at a JSON pointer into the document, or nil.
func (k *contract) lookup(pointer string) any {
	var v any = k.doc
	for _, part := range strings.Split(strings.TrimPrefix(pointer, "/"), "/") {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[strings.ReplaceAll(strings.ReplaceAll(part, "~1", "/"), "~0", "~")]
	}
	return v
}

// resolve follows a $ref (to a response, parameter or request body), returning the pointer
// of what it refers to and its value; anything else is returned as it is.
func (k *contract) resolve(pointer string, v any) (string, map[string]any) {
	m, _ := v.(map[string]any)
	for range 10 {
		ref, ok := m["$ref"].(string)
		if !ok {
			break
		}
		pointer = strings.TrimPrefix(ref, "#")
		m, _ = k.lookup(pointer).(map[string]any)
	}
	return pointer, m
}

// escape makes a key a JSON pointer token.
func escape(key string) string {
	return strings.ReplaceAll(strings.ReplaceAll(key, "~", "~0"), "/", "~1")
}

// operation is one documented method of one path.
type operation struct {
	method  string         // "POST"
	path    string         // "/devices/{id}", under the server URL /api/v1
	pointer string         // the operation object's JSON pointer
	op      map[string]any // the operation object
	params  []param        // the path's and the operation's
}

// param is a documented parameter, $ref resolved.
type param struct {
	pointer string
	obj     map[string]any
}

func (o operation) String() string { return o.method + " " + o.path }

var methods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

// operations lists every documented operation, in path and method order.
func (k *contract) operations() []operation {
	paths, _ := k.doc["paths"].(map[string]any)
	var ops []operation
	for _, p := range slices.Sorted(maps.Keys(paths)) {
		item, _ := paths[p].(map[string]any)
		for _, m := range methods {
			o, ok := item[m].(map[string]any)
			if !ok {
				continue
			}
			pointer := "/paths/" + escape(p) + "/" + m
			op := operation{method: strings.ToUpper(m), path: p, pointer: pointer, op: o}
			for i, list := range [][]any{asList(item["parameters"]), asList(o["parameters"])} {
				base := "/paths/" + escape(p) + "/parameters/"
				if i == 1 {
					base = pointer + "/parameters/"
				}
				for j, prm := range list {
					pp, obj := k.resolve(base+strconv.Itoa(j), prm)
					op.params = append(op.params, param{pp, obj})
				}
			}
			ops = append(ops, op)
		}
	}
	return ops
}

func asList(v any) []any {
	l, _ := v.([]any)
	return l
}

// find returns the operation that a request of method to target (a path under /api/v1, with
// or without a query) is; literal segments win over templated ones.
func (k *contract) find(method, target string) (operation, bool) {
	path, _, _ := strings.Cut(target, "?")
	segs := strings.Split(strings.TrimPrefix(path, "/api/v1"), "/")
	var best operation
	found, bestTemplated := false, 0
	for _, op := range k.operations() {
		tsegs := strings.Split(op.path, "/")
		if op.method != method || len(tsegs) != len(segs) {
			continue
		}
		templated, ok := 0, true
		for i, ts := range tsegs {
			if strings.HasPrefix(ts, "{") {
				templated++
			} else if ts != segs[i] {
				ok = false
				break
			}
		}
		if ok && (!found || templated < bestTemplated) {
			best, found, bestTemplated = op, true, templated
		}
	}
	return best, found
}

// check holds a request the server answered, and its answer, to the document: the operation
// is documented, it lists the answer's status and media type, and the answer fits that
// status's schema. A request the server accepted (2xx) must fit the document too: its query
// parameters and its body.
func (k *contract) check(t testing.TB, r *response, body any) {
	t.Helper()
	op, ok := k.find(r.method, r.path)
	if !ok {
		t.Errorf("%s answered %d: no such operation in the document", r, r.status)
		return
	}
	status := strconv.Itoa(r.status)
	responses, _ := op.op["responses"].(map[string]any)
	if _, ok := responses[status]; !ok {
		t.Errorf("%s answered %d %s: the document lists only %v for %s", r, r.status, r.raw, slices.Sorted(maps.Keys(responses)), op)
		return
	}
	pointer, res := k.resolve(op.pointer+"/responses/"+status, responses[status])
	k.checkContent(t, r, pointer, res)
	if r.status >= 300 {
		return
	}
	k.checkQuery(t, r, op)
	if body != nil {
		k.checkBody(t, r, op, body)
	}
	k.mu.Lock()
	k.answered[op.String()] = true
	k.mu.Unlock()
}

// checkContent checks an answer's body against the response object at pointer.
func (k *contract) checkContent(t testing.TB, r *response, pointer string, res map[string]any) {
	t.Helper()
	content, _ := res["content"].(map[string]any)
	if len(content) == 0 {
		if len(r.raw) != 0 {
			t.Errorf("%s answered %d with a body %s; the document says it has none", r, r.status, r.raw)
		}
		return
	}
	mt, _, err := mime.ParseMediaType(r.header.Get("Content-Type"))
	if _, ok := content[mt]; err != nil || !ok {
		t.Errorf("%s answered %d as %q; the document says %v", r, r.status, r.header.Get("Content-Type"), slices.Sorted(maps.Keys(content)))
		return
	}
	var v any = string(r.raw)
	if mt == "application/json" {
		if v, err = jsonschema.UnmarshalJSON(bytes.NewReader(r.raw)); err != nil {
			t.Errorf("%s answered %d %s: not JSON: %v", r, r.status, r.raw, err)
			return
		}
	}
	if err := k.schema(t, pointer+"/content/"+escape(mt)+"/schema").Validate(v); err != nil {
		t.Errorf("%s answered %d %s, which does not fit the document: %v", r, r.status, r.raw, err)
	}
}

// checkQuery checks that every query parameter of an accepted request is documented, with a
// value its schema allows.
func (k *contract) checkQuery(t testing.TB, r *response, op operation) {
	t.Helper()
	u, err := url.Parse(r.path)
	if err != nil {
		t.Fatal(err)
	}
	for name, values := range u.Query() {
		i := slices.IndexFunc(op.params, func(p param) bool { return p.obj["in"] == "query" && p.obj["name"] == name })
		if i < 0 {
			t.Errorf("%s was accepted with query parameter %q, which the document does not list", r, name)
			continue
		}
		p := op.params[i]
		var v any = values[0]
		if _, schema := k.resolve(p.pointer+"/schema", p.obj["schema"]); schema["type"] == "integer" {
			v = json.Number(values[0])
		}
		if err := k.schema(t, p.pointer+"/schema").Validate(v); err != nil {
			t.Errorf("%s was accepted with %s=%q, which the document does not allow: %v", r, name, values[0], err)
		}
	}
}

// checkBody checks that a body the server accepted fits the operation's request schema.
func (k *contract) checkBody(t testing.TB, r *response, op operation, body any) {
	t.Helper()
	rb, ok := op.op["requestBody"]
	if !ok {
		t.Errorf("%s was accepted with a body; the document says it takes none", r)
		return
	}
	pointer, _ := k.resolve(op.pointer+"/requestBody", rb)
	raw, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	if err := k.schema(t, pointer+"/content/application~1json/schema").Validate(v); err != nil {
		t.Errorf("%s was accepted with body %s, which the document does not allow: %v", r, raw, err)
	}
}

// call sends a request as c, wants status want, and checks request and answer (check).
func (k *contract) call(t testing.TB, c *client, want int, method, path string, body any) *response {
	t.Helper()
	r := c.do(t, method, path, body)
	if r.status != want {
		t.Fatalf("%s = %d %s, want %d", r, r.status, r.raw, want)
	}
	k.check(t, r, body)
	return r
}

// wantAllAnswered reports every documented operation no 2xx answer of which was checked.
func (k *contract) wantAllAnswered(t testing.TB) {
	t.Helper()
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, op := range k.operations() {
		if !k.answered[op.String()] {
			t.Errorf("%s: no successful answer was checked against the document; add a request to TestOpenAPIAnswers", op)
		}
	}
}

// ginParam is a gin path parameter (":id").
var ginParam = regexp.MustCompile(`:([A-Za-z_]+)`)

// TestOpenAPIRoutes: every route the server registers under /api/v1 is documented, every
// documented operation is a route, and each path's parameters are documented as such.
func TestOpenAPIRoutes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	k := loadContract(t, e)
	engine, ok := e.h.(*gin.Engine)
	if !ok {
		t.Fatalf("Handler() is a %T, want the *gin.Engine", e.h)
	}
	routes := map[string]bool{}
	for _, r := range engine.Routes() {
		if p, ok := strings.CutPrefix(r.Path, "/api/v1/"); ok {
			routes[r.Method+" /"+ginParam.ReplaceAllString(p, "{$1}")] = true
		}
	}
	documented := map[string]bool{}
	for _, op := range k.operations() {
		documented[op.String()] = true
		if !routes[op.String()] {
			t.Errorf("%s is documented, but the server has no such route", op)
		}
		wantPathParams(t, op)
	}
	for _, r := range slices.Sorted(maps.Keys(routes)) {
		if !documented[r] {
			t.Errorf("%s is a route, but api/openapi.yaml does not document it", r)
		}
	}
	if len(routes) == 0 {
		t.Errorf("the server registers no route under /api/v1")
	}
}

// wantPathParams reports an operation whose path template and documented path parameters
// differ.
func wantPathParams(t *testing.T, op operation) {
	t.Helper()
	var inPath, documented []string
	for _, m := range regexp.MustCompile(`\{([^}]+)\}`).FindAllStringSubmatch(op.path, -1) {
		inPath = append(inPath, m[1])
	}
	for _, p := range op.params {
		if p.obj["in"] == "path" {
			name, _ := p.obj["name"].(string)
			documented = append(documented, name)
			if p.obj["required"] != true {
				t.Errorf("%s: path parameter %q is not required", op, name)
			}
		}
	}
	slices.Sort(inPath)
	slices.Sort(documented)
	if !slices.Equal(inPath, documented) {
		t.Errorf("%s documents path parameters %v, want %v", op, documented, inPath)
	}
}

// TestOpenAPISecurity: every operation states its security, and the server enforces what it
// states: without credentials a secured operation is 401, and with a session cookie but no
// CSRF token a write that wants one is 403 while a read is not. Ids are random, so nothing
// exists to be changed.
func TestOpenAPISecurity(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	k := loadContract(t, e)
	session, _ := e.session(t)
	noCSRF := session.withCSRF("")
	for _, op := range k.operations() {
		sec, ok := op.op["security"].([]any)
		if !ok {
			t.Errorf("%s states no security; every operation says who may call it", op)
			continue
		}
		path := "/api/v1" + strings.ReplaceAll(op.path, "{id}", uuid.NewString())
		var body any
		if _, ok := op.op["requestBody"]; ok {
			body = map[string]any{}
		}
		if len(sec) == 0 {
			continue // open: login, enrollment, this document
		}
		r := e.anon().do(t, op.method, path, body)
		if r.status != http.StatusUnauthorized {
			t.Errorf("%s without credentials = %d %s, want 401", r, r.status, r.raw)
		}
		k.check(t, r, body)
		cookie, csrf := false, false
		for _, req := range sec {
			req, _ := req.(map[string]any)
			if _, ok := req["sessionCookie"]; ok {
				_, csrf = req["csrfToken"]
				cookie = true
			}
		}
		if !cookie {
			continue
		}
		r = noCSRF.do(t, op.method, path, body)
		if csrf {
			if code := wantError(t, r, http.StatusForbidden, ""); code != "csrf" {
				t.Errorf("%s with a session cookie but no CSRF token = %d %s, want 403 csrf", r, r.status, r.raw)
			}
		} else if r.status == http.StatusForbidden || r.status == http.StatusUnauthorized {
			t.Errorf("%s with a session cookie but no CSRF token = %d %s; the document says it needs none", r, r.status, r.raw)
		}
		k.check(t, r, nil)
	}
}

// TestOpenAPIExamples: every operation that reads a body documents it as JSON with at least
// one example, every example fits its schema, and the schema refuses an unknown field, as the
// server's strict decoding does.
func TestOpenAPIExamples(t *testing.T) {
	t.Parallel()
	k := loadContract(t, newEnv(t))
	bodies := 0
	for _, op := range k.operations() {
		rb, ok := op.op["requestBody"]
		if !ok {
			continue
		}
		bodies++
		pointer, body := k.resolve(op.pointer+"/requestBody", rb)
		content, _ := body["content"].(map[string]any)
		media, ok := content["application/json"].(map[string]any)
		if !ok || len(content) != 1 {
			t.Errorf("%s takes %v, want application/json only", op, slices.Sorted(maps.Keys(content)))
			continue
		}
		schema := k.schema(t, pointer+"/content/application~1json/schema")
		examples := map[string]any{}
		if v, ok := media["example"]; ok {
			examples["example"] = v
		}
		named, _ := media["examples"].(map[string]any)
		for name, ex := range named {
			_, ex := k.resolve("", ex)
			examples[name] = ex["value"]
		}
		if len(examples) == 0 {
			t.Errorf("%s has no example request body", op)
		}
		for name, ex := range examples {
			if err := schema.Validate(ex); err != nil {
				t.Errorf("%s example %q does not fit its schema: %v", op, name, err)
			}
			obj, ok := ex.(map[string]any)
			if !ok {
				t.Errorf("%s example %q is a %T, want a JSON object", op, name, ex)
				continue
			}
			with := map[string]any{"no_such_field": "x"}
			for f, v := range obj {
				with[f] = v
			}
			if schema.Validate(with) == nil {
				t.Errorf("%s: its schema takes an unknown field, which the server refuses (400 unknown_field)", op)
			}
		}
	}
	if bodies == 0 {
		t.Errorf("no operation takes a body")
	}
}

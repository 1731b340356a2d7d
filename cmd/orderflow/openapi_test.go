package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"net/http"
	"net/url"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/orderflow/orderflow/handlers"
)

// The OpenAPI document's schemas say what the API answers. Every answer
// an HTTP test gets is checked against the document (checkAnswer); this
// test calls every route through the worked example (a route not called
// fails it, so a new one must be added here). Each request example
// matches its schema, and a body without one of its required fields is
// refused (400), with a problem the document describes.
func TestOpenAPISchemasDescribeTheAnswers(t *testing.T) {
	t.Parallel()
	app := startApp(t, newTestConfig(t))
	c := newClient(t, app)
	doc := c.must(200, "GET", "/openapi.json", nil)
	if !reflect.DeepEqual(doc, document().doc) {
		t.Fatal("the served document is not the one the HTTP tests check answers against")
	}
	v := document()
	checked := map[string]bool{}
	c.answered = func(method, path string, r response) {
		if pattern, op := v.operation(method, path); op != nil && r.Status < 300 {
			checked[method+" "+pattern] = true
		}
	}

	seedWorkedExample(t, c)
	c.must(200, "GET", "/v1/statuses", nil)
	c.must(201, "POST", "/v1/statuses", map[string]any{"name": "Spare", "category": "draft"})
	c.must(200, "PATCH", "/v1/statuses/spare", map[string]any{"name": "Spare Room"})
	c.must(200, "DELETE", "/v1/statuses/spare", nil)
	c.must(200, "GET", "/v1/statuses/spare", nil)
	c.must(200, "GET", "/v1/triggers", nil)
	c.must(201, "POST", "/v1/triggers", map[string]any{"key": "spare", "name": "Spare"})
	c.must(200, "PATCH", "/v1/triggers/spare", map[string]any{"description": "not used"})
	c.must(200, "DELETE", "/v1/triggers/spare", nil)
	c.must(200, "GET", "/v1/triggers/spare", nil)
	c.must(200, "GET", "/v1/workflows", nil)
	c.must(200, "GET", "/v1/workflows/laundry_intake", nil)
	c.must(200, "GET", "/v1/workflows/laundry_intake?as_of="+time.Now().UTC().Format(time.RFC3339Nano), nil)
	c.must(201, "POST", "/v1/workflows", map[string]any{"name": "Spare Line", "type": "production",
		"steps": []map[string]any{{"status": "washing", "trigger": "wash_done"}, {"status": "drying", "trigger": "dry_done"}}})
	c.must(200, "PATCH", "/v1/workflows/spare_line", map[string]any{"name": "Spare Production"})
	c.must(200, "PATCH", "/v1/workflows/spare_line/steps/1", map[string]any{"trigger": "folded"})
	c.must(200, "DELETE", "/v1/workflows/spare_line/steps/1", nil)
	c.must(200, "GET", "/v1/workflows/spare_line/versions/1", nil)
	c.must(200, "POST", "/v1/workflows/spare_line/archive", nil)
	c.must(200, "GET", "/v1/order-types", nil)
	c.must(200, "GET", "/v1/order-types/wash_fold_delivery", nil)
	c.must(200, "GET", "/v1/order-types/wash_fold_delivery?as_of="+time.Now().UTC().Format(time.RFC3339Nano), nil)
	c.must(201, "POST", "/v1/order-types", map[string]any{"name": "Spare Service", "production": "standard_laundry_production"})
	c.must(200, "PATCH", "/v1/order-types/spare_service", map[string]any{"intake": "laundry_intake"})
	c.must(200, "POST", "/v1/order-types/spare_service/archive", nil)

	for _, id := range []string{"s-1", "s-2"} {
		c.must(201, "POST", "/v1/orders", map[string]any{"id": id, "order_type_id": "wash_fold_delivery"})
	}
	c.must(200, "POST", "/v1/orders/s-1/triggers", map[string]any{"trigger": "picked_up", "worker": "ana"})
	c.must(200, "POST", "/v1/orders/s-1/triggers", map[string]any{"trigger": "items_tagged", "trigger_id": "s-1-t2"})
	c.must(200, "POST", "/v1/orders/s-1/triggers", map[string]any{"trigger": "items_tagged", "trigger_id": "s-1-t2"}) // duplicate
	c.must(200, "POST", "/v1/orders/s-1/hold", map[string]any{"reason": "customer away"})
	c.must(200, "POST", "/v1/orders/s-1/resume", nil)
	c.must(200, "POST", "/v1/orders/s-1/move", map[string]any{"workflow_id": "standard_laundry_production", "step": 2, "reason": "already dry"})
	c.must(200, "POST", "/v1/workflows/standard_laundry_production/steps", map[string]any{"status": "received", "trigger": "items_tagged"})
	c.must(200, "POST", "/v1/orders/s-1/migrate", map[string]any{"workflow_id": "standard_laundry_production", "to_version": 5})
	c.must(200, "POST", "/v1/orders/s-2/cancel", map[string]any{"reason": "duplicate"})
	c.must(200, "GET", "/v1/orders/s-1", nil)
	c.must(200, "GET", "/v1/orders/s-1?as_of="+time.Now().UTC().Format(time.RFC3339Nano), nil)
	c.must(200, "GET", "/v1/orders", nil)
	c.must(200, "GET", "/v1/orders?limit=1", nil) // with next_cursor
	c.must(200, "GET", "/v1/orders/s-1/history", nil)
	c.must(200, "GET", "/v1/orders/s-1/history?limit=2", nil)
	c.must(200, "GET", "/v1/board", nil)
	c.must(200, "GET", "/v1/projections", nil)
	c.must(200, "POST", "/v1/projections/rebuild", nil)
	c.must(200, "GET", "/healthz", nil)
	c.must(200, "GET", "/readyz", nil)

	for path, item := range doc["paths"].(map[string]any) {
		for method, op := range item.(map[string]any) {
			content, _ := op.(map[string]any)["responses"].(map[string]any)
			var documented bool
			for _, resp := range content {
				kinds, _ := resp.(map[string]any)["content"].(map[string]any)
				media, _ := kinds["application/json"].(map[string]any)
				documented = documented || media["schema"] != nil
			}
			if key := strings.ToUpper(method) + " " + path; documented && !checked[key] {
				t.Errorf("%s: no answer checked against its schema; call it in this test", key)
			}
			if path != "/v1/events" && path != "/metrics" && path != "/openapi.json" && !documented {
				t.Errorf("%s %s: no schema for its answer", method, path)
			}
		}
	}

	// Each example matches its schema, and leaving out a required field is
	// refused (with a problem its schema describes). The paths name things
	// the worked example has.
	concrete := func(path string) string {
		id := map[string]string{"workflows": "standard_laundry_production", "order-types": "wash_fold_delivery", "orders": "s-1"}[strings.Split(path, "/")[2]]
		return strings.NewReplacer("{id}", id, "{index}", "0", "{key}", "washing").Replace(path)
	}
	for path, item := range doc["paths"].(map[string]any) {
		for method, op := range item.(map[string]any) {
			body, _ := op.(map[string]any)["requestBody"].(map[string]any)
			if body == nil {
				continue
			}
			media := body["content"].(map[string]any)["application/json"].(map[string]any)
			schema, example := media["schema"].(map[string]any), media["example"]
			if errs := v.check("example", schema, example); len(errs) > 0 {
				t.Errorf("%s %s: the example does not match the schema: %s", method, path, strings.Join(errs, "; "))
			}
			required, _ := schema["required"].([]any)
			for _, field := range required {
				without := maps.Clone(example.(map[string]any))
				delete(without, field.(string))
				if r := c.do(strings.ToUpper(method), concrete(path), without); r.Status != http.StatusBadRequest {
					t.Errorf("%s %s without %q = %d, want 400 (the schema says it is required): %s", method, path, field, r.Status, r.Body)
				}
			}
			// A key or an id, at any depth, that is not a token.
			for _, with := range nonTokens(schema, example) {
				if r := c.do(strings.ToUpper(method), concrete(path), with); r.Status != http.StatusBadRequest {
					t.Errorf("%s %s with %v = %d, want 400 (a key or id not a token, as the schema says): %s", method, path, with, r.Status, r.Body)
				}
			}
		}
	}

	// A query parameter's value outside its schema is refused.
	for path, item := range doc["paths"].(map[string]any) {
		for method, op := range item.(map[string]any) {
			params, _ := op.(map[string]any)["parameters"].([]any)
			for _, p := range params {
				p := p.(map[string]any)
				if p["in"] != "query" {
					continue
				}
				schema := p["schema"].(map[string]any)
				var outside []string
				if most, ok := schema["maximum"].(float64); ok {
					outside = append(outside, fmt.Sprint(most+1))
				}
				if least, ok := schema["minimum"].(float64); ok {
					outside = append(outside, fmt.Sprint(least-1))
				}
				if schema["type"] == "integer" {
					outside = append(outside, "two")
				}
				if schema["enum"] != nil || schema["format"] == "date-time" {
					outside = append(outside, "noon")
				}
				if schema["pattern"] != nil {
					outside = append(outside, "a.b", "-a", strings.Repeat("a", int(schema["maxLength"].(float64))+1))
				}
				for _, value := range outside {
					target := concrete(path) + "?" + url.Values{p["name"].(string): {value}}.Encode()
					if r := c.do(strings.ToUpper(method), target, nil); r.Status != http.StatusBadRequest {
						t.Errorf("%s %s = %d, want 400 (outside the parameter's schema %v): %s", method, target, r.Status, schema, r.Body)
					}
				}
			}
		}
	}
}

// `orderflow openapi` prints the document the server serves (the schema
// test holds the served one to document()).
func TestOpenAPICommand(t *testing.T) {
	t.Parallel()
	var out, errs bytes.Buffer
	if code := Main(context.Background(), []string{"openapi"}, &out, &errs, func(string) (string, bool) { return "", false }); code != 0 {
		t.Fatalf("orderflow openapi = %d: %s", code, errs.String())
	}
	var doc map[string]any
	if err := json.Unmarshal(out.Bytes(), &doc); err != nil || !reflect.DeepEqual(doc, document().doc) {
		t.Fatalf("orderflow openapi printed another document (%v)", err)
	}
	if !bytes.Contains(out.Bytes(), []byte("reader < worker")) {
		t.Fatal("orderflow openapi escapes < and > in its text, which GET /openapi.json does not")
	}
	if code := Main(context.Background(), []string{"openapi", "extra"}, &out, &errs, func(string) (string, bool) { return "", false }); code != 1 {
		t.Fatalf("orderflow openapi extra = %d, want 1", code)
	}
}

// nonTokens are copies of a request body, each with one of its keys or
// ids (a string its schema gives a pattern), at any depth, made "a.b";
// one the body leaves out is added.
func nonTokens(schema map[string]any, body any) []any {
	if schema["pattern"] != nil {
		return []any{"a.b"}
	}
	var out []any
	switch body := body.(type) {
	case []any:
		items, _ := schema["items"].(map[string]any)
		for i, item := range body {
			for _, bad := range nonTokens(items, item) {
				with := slices.Clone(body)
				with[i] = bad
				out = append(out, with)
			}
		}
	case map[string]any:
		props, _ := schema["properties"].(map[string]any)
		for _, name := range slices.Sorted(maps.Keys(props)) {
			prop := props[name].(map[string]any)
			field, given := body[name]
			if !given {
				field = ""
				if items, ok := prop["items"].(map[string]any); ok && items["pattern"] != nil {
					field = []any{""}
				}
			}
			for _, bad := range nonTokens(prop, field) {
				with := maps.Clone(body)
				with[name] = bad
				out = append(out, with)
			}
		}
	}
	return out
}

// schemaChecker checks JSON values against the schemas of an OpenAPI
// document: the part of JSON Schema the document uses.
type schemaChecker struct {
	doc    map[string]any
	routes []documentedRoute
}

type documentedRoute struct {
	pattern string
	match   *regexp.Regexp
	item    map[string]any
}

// document is the API's OpenAPI document as clients read it (JSON).
var document = sync.OnceValue(func() schemaChecker {
	b, err := json.Marshal((&handlers.API{}).OpenAPI())
	if err != nil {
		panic(err)
	}
	var v schemaChecker
	if err := json.Unmarshal(b, &v.doc); err != nil {
		panic(err)
	}
	params := regexp.MustCompile(`\{[a-z_]+\}`)
	for pattern, item := range v.doc["paths"].(map[string]any) {
		literal := regexp.QuoteMeta(params.ReplaceAllString(pattern, "\x00"))
		v.routes = append(v.routes, documentedRoute{pattern, regexp.MustCompile("^" + strings.ReplaceAll(literal, "\x00", "[^/]+") + "$"), item.(map[string]any)})
	}
	return v
})

// checkAnswer fails t when the document does not describe an answer to a
// request it has an operation for: a status code the operation does not
// name, a header it says is always there and is not (or one of
// orderflow's it does not name), or a body its schema does not match.
func checkAnswer(t *testing.T, method, path string, r response) {
	t.Helper()
	v := document()
	_, op := v.operation(method, path)
	if op == nil {
		return // no route: a 404 or 405 of the mux
	}
	documented, ok := op["responses"].(map[string]any)[fmt.Sprint(r.Status)].(map[string]any)
	if !ok {
		t.Errorf("%s %s = %d, an answer %s does not document: %s", method, path, r.Status, op["operationId"], r.Body)
		return
	}
	headers, _ := documented["headers"].(map[string]any)
	for name, h := range headers {
		if h.(map[string]any)["required"] == true && r.Header.Get(name) == "" {
			t.Errorf("%s %s = %d: no %s header, which the document says it carries", method, path, r.Status, name)
		}
	}
	for _, name := range []string{"ETag", "Location", "X-Orderflow-Sequence", "X-Request-ID", "Idempotent-Replayed", "Retry-After", "WWW-Authenticate"} {
		if _, ok := headers[name]; !ok && r.Header.Get(name) != "" {
			t.Errorf("%s %s = %d: header %s, which the document does not name", method, path, r.Status, name)
		}
	}
	content, _ := documented["content"].(map[string]any)
	kind, _, _ := strings.Cut(r.Header.Get("Content-Type"), ";")
	media, _ := content[kind].(map[string]any)
	schema, _ := media["schema"].(map[string]any)
	if schema == nil {
		return
	}
	var value any
	if err := json.Unmarshal(r.Body, &value); err != nil {
		t.Errorf("%s %s = %d: %s says JSON: %v", method, path, r.Status, kind, err)
		return
	}
	if errs := v.check("answer", schema, value); len(errs) > 0 {
		t.Errorf("%s %s = %d: the answer does not match %s's schema:\n  %s\n%s", method, path, r.Status, op["operationId"], strings.Join(errs, "\n  "), r.Body)
	}
}

// operation finds the operation serving method and path (a query
// dropped): the pattern with the fewest parameters that has the method.
func (v schemaChecker) operation(method, path string) (string, map[string]any) {
	path, _, _ = strings.Cut(path, "?")
	best, params := "", math.MaxInt
	var found map[string]any
	for _, r := range v.routes {
		op, ok := r.item[strings.ToLower(method)].(map[string]any)
		if n := strings.Count(r.pattern, "{"); ok && n < params && r.match.MatchString(path) {
			best, params, found = r.pattern, n, op
		}
	}
	return best, found
}

func (v schemaChecker) check(at string, schema map[string]any, value any) []string {
	if ref, ok := schema["$ref"].(string); ok {
		name := strings.TrimPrefix(ref, "#/components/schemas/")
		target, ok := v.doc["components"].(map[string]any)["schemas"].(map[string]any)[name].(map[string]any)
		if !ok {
			return []string{fmt.Sprintf("%s: no schema %s", at, ref)}
		}
		return v.check(at, target, value)
	}
	if allOf, ok := schema["allOf"].([]any); ok {
		rest := maps.Clone(schema)
		delete(rest, "allOf")
		errs := v.check(at, rest, value)
		for _, s := range allOf {
			errs = append(errs, v.check(at, s.(map[string]any), value)...)
		}
		return errs
	}
	if cond, ok := schema["if"].(map[string]any); ok {
		if len(v.check(at, cond, value)) == 0 {
			if then, ok := schema["then"].(map[string]any); ok {
				return v.check(at, then, value)
			}
		}
		return nil
	}
	if anyOf, ok := schema["anyOf"].([]any); ok {
		var all []string
		for _, s := range anyOf {
			errs := v.check(at, s.(map[string]any), value)
			if len(errs) == 0 {
				return nil
			}
			all = append(all, errs...)
		}
		return all
	}
	var errs []string
	fail := func(format string, args ...any) { errs = append(errs, at+": "+fmt.Sprintf(format, args...)) }
	if typ, ok := schema["type"]; ok {
		types := []any{typ}
		if list, ok := typ.([]any); ok {
			types = list
		}
		if !slices.ContainsFunc(types, func(t any) bool { return jsonType(value, t.(string)) }) {
			fail("%v is not of type %v", value, typ)
			return errs
		}
	}
	if c, ok := schema["const"]; ok && !reflect.DeepEqual(c, value) {
		fail("%v is not %v", value, c)
	}
	if enum, ok := schema["enum"].([]any); ok && !slices.ContainsFunc(enum, func(e any) bool { return reflect.DeepEqual(e, value) }) {
		fail("%v is not one of %v", value, enum)
	}
	if schema["format"] == "date-time" {
		if s, ok := value.(string); ok {
			if _, err := time.Parse(time.RFC3339Nano, s); err != nil {
				fail("%q is not a date-time", s)
			}
		}
	}
	if n, ok := schema["minLength"].(float64); ok {
		if s, ok := value.(string); ok && float64(len([]rune(s))) < n {
			fail("%q is shorter than %v", s, n)
		}
	}
	if n, ok := schema["minimum"].(float64); ok {
		if f, ok := value.(float64); ok && f < n {
			fail("%v is less than %v", f, n)
		}
	}
	switch value := value.(type) {
	case []any:
		if n, ok := schema["minItems"].(float64); ok && float64(len(value)) < n {
			fail("%d items, fewer than %v", len(value), n)
		}
		if items, ok := schema["items"].(map[string]any); ok {
			for i, item := range value {
				errs = append(errs, v.check(fmt.Sprintf("%s[%d]", at, i), items, item)...)
			}
		}
	case map[string]any:
		props, _ := schema["properties"].(map[string]any)
		required, _ := schema["required"].([]any)
		for _, name := range required {
			if _, ok := value[name.(string)]; !ok {
				fail("lacks %q", name)
			}
		}
		for name, field := range value {
			switch s, ok := props[name].(map[string]any); {
			case ok:
				errs = append(errs, v.check(at+"."+name, s, field)...)
			case schema["additionalProperties"] == false:
				fail("has %q, which the schema does not allow", name)
			case schema["additionalProperties"] != nil:
				errs = append(errs, v.check(at+"."+name, schema["additionalProperties"].(map[string]any), field)...)
			case schema["type"] == "object" && props != nil: // a whole object's schema, not a condition on some of its fields
				fail("has %q, which the schema does not name", name)
			}
		}
	}
	return errs
}

// jsonType reports whether a decoded JSON value is of a JSON Schema type.
func jsonType(value any, typ string) bool {
	switch value := value.(type) {
	case nil:
		return typ == "null"
	case bool:
		return typ == "boolean"
	case string:
		return typ == "string"
	case float64:
		return typ == "number" || (typ == "integer" && value == math.Trunc(value))
	case []any:
		return typ == "array"
	case map[string]any:
		return typ == "object"
	}
	return false
}

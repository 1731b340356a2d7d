package handlers

import (
	"net/http"
	"reflect"
	"regexp"
	"strings"

	"github.com/orderflow/orderflow/domain"
)

var pathParam = regexp.MustCompile(`\{([a-z_]+)\}`)

// queryParam is a query parameter as the OpenAPI document shows it.
type queryParam struct {
	schema map[string]any
	does   string
}

// etagAnswers are the answers that carry an ETag, and what it is: a
// version, which If-Match takes.
var etagAnswers = map[reflect.Type]string{
	reflect.TypeFor[list[domain.Status]]():  "the status library's version",
	reflect.TypeFor[domain.Status]():        "the status library's version",
	reflect.TypeFor[list[domain.Trigger]](): "the trigger library's version",
	reflect.TypeFor[domain.Trigger]():       "the trigger library's version",
	reflect.TypeFor[WorkflowJSON]():         "the workflow's version",
	reflect.TypeFor[OrderTypeJSON]():        "the order type's version",
	reflect.TypeFor[OrderJSON]():            "the order's version",
	reflect.TypeFor[triggerAnswer]():        "the order's version",
}

// sequencedAnswers are the answers that carry X-Orderflow-Sequence.
var sequencedAnswers = map[reflect.Type]bool{
	reflect.TypeFor[OrderJSON](): true, reflect.TypeFor[triggerAnswer](): true,
	reflect.TypeFor[list[OrderJSON]](): true, reflect.TypeFor[list[BoardItem]](): true,
}

// header is a response header's description.
func header(does, typ string, required bool) map[string]any {
	return map[string]any{"description": does, "schema": map[string]any{"type": typ}, "required": required}
}

// tokenSchema is a key's or an id's schema: one subject token.
func tokenSchema() map[string]any {
	schema := map[string]any{"type": "string"}
	token(schema, true)
	return schema
}

// queryParams are the query parameters the routes take (routeQuery), by
// name; one not named here is a key or an id (tokenSchema).
var queryParams = map[string]queryParam{
	"as_of":   {map[string]any{"type": "string", "format": "date-time"}, "RFC 3339: the answer as it was then"},
	"limit":   {map[string]any{"type": "integer", "minimum": 1, "maximum": maxLimit}, "how many on a page"},
	"cursor":  {map[string]any{"type": "string"}, "the next_cursor of the page before"},
	"min_seq": {map[string]any{"type": "integer", "minimum": 0}, "wait (bounded) until the read model reflects this stream sequence, the X-Orderflow-Sequence of a write"},
	"state":   {map[string]any{"type": "string", "enum": schemaEnums[reflect.TypeFor[domain.OrderState]()]}, ""},
	"sort": {map[string]any{"type": "string", "enum": []string{"id", "entered_at"}, "default": "id"},
		"id: by order id (a listing that neither skips nor repeats an order); entered_at: those longest in their current stage first"},
	"types": {map[string]any{"type": "string"}, "comma-separated order event types: " + strings.Join(orderEventTypes, ", ")},
	"last_event_id": {map[string]any{"type": "integer", "minimum": 0},
		"the id of the last event seen (as the Last-Event-ID header): the feed goes on after it"},
	"after":        {map[string]any{"type": "integer", "minimum": 0}, "as last_event_id"},
	"access_token": {map[string]any{"type": "string"}, "an API key's token, for browsers' EventSource, which cannot send headers (keep such URLs out of shared logs)"},
}

// OpenAPI is the API's OpenAPI 3.1 document, made from the same route
// table the server serves, so it cannot leave a route out.
func (api *API) OpenAPI() map[string]any {
	schemas := &schemaSet{components: map[string]any{}}
	problem := map[string]any{"application/problem+json": map[string]any{"schema": schemas.answer(Problem{})}}
	retryAfter := map[string]any{"Retry-After": header("seconds to wait before sending the request again", "integer", true)}
	errors := map[string]any{
		"400": map[string]any{"description": "invalid_argument", "content": problem},
		"401": map[string]any{"description": "unauthenticated (API keys in use, no valid bearer token)", "content": problem,
			"headers": map[string]any{"WWW-Authenticate": header(`Bearer realm="orderflow" (with error="invalid_token" for a key that expired)`, "string", true)}},
		"403": map[string]any{"description": "forbidden (the key's role is below the route's x-orderflow-role)", "content": problem},
		"404": map[string]any{"description": "not_found", "content": problem},
		"409": map[string]any{"description": "conflict or trigger_rejected", "content": problem},
		"412": map[string]any{"description": "precondition_failed (stale If-Match)", "content": problem},
		"413": map[string]any{"description": "payload_too_large", "content": problem},
		"429": map[string]any{"description": "rate_limited (the key sent more than its requests a second, or on GET /v1/events holds as many feeds open as one key may; see Retry-After)", "content": problem, "headers": retryAfter},
		"500": map[string]any{"description": "internal (a stored event that cannot be read, which orderflow verify finds; or a fault of orderflow's own)", "content": problem},
		"503": map[string]any{"description": "unavailable (a read model, a trigger's outcome or the event store not there in time, a stream without a leader or storage; see Retry-After)", "content": problem, "headers": retryAfter},
	}
	// Every answer names the request: see RequestID.
	requestID := header("the request's X-Request-ID, or one made for it when it sent none (none when it sent one that is not an id: "+
		"more than one, over 128 bytes or with control characters); a command's events carry it as their correlation id (a trigger's, its trigger id)", "string", false)
	for _, answer := range errors {
		a := answer.(map[string]any)
		headers, _ := a["headers"].(map[string]any) // retryAfter's is shared, and gets it once more
		if headers == nil {
			headers = map[string]any{}
			a["headers"] = headers
		}
		headers["X-Request-ID"] = requestID
	}
	paths := map[string]map[string]any{}
	add := func(method, path, op, summary string, role Role, body, answer any) {
		var params []any
		for _, m := range pathParam.FindAllStringSubmatch(path, -1) {
			schema := tokenSchema()
			switch m[1] {
			case "index":
				schema = map[string]any{"type": "integer", "minimum": 0}
			case "v":
				schema = map[string]any{"type": "integer", "minimum": 1}
			}
			params = append(params, map[string]any{"name": m[1], "in": "path", "required": true, "schema": schema})
		}
		for _, q := range routeQuery[method+" "+path] {
			param := map[string]any{"name": q, "in": "query", "schema": tokenSchema()}
			if p, ok := queryParams[q]; ok {
				param["schema"], param["description"] = p.schema, p.does
			}
			params = append(params, param)
		}
		ok := "200"
		if method == "POST" && strings.Count(path, "/") == 2 && path != "/v1/board" {
			ok = "201" // creating a resource
		}
		content := "application/json"
		switch path {
		case "/v1/events":
			content = "text/event-stream"
		case "/metrics":
			content = "text/plain"
		}
		media := map[string]any{}
		switch {
		case answer != nil:
			media["schema"] = schemas.answer(answer)
		case path == "/v1/events":
			media["schema"] = map[string]any{"type": "string", "description": "one event per message: id: (its stream sequence), event: (its type) and data: (an Event, " +
				"#/components/schemas/Event); comment lines keep an idle feed open"}
		}
		headers := map[string]any{"X-Request-ID": requestID}
		if answer != nil {
			if etag, found := etagAnswers[reflect.TypeOf(answer)]; found {
				headers["ETag"] = header(etag, "string", true)
			}
			if sequencedAnswers[reflect.TypeOf(answer)] {
				headers["X-Orderflow-Sequence"] = header("the orders stream's sequence this answer reflects: "+
					"send it as ?min_seq= to a list or the board to read your own write", "integer", false)
			}
		}
		if ok == "201" {
			headers["Location"] = header("the created resource", "string", true)
		}
		responses := map[string]any{ok: map[string]any{"description": "OK", "content": map[string]any{content: media}}}
		switch {
		case strings.HasPrefix(path, "/v1/"):
			for k, v := range errors {
				responses[k] = v
			}
		case path == "/healthz" || path == "/readyz":
			responses["503"] = map[string]any{"description": "unavailable (see the summary)", "content": problem, "headers": map[string]any{"X-Request-ID": requestID}}
		}
		operation := map[string]any{"operationId": op, "summary": summary, "responses": responses}
		if role != 0 {
			operation["x-orderflow-role"] = role.String()
			operation["security"] = []any{map[string]any{"apiKey": []string{}}}
		} else {
			operation["security"] = []any{} // open, API keys or not
		}
		if k, found := keyedRoutes[method+" "+path]; found {
			params = append(params, map[string]any{"name": "Idempotency-Key", "in": "header",
				"schema": map[string]any{"type": "string", "maxLength": k.maxLen}, "description": k.does})
			if k.replays {
				headers["Idempotent-Replayed"] = map[string]any{
					"description": "true when the request was a resend of one with the same Idempotency-Key: nothing was recorded, and the answer is what the first did, as it now stands",
					"schema":      map[string]any{"type": "string", "enum": []string{"true"}}}
			}
		}
		responses[ok].(map[string]any)["headers"] = headers
		params = append(params, map[string]any{"name": "X-Request-ID", "in": "header", "schema": map[string]any{"type": "string", "maxLength": 128},
			"description": "an id for the request, which its answer carries (one is made when none is sent); a command records it as its events' correlation id " +
				"(a trigger records its trigger id), and refuses one that is not an id (400)"})
		if method != "GET" && strings.HasPrefix(path, "/v1/") && path != "/v1/projections/rebuild" { // a command
			params = append(params,
				map[string]any{"name": "X-Orderflow-Actor", "in": "header", "schema": map[string]any{"type": "string"},
					"description": "who acts (recorded as the event's actor, after the API key's name when keys are in use)"})
			if op != "applyTrigger" { // a trigger refuses it: the order's current step decides a trigger
				params = append(params, map[string]any{"name": "If-Match", "in": "header", "schema": map[string]any{"type": "string"},
					"description": `the ETag (version, "3") the change is meant for: another version is 412 precondition_failed`})
			}
		}
		if path == "/v1/events" {
			params = append(params, map[string]any{"name": "Last-Event-ID", "in": "header", "schema": map[string]any{"type": "integer", "minimum": 0},
				"description": "the id of the last event seen: the feed goes on after it"})
		}
		if conditionalReads[method+" "+path] {
			params = append(params, map[string]any{"name": "If-None-Match", "in": "header", "schema": map[string]any{"type": "string"},
				"description": "ETags (or *): when one is the ETag this route answers with, 304 Not Modified without a body"})
			responses["304"] = map[string]any{"description": "Not Modified: the If-None-Match held this answer's ETag",
				"headers": map[string]any{"ETag": header("the answer's version, as the 200 would carry it", "string", true), "X-Request-ID": requestID}}
		}
		if len(params) > 0 {
			operation["parameters"] = params
		}
		if body != nil {
			operation["requestBody"] = map[string]any{"required": !optionalBodies[reflect.TypeOf(body)], "content": map[string]any{"application/json": map[string]any{
				"schema": schemas.request(body), "example": body}}}
		}
		if paths[path] == nil {
			paths[path] = map[string]any{}
		}
		paths[path][strings.ToLower(method)] = operation
	}
	for _, r := range api.routes() {
		method, path, _ := strings.Cut(r.pattern, " ")
		add(method, path, r.op, r.summary, r.role, r.body, r.answer)
	}
	add("GET", "/healthz", "getHealth", "The process is alive and needs no restart (503 when only a restart helps: a stream that failed to write its files)", 0, nil, healthStatus{Status: "ok"})
	add("GET", "/readyz", "getReadiness", "Streams are open and NATS is connected (503 otherwise)", 0, nil, healthStatus{Status: "ready"})
	add("GET", "/metrics", "getMetrics", "Prometheus text metrics", 0, nil, nil)
	add("GET", "/openapi.json", "getOpenAPI", "This document", 0, nil, nil)
	return map[string]any{
		"openapi": "3.1.0",
		"info": map[string]any{"title": "orderflow", "version": "1",
			"description": "Event-sourced order progression. Errors are application/problem+json with a machine code. " +
				"When the server runs with --api-keys, every /v1 route asks for a bearer token whose key has at least the route's " +
				"x-orderflow-role (reader < worker < supervisor < admin < operator) and acts for the key's tenant; without, every caller is served as the default tenant."},
		"servers": []any{map[string]any{"url": "/", "description": "this server"}},
		"paths":   paths,
		"components": map[string]any{"securitySchemes": map[string]any{"apiKey": map[string]any{"type": "http", "scheme": "bearer"}},
			"schemas": schemas.components},
	}
}

// ServeOpenAPI answers GET /openapi.json.
func (api *API) ServeOpenAPI(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, api.OpenAPI())
}

package handlers

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/iotest"
	"time"
	"unicode/utf16"

	"github.com/orderflow/orderflow/domain"
	"github.com/orderflow/orderflow/eventstore/eventstoretest"
)

// A body over MaxBodyBytes is refused as too large whatever it holds, with
// or without a declared length; a small bad body is a bad request.
func TestDecodeBodyRefusesLargeBodiesBySize(t *testing.T) {
	huge := strings.Repeat("a", MaxBodyBytes+1)
	cases := []struct {
		name     string
		body     string
		chunked  bool // sent without a Content-Length
		tooLarge bool
	}{
		{"valid and small", `{"trigger":"picked_up"}`, false, false},
		{"malformed and small", `{"trigger":`, false, false},
		{"malformed and large", huge, false, true},
		{"malformed and large, no length", huge, true, true},
		{"valid object, large string", `{"trigger":"` + huge + `"}`, false, true},
		{"valid object, then large trailing data, no length", `{"trigger":"picked_up"}` + huge, true, true},
		{"valid object, then small trailing data", `{"trigger":"picked_up"} x`, false, false},
		{"at the limit", `{"trigger":"` + strings.Repeat("a", MaxBodyBytes-len(`{"trigger":""}`)) + `"}`, true, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var r *http.Request
			if tc.chunked {
				r = httptest.NewRequest(http.MethodPost, "/", io.MultiReader(strings.NewReader(tc.body)))
				r.ContentLength = -1
			} else {
				r = httptest.NewRequest(http.MethodPost, "/", strings.NewReader(tc.body))
			}
			err := (&API{}).decodeBody(httptest.NewRecorder(), r, &triggerRequest{})
			if got := errors.Is(err, errTooLarge); got != tc.tooLarge {
				t.Fatalf("too large = %v (%v), want %v", got, err, tc.tooLarge)
			}
			if status := problemFor(err).Status; err != nil && !tc.tooLarge && status != http.StatusBadRequest {
				t.Fatalf("a small bad body maps to %d (%v), want 400", status, err)
			}
		})
	}
}

// A body that does not arrive in time is refused with 400 and frees the
// connection; once a body is read its deadline is lifted, so a request
// that then takes longer is not cut short.
func TestDecodeBodyReadDeadline(t *testing.T) {
	api := &API{BodyReadTimeout: 100 * time.Millisecond}
	mux := http.NewServeMux()
	api.Register(mux) // the routes as served: guarded and observed
	mux.HandleFunc("POST /slow", func(w http.ResponseWriter, r *http.Request) {
		if err := api.decodeBody(w, r, &triggerRequest{}); err != nil {
			api.fail(w, r, err)
			return
		}
		select { // outlast the body's deadline
		case <-time.After(eventstoretest.Patience(5 * api.BodyReadTimeout)):
			w.WriteHeader(http.StatusNoContent)
		case <-r.Context().Done():
			w.WriteHeader(http.StatusInternalServerError)
		}
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	for _, path := range []string{"/slow", "/v1/orders"} {
		conn, err := net.Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(eventstoretest.Patience(30 * time.Second))) // fails the test, not the server, if nothing comes
		fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 50\r\n\r\n{\"trigger\":", path)
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), "did not arrive within 100ms") {
			t.Fatalf("a trickled body to %s: %d %s", path, resp.StatusCode, b)
		}
	}

	res, err := http.Post(srv.URL+"/slow", "application/json", strings.NewReader(`{"trigger":"picked_up"}`))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusNoContent {
		t.Fatalf("a request that outlasts its body's deadline: %d", res.StatusCode)
	}
}

// decodingServer answers POST /echo by decoding its body as a trigger
// request with api: 204, or the problem.
func decodingServer(api *API) *httptest.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /echo", func(w http.ResponseWriter, r *http.Request) {
		if err := api.decodeBody(w, r, &triggerRequest{}); err != nil {
			api.fail(w, r, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	return httptest.NewServer(mux)
}

// Bodies over SmallBodyBytes, or sent without a length, are read at most
// MaxLargeBodies at a time: clients holding connections with such bodies
// unfinished cannot make the server hold their memory on every
// connection. Small bodies never wait; a large one waits for a slot, and
// is answered 503 when none frees within the body read timeout.
func TestLargeBodiesAreReadAFewAtATime(t *testing.T) {
	api := &API{BodyReadTimeout: eventstoretest.Patience(30 * time.Second)}
	// Made here, before the server's goroutines, so the test may look at
	// the slots while they take them.
	api.largeOnce.Do(func() { api.largeBodies = make(chan struct{}, MaxLargeBodies) })
	srv := decodingServer(api)
	defer srv.Close()
	large := `{"trigger":"` + strings.Repeat("a", SmallBodyBytes) + `"}`
	post := func(body string) (int, string) {
		t.Helper()
		resp, err := http.Post(srv.URL+"/echo", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	// Clients that send all of a large body but its last byte hold every
	// slot.
	var holders []net.Conn
	for range MaxLargeBodies {
		conn, err := net.Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprintf(conn, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(large), large[:len(large)-1])
		holders = append(holders, conn)
	}
	eventstoretest.Eventually(t, eventstoretest.Patience(10*time.Second), func() bool {
		return len(api.largeBodies) == MaxLargeBodies
	}, "the unfinished large bodies to hold every slot")
	if code, b := post(`{"trigger":"picked_up"}`); code != http.StatusNoContent {
		t.Fatalf("a small body while the large ones wait: %d %s", code, b)
	}
	// A large body waits until one of them ends (here the client closes
	// it, which answers that one 400), then is read.
	answered := make(chan int, 1)
	go func() {
		resp, err := http.Post(srv.URL+"/echo", "application/json", strings.NewReader(large))
		if err != nil {
			answered <- 0
			return
		}
		resp.Body.Close()
		answered <- resp.StatusCode
	}()
	if err := holders[0].(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(holders[0]), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	if want := fmt.Sprintf("the body ended after %d bytes, before the %d bytes of its Content-Length", len(large)-1, len(large)); resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), want) {
		t.Fatalf("a body cut short: %d %s, want 400 saying %q", resp.StatusCode, b, want)
	}
	if code := <-answered; code != http.StatusNoContent {
		t.Fatalf("a large body once a slot freed: %d", code)
	}

	// With every slot taken, a large body, or one without a length, is
	// answered 503 once the body read timeout has passed.
	busy := &API{BodyReadTimeout: 50 * time.Millisecond}
	busy.largeOnce.Do(func() { busy.largeBodies = make(chan struct{}, MaxLargeBodies) })
	for range MaxLargeBodies {
		busy.largeBodies <- struct{}{}
	}
	for _, chunked := range []bool{false, true} {
		var body io.Reader = strings.NewReader(large)
		r := httptest.NewRequest(http.MethodPost, "/", body)
		if chunked {
			r = httptest.NewRequest(http.MethodPost, "/", io.MultiReader(strings.NewReader(`{"trigger":"picked_up"}`)))
			r.ContentLength = -1
		}
		err := busy.decodeBody(httptest.NewRecorder(), r, &triggerRequest{})
		want := fmt.Sprintf("%d request bodies of over %d bytes (or sent without a Content-Length) were being read, and none ended within 50ms", MaxLargeBodies, SmallBodyBytes)
		if err == nil || problemFor(err).Status != http.StatusServiceUnavailable || !strings.Contains(err.Error(), want) {
			t.Fatalf("chunked=%v with every slot taken: %v, want 503 saying %q", chunked, err, want)
		}
	}
	// The largest bodies the rules allow are small ones, even as an
	// encoder that writes every non-ASCII character as a \u escape writes
	// them (Python's json.dumps does): they never wait for a slot.
	escaped := func(s string, n int) string { // n times s, as \u escapes
		var b strings.Builder
		for _, u := range utf16.Encode([]rune(strings.Repeat(s, n))) {
			fmt.Fprintf(&b, `\u%04x`, u)
		}
		return b.String()
	}
	key := func(c string) string { return strings.Repeat(c, domain.MaxKeyLen) }
	step := fmt.Sprintf(`{"status":"%s","trigger":"%s"}`, key("s"), key("t"))
	for _, tc := range []struct {
		body string
		into any
	}{
		{`{"trigger":"picked_up"}`, &triggerRequest{}},
		{fmt.Sprintf(`{"trigger":"%s","trigger_id":"%s","worker":"%s","note":"%s","occurred_at":"2026-12-07T10:00:00.123456789+05:30"}`,
			key("t"), strings.Repeat("i", domain.MaxTriggerIDLen), escaped("😀", domain.MaxActorIDLen/4),
			escaped("😀", domain.MaxDescriptionLen)), &triggerRequest{}},
		{fmt.Sprintf(`{"key":"%s","name":"%s","description":"%s"}`, key("k"), escaped("😀", domain.MaxNameLen),
			escaped("😀", domain.MaxDescriptionLen)), &triggerBody{}},
		{fmt.Sprintf(`{"name":"%s","type":"production","fulfillment_method":"home_delivery","steps":[%s]}`, escaped("😀", domain.MaxNameLen),
			strings.Repeat(step+",", domain.MaxSteps-1)+step), &workflowBody{}},
		{fmt.Sprintf(`{"name":"%s","intake":"%s","production":"%s","fulfillment":["%s","%s","%s"]}`, escaped("😀", domain.MaxNameLen),
			key("i"), key("p"), key("a"), key("b"), key("c")), &orderTypeBody{}},
	} {
		if len(tc.body) > SmallBodyBytes {
			t.Errorf("a body the rules allow has %d bytes, over SmallBodyBytes: %.80s…", len(tc.body), tc.body)
		}
		r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(tc.body))
		if err := busy.decodeBody(httptest.NewRecorder(), r, tc.into); err != nil {
			t.Errorf("a body the rules allow (%d bytes) with every slot taken: %v", len(tc.body), err)
		}
	}
}

// A body cut short (the client closes the connection, or its sending
// half) is the client's fault: 400 saying so, not a server error.
func TestDecodeBodyCutShort(t *testing.T) {
	api := &API{}
	srv := decodingServer(api)
	defer srv.Close()
	for _, tc := range []struct{ request, want string }{
		{"Content-Length: 100\r\n\r\n{\"trigger\":", "the body ended after 11 bytes, before the 100 bytes of its Content-Length: send it whole"},
		{"Transfer-Encoding: chunked\r\n\r\nb\r\n{\"trigger\":\r\n", "the body ended after 11 bytes, before its last chunk: send it whole"},
	} {
		conn, err := net.Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(eventstoretest.Patience(30 * time.Second)))
		fmt.Fprintf(conn, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n%s", tc.request)
		if err := conn.(*net.TCPConn).CloseWrite(); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), tc.want) {
			t.Errorf("%q: %d %s, want 400 saying %q", tc.request, resp.StatusCode, b, tc.want)
		}
	}
}

// A body of the wrong JSON shape is refused with what was sent and what
// belongs there, in JSON's words, not Go's.
func TestDecodeBodyNamesTheWrongShape(t *testing.T) {
	cases := []struct{ body, want string }{
		{`[1,2]`, "the body is a JSON array; send a JSON object"},
		{`"picked_up"`, "the body is a JSON string; send a JSON object"},
		{`{"trigger": 5}`, "field trigger: a JSON number where a string belongs"},
		{`{"trigger": ["a"]}`, "field trigger: a JSON array where a string belongs"},
		{`{"trigger": "picked_up", "x": 1}`, `bad request: unknown field "x"`},
		{`{"trigger": `, "malformed JSON"},
		{`{"trigger": "picked_up", "trigger": "wash_done"}`, `field "trigger" is given twice`},
		{"\xef\xbb\xbf{\"trigger\": \"picked_up\"}", "the body starts with a byte-order mark"},
		{" null ", "the body is JSON null; send a JSON object"},
		{"{\"trigger\": \"picked_up\", \"worker\": \"caf\xe9\"}", "the body is not valid UTF-8 (byte 39)"},
		{`{"trigger": "picked_up", "worker": "\udc00"}`, `the body holds \udc00 at byte 36: half of a UTF-16 surrogate pair`},
	}
	for _, tc := range cases {
		r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(tc.body))
		err := (&API{}).decodeBody(httptest.NewRecorder(), r, &triggerRequest{})
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "handlers.") ||
			problemFor(err).Status != http.StatusBadRequest {
			t.Errorf("%s: %v, want 400 saying %q", tc.body, err, tc.want)
		}
	}
	// Fields that take numbers, behind a pointer (given or not), say
	// which numbers.
	for _, tc := range []struct {
		body, want string
		into       any
	}{
		{`{"workflow_id": "intake", "step": "1", "reason": "r"}`, "field step: a JSON string where a whole number belongs", &moveOrderBody{}},
		{`{"workflow_id": "intake", "step": 1.5, "reason": "r"}`, "field step: a JSON number 1.5 where a whole number belongs", &moveOrderBody{}},
		{`{"workflow_id": "intake", "step": true, "reason": "r"}`, "field step: a JSON bool where a whole number belongs", &moveOrderBody{}},
		{`{"workflow_id": "intake", "to_version": -1}`, "field to_version: a JSON number -1 where a whole number, 0 or more belongs", &migrateOrderBody{}},
		{`{"workflow_id": ["intake"], "to_version": 2}`, "field workflow_id: a JSON array where a string belongs", &migrateOrderBody{}},
		{`{"status": "washing", "trigger": "wash_done", "position": {}}`, "field position: a JSON object where a whole number belongs", &stepBody{}},
		{`{"steps": "washing"}`, "field steps: a JSON string where an array belongs", &stepsBody{}},
		{`{"steps": ["washing"]}`, "field steps: a JSON string where an object belongs", &stepsBody{}},
		{`{"steps": [{"status": true, "trigger": "wash_done"}]}`, "field steps.status: a JSON bool where a string belongs", &stepsBody{}},
		// The enumerations read themselves, and say the same.
		{`{"name": "Quick", "type": 5}`, "type: a JSON number where a string belongs", &workflowBody{}},
		{`{"name": "Quick", "type": "fulfillment", "fulfillment_method": true}`, "fulfillment_method: a JSON bool where a string belongs", &workflowBody{}},
		{`{"name": "Spare", "category": ["draft"]}`, "category: a JSON array where a string belongs", &statusBody{}},
	} {
		r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(tc.body))
		err := (&API{}).decodeBody(httptest.NewRecorder(), r, tc.into)
		if err == nil || !strings.Contains(err.Error(), tc.want) || problemFor(err).Status != http.StatusBadRequest {
			t.Errorf("%s into %T: %v, want 400 saying %q", tc.body, tc.into, err, tc.want)
		}
	}
}

// A member name given twice in one object, at any depth, is found, also
// in another case or spelled with an escape; the same name in different
// objects is not a repeat.
func TestDuplicateName(t *testing.T) {
	cases := []struct {
		body string
		name string // "" for none
	}{
		{`{"from":0,"to":1}`, ""},
		{`{"from":0,"to":1,"from":1}`, "from"},
		{`{"steps":[{"status":"a","trigger":"b"},{"status":"a","trigger":"b"}]}`, ""},
		{`{"steps":[{"status":"a","status":"b"}]}`, "status"},
		{`{"a":{"b":1},"b":{"a":2}}`, ""},
		{`{"a":{"x":[1,{"y":2}],"z":3},"a":4}`, "a"},
		{`{"a":"b","b":"a"}`, ""},
		{`{"a":["a","a"],"b":{"a":"a"}}`, ""},
		{`{"trigger": `, ""},
		{`[{"k":1},{"k":2}]`, ""},
		// encoding/json matches names to fields without regard to case,
		// so these name one field twice too.
		{`{"trigger":"a","Trigger":"b"}`, "Trigger"},
		{`{"from":0,"FROM":1}`, "FROM"},
		{`{"worker":"a","w\u006frker":"b"}`, "worker"},
		{"{\"k\":1,\"\u212a\":2}", "\u212a"}, // the Kelvin sign folds to k
		{`{"to":0,"from":1}`, ""},
	}
	for _, tc := range cases {
		name, ok := duplicateName([]byte(tc.body))
		if name != tc.name || ok != (tc.name != "") {
			t.Errorf("duplicateName(%s) = %q, %v; want %q", tc.body, name, ok, tc.name)
		}
	}
}

// readAll reads a body of its declared size into one buffer of that size
// (and a byte), and reads the whole of any other as io.ReadAll does.
func TestReadAllKeepsToTheDeclaredSize(t *testing.T) {
	body := strings.Repeat("x", 10_000)
	for _, tc := range []struct {
		name    string
		size    int64
		wantCap int // 0: not checked
	}{
		{"declared", 10_000, 10_001},
		{"declared fewer", 100, 0},
		{"not declared", -1, 0},
		{"declared over the limit", MaxBodyBytes + 1, 0},
	} {
		b, err := readAll(iotest.OneByteReader(strings.NewReader(body)), tc.size)
		if err != nil || string(b) != body {
			t.Fatalf("%s: %d bytes, %v", tc.name, len(b), err)
		}
		if tc.wantCap != 0 && cap(b) != tc.wantCap {
			t.Errorf("%s: a buffer of %d bytes, want %d", tc.name, cap(b), tc.wantCap)
		}
	}
	// A body that declares much and sends little holds little.
	b, err := readAll(io.MultiReader(strings.NewReader("{\"trigger\":"), iotest.ErrReader(io.ErrUnexpectedEOF)), 500_000)
	if string(b) != `{"trigger":` || !errors.Is(err, io.ErrUnexpectedEOF) || cap(b) > 512 {
		t.Fatalf("a body cut short: %q (a buffer of %d bytes), %v", b, cap(b), err)
	}
}

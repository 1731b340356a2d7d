package handlers

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/orderflow/orderflow/eventstore/eventstoretest"
)

// An answer the client does not take within its deadline ends with a
// write error (and net/http closes the connection); the next answer on a
// kept-alive connection gets a deadline of its own, so one answered long
// after the last is not cut short; a handler's own deadlines (the event
// feed's) reach the connection through the wrapper.
func TestAnswerWithin(t *testing.T) {
	const within = 200 * time.Millisecond
	big := strings.Repeat("x", 64<<20) // more than any socket buffer holds
	writeErr := make(chan error, 1)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /big", func(w http.ResponseWriter, r *http.Request) {
		_, err := io.WriteString(w, big)
		writeErr <- err
	})
	mux.HandleFunc("GET /small", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ok")
	})
	mux.HandleFunc("GET /none", func(http.ResponseWriter, *http.Request) {}) // net/http answers 200 itself
	mux.HandleFunc("GET /own", func(w http.ResponseWriter, r *http.Request) {
		if _, ok := w.(http.Flusher); !ok {
			t.Error("the wrapper hides Flush")
		}
		w.WriteHeader(http.StatusOK)
		// A deadline of the handler's own, past the wrapper's, holds.
		rc := http.NewResponseController(w)
		if err := rc.SetWriteDeadline(time.Now().Add(eventstoretest.Patience(30 * time.Second))); err != nil {
			t.Errorf("set the handler's own deadline: %v", err)
		}
		time.Sleep(2 * within) // not waiting for anything: letting the wrapper's deadline pass
		_, err := io.WriteString(w, "late but in time")
		if err == nil {
			err = rc.Flush()
		}
		writeErr <- err
	})
	srv := httptest.NewServer(AnswerWithin(within, mux))
	defer srv.Close()

	// A client that asks and never reads.
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.(*net.TCPConn).SetReadBuffer(4096); err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(conn, "GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
	select {
	case err := <-writeErr:
		if err == nil {
			t.Fatal("64 MB written to a client that reads nothing")
		}
	case <-time.After(eventstoretest.Patience(30 * time.Second)):
		t.Fatal("the answer to a client that reads nothing is still being written")
	}

	// Kept alive: a request long after the last answer is answered whole.
	conn2, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn2.Close()
	br := bufio.NewReader(conn2)
	for i, path := range []string{"/small", "/small", "/none"} {
		if i > 0 {
			time.Sleep(2 * within) // not waiting for anything: letting the last answer's deadline pass
		}
		fmt.Fprintf(conn2, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("answer %d (%s) on a kept-alive connection: %v", i+1, path, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if want := map[string]string{"/small": "ok", "/none": ""}[path]; string(b) != want || resp.StatusCode != http.StatusOK {
			t.Fatalf("answer %d (%s): %d %q", i+1, path, resp.StatusCode, b)
		}
	}

	resp, err := http.Get(srv.URL + "/own")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err := <-writeErr; err != nil || string(b) != "late but in time" {
		t.Fatalf("a handler with a deadline of its own: %q, %v", b, err)
	}
}

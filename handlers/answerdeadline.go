package handlers

import (
	"net/http"
	"time"
)

// AnswerTimeout is how long a client has to take an answer once the
// server starts to write it, unless a handler sets deadlines of its own
// (the event feed does, for each of its writes).
const AnswerTimeout = 30 * time.Second

// AnswerWithin gives every answer of h a write deadline of within from
// the moment it starts: a client that sends requests and never reads the
// answers (the OpenAPI document, say, is 300 KB; pipelined requests
// fill any socket buffer) is disconnected then. Without one the server
// has no write timeout (the event feed streams for as long as a dashboard
// watches), and each such client held a connection, of the few
// --max-connections allows, and a goroutine for as long as it kept its
// socket open. (net/http lifts the deadline once an answer is written,
// so the next request on the connection starts without one.)
func AnswerWithin(within time.Duration, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(&deadlineWriter{ResponseWriter: w, within: within}, r)
	})
}

// deadlineWriter sets its connection's write deadline when the answer
// starts. It passes Flush on and unwraps for http.ResponseController.
type deadlineWriter struct {
	http.ResponseWriter
	within  time.Duration
	started bool
}

func (w *deadlineWriter) start() {
	if !w.started {
		w.started = true
		// Not every connection has deadlines (an HTTP/2 stream may not).
		_ = http.NewResponseController(w.ResponseWriter).SetWriteDeadline(time.Now().Add(w.within))
	}
}

func (w *deadlineWriter) WriteHeader(code int) {
	if code >= 200 { // not an informational 1xx: the answer itself
		w.start()
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *deadlineWriter) Write(b []byte) (int, error) {
	w.start()
	return w.ResponseWriter.Write(b)
}

func (w *deadlineWriter) Flush() {
	w.start()
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *deadlineWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

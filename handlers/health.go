package handlers

import (
	"context"
	"encoding/json"
	"net/http"
	"time"
)

// Health serves the operational routes /healthz and /readyz.
type Health struct {
	// Ready reports whether the process can serve requests: nil once the
	// streams are open and NATS is connected.
	Ready func(ctx context.Context) error
	// Live, when set, reports whether the process can still do its work
	// without a restart: /healthz answers 503 when it does not, so that an
	// orchestrator restarts it.
	Live func() error
}

// Register adds the routes to mux.
func (h Health) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if h.Live != nil {
			if err := h.Live(); err != nil {
				writeProblem(w, Problem{Status: http.StatusServiceUnavailable, Title: "Needs a restart", Detail: err.Error(), Code: "unavailable"})
				return
			}
		}
		writeJSON(w, http.StatusOK, healthStatus{Status: "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := h.Ready(ctx); err != nil {
			writeProblem(w, Problem{Status: http.StatusServiceUnavailable, Title: "Not ready", Detail: err.Error(), Code: "unavailable"})
			return
		}
		writeJSON(w, http.StatusOK, healthStatus{Status: "ready"})
	})
}

// healthStatus is what /healthz ("ok") and /readyz ("ready") answer.
type healthStatus struct {
	Status string `json:"status"`
}

// Problem is an RFC 9457 problem document with orderflow's machine code.
type Problem struct {
	Type   string `json:"type,omitempty"`
	Status int    `json:"status"`
	Title  string `json:"title"`
	Detail string `json:"detail,omitempty"`
	Code   string `json:"code"`
	// Reason and Expected accompany trigger_rejected.
	Reason   string `json:"reason,omitempty"`
	Expected string `json:"expected,omitempty"`
	// OrderID and TriggerID name what a command that was refused or
	// whose outcome is open was about, where the request did not have to
	// name it: the order POST /v1/orders placed or tried to (its own id,
	// or one made for it), and the trigger POST /v1/orders/{id}/triggers
	// sent. A client answered 503 reads the order, or sends the trigger
	// again with this id; a rejection is recorded under the trigger id.
	OrderID   string `json:"order_id,omitempty"`
	TriggerID string `json:"trigger_id,omitempty"`
}

func writeProblem(w http.ResponseWriter, p Problem) {
	writeAs(w, "application/problem+json", p.Status, p)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	writeAs(w, "application/json", status, v)
}

// writeAs answers v as JSON of the given media type. Text goes as it is:
// "Wash & Fold", not "Wash \u0026 Fold" (the answers are never HTML, and
// say so: see NoSniff).
func writeAs(w http.ResponseWriter, mediaType string, status int, v any) {
	w.Header().Set("Content-Type", mediaType)
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

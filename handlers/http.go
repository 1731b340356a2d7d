package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/google/uuid"

	"github.com/orderflow/orderflow/domain"
	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/projections"
)

// MaxBodyBytes is the largest request body accepted; larger ones get 413.
const MaxBodyBytes = 1 << 20

// API serves the HTTP routes of DESIGN.md under /v1.
type API struct {
	Commands *Commands
	// Orders returns the orders read model in use (lists, board); it may
	// be swapped by a rebuild.
	Orders func() *projections.Orders
	// Rebuild, when set, rebuilds the read models from the streams
	// (POST /v1/projections/rebuild).
	Rebuild func(ctx context.Context) (RebuildReport, error)
	// ProjectionStatus, when set, answers GET /v1/projections.
	ProjectionStatus func(ctx context.Context) (ProjectionStatus, error)
	Log              *slog.Logger
}

func (api *API) reads() *projections.TenantView { return api.Commands.view() }

// Register adds every route to mux.
func (api *API) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/statuses", api.listStatuses)
	mux.HandleFunc("POST /v1/statuses", api.addStatus)
	mux.HandleFunc("PATCH /v1/statuses/{key}", api.updateStatus)
	mux.HandleFunc("DELETE /v1/statuses/{key}", api.archiveStatus)

	mux.HandleFunc("GET /v1/triggers", api.listTriggers)
	mux.HandleFunc("POST /v1/triggers", api.addTrigger)
	mux.HandleFunc("PATCH /v1/triggers/{key}", api.updateTrigger)
	mux.HandleFunc("DELETE /v1/triggers/{key}", api.archiveTrigger)

	mux.HandleFunc("GET /v1/workflows", api.listWorkflows)
	mux.HandleFunc("POST /v1/workflows", api.createWorkflow)
	mux.HandleFunc("GET /v1/workflows/{id}", api.getWorkflow)
	mux.HandleFunc("PATCH /v1/workflows/{id}", api.updateWorkflow)
	mux.HandleFunc("PUT /v1/workflows/{id}/steps", api.replaceSteps)
	mux.HandleFunc("POST /v1/workflows/{id}/steps", api.addStep)
	mux.HandleFunc("POST /v1/workflows/{id}/steps/move", api.moveStep)
	mux.HandleFunc("PATCH /v1/workflows/{id}/steps/{index}", api.changeStepTrigger)
	mux.HandleFunc("DELETE /v1/workflows/{id}/steps/{index}", api.removeStep)
	mux.HandleFunc("POST /v1/workflows/{id}/archive", api.archiveWorkflow)
	mux.HandleFunc("GET /v1/workflows/{id}/versions/{v}", api.workflowVersion)

	mux.HandleFunc("GET /v1/order-types", api.listOrderTypes)
	mux.HandleFunc("POST /v1/order-types", api.createOrderType)
	mux.HandleFunc("GET /v1/order-types/{id}", api.getOrderType)
	mux.HandleFunc("PATCH /v1/order-types/{id}", api.updateOrderType)
	mux.HandleFunc("POST /v1/order-types/{id}/archive", api.archiveOrderType)
	api.RegisterOrders(mux)
	mux.HandleFunc("POST /v1/projections/rebuild", api.rebuild)
	mux.HandleFunc("GET /v1/projections", api.projectionStatus)
}

// ProjectionStatus is where the orders read model stands.
type ProjectionStatus struct {
	StreamLast     uint64 `json:"stream_last"`
	Applied        uint64 `json:"applied"`
	Rebuilding     bool   `json:"rebuilding"`
	RebuildApplied uint64 `json:"rebuild_applied,omitempty"`
	RebuildTarget  uint64 `json:"rebuild_target,omitempty"`
}

func (api *API) projectionStatus(w http.ResponseWriter, r *http.Request) {
	if api.ProjectionStatus == nil {
		api.fail(w, r, fmt.Errorf("%w: projection status is not available", errUnavailable))
		return
	}
	st, err := api.ProjectionStatus(r.Context())
	if err != nil {
		api.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

// RebuildReport says what a rebuild did.
type RebuildReport struct {
	Events       uint64  `json:"events"`
	Seconds      float64 `json:"seconds"`
	EventsPerSec float64 `json:"events_per_second"`
	Applied      uint64  `json:"applied"`
}

func (api *API) rebuild(w http.ResponseWriter, r *http.Request) {
	if api.Rebuild == nil {
		api.fail(w, r, fmt.Errorf("%w: rebuild is not available", errUnavailable))
		return
	}
	rep, err := api.Rebuild(r.Context())
	if err != nil {
		api.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, rep)
}

// Request errors found before any command runs.
var (
	errBadRequest  = errors.New("bad request")
	errTooLarge    = errors.New("request body too large")
	errUnavailable = errors.New("not available yet")
)

// decodeBody reads one JSON object into v: at most MaxBodyBytes, no unknown
// fields, nothing after it, and a JSON content type when one is given.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return fmt.Errorf("%w: content type %q: send application/json", errBadRequest, ct)
		}
	}
	body := http.MaxBytesReader(w, r.Body, MaxBodyBytes)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		switch {
		case errors.As(err, &tooBig):
			return fmt.Errorf("%w: more than %d bytes", errTooLarge, MaxBodyBytes)
		case errors.Is(err, io.EOF):
			return fmt.Errorf("%w: empty body; send a JSON object", errBadRequest)
		}
		var fe *domain.FieldError
		if errors.As(err, &fe) {
			return err // an enum field with a value outside its set
		}
		return fmt.Errorf("%w: malformed JSON: %v", errBadRequest, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return fmt.Errorf("%w: more than %d bytes", errTooLarge, MaxBodyBytes)
		}
		return fmt.Errorf("%w: unexpected data after the JSON object", errBadRequest)
	}
	return nil
}

// problemFor is the one table from errors to HTTP problems.
func problemFor(err error) Problem {
	var rejected *TriggerRejectedError
	switch {
	case errors.As(err, &rejected):
		return Problem{Status: http.StatusConflict, Title: "Trigger rejected", Code: "trigger_rejected",
			Reason: string(rejected.Reason), Expected: rejected.Expected}
	case errors.Is(err, errTooLarge):
		return Problem{Status: http.StatusRequestEntityTooLarge, Title: "Payload too large", Code: "payload_too_large"}
	case errors.Is(err, errBadRequest), errors.Is(err, domain.ErrInvalid), errors.Is(err, eventstore.ErrInvalidToken),
		errors.Is(err, eventstore.ErrInvalidEnvelope):
		return Problem{Status: http.StatusBadRequest, Title: "Invalid argument", Code: "invalid_argument"}
	case errors.Is(err, errUnavailable), errors.Is(err, domain.ErrDefinitionMissing):
		return Problem{Status: http.StatusServiceUnavailable, Title: "Unavailable", Code: "unavailable"}
	case errors.Is(err, domain.ErrNotFound):
		return Problem{Status: http.StatusNotFound, Title: "Not found", Code: "not_found"}
	case errors.Is(err, ErrPreconditionFailed):
		return Problem{Status: http.StatusPreconditionFailed, Title: "Precondition failed", Code: "precondition_failed"}
	case errors.Is(err, domain.ErrDuplicate), errors.Is(err, domain.ErrInUse), errors.Is(err, domain.ErrArchived),
		errors.Is(err, domain.ErrConflict), errors.Is(err, eventstore.ErrConcurrency):
		return Problem{Status: http.StatusConflict, Title: "Conflict", Code: "conflict"}
	}
	return Problem{Status: http.StatusInternalServerError, Title: "Internal error", Code: "internal"}
}

func (api *API) fail(w http.ResponseWriter, r *http.Request, err error) {
	p := problemFor(err)
	p.Detail = err.Error()
	if p.Status >= 500 {
		api.log().Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		p.Detail = "internal error; see the server log"
	}
	writeProblem(w, p)
}

func (api *API) log() *slog.Logger {
	if api.Log != nil {
		return api.Log
	}
	return slog.Default()
}

// meta reads who is asking (X-Orderflow-Actor, default "api"), the
// correlation id (X-Request-ID, generated when absent) and If-Match.
func meta(r *http.Request) (Meta, error) {
	m := Meta{Actor: eventstore.Actor{Kind: eventstore.ActorUser, ID: "api"}, CorrelationID: r.Header.Get("X-Request-ID")}
	if a := strings.TrimSpace(r.Header.Get("X-Orderflow-Actor")); a != "" {
		if len(a) > 128 {
			return m, fmt.Errorf("%w: X-Orderflow-Actor longer than 128 bytes", errBadRequest)
		}
		m.Actor.ID = a
	}
	if len(m.CorrelationID) > 128 {
		return m, fmt.Errorf("%w: X-Request-ID longer than 128 bytes", errBadRequest)
	}
	if m.CorrelationID == "" {
		m.CorrelationID = uuid.NewString()
	}
	if im := strings.TrimSpace(r.Header.Get("If-Match")); im != "" && im != "*" {
		v, err := strconv.ParseUint(strings.Trim(strings.TrimPrefix(im, "W/"), `"`), 10, 64)
		if err != nil {
			return m, fmt.Errorf("%w: If-Match %q is not a version such as \"3\"", errBadRequest, im)
		}
		m.IfMatch = &v
	}
	return m, nil
}

func setETag(w http.ResponseWriter, version uint64) {
	w.Header().Set("ETag", `"`+strconv.FormatUint(version, 10)+`"`)
}

// pathToken reads a path value that must be a safe subject token.
func pathToken(r *http.Request, name, field string) (string, error) {
	v := r.PathValue(name)
	if err := eventstore.ValidateToken(field, v); err != nil {
		return "", err
	}
	return v, nil
}

func pathIndex(r *http.Request, name string) (int, error) {
	v := r.PathValue(name)
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%w: %s %q is not a step index (0, 1, 2 …)", errBadRequest, name, v)
	}
	return n, nil
}

type list[T any] struct {
	Items      []T    `json:"items"`
	NextCursor string `json:"next_cursor,omitempty"`
}

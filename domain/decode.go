package domain

import (
	"time"

	"github.com/orderflow/orderflow/internal/jsonfast"
)

// symbols interns the names that repeat from event to event: workflow
// ids, statuses, trigger keys, workers, order types.
var symbols = jsonfast.NewInterner(4096)

// Fast readers for the order events every projection, load and restart
// reads most: their data in exactly the form encoding/json writes it for
// these structs. Anything else is read by encoding/json (decodeAs), so the
// result never depends on which path read it.

func readPosition(r *jsonfast.Reader, p *Position) bool {
	return r.Lit(`{"workflow_id":`) && r.Sym(&p.WorkflowID, symbols) &&
		r.Lit(`,"workflow_version":`) && r.Uint(&p.WorkflowVersion) &&
		r.Lit(`,"step":`) && r.Int(&p.Step) &&
		r.Lit(`,"status":`) && r.Sym(&p.Status, symbols) && r.Lit(`}`)
}

// readTrigger reads the members a trigger's outcome starts with.
func readTrigger(r *jsonfast.Reader, trigger, id, worker *string) bool {
	return r.Lit(`{"trigger":`) && r.Sym(trigger, symbols) &&
		r.Lit(`,"trigger_id":`) && r.Str(id) &&
		r.Lit(`,"worker":`) && r.Sym(worker, symbols)
}

func readPlaced(r *jsonfast.Reader, e *OrderPlaced) bool {
	return r.Lit(`{"order_type_id":`) && r.Sym(&e.OrderTypeID, symbols) &&
		r.Lit(`,"to":`) && readPosition(r, &e.To) &&
		r.Lit(`,"workflows":`) && r.Strs(&e.Workflows, symbols) && r.Lit(`}`)
}

// readReport reads the members that end a trigger's outcome, when the
// worker app said them (TriggerReport), and the closing brace.
func readReport(r *jsonfast.Reader, note *string, at *time.Time) bool {
	if r.Lit(`,"note":`) && !r.Str(note) {
		return false
	}
	if r.Lit(`,"worker_occurred_at":`) && !r.Time(at) {
		return false
	}
	return r.Lit(`}`)
}

func readAdvanced(r *jsonfast.Reader, e *OrderAdvanced) bool {
	return readTrigger(r, &e.Trigger, &e.TriggerID, &e.Worker) &&
		r.Lit(`,"from":`) && readPosition(r, &e.From) &&
		r.Lit(`,"to":`) && readPosition(r, &e.To) && readReport(r, &e.Note, &e.WorkerOccurredAt)
}

func readCompleted(r *jsonfast.Reader, e *OrderCompleted) bool {
	return readTrigger(r, &e.Trigger, &e.TriggerID, &e.Worker) &&
		r.Lit(`,"from":`) && readPosition(r, &e.From) && readReport(r, &e.Note, &e.WorkerOccurredAt)
}

// fastOr decodes with read when data is in its form, else with
// encoding/json.
func fastOr[E Event](read func(*jsonfast.Reader, *E) bool) func([]byte) (Event, error) {
	return func(data []byte) (Event, error) {
		var e E
		r := jsonfast.NewReader(data)
		if read(&r, &e) && r.Done() {
			return e, nil
		}
		return decodeAs[E](data)
	}
}

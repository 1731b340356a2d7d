package handlers

import (
	"github.com/orderflow/orderflow/domain"
	"github.com/orderflow/orderflow/projections"
)

// ReadModelsJSON is one tenant's read models as the HTTP API shows them:
// what GET /v1/statuses, /v1/triggers, /v1/workflows, /v1/order-types,
// /v1/orders (every page) and /v1/board answer with, in the same shapes.
// replay --out writes it for a past instant.
type ReadModelsJSON struct {
	Statuses   []domain.Status  `json:"statuses"`
	Triggers   []domain.Trigger `json:"triggers"`
	Workflows  []WorkflowJSON   `json:"workflows"`
	OrderTypes []OrderTypeJSON  `json:"order_types"`
	Orders     []OrderJSON      `json:"orders"`
	Board      []BoardItem      `json:"board"`
}

// ReadModels renders tenant's read models (see ReadModelsJSON).
func ReadModels(defs *projections.Definitions, orders *projections.Orders, tenant string) ReadModelsJSON {
	c := &Commands{Defs: defs, Tenant: tenant}
	view := c.view()
	out := ReadModelsJSON{Workflows: workflowsJSON(view), OrderTypes: orderTypesJSON(view), Orders: []OrderJSON{},
		Board: BoardJSON(view, "", orders.Board(tenant, ""))}
	out.Statuses, _ = view.Statuses()
	out.Triggers, _ = view.Triggers()
	for after := ""; ; {
		rows, more := orders.List(tenant, projections.OrderFilter{}, after, maxLimit)
		for _, row := range rows {
			out.Orders = append(out.Orders, c.rowJSON(row))
		}
		if !more || len(rows) == 0 {
			return out
		}
		after = rows[len(rows)-1].ID
	}
}

// workflowsJSON renders the tenant's workflows (GET /v1/workflows).
func workflowsJSON(view *projections.TenantView) []WorkflowJSON {
	states := view.Workflows()
	items := make([]WorkflowJSON, 0, len(states))
	for _, s := range states {
		items = append(items, toWorkflowJSON(view, s))
	}
	return items
}

// orderTypesJSON renders the tenant's order types (GET /v1/order-types).
func orderTypesJSON(view *projections.TenantView) []OrderTypeJSON {
	states := view.OrderTypes()
	items := make([]OrderTypeJSON, 0, len(states))
	for _, s := range states {
		items = append(items, toOrderTypeJSON(s))
	}
	return items
}

// BoardJSON renders board cells (GET /v1/board) laid out and named from
// view (see projections.LayOutBoard).
func BoardJSON(view *projections.TenantView, workflowID string, cells []projections.BoardCell) []BoardItem {
	cells = projections.LayOutBoard(view, workflowID, cells)
	items := make([]BoardItem, 0, len(cells))
	for _, c := range cells {
		it := BoardItem{WorkflowID: c.WorkflowID, Status: c.Status, Count: c.Count, Held: c.Held, Left: c.Left, AverageStaySeconds: c.AverageStay.Seconds()}
		if !c.OldestEnteredAt.IsZero() {
			t := c.OldestEnteredAt
			it.OldestEnteredAt = &t
		}
		if w, ok := view.Workflow(c.WorkflowID); ok {
			it.WorkflowName = w.Name
		}
		if st, _, ok := view.Status(c.Status); ok {
			it.StatusName = st.Name
		}
		items = append(items, it)
	}
	return items
}

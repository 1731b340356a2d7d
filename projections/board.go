package projections

import (
	"cmp"
	"slices"

	"github.com/orderflow/orderflow/domain"
)

// LayOutBoard arranges board cells (Orders.Board) as a dashboard shows
// them: workflows by type (intake, production, fulfillment), then name;
// within a workflow, its stages in the order of its current steps. Every
// step of a live workflow is there, with a count of 0 when no order is in
// it, so that a board's columns do not come and go with the orders.
// Stages that are no longer among a workflow's steps (orders still on an
// older version, or an archived workflow) follow its steps, by status key.
// workflowID, when not empty, keeps that workflow's stages only.
func LayOutBoard(view *TenantView, workflowID string, cells []BoardCell) []BoardCell {
	type rank struct {
		typ   int
		name  string
		steps map[string]int // status → step index in the current version
	}
	ranks := map[string]rank{}
	have := make(map[StageKey]bool, len(cells))
	for _, c := range cells {
		have[c.StageKey] = true
	}
	out := slices.Clone(cells)
	for _, w := range view.Workflows() {
		r := rank{typ: slices.Index(domain.WorkflowTypes(), w.Type), name: w.Name, steps: map[string]int{}}
		for i, s := range w.Steps {
			r.steps[s.Status] = i
		}
		ranks[w.ID] = r
		if w.Archived || (workflowID != "" && w.ID != workflowID) {
			continue
		}
		for _, s := range w.Steps {
			if k := (StageKey{w.ID, s.Status}); !have[k] {
				out = append(out, BoardCell{StageKey: k})
				have[k] = true
			}
		}
	}
	unknown := rank{typ: len(domain.WorkflowTypes())}
	stepOf := func(c BoardCell) (rank, int) {
		r, ok := ranks[c.WorkflowID]
		if !ok {
			r = unknown
		}
		if i, ok := r.steps[c.Status]; ok {
			return r, i
		}
		return r, len(r.steps)
	}
	slices.SortFunc(out, func(a, b BoardCell) int {
		ra, ia := stepOf(a)
		rb, ib := stepOf(b)
		return cmp.Or(
			cmp.Compare(ra.typ, rb.typ),
			cmp.Compare(ra.name, rb.name),
			cmp.Compare(a.WorkflowID, b.WorkflowID),
			cmp.Compare(ia, ib),
			cmp.Compare(a.Status, b.Status))
	})
	return out
}

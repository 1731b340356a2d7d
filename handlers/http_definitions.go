package handlers

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/orderflow/orderflow/domain"
	"github.com/orderflow/orderflow/projections"
)

// Statuses.

type statusBody struct {
	Key      string           `json:"key"`
	Name     string           `json:"name"`
	Category *domain.Category `json:"category"`
}

// A PATCH body changes the fields it names; one left out, or given as
// null, stays as it is. (An order type's intake or production is taken
// away with "".) A body that names none is refused.
type statusPatch struct {
	Name     *string          `json:"name,omitempty"`
	Category *domain.Category `json:"category,omitempty"`
}

// nothingToChange refuses a PATCH body that names no field to change
// (fields, those it takes).
func nothingToChange(fields string) error {
	return fmt.Errorf("%w: nothing to change; send %s (a field given as null is left as it is)", errBadRequest, fields)
}

func (api *API) listStatuses(w http.ResponseWriter, r *http.Request) {
	view, err := api.readsAsOf(r)
	if err != nil {
		api.fail(w, r, err)
		return
	}
	items, version := view.Statuses()
	setETag(w, version)
	writeJSON(w, http.StatusOK, list[domain.Status]{Items: items})
}

func (api *API) getStatus(w http.ResponseWriter, r *http.Request) {
	getEntry(api, w, r, "status key", "status", (*projections.TenantView).Status)
}

// readsAsOf is the tenant's definitions now, or as they were at ?as_of=.
func (api *API) readsAsOf(r *http.Request) (*projections.TenantView, error) {
	asOf, err := asOfParam(r)
	if err != nil || asOf == nil {
		return api.reads(r), err
	}
	return api.cmds(r).DefinitionsAsOf(r.Context(), *asOf)
}

// getEntry answers one entry of the status or trigger library (lookUp),
// now or as of ?as_of=, with the library's version as ETag.
func getEntry[E any](api *API, w http.ResponseWriter, r *http.Request, field, what string, lookUp func(v *projections.TenantView, key string) (E, uint64, bool)) {
	key, err := pathToken(r, "key", field)
	if err != nil {
		api.fail(w, r, err)
		return
	}
	view, err := api.readsAsOf(r)
	if err != nil {
		api.fail(w, r, err)
		return
	}
	e, version, ok := lookUp(view, key)
	if !ok {
		api.fail(w, r, &domain.FieldError{Field: "key", Reason: "no " + what + " " + strconv.Quote(key), Kind: domain.ErrNotFound})
		return
	}
	setETag(w, version)
	writeJSON(w, http.StatusOK, e)
}

func (api *API) addStatus(w http.ResponseWriter, r *http.Request) {
	var b statusBody
	libraryRoute(api, w, r, "", &b, func(ctx context.Context, m Meta, _ string) (*domain.StatusLibrary, Created, error) {
		if b.Category == nil {
			return nil, Created{}, &domain.FieldError{Field: "category", Reason: "is required"}
		}
		return api.cmds(r).AddStatus(ctx, m, b.Key, b.Name, *b.Category)
	}, (*domain.StatusLibrary).Status, "/v1/statuses/")
}

func (api *API) updateStatus(w http.ResponseWriter, r *http.Request) {
	var p statusPatch
	libraryRoute(api, w, r, "status key", &p, func(ctx context.Context, m Meta, key string) (*domain.StatusLibrary, Created, error) {
		if p.Name == nil && p.Category == nil {
			return nil, Created{}, nothingToChange("name or category")
		}
		lib, err := api.cmds(r).UpdateStatus(ctx, m, key, p.Name, p.Category)
		return lib, Created{ID: key}, err
	}, (*domain.StatusLibrary).Status, "")
}

func (api *API) archiveStatus(w http.ResponseWriter, r *http.Request) {
	libraryRoute(api, w, r, "status key", nil, func(ctx context.Context, m Meta, key string) (*domain.StatusLibrary, Created, error) {
		lib, err := api.cmds(r).ArchiveStatus(ctx, m, key)
		return lib, Created{ID: key}, err
	}, (*domain.StatusLibrary).Status, "")
}

// libraryRoute runs one status or trigger library command: it reads the
// {key} path value (when keyField names it), the caller's meta and the
// body (when body is not nil), runs the command, and answers with the
// entry it touched and the library's version as ETag. A non-empty
// location makes it a creation: it takes an Idempotency-Key, and answers
// 201 Created with Location: location+key (Idempotent-Replayed for a
// resend).
func libraryRoute[L interface{ Version() uint64 }, E any](api *API, w http.ResponseWriter, r *http.Request, keyField string, body any,
	run func(ctx context.Context, m Meta, key string) (L, Created, error), entry func(L, string) (E, bool), location string) {
	var key string
	var err error
	if keyField != "" {
		key, err = pathToken(r, "key", keyField)
	}
	m, merr := meta(r)
	err = errors.Join(err, merr)
	if err == nil && body != nil {
		err = api.decodeBody(w, r, body)
	}
	if err != nil {
		api.fail(w, r, err)
		return
	}
	lib, cr, err := run(r.Context(), m, key)
	if err != nil {
		api.fail(w, r, err)
		return
	}
	e, _ := entry(lib, cr.ID)
	setETag(w, lib.Version())
	status := http.StatusOK
	if location != "" {
		w.Header().Set("Location", location+cr.ID)
		status = http.StatusCreated
	}
	setReplayed(w, cr.Replayed)
	writeJSON(w, status, e)
}

// Triggers.

type triggerBody struct {
	Key         string `json:"key"`
	Name        string `json:"name"`
	Description string `json:"description"`
}

type triggerPatch struct {
	Name        *string `json:"name,omitempty"`
	Description *string `json:"description,omitempty"`
}

func (api *API) listTriggers(w http.ResponseWriter, r *http.Request) {
	view, err := api.readsAsOf(r)
	if err != nil {
		api.fail(w, r, err)
		return
	}
	items, version := view.Triggers()
	setETag(w, version)
	writeJSON(w, http.StatusOK, list[domain.Trigger]{Items: items})
}

func (api *API) getTrigger(w http.ResponseWriter, r *http.Request) {
	getEntry(api, w, r, "trigger key", "trigger", (*projections.TenantView).Trigger)
}

func (api *API) addTrigger(w http.ResponseWriter, r *http.Request) {
	var b triggerBody
	libraryRoute(api, w, r, "", &b, func(ctx context.Context, m Meta, _ string) (*domain.TriggerLibrary, Created, error) {
		return api.cmds(r).AddTrigger(ctx, m, b.Key, b.Name, b.Description)
	}, (*domain.TriggerLibrary).Trigger, "/v1/triggers/")
}

func (api *API) updateTrigger(w http.ResponseWriter, r *http.Request) {
	var p triggerPatch
	libraryRoute(api, w, r, "trigger key", &p, func(ctx context.Context, m Meta, key string) (*domain.TriggerLibrary, Created, error) {
		if p.Name == nil && p.Description == nil {
			return nil, Created{}, nothingToChange("name or description")
		}
		lib, err := api.cmds(r).UpdateTrigger(ctx, m, key, p.Name, p.Description)
		return lib, Created{ID: key}, err
	}, (*domain.TriggerLibrary).Trigger, "")
}

func (api *API) archiveTrigger(w http.ResponseWriter, r *http.Request) {
	libraryRoute(api, w, r, "trigger key", nil, func(ctx context.Context, m Meta, key string) (*domain.TriggerLibrary, Created, error) {
		lib, err := api.cmds(r).ArchiveTrigger(ctx, m, key)
		return lib, Created{ID: key}, err
	}, (*domain.TriggerLibrary).Trigger, "")
}

// Workflows.

// StepJSON is a workflow's step as the API answers it.
type StepJSON struct {
	Status      string `json:"status"`
	StatusName  string `json:"status_name"`
	Trigger     string `json:"trigger"`
	TriggerName string `json:"trigger_name"`
}

// WorkflowJSON is a workflow as the API answers it (GET /v1/workflows/{id}).
type WorkflowJSON struct {
	ID                string              `json:"id"`
	Name              string              `json:"name"`
	Type              domain.WorkflowType `json:"type"`
	FulfillmentMethod *string             `json:"fulfillment_method"`
	Version           uint64              `json:"version"`
	Archived          bool                `json:"archived"`
	Steps             []StepJSON          `json:"steps"`
}

// toWorkflowJSON renders a workflow, its steps named from view.
func toWorkflowJSON(view *projections.TenantView, s domain.WorkflowState) WorkflowJSON {
	out := WorkflowJSON{ID: s.ID, Name: s.Name, Type: s.Type, Version: s.Version, Archived: s.Archived, Steps: []StepJSON{}}
	if !s.FulfillmentMethod.IsZero() {
		m := s.FulfillmentMethod.String()
		out.FulfillmentMethod = &m
	}
	for _, st := range s.Steps {
		j := StepJSON{Status: st.Status, Trigger: st.Trigger}
		if v, _, ok := view.Status(st.Status); ok {
			j.StatusName = v.Name
		}
		if v, _, ok := view.Trigger(st.Trigger); ok {
			j.TriggerName = v.Name
		}
		out.Steps = append(out.Steps, j)
	}
	return out
}

type workflowBody struct {
	Name              string                   `json:"name"`
	Type              *domain.WorkflowType     `json:"type"`
	FulfillmentMethod domain.FulfillmentMethod `json:"fulfillment_method"`
	Steps             []domain.Step            `json:"steps"`
}

type workflowPatch struct {
	Name              *string                   `json:"name,omitempty"`
	Type              *domain.WorkflowType      `json:"type,omitempty"`
	FulfillmentMethod *domain.FulfillmentMethod `json:"fulfillment_method,omitempty"`
}

type stepsBody struct {
	Steps []domain.Step `json:"steps"`
}

type stepBody struct {
	Status   string `json:"status"`
	Trigger  string `json:"trigger"`
	Position *int   `json:"position"`
}

type moveBody struct {
	From *int `json:"from"`
	To   *int `json:"to"`
}

type stepTriggerBody struct {
	Trigger string `json:"trigger"`
}

func (api *API) listWorkflows(w http.ResponseWriter, r *http.Request) {
	view, err := api.readsAsOf(r)
	if err != nil {
		api.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, list[WorkflowJSON]{Items: workflowsJSON(view)})
}

func (api *API) getWorkflow(w http.ResponseWriter, r *http.Request) {
	id, asOf, err := pathTokenAsOf(r, "id", "workflow id")
	if err != nil {
		api.fail(w, r, err)
		return
	}
	if asOf != nil {
		s, err := api.cmds(r).WorkflowAsOf(r.Context(), id, *asOf)
		if err != nil {
			api.fail(w, r, err)
			return
		}
		api.writeWorkflow(w, r, http.StatusOK, s)
		return
	}
	s, ok := api.reads(r).Workflow(id)
	if !ok {
		api.fail(w, r, &domain.FieldError{Field: "id", Reason: "no workflow " + strconv.Quote(id), Kind: domain.ErrNotFound})
		return
	}
	api.writeWorkflow(w, r, http.StatusOK, s)
}

func (api *API) writeWorkflow(w http.ResponseWriter, r *http.Request, status int, s domain.WorkflowState) {
	setETag(w, s.Version)
	writeJSON(w, status, toWorkflowJSON(api.reads(r), s))
}

func (api *API) createWorkflow(w http.ResponseWriter, r *http.Request) {
	var b workflowBody
	m, err := meta(r)
	if err == nil {
		err = api.decodeBody(w, r, &b)
	}
	if err == nil && b.Type == nil {
		err = &domain.FieldError{Field: "type", Reason: "is required"}
	}
	if err != nil {
		api.fail(w, r, err)
		return
	}
	s, cr, err := api.cmds(r).CreateWorkflow(r.Context(), m, b.Name, *b.Type, b.FulfillmentMethod, b.Steps)
	if err != nil {
		api.fail(w, r, err)
		return
	}
	w.Header().Set("Location", "/v1/workflows/"+s.ID)
	setReplayed(w, cr.Replayed)
	api.writeWorkflow(w, r, http.StatusCreated, s)
}

// workflowCommand runs edits on the workflow named in the path, after
// decoding the body into body (when not nil) and building the edits.
func (api *API) workflowCommand(w http.ResponseWriter, r *http.Request, body any, edits func() ([]WorkflowChange, error)) {
	id, err := pathToken(r, "id", "workflow id")
	m, merr := meta(r)
	err = errors.Join(err, merr)
	if err == nil && body != nil {
		err = api.decodeBody(w, r, body)
	}
	var changes []WorkflowChange
	if err == nil {
		changes, err = edits()
	}
	if err != nil {
		api.fail(w, r, err)
		return
	}
	s, err := api.cmds(r).ChangeWorkflow(r.Context(), m, id, changes...)
	if err != nil {
		api.fail(w, r, err)
		return
	}
	api.writeWorkflow(w, r, http.StatusOK, s)
}

func (api *API) updateWorkflow(w http.ResponseWriter, r *http.Request) {
	var p workflowPatch
	api.workflowCommand(w, r, &p, func() ([]WorkflowChange, error) {
		var edits []WorkflowChange
		if p.Name != nil {
			edits = append(edits, RenameWorkflow(*p.Name))
		}
		if p.Type != nil || p.FulfillmentMethod != nil {
			edits = append(edits, func(wf *domain.Workflow, c *Commands) error {
				cur := wf.State()
				typ, method := cur.Type, cur.FulfillmentMethod
				if p.Type != nil {
					typ = *p.Type
					if typ != domain.WorkflowFulfillment {
						method = domain.FulfillmentMethod{}
					}
				}
				if p.FulfillmentMethod != nil {
					method = *p.FulfillmentMethod
				}
				return wf.ChangeType(typ, method, c.view())
			})
		}
		if len(edits) == 0 {
			return nil, nothingToChange("name, type or fulfillment_method")
		}
		return edits, nil
	})
}

func (api *API) replaceSteps(w http.ResponseWriter, r *http.Request) {
	var b stepsBody
	api.workflowCommand(w, r, &b, func() ([]WorkflowChange, error) {
		return []WorkflowChange{ReplaceWorkflowSteps(b.Steps)}, nil
	})
}

func (api *API) addStep(w http.ResponseWriter, r *http.Request) {
	var b stepBody
	api.workflowCommand(w, r, &b, func() ([]WorkflowChange, error) {
		pos := -1
		if b.Position != nil {
			if *b.Position < 0 {
				return nil, &domain.FieldError{Field: "position", Reason: "must not be negative"}
			}
			pos = *b.Position
		}
		return []WorkflowChange{AddWorkflowStep(pos, domain.Step{Status: b.Status, Trigger: b.Trigger})}, nil
	})
}

func (api *API) moveStep(w http.ResponseWriter, r *http.Request) {
	var b moveBody
	api.workflowCommand(w, r, &b, func() ([]WorkflowChange, error) {
		if b.From == nil || b.To == nil {
			return nil, &domain.FieldError{Field: "from, to", Reason: "both are required"}
		}
		return []WorkflowChange{MoveWorkflowStep(*b.From, *b.To)}, nil
	})
}

func (api *API) changeStepTrigger(w http.ResponseWriter, r *http.Request) {
	var b stepTriggerBody
	api.workflowCommand(w, r, &b, func() ([]WorkflowChange, error) {
		i, err := pathIndex(r, "index")
		if err != nil {
			return nil, err
		}
		return []WorkflowChange{ChangeWorkflowStepTrigger(i, b.Trigger)}, nil
	})
}

func (api *API) removeStep(w http.ResponseWriter, r *http.Request) {
	api.workflowCommand(w, r, nil, func() ([]WorkflowChange, error) {
		i, err := pathIndex(r, "index")
		if err != nil {
			return nil, err
		}
		return []WorkflowChange{RemoveWorkflowStep(i)}, nil
	})
}

func (api *API) archiveWorkflow(w http.ResponseWriter, r *http.Request) {
	api.workflowCommand(w, r, nil, func() ([]WorkflowChange, error) {
		return []WorkflowChange{ArchiveWorkflow()}, nil
	})
}

// workflowVersion rebuilds a past version from the workflow's events.
func (api *API) workflowVersion(w http.ResponseWriter, r *http.Request) {
	id, err := pathToken(r, "id", "workflow id")
	if err != nil {
		api.fail(w, r, err)
		return
	}
	v, err := strconv.ParseUint(r.PathValue("v"), 10, 64)
	if err != nil || v == 0 || strconv.FormatUint(v, 10) != r.PathValue("v") { // "01" would name version 1 too
		api.fail(w, r, fmt.Errorf("%w: version %q is not 1, 2, 3 …", errBadRequest, r.PathValue("v")))
		return
	}
	s, err := api.cmds(r).WorkflowAt(r.Context(), id, v)
	if err != nil {
		api.fail(w, r, err)
		return
	}
	api.writeWorkflow(w, r, http.StatusOK, s)
}

// Order types.

// OrderTypeJSON is an order type as the API answers it (GET
// /v1/order-types/{id}).
type OrderTypeJSON struct {
	ID          string   `json:"id"`
	Name        string   `json:"name"`
	Intake      *string  `json:"intake"`
	Production  *string  `json:"production"`
	Fulfillment []string `json:"fulfillment"`
	Version     uint64   `json:"version"`
	Archived    bool     `json:"archived"`
}

func toOrderTypeJSON(s domain.OrderTypeState) OrderTypeJSON {
	out := OrderTypeJSON{ID: s.ID, Name: s.Name, Fulfillment: s.Fulfillment, Version: s.Version, Archived: s.Archived}
	if out.Fulfillment == nil {
		out.Fulfillment = []string{}
	}
	if s.Intake != "" {
		out.Intake = &s.Intake
	}
	if s.Production != "" {
		out.Production = &s.Production
	}
	return out
}

type orderTypeBody struct {
	Name        string   `json:"name"`
	Intake      *string  `json:"intake"`
	Production  *string  `json:"production"`
	Fulfillment []string `json:"fulfillment"`
}

type orderTypePatch struct {
	Name        *string   `json:"name,omitempty"`
	Intake      *string   `json:"intake,omitempty"`
	Production  *string   `json:"production,omitempty"`
	Fulfillment *[]string `json:"fulfillment,omitempty"`
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func (api *API) writeOrderType(w http.ResponseWriter, status int, s domain.OrderTypeState) {
	setETag(w, s.Version)
	writeJSON(w, status, toOrderTypeJSON(s))
}

func (api *API) listOrderTypes(w http.ResponseWriter, r *http.Request) {
	view, err := api.readsAsOf(r)
	if err != nil {
		api.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, list[OrderTypeJSON]{Items: orderTypesJSON(view)})
}

func (api *API) getOrderType(w http.ResponseWriter, r *http.Request) {
	id, asOf, err := pathTokenAsOf(r, "id", "order type id")
	if err != nil {
		api.fail(w, r, err)
		return
	}
	if asOf != nil {
		s, err := api.cmds(r).OrderTypeAsOf(r.Context(), id, *asOf)
		if err != nil {
			api.fail(w, r, err)
			return
		}
		api.writeOrderType(w, http.StatusOK, s)
		return
	}
	s, ok := api.reads(r).OrderType(id)
	if !ok {
		api.fail(w, r, &domain.FieldError{Field: "id", Reason: "no order type " + strconv.Quote(id), Kind: domain.ErrNotFound})
		return
	}
	api.writeOrderType(w, http.StatusOK, s)
}

func (api *API) createOrderType(w http.ResponseWriter, r *http.Request) {
	var b orderTypeBody
	m, err := meta(r)
	if err == nil {
		err = api.decodeBody(w, r, &b)
	}
	if err != nil {
		api.fail(w, r, err)
		return
	}
	s, cr, err := api.cmds(r).CreateOrderType(r.Context(), m, b.Name, deref(b.Intake), deref(b.Production), b.Fulfillment)
	if err != nil {
		api.fail(w, r, err)
		return
	}
	w.Header().Set("Location", "/v1/order-types/"+s.ID)
	setReplayed(w, cr.Replayed)
	api.writeOrderType(w, http.StatusCreated, s)
}

func (api *API) updateOrderType(w http.ResponseWriter, r *http.Request) {
	var p orderTypePatch
	id, err := pathToken(r, "id", "order type id")
	m, merr := meta(r)
	err = errors.Join(err, merr)
	if err == nil {
		err = api.decodeBody(w, r, &p)
	}
	if err == nil && p == (orderTypePatch{}) {
		err = nothingToChange("name, intake, production or fulfillment")
	}
	if err != nil {
		api.fail(w, r, err)
		return
	}
	s, err := api.cmds(r).UpdateOrderType(r.Context(), m, id, OrderTypePatch(p))
	if err != nil {
		api.fail(w, r, err)
		return
	}
	api.writeOrderType(w, http.StatusOK, s)
}

func (api *API) archiveOrderType(w http.ResponseWriter, r *http.Request) {
	id, err := pathToken(r, "id", "order type id")
	m, merr := meta(r)
	if err = errors.Join(err, merr); err != nil {
		api.fail(w, r, err)
		return
	}
	s, err := api.cmds(r).ArchiveOrderType(r.Context(), m, id)
	if err != nil {
		api.fail(w, r, err)
		return
	}
	api.writeOrderType(w, http.StatusOK, s)
}

package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/google/uuid"

	"github.com/orderflow/orderflow/domain"
	"github.com/orderflow/orderflow/handlers"
)

// process is a tenant's live definitions as one document: what
// `definitions show` prints and `definitions apply` reads. Archived
// definitions are not in it.
type process struct {
	Statuses   []processStatus    `json:"statuses"`
	Triggers   []processTrigger   `json:"triggers"`
	Workflows  []processWorkflow  `json:"workflows"`
	OrderTypes []processOrderType `json:"order_types"`
}

type processStatus struct {
	Key      string          `json:"key,omitempty"` // empty: derived from the name, as the API does
	Name     string          `json:"name"`
	Category domain.Category `json:"category"`
}

type processTrigger struct {
	Key         string `json:"key,omitempty"` // empty: derived from the name
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
}

type processWorkflow struct {
	ID                string                   `json:"id,omitempty"` // empty: the live workflow of that name, or the id a new one gets
	Name              string                   `json:"name"`
	Type              domain.WorkflowType      `json:"type"`
	FulfillmentMethod domain.FulfillmentMethod `json:"fulfillment_method,omitzero"`
	Steps             []domain.Step            `json:"steps"`
}

type processOrderType struct {
	ID          string   `json:"id,omitempty"` // empty: the live order type of that name, or the id a new one gets
	Name        string   `json:"name"`
	Intake      string   `json:"intake,omitempty"`
	Production  string   `json:"production,omitempty"`
	Fulfillment []string `json:"fulfillment"`
}

// liveDefinitions are a tenant's definitions as the API answers them,
// with the versions the changes' If-Match carry.
type liveDefinitions struct {
	statuses   []domain.Status
	triggers   []domain.Trigger
	workflows  []handlers.WorkflowJSON
	orderTypes []handlers.OrderTypeJSON
	versions   map[string]uint64 // by versionOf's names
}

// definitionsCmd: orderflow definitions show|apply.
func definitionsCmd(ctx context.Context, args []string, stdout, stderr io.Writer, env func(string) (string, bool)) error {
	if len(args) == 0 || args[0] != "show" && args[0] != "apply" {
		fmt.Fprintln(stderr, "Usage: orderflow definitions show [flags]\n       orderflow definitions apply --file F [flags]")
		return errors.New("want: definitions show, or definitions apply --file F")
	}
	if args[0] == "show" {
		fs := commandFlags("definitions show", "Usage: orderflow definitions show [flags]\n\n"+
			"Print the live statuses, triggers, workflows and order types as one JSON document, the form 'definitions apply' reads (with --as-of, as they were then).", stderr)
		server := serverFlags(fs)
		asOf := fs.String("as-of", "", "print the definitions as they were at this time (RFC 3339, as GET /v1/workflows?as_of= takes); 'definitions apply --prune' puts them back")
		if err := parseFlags(fs, args[1:], env); err != nil {
			return err
		}
		if err := noArguments(fs); err != nil {
			return err
		}
		query := ""
		if *asOf != "" {
			query = "?as_of=" + url.QueryEscape(*asOf) // the server says what it takes
		}
		live, err := readDefinitions(ctx, server, query)
		if err != nil {
			return err
		}
		return printProcess(stdout, live.process())
	}
	fs := commandFlags("definitions apply", "Usage: orderflow definitions apply --file F [flags]\n\n"+
		"Make the server's definitions match a document in the form 'definitions show' prints: add what is missing, change what differs. "+
		"What the document leaves out stays as it is, unless --prune archives it.", stderr)
	server := serverFlags(fs)
	actorFlag(fs, server)
	file := fs.String("file", "", "the document to apply (- for standard input)")
	dryRun := fs.Bool("dry-run", false, "print the changes it would make, and make none")
	prune := fs.Bool("prune", false, "also archive the live definitions the document leaves out (order types, then workflows, then statuses and triggers; an archived key or id is never taken again)")
	if err := parseFlags(fs, args[1:], env); err != nil {
		return err
	}
	if err := noArguments(fs); err != nil {
		return err
	}
	if *file == "" {
		return errors.New("--file is required")
	}
	want, err := readProcess(*file)
	if err != nil {
		return err
	}
	live, err := readDefinitions(ctx, server, "")
	if err != nil {
		return err
	}
	changes, err := planDefinitions(want, live, *prune)
	if err != nil {
		return err
	}
	if len(changes) == 0 {
		fmt.Fprintln(stdout, "nothing to change")
		return nil
	}
	if *dryRun {
		for _, c := range changes {
			fmt.Fprintln(stdout, "would "+c.say)
		}
		fmt.Fprintf(stdout, "%d change(s); none made (--dry-run)\n", len(changes))
		return nil
	}
	for i, c := range changes {
		if err := c.send(ctx, server, live.versions); err != nil {
			return fmt.Errorf("%s: %w (%d of %d change(s) made; run it again to make the rest)", c.say, err, i, len(changes))
		}
		verb, rest, _ := strings.Cut(c.say, " ")
		fmt.Fprintln(stdout, pastTense[verb]+" "+rest)
	}
	fmt.Fprintf(stdout, "%d change(s) made\n", len(changes))
	return nil
}

// printProcess writes a definitions document, indented, its text as it
// was given ("Wash & Fold", not "Wash \u0026 Fold": the file is for
// people to edit).
func printProcess(w io.Writer, p process) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(p)
}

// readProcess reads a definitions document from path (- for stdin),
// refusing fields it does not know.
func readProcess(path string) (process, error) {
	var b []byte
	var err error
	if path == "-" {
		b, err = io.ReadAll(os.Stdin)
	} else {
		b, err = os.ReadFile(path)
	}
	if err != nil {
		return process{}, err
	}
	p, err := parseProcess(b)
	if err != nil {
		return process{}, fmt.Errorf("%s: %w", path, err)
	}
	return p, nil
}

// parseProcess reads one definitions document, refusing fields it does
// not know, and says what is wrong in JSON's words.
func parseProcess(b []byte) (process, error) {
	var p process
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return process{}, handlers.JSONError(&p, err, "the document")
	}
	if dec.More() {
		return process{}, errors.New("more than one JSON document")
	}
	return p, nil
}

// readDefinitions reads the tenant's definitions from a running orderflow
// as they stood at one moment. The four lists are read one after another,
// so it reads them again until a second read finds every version as the
// first did: nothing changed between the two, so the first shows the
// definitions as they stood when it ended (no workflow in it names a
// status created after the statuses were read). query is added to each
// list's path (?as_of=).
func readDefinitions(ctx context.Context, server *apiServer, query string) (*liveDefinitions, error) {
	live, err := readDefinitionsOnce(ctx, server, query)
	for range 10 {
		if err != nil {
			return nil, err
		}
		var again *liveDefinitions
		if again, err = readDefinitionsOnce(ctx, server, query); err == nil && maps.Equal(again.versions, live.versions) {
			return live, nil
		}
		live = again
	}
	if err != nil {
		return nil, err
	}
	return nil, errors.New("the definitions changed each time they were read: try again when they are not being edited")
}

// readDefinitionsOnce reads the four lists of definitions in turn.
func readDefinitionsOnce(ctx context.Context, server *apiServer, query string) (*liveDefinitions, error) {
	live := &liveDefinitions{versions: map[string]uint64{}}
	get := func(path string, into any) (http.Header, error) {
		b, h, _, err := apiRoundTrips(ctx, server, "GET", path+query, nil, nil, true)
		if err != nil {
			return nil, err
		}
		var res struct {
			Items json.RawMessage `json:"items"`
		}
		if err := json.Unmarshal(b, &res); err != nil {
			return nil, fmt.Errorf("GET %s: %w", path, err)
		}
		return h, json.Unmarshal(res.Items, into)
	}
	for _, lib := range []struct {
		name string
		into any
	}{{"statuses", &live.statuses}, {"triggers", &live.triggers}} {
		h, err := get("/v1/"+lib.name, lib.into)
		if err != nil {
			return nil, err
		}
		if live.versions[lib.name], err = etagVersion(h); err != nil {
			return nil, fmt.Errorf("GET /v1/%s: %w", lib.name, err)
		}
	}
	if _, err := get("/v1/workflows", &live.workflows); err != nil {
		return nil, err
	}
	if _, err := get("/v1/order-types", &live.orderTypes); err != nil {
		return nil, err
	}
	for _, w := range live.workflows {
		live.versions[versionOf("workflow", w.ID)] = w.Version
	}
	for _, o := range live.orderTypes {
		live.versions[versionOf("order type", o.ID)] = o.Version
	}
	return live, nil
}

// orderTypesUsing lists the live order types that have the workflow in
// a slot.
func (live *liveDefinitions) orderTypesUsing(workflowID string) []string {
	var ids []string
	for _, o := range live.orderTypes {
		if !o.Archived && (deref(o.Intake) == workflowID || deref(o.Production) == workflowID || slices.Contains(o.Fulfillment, workflowID)) {
			ids = append(ids, o.ID)
		}
	}
	return ids
}

// versionOf names the version a change of a workflow or an order type
// carries in If-Match; the status and trigger libraries' are "statuses"
// and "triggers".
func versionOf(kind, id string) string { return kind + " " + id }

// etagVersion reads the version an answer's ETag holds.
func etagVersion(h http.Header) (uint64, error) {
	v, err := strconv.ParseUint(strings.Trim(h.Get("ETag"), `"`), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("ETag %q is not a version", h.Get("ETag"))
	}
	return v, nil
}

// process is the live definitions as a document: archived ones left out.
func (live *liveDefinitions) process() process {
	p := process{Statuses: []processStatus{}, Triggers: []processTrigger{}, Workflows: []processWorkflow{}, OrderTypes: []processOrderType{}}
	for _, s := range live.statuses {
		if !s.Archived {
			p.Statuses = append(p.Statuses, processStatus{Key: s.Key, Name: s.Name, Category: s.Category})
		}
	}
	for _, t := range live.triggers {
		if !t.Archived {
			p.Triggers = append(p.Triggers, processTrigger{Key: t.Key, Name: t.Name, Description: t.Description})
		}
	}
	for _, w := range live.workflows {
		if !w.Archived {
			method, _ := domain.ParseFulfillmentMethod(deref(w.FulfillmentMethod))
			pw := processWorkflow{ID: w.ID, Name: w.Name, Type: w.Type, FulfillmentMethod: method, Steps: []domain.Step{}}
			for _, s := range w.Steps {
				pw.Steps = append(pw.Steps, domain.Step{Status: s.Status, Trigger: s.Trigger})
			}
			p.Workflows = append(p.Workflows, pw)
		}
	}
	for _, o := range live.orderTypes {
		if !o.Archived {
			p.OrderTypes = append(p.OrderTypes, processOrderType{ID: o.ID, Name: o.Name, Intake: deref(o.Intake), Production: deref(o.Production),
				Fulfillment: o.Fulfillment})
		}
	}
	return p
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// pastTense is what the first word of a change's say becomes once it is
// made.
var pastTense = map[string]string{"add": "added", "change": "changed", "create": "created", "archive": "archived"}

// definitionChange is one request of an apply.
type definitionChange struct {
	say     string // what it does, a verb of pastTense first
	method  string
	path    string
	body    any
	version string // whose version its If-Match carries (versionOf), "" for none
	create  bool   // sent with an Idempotency-Key, so a resend creates one
	kind    string // for a creation of a workflow or an order type: whose version the answer gives
}

// send makes the change, with If-Match holding the version it was
// planned on (or that the change before it left), and keeps the version
// its answer names.
func (c definitionChange) send(ctx context.Context, server *apiServer, versions map[string]uint64) error {
	hdr := http.Header{}
	if c.version != "" {
		hdr.Set("If-Match", strconv.Quote(strconv.FormatUint(versions[c.version], 10)))
	}
	if c.create {
		hdr.Set("Idempotency-Key", uuid.Must(uuid.NewV7()).String())
	}
	b, answer, _, err := apiRoundTrips(ctx, server, c.method, c.path, c.body, hdr, c.create)
	if err != nil {
		var pe *problemError
		if errors.As(err, &pe) && pe.status == http.StatusPreconditionFailed {
			return fmt.Errorf("%w: changed by someone else since it was read", err)
		}
		return err
	}
	v, err := etagVersion(answer)
	if err != nil {
		return nil // the change is made; nothing after it needs this version
	}
	switch {
	case c.kind != "":
		var created struct {
			ID string `json:"id"`
		}
		if json.Unmarshal(b, &created) == nil {
			versions[versionOf(c.kind, created.ID)] = v
		}
	case c.version != "":
		versions[c.version] = v
	}
	return nil
}

// planDefinitions lists the requests that make live match want, in an
// order the API accepts: statuses and triggers before the workflows that
// use them, workflows before the order types that name them. With prune
// it then archives the live definitions want leaves out, in the other
// order: order types before the workflows they name, workflows before
// the statuses and triggers they use. It refuses, before anything
// changes, a document that lacks a required field, names one definition
// twice, changes an archived one, gives a new workflow or order type an
// id the server would not give it, or changes the type of a workflow a
// live order type uses; the API judges the rest when the changes are
// sent.
func planDefinitions(want process, live *liveDefinitions, prune bool) ([]definitionChange, error) {
	p := &planner{live: live, seen: map[string]bool{}}
	p.statuses(want.Statuses)
	p.triggers(want.Triggers)
	p.workflows(want.Workflows)
	p.orderTypes(want.OrderTypes)
	if err := errors.Join(p.errs...); err != nil {
		return nil, fmt.Errorf("nothing changed: %w", err)
	}
	if prune {
		p.prune()
	}
	return p.changes, nil
}

// planner gathers an apply's changes, and what is wrong with its
// document.
type planner struct {
	live    *liveDefinitions
	changes []definitionChange
	errs    []error
	seen    map[string]bool // "kind id" of every definition the document names
}

func (p *planner) add(c definitionChange) { p.changes = append(p.changes, c) }

func (p *planner) fail(err error) { p.errs = append(p.errs, err) }

// lacks reports a required field that the entry at where lacks (left
// out, it would read as a change to nothing).
func (p *planner) lacks(where, field string, lacking bool) bool {
	if lacking {
		p.fail(fmt.Errorf("%s: %s is required", where, field))
	}
	return lacking
}

// once reports whether the document names the definition for the first
// time.
func (p *planner) once(kind, id string) bool {
	if p.seen[kind+" "+id] {
		p.fail(fmt.Errorf("%s %q is in the document twice", kind, id))
		return false
	}
	p.seen[kind+" "+id] = true
	return true
}

// fieldEdits are the fields of one PATCH that differ, and what the
// change says of each.
type fieldEdits struct {
	body map[string]any
	says []string
}

func (e *fieldEdits) set(field string, value any, say string) {
	if e.body == nil {
		e.body = map[string]any{}
	}
	e.body[field] = value
	e.says = append(e.says, say)
}

// patch adds the PATCH of a definition (kind and id) at path when its
// edits change anything; version is whose version its If-Match carries.
func (p *planner) patch(kind, id, path, version string, edits fieldEdits) {
	if len(edits.body) > 0 {
		p.add(definitionChange{say: "change " + kind + " " + id + ": " + strings.Join(edits.says, ", "),
			method: "PATCH", path: path, body: edits.body, version: version})
	}
}

func (p *planner) statuses(want []processStatus) {
	statuses := map[string]domain.Status{}
	for _, s := range p.live.statuses {
		statuses[s.Key] = s
	}
	for i, s := range want {
		if where := fmt.Sprintf("statuses[%d]", i); p.lacks(where, "name", s.Name == "") || p.lacks(where, "category", s.Category.IsZero()) {
			continue
		}
		key := cmp.Or(s.Key, domain.DeriveKey(s.Name))
		if !p.once("status", key) {
			continue
		}
		cur, ok := statuses[key]
		switch {
		case !ok:
			p.add(definitionChange{say: fmt.Sprintf("add status %s (%q, %s)", key, s.Name, s.Category),
				method: "POST", path: "/v1/statuses", body: map[string]any{"key": key, "name": s.Name, "category": s.Category},
				version: "statuses", create: true})
		case cur.Archived:
			p.fail(fmt.Errorf("status %s is archived, and an archived key is not taken again: give the status another key", key))
		default:
			var edits fieldEdits
			if cur.Name != s.Name {
				edits.set("name", s.Name, fmt.Sprintf("name %q → %q", cur.Name, s.Name))
			}
			if cur.Category != s.Category {
				edits.set("category", s.Category, fmt.Sprintf("category %s → %s", cur.Category, s.Category))
			}
			p.patch("status", key, "/v1/statuses/"+url.PathEscape(key), "statuses", edits)
		}
	}
}

func (p *planner) triggers(want []processTrigger) {
	triggers := map[string]domain.Trigger{}
	for _, t := range p.live.triggers {
		triggers[t.Key] = t
	}
	for i, t := range want {
		if p.lacks(fmt.Sprintf("triggers[%d]", i), "name", t.Name == "") {
			continue
		}
		key := cmp.Or(t.Key, domain.DeriveKey(t.Name))
		if !p.once("trigger", key) {
			continue
		}
		cur, ok := triggers[key]
		switch {
		case !ok:
			p.add(definitionChange{say: fmt.Sprintf("add trigger %s (%q)", key, t.Name),
				method: "POST", path: "/v1/triggers", body: map[string]any{"key": key, "name": t.Name, "description": t.Description},
				version: "triggers", create: true})
		case cur.Archived:
			p.fail(fmt.Errorf("trigger %s is archived, and an archived key is not taken again: give the trigger another key", key))
		default:
			var edits fieldEdits
			if cur.Name != t.Name {
				edits.set("name", t.Name, fmt.Sprintf("name %q → %q", cur.Name, t.Name))
			}
			if cur.Description != t.Description {
				edits.set("description", t.Description, "description")
			}
			p.patch("trigger", key, "/v1/triggers/"+url.PathEscape(key), "triggers", edits)
		}
	}
}

func (p *planner) workflows(want []processWorkflow) {
	workflows := map[string]handlers.WorkflowJSON{}
	workflowIDs := newDefinitionIDs("workflow")
	for _, w := range p.live.workflows {
		workflows[w.ID] = w
		workflowIDs.live(w.ID, w.Name, w.Archived)
	}
	for i, w := range want {
		if where := fmt.Sprintf("workflows[%d]", i); p.lacks(where, "name", w.Name == "") || p.lacks(where, "type", w.Type.IsZero()) {
			continue
		}
		id, err := workflowIDs.pick(w.ID, w.Name)
		if err != nil {
			p.fail(err)
			continue
		}
		if !p.once("workflow", id) {
			continue
		}
		cur, ok := workflows[id]
		switch {
		case !ok:
			body := map[string]any{"name": w.Name, "type": w.Type, "steps": w.Steps}
			if !w.FulfillmentMethod.IsZero() {
				body["fulfillment_method"] = w.FulfillmentMethod
			}
			p.add(definitionChange{say: fmt.Sprintf("create workflow %s (%q, %s, %s)", id, w.Name, w.Type, stepsSaid(w.Steps)),
				method: "POST", path: "/v1/workflows", body: body, create: true, kind: "workflow"})
		case cur.Archived:
			p.fail(fmt.Errorf("workflow %s is archived, and an archived workflow does not change: leave its id out to create a new one", id))
		default:
			path := "/v1/workflows/" + url.PathEscape(id)
			var edits fieldEdits
			if cur.Name != w.Name {
				edits.set("name", w.Name, fmt.Sprintf("name %q → %q", cur.Name, w.Name))
			}
			if cur.Type != w.Type {
				// The API refuses it while a live order type has the
				// workflow in a slot, and order types change after
				// workflows: say so now, before anything changes.
				if users := p.live.orderTypesUsing(id); len(users) > 0 {
					p.fail(fmt.Errorf("workflow %s changes type (%s → %s) while live order types use it (%s): first apply a document that takes it out of them",
						id, cur.Type, w.Type, strings.Join(users, ", ")))
					continue
				}
				edits.set("type", w.Type, fmt.Sprintf("type %s → %s", cur.Type, w.Type))
			}
			if method := deref(cur.FulfillmentMethod); method != w.FulfillmentMethod.String() {
				edits.set("fulfillment_method", w.FulfillmentMethod, fmt.Sprintf("fulfillment_method %s → %s", dash(method), dash(w.FulfillmentMethod.String())))
			}
			p.patch("workflow", id, path, versionOf("workflow", id), edits)
			steps := make([]domain.Step, len(cur.Steps))
			for i, s := range cur.Steps {
				steps[i] = domain.Step{Status: s.Status, Trigger: s.Trigger}
			}
			if !slices.Equal(steps, w.Steps) {
				p.add(definitionChange{say: fmt.Sprintf("change workflow %s: steps %s → %s", id, stepsSaid(steps), stepsSaid(w.Steps)),
					method: "PUT", path: path + "/steps", body: map[string]any{"steps": w.Steps}, version: versionOf("workflow", id)})
			}
		}
	}
}

func (p *planner) orderTypes(want []processOrderType) {
	orderTypes := map[string]handlers.OrderTypeJSON{}
	orderTypeIDs := newDefinitionIDs("order type")
	for _, o := range p.live.orderTypes {
		orderTypes[o.ID] = o
		orderTypeIDs.live(o.ID, o.Name, o.Archived)
	}
	for i, o := range want {
		if p.lacks(fmt.Sprintf("order_types[%d]", i), "name", o.Name == "") {
			continue
		}
		id, err := orderTypeIDs.pick(o.ID, o.Name)
		if err != nil {
			p.fail(err)
			continue
		}
		if !p.once("order type", id) {
			continue
		}
		fulfillment := o.Fulfillment
		if fulfillment == nil {
			fulfillment = []string{}
		}
		cur, ok := orderTypes[id]
		switch {
		case !ok:
			body := map[string]any{"name": o.Name, "fulfillment": fulfillment}
			if o.Intake != "" {
				body["intake"] = o.Intake
			}
			if o.Production != "" {
				body["production"] = o.Production
			}
			p.add(definitionChange{say: fmt.Sprintf("create order type %s (%q: %s)", id, o.Name, routeSaid(o.Intake, o.Production, fulfillment)),
				method: "POST", path: "/v1/order-types", body: body, create: true, kind: "order type"})
		case cur.Archived:
			p.fail(fmt.Errorf("order type %s is archived, and an archived order type does not change: leave its id out to create a new one", id))
		default:
			var edits fieldEdits
			if cur.Name != o.Name {
				edits.set("name", o.Name, fmt.Sprintf("name %q → %q", cur.Name, o.Name))
			}
			if deref(cur.Intake) != o.Intake {
				edits.set("intake", o.Intake, fmt.Sprintf("intake %s → %s", dash(deref(cur.Intake)), dash(o.Intake)))
			}
			if deref(cur.Production) != o.Production {
				edits.set("production", o.Production, fmt.Sprintf("production %s → %s", dash(deref(cur.Production)), dash(o.Production)))
			}
			if !slices.Equal(cur.Fulfillment, fulfillment) {
				edits.set("fulfillment", fulfillment, fmt.Sprintf("fulfillment [%s] → [%s]",
					strings.Join(cur.Fulfillment, ", "), strings.Join(fulfillment, ", ")))
			}
			p.patch("order type", id, "/v1/order-types/"+url.PathEscape(id), versionOf("order type", id), edits)
		}
	}
}

// prune archives the live definitions the document does not name.
func (p *planner) prune() {
	archive := func(kind, id, name, method, path, version string) {
		if !p.seen[kind+" "+id] {
			p.add(definitionChange{say: fmt.Sprintf("archive %s %s (%q)", kind, id, name), method: method, path: path, version: version})
		}
	}
	for _, o := range p.live.orderTypes {
		if !o.Archived {
			archive("order type", o.ID, o.Name, "POST", "/v1/order-types/"+url.PathEscape(o.ID)+"/archive", versionOf("order type", o.ID))
		}
	}
	for _, w := range p.live.workflows {
		if !w.Archived {
			archive("workflow", w.ID, w.Name, "POST", "/v1/workflows/"+url.PathEscape(w.ID)+"/archive", versionOf("workflow", w.ID))
		}
	}
	for _, st := range p.live.statuses {
		if !st.Archived {
			archive("status", st.Key, st.Name, "DELETE", "/v1/statuses/"+url.PathEscape(st.Key), "statuses")
		}
	}
	for _, t := range p.live.triggers {
		if !t.Archived {
			archive("trigger", t.Key, t.Name, "DELETE", "/v1/triggers/"+url.PathEscape(t.Key), "triggers")
		}
	}
}

// definitionIDs foretells the ids of a document's workflows or order
// types: the id an entry gives, else the live one of its name, else the
// id the server will give a new one.
type definitionIDs struct {
	kind  string
	names map[string]string // the names of the live ones (archived ones left out) and the document's new ones, by id
	taken map[string]bool   // every id the server has, archived ones included, and those the document's new ones will get
}

func newDefinitionIDs(kind string) *definitionIDs {
	return &definitionIDs{kind: kind, names: map[string]string{}, taken: map[string]bool{}}
}

// live records one the server has.
func (d *definitionIDs) live(id, name string, archived bool) {
	d.taken[id] = true
	if !archived {
		d.names[id] = name
	}
}

// pick is the id an entry with id (maybe "") and name stands for. A new
// one gets the id the server makes from its name, past the ids taken
// (those of the document's new ones before it included), so its given id
// must be that one.
func (d *definitionIDs) pick(id, name string) (string, error) {
	if id == "" {
		var named []string
		for live, n := range d.names {
			if domain.SameName(n, name) {
				named = append(named, live)
			}
		}
		switch slices.Sort(named); len(named) {
		case 0:
		case 1:
			return named[0], nil
		default: // order types may share a name
			return "", fmt.Errorf("the %ss %s are named %q: give the id of the one meant", d.kind, strings.Join(named, " and "), name)
		}
	}
	if id != "" && d.taken[id] {
		return id, nil
	}
	made := handlers.DefinitionID(name, strings.ReplaceAll(d.kind, " ", "_"), func(id string) bool { return d.taken[id] })
	if id != "" && id != made {
		return "", fmt.Errorf("there is no %s %s, and a new one named %q gets the id %s (made from its name): use that id, or leave it out", d.kind, id, name, made)
	}
	d.taken[made], d.names[made] = true, name // another entry of the name is this one again
	return made, nil
}

// stepsSaid shows steps as status←trigger pairs, in order.
func stepsSaid(steps []domain.Step) string {
	parts := make([]string, len(steps))
	for i, s := range steps {
		parts[i] = s.Status + "←" + s.Trigger
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

// routeSaid shows an order type's workflows in the order they run.
func routeSaid(intake, production string, fulfillment []string) string {
	var parts []string
	for _, id := range []string{intake, production} {
		if id != "" {
			parts = append(parts, id)
		}
	}
	if len(fulfillment) > 0 {
		parts = append(parts, strings.Join(fulfillment, " | "))
	}
	return strings.Join(parts, " → ")
}

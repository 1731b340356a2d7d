package domain_test

import (
	"errors"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/orderflow/orderflow/domain"
)

// catalog is an in-memory Catalog, WorkflowNames, WorkflowLookup and usage
// for rule tests.
type catalog struct {
	statuses  map[string]bool // key → archived
	triggers  map[string]bool
	workflows map[string]domain.WorkflowState
	usedBy    map[string][]string // status/trigger key or workflow id → users
}

func newCatalog() *catalog {
	return &catalog{
		statuses:  map[string]bool{"pending_pickup": false, "received": false, "washing": false, "drying": false, "old": true},
		triggers:  map[string]bool{"picked_up": false, "items_tagged": false, "wash_done": false, "dry_done": false, "retired": true},
		workflows: map[string]domain.WorkflowState{},
		usedBy:    map[string][]string{},
	}
}

func (c *catalog) LookupStatus(k string) (bool, bool) { a, ok := c.statuses[k]; return ok, a }
func (c *catalog) LookupTrigger(k string) (bool, bool) {
	a, ok := c.triggers[k]
	return ok, a
}
func (c *catalog) LiveWorkflowNamed(name, except string) (string, string) {
	for id, w := range c.workflows {
		if id != except && !w.Archived && domain.SameName(w.Name, name) {
			return id, w.Name
		}
	}
	return "", ""
}
func (c *catalog) LookupWorkflow(id string) (domain.WorkflowType, bool, bool) {
	w, ok := c.workflows[id]
	return w.Type, ok, w.Archived
}
func (c *catalog) WorkflowsUsingStatus(k string) []string     { return c.usedBy[k] }
func (c *catalog) WorkflowsUsingTrigger(k string) []string    { return c.usedBy[k] }
func (c *catalog) OrderTypesUsingWorkflow(id string) []string { return c.usedBy[id] }

// domain may import the standard library, uuid and internal/jsonfast;
// jsonfast, shared with eventstore, the standard library only.
func TestDomainImportsNoInfrastructure(t *testing.T) {
	t.Parallel()
	jsonfast := "github.com/orderflow/orderflow/internal/jsonfast"
	for dir, allowed := range map[string][]string{".": {"github.com/google/uuid", jsonfast}, "../internal/jsonfast": nil} {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			parsed, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
			if err != nil {
				t.Fatal(err)
			}
			for _, imp := range parsed.Imports {
				path, _ := strconv.Unquote(imp.Path.Value)
				if strings.Contains(path, ".") && !slices.Contains(allowed, path) {
					t.Errorf("%s imports %s: only the standard library and %v", f, path, allowed)
				}
			}
			src, _ := os.ReadFile(f)
			if strings.Contains(string(src), "time.Now(") {
				t.Errorf("%s calls time.Now: time is passed in", f)
			}
		}
	}
}

func TestStatusLibraryRules(t *testing.T) {
	t.Parallel()
	seed := func() *domain.StatusLibrary {
		l := domain.NewStatusLibrary()
		must(t, l.Add("", "Pending Pickup", domain.CategoryPending))
		must(t, l.Add("washing", "Washing", domain.CategoryInProgress))
		must(t, l.Add("gone", "Gone", domain.CategoryDraft))
		must(t, l.Archive("gone", newCatalog()))
		l.ClearChanges()
		return l
	}
	cat := newCatalog()
	cat.usedBy["washing"] = []string{"production"}
	tests := []struct {
		name string
		do   func(*domain.StatusLibrary) error
		want error
	}{
		{"add derives key", func(l *domain.StatusLibrary) error { return l.Add("", "Ready for Delivery", domain.CategoryReady) }, nil},
		{"duplicate key", func(l *domain.StatusLibrary) error { return l.Add("washing", "Wash 2", domain.CategoryPending) }, domain.ErrDuplicate},
		{"duplicate name other case", func(l *domain.StatusLibrary) error { return l.Add("w2", "WASHING", domain.CategoryPending) }, domain.ErrDuplicate},
		{"duplicate name other spacing", func(l *domain.StatusLibrary) error { return l.Add("w2", "Pending  pickup", domain.CategoryPending) }, domain.ErrDuplicate},
		{"archived key is not reused", func(l *domain.StatusLibrary) error {
			err := l.Add("gone", "Gone Again", domain.CategoryPending)
			if err != nil && !strings.Contains(err.Error(), "archived (a key is never used again") {
				t.Errorf("the refusal does not say the key is archived: %v", err)
			}
			return err
		}, domain.ErrDuplicate},
		{"archived name may be reused", func(l *domain.StatusLibrary) error { return l.Add("gone2", "gone", domain.CategoryPending) }, nil},
		{"empty name", func(l *domain.StatusLibrary) error { return l.Add("x", "  ", domain.CategoryPending) }, domain.ErrInvalid},
		{"long name", func(l *domain.StatusLibrary) error {
			return l.Add("x", strings.Repeat("n", domain.MaxNameLen+1), domain.CategoryPending)
		}, domain.ErrInvalid},
		{"control character in name", func(l *domain.StatusLibrary) error { return l.Add("x", "a\x00b", domain.CategoryPending) }, domain.ErrInvalid},
		{"unsafe key", func(l *domain.StatusLibrary) error { return l.Add("a.b", "AB", domain.CategoryPending) }, domain.ErrInvalid},
		{"wildcard key", func(l *domain.StatusLibrary) error { return l.Add("*", "Star", domain.CategoryPending) }, domain.ErrInvalid},
		{"missing category", func(l *domain.StatusLibrary) error { return l.Add("x", "X", domain.Category{}) }, domain.ErrInvalid},
		{"rename", func(l *domain.StatusLibrary) error { return l.Rename("washing", "Wash") }, nil},
		{"rename to taken name", func(l *domain.StatusLibrary) error { return l.Rename("washing", "pending pickup") }, domain.ErrDuplicate},
		{"rename unknown", func(l *domain.StatusLibrary) error { return l.Rename("nope", "Nope") }, domain.ErrNotFound},
		{"rename archived", func(l *domain.StatusLibrary) error { return l.Rename("gone", "Back") }, domain.ErrArchived},
		{"recategorize", func(l *domain.StatusLibrary) error { return l.Recategorize("washing", domain.CategoryReady) }, nil},
		{"recategorize unknown", func(l *domain.StatusLibrary) error { return l.Recategorize("nope", domain.CategoryReady) }, domain.ErrNotFound},
		{"archive in use", func(l *domain.StatusLibrary) error { return l.Archive("washing", cat) }, domain.ErrInUse},
		{"archive unknown", func(l *domain.StatusLibrary) error { return l.Archive("nope", cat) }, domain.ErrNotFound},
		{"archive free", func(l *domain.StatusLibrary) error { return l.Archive("pending_pickup", cat) }, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			l := seed()
			before := l.Version()
			err := tc.do(l)
			checkErr(t, err, tc.want)
			if tc.want != nil && (len(l.Changes()) != 0 || l.Version() != before) {
				t.Fatalf("a refused command recorded %d events", len(l.Changes()))
			}
			if tc.want == nil && len(l.Changes()) != 1 {
				t.Fatalf("command recorded %d events, want 1", len(l.Changes()))
			}
		})
	}
	l := seed()
	if st, ok := l.Status("pending_pickup"); !ok || st.Name != "Pending Pickup" || st.Category != domain.CategoryPending {
		t.Fatalf("derived key: %+v", st)
	}
}

func TestTriggerLibraryRules(t *testing.T) {
	t.Parallel()
	cat := newCatalog()
	cat.usedBy["wash_done"] = []string{"production"}
	l := domain.NewTriggerLibrary()
	must(t, l.Add("", "Wash done", "washing finished"))
	if _, ok := l.Trigger("wash_done"); !ok {
		t.Fatal("key not derived from name")
	}
	checkErr(t, l.Add("wash_done", "Again", ""), domain.ErrDuplicate)
	checkErr(t, l.Add("", "", ""), domain.ErrInvalid)
	checkErr(t, l.Add("x y", "X", ""), domain.ErrInvalid)
	checkErr(t, l.Add("x", "X", strings.Repeat("d", domain.MaxDescriptionLen+1)), domain.ErrInvalid)
	checkErr(t, l.Add("x", "X", "bell\x07"), domain.ErrInvalid)
	checkErr(t, l.Add("x", "X", "caf\xe9"), domain.ErrInvalid)
	checkErr(t, l.Archive("wash_done", cat), domain.ErrInUse)
	checkErr(t, l.Rename("nope", "N", ""), domain.ErrNotFound)
	must(t, l.Add("dry_done", "Dry done", "two lines:\n\tthe drum empty"))
	must(t, l.Archive("dry_done", cat))
	checkErr(t, l.Rename("dry_done", "Dry", ""), domain.ErrArchived)
	must(t, l.Archive("dry_done", cat)) // archiving twice changes nothing
	if n := len(l.Changes()); n != 3 {
		t.Fatalf("recorded %d events, want 3", n)
	}
}

// intakeSteps are the worked example's intake steps.
var intakeSteps = []domain.Step{{Status: "pending_pickup", Trigger: "picked_up"}, {Status: "received", Trigger: "items_tagged"}}

// liveIntake is the workflow "intake" as created with intakeSteps, its
// creation already taken from its changes.
func liveIntake(t *testing.T, c *catalog) *domain.Workflow {
	t.Helper()
	w := domain.NewWorkflow()
	must(t, w.Create("intake", "Laundry Intake", domain.WorkflowIntake, domain.FulfillmentMethod{}, intakeSteps, c, c))
	w.ClearChanges()
	return w
}

func TestWorkflowRules(t *testing.T) {
	t.Parallel()
	steps := func(n int) []domain.Step {
		out := make([]domain.Step, n)
		for i := range out {
			out[i] = domain.Step{Status: "s" + strconv.Itoa(i), Trigger: "picked_up"}
		}
		return out
	}
	big := newCatalog()
	for i := range 51 {
		big.statuses["s"+strconv.Itoa(i)] = false
	}
	tests := []struct {
		name string
		do   func(*domain.Workflow, *catalog) error
		want error
	}{
		{"create twice", func(w *domain.Workflow, c *catalog) error {
			return w.Create("intake", "X", domain.WorkflowIntake, domain.FulfillmentMethod{}, intakeSteps, c, c)
		}, domain.ErrDuplicate},
		{"rename", func(w *domain.Workflow, c *catalog) error { return w.Rename("Intake", c) }, nil},
		{"rename to a live workflow's name, other case", func(w *domain.Workflow, c *catalog) error {
			c.workflows["other"] = domain.WorkflowState{Name: "Home Delivery"}
			return w.Rename("home DELIVERY", c)
		}, domain.ErrDuplicate},
		{"rename to a live workflow's name, other spacing", func(w *domain.Workflow, c *catalog) error {
			c.workflows["other"] = domain.WorkflowState{Name: "Home Delivery"}
			err := w.Rename("  home   delivery", c)
			if err != nil && !strings.Contains(err.Error(), `workflow "other" is already named "Home Delivery"`) {
				t.Errorf("the refusal does not name the workflow's own name: %v", err)
			}
			return err
		}, domain.ErrDuplicate},
		{"rename to an archived workflow's name", func(w *domain.Workflow, c *catalog) error {
			c.workflows["other"] = domain.WorkflowState{Name: "Home Delivery", Archived: true}
			return w.Rename("Home Delivery", c)
		}, nil},
		{"add step at end", func(w *domain.Workflow, c *catalog) error {
			return w.AddStep(-1, domain.Step{Status: "washing", Trigger: "wash_done"}, c)
		}, nil},
		{"add step at front", func(w *domain.Workflow, c *catalog) error {
			return w.AddStep(0, domain.Step{Status: "washing", Trigger: "wash_done"}, c)
		}, nil},
		{"add step past the end", func(w *domain.Workflow, c *catalog) error {
			return w.AddStep(3, domain.Step{Status: "washing", Trigger: "wash_done"}, c)
		}, domain.ErrInvalid},
		{"add same status twice", func(w *domain.Workflow, c *catalog) error {
			return w.AddStep(-1, domain.Step{Status: "received", Trigger: "wash_done"}, c)
		}, domain.ErrInvalid},
		{"add unknown status", func(w *domain.Workflow, c *catalog) error {
			return w.AddStep(-1, domain.Step{Status: "nope", Trigger: "wash_done"}, c)
		}, domain.ErrInvalid},
		{"add archived status", func(w *domain.Workflow, c *catalog) error {
			return w.AddStep(-1, domain.Step{Status: "old", Trigger: "wash_done"}, c)
		}, domain.ErrInvalid},
		{"add unknown trigger", func(w *domain.Workflow, c *catalog) error {
			return w.AddStep(-1, domain.Step{Status: "washing", Trigger: "nope"}, c)
		}, domain.ErrInvalid},
		{"add archived trigger", func(w *domain.Workflow, c *catalog) error {
			return w.AddStep(-1, domain.Step{Status: "washing", Trigger: "retired"}, c)
		}, domain.ErrInvalid},
		{"remove step", func(w *domain.Workflow, c *catalog) error { return w.RemoveStep(0) }, nil},
		{"remove missing step", func(w *domain.Workflow, c *catalog) error { return w.RemoveStep(2) }, domain.ErrNotFound},
		{"remove the last remaining step", func(w *domain.Workflow, c *catalog) error {
			if err := w.RemoveStep(0); err != nil {
				return err
			}
			return w.RemoveStep(0)
		}, domain.ErrInvalid},
		{"move step", func(w *domain.Workflow, c *catalog) error { return w.MoveStep(1, 0) }, nil},
		{"move out of range", func(w *domain.Workflow, c *catalog) error { return w.MoveStep(0, 5) }, domain.ErrInvalid},
		{"replace steps", func(w *domain.Workflow, c *catalog) error {
			return w.ReplaceSteps([]domain.Step{{Status: "washing", Trigger: "wash_done"}}, c)
		}, nil},
		{"replace with none", func(w *domain.Workflow, c *catalog) error { return w.ReplaceSteps(nil, c) }, domain.ErrInvalid},
		{"replace with 51", func(w *domain.Workflow, c *catalog) error { return w.ReplaceSteps(steps(51), big) }, domain.ErrInvalid},
		{"replace with 50", func(w *domain.Workflow, c *catalog) error { return w.ReplaceSteps(steps(50), big) }, nil},
		{"change a step's trigger", func(w *domain.Workflow, c *catalog) error { return w.ChangeStepTrigger(1, "wash_done", c) }, nil},
		{"change a missing step's trigger", func(w *domain.Workflow, c *catalog) error { return w.ChangeStepTrigger(7, "wash_done", c) }, domain.ErrNotFound},
		{"change type to fulfillment without method", func(w *domain.Workflow, c *catalog) error {
			return w.ChangeType(domain.WorkflowFulfillment, domain.FulfillmentMethod{}, c)
		}, domain.ErrInvalid},
		{"change type to fulfillment with method", func(w *domain.Workflow, c *catalog) error {
			return w.ChangeType(domain.WorkflowFulfillment, domain.FulfillmentHomeDelivery, c)
		}, nil},
		{"change type while an order type uses it", func(w *domain.Workflow, c *catalog) error {
			c.usedBy["intake"] = []string{"wash_fold"}
			return w.ChangeType(domain.WorkflowProduction, domain.FulfillmentMethod{}, c)
		}, domain.ErrInUse},
		{"method on a non-fulfillment workflow", func(w *domain.Workflow, c *catalog) error {
			return w.ChangeType(domain.WorkflowProduction, domain.FulfillmentOnSite, c)
		}, domain.ErrInvalid},
		{"archive", func(w *domain.Workflow, c *catalog) error { return w.Archive(c) }, nil},
		{"archive in use", func(w *domain.Workflow, c *catalog) error {
			c.usedBy["intake"] = []string{"wash_fold"}
			return w.Archive(c)
		}, domain.ErrInUse},
		{"edit archived", func(w *domain.Workflow, c *catalog) error {
			if err := w.Archive(c); err != nil {
				return err
			}
			return w.Rename("New", c)
		}, domain.ErrArchived},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := newCatalog()
			w := liveIntake(t, c)
			err := tc.do(w, c)
			checkErr(t, err, tc.want)
			if tc.want == nil && w.Version() <= 1 {
				t.Fatalf("a successful edit did not make a new version")
			}
		})
	}
}

func TestWorkflowCreateRules(t *testing.T) {
	t.Parallel()
	ok := []domain.Step{{Status: "washing", Trigger: "wash_done"}}
	tests := []struct {
		name   string
		id     string
		wfName string
		typ    domain.WorkflowType
		method domain.FulfillmentMethod
		steps  []domain.Step
		want   error
	}{
		{"valid", "production", "Production", domain.WorkflowProduction, domain.FulfillmentMethod{}, ok, nil},
		{"fulfillment without method", "f", "F", domain.WorkflowFulfillment, domain.FulfillmentMethod{}, ok, domain.ErrInvalid},
		{"fulfillment with method", "f", "F", domain.WorkflowFulfillment, domain.FulfillmentHomeDelivery, ok, nil},
		{"intake with method", "f", "F", domain.WorkflowIntake, domain.FulfillmentStorePickup, ok, domain.ErrInvalid},
		{"no type", "f", "F", domain.WorkflowType{}, domain.FulfillmentMethod{}, ok, domain.ErrInvalid},
		{"no steps", "f", "F", domain.WorkflowIntake, domain.FulfillmentMethod{}, nil, domain.ErrInvalid},
		{"unsafe id", "f.g", "F", domain.WorkflowIntake, domain.FulfillmentMethod{}, ok, domain.ErrInvalid},
		{"no name", "f", "", domain.WorkflowIntake, domain.FulfillmentMethod{}, ok, domain.ErrInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := newCatalog()
			w := domain.NewWorkflow()
			checkErr(t, w.Create(tc.id, tc.wfName, tc.typ, tc.method, tc.steps, c, c), tc.want)
		})
	}
}

// Every past version of a workflow can be rebuilt from its events.
func TestWorkflowVersionsReplay(t *testing.T) {
	t.Parallel()
	c := newCatalog()
	w := domain.NewWorkflow()
	must(t, w.Create("production", "Production", domain.WorkflowProduction, domain.FulfillmentMethod{},
		[]domain.Step{{Status: "washing", Trigger: "wash_done"}, {Status: "drying", Trigger: "dry_done"}}, c, c))
	must(t, w.MoveStep(1, 0))
	must(t, w.AddStep(1, domain.Step{Status: "received", Trigger: "items_tagged"}, c))
	must(t, w.RemoveStep(2))
	must(t, w.Rename("Laundry Production", c))
	events := w.Changes()
	if w.Version() != 5 {
		t.Fatalf("version %d, want 5", w.Version())
	}
	v1 := domain.NewWorkflow()
	must(t, v1.Apply(events[0]))
	if s := v1.State().Steps; len(s) != 2 || s[0].Status != "washing" {
		t.Fatalf("version 1 steps %+v", s)
	}
	all := domain.NewWorkflow()
	for _, e := range events {
		must(t, all.Apply(e))
	}
	got := all.State()
	want := []domain.Step{{Status: "drying", Trigger: "dry_done"}, {Status: "received", Trigger: "items_tagged"}}
	if got.Name != "Laundry Production" || len(got.Steps) != 2 || got.Steps[0] != want[0] || got.Steps[1] != want[1] {
		t.Fatalf("replayed state %+v", got)
	}
}

// orderTypeCatalog holds a workflow of each kind an order type takes, two
// fulfillment workflows and an archived one.
func orderTypeCatalog() *catalog {
	c := newCatalog()
	c.workflows["intake"] = domain.WorkflowState{Name: "Intake", Type: domain.WorkflowIntake}
	c.workflows["production"] = domain.WorkflowState{Name: "Production", Type: domain.WorkflowProduction}
	c.workflows["home"] = domain.WorkflowState{Name: "Home", Type: domain.WorkflowFulfillment}
	c.workflows["pickup"] = domain.WorkflowState{Name: "Pickup", Type: domain.WorkflowFulfillment}
	c.workflows["old"] = domain.WorkflowState{Name: "Old", Type: domain.WorkflowFulfillment, Archived: true}
	return c
}

func TestOrderTypeRules(t *testing.T) {
	t.Parallel()
	c := orderTypeCatalog()
	tests := []struct {
		name               string
		intake, production string
		fulfillment        []string
		want               error
	}{
		{"full", "intake", "production", []string{"home", "pickup"}, nil},
		{"only production", "", "production", nil, nil},
		{"nothing", "", "", nil, domain.ErrInvalid},
		{"wrong slot type", "production", "", nil, domain.ErrInvalid},
		{"unknown workflow", "", "", []string{"nope"}, domain.ErrInvalid},
		{"archived workflow", "", "", []string{"old"}, domain.ErrInvalid},
		{"fulfillment twice", "", "", []string{"home", "home"}, domain.ErrInvalid},
		{"intake in fulfillment", "", "", []string{"intake"}, domain.ErrInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			o := domain.NewOrderType()
			checkErr(t, o.Create("wash_fold", "Wash & Fold Delivery", tc.intake, tc.production, tc.fulfillment, c), tc.want)
		})
	}
	o := domain.NewOrderType()
	must(t, o.Create("wash_fold", "Wash & Fold Delivery", "intake", "production", []string{"home", "pickup"}, c))
	if got := o.State().Workflows(""); strings.Join(got, ",") != "intake,production,home" {
		t.Fatalf("default workflows %v", got)
	}
	if got := o.State().Workflows("pickup"); strings.Join(got, ",") != "intake,production,pickup" {
		t.Fatalf("pickup workflows %v", got)
	}
	must(t, o.Change("Wash & Fold", "intake", "production", []string{"pickup"}, c))
	must(t, o.Archive())
	checkErr(t, o.Change("X", "intake", "", nil, c), domain.ErrArchived)
}

func TestEventRegistryRoundTrip(t *testing.T) {
	t.Parallel()
	for _, typ := range domain.EventTypes() {
		if _, err := domain.DecodeEvent(typ, []byte(`{}`)); err != nil && !strings.Contains(err.Error(), "category") &&
			!strings.Contains(err.Error(), "type") {
			t.Errorf("%s: %v", typ, err)
		}
	}
	if _, err := domain.DecodeEvent("Nope", nil); err == nil {
		t.Fatal("unknown event type decoded")
	}
	ev, err := domain.DecodeEvent(domain.TypeStatusAdded, []byte(`{"key":"k","name":"K","category":"ready"}`))
	if err != nil || ev.(domain.StatusAdded).Category != domain.CategoryReady {
		t.Fatalf("decoded %#v, %v", ev, err)
	}
	if _, err := domain.DecodeEvent(domain.TypeStatusAdded, []byte(`{"key":"k","name":"K","category":"bogus"}`)); err == nil {
		t.Fatal("invalid category decoded")
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func checkErr(t *testing.T, err, want error) {
	t.Helper()
	if want == nil {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	if !errors.Is(err, want) {
		t.Fatalf("got %v, want %v", err, want)
	}
	var fe *domain.FieldError
	if !errors.As(err, &fe) || fe.Field == "" || fe.Reason == "" {
		t.Fatalf("error %v does not say which field broke which rule", err)
	}
}

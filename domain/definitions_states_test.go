package domain_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/orderflow/orderflow/domain"
)

// A definition command is refused, goes through, or changes nothing, by
// the state of its aggregate: a refusal answers the kind of error that
// says why and leaves the aggregate exactly as it was; a command that
// goes through records one event (one new version); a command that asks
// for what already holds records none.
func TestWorkflowCommandsInEveryState(t *testing.T) {
	t.Parallel()
	states := map[string]func(*testing.T, *catalog) *domain.Workflow{
		"missing": func(*testing.T, *catalog) *domain.Workflow { return domain.NewWorkflow() },
		"live":    liveIntake,
		"archived": func(t *testing.T, c *catalog) *domain.Workflow {
			w := liveIntake(t, c)
			must(t, w.Archive(c))
			w.ClearChanges()
			return w
		},
	}
	none := domain.FulfillmentMethod{}
	washing := domain.Step{Status: "washing", Trigger: "wash_done"}
	type command func(*domain.Workflow, *catalog) error
	commands := map[string]command{
		"rename":           func(w *domain.Workflow, c *catalog) error { return w.Rename("Counter Intake", c) },
		"change type":      func(w *domain.Workflow, c *catalog) error { return w.ChangeType(domain.WorkflowProduction, none, c) },
		"add a step":       func(w *domain.Workflow, c *catalog) error { return w.AddStep(-1, washing, c) },
		"remove a step":    func(w *domain.Workflow, c *catalog) error { return w.RemoveStep(1) },
		"move a step":      func(w *domain.Workflow, c *catalog) error { return w.MoveStep(0, 1) },
		"replace steps":    func(w *domain.Workflow, c *catalog) error { return w.ReplaceSteps([]domain.Step{washing}, c) },
		"change a trigger": func(w *domain.Workflow, c *catalog) error { return w.ChangeStepTrigger(0, "wash_done", c) },
		"archive":          func(w *domain.Workflow, c *catalog) error { return w.Archive(c) },

		// Asking for what already holds.
		"rename, same name":         func(w *domain.Workflow, c *catalog) error { return w.Rename(" Laundry Intake ", c) },
		"change type, same type":    func(w *domain.Workflow, c *catalog) error { return w.ChangeType(domain.WorkflowIntake, none, c) },
		"move a step, to itself":    func(w *domain.Workflow, c *catalog) error { return w.MoveStep(1, 1) },
		"replace steps, same steps": func(w *domain.Workflow, c *catalog) error { return w.ReplaceSteps(intakeSteps, c) },
		"change a trigger, same":    func(w *domain.Workflow, c *catalog) error { return w.ChangeStepTrigger(1, "items_tagged", c) },

		// Bad input.
		"rename, no name":           func(w *domain.Workflow, c *catalog) error { return w.Rename(" ", c) },
		"rename, control character": func(w *domain.Workflow, c *catalog) error { return w.Rename("In\x07take", c) },
		"rename, name too long": func(w *domain.Workflow, c *catalog) error {
			return w.Rename(strings.Repeat("n", domain.MaxNameLen+1), c)
		},
		"change type, none":        func(w *domain.Workflow, c *catalog) error { return w.ChangeType(domain.WorkflowType{}, none, c) },
		"change type, no method":   func(w *domain.Workflow, c *catalog) error { return w.ChangeType(domain.WorkflowFulfillment, none, c) },
		"add a step, past the end": func(w *domain.Workflow, c *catalog) error { return w.AddStep(3, washing, c) },
		"add a step, unsafe status": func(w *domain.Workflow, c *catalog) error {
			return w.AddStep(-1, domain.Step{Status: "a.b", Trigger: "wash_done"}, c)
		},
		"add a step, status again": func(w *domain.Workflow, c *catalog) error { return w.AddStep(0, intakeSteps[1], c) },
		"move a step, from -1":     func(w *domain.Workflow, c *catalog) error { return w.MoveStep(-1, 0) },
		"move a step, to 2":        func(w *domain.Workflow, c *catalog) error { return w.MoveStep(0, 2) },
		"replace steps, none":      func(w *domain.Workflow, c *catalog) error { return w.ReplaceSteps(nil, c) },
		"replace steps, unknown": func(w *domain.Workflow, c *catalog) error {
			return w.ReplaceSteps([]domain.Step{{Status: "nope", Trigger: "wash_done"}}, c)
		},
		"change a trigger, archived":  func(w *domain.Workflow, c *catalog) error { return w.ChangeStepTrigger(0, "retired", c) },
		"change a trigger, wildcard":  func(w *domain.Workflow, c *catalog) error { return w.ChangeStepTrigger(0, "*", c) },
		"remove a step, no such step": func(w *domain.Workflow, c *catalog) error { return w.RemoveStep(2) },
		"change a trigger, step -1":   func(w *domain.Workflow, c *catalog) error { return w.ChangeStepTrigger(-1, "wash_done", c) },
	}
	ok, invalid := error(nil), domain.ErrInvalid
	// want lists what is not invalid input refused; nil is a command that
	// goes through (or changes nothing, as its name says).
	want := map[string]map[string]error{
		"live": {
			"rename": ok, "change type": ok, "add a step": ok, "remove a step": ok, "move a step": ok,
			"replace steps": ok, "change a trigger": ok, "archive": ok,
			"rename, same name": ok, "change type, same type": ok, "move a step, to itself": ok,
			"replace steps, same steps": ok, "change a trigger, same": ok,
			"remove a step, no such step": domain.ErrNotFound, "change a trigger, step -1": domain.ErrNotFound,
		},
		// An archived workflow takes no edit, whatever its input, and
		// archiving it again changes nothing.
		"archived": {"archive": ok},
	}
	for state, start := range states {
		for name, cmd := range commands {
			t.Run(state+"/"+name, func(t *testing.T) {
				t.Parallel()
				c := newCatalog()
				w := start(t, c)
				wantErr, listed := want[state][name]
				switch {
				case state == "missing":
					wantErr = domain.ErrNotFound
				case state == "archived" && !listed:
					wantErr = domain.ErrArchived
				case !listed:
					wantErr = invalid
				}
				checkCommand(t, w, w.State, func() error { return cmd(w, c) }, wantErr, strings.Contains(name, ",") || state == "archived")
			})
		}
	}
}

func TestOrderTypeCommandsInEveryState(t *testing.T) {
	t.Parallel()
	c := orderTypeCatalog()
	created := func(t *testing.T) *domain.OrderType {
		o := domain.NewOrderType()
		must(t, o.Create("wash_fold", "Wash & Fold", "intake", "production", []string{"home", "pickup"}, c))
		o.ClearChanges()
		return o
	}
	states := map[string]func(*testing.T) *domain.OrderType{
		"missing": func(*testing.T) *domain.OrderType { return domain.NewOrderType() },
		"live":    created,
		"archived": func(t *testing.T) *domain.OrderType {
			o := created(t)
			must(t, o.Archive())
			o.ClearChanges()
			return o
		},
	}
	commands := map[string]func(*domain.OrderType) error{
		"create": func(o *domain.OrderType) error { return o.Create("wash_fold", "Other", "", "production", nil, c) },
		"change": func(o *domain.OrderType) error {
			return o.Change("Wash & Fold", "intake", "production", []string{"pickup"}, c)
		},
		"archive": func(o *domain.OrderType) error { return o.Archive() },
		"change, same": func(o *domain.OrderType) error {
			return o.Change(" Wash & Fold ", "intake", "production", []string{"home", "pickup"}, c)
		},
		"change, no name":             func(o *domain.OrderType) error { return o.Change("", "intake", "", nil, c) },
		"change, no workflow":         func(o *domain.OrderType) error { return o.Change("W", "", "", nil, c) },
		"change, unknown workflow":    func(o *domain.OrderType) error { return o.Change("W", "", "nope", nil, c) },
		"change, unsafe workflow id":  func(o *domain.OrderType) error { return o.Change("W", "in>take", "", nil, c) },
		"change, archived workflow":   func(o *domain.OrderType) error { return o.Change("W", "", "", []string{"old"}, c) },
		"change, wrong slot":          func(o *domain.OrderType) error { return o.Change("W", "", "intake", nil, c) },
		"change, fulfillment twice":   func(o *domain.OrderType) error { return o.Change("W", "", "", []string{"pickup", "pickup"}, c) },
		"change, name not UTF-8":      func(o *domain.OrderType) error { return o.Change("W\xff", "intake", "", nil, c) },
		"change, fulfillment as type": func(o *domain.OrderType) error { return o.Change("W", "home", "", nil, c) },
	}
	want := map[string]map[string]error{
		"missing":  {"create": nil, "create, unsafe id": domain.ErrInvalid, "change": domain.ErrNotFound, "archive": domain.ErrNotFound, "change, same": domain.ErrNotFound},
		"live":     {"create": domain.ErrDuplicate, "create, unsafe id": domain.ErrDuplicate, "change": nil, "archive": nil, "change, same": nil},
		"archived": {"create": domain.ErrDuplicate, "create, unsafe id": domain.ErrDuplicate, "archive": nil},
	}
	for state, start := range states {
		for name, cmd := range commands {
			t.Run(state+"/"+name, func(t *testing.T) {
				t.Parallel()
				o := start(t)
				wantErr, listed := want[state][name]
				switch {
				case state == "missing" && !listed:
					wantErr = domain.ErrNotFound
				case state == "archived" && !listed:
					wantErr = domain.ErrArchived
				case !listed:
					wantErr = domain.ErrInvalid
				}
				checkCommand(t, o, o.State, func() error { return cmd(o) }, wantErr, name == "change, same" || state == "archived")
			})
		}
	}
}

// Asking a library for what already holds records nothing, and so does a
// refused request; an unknown key is not found whatever else is wrong
// with the request.
func TestLibraryCommandsThatChangeNothing(t *testing.T) {
	t.Parallel()
	statuses := func(t *testing.T) *domain.StatusLibrary {
		l := domain.NewStatusLibrary()
		must(t, l.Add("washing", "Washing", domain.CategoryInProgress))
		must(t, l.Add("gone", "Gone", domain.CategoryDraft))
		must(t, l.Archive("gone", newCatalog()))
		l.ClearChanges()
		return l
	}
	triggers := func(t *testing.T) *domain.TriggerLibrary {
		l := domain.NewTriggerLibrary()
		must(t, l.Add("wash_done", "Wash done", "the drum has stopped"))
		must(t, l.Add("retired", "Retired", ""))
		must(t, l.Archive("retired", newCatalog()))
		l.ClearChanges()
		return l
	}
	type library interface {
		Version() uint64
		Changes() []domain.Event
	}
	tests := []struct {
		name string
		do   func(*testing.T) (library, error)
		want error
	}{
		{"status renamed to its own name", func(t *testing.T) (library, error) {
			l := statuses(t)
			return l, l.Rename("washing", "  Washing ")
		}, nil},
		{"status given its own category", func(t *testing.T) (library, error) {
			l := statuses(t)
			return l, l.Recategorize("washing", domain.CategoryInProgress)
		}, nil},
		{"archived status archived again", func(t *testing.T) (library, error) {
			l := statuses(t)
			return l, l.Archive("gone", newCatalog())
		}, nil},
		{"archived status recategorized", func(t *testing.T) (library, error) {
			l := statuses(t)
			return l, l.Recategorize("gone", domain.CategoryReady)
		}, domain.ErrArchived},
		{"status recategorized to none", func(t *testing.T) (library, error) {
			l := statuses(t)
			return l, l.Recategorize("washing", domain.Category{})
		}, domain.ErrInvalid},
		{"status renamed to no name", func(t *testing.T) (library, error) {
			l := statuses(t)
			return l, l.Rename("washing", " ")
		}, domain.ErrInvalid},
		{"unknown status renamed to no name", func(t *testing.T) (library, error) {
			l := statuses(t)
			return l, l.Rename("nope", "")
		}, domain.ErrNotFound},
		{"trigger renamed to its own name and description", func(t *testing.T) (library, error) {
			l := triggers(t)
			return l, l.Rename("wash_done", "Wash done", "the drum has stopped")
		}, nil},
		{"archived trigger archived again", func(t *testing.T) (library, error) {
			l := triggers(t)
			return l, l.Archive("retired", newCatalog())
		}, nil},
		{"archived trigger renamed", func(t *testing.T) (library, error) {
			l := triggers(t)
			return l, l.Rename("retired", "Back", "")
		}, domain.ErrArchived},
		{"trigger renamed to a name with a control character", func(t *testing.T) (library, error) {
			l := triggers(t)
			return l, l.Rename("wash_done", "Wash\ndone", "")
		}, domain.ErrInvalid},
		{"trigger given a description with a control character", func(t *testing.T) (library, error) {
			l := triggers(t)
			return l, l.Rename("wash_done", "Wash done", "bell\x07")
		}, domain.ErrInvalid},
		{"unknown trigger archived", func(t *testing.T) (library, error) {
			l := triggers(t)
			return l, l.Archive("nope", newCatalog())
		}, domain.ErrNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			l, err := tc.do(t)
			if tc.want == nil {
				must(t, err)
			} else {
				checkErr(t, err, tc.want)
			}
			if len(l.Changes()) != 0 || l.Version() != 3 {
				t.Fatalf("recorded %d events, now at version %d", len(l.Changes()), l.Version())
			}
		})
	}
}

// checkCommand runs one command on an aggregate and checks what it did:
// the error wanted (nil: none); an event recorded for each new version;
// when it was refused or changesNothing, no event and the state as it
// was; otherwise exactly one event.
func checkCommand[S any](t *testing.T, a interface {
	Version() uint64
	Changes() []domain.Event
}, state func() S, cmd func() error, wantErr error, changesNothing bool) {
	t.Helper()
	version, before := a.Version(), state()
	err := cmd()
	if wantErr == nil {
		must(t, err)
	} else {
		checkErr(t, err, wantErr)
	}
	recorded := len(a.Changes())
	if uint64(recorded) != a.Version()-version {
		t.Fatalf("recorded %d events for %d new versions", recorded, a.Version()-version)
	}
	switch {
	case (err != nil || changesNothing) && (recorded != 0 || !reflect.DeepEqual(state(), before)):
		t.Fatalf("changed it (%d events): %+v → %+v", recorded, before, state())
	case err == nil && !changesNothing && recorded != 1:
		t.Fatalf("a command that went through recorded %d events", recorded)
	}
}

package domain

// Trigger is one entry of a tenant's trigger library: a worker action that
// moves an order on.
type Trigger struct {
	Key         string `json:"key"`
	Name        string `json:"name"`
	Description string `json:"description"`
	Archived    bool   `json:"archived"`
}

// TriggerUsage tells whether live workflows use a trigger.
type TriggerUsage interface {
	WorkflowsUsingTrigger(key string) []string
}

// TriggerLibrary is a tenant's Trigger Library. Keys are unique.
type TriggerLibrary struct {
	root
	entries[Trigger]
}

// NewTriggerLibrary returns an empty library.
func NewTriggerLibrary() *TriggerLibrary {
	return &TriggerLibrary{entries: newEntries[Trigger]("trigger")}
}

// Clone returns a copy of the library as it stands (see
// StatusLibrary.Clone).
func (l *TriggerLibrary) Clone() *TriggerLibrary {
	return &TriggerLibrary{root: root{version: l.Version()}, entries: l.entries.clone()}
}

func checkDescription(d string) error { return CheckText("description", d, MaxDescriptionLen) }

// Add adds a trigger. An empty key is derived from the name.
func (l *TriggerLibrary) Add(key, name, description string) error {
	name, err := checkName("name", name)
	if err != nil {
		return err
	}
	if key == "" {
		key = DeriveKey(name)
	}
	if err := checkKey("key", key); err != nil {
		return err
	}
	if err := checkDescription(description); err != nil {
		return err
	}
	if err := l.checkNew(key); err != nil {
		return err
	}
	l.record(TriggerAdded{Key: key, Name: name, Description: description})
	return nil
}

// Rename changes a trigger's name and description.
func (l *TriggerLibrary) Rename(key, name, description string) error {
	tr, err := l.live(key)
	if err != nil {
		return err
	}
	name, err = checkName("name", name)
	if err != nil {
		return err
	}
	if err := checkDescription(description); err != nil {
		return err
	}
	if tr.Name == name && tr.Description == description {
		return nil
	}
	l.record(TriggerRenamed{Key: key, Name: name, Description: description})
	return nil
}

// Archive retires a trigger; refused while a live workflow uses it.
func (l *TriggerLibrary) Archive(key string, usage TriggerUsage) error {
	ok, err := l.archivable(key, usage.WorkflowsUsingTrigger)
	if ok {
		l.record(TriggerArchived{Key: key})
	}
	return err
}

// Trigger returns one trigger, archived or not.
func (l *TriggerLibrary) Trigger(key string) (Trigger, bool) { return l.get(key) }

// Triggers lists every trigger in the order they were added.
func (l *TriggerLibrary) Triggers() []Trigger { return l.list() }

func (l *TriggerLibrary) record(e Event) {
	_ = l.Apply(e)
	l.changes = append(l.changes, e)
}

// Apply folds one event into the library: the only place its state changes.
func (l *TriggerLibrary) Apply(e Event) error {
	switch e := e.(type) {
	case TriggerAdded:
		l.add(e.Key, Trigger{Key: e.Key, Name: e.Name, Description: e.Description})
	case TriggerRenamed:
		if tr, ok := l.byKey[e.Key]; ok {
			tr.Name, tr.Description = e.Name, e.Description
		}
	case TriggerArchived:
		if tr, ok := l.byKey[e.Key]; ok {
			tr.Archived = true
		}
	default:
		return unexpected("trigger library", e)
	}
	l.version++
	return nil
}

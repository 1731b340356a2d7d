package domain

// Status is one entry of a tenant's status library.
type Status struct {
	Key      string   `json:"key"`
	Name     string   `json:"name"`
	Category Category `json:"category"`
	Archived bool     `json:"archived"`
}

// StatusUsage tells whether live workflows use a status.
type StatusUsage interface {
	// WorkflowsUsingStatus lists the ids of live workflows with a step in
	// that status.
	WorkflowsUsingStatus(key string) []string
}

// StatusLibrary is a tenant's Status Library: the names of the stages an
// order can be in. Keys are unique; names are unique among live statuses,
// case-insensitively.
type StatusLibrary struct {
	root
	entries[Status]
}

// NewStatusLibrary returns an empty library.
func NewStatusLibrary() *StatusLibrary {
	return &StatusLibrary{entries: newEntries[Status]("status")}
}

// Clone returns a copy of the library as it stands (without the changes
// it recorded): what a command answers with while the library itself may
// take the next command.
func (l *StatusLibrary) Clone() *StatusLibrary {
	return &StatusLibrary{root: root{version: l.Version()}, entries: l.entries.clone()}
}

// Add adds a status. An empty key is derived from the name.
func (l *StatusLibrary) Add(key, name string, category Category) error {
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
	if category.IsZero() {
		return invalid("category", "is required")
	}
	if err := l.checkNew(key); err != nil {
		return err
	}
	if other := l.liveNamed(name, ""); other != "" {
		return kindErr(ErrDuplicate, "name", "status %q is already named %q", other, l.byKey[other].Name)
	}
	l.record(StatusAdded{Key: key, Name: name, Category: category})
	return nil
}

// Rename changes a status's name.
func (l *StatusLibrary) Rename(key, name string) error {
	st, err := l.live(key)
	if err != nil {
		return err
	}
	if name, err = checkName("name", name); err != nil {
		return err
	}
	if st.Name == name {
		return nil
	}
	if other := l.liveNamed(name, key); other != "" {
		return kindErr(ErrDuplicate, "name", "status %q is already named %q", other, l.byKey[other].Name)
	}
	l.record(StatusRenamed{Key: key, Name: name})
	return nil
}

// Recategorize changes a status's category.
func (l *StatusLibrary) Recategorize(key string, category Category) error {
	st, err := l.live(key)
	if err != nil {
		return err
	}
	if category.IsZero() {
		return invalid("category", "is required")
	}
	if st.Category == category {
		return nil
	}
	l.record(StatusRecategorized{Key: key, Category: category})
	return nil
}

// Archive retires a status. It is refused while a live workflow uses it;
// archiving an archived status changes nothing.
func (l *StatusLibrary) Archive(key string, usage StatusUsage) error {
	ok, err := l.archivable(key, usage.WorkflowsUsingStatus)
	if ok {
		l.record(StatusArchived{Key: key})
	}
	return err
}

// Status returns one status, archived or not.
func (l *StatusLibrary) Status(key string) (Status, bool) { return l.get(key) }

// Statuses lists every status in the order they were added.
func (l *StatusLibrary) Statuses() []Status { return l.list() }

// liveNamed returns the key of a live status other than except with that
// name, or "".
func (l *StatusLibrary) liveNamed(name, except string) string {
	for _, k := range l.order {
		st := l.byKey[k]
		if k != except && !st.Archived && SameName(st.Name, name) {
			return k
		}
	}
	return ""
}

func (l *StatusLibrary) record(e Event) {
	_ = l.Apply(e)
	l.changes = append(l.changes, e)
}

// Apply folds one event into the library: the only place its state changes.
func (l *StatusLibrary) Apply(e Event) error {
	switch e := e.(type) {
	case StatusAdded:
		l.add(e.Key, Status{Key: e.Key, Name: e.Name, Category: e.Category})
	case StatusRenamed:
		if st, ok := l.byKey[e.Key]; ok {
			st.Name = e.Name
		}
	case StatusRecategorized:
		if st, ok := l.byKey[e.Key]; ok {
			st.Category = e.Category
		}
	case StatusArchived:
		if st, ok := l.byKey[e.Key]; ok {
			st.Archived = true
		}
	default:
		return unexpected("status library", e)
	}
	l.version++
	return nil
}

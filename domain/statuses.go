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
	byKey map[string]*Status
	order []string
}

// NewStatusLibrary returns an empty library.
func NewStatusLibrary() *StatusLibrary {
	return &StatusLibrary{byKey: map[string]*Status{}}
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
	if _, ok := l.byKey[key]; ok {
		return kindErr(ErrDuplicate, "key", "status %q already exists", key)
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
	st, ok := l.byKey[key]
	if !ok {
		return kindErr(ErrNotFound, "key", "no status %q", key)
	}
	if st.Archived {
		return nil
	}
	if ids := usage.WorkflowsUsingStatus(key); len(ids) > 0 {
		return kindErr(ErrInUse, "key", "status %q is used by live workflows %v", key, ids)
	}
	l.record(StatusArchived{Key: key})
	return nil
}

// Status returns one status, archived or not.
func (l *StatusLibrary) Status(key string) (Status, bool) {
	st, ok := l.byKey[key]
	if !ok {
		return Status{}, false
	}
	return *st, true
}

// Statuses lists every status in the order they were added.
func (l *StatusLibrary) Statuses() []Status {
	out := make([]Status, 0, len(l.order))
	for _, k := range l.order {
		out = append(out, *l.byKey[k])
	}
	return out
}

func (l *StatusLibrary) live(key string) (*Status, error) {
	st, ok := l.byKey[key]
	if !ok {
		return nil, kindErr(ErrNotFound, "key", "no status %q", key)
	}
	if st.Archived {
		return nil, kindErr(ErrArchived, "key", "status %q is archived", key)
	}
	return st, nil
}

// liveNamed returns the key of a live status other than except with that
// name, or "".
func (l *StatusLibrary) liveNamed(name, except string) string {
	for _, k := range l.order {
		st := l.byKey[k]
		if k != except && !st.Archived && sameName(st.Name, name) {
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
		l.byKey[e.Key] = &Status{Key: e.Key, Name: e.Name, Category: e.Category}
		l.order = append(l.order, e.Key)
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

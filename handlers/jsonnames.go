package handlers

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
)

// nameScan is what scanNames found in one walk of a JSON text.
type nameScan struct {
	dup      string // the first member name given twice in one object
	dupFound bool
	// got is the first member name that names a field only when case is
	// ignored, and want the field's own name.
	got, want string
	caseFound bool
}

// scanNames walks the JSON text b once, for duplicateName and for
// caseOnlyName (t: the type b is decoded into; nil: no case check).
// Malformed JSON is left to the decoder to describe: the walk ends there.
func scanNames(b []byte, t reflect.Type) nameScan {
	type frame struct {
		object   bool
		names    map[string]bool         // foldName of each name given so far
		fields   map[string]reflect.Type // exact name → type; nil: names not checked
		folded   map[string]string       // foldName(name) → exact name
		wantName bool
		next     reflect.Type // the type of the value that comes next (nil: not checked)
	}
	var found nameScan
	var stack []*frame
	valueType := func() reflect.Type {
		if n := len(stack); n > 0 {
			return stack[n-1].next
		}
		return t
	}
	valueDone := func() {
		if n := len(stack); n > 0 && stack[n-1].object {
			stack[n-1].wantName = true
		}
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	for !found.dupFound || !(found.caseFound || t == nil) {
		tok, err := dec.Token()
		if err != nil {
			break
		}
		var top *frame
		if n := len(stack); n > 0 {
			top = stack[n-1]
		}
		switch v := tok.(type) {
		case json.Delim:
			switch v {
			case '{':
				f := &frame{object: true, names: map[string]bool{}, wantName: true}
				if st := plain(valueType()); st != nil && st.Kind() == reflect.Struct {
					f.fields, f.folded = jsonFields(st)
				}
				stack = append(stack, f)
			case '[':
				f := &frame{}
				if st := plain(valueType()); st != nil && (st.Kind() == reflect.Slice || st.Kind() == reflect.Array) {
					f.next = st.Elem()
				}
				stack = append(stack, f)
			default: // '}' or ']'
				stack = stack[:len(stack)-1]
				valueDone()
			}
		case string:
			if top != nil && top.object && top.wantName {
				top.wantName, top.next = false, nil
				folded := foldName(v)
				if top.names[folded] && !found.dupFound {
					found.dup, found.dupFound = v, true
				}
				top.names[folded] = true
				if ft, ok := top.fields[v]; ok {
					top.next = ft
				} else if exact, ok := top.folded[folded]; ok && !found.caseFound {
					found.got, found.want, found.caseFound = v, exact, true
				}
				continue
			}
			valueDone()
		default:
			valueDone()
		}
	}
	return found
}

// duplicateName finds a member name given twice in one object of the JSON
// text b (at any depth). encoding/json would keep the last one silently,
// so a body that says two things would be read as saying one of them.
func duplicateName(b []byte) (string, bool) {
	s := scanNames(b, nil)
	return s.dup, s.dupFound
}

// caseOnlyName finds a member name of the JSON text b that names a field
// of t (the type b is decoded into, at any depth) only when case is
// ignored: encoding/json would take "Trigger" for the field "trigger",
// while JSON's names, and the contract's, are case-sensitive. It returns
// the name given and the field's own. Members of maps and of values whose
// type decodes itself are not looked at.
func caseOnlyName(b []byte, t reflect.Type) (got, want string, found bool) {
	s := scanNames(b, t)
	return s.got, s.want, s.caseFound
}

var unmarshalerType = reflect.TypeFor[json.Unmarshaler]()

// plain is t without pointers, or nil when t (or a pointer to it) decodes
// itself.
func plain(t reflect.Type) reflect.Type {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil || t.Implements(unmarshalerType) || reflect.PointerTo(t).Implements(unmarshalerType) {
		return nil
	}
	return t
}

// jsonFields are the JSON names of struct type t's fields, as
// encoding/json names them (embedded structs' fields included), with
// their types, and the same names by foldName.
func jsonFields(t reflect.Type) (map[string]reflect.Type, map[string]string) {
	fields, folded := map[string]reflect.Type{}, map[string]string{}
	var add func(t reflect.Type)
	add = func(t reflect.Type) {
		for f := range t.Fields() {
			tag := f.Tag.Get("json")
			if tag == "-" {
				continue
			}
			name, _, _ := strings.Cut(tag, ",")
			if f.Anonymous && name == "" {
				if et := plain(f.Type); et != nil && et.Kind() == reflect.Struct {
					add(et)
					continue
				}
			}
			if !f.IsExported() {
				continue
			}
			if name == "" {
				name = f.Name
			}
			fields[name] = f.Type
			folded[foldName(name)] = name
		}
	}
	add(t)
	return fields, folded
}

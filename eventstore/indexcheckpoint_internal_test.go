package eventstore

import (
	"encoding/binary"
	"maps"
	"slices"
	"testing"
	"time"
)

func indexOf(applied uint64, seqs map[string][]uint64) *seqIndex {
	return &seqIndex{seqs: seqs, applied: applied}
}

// A checkpoint decodes to the index it was made of, for the stream it was
// made for; anything else is refused whole.
func TestIndexCheckpointRoundTrip(t *testing.T) {
	created := time.Date(2026, 11, 29, 10, 0, 0, 123, time.UTC)
	want := map[string][]uint64{
		"orderflow.default.order.o-1": {1, 2, 9},
		"orderflow.default.order.o-2": {3},
		"orderflow.default.order.o-3": {4, 300, 70000},
	}
	b, applied := indexOf(70001, want).encode(created)
	if applied != 70001 {
		t.Fatalf("encode reports %d applied", applied)
	}
	got, gotApplied, err := decodeIndex(b, created, 70001)
	if err != nil || gotApplied != 70001 || !maps.EqualFunc(got, want, slices.Equal) {
		t.Fatalf("decodeIndex = %v, %d, %v; want %v", got, gotApplied, err, want)
	}
	if _, _, err := decodeIndex(b, created, 70000); err == nil {
		t.Error("a checkpoint past the stream's end was taken")
	}
	if _, _, err := decodeIndex(b, created.Add(time.Nanosecond), 70001); err == nil {
		t.Error("a checkpoint of another stream was taken")
	}
	empty, _ := indexOf(0, map[string][]uint64{}).encode(created)
	if got, applied, err := decodeIndex(empty, created, 0); err != nil || applied != 0 || len(got) != 0 {
		t.Errorf("empty index: %v, %d, %v", got, applied, err)
	}

	header := func(version, applied, keys uint64) []byte {
		h := binary.AppendUvarint(nil, version)
		h = binary.AppendVarint(h, created.UnixNano())
		h = binary.AppendUvarint(h, applied)
		return binary.AppendUvarint(h, keys)
	}
	entry := func(key string, seqs ...uint64) []byte { // seqs as gaps, unchecked
		e := binary.AppendUvarint(nil, uint64(len(key)))
		e = append(e, key...)
		e = binary.AppendUvarint(e, uint64(len(seqs)))
		for _, s := range seqs {
			e = binary.AppendUvarint(e, s)
		}
		return e
	}
	for name, b := range map[string][]byte{
		"nothing":                 nil,
		"another version":         header(2, 5, 0),
		"truncated":               header(1, 5, 1),
		"empty key":               append(header(1, 5, 1), entry("", 1)...),
		"no sequences":            append(header(1, 5, 1), entry("k")...),
		"a gap of zero":           append(header(1, 5, 1), entry("k", 1, 0)...),
		"past what it applied":    append(header(1, 5, 1), entry("k", 6)...),
		"a key twice":             slices.Concat(header(1, 5, 2), entry("k", 1), entry("k", 2)),
		"bytes left over":         append(append(header(1, 5, 1), entry("k", 1)...), 0),
		"fewer keys than it says": append(header(1, 5, 2), entry("k", 1)...),
	} {
		if got, _, err := decodeIndex(b, created, 10); err == nil {
			t.Errorf("%s: taken: %v", name, got)
		}
	}
}

// Whatever the bytes, decodeIndex refuses them or returns sequences in
// order, none past what it applied, which encode gives back.
func FuzzDecodeIndex(f *testing.F) {
	created := time.Unix(0, 42)
	b, _ := indexOf(9, map[string][]uint64{"a": {1, 5}, "b.c": {9}}).encode(created)
	f.Add(b)
	f.Add([]byte{1, 84, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		seqs, applied, err := decodeIndex(b, created, 1<<40)
		if err != nil {
			return
		}
		for key, list := range seqs {
			if key == "" || len(list) == 0 || !slices.IsSorted(list) || list[len(list)-1] > applied {
				t.Fatalf("decoded %q: %v (applied %d)", key, list, applied)
			}
		}
		again, _ := indexOf(applied, seqs).encode(created)
		seqs2, applied2, err := decodeIndex(again, created, 1<<40)
		if err != nil || applied2 != applied || !maps.EqualFunc(seqs, seqs2, slices.Equal) {
			t.Fatalf("round trip: %v %d %v", seqs2, applied2, err)
		}
	})
}

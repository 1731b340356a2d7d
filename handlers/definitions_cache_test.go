package handlers

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/eventstore/eventstoretest"
)

// Definition commands keep the aggregate they decided on in memory, and
// take in what another process stored since before they decide again:
// two processes renaming one status in turn each build on the other's
// renames (versions one apart, the hash chain whole), a stale If-Match is
// still refused, and a process reads the library's history once.
func TestDefinitionCacheFollowsOtherProcesses(t *testing.T) {
	t.Parallel()
	srv := eventstoretest.StartServer(t)
	a := newCommands(t, srv)
	b := openCommands(t, srv)
	ctx, cancel := eventstoretest.Context(time.Minute)
	defer cancel()
	meta := Meta{Actor: eventstore.Actor{Kind: eventstore.ActorUser, ID: "t"}}
	before := map[*Commands]CacheStats{a: a.definitionCache().stats(), b: b.definitionCache().stats()} // a seeded the worked example
	var last uint64
	for i := range 8 {
		c := []*Commands{a, b}[i%2]
		name := fmt.Sprintf("Wash %d", i)
		lib, err := c.UpdateStatus(ctx, meta, "washing", &name, nil)
		if err != nil {
			t.Fatalf("rename %d: %v", i, err)
		}
		if s, _ := lib.Status("washing"); s.Name != name || (last != 0 && lib.Version() != last+1) {
			t.Fatalf("rename %d answered %q at version %d after version %d", i, s.Name, lib.Version(), last)
		}
		last = lib.Version()
	}
	stale := last - 1
	name := "Washed"
	if _, err := a.UpdateStatus(ctx, Meta{Actor: meta.Actor, IfMatch: &stale}, "washing", &name, nil); !errors.Is(err, ErrPreconditionFailed) {
		t.Fatalf("a rename with a stale If-Match: %v", err)
	}
	rep, err := a.Store.Verify(ctx, []string{eventstore.StreamDefinitions}, nil)
	if err != nil || len(rep.Breaks) != 0 {
		t.Fatalf("verify: %v %+v", err, rep.Breaks)
	}
	for name, c := range map[string]*Commands{"a": a, "b": b} {
		s, was := c.definitionCache().stats(), before[c]
		if loads, want := s.Loads-was.Loads, map[string]uint64{"a": 0, "b": 1}[name]; loads != want || s.Hits-was.Hits < 3 {
			t.Errorf("process %s read the status library's history %d times (want %d), and served %d commands from memory",
				name, loads, want, s.Hits-was.Hits)
		}
	}
}

// BenchmarkRenameInLongLibrary: renaming a status once the status library
// has a long history, in one process and in a process that did not make
// that history (its first rename reads the history; the next take in only
// what is new).
//
//	go test -run '^$' -bench RenameInLongLibrary -benchtime 200x ./handlers/
func BenchmarkRenameInLongLibrary(b *testing.B) {
	for _, events := range []int{10, 3000} {
		b.Run(fmt.Sprintf("events=%d", events), func(b *testing.B) {
			srv := eventstoretest.StartServer(b)
			c := newCommands(b, srv)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			meta := Meta{Actor: eventstore.Actor{Kind: eventstore.ActorUser, ID: "bench"}}
			rename := func(c *Commands, i int) {
				name := fmt.Sprintf("Wash %d", i)
				if _, err := c.UpdateStatus(ctx, meta, "washing", &name, nil); err != nil {
					b.Fatal(err)
				}
			}
			for i := range events {
				rename(c, i)
			}
			other := openCommands(b, srv)
			b.ResetTimer()
			for i := range b.N {
				rename([]*Commands{c, other}[i%2], events+i)
			}
		})
	}
}

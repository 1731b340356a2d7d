package eventstore_test

import (
	"fmt"
	"sync"
	"testing"

	"github.com/orderflow/orderflow/eventstore"
)

// testClaims: of many claims of one name racing, one gives it its value
// and every other answers that value; a released claim can be made anew,
// and releasing a claim given since to another value leaves it alone.
// Scopes keep names apart.
func testClaims(t *testing.T, st *eventstore.Store) {
	ctx := ctxT(t)
	name := uniq("key")
	heldAs := func(want string) {
		t.Helper()
		value, held, err := st.ClaimOf(ctx, "orders", name)
		if err != nil || held != (want != "") || value != want {
			t.Fatalf("ClaimOf = %q, %v, %v; want %q", value, held, err, want)
		}
	}
	heldAs("")
	const claimers = 20
	got := make([]eventstore.Claim, claimers)
	errs := make([]error, claimers)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range claimers {
		wg.Go(func() {
			<-start
			got[i], errs[i] = st.Claim(ctx, "orders", name, fmt.Sprintf("v%d", i))
		})
	}
	close(start)
	wg.Wait()
	made := 0
	var winner string
	for i, c := range got {
		if errs[i] != nil {
			t.Fatalf("claim %d: %v", i, errs[i])
		}
		if c.Made {
			made++
			winner = c.Value
		}
	}
	if made != 1 {
		t.Fatalf("%d claims made the name; want 1", made)
	}
	for i, c := range got {
		if c.Value != winner {
			t.Errorf("claim %d answers %q; the name holds %q", i, c.Value, winner)
		}
	}

	heldAs(winner)

	other, err := st.Claim(ctx, "definitions", name, "elsewhere")
	if err != nil || !other.Made || other.Value != "elsewhere" {
		t.Fatalf("the name in another scope: %+v, %v; want it made", other, err)
	}

	// A claim that did not make the name releases nothing.
	for _, c := range got {
		if !c.Made {
			if err := st.Release(ctx, c); err != nil {
				t.Fatal(err)
			}
			break
		}
	}
	if again, err := st.Claim(ctx, "orders", name, "late"); err != nil || again.Made || again.Value != winner {
		t.Fatalf("after releasing a claim that made nothing: %+v, %v; want %q held", again, err, winner)
	}

	var first eventstore.Claim
	for _, c := range got {
		if c.Made {
			first = c
		}
	}
	if err := st.Release(ctx, first); err != nil {
		t.Fatalf("release: %v", err)
	}
	heldAs("")
	anew, err := st.Claim(ctx, "orders", name, "anew")
	if err != nil || !anew.Made || anew.Value != "anew" {
		t.Fatalf("claim after release: %+v, %v; want it made", anew, err)
	}
	if err := st.Release(ctx, first); err != nil {
		t.Fatalf("releasing the old claim again: %v", err)
	}
	if held, err := st.Claim(ctx, "orders", name, "third"); err != nil || held.Made || held.Value != "anew" {
		t.Fatalf("an old claim's release undid the new one: %+v, %v", held, err)
	}
}

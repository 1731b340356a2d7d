package eventstore_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/eventstore/eventstoretest"
)

// The contract suite runs against every way the store is deployed: one
// embedded server, and a three-node embedded cluster with replicas=3.

func TestContractSingleServer(t *testing.T) {
	t.Parallel()
	srv := eventstoretest.StartServer(t)
	st := eventstoretest.OpenStore(t, srv.ClientURL(), eventstore.Config{})
	runContract(t, st)
}

func TestContractCluster(t *testing.T) {
	t.Parallel()
	c := eventstoretest.StartCluster(t, 3)
	st := eventstoretest.OpenStore(t, c.URLs(), eventstore.Config{Replicas: 3})
	runContract(t, st)
}

func runContract(t *testing.T, st *eventstore.Store) {
	t.Run("AppendAndLoad", func(t *testing.T) { testAppendAndLoad(t, st) })
	t.Run("ConcurrentAppendsOneWins", func(t *testing.T) { testConcurrentAppends(t, st) })
	t.Run("AtomicBatchAllOrNothing", func(t *testing.T) { testAtomic(t, st) })
	t.Run("IdempotentReappend", func(t *testing.T) { testIdempotent(t, st) })
	t.Run("LoadPagesLongHistory", func(t *testing.T) { testLoadPaging(t, st) })
	t.Run("LoadOutOfTimeIsAnError", func(t *testing.T) { testLoadOutOfTime(t, st) })
	t.Run("SubscribeFromSequence", func(t *testing.T) { testSubscribe(t, st) })
	t.Run("UnsafeTokensNeverReachNATS", func(t *testing.T) { testUnsafeTokens(t, st) })
	t.Run("MalformedAppendsStoreNothing", func(t *testing.T) { testMalformedAppends(t, st) })
	t.Run("AggregatesAreIsolated", func(t *testing.T) { testIsolation(t, st) })
	t.Run("IndexFromCheckpoint", func(t *testing.T) { testIndexCheckpoint(t, st) })
	t.Run("ClaimsNameOneValue", func(t *testing.T) { testClaims(t, st) })
}

var t0 = time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC)

func ev(typ string, version uint64) eventstore.Envelope {
	return eventstore.Envelope{
		ID:         uuid.Must(uuid.NewV7()).String(),
		Type:       typ,
		Version:    version,
		OccurredAt: t0.Add(time.Duration(version) * time.Second),
		Actor:      eventstore.Actor{Kind: eventstore.ActorWorker, ID: "w1"},
		Data:       json.RawMessage(fmt.Sprintf(`{"n":%d}`, version)),
	}
}

func order(id string) eventstore.Aggregate {
	return eventstore.Aggregate{Tenant: "default", Type: eventstore.OrderAggregateType, ID: id}
}

func uniq(prefix string) string { return prefix + "-" + uuid.NewString()[:8] }

// serverStore is a store on an embedded server of the test's own, with a
// ctx that ends with the test.
func serverStore(t *testing.T) (*eventstore.Store, context.Context) {
	t.Helper()
	srv := eventstoretest.StartServer(t)
	return eventstoretest.OpenStore(t, srv.ClientURL(), eventstore.Config{}), ctxT(t)
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := eventstoretest.Context(30 * time.Second)
	t.Cleanup(cancel)
	return ctx
}

func lastSeq(t *testing.T, st *eventstore.Store, stream string) uint64 {
	t.Helper()
	seq, err := st.LastSequence(ctxT(t), stream)
	if err != nil {
		t.Fatal(err)
	}
	return seq
}

func mustLoad(t *testing.T, st *eventstore.Store, agg eventstore.Aggregate) []eventstore.Event {
	t.Helper()
	evs, err := st.Load(ctxT(t), agg, 0)
	if err != nil {
		t.Fatalf("load %s: %v", agg.Filter(), err)
	}
	return evs
}

func assertVersions(t *testing.T, evs []eventstore.Event, n int) {
	t.Helper()
	if len(evs) != n {
		t.Fatalf("got %d events, want %d", len(evs), n)
	}
	for i, e := range evs {
		if e.Version != uint64(i+1) {
			t.Fatalf("event %d has version %d: history has a gap", i, e.Version)
		}
		if i > 0 && e.Sequence <= evs[i-1].Sequence {
			t.Fatalf("event %d sequence %d not after %d", i, e.Sequence, evs[i-1].Sequence)
		}
	}
}

func testAppendAndLoad(t *testing.T, st *eventstore.Store) {
	ctx := ctxT(t)
	agg := order(uniq("o"))
	first := ev("OrderPlaced", 1)
	first.CorrelationID = "corr-1"
	r1, err := st.Append(ctx, agg, eventstore.ExpectNew, first)
	if err != nil {
		t.Fatal(err)
	}
	if r1.FirstSeq != r1.LastSeq || r1.Duplicate {
		t.Fatalf("single append result %+v", r1)
	}
	r2, err := st.Append(ctx, agg, r1.LastSeq, ev("OrderAdvanced", 2), ev("OrderAdvanced", 3))
	if err != nil {
		t.Fatal(err)
	}
	if r2.LastSeq != r2.FirstSeq+1 || r2.FirstSeq <= r1.LastSeq {
		t.Fatalf("batch append result %+v after %+v", r2, r1)
	}
	evs := mustLoad(t, st, agg)
	assertVersions(t, evs, 3)
	got := evs[0]
	if got.ID != first.ID || got.Type != "OrderPlaced" || got.Tenant != "default" ||
		got.AggregateType != "order" || got.AggregateID != agg.ID || got.CorrelationID != "corr-1" ||
		!got.OccurredAt.Equal(first.OccurredAt) || got.Actor != first.Actor || string(got.Data) != `{"n":1}` {
		t.Fatalf("loaded envelope differs: %+v", got.Envelope)
	}
	if got.Subject != agg.Subject("OrderPlaced") || got.Stream != eventstore.StreamOrders || got.Sequence != r1.FirstSeq {
		t.Fatalf("stored at %s %s %d", got.Stream, got.Subject, got.Sequence)
	}
	tail, err := st.Load(ctx, agg, r1.LastSeq)
	if err != nil || len(tail) != 2 || tail[0].Version != 2 {
		t.Fatalf("load after %d: %d events, %v", r1.LastSeq, len(tail), err)
	}
	// A definition aggregate lives in its own stream.
	def := eventstore.Aggregate{Tenant: "default", Type: "workflow", ID: uniq("wf")}
	r, err := st.Append(ctx, def, eventstore.ExpectNew, ev("WorkflowCreated", 1))
	if err != nil {
		t.Fatal(err)
	}
	devs := mustLoad(t, st, def)
	if len(devs) != 1 || devs[0].Stream != eventstore.StreamDefinitions || devs[0].Sequence != r.FirstSeq ||
		devs[0].Subject != "orderflow.default.def.workflow."+def.ID+".WorkflowCreated" {
		t.Fatalf("definition stored as %+v", devs)
	}
}

func testConcurrentAppends(t *testing.T, st *eventstore.Store) {
	ctx := ctxT(t)
	agg := order(uniq("race"))
	r, err := st.Append(ctx, agg, eventstore.ExpectNew, ev("OrderPlaced", 1))
	if err != nil {
		t.Fatal(err)
	}
	const writers = 20
	var wg sync.WaitGroup
	errs := make([]error, writers)
	start := make(chan struct{})
	for i := range writers {
		wg.Go(func() {
			<-start
			_, errs[i] = st.Append(ctx, agg, r.LastSeq, ev("OrderAdvanced", 2))
		})
	}
	close(start)
	wg.Wait()
	wins, conflicts := 0, 0
	for _, err := range errs {
		switch {
		case err == nil:
			wins++
		case errors.Is(err, eventstore.ErrConcurrency):
			conflicts++
			var ce *eventstore.ConcurrencyError
			if !errors.As(err, &ce) || ce.Expected != r.LastSeq {
				t.Errorf("conflict error lacks positions: %v", err)
			}
		default:
			t.Errorf("unexpected error: %v", err)
		}
	}
	if wins != 1 || conflicts != writers-1 {
		t.Fatalf("%d appends won and %d conflicted; want 1 and %d", wins, conflicts, writers-1)
	}
	assertVersions(t, mustLoad(t, st, agg), 2)
}

func testAtomic(t *testing.T, st *eventstore.Store) {
	ctx := ctxT(t)
	agg := order(uniq("atomic"))
	r, err := st.Append(ctx, agg, eventstore.ExpectNew, ev("OrderPlaced", 1), ev("OrderAdvanced", 2))
	if err != nil {
		t.Fatal(err)
	}
	// Someone else appends: our next batch is stale and must store nothing.
	if _, err := st.Append(ctx, agg, r.LastSeq, ev("OrderHeld", 3)); err != nil {
		t.Fatal(err)
	}
	before := lastSeq(t, st, eventstore.StreamOrders)
	_, err = st.Append(ctx, agg, r.LastSeq, ev("OrderAdvanced", 3), ev("OrderAdvanced", 4), ev("OrderCompleted", 5))
	if !errors.Is(err, eventstore.ErrConcurrency) {
		t.Fatalf("stale batch: got %v, want ErrConcurrency", err)
	}
	if after := lastSeq(t, st, eventstore.StreamOrders); after != before {
		t.Fatalf("stale batch stored %d messages", after-before)
	}
	evs := mustLoad(t, st, agg)
	assertVersions(t, evs, 3)
	if evs[2].Type != "OrderHeld" {
		t.Fatalf("last event %s", evs[2].Type)
	}
	// A batch on a new aggregate that already exists is refused whole too.
	_, err = st.Append(ctx, agg, eventstore.ExpectNew, ev("OrderPlaced", 1), ev("OrderAdvanced", 2))
	if !errors.Is(err, eventstore.ErrConcurrency) {
		t.Fatalf("batch expecting new aggregate: got %v", err)
	}
	if after := lastSeq(t, st, eventstore.StreamOrders); after != before {
		t.Fatalf("refused batch stored %d messages", after-before)
	}
}

func testIdempotent(t *testing.T, st *eventstore.Store) {
	ctx := ctxT(t)
	agg := order(uniq("idem"))
	one := ev("OrderPlaced", 1)
	r1, err := st.Append(ctx, agg, eventstore.ExpectNew, one)
	if err != nil {
		t.Fatal(err)
	}
	batch := []eventstore.Envelope{ev("OrderAdvanced", 2), ev("OrderAdvanced", 3)}
	r2, err := st.Append(ctx, agg, r1.LastSeq, batch...)
	if err != nil {
		t.Fatal(err)
	}
	before := lastSeq(t, st, eventstore.StreamOrders)

	again, err := st.Append(ctx, agg, eventstore.ExpectNew, one)
	if err != nil || !again.Duplicate || again.FirstSeq != r1.FirstSeq {
		t.Fatalf("re-append single: %+v %v; want duplicate at %d", again, err, r1.FirstSeq)
	}
	again, err = st.Append(ctx, agg, r1.LastSeq, batch...)
	if err != nil || !again.Duplicate || again.FirstSeq != r2.FirstSeq || again.LastSeq != r2.LastSeq {
		t.Fatalf("re-append batch: %+v %v; want duplicate at %+v", again, err, r2)
	}
	// Even with the expected sequence the caller has now, the ids are known.
	again, err = st.Append(ctx, agg, r2.LastSeq, batch...)
	if err != nil || !again.Duplicate || again.FirstSeq != r2.FirstSeq {
		t.Fatalf("re-append batch with current expectation: %+v %v", again, err)
	}
	if after := lastSeq(t, st, eventstore.StreamOrders); after != before {
		t.Fatalf("re-appends stored %d messages", after-before)
	}
	assertVersions(t, mustLoad(t, st, agg), 3)
}

func testLoadPaging(t *testing.T, st *eventstore.Store) {
	ctx := ctxT(t)
	agg := order(uniq("long"))
	other := order(uniq("other"))
	var last, otherLast uint64
	const total = 600 // more than two pages of the default 256
	for v := uint64(1); v <= total; v += 100 {
		batch := make([]eventstore.Envelope, 0, 100)
		for i := range uint64(100) {
			batch = append(batch, ev("OrderMoved", v+i))
		}
		r, err := st.Append(ctx, agg, last, batch...)
		if err != nil {
			t.Fatal(err)
		}
		last = r.LastSeq
		// Interleave another aggregate so the filter has to skip.
		r, err = st.Append(ctx, other, otherLast, ev("OrderMoved", v/100+1))
		if err != nil {
			t.Fatal(err)
		}
		otherLast = r.LastSeq
	}
	assertVersions(t, mustLoad(t, st, agg), total)
	assertVersions(t, mustLoad(t, st, other), total/100)

	// LoadPage reads the same history a page at a time: each page starts
	// after the last sequence of the one before, and says whether more
	// follow.
	var paged []eventstore.Event
	after, pages := uint64(0), 0
	for {
		page, more, err := st.LoadPage(ctx, agg, after, 250)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		paged = append(paged, page...)
		if !more {
			break
		}
		if len(page) != 250 || pages > 3 {
			t.Fatalf("page %d: %d events, more %v", pages, len(page), more)
		}
		after = page[len(page)-1].Sequence
	}
	if pages != 3 {
		t.Fatalf("%d pages of 250 for %d events", pages, total)
	}
	assertVersions(t, paged, total)
	if page, more, err := st.LoadPage(ctx, agg, last, 10); err != nil || len(page) != 0 || more {
		t.Fatalf("a page after the last event: %d events, more %v, %v", len(page), more, err)
	}
	if page, more, err := st.LoadPage(ctx, agg, 0, total); err != nil || len(page) != total || more {
		t.Fatalf("a page of exactly the history: %d events, more %v, %v", len(page), more, err)
	}
}

// A load that runs out of time before the server has answered in full
// reports the deadline; it never passes a cut-short answer off as the
// aggregate's history (an empty one would read as "no such order").
func testLoadOutOfTime(t *testing.T, st *eventstore.Store) {
	agg := order(uniq("late"))
	if _, err := st.Append(ctxT(t), agg, eventstore.ExpectNew, ev("OrderPlaced", 1), ev("OrderAdvanced", 2)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	for name, load := range map[string]func() ([]eventstore.Event, error){
		"Load": func() ([]eventstore.Event, error) { return st.Load(ctx, agg, 0) },
		"LoadFilter": func() ([]eventstore.Event, error) {
			return st.LoadFilter(ctx, eventstore.StreamOrders, agg.Filter(), 0)
		},
	} {
		if evs, err := load(); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%s out of time: %d events, %v; want the deadline's error", name, len(evs), err)
		}
	}
	assertVersions(t, mustLoad(t, st, agg), 2)
}

func testSubscribe(t *testing.T, st *eventstore.Store) {
	ctx := ctxT(t)
	agg := order(uniq("sub"))
	r, err := st.Append(ctx, agg, eventstore.ExpectNew, ev("OrderPlaced", 1), ev("OrderAdvanced", 2))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got []eventstore.Event
	sub, err := st.Subscribe(ctx, eventstore.StreamOrders, []string{agg.Filter()}, r.FirstSeq, func(e eventstore.Event) error {
		mu.Lock()
		got = append(got, e)
		mu.Unlock()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Stop()
	if _, err := st.Append(ctx, agg, r.LastSeq, ev("OrderCompleted", 3)); err != nil {
		t.Fatal(err)
	}
	eventstoretest.Eventually(t, 10*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) >= 2
	}, "two events after the start sequence")
	sub.Stop()
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 2 || got[0].Version != 2 || got[1].Version != 3 || got[0].Sequence != r.LastSeq {
		t.Fatalf("subscription delivered %d events: %+v", len(got), got)
	}
}

func testUnsafeTokens(t *testing.T, st *eventstore.Store) {
	ctx := ctxT(t)
	before := lastSeq(t, st, eventstore.StreamOrders)
	for _, bad := range []eventstore.Aggregate{
		{Tenant: "default", Type: "order", ID: ""},
		{Tenant: "default", Type: "order", ID: "a.b"},
		{Tenant: "default", Type: "order", ID: "*"},
		{Tenant: "default", Type: "order", ID: ">"},
		{Tenant: "de fault", Type: "order", ID: "x"},
		{Tenant: "default", Type: "order", ID: "x\n"},
	} {
		_, err := st.Append(ctx, bad, eventstore.ExpectNew, ev("OrderPlaced", 1))
		if !errors.Is(err, eventstore.ErrInvalidToken) {
			t.Errorf("append to %+v: got %v, want ErrInvalidToken", bad, err)
		}
		if _, err := st.Load(ctx, bad, 0); !errors.Is(err, eventstore.ErrInvalidToken) {
			t.Errorf("load %+v: got %v, want ErrInvalidToken", bad, err)
		}
	}
	badType := ev("Order.Placed", 1)
	if _, err := st.Append(ctx, order(uniq("ok")), eventstore.ExpectNew, badType); !errors.Is(err, eventstore.ErrInvalidToken) {
		t.Errorf("event type with a dot: got %v", err)
	}
	if after := lastSeq(t, st, eventstore.StreamOrders); after != before {
		t.Fatalf("refused appends stored %d messages", after-before)
	}
}

// Appends the store cannot take as they are (no events, more than one
// append carries, versions with a gap, one event id twice, an envelope
// naming another aggregate, one the contract refuses or over the size
// limit) are refused before anything is published: the stream does not
// move and the aggregate stays as it was.
func testMalformedAppends(t *testing.T, st *eventstore.Store) {
	ctx := ctxT(t)
	agg := order(uniq("malformed"))
	placed, err := st.Append(ctx, agg, eventstore.ExpectNew, ev("OrderPlaced", 1))
	if err != nil {
		t.Fatal(err)
	}
	before := lastSeq(t, st, eventstore.StreamOrders)
	with := func(version uint64, change func(*eventstore.Envelope)) eventstore.Envelope {
		e := ev("OrderAdvanced", version)
		change(&e)
		return e
	}
	twice := ev("OrderAdvanced", 2)
	again := ev("OrderAdvanced", 3)
	again.ID = twice.ID
	many := make([]eventstore.Envelope, 101)
	for i := range many {
		many[i] = ev("OrderAdvanced", uint64(i+2))
	}
	for _, tc := range []struct {
		name   string
		events []eventstore.Envelope
		want   error  // matched with errors.Is, when set
		says   string // in the error's text
	}{
		{"no events", nil, nil, "no events"},
		{"more than one append carries", many, nil, "more than the 100"},
		{"versions with a gap", []eventstore.Envelope{ev("OrderAdvanced", 2), ev("OrderAdvanced", 4)}, eventstore.ErrInvalidEnvelope, "versions must be consecutive"},
		{"one event id twice", []eventstore.Envelope{twice, again}, eventstore.ErrInvalidEnvelope, "appears twice"},
		{"another tenant", []eventstore.Envelope{with(2, func(e *eventstore.Envelope) { e.Tenant = "other" })}, eventstore.ErrInvalidEnvelope, "tenant"},
		{"another aggregate type", []eventstore.Envelope{with(2, func(e *eventstore.Envelope) { e.AggregateType = "workflow" })}, eventstore.ErrInvalidEnvelope, "aggregate_type"},
		{"another aggregate", []eventstore.Envelope{with(2, func(e *eventstore.Envelope) { e.AggregateID = "someone-else" })}, eventstore.ErrInvalidEnvelope, "aggregate_id"},
		{"version zero", []eventstore.Envelope{with(2, func(e *eventstore.Envelope) { e.Version = 0 })}, eventstore.ErrInvalidEnvelope, "version must be 1 or more"},
		{"an id too long", []eventstore.Envelope{with(2, func(e *eventstore.Envelope) { e.ID = strings.Repeat("a", eventstore.MaxTokenLen+1) })}, eventstore.ErrInvalidEnvelope, "id longer than"},
		{"no time", []eventstore.Envelope{with(2, func(e *eventstore.Envelope) { e.OccurredAt = time.Time{} })}, eventstore.ErrInvalidEnvelope, "occurred_at is required"},
		{"an actor of no kind", []eventstore.Envelope{with(2, func(e *eventstore.Envelope) { e.Actor.Kind = "robot" })}, eventstore.ErrInvalidEnvelope, `actor.kind "robot"`},
		{"data that is not JSON", []eventstore.Envelope{with(2, func(e *eventstore.Envelope) { e.Data = json.RawMessage(`{"n":`) })}, eventstore.ErrInvalidEnvelope, "data is not valid JSON"},
		{"an event over the size limit", []eventstore.Envelope{with(2, func(e *eventstore.Envelope) {
			e.Data = json.RawMessage(`"` + strings.Repeat("x", eventstore.MaxEnvelopeSize) + `"`)
		})}, eventstore.ErrInvalidEnvelope, "byte limit"},
	} {
		_, err := st.Append(ctx, agg, placed.LastSeq, tc.events...)
		if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%s: got %v, want %v saying %q", tc.name, err, tc.want, tc.says)
		}
	}
	if _, _, err := st.LoadPage(ctx, agg, 0, -1); err == nil {
		t.Error("a page of -1 events was read")
	}
	if after := lastSeq(t, st, eventstore.StreamOrders); after != before {
		t.Fatalf("refused appends stored %d messages", after-before)
	}
	assertVersions(t, mustLoad(t, st, agg), 1)
	// The aggregate takes its next event as if nothing had been tried.
	if _, err := st.Append(ctx, agg, placed.LastSeq, ev("OrderAdvanced", 2)); err != nil {
		t.Fatal(err)
	}
	assertVersions(t, mustLoad(t, st, agg), 2)
}

// A store opened with IndexCheckpoints starts its load index where the
// checkpoint another store saved left off (on a cluster, whichever node
// answers), and loads are complete.
func testIndexCheckpoint(t *testing.T, st *eventstore.Store) {
	ctx := ctxT(t)
	a, b := order(uniq("cpa")), order(uniq("cpb"))
	r, err := st.Append(ctx, a, eventstore.ExpectNew, ev("OrderPlaced", 1), ev("OrderAdvanced", 2))
	if err != nil {
		t.Fatal(err)
	}
	checkpointIndexAt(t, ctx, st, r.LastSeq)
	if _, err := st.Append(ctx, b, eventstore.ExpectNew, ev("OrderPlaced", 1)); err != nil {
		t.Fatal(err)
	}
	next := eventstoretest.OpenStore(t, strings.Join(st.Conn().Servers(), ","), eventstore.Config{IndexCheckpoints: true, Replicas: st.Replicas()})
	if got := next.IndexRestoredAt(eventstore.StreamOrders); got < r.LastSeq {
		t.Fatalf("index restored at %d, want the checkpoint's (at least %d)", got, r.LastSeq)
	}
	if err := next.WaitIndexed(ctx); err != nil {
		t.Fatal(err)
	}
	assertVersions(t, mustLoad(t, next, a), 2)
	assertVersions(t, mustLoad(t, next, b), 1)
}

// checkpointIndexAt waits until the orders' load index has read stream
// sequence seq, then saves the store's index checkpoints.
func checkpointIndexAt(t *testing.T, ctx context.Context, st *eventstore.Store, seq uint64) {
	t.Helper()
	eventstoretest.Eventually(t, 10*time.Second, func() bool { return st.Indexed(eventstore.StreamOrders) >= seq },
		fmt.Sprintf("the index to read sequence %d", seq))
	if err := st.CheckpointIndexes(ctx); err != nil {
		t.Fatal(err)
	}
}

func testIsolation(t *testing.T, st *eventstore.Store) {
	ctx := ctxT(t)
	// "o-1" must not see "o-10"'s events, nor another tenant's "o-1".
	base := uniq("iso")
	a := order(base)
	b := order(base + "0")
	c := eventstore.Aggregate{Tenant: "other", Type: "order", ID: base}
	for _, agg := range []eventstore.Aggregate{a, b, c} {
		if _, err := st.Append(ctx, agg, eventstore.ExpectNew, ev("OrderPlaced", 1)); err != nil {
			t.Fatal(err)
		}
	}
	for _, agg := range []eventstore.Aggregate{a, b, c} {
		evs := mustLoad(t, st, agg)
		if len(evs) != 1 || evs[0].AggregateID != agg.ID || evs[0].Tenant != agg.Tenant {
			t.Fatalf("%s loaded %+v", agg.Filter(), evs)
		}
	}
}

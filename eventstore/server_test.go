package eventstore_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/eventstore/eventstoretest"
)

func TestRestartKeepsHistory(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	srv := eventstoretest.StartServerIn(t, dir)
	st := eventstoretest.OpenStore(t, srv.ClientURL(), eventstore.Config{})
	ctx := ctxT(t)
	agg := order("restart-1")
	r, err := st.Append(ctx, agg, eventstore.ExpectNew, ev("OrderPlaced", 1), ev("OrderAdvanced", 2))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Append(ctx, agg, r.LastSeq, ev("OrderAdvanced", 3)); err != nil {
		t.Fatal(err)
	}
	before := mustLoad(t, st, agg)
	st.Conn().Close()
	srv.Shutdown()

	srv2 := eventstoretest.StartServerIn(t, dir)
	st2 := eventstoretest.OpenStore(t, srv2.ClientURL(), eventstore.Config{})
	// The load index reads the stream again; loads, and WaitIndexed,
	// wait until it has read what was there at the start.
	if err := st2.WaitIndexed(ctx); err != nil {
		t.Fatal(err)
	}
	if !st2.IndexCaughtUp(eventstore.StreamOrders) || !st2.IndexCaughtUp(eventstore.StreamDefinitions) {
		t.Fatal("WaitIndexed returned before the indexes caught up")
	}
	if got := st2.Indexed(eventstore.StreamOrders); got < r.LastSeq+1 {
		t.Fatalf("WaitIndexed returned with the index at %d, before %d", got, r.LastSeq+1)
	}
	after := mustLoad(t, st2, agg)
	assertVersions(t, after, 3)
	for i := range before {
		if before[i].ID != after[i].ID || before[i].Sequence != after[i].Sequence || string(before[i].Data) != string(after[i].Data) {
			t.Fatalf("event %d changed across restart: %+v vs %+v", i, before[i], after[i])
		}
	}
	// The concurrency check picks up where it left off, and the index,
	// caught up, goes on reading new events with its everyday consumer.
	r, err = st2.Append(ctx, agg, after[2].Sequence, ev("OrderCompleted", 4))
	if err != nil {
		t.Fatal(err)
	}
	eventstoretest.Eventually(t, 10*time.Second, func() bool { return st2.Indexed(eventstore.StreamOrders) >= r.LastSeq },
		"the index reads an event appended after it caught up")
	assertVersions(t, mustLoad(t, st2, agg), 4)
}

// A store opened with IndexCheckpoints starts its load index from the
// checkpoint CheckpointIndexes saved and reads only the events stored
// since; loads are as complete as from a whole read. Without the option,
// or without a checkpoint, the index reads the stream from its start.
func TestIndexStartsFromItsCheckpoint(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	srv := eventstoretest.StartServerIn(t, dir)
	cfg := eventstore.Config{IndexCheckpoints: true}
	st := eventstoretest.OpenStore(t, srv.ClientURL(), cfg)
	ctx := ctxT(t)
	if got := st.IndexRestoredAt(eventstore.StreamOrders); got != 0 {
		t.Fatalf("a new store's index restored at %d", got)
	}
	a, b, c := order("cp-a"), order("cp-b"), order("cp-c")
	ra, err := st.Append(ctx, a, eventstore.ExpectNew, ev("OrderPlaced", 1), ev("OrderAdvanced", 2))
	if err != nil {
		t.Fatal(err)
	}
	rb, err := st.Append(ctx, b, eventstore.ExpectNew, ev("OrderPlaced", 1))
	if err != nil {
		t.Fatal(err)
	}
	checkpointIndexAt(t, ctx, st, rb.LastSeq)
	// Stored after the checkpoint: read by the next start's index.
	if _, err := st.Append(ctx, a, ra.LastSeq, ev("OrderAdvanced", 3)); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Append(ctx, c, eventstore.ExpectNew, ev("OrderPlaced", 1)); err != nil {
		t.Fatal(err)
	}
	st.Conn().Close()
	srv.Shutdown()

	srv2 := eventstoretest.StartServerIn(t, dir)
	st2 := eventstoretest.OpenStore(t, srv2.ClientURL(), cfg)
	if got := st2.IndexRestoredAt(eventstore.StreamOrders); got != rb.LastSeq {
		t.Fatalf("index restored at %d, want the checkpoint's %d", got, rb.LastSeq)
	}
	if err := st2.WaitIndexed(ctx); err != nil {
		t.Fatal(err)
	}
	for agg, versions := range map[eventstore.Aggregate]int{a: 3, b: 1, c: 1} {
		assertVersions(t, mustLoad(t, st2, agg), versions)
	}
	plain := eventstoretest.OpenStore(t, srv2.ClientURL(), eventstore.Config{})
	if got := plain.IndexRestoredAt(eventstore.StreamOrders); got != 0 {
		t.Fatalf("a store without IndexCheckpoints restored its index at %d", got)
	}
}

// After JetStream's duplicate window has passed, a re-append is still
// recognised by the event ids in the aggregate's history.
func TestReappendAfterDuplicateWindow(t *testing.T) {
	t.Parallel()
	srv := eventstoretest.StartServer(t)
	st := eventstoretest.OpenStore(t, srv.ClientURL(), eventstore.Config{DuplicateWindow: 100 * time.Millisecond})
	ctx := ctxT(t)
	agg := order("window-1")
	events := []eventstore.Envelope{ev("OrderPlaced", 1), ev("OrderAdvanced", 2)}
	r, err := st.Append(ctx, agg, eventstore.ExpectNew, events...)
	if err != nil {
		t.Fatal(err)
	}
	// Wait for the server to forget the ids: a probe message with a fresh
	// id published twice is stored twice once the window has passed.
	probe := eventstore.Aggregate{Tenant: "default", Type: "order", ID: "window-probe"}
	pe := ev("Probe", 1)
	if _, err := st.Append(ctx, probe, eventstore.ExpectNew, pe); err != nil {
		t.Fatal(err)
	}
	eventstoretest.Eventually(t, 10*time.Second, func() bool {
		ack, err := st.JetStream().PublishMsg(ctx, natsMsg(probe.Subject("Probe"), pe.ID))
		return err == nil && !ack.Duplicate
	}, "the duplicate window to pass")
	before := lastSeq(t, st, eventstore.StreamOrders)

	again, err := st.Append(ctx, agg, eventstore.ExpectNew, events...)
	if err != nil || !again.Duplicate || again.FirstSeq != r.FirstSeq || again.LastSeq != r.LastSeq {
		t.Fatalf("re-append after window: %+v, %v; want duplicate of %+v", again, err, r)
	}
	if after := lastSeq(t, st, eventstore.StreamOrders); after != before {
		t.Fatalf("re-append after the window stored %d messages", after-before)
	}
}

func natsMsg(subject, id string) *nats.Msg {
	m := nats.NewMsg(subject)
	m.Header.Set(jetstream.MsgIDHeader, id)
	m.Data = []byte(`{}`)
	return m
}

// A connection whose sync queue cannot hold one batched get is refused:
// the batch's replies would be dropped.
func TestOpenRefusesShortSyncQueue(t *testing.T) {
	t.Parallel()
	srv := eventstoretest.StartServer(t)
	nc, err := nats.Connect(srv.ClientURL(), nats.SyncQueueLen(100))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if _, err := eventstore.Open(ctxT(t), nc, eventstore.Config{}); err == nil {
		t.Fatal("Open accepted a sync queue of 100 with LoadBatch 256")
	}
	if _, err := eventstore.Open(ctxT(t), nc, eventstore.Config{LoadBatch: 64}); err != nil {
		t.Fatalf("Open refused LoadBatch 64 on a sync queue of 100: %v", err)
	}
}

// Replicas asked of a server that is not clustered fail at once, with
// the server's reason, and make no stream: a retry would only hear the
// same answer until its time ran out.
func TestReplicasOnOneServerAreRefusedAtOnce(t *testing.T) {
	t.Parallel()
	srv := eventstoretest.StartServer(t)
	nc := eventstoretest.Connect(t, srv.ClientURL())
	open, cancel := eventstoretest.Context(5 * time.Second)
	defer cancel()
	_, err := eventstore.Open(open, nc, eventstore.Config{Replicas: 3})
	ctx := ctxT(t)
	if err == nil || errors.Is(err, context.DeadlineExceeded) ||
		!strings.Contains(err.Error(), "create stream "+eventstore.StreamDefinitions+" on 3 replicas: ") ||
		!strings.Contains(err.Error(), "replicas > 1 not supported in non-clustered mode: more than one copy needs a NATS cluster") {
		t.Fatalf("open with 3 replicas on one server: %v", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	for name := range js.StreamNames(ctx).Name() {
		t.Errorf("stream %s made", name)
	}
	// Asked once, not again and again until the time ran out.
	info, err := js.AccountInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.API.Total > 6 { // the stream look-up and create, the list above, this
		t.Errorf("%d JetStream API requests: the create was sent again after a refusal no retry cures", info.API.Total)
	}
}

// A stream of someone else's that takes orderflow's subjects: the start
// fails at once and names it.
func TestOpenNamesAStreamThatTakesItsSubjects(t *testing.T) {
	t.Parallel()
	srv := eventstoretest.StartServer(t)
	nc := eventstoretest.Connect(t, srv.ClientURL())
	ctx := ctxT(t)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "MINE", Subjects: []string{"orderflow.>"}}); err != nil {
		t.Fatal(err)
	}
	_, err = eventstore.Open(ctx, nc, eventstore.Config{})
	if err == nil || !strings.HasSuffix(err.Error(), "subjects overlap with an existing stream: stream MINE takes subjects of orderflow.*.def.*.*.*, which orderflow needs to itself") {
		t.Fatalf("open beside a stream on orderflow.>: %v", err)
	}
}

// A NATS server without JetStream: the start-up waits for one to answer,
// as for a server still starting, then says what is likely wrong.
func TestOpenOnAServerWithoutJetStream(t *testing.T) {
	t.Parallel()
	plain, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoSigs: true, NoLog: true})
	if err != nil {
		t.Fatal(err)
	}
	go plain.Start()
	t.Cleanup(plain.Shutdown)
	if !plain.ReadyForConnections(eventstoretest.Patience(10 * time.Second)) {
		t.Fatal("nats server without JetStream not ready")
	}
	nc := eventstoretest.Connect(t, plain.ClientURL())
	open, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, err = eventstore.Open(open, nc, eventstore.Config{})
	if err == nil || !strings.Contains(err.Error(), "create stream "+eventstore.StreamDefinitions+": ") ||
		!strings.Contains(err.Error(), "no JetStream answered: does the NATS server run with JetStream (nats-server --jetstream, or a jetstream block in its configuration)?") {
		t.Fatalf("open on a server without JetStream: %v", err)
	}
}

// An append whose acknowledgement never comes (the server is gone) ends
// after the store's Timeout even when the caller's context has no
// deadline, says its outcome is unknown, and says so again when asked.
func TestAppendWithoutAckEndsAfterTimeout(t *testing.T) {
	t.Parallel()
	srv := eventstoretest.StartServer(t)
	st := eventstoretest.OpenStore(t, srv.ClientURL(), eventstore.Config{Timeout: 300 * time.Millisecond})
	agg := order("no-ack-1")
	srv.Shutdown()
	eventstoretest.Eventually(t, 10*time.Second, func() bool { return !st.Conn().IsConnected() }, "the connection to notice the server is gone")
	p, err := st.AppendAsync(context.Background(), agg, eventstore.ExpectNew, ev("OrderPlaced", 1))
	if err != nil {
		t.Fatalf("append while reconnecting: %v (publishes are buffered while reconnecting)", err)
	}
	for range 2 {
		_, err := p.Wait(context.Background())
		if !errors.Is(err, eventstore.ErrOutcomeUnknown) || !errors.Is(err, jetstream.ErrAsyncPublishTimeout) {
			t.Fatalf("Wait = %v, want an unknown outcome after the store's timeout", err)
		}
	}
	// A load meanwhile ends with the caller's deadline and says why.
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err = st.Load(ctx, agg, 0)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "while the NATS connection is RECONNECTING") {
		t.Fatalf("Load while reconnecting = %v, want the deadline and the connection's state", err)
	}
}

// An append the server refuses for lack of storage is ErrStorageFull and
// stores nothing, single or atomic; the store's counts say how full it is.
// A server started with MaxConnections refuses a client connection over
// it, so that clients cannot take every file the process may open.
func TestServerRefusesConnectionsOverItsLimit(t *testing.T) {
	t.Parallel()
	srv, err := eventstore.StartServer(eventstore.ServerConfig{DataDir: t.TempDir(), Listen: "127.0.0.1:0", MaxConnections: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	for range 2 {
		eventstoretest.Connect(t, srv.ClientURL())
	}
	nc, err := nats.Connect(srv.ConnectURL(), append(srv.ConnectOptions(), nats.NoReconnect())...)
	if err == nil {
		nc.Close()
		t.Fatal("a third connection was taken, over MaxConnections 2")
	}
	// The client reads the server's "maximum connections exceeded", or
	// finds the connection closed before it does.
	t.Logf("third connection: %v", err)
	if n := srv.NATS().NumClients(); n != 2 {
		t.Fatalf("the server holds %d client connections, want 2", n)
	}
}

func TestAppendWithNoStorageLeft(t *testing.T) {
	t.Parallel()
	const limit = 64 << 10
	t.Run("single", func(t *testing.T) {
		t.Parallel()
		srv, err := eventstore.StartServer(eventstore.ServerConfig{DataDir: t.TempDir(), Listen: "127.0.0.1:0", MaxStore: limit})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(srv.Shutdown)
		checkNoStorageLeft(t, eventstoretest.OpenStore(t, srv.ClientURL(), eventstore.Config{}), limit, true)
	})
	if other := errors.New("other"); eventstore.Refusal(other) != other {
		t.Fatal("Refusal changed an error that is not a refusal")
	}
	t.Run("cluster", func(t *testing.T) {
		t.Parallel()
		c := eventstoretest.StartClusterWith(t, 3, func(cfg *eventstore.ServerConfig) { cfg.MaxStore = limit })
		// A load asks the stream's leader first, and it has none; the
		// account's figures come from the cluster's meta leader, which
		// may have none either.
		checkNoStorageLeft(t, eventstoretest.OpenStore(t, c.URLs(), eventstore.Config{Replicas: 3}), limit, false)
	})
}

func checkNoStorageLeft(t *testing.T, st *eventstore.Store, limit uint64, single bool) {
	t.Helper()
	ctx := ctxT(t)
	var stored int
	for ; ; stored++ {
		_, err := st.Append(ctx, order(fmt.Sprintf("full-%d", stored)), eventstore.ExpectNew, ev("OrderPlaced", 1))
		if err == nil {
			continue
		}
		if !errors.Is(err, eventstore.ErrStorageFull) {
			t.Fatalf("append %d: %v, want ErrStorageFull", stored, err)
		}
		break
	}
	// A single server goes on refusing for storage. A cluster's stream,
	// its replicas out of storage, has no leader from then on: writes
	// find no stream (ErrNoLeader) or none that answers in time, so what
	// waits for an answer waits 5 s, not the test's 30.
	short, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err := st.Append(short, order("full-batch"), eventstore.ExpectNew, ev("OrderPlaced", 1), ev("OrderAdvanced", 2))
	if single && !errors.Is(err, eventstore.ErrStorageFull) || err == nil {
		t.Fatalf("atomic append: %v, want it refused", err)
	}
	short, cancel = context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	stats, err := st.StreamStats(short, eventstore.StreamOrders)
	if single && err != nil || err == nil && (stats.Messages != uint64(stored) || stats.LastSeq != uint64(stored)) {
		t.Fatalf("orders stream holds %+v (%v), want the %d appends that were not refused", stats, err, stored)
	}
	if !single {
		return // see the cluster case: neither leader may answer
	}
	for _, id := range []string{fmt.Sprintf("full-%d", stored), "full-batch"} {
		if evs, err := st.Load(ctx, order(id), 0); err != nil || len(evs) != 0 {
			t.Fatalf("a refused append stored %d events (%v)", len(evs), err)
		}
	}
	if used, max, err := st.Storage(ctx); err != nil || used < limit*9/10 {
		t.Fatalf("storage used %d of %d (%v): want nearly all of %d", used, max, err, limit)
	}
	// A checkpoint finds no room either, and says so at once rather than
	// trying again until its time is out.
	if err := st.SaveCheckpoint(ctx, "full", make([]byte, 4<<10)); !errors.Is(err, eventstore.ErrStorageFull) {
		t.Fatalf("checkpoint on a full store: %v, want ErrStorageFull", err)
	}
}

// A subscription skips an event whose data is not valid JSON, unless its
// handler decodes (and so checks) the data itself: with
// DataCheckedByHandler it gets the event as stored.
func TestSubscribeDataCheckedByHandler(t *testing.T) {
	t.Parallel()
	st, ctx := serverStore(t)
	agg := order("bad-data-1")
	r, err := st.Append(ctx, agg, eventstore.ExpectNew, ev("OrderPlaced", 1))
	if err != nil {
		t.Fatal(err)
	}
	eventstoretest.PublishUndecodable(t, st, r.LastSeq, agg.Subject("OrderAdvanced"))
	// A valid event after it: a subscription that delivered it has read
	// past the bad one.
	if _, err := st.Append(ctx, order("bad-data-2"), eventstore.ExpectNew, ev("OrderPlaced", 1)); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		opts []eventstore.ReadOption
		want int
	}{{"checked", nil, 2}, {"by the handler", []eventstore.ReadOption{eventstore.DataCheckedByHandler()}, 3}} {
		var mu sync.Mutex
		var got []eventstore.Event
		var skipped []uint64 // OnUnreadable: the bad one when the data is checked
		skip := eventstore.OnUnreadable(func(seq uint64, err error) {
			if !errors.Is(err, eventstore.ErrUnreadableEvent) {
				t.Errorf("%s: OnUnreadable with %v", tc.name, err)
			}
			mu.Lock()
			defer mu.Unlock()
			skipped = append(skipped, seq)
		})
		sub, err := st.Subscribe(ctx, eventstore.StreamOrders, nil, r.LastSeq-1, func(e eventstore.Event) error {
			mu.Lock()
			defer mu.Unlock()
			got = append(got, e)
			return nil
		}, append(tc.opts, skip)...)
		if err != nil {
			t.Fatal(err)
		}
		eventstoretest.Eventually(t, 10*time.Second, func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(got) > 0 && got[len(got)-1].AggregateID == "bad-data-2"
		}, tc.name+": the last event delivered")
		sub.Stop()
		if len(got) != tc.want {
			t.Fatalf("%s: %d events, want %d", tc.name, len(got), tc.want)
		}
		if wantSkipped := 3 - tc.want; len(skipped) != wantSkipped || (wantSkipped == 1 && skipped[0] != r.LastSeq+1) {
			t.Fatalf("%s: OnUnreadable called for %v, want the bad one's sequence %d only when skipped", tc.name, skipped, r.LastSeq+1)
		}
		if tc.want == 3 && json.Valid(got[1].Data) {
			t.Fatalf("%s: the second event's data %q", tc.name, got[1].Data)
		}
	}
}

// An append whose acknowledgement is lost with the connection (a server
// or cluster node gone with it in flight) may well be stored: its outcome
// is unknown, not an error, and sending it again with the same ids finds
// it at its original position. Single and atomic appends alike.
func TestAppendCutOffWithItsAckInFlight(t *testing.T) {
	t.Parallel()
	srv := eventstoretest.StartServer(t)
	direct := eventstoretest.OpenStore(t, srv.ClientURL(), eventstore.Config{})
	fz := eventstoretest.StartFreezer(t, srv.ClientURL())
	st := eventstoretest.OpenStore(t, fz.URL(), eventstore.Config{Timeout: time.Second})
	ctx := ctxT(t)
	for _, n := range []int{1, 3} {
		t.Run(fmt.Sprintf("%d events", n), func(t *testing.T) {
			agg := order(uniq("cut"))
			events := make([]eventstore.Envelope, n)
			for i := range events {
				events[i] = ev("OrderAdvanced", uint64(i+1))
			}
			fz.Hold(true)
			p, err := st.AppendAsync(ctx, agg, eventstore.ExpectNew, events...)
			if err != nil {
				t.Fatal(err)
			}
			eventstoretest.Eventually(t, 10*time.Second, func() bool {
				evs, err := direct.Load(ctx, agg, 0)
				return err == nil && len(evs) == n
			}, "the server to store the append")
			fz.Cut()
			fz.Hold(false)
			_, err = p.Wait(ctx)
			if !errors.Is(err, eventstore.ErrOutcomeUnknown) {
				t.Fatalf("Wait = %v, want an unknown outcome", err)
			}
			stored := mustLoad(t, direct, agg)
			r, err := st.Append(ctx, agg, eventstore.ExpectNew, events...)
			if err != nil || !r.Duplicate || r.FirstSeq != stored[0].Sequence || r.LastSeq != stored[n-1].Sequence {
				t.Fatalf("sent again: %+v, %v; want a duplicate at %d..%d", r, err, stored[0].Sequence, stored[n-1].Sequence)
			}
			assertVersions(t, mustLoad(t, st, agg), n)
		})
	}
}

// A second embedded server on a data dir in use is refused at once,
// naming the process that holds it, and the first runs on untouched; once
// the first stops, a server starts there again. nats-server would let both
// open the same JetStream files.
func TestDataDirInUseIsRefused(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	srv := eventstoretest.StartServerIn(t, dir)
	st := eventstoretest.OpenStore(t, srv.ClientURL(), eventstore.Config{})
	ctx := ctxT(t)
	agg := order("in-use-1")
	if _, err := st.Append(ctx, agg, eventstore.ExpectNew, ev("OrderPlaced", 1)); err != nil {
		t.Fatal(err)
	}

	second, err := eventstore.StartServer(eventstore.ServerConfig{DataDir: dir, Listen: "127.0.0.1:0"})
	if err == nil {
		second.Shutdown()
		t.Fatal("a second server started on a data dir in use")
	}
	if !errors.Is(err, eventstore.ErrDataDirInUse) || !strings.Contains(err.Error(), fmt.Sprintf("pid %d", os.Getpid())) {
		t.Fatalf("second server: %v; want ErrDataDirInUse naming this process", err)
	}
	if _, err := os.Stat(filepath.Join(dir, eventstore.RunningFile)); err != nil {
		t.Fatalf("the refused server touched the running server's %s: %v", eventstore.RunningFile, err)
	}
	assertVersions(t, mustLoad(t, st, agg), 1)

	st.Conn().Close()
	srv.Shutdown()
	again := eventstoretest.StartServerIn(t, dir)
	st = eventstoretest.OpenStore(t, again.ClientURL(), eventstore.Config{})
	if err := st.WaitIndexed(ctx); err != nil {
		t.Fatal(err)
	}
	assertVersions(t, mustLoad(t, st, agg), 1)
}

// A NATS port already taken fails the start with nats-server's own
// reason, not after the 30 s wait for connections, and leaves the data
// dir free.
func TestTakenPortFailsTheStart(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	dir := t.TempDir()
	srv, err := eventstore.StartServer(eventstore.ServerConfig{DataDir: dir, Listen: ln.Addr().String()})
	if err == nil {
		srv.Shutdown()
		t.Fatal("started on a taken port")
	}
	if !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("start on a taken port: %v; want the listener's error", err)
	}
	eventstoretest.StartServerIn(t, dir) // the failed start released the data dir
}

// Stopping a subscription, or a read of a whole stream ending, removes
// its consumer from the server: nats.go leaves an ordered consumer it
// stops for 5 minutes, and JetStream takes no more consumers on a stream
// that has 1,000 (event feeds opened and closed once filled it).
func TestStoppedReadersLeaveNoConsumers(t *testing.T) {
	t.Parallel()
	st, ctx := serverStore(t)
	if _, err := st.Append(ctx, order("readers-1"), eventstore.ExpectNew, ev("OrderPlaced", 1)); err != nil {
		t.Fatal(err)
	}
	consumers := func() int {
		s, err := st.JetStream().Stream(ctx, eventstore.StreamOrders)
		if err != nil {
			t.Fatal(err)
		}
		info, err := s.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return info.State.Consumers
	}
	const base = 1 // the index's: once caught up, it has replaced the one it caught up with
	eventstoretest.Eventually(t, 10*time.Second, func() bool { return st.WaitIndexed(ctx) == nil && consumers() == base },
		"the index caught up, on one consumer")
	var subs []*eventstore.Subscription
	for range 20 {
		sub, err := st.Subscribe(ctx, eventstore.StreamOrders, nil, 0, func(eventstore.Event) error { return nil })
		if err != nil {
			t.Fatal(err)
		}
		subs = append(subs, sub)
	}
	if n := consumers(); n != base+20 {
		t.Fatalf("%d consumers with 20 subscriptions open, want %d", n, base+20)
	}
	for _, sub := range subs {
		sub.Stop()
	}
	if _, err := st.ReadStream(ctx, eventstore.StreamOrders, func(eventstore.StoredMsg) error { return nil }, nil); err != nil {
		t.Fatal(err)
	}
	eventstoretest.Eventually(t, 10*time.Second, func() bool { return consumers() == base },
		"the stopped readers' consumers removed")
}

// storeThroughFreezer is a store on an embedded server of the test's own,
// connected through a Freezer, with a ctx that ends with the test.
func storeThroughFreezer(t *testing.T) (*eventstore.Store, *eventstoretest.Freezer, context.Context) {
	t.Helper()
	srv := eventstoretest.StartServer(t)
	fz := eventstoretest.StartFreezer(t, srv.ClientURL())
	return eventstoretest.OpenStore(t, fz.URL(), eventstore.Config{}), fz, ctxT(t)
}

// Stopping a subscription does not wait for nats.go's attempt to recreate
// its consumer on a server that does not answer. nats.go holds the
// consumer's lock through the attempt (a request that times out after
// 10 s, then a pause before the next), and both stopping the consumer and
// reading its name to remove it wait for that lock; Stop bounds the first
// (stopWait) and does the second in the background.
func TestSubscriptionStopsWhileItsConsumerIsRecreated(t *testing.T) {
	t.Parallel()
	st, fz, ctx := storeThroughFreezer(t)
	agg := order(uniq("stop"))
	seen := make(chan struct{}, 1)
	sub, err := st.Subscribe(ctx, eventstore.StreamOrders, []string{agg.Filter()}, 0, func(eventstore.Event) error {
		select {
		case seen <- struct{}{}:
		default:
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Stop()
	if _, err := st.Append(ctx, agg, eventstore.ExpectNew, ev("OrderPlaced", 1)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-seen:
	case <-ctx.Done():
		t.Fatal("the subscription delivered nothing")
	}

	// Only a request to recreate this subscription's consumer names the
	// order's filter (the store's index reads through a consumer of its
	// own, and nothing else reads the order from here on).
	fz.HoldUntilSent(ctx, t, agg.Filter())
	tried := time.Now()
	sub.Stop()
	if d := time.Since(tried); d >= 10*time.Second {
		t.Fatalf("Stop returned %v after nats.go began recreating the consumer: it waited for the attempt to end", d)
	}
}

// ReadStream returns as its ctx ends even while nats.go tries to recreate
// its consumer on a server that does not answer: nats.go's Next ignores
// its context then, and tries until a server answers.
func TestReadStreamEndsWithItsCtxWhileItsConsumerIsRecreated(t *testing.T) {
	t.Parallel()
	st, fz, ctx := storeThroughFreezer(t)
	// More than a read asks for at a time, on a stream that only the read
	// reads here.
	const n = eventstore.ReadPull + 3000
	js := st.JetStream()
	for i := range n {
		if _, err := js.PublishAsync(fmt.Sprintf("orderflow.default.trigger.read-%d.picked_up", i), []byte("{}")); err != nil {
			t.Fatal(err)
		}
		if i%500 == 499 {
			<-js.PublishAsyncComplete()
		}
	}
	<-js.PublishAsyncComplete()

	read, stop := context.WithCancel(ctx)
	defer stop()
	recreate := make(chan (<-chan struct{}), 1)
	done := make(chan error, 1)
	go func() {
		first := true
		_, err := st.ReadStream(read, eventstore.StreamTriggers, func(eventstore.StoredMsg) error {
			if first {
				first = false
				recreate <- fz.Sent("$JS.API.CONSUMER.CREATE." + eventstore.StreamTriggers + ".")
				fz.Hold(true)
			}
			return nil
		}, nil)
		done <- err
	}()
	select {
	case sent := <-recreate:
		select {
		case <-sent:
		case <-ctx.Done():
			t.Fatal("nats.go did not try to recreate the read's consumer after the server's heartbeats stopped")
		}
	case err := <-done:
		t.Fatalf("ReadStream = %v before it read anything", err)
	}
	eventstoretest.ReturnsOnCancel(ctx, t, "ReadStream", stop, done)
}

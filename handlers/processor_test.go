package handlers

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/orderflow/orderflow/domain"
	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/eventstore/eventstoretest"
	"github.com/orderflow/orderflow/projections"
)

var quiet = slog.New(slog.DiscardHandler)

// newCommands runs a store and the definitions read model on srv, seeded
// with the worked example.
func newCommands(t testing.TB, srv *eventstore.Server) *Commands {
	t.Helper()
	c := openCommands(t, srv)
	ctx, cancel := eventstoretest.Context(time.Minute)
	defer cancel()
	if err := SeedWorkedExample(ctx, c); err != nil {
		t.Fatal(err)
	}
	return c
}

// openCommands is Commands of a process of its own (its own connection,
// read model and orders' cache) on srv's store as it is.
func openCommands(t testing.TB, srv *eventstore.Server) *Commands {
	t.Helper()
	return openCommandsAt(t, srv.ClientURL())
}

// openCommandsAt is openCommands through the NATS server at url.
func openCommandsAt(t testing.TB, url string) *Commands {
	t.Helper()
	st := eventstoretest.OpenStore(t, url, eventstore.Config{Logger: quiet})
	defs := projections.NewDefinitions(quiet)
	ctx, cancel := eventstoretest.Context(time.Minute)
	defer cancel()
	if err := defs.Start(ctx, st); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(defs.Stop)
	return &Commands{Store: st, Defs: defs, Tenant: "default"}
}

func startProcessor(t *testing.T, c *Commands, url string, afterApply func(*message.Message)) *Processor {
	t.Helper()
	return startProcessorWith(t, c, url, ProcessorConfig{Lanes: 2, AckWait: time.Second, Logger: quiet},
		func(p *Processor) { p.afterApply = afterApply })
}

// startProcessorWith runs a processor; setup, when set, installs test
// hooks before it runs.
func startProcessorWith(t *testing.T, c *Commands, url string, cfg ProcessorConfig, setup func(*Processor)) *Processor {
	t.Helper()
	ctx, cancel := eventstoretest.Context(time.Minute)
	defer cancel()
	p, err := NewProcessor(ctx, c, url, cfg)
	if err != nil {
		t.Fatal(err)
	}
	// Closed when the test ends, before its server stops (a cleanup
	// registered after the server's runs first), even by a test that
	// does not close it itself: a processor left open reconnects to its
	// server's port for ever, and once a later test's server is given
	// that port it joins that test's processors as a member of their own.
	t.Cleanup(func() { _ = p.Close() })
	if setup != nil {
		setup(p)
	}
	go func() { _ = p.Run(context.Background()) }()
	<-p.Running()
	return p
}

// orderIDs names n orders prefix-0, prefix-1, and so on.
func orderIDs(prefix string, n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("%s-%d", prefix, i)
	}
	return ids
}

// laneFixture is a server seeded with the worked example, with orders
// placed, and a NATS connection for publishing triggers.
type laneFixture struct {
	srv *eventstore.Server
	c   *Commands
	ctx context.Context
	js  jetstream.JetStream
}

func newLaneFixture(t *testing.T, orders ...string) *laneFixture {
	t.Helper()
	srv := eventstoretest.StartServer(t)
	c := newCommands(t, srv)
	ctx, cancel := eventstoretest.Context(2 * time.Minute)
	t.Cleanup(cancel)
	meta := Meta{Actor: eventstore.Actor{Kind: eventstore.ActorUser, ID: "t"}}
	for _, id := range orders {
		if _, err := c.PlaceOrder(ctx, meta, id, WorkedExampleOrderType, ""); err != nil {
			t.Fatal(err)
		}
	}
	js, _ := jetstream.New(eventstoretest.Connect(t, srv.ClientURL()))
	return &laneFixture{srv: srv, c: c, ctx: ctx, js: js}
}

// trigger publishes an order's trigger with msgID as its Nats-Msg-Id and
// returns its stream sequence.
func (f *laneFixture) trigger(t *testing.T, order, trigger, msgID string) uint64 {
	t.Helper()
	return f.triggerWithBody(t, order, trigger, msgID, nil)
}

// unreadableTrigger publishes an order's first trigger with a body that
// is not JSON, and returns its stream sequence.
func (f *laneFixture) unreadableTrigger(t *testing.T, order, msgID string) uint64 {
	t.Helper()
	return f.triggerWithBody(t, order, WorkedExampleTriggers[0], msgID, []byte("{not json"))
}

func (f *laneFixture) triggerWithBody(t *testing.T, order, trigger, msgID string, body []byte) uint64 {
	t.Helper()
	m := nats.NewMsg(eventstore.TriggerSubject("default", order, trigger))
	m.Header.Set(jetstream.MsgIDHeader, msgID)
	m.Data = body
	ack, err := f.js.PublishMsg(f.ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	return ack.Sequence
}

// skippingLanes makes a two-lane lane stream that copies the trigger
// stream from sequence from on, as a copy that skipped the triggers
// before it would, and waits until it holds n triggers.
func (f *laneFixture) skippingLanes(t *testing.T, from uint64, n uint64) jetstream.Stream {
	t.Helper()
	cfg := eventstore.LaneStreamConfig(2, 1)
	cfg.Sources[0].OptStartSeq = from
	lanes, err := f.js.CreateStream(f.ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	eventstoretest.Eventually(t, 30*time.Second, func() bool {
		info, err := lanes.Info(f.ctx)
		return err == nil && info.State.Msgs == n
	}, fmt.Sprintf("the lane stream to copy %d triggers", n))
	return lanes
}

// skipFirstOfTwo publishes order's first two triggers (Nats-Msg-Ids
// prefix-0, prefix-1) and makes lanes that copy only the second, and
// returns their stream sequences.
func (f *laneFixture) skipFirstOfTwo(t *testing.T, order, prefix string) []uint64 {
	t.Helper()
	var seqs []uint64
	for i, tr := range WorkedExampleTriggers[:2] {
		seqs = append(seqs, f.trigger(t, order, tr, fmt.Sprintf("%s-%d", prefix, i)))
	}
	f.skippingLanes(t, seqs[1], 1)
	return seqs
}

// waitVersion waits until order stands at version v, and returns its
// history.
func (f *laneFixture) waitVersion(t *testing.T, order string, v uint64, within time.Duration, what string) []eventstore.Event {
	t.Helper()
	var history []eventstore.Event
	eventstoretest.Eventually(t, within, func() bool {
		o, evs, err := f.c.LoadOrder(f.ctx, order)
		history = evs
		return err == nil && o.Version() == v
	}, what)
	return history
}

// waitAdvanced waits until order has answered as many triggers as ids,
// and checks that each advanced it, in the order of ids.
func (f *laneFixture) waitAdvanced(t *testing.T, order string, ids ...string) {
	t.Helper()
	var history []eventstore.Event
	eventstoretest.Eventually(t, 30*time.Second, func() bool {
		o, evs, err := f.c.LoadOrder(f.ctx, order)
		history = evs
		return err == nil && o.Version() >= uint64(len(ids)+1)
	}, fmt.Sprintf("%d triggers of %s to be answered", len(ids), order))
	for i, id := range ids {
		if ev := history[i+1]; ev.Type != domain.TypeOrderAdvanced || ev.CausationID != id {
			t.Fatalf("event %d: %s caused by %q, want an advance caused by %q", i+2, ev.Type, ev.CausationID, id)
		}
	}
}

// The processor dies after storing a trigger's outcome and before
// acknowledging it: the lane hands the trigger to the next processor, and
// the order has advanced exactly once.
func TestCrashBetweenAppendAndAck(t *testing.T) {
	t.Parallel()
	f := newLaneFixture(t, "o-crash")
	srv, c, ctx, js := f.srv, f.c, f.ctx, f.js

	crashed := make(chan struct{})
	var first *Processor
	first = startProcessor(t, c, srv.ClientURL(), func(*message.Message) {
		// The outcome is stored; the process "dies" before the ack can go.
		first.nc.Close()
		close(crashed)
	})
	f.trigger(t, "o-crash", "picked_up", "trigger-1")
	select {
	case <-crashed:
	case <-ctx.Done():
		t.Fatal("the first processor never applied the trigger")
	}
	_ = first.Close()

	redelivered := make(chan struct{}, 1)
	second := startProcessor(t, c, srv.ClientURL(), func(msg *message.Message) {
		if msg.UUID == "trigger-1" {
			redelivered <- struct{}{}
		}
	})
	defer second.Close()
	select {
	case <-redelivered:
	case <-ctx.Done():
		t.Fatal("the unacknowledged trigger was not redelivered")
	}
	o, events, err := c.LoadOrder(ctx, "o-crash")
	if err != nil {
		t.Fatal(err)
	}
	advanced := 0
	for _, ev := range events {
		if ev.Type == domain.TypeOrderAdvanced {
			advanced++
		}
	}
	if advanced != 1 || o.Version() != 2 || o.View().Position.Status != "received" {
		t.Fatalf("after redelivery: %d advances, version %d, at %s", advanced, o.Version(), o.View().Position.Status)
	}
	// The lane is clear: the redelivered trigger was acknowledged.
	eventstoretest.Eventually(t, 10*time.Second, func() bool {
		stream, err := js.Stream(ctx, eventstore.StreamTriggerLanes)
		if err != nil {
			return false
		}
		info, err := stream.Info(ctx)
		return err == nil && info.State.Msgs == 0
	}, "the lane stream to empty")
}

func TestDecodeTriggerBody(t *testing.T) {
	t.Parallel()
	good := []string{"", "  ", `{}`, `{"worker":"w1","note":"torn sleeve","trigger_id":"t-1","occurred_at":"2026-11-28T09:00:00Z"}`}
	// The note's limit counts characters, as the order's check does
	// (domain.TriggerReport.Check) and as a worker app is told: a note of
	// 2,000 two-byte characters is no poison.
	note := strings.Repeat("é", domain.MaxDescriptionLen)
	good = append(good, `{"note":"`+note+`"}`, `{"worker":"`+strings.Repeat("w", domain.MaxActorIDLen)+`"}`)
	for _, b := range good {
		if _, err := DecodeTriggerBody([]byte(b)); err != nil {
			t.Errorf("%.80q: %v", b, err)
		}
	}
	if err := (domain.TriggerReport{Note: note}).Check(); err != nil {
		t.Fatalf("the order refuses the note the decoder takes: %v", err)
	}
	bad := []string{`{`, `[]`, `{"worker":1}`, `{"colour":"red"}`, `{} {}`, `"x"`, `{"occurred_at":"yesterday"}`}
	for _, b := range bad {
		if _, err := DecodeTriggerBody([]byte(b)); err == nil {
			t.Errorf("%q accepted", b)
		}
	}
	for b, want := range map[string]string{
		`{"note":"` + note + `x"}`: "trigger body: note: longer than 2000 characters",
		`{"worker":"` + strings.Repeat("w", domain.MaxActorIDLen+1) + `"}`:       "trigger body: worker: longer than 128 bytes",
		`{"trigger_id":"` + strings.Repeat("t", domain.MaxTriggerIDLen+1) + `"}`: "trigger body: trigger_id: longer than 128 bytes",
		// In the words of the API, never a Go type's or function's name.
		`[]`:                           "trigger body: the body is a JSON array; send a JSON object",
		`{"worker":1}`:                 "trigger body: field worker: a JSON number where a string belongs",
		`{"occurred_at":1}`:            `trigger body: occurred_at: not an RFC 3339 time such as "2026-11-28T09:00:00Z"`,
		`{"occurred_at":"2026-13-01"}`: `trigger body: occurred_at: not an RFC 3339 time such as "2026-11-28T09:00:00Z"`,
		`{"colour":"red"}`:             `trigger body: unknown field "colour"`,
		`{"worker":`:                   "trigger body: malformed JSON: unexpected EOF",
	} {
		if _, err := DecodeTriggerBody([]byte(b)); err == nil || err.Error() != want {
			t.Errorf("%.40q…: %v, want %q", b, err, want)
		}
	}
}

func FuzzDecodeTriggerBody(f *testing.F) {
	f.Add([]byte(`{"worker":"w1","trigger_id":"t-1"}`))
	f.Add([]byte(``))
	f.Add([]byte(`{"note":"\u0000"}`))
	f.Add([]byte(`{"worker":"a","Worker":"b"}`))
	f.Add([]byte(`{"worker":"a,\"worker\":","note":"b"}`))
	f.Add([]byte(`{"worker":"a","w\u006frker":"b"}`))
	f.Add([]byte(`{"note":null,"NOTE":"x"}`))
	f.Add([]byte(`{"occurred_at":5,"worker":[1]}`))
	f.Add([]byte(`{"worker":[1]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		body, err := DecodeTriggerBody(b)
		if err == nil && (len(body.Worker) > domain.MaxActorIDLen || len(body.TriggerID) > domain.MaxTriggerIDLen ||
			utf8.RuneCountInString(body.Note) > domain.MaxDescriptionLen) {
			t.Fatalf("accepted oversized fields: %+v", body)
		}
		// A dead letter's reason is in JSON's words, never Go's types.
		if err != nil && namesGoTypes(err.Error()) {
			t.Fatalf("%q: error %q names Go's types", b, err)
		}
		repeatedTriggerField(b) // on any input: never panics
		// The processor's quick check of a body it took finds a repeated
		// field exactly when the JSON walk does.
		if err == nil {
			if _, fast := repeatedTriggerField(b); fast != func() bool { _, ok := duplicateName(b); return ok }() {
				t.Fatalf("%q: repeatedTriggerField says %v, duplicateName the opposite", b, fast)
			}
		}
	})
}

// Two processors share the lanes out between them, and when one closes
// the other takes its lanes over.
func TestProcessorsShareLanes(t *testing.T) {
	t.Parallel()
	orders := orderIDs("o-share", 40)
	f := newLaneFixture(t, orders...)
	srv, c, ctx := f.srv, f.c, f.ctx
	first := startProcessor(t, c, srv.ClientURL(), nil)
	defer first.Close()
	second := startProcessor(t, c, srv.ClientURL(), nil)
	defer second.Close()
	eventstoretest.Eventually(t, 10*time.Second, func() bool { return first.OwnedLanes() == 1 && second.OwnedLanes() == 1 },
		"each processor to own one lane of two")
	if first.Processors() != 2 || second.Processors() != 2 {
		t.Fatalf("Processors = %d and %d, want 2", first.Processors(), second.Processors())
	}

	publish := func(k int) {
		for _, id := range orders {
			f.trigger(t, id, WorkedExampleTriggers[k], fmt.Sprintf("%s-%d", id, k))
		}
	}
	publish(0)
	eventstoretest.Eventually(t, 20*time.Second, func() bool { return first.Handled()+second.Handled() == 40 }, "40 triggers applied")
	if first.Handled() == 0 || second.Handled() == 0 {
		t.Fatalf("one processor did all the work: %d and %d", first.Handled(), second.Handled())
	}
	// The second took its lane from a live reader: handed over, not
	// released as an orphan's.
	if n := first.LaneUnpins() + second.LaneUnpins(); n != 0 {
		t.Fatalf("LaneUnpins = %d, want 0", n)
	}
	_ = second.Close()
	eventstoretest.Eventually(t, 10*time.Second, func() bool { return first.OwnedLanes() == 2 }, "the first processor to own both lanes")
	publish(1)
	eventstoretest.Eventually(t, 20*time.Second, func() bool { return first.Handled()+second.Handled() == 80 }, "80 triggers applied")
	for _, id := range orders {
		o, _, err := c.LoadOrder(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if o.Version() != 3 {
			t.Fatalf("order %s at version %d, want 3", id, o.Version())
		}
	}
}

// Processors join and leave while every order's seven triggers arrive
// back to back: the lanes change hands several times with triggers in
// flight, and still every order completes with no trigger rejected (one
// order's triggers never overtake each other across a handover).
func TestLaneHandoverKeepsOrder(t *testing.T) {
	if testing.Short() {
		t.Skip("handovers")
	}
	t.Parallel()
	const phases, perPhase = 6, 100
	orders := orderIDs("o-hand", phases*perPhase)
	f := newLaneFixture(t, orders...)
	srv, c, ctx, js := f.srv, f.c, f.ctx, f.js
	log := newLaneLog()
	cfg := ProcessorConfig{Lanes: 4, AckWait: time.Second, Heartbeat: 100 * time.Millisecond}
	started := 0
	start := func() *Processor { // each processor's lines name it
		started++
		return startProcessorWith(t, c, srv.ClientURL(), log.config(cfg, started), nil)
	}
	procs := []*Processor{start()}
	defer func() {
		for _, p := range procs {
			_ = p.Close()
		}
	}()
	settled := func() bool { return ownedOnce(cfg.Lanes, procs...) }
	var handedBack uint64
	for phase := range phases {
		f.publishAll(t, orders[phase*perPhase:(phase+1)*perPhase], "hand")
		if phase%2 == 0 || len(procs) == 1 { // a processor joins while the phase's triggers run
			procs = append(procs, start())
		} else { // the oldest leaves
			_ = procs[0].Close()
			handedBack += procs[0].HandedBack()
			procs = procs[1:]
		}
		eventstoretest.Eventually(t, 10*time.Second, settled, "the lanes to have one owner each")
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-ctx.Done():
		t.Fatal("triggers not acknowledged")
	}
	for _, p := range procs {
		handedBack += p.HandedBack()
	}
	t.Logf("triggers handed back across handovers: %d", handedBack)
	f.expectCompletedInOrder(t, orders, log, func() {
		// A context of its own: the fixture's may be over by now (a test
		// slowed down past it), and the report must not fail in turn.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for l := range cfg.Lanes {
			info, err := laneInfo(ctx, js, l)
			if err != nil {
				t.Logf("lane %d: %v", l, err)
				continue
			}
			t.Logf("lane %d: pending %d ackpending %d redelivered %d waiting %d groups %+v", l, info.NumPending, info.NumAckPending, info.NumRedelivered, info.NumWaiting, info.PriorityGroups)
		}
		for pi, p := range procs {
			t.Logf("proc %d owns %v %v %v %v", pi, p.members.owns(0), p.members.owns(1), p.members.owns(2), p.members.owns(3))
		}
	})
}

// laneInfo asks lane's consumer for its state.
func laneInfo(ctx context.Context, js jetstream.JetStream, lane int) (*jetstream.ConsumerInfo, error) {
	cons, err := js.Consumer(ctx, eventstore.StreamTriggerLanes, eventstore.LaneConsumer(lane))
	if err != nil {
		return nil, err
	}
	return cons.Info(ctx)
}

// ownedOnce reports whether the processors agree on their members: each
// of the lanes has exactly one owner among them.
func ownedOnce(lanes int, procs ...*Processor) bool {
	for lane := range lanes {
		owners := 0
		for _, p := range procs {
			if p.members.owns(lane) {
				owners++
			}
		}
		if owners != 1 {
			return false
		}
	}
	return true
}

// laneLog keeps the lanes' debug lines (deliveries, acknowledgements,
// handovers) of the processors that log to its logger: should an order's
// triggers be taken out of order (seen once under heavy load), those of
// the order are printed with the failure.
type laneLog struct {
	buf    eventstoretest.LogBuffer
	logger *slog.Logger
}

func newLaneLog() *laneLog {
	l := &laneLog{}
	l.logger = slog.New(slog.NewTextHandler(&l.buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	return l
}

// config is cfg with a logger into l whose lines name proc.
func (l *laneLog) config(cfg ProcessorConfig, proc any) ProcessorConfig {
	cfg.Logger = l.logger.With("proc", proc)
	return cfg
}

// print logs the lines of order's triggers, the lanes' handovers and the
// processors' comings and goings.
func (l *laneLog) print(t *testing.T, order string) {
	for _, line := range strings.Split(l.buf.String(), "\n") {
		if strings.Contains(line, order+".") || strings.Contains(line, " trigger processor ") ||
			strings.Contains(line, "msg=\"lane ") && !strings.Contains(line, "lane delivery") && !strings.Contains(line, "lane acknowledged") {
			t.Log(line)
		}
	}
}

// publishAll publishes the worked example's seven triggers of each order,
// back to back, without waiting for their acknowledgements; their ids
// start with prefix.
func (f *laneFixture) publishAll(t *testing.T, orders []string, prefix string) {
	t.Helper()
	for _, id := range orders {
		for k, tr := range WorkedExampleTriggers {
			m := nats.NewMsg(eventstore.TriggerSubject("default", id, tr))
			m.Header.Set(jetstream.MsgIDHeader, fmt.Sprintf("%s-%s-%d", prefix, id, k))
			if _, err := f.js.PublishMsgAsync(m); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// expectCompletedInOrder waits (a minute at most) for each order to
// finish, and checks that it completed at version 8 with no trigger
// rejected. stuck, if set, reports more before an order that does not
// finish fails the test. A minute, not less: with the machine's two cores
// shared by several -race test binaries, the lanes change hands and gate
// again and again after the handover and cut-off tests' last moves, and
// orders took up to 55 s to finish, none stuck (docs/benchmarks.md, "The
// lane tests under load").
func (f *laneFixture) expectCompletedInOrder(t *testing.T, orders []string, log *laneLog, stuck func()) {
	t.Helper()
	for _, id := range orders {
		var o *domain.Order
		var events []eventstore.Event
		deadline := time.Now().Add(eventstoretest.Patience(time.Minute))
		for {
			var err error
			o, events, err = f.c.LoadOrder(f.ctx, id)
			if err == nil && o.View().State != domain.StateActive {
				break
			}
			if time.Now().After(deadline) || f.ctx.Err() != nil {
				if stuck != nil {
					stuck()
				}
				log.print(t, id)
				if err != nil {
					t.Fatalf("order %s: %v", id, err)
				}
				t.Fatalf("order %s stuck: %+v version %d", id, o.View().Position, o.Version())
			}
			time.Sleep(10 * time.Millisecond)
		}
		for _, ev := range events {
			if ev.Type == domain.TypeTriggerRejected {
				log.print(t, id)
				t.Fatalf("order %s: a trigger was rejected: %s", id, ev.Data)
			}
		}
		if o.View().State != domain.StateCompleted || o.Version() != 8 {
			t.Fatalf("order %s: %s at version %d", id, o.View().State, o.Version())
		}
	}
}

// A trigger that keeps failing is retried in place: its order's later
// triggers wait behind it, and the other orders of the lane go on.
func TestFailingTriggerHoldsOnlyItsOrder(t *testing.T) {
	t.Parallel()
	f := newLaneFixture(t, "o-stuck", "o-free")
	srv, c, ctx := f.srv, f.c, f.ctx
	release := make(chan struct{})
	var failures atomic.Int64
	logs := &eventstoretest.LogBuffer{}
	cfg := ProcessorConfig{Lanes: 1, AckWait: time.Second, MaxRetries: 1, Logger: slog.New(slog.NewTextHandler(logs, nil))}
	p := startProcessorWith(t, c, srv.ClientURL(), cfg, func(p *Processor) {
		p.beforeApply = func(msg *message.Message) error {
			if msg.UUID != "stuck-0" {
				return nil
			}
			select {
			case <-release:
				return nil
			default:
				failures.Add(1)
				return errors.New("injected transient failure")
			}
		}
	})
	defer p.Close()
	for k := range 2 {
		for _, id := range []string{"o-stuck", "o-free"} {
			f.trigger(t, id, WorkedExampleTriggers[k], fmt.Sprintf("%s-%d", strings.TrimPrefix(id, "o-"), k))
		}
	}
	version := func(id string) uint64 {
		o, _, err := c.LoadOrder(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return o.Version()
	}
	eventstoretest.Eventually(t, 20*time.Second, func() bool { return version("o-free") == 3 && failures.Load() >= 4 },
		"the other order to take both triggers while the stuck one keeps failing")
	if v := version("o-stuck"); v != 1 {
		t.Fatalf("the stuck order moved to version %d while its first trigger was failing", v)
	}
	close(release)
	eventstoretest.Eventually(t, 20*time.Second, func() bool { return version("o-stuck") == 3 }, "the stuck order to take both triggers")
	_, events, err := c.LoadOrder(ctx, "o-stuck")
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range events {
		if ev.Type == domain.TypeTriggerRejected {
			t.Fatalf("a trigger was rejected: %s", ev.Data)
		}
	}
	// A failed attempt that is retried is a warning; a trigger that failed
	// every attempt (and goes back to the lane) is an error.
	out := logs.String()
	if !strings.Contains(out, `level=WARN msg="Error occurred, retrying"`) || strings.Contains(out, `level=ERROR msg="Error occurred, retrying"`) ||
		!strings.Contains(out, `level=ERROR msg="Handler returned error"`) {
		t.Fatalf("log:\n%s", out)
	}
}

// A trigger that fails once and takes effect on its first retry logs one
// warning for the attempt retried, and no error.
func TestRetriedAttemptLogsAWarning(t *testing.T) {
	t.Parallel()
	f := newLaneFixture(t, "o-once")
	var failed atomic.Bool
	logs := &eventstoretest.LogBuffer{}
	cfg := ProcessorConfig{Lanes: 1, AckWait: time.Second, MaxRetries: 5, Logger: slog.New(slog.NewTextHandler(logs, nil))}
	p := startProcessorWith(t, f.c, f.srv.ClientURL(), cfg, func(p *Processor) {
		p.beforeApply = func(*message.Message) error {
			if failed.CompareAndSwap(false, true) {
				return errors.New("injected transient failure")
			}
			return nil
		}
	})
	defer p.Close()
	f.trigger(t, "o-once", WorkedExampleTriggers[0], "once-0")
	f.waitAdvanced(t, "o-once", "once-0")
	out := logs.String()
	if strings.Count(out, `level=WARN msg="Error occurred, retrying"`) != 1 || !strings.Contains(out, "retry_no=1") ||
		strings.Contains(out, "level=ERROR") {
		t.Fatalf("log:\n%s", out)
	}
}

// A trigger whose outcome finds no storage left is not retried in place
// and never put aside: it waits StorageWait between attempts, the
// processor logs the condition once instead of every attempt, and the
// trigger takes effect once there is room.
func TestTriggerWaitsForStorage(t *testing.T) {
	t.Parallel()
	f := newLaneFixture(t, "o-full")
	room := make(chan struct{})
	var attempts atomic.Int64
	logs := &eventstoretest.LogBuffer{}
	cfg := ProcessorConfig{Lanes: 1, AckWait: time.Second, MaxRetries: 5, StorageWait: 50 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(logs, nil))}
	p := startProcessorWith(t, f.c, f.srv.ClientURL(), cfg, func(p *Processor) {
		p.beforeApply = func(*message.Message) error {
			select {
			case <-room:
				return nil
			default:
				attempts.Add(1)
				return fmt.Errorf("append: %w", eventstore.ErrStorageFull)
			}
		}
	})
	defer p.Close()
	f.trigger(t, "o-full", WorkedExampleTriggers[0], "full-0")
	eventstoretest.Eventually(t, 20*time.Second, func() bool { return attempts.Load() >= 3 }, "three attempts")
	if w := p.waitForRoom(); w != cfg.StorageWait {
		t.Fatalf("waitForRoom = %s while the store is full, want %s", w, cfg.StorageWait)
	}
	close(room)
	f.waitVersion(t, "o-full", 2, 20*time.Second, "the trigger to take effect once there is room")
	if dls, err := ReadDeadLetters(f.ctx, f.c.Store, DeadLetterQuery{Limit: 10}); err != nil || len(dls) != 0 {
		t.Fatalf("dead letters: %v, %v", dls, err)
	}
	out := logs.String()
	if strings.Count(out, `level=ERROR msg="no storage left for the outcomes of triggers`) != 1 ||
		strings.Contains(out, "Error occurred, retrying") || strings.Contains(out, `level=ERROR msg="Handler returned error"`) {
		t.Fatalf("log:\n%s", out)
	}
}

// A trigger whose outcome finds no stream leader is retried in place, as
// while a cluster elects one, and the processor logs that once, not every
// attempt. The same for a store that does not answer in time (a server
// busy after a start), at WARN.
func TestTriggerRetriedWithoutLeader(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name  string
		cause error
		line  string
	}{
		{"no leader", fmt.Errorf("append: %w", eventstore.ErrNoLeader), `level=ERROR msg="a stream has no leader`},
		{"no server answers for the stream", fmt.Errorf("load: %w", nats.ErrNoResponders), `level=ERROR msg="a stream has no leader`},
		{"leader not answering", fmt.Errorf("last sequence: %w", &jetstream.APIError{Code: 503, ErrorCode: 10008, Description: "JetStream system temporarily unavailable"}), `level=ERROR msg="a stream has no leader`},
		{"store too slow", fmt.Errorf("load: %w", context.DeadlineExceeded), `level=WARN msg="the event store did not answer in time`},
		{"append not acknowledged", fmt.Errorf("append: %w: %w", eventstore.ErrOutcomeUnknown, jetstream.ErrAsyncPublishTimeout), `level=WARN msg="the event store did not answer in time`},
		{"part of the history read", fmt.Errorf("load: %w", eventstore.ErrIncompleteRead), `level=ERROR msg="the event store returned part of an order's history`},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			f := newLaneFixture(t, "o-noleader")
			var attempts atomic.Int64
			logs := &eventstoretest.LogBuffer{}
			cfg := ProcessorConfig{Lanes: 1, AckWait: time.Second, MaxRetries: 3, Logger: slog.New(slog.NewTextHandler(logs, nil))}
			p := startProcessorWith(t, f.c, f.srv.ClientURL(), cfg, func(p *Processor) {
				p.beforeApply = func(*message.Message) error {
					if attempts.Add(1) <= 6 { // two rounds of in-place retries
						return c.cause
					}
					return nil
				}
			})
			defer p.Close()
			f.trigger(t, "o-noleader", WorkedExampleTriggers[0], "noleader-0")
			f.waitVersion(t, "o-noleader", 2, 20*time.Second, "the trigger to take effect once the store answers")
			if w := p.waitForRoom(); w != 0 {
				t.Fatalf("waitForRoom = %s without a storage refusal", w)
			}
			out := logs.String()
			if strings.Count(out, c.line) != 1 ||
				strings.Contains(out, "level=WARN msg=\"Error occurred, retrying\"") || strings.Contains(out, `level=ERROR msg="Handler returned error"`) {
				t.Fatalf("log:\n%s", out)
			}
		})
	}
}

// A delivery that never reaches the processor (a connection dropped with
// it in flight) comes back only after AckWait. The order's next trigger,
// delivered meanwhile, waits for it: both take effect in stream order.
func TestLostDeliveryHoldsItsOrder(t *testing.T) {
	t.Parallel()
	f := newLaneFixture(t, "o-lost")
	srv, c, ctx := f.srv, f.c, f.ctx
	dropped := make(chan struct{})
	var once sync.Once
	cfg := ProcessorConfig{Lanes: 1, AckWait: time.Second, Logger: quiet}
	p := startProcessorWith(t, c, srv.ClientURL(), cfg, func(p *Processor) {
		p.lanes.dropDelivery = func(m jetstream.Msg) bool {
			meta, err := m.Metadata()
			if err != nil || meta.NumDelivered > 1 || !strings.HasSuffix(m.Subject(), "."+WorkedExampleTriggers[1]) {
				return false
			}
			once.Do(func() { close(dropped) })
			return true
		}
	})
	defer p.Close()
	version := func() uint64 {
		o, _, err := c.LoadOrder(ctx, "o-lost")
		if err != nil {
			t.Fatal(err)
		}
		return o.Version()
	}
	// The first trigger opens the lane's gate and takes effect.
	f.trigger(t, "o-lost", WorkedExampleTriggers[0], "lost-0")
	eventstoretest.Eventually(t, 20*time.Second, func() bool { return version() == 2 }, "the first trigger")
	// The second one's first delivery is lost; the third is delivered.
	f.trigger(t, "o-lost", WorkedExampleTriggers[1], "lost-1")
	<-dropped
	f.trigger(t, "o-lost", WorkedExampleTriggers[2], "lost-2")
	eventstoretest.Eventually(t, 20*time.Second, func() bool { return version() == 4 }, "all three triggers")
	_, events, err := c.LoadOrder(ctx, "o-lost")
	if err != nil {
		t.Fatal(err)
	}
	for i, ev := range events[1:] {
		if ev.Type != domain.TypeOrderAdvanced || ev.CausationID != fmt.Sprintf("lost-%d", i) {
			t.Fatalf("event %d is %s caused by %s, want OrderAdvanced caused by lost-%d", i+2, ev.Type, ev.CausationID, i)
		}
	}
}

// A trigger sent over HTTP whose outcome's live copy never arrives (a
// reconnect dropped it) answers from the order's history once the wait
// is over.
func TestMissedOutcomeAnswersFromHistory(t *testing.T) {
	t.Parallel()
	f := newLaneFixture(t, "o-missed")
	p := startProcessor(t, f.c, f.srv.ClientURL(), nil)
	defer p.Close()
	f.trigger(t, "o-missed", WorkedExampleTriggers[0], "missed-0")
	f.trigger(t, "o-missed", WorkedExampleTriggers[0], "missed-1") // no longer the expected trigger
	f.waitVersion(t, "o-missed", 3, 20*time.Second, "both outcomes stored")

	none := make(chan *nats.Msg)
	for _, tc := range []struct {
		trigger   string // WorkedExampleTriggers[0] when empty
		triggerID string
		duplicate bool
		want      domain.TriggerOutcome
		reason    domain.RejectReason
		taken     bool // the id is another trigger's: a conflict
	}{
		{triggerID: "missed-0", want: domain.OutcomeAdvanced},
		{triggerID: "missed-0", duplicate: true, want: domain.OutcomeDuplicate},
		{triggerID: "missed-1", reason: domain.RejectUnexpectedTrigger},
		{trigger: WorkedExampleTriggers[1], triggerID: "missed-0", taken: true},
		{trigger: WorkedExampleTriggers[1], triggerID: "missed-1", duplicate: true, taken: true},
	} {
		trigger := cmp.Or(tc.trigger, WorkedExampleTriggers[0])
		got, err := f.c.awaitOutcome(f.ctx, none, "o-missed", trigger, tc.triggerID, tc.duplicate, time.Millisecond)
		var rejected *domain.RejectedError
		switch {
		case tc.taken:
			if !errors.Is(err, domain.ErrDuplicate) || problemFor(err).Status != http.StatusConflict {
				t.Errorf("%s for %s: got %q, %v; want a conflict: the id is %s's", tc.triggerID, trigger, got, err, WorkedExampleTriggers[0])
			}
		case tc.reason != "":
			if !errors.As(err, &rejected) || rejected.Reason != tc.reason || rejected.Expected != WorkedExampleTriggers[1] {
				t.Errorf("%s: got %q, %v; want rejected %s expecting %s", tc.triggerID, got, err, tc.reason, WorkedExampleTriggers[1])
			}
		case err != nil || got != tc.want:
			t.Errorf("%s (duplicate %v): got %q, %v; want %s", tc.triggerID, tc.duplicate, got, err, tc.want)
		}
	}
	_, err := f.c.awaitOutcome(f.ctx, none, "o-missed", WorkedExampleTriggers[0], "never-sent", false, time.Millisecond)
	if !errors.Is(err, context.DeadlineExceeded) || problemFor(err).Status != http.StatusServiceUnavailable {
		t.Errorf("a trigger without an outcome: got %v (HTTP %d), want a deadline error answered 503", err, problemFor(err).Status)
	}
}

// A trigger id names one trigger of an order: sent again for another
// trigger key, over NATS (a new Nats-Msg-Id, the id in the body) it is put
// aside as a dead letter naming the trigger the id is already of, and
// over HTTP it is refused as a conflict, whichever check finds it (the
// order as cached, JetStream's duplicate, the order's history). Nothing
// is recorded either way.
func TestTriggerIDOfAnotherTriggerIsRefused(t *testing.T) {
	t.Parallel()
	f := newLaneFixture(t, "o-reused")
	p := startProcessor(t, f.c, f.srv.ClientURL(), nil)
	defer p.Close()
	first := f.trigger(t, "o-reused", WorkedExampleTriggers[0], "reused-0")
	f.waitAdvanced(t, "o-reused", "reused-0")

	body, _ := json.Marshal(TriggerBody{TriggerID: "reused-0", Worker: "w"})
	f.triggerWithBody(t, "o-reused", WorkedExampleTriggers[1], "another-msg-id", body)
	var dls []DeadLetter
	eventstoretest.Eventually(t, 30*time.Second, func() bool {
		var err error
		dls, err = ReadDeadLetters(f.ctx, f.c.Store, DeadLetterQuery{Limit: 10})
		return err == nil && len(dls) == 1
	}, "the trigger with a taken id put aside")
	want := fmt.Sprintf(`"reused-0" is already the id of trigger %q on order "o-reused" (advanced)`, WorkedExampleTriggers[0])
	if dl := dls[0]; dl.TriggerID != "reused-0" || dl.Trigger != WorkedExampleTriggers[1] || !strings.Contains(dl.Reason, want) {
		t.Fatalf("dead letter %+v, want trigger %s with id reused-0, the reason saying %s", dl, WorkedExampleTriggers[1], want)
	}
	// Sent again, it would only be put aside again.
	if _, err := Redrive(f.ctx, f.c.Store, dls[0]); !errors.Is(err, ErrNotRedrivable) || !strings.Contains(err.Error(), want) {
		t.Fatalf("Redrive of the dead letter: %v, want ErrNotRedrivable saying %s", err, want)
	}
	// An auditor's account tells the two triggers with one id apart.
	if rep, err := CheckTriggers(f.ctx, f.c.Store, nil); err != nil || rep.Triggers != 2 || rep.Answered != 1 || rep.DeadLetters != 1 || len(rep.Missing) != 0 {
		t.Fatalf("CheckTriggers = %+v, %v; want 2 triggers: 1 answered, 1 dead letter", rep, err)
	}

	conflict := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, domain.ErrDuplicate) || problemFor(err).Status != http.StatusConflict || !strings.Contains(err.Error(), `"reused-0" is already the id of trigger`) {
			t.Fatalf("%s: %v (HTTP %d), want a conflict naming the trigger the id is of", what, err, problemFor(err).Status)
		}
	}
	_, err := f.c.SendTrigger(f.ctx, "o-reused", WorkedExampleTriggers[1], TriggerBody{TriggerID: "reused-0", Worker: "w"})
	conflict("SendTrigger", err)
	conflict("JetStream's duplicate", f.c.checkTriggerIDOwner(f.ctx, "o-reused", WorkedExampleTriggers[1], "reused-0", first))
	if err := f.c.checkTriggerIDOwner(f.ctx, "o-reused", WorkedExampleTriggers[0], "reused-0", first); err != nil {
		t.Fatalf("JetStream's duplicate of the same trigger: %v", err)
	}
	_, found, err := f.c.repeatOf(f.ctx, "o-reused", WorkedExampleTriggers[1], "reused-0")
	if !found {
		t.Fatal("repeatOf did not find the id in the history")
	}
	conflict("the order's history", err)
	if out, err := f.c.SendTrigger(f.ctx, "o-reused", WorkedExampleTriggers[0], TriggerBody{TriggerID: "reused-0", Worker: "w"}); err != nil || out != domain.OutcomeDuplicate {
		t.Fatalf("the id again with its own trigger: %q, %v; want duplicate", out, err)
	}
	if o, _, err := f.c.LoadOrder(f.ctx, "o-reused"); err != nil || o.Version() != 2 {
		t.Fatalf("order at version %d (%v), want 2: nothing recorded for the refused triggers", o.Version(), err)
	}
}

// A trigger id spelled like the key of a supervisor's request on the
// order is a trigger id like any other: the request's event is not the
// trigger's outcome, so the trigger takes effect, and sent again it is a
// duplicate, whether the answer comes from the order or its history.
func TestTriggerIDSpelledLikeARequestKey(t *testing.T) {
	t.Parallel()
	f := newLaneFixture(t, "o-keys")
	p := startProcessor(t, f.c, f.srv.ClientURL(), nil)
	defer p.Close()
	desk := Meta{Actor: eventstore.Actor{Kind: eventstore.ActorUser, ID: "desk"}}
	hold, resume := desk, desk
	hold.RequestKey, resume.RequestKey = "k-1", "k-2"
	if _, err := f.c.HoldOrder(f.ctx, hold, "o-keys", "customer called"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.c.ResumeOrder(f.ctx, resume, "o-keys", "customer called back"); err != nil {
		t.Fatal(err)
	}
	if out, err := f.c.SendTrigger(f.ctx, "o-keys", WorkedExampleTriggers[0], TriggerBody{TriggerID: "k-1", Worker: "w"}); err != nil || out != domain.OutcomeAdvanced {
		t.Fatalf("trigger k-1: %q, %v; want advanced", out, err)
	}
	if out, found, err := f.c.repeatOf(f.ctx, "o-keys", WorkedExampleTriggers[0], "k-1"); !found || err != nil || out != domain.OutcomeDuplicate {
		t.Fatalf("k-1 again, from the history: %q (found %v), %v; want duplicate", out, found, err)
	}
	if out, err := f.c.SendTrigger(f.ctx, "o-keys", WorkedExampleTriggers[0], TriggerBody{TriggerID: "k-1", Worker: "w"}); err != nil || out != domain.OutcomeDuplicate {
		t.Fatalf("k-1 again: %q, %v; want duplicate", out, err)
	}
	// The resume, caused by k-2, is not the outcome of trigger k-2.
	body, _ := json.Marshal(TriggerBody{TriggerID: "k-2", Worker: "w"})
	f.triggerWithBody(t, "o-keys", WorkedExampleTriggers[1], "k-2-msg", body)
	var history []eventstore.Event
	eventstoretest.Eventually(t, 30*time.Second, func() bool {
		var err error
		_, history, err = f.c.LoadOrder(f.ctx, "o-keys")
		return err == nil && len(history) == 5
	}, "k-2's outcome")
	if ev, ok := causedBy(history, "k-2"); !ok || ev.Type != domain.TypeOrderAdvanced || ev.Version != 5 {
		t.Fatalf("causedBy k-2 = %+v (%v), want the advance at version 5, not the resume", ev, ok)
	}
}

// A trigger id sent again over HTTP to a process whose cached order has
// not seen the trigger take effect (another process applied it), and
// that JetStream no longer takes for a duplicate (here: first published
// under another Nats-Msg-Id, as after the duplicate window): the answer
// is duplicate at once, from the order as stored, not the first
// trigger's outcome after waiting for one that never comes.
func TestTriggerSentAgainToAProcessThatCachedTheOrderBefore(t *testing.T) {
	t.Parallel()
	f := newLaneFixture(t, "o-stale")
	if _, err := f.c.CurrentOrder(f.ctx, "o-stale"); err != nil { // cached at version 1
		t.Fatal(err)
	}
	other := openCommands(t, f.srv) // another process: its own cache
	p := startProcessor(t, other, f.srv.ClientURL(), nil)
	defer p.Close()
	body, _ := json.Marshal(TriggerBody{TriggerID: "stale-0", Worker: "w"})
	f.triggerWithBody(t, "o-stale", WorkedExampleTriggers[0], "first-msg-id", body)
	f.waitAdvanced(t, "o-stale", "stale-0")
	_, history, err := f.c.LoadOrder(f.ctx, "o-stale")
	if err != nil {
		t.Fatal(err)
	}
	last := history[len(history)-1].Sequence
	eventstoretest.Eventually(t, 30*time.Second, func() bool { return f.c.Store.IndexedLast(f.c.orderAddr("o-stale")) == last },
		"the load index to have the trigger's outcome") // as it has long before the duplicate window passes

	out, err := f.c.SendTrigger(f.ctx, "o-stale", WorkedExampleTriggers[0], TriggerBody{TriggerID: "stale-0", Worker: "w"})
	if err != nil || out != domain.OutcomeDuplicate {
		t.Fatalf("the trigger sent again: %q, %v; want duplicate", out, err)
	}
	_, err = f.c.SendTrigger(f.ctx, "o-stale", WorkedExampleTriggers[1], TriggerBody{TriggerID: "stale-0", Worker: "w"})
	if !errors.Is(err, domain.ErrDuplicate) {
		t.Fatalf("the id for another trigger: %v, want a conflict", err)
	}
}

// An order stays in the command cache while it can move; once completed
// it stays only while there is room (and in a quarter of the cache at
// most), and is the first to go when the cache is full: the cache holds
// the orders in progress before any that have ended. While it stays, a trigger sent for it again (a late one, or
// each of a restored store's triggers, which its new lanes read again) is
// answered without reading it from the store; before, a completed order
// left the cache at once, and each such trigger read it again.
func TestFinishedOrdersGoFirstFromAFullCache(t *testing.T) {
	t.Parallel()
	srv := eventstoretest.StartServer(t)
	c := newCommands(t, srv)
	c.OrderCacheSize = 8 // 2 completed orders at most
	ctx, cancel := eventstoretest.Context(time.Minute)
	defer cancel()
	meta := Meta{Actor: eventstore.Actor{Kind: eventstore.ActorWorker, ID: "w"}}
	if _, err := c.PlaceOrder(ctx, meta, "o-cache", WorkedExampleOrderType, ""); err != nil {
		t.Fatal(err)
	}
	cached := func(id string) bool {
		return c.orderCache().has(c.orderAddr(id).Filter())
	}
	for i, tr := range WorkedExampleTriggers {
		if !cached("o-cache") {
			t.Fatalf("an order in progress is not cached before trigger %d", i)
		}
		if _, _, err := c.ApplyTrigger(ctx, meta, "o-cache", tr, fmt.Sprintf("cache-%d", i), domain.TriggerReport{Worker: "w"}); err != nil {
			t.Fatal(err)
		}
	}
	loads := c.OrderCacheStats().Loads
	// Answered from the cache, and right: rejected as completed, and the
	// same trigger again a duplicate.
	for _, want := range []domain.TriggerOutcome{domain.OutcomeRejected, domain.OutcomeDuplicate} {
		res, _, err := c.ApplyTrigger(ctx, meta, "o-cache", WorkedExampleTriggers[0], "cache-late", domain.TriggerReport{Worker: "w"})
		if err != nil || res.Outcome != want || (want == domain.OutcomeRejected && res.Reason != domain.RejectCompleted) {
			t.Fatalf("a trigger after completion: %+v, %v, want %s", res, err, want)
		}
	}
	if !cached("o-cache") || c.OrderCacheStats().Loads != loads {
		t.Fatalf("the completed order read again: cached %v, %+v (%d loads before)", cached("o-cache"), c.OrderCacheStats(), loads)
	}
	currentIsHistory(t, ctx, c, "o-cache")

	// Two more completed: the two completed last stay.
	for _, id := range []string{"o-done-1", "o-done-2"} {
		if _, err := c.PlaceOrder(ctx, meta, id, WorkedExampleOrderType, ""); err != nil {
			t.Fatal(err)
		}
		for k, tr := range WorkedExampleTriggers {
			if _, _, err := c.ApplyTrigger(ctx, meta, id, tr, fmt.Sprintf("%s-%d", id, k), domain.TriggerReport{Worker: "w"}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if cached("o-cache") || !cached("o-done-1") || !cached("o-done-2") {
		t.Fatalf("cached: o-cache %v, o-done-1 %v, o-done-2 %v; want the two completed last", cached("o-cache"), cached("o-done-1"), cached("o-done-2"))
	}
	// Orders in progress fill the cache: the completed ones go.
	inProgress := orderIDs("o-moving", 8)
	for _, id := range inProgress {
		if _, err := c.PlaceOrder(ctx, meta, id, WorkedExampleOrderType, ""); err != nil {
			t.Fatal(err)
		}
	}
	allInProgress := func() bool {
		for _, id := range inProgress {
			if !cached(id) {
				return false
			}
		}
		return !cached("o-cache") && !cached("o-done-1") && !cached("o-done-2")
	}
	if !allInProgress() {
		t.Fatal("a full cache holds a completed order, or lacks an order in progress")
	}
	// Read again for a late trigger, it finds no room, and the orders in
	// progress stay.
	res, _, err := c.ApplyTrigger(ctx, meta, "o-cache", WorkedExampleTriggers[1], "cache-later", domain.TriggerReport{Worker: "w"})
	if err != nil || res.Reason != domain.RejectCompleted {
		t.Fatalf("a trigger after completion: %+v, %v", res, err)
	}
	if !allInProgress() {
		t.Fatal("a completed order read again pushed an order in progress out of a full cache")
	}
}

// An ended order with a long history stays in the cache: a worker app
// that keeps sending triggers for it (each one rejected, each one making
// the history longer) does not have it read again every time.
func TestLongFinishedOrdersStayInTheCache(t *testing.T) {
	t.Parallel()
	c, ctx, meta := placedOrder(t, "o-done")
	for i := range longHistory {
		if _, _, err := c.ApplyTrigger(ctx, meta, "o-done", "delivered", fmt.Sprintf("early-%d", i), domain.TriggerReport{Worker: "w"}); err != nil {
			t.Fatal(err)
		}
	}
	for i, tr := range WorkedExampleTriggers {
		if _, _, err := c.ApplyTrigger(ctx, meta, "o-done", tr, fmt.Sprintf("step-%d", i), domain.TriggerReport{Worker: "w"}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 5 {
		res, _, err := c.ApplyTrigger(ctx, meta, "o-done", "delivered", fmt.Sprintf("late-%d", i), domain.TriggerReport{Worker: "w"})
		if err != nil || res.Reason != domain.RejectCompleted {
			t.Fatalf("a trigger for the completed order: %+v, %v", res, err)
		}
	}
	got, _ := currentIsHistory(t, ctx, c, "o-done")
	if got.State != domain.StateCompleted || !c.orderCache().has(c.orderAddr("o-done").Filter()) {
		t.Fatalf("the completed order: %+v, cached %v", got, c.orderCache().has(c.orderAddr("o-done").Filter()))
	}
	if s := c.OrderCacheStats(); s.Loads != 1 { // placing it
		t.Fatalf("histories read from the store: %+v", s)
	}
}

// A trigger published without an id is named by where ORDERFLOW_TRIGGERS
// stored it, "trigger-seq-<N>": the same name however a lane numbers its
// copy (a lane stream made anew, a trigger copied again after a crash), so
// it takes effect once and never passes for another trigger's duplicate.
func TestTriggerWithoutIDIsNamedByItsStoredSequence(t *testing.T) {
	t.Parallel()
	f := newLaneFixture(t, "o-noid")
	p := startProcessor(t, f.c, f.srv.ClientURL(), nil)
	defer p.Close()
	var seqs []uint64
	for _, tr := range WorkedExampleTriggers[:2] {
		ack, err := f.js.Publish(f.ctx, eventstore.TriggerSubject("default", "o-noid", tr), nil) // no Nats-Msg-Id, no body
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, ack.Sequence)
	}
	events := f.waitVersion(t, "o-noid", 3, 30*time.Second, "both triggers applied")
	for i, ev := range events[1:] {
		if want := fmt.Sprintf("trigger-seq-%d", seqs[i]); ev.Type != domain.TypeOrderAdvanced || ev.CausationID != want {
			t.Fatalf("event %d: %s caused by %q, want an advance caused by %q", i+2, ev.Type, ev.CausationID, want)
		}
	}

	// A copy numbered differently from ORDERFLOW_TRIGGERS (here: the
	// second trigger is the first message of a stream copying from it)
	// keeps the name.
	copies, err := f.js.CreateStream(f.ctx, jetstream.StreamConfig{Name: "COPY",
		Sources: []*jetstream.StreamSource{{Name: eventstore.StreamTriggers, OptStartSeq: seqs[1]}}})
	if err != nil {
		t.Fatal(err)
	}
	cons, err := copies.OrderedConsumer(f.ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	m, err := cons.Next(jetstream.FetchMaxWait(10 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	meta, err := m.Metadata()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := triggerMessage(m, meta.Sequence.Stream, false).UUID, fmt.Sprintf("trigger-seq-%d", seqs[1]); meta.Sequence.Stream == seqs[1] || got != want {
		t.Fatalf("the copy at sequence %d is named %q, want %q", meta.Sequence.Stream, got, want)
	}
}

// When the lane stream's copy of ORDERFLOW_TRIGGERS skips a stored
// trigger (here: a lane stream that starts copying at the second), the
// processor finds it and publishes it again with its id; the order's
// later trigger waits for it, so both take effect, in order, once.
// CheckTriggers then accounts for every stored trigger.
func TestLanesRecoverTriggersTheCopySkipped(t *testing.T) {
	t.Parallel()
	f := newLaneFixture(t, "o-skip")
	seqs := f.skipFirstOfTwo(t, "o-skip", "skip")
	// Before a processor looks, an auditor's account finds the skipped
	// trigger missing (stored, acknowledged, never to be processed) and
	// the copied one on its way.
	rep, err := CheckTriggers(f.ctx, f.c.Store, nil)
	want := MissingTrigger{Seq: seqs[0], Tenant: "default", OrderID: "o-skip", Trigger: WorkedExampleTriggers[0], TriggerID: "skip-0"}
	if err != nil || rep.Triggers != 2 || rep.Answered != 0 || rep.DeadLetters != 0 || rep.Pending != 1 || len(rep.Missing) != 1 || rep.Missing[0] != want {
		t.Fatalf("CheckTriggers before a processor = %+v, %v; want 2 triggers, 1 on its way, %+v missing", rep, err, want)
	}
	if got, line := rep.Missing[0].String(), fmt.Sprintf("trigger %d: tenant default, order o-skip, trigger %s, id skip-0", seqs[0], WorkedExampleTriggers[0]); got != line {
		t.Errorf("a missing trigger is listed as %q, want %q", got, line)
	}
	logs := &eventstoretest.LogBuffer{}
	p := startProcessorWith(t, f.c, f.srv.ClientURL(), ProcessorConfig{Lanes: 2, AckWait: time.Second, Logger: slog.New(slog.NewTextHandler(logs, nil))}, nil)
	defer p.Close()
	// The skipped trigger takes effect first, then the one the lanes held
	// back for it.
	f.waitAdvanced(t, "o-skip", "skip-0", "skip-1")
	if p.Recopied() != 1 {
		t.Fatalf("Recopied = %d, want 1", p.Recopied())
	}
	if out := logs.String(); !strings.Contains(out, "level=ERROR") || !strings.Contains(out, fmt.Sprintf("trigger_sequence=%d", seqs[0])) ||
		!strings.Contains(out, "trigger_id=skip-0") {
		t.Fatalf("log:\n%s", out)
	}

	// An auditor's account: every stored trigger answered, one for an
	// unknown order a dead letter.
	f.trigger(t, "o-none", WorkedExampleTriggers[0], "skip-none")
	eventstoretest.Eventually(t, 30*time.Second, func() bool {
		rep, err = CheckTriggers(f.ctx, f.c.Store, nil)
		return err == nil && rep.DeadLetters == 1
	}, "the trigger for an unknown order put aside")
	if rep.Triggers != 4 || rep.Answered != 3 || rep.Pending != 0 || len(rep.Missing) != 0 {
		t.Fatalf("CheckTriggers = %+v, want 4 triggers (the skipped one published again), 3 answered, none missing", rep)
	}
}

// A stored trigger the copy skipped whose id its order has, but as the id
// of another trigger, was never processed: the processor publishes it
// again, and it is put aside, as it would have been when it came.
// CheckTriggers accounts for it as a dead letter, not as answered.
func TestLanesRecoverASkippedTriggerWithATakenID(t *testing.T) {
	t.Parallel()
	f := newLaneFixture(t, "o-skipid")
	f.trigger(t, "o-skipid", WorkedExampleTriggers[0], "skipid-0")
	if _, _, err := f.c.ApplyTrigger(f.ctx, Meta{Actor: eventstore.Actor{Kind: eventstore.ActorWorker, ID: "w"}}, "o-skipid", WorkedExampleTriggers[0], "skipid-0", domain.TriggerReport{Worker: "w"}); err != nil {
		t.Fatal(err) // taken effect before the copy's gap
	}
	body, _ := json.Marshal(TriggerBody{TriggerID: "skipid-0", Worker: "w"})
	taken := f.triggerWithBody(t, "o-skipid", WorkedExampleTriggers[1], "skipid-taken", body)
	next := f.trigger(t, "o-skipid", WorkedExampleTriggers[1], "skipid-1")
	f.skippingLanes(t, next, 1)

	p := startProcessorWith(t, f.c, f.srv.ClientURL(), ProcessorConfig{Lanes: 2, AckWait: time.Second}, nil)
	defer p.Close()
	f.waitAdvanced(t, "o-skipid", "skipid-0", "skipid-1")
	var dls []DeadLetter
	eventstoretest.Eventually(t, 30*time.Second, func() bool {
		var err error
		dls, err = ReadDeadLetters(f.ctx, f.c.Store, DeadLetterQuery{Limit: 10})
		return err == nil && len(dls) == 1
	}, fmt.Sprintf("the skipped trigger (sequence %d) with a taken id put aside", taken))
	if dl := dls[0]; dl.TriggerID != "skipid-0" || dl.Trigger != WorkedExampleTriggers[1] || !strings.Contains(dl.Reason, "is already the id of trigger") {
		t.Fatalf("dead letter %+v, want trigger %s with id skipid-0, its id taken", dl, WorkedExampleTriggers[1])
	}
	if p.Recopied() != 1 {
		t.Fatalf("Recopied = %d, want 1: only the trigger with the taken id", p.Recopied())
	}
	rep, err := CheckTriggers(f.ctx, f.c.Store, nil)
	if err != nil || rep.Triggers != 4 || rep.Answered != 2 || rep.DeadLetters != 2 || rep.Pending != 0 || len(rep.Missing) != 0 {
		t.Fatalf("CheckTriggers = %+v, %v; want 4 triggers (one published again), 2 answered, 2 dead letters (the same trigger twice), none missing", rep, err)
	}
}

// Stored triggers the copy skipped that the processor would have put
// aside when they came are put aside now, each with its reason: one whose
// body cannot be read (it cannot be published again with its id), one
// for an order that does not exist, one whose order id is not a safe
// token. None is left missing, no lookup fails, and the copy's change is
// recorded as dealt with.
func TestLanesPutAsideSkippedTriggersThatCannotBeProcessed(t *testing.T) {
	t.Parallel()
	f := newLaneFixture(t, "o-skipbad")
	unreadable := f.unreadableTrigger(t, "o-skipbad", "skipbad-junk")
	f.trigger(t, "o-nobody", WorkedExampleTriggers[0], "skipbad-none")
	f.trigger(t, "o+bad", WorkedExampleTriggers[0], "skipbad-token")
	next := f.trigger(t, "o-skipbad", WorkedExampleTriggers[0], "skipbad-0")
	f.skippingLanes(t, next, 1)

	logs := &eventstoretest.LogBuffer{}
	p := startProcessorWith(t, f.c, f.srv.ClientURL(), ProcessorConfig{Lanes: 2, AckWait: time.Second, Logger: slog.New(slog.NewTextHandler(logs, nil))}, nil)
	defer p.Close()
	f.waitAdvanced(t, "o-skipbad", "skipbad-0")
	var dls []DeadLetter
	eventstoretest.Eventually(t, 30*time.Second, func() bool {
		var err error
		dls, err = ReadDeadLetters(f.ctx, f.c.Store, DeadLetterQuery{Limit: 10})
		return err == nil && len(dls) == 3
	}, "the three skipped triggers put aside")
	want := map[string]string{"skipbad-junk": "trigger body", "skipbad-none": `unknown order "o-nobody"`, "skipbad-token": "order id"}
	for _, dl := range dls {
		if reason, ok := want[dl.TriggerID]; !ok || !strings.Contains(dl.Reason, reason) || dl.Trigger != WorkedExampleTriggers[0] {
			t.Errorf("dead letter %+v: want one of %v with its reason", dl, want)
		}
		delete(want, dl.TriggerID)
	}
	eventstoretest.Eventually(t, 30*time.Second, func() bool {
		m, ok, err := p.loadCopyMark(f.ctx)
		return err == nil && ok && m.Offset == int64(next-unreadable)
	}, "the copy's change recorded as dealt with")
	rep, err := CheckTriggers(f.ctx, f.c.Store, nil)
	if err != nil || rep.Triggers != 4 || rep.Answered != 1 || rep.DeadLetters != 3 || rep.Pending != 0 || len(rep.Missing) != 0 {
		t.Fatalf("CheckTriggers = %+v, %v; want 4 triggers, 1 answered, 3 dead letters, none missing", rep, err)
	}
	if strings.Contains(logs.String(), "looking for a skipped trigger") {
		t.Fatalf("a lookup failed:\n%s", logs.String())
	}
}

// A trigger whose body fails today's checks (a field given twice) but
// whose id its order answered (it took effect under an earlier version's
// laxer reading, and a restored store's lanes deliver it again) is a
// duplicate, not a dead letter.
func TestTriggerAnsweredBeforeTheChecksIsADuplicate(t *testing.T) {
	t.Parallel()
	f := newLaneFixture(t, "o-old")
	meta := Meta{Actor: eventstore.Actor{Kind: eventstore.ActorWorker, ID: "w"}}
	if _, _, err := f.c.ApplyTrigger(f.ctx, meta, "o-old", WorkedExampleTriggers[0], "old-1", domain.TriggerReport{Worker: "w"}); err != nil {
		t.Fatal(err)
	}
	p := startProcessor(t, f.c, f.srv.ClientURL(), nil)
	defer p.Close()
	f.triggerWithBody(t, "o-old", WorkedExampleTriggers[0], "old-1-copy", []byte(`{"trigger_id":"old-1","worker":"a","worker":"b"}`))
	f.trigger(t, "o-old", WorkedExampleTriggers[1], "old-2") // after it in the order's lane
	f.waitAdvanced(t, "o-old", "old-1", "old-2")
	if dls, err := ReadDeadLetters(f.ctx, f.c.Store, DeadLetterQuery{Limit: 10}); err != nil || len(dls) != 0 {
		t.Fatalf("dead letters %+v, %v; want none", dls, err)
	}
	// A body that fails the checks, with an id its order has not answered,
	// is still put aside.
	f.triggerWithBody(t, "o-old", WorkedExampleTriggers[2], "old-3", []byte(`{"worker":"a","worker":"b"}`))
	eventstoretest.Eventually(t, 30*time.Second, func() bool {
		dls, err := ReadDeadLetters(f.ctx, f.c.Store, DeadLetterQuery{Limit: 10})
		return err == nil && len(dls) == 1 && dls[0].TriggerID == "old-3"
	}, "the trigger with a field given twice put aside")
}

// A processor records the copy's change it dealt with; the next one to
// start judges the lanes against that record, so it neither looks for
// skipped triggers again nor logs that the lanes are behind.
func TestLanesRecordWhereTheCopyStands(t *testing.T) {
	t.Parallel()
	f := newLaneFixture(t, "o-mark")
	f.skipFirstOfTwo(t, "o-mark", "mark")
	first := startProcessorWith(t, f.c, f.srv.ClientURL(), ProcessorConfig{Lanes: 2, AckWait: time.Second, Logger: quiet}, nil)
	f.waitAdvanced(t, "o-mark", "mark-0", "mark-1")
	eventstoretest.Eventually(t, 30*time.Second, func() bool {
		m, ok, err := first.loadCopyMark(f.ctx)
		return err == nil && ok && m.Offset == 1
	}, "the copy's change recorded")
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}

	f.trigger(t, "o-mark", WorkedExampleTriggers[2], "mark-2")
	logs := &eventstoretest.LogBuffer{}
	next := startProcessorWith(t, f.c, f.srv.ClientURL(), ProcessorConfig{Lanes: 2, AckWait: time.Second, Logger: slog.New(slog.NewTextHandler(logs, nil))}, nil)
	defer next.Close()
	f.waitAdvanced(t, "o-mark", "mark-0", "mark-1", "mark-2")
	if next.Recopied() != 0 || strings.Contains(logs.String(), "level=WARN") || strings.Contains(logs.String(), "level=ERROR") {
		t.Fatalf("Recopied = %d; log:\n%s", next.Recopied(), logs.String())
	}
}

// While it runs, the processor keeps the lanes' copy's resume point just
// past the last trigger copied (every 10 s: this test takes that long).
func TestProcessorSetsWhereTheCopyResumes(t *testing.T) {
	t.Parallel()
	f := newLaneFixture(t, "o-resume")
	resumeAt := func(want uint64) {
		t.Helper()
		eventstoretest.Eventually(t, 30*time.Second, func() bool {
			lc, err := f.c.Store.LaneCopyState(f.ctx)
			return err == nil && lc.ResumeAt == want
		}, fmt.Sprintf("the copy's resume point at %d", want))
	}
	p := startProcessor(t, f.c, f.srv.ClientURL(), nil)
	defer p.Close()
	var ids []string
	for i := range 2 {
		ids = append(ids, fmt.Sprintf("resume-%d", i))
		seq := f.trigger(t, "o-resume", WorkedExampleTriggers[i], ids[i])
		f.waitAdvanced(t, "o-resume", ids...)
		resumeAt(seq + 1)
	}
}

// A stored trigger that cannot be processed is put aside once, though the
// lanes copy it again (as after a crash of the server) and it is read a
// second time; the dead-letter stream remembers its id long enough.
func TestDeadLetterOncePerStoredTrigger(t *testing.T) {
	t.Parallel()
	f := newLaneFixture(t)
	seq := f.unreadableTrigger(t, "o-bad", "bad-0")
	deadLetters := func() int {
		dls, err := ReadDeadLetters(f.ctx, f.c.Store, DeadLetterQuery{Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		return len(dls)
	}
	first := startProcessor(t, f.c, f.srv.ClientURL(), nil)
	eventstoretest.Eventually(t, 30*time.Second, func() bool { return deadLetters() == 1 }, "the trigger put aside")
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}

	if err := f.js.DeleteStream(f.ctx, eventstore.StreamTriggerLanes); err != nil {
		t.Fatal(err)
	}
	lanes := f.skippingLanes(t, seq, 1) // the same stored trigger, copied again
	next := startProcessor(t, f.c, f.srv.ClientURL(), nil)
	defer next.Close()
	eventstoretest.Eventually(t, 30*time.Second, func() bool {
		info, err := lanes.Info(f.ctx)
		return err == nil && info.State.Msgs == 0
	}, "the copy read and acknowledged")
	if n := deadLetters(); n != 1 {
		t.Fatalf("%d dead letters, want 1", n)
	}
	// Longer than the server's copy reaches back after a crash.
	dl, err := f.js.Stream(f.ctx, eventstore.StreamDeadLetter)
	if err != nil {
		t.Fatal(err)
	}
	if w := dl.CachedInfo().Config.Duplicates; w < 10*time.Minute {
		t.Fatalf("the dead-letter stream remembers ids for %v, want at least 10 minutes", w)
	}
}

// A trigger message larger than eventstore.MaxTriggerMsgSize (body and
// headers) is refused to its publisher and stored nowhere; one whose body
// is over MaxTriggerBody but fits is stored and put aside with the reason;
// either way the order's next trigger takes effect. Before, the trigger
// stream took messages of up to 1 MiB, each stored again whole as a dead
// letter: a worker app sending 3,000 of them wrote 6 GB the streams can
// never drop, and the process held 1.4 GB of the server's buffers after.
func TestOversizedTriggers(t *testing.T) {
	t.Parallel()
	f := newLaneFixture(t, "o-big")
	p := startProcessor(t, f.c, f.srv.ClientURL(), nil)
	defer p.Close()
	body := func(n int) []byte { // a JSON object of n bytes
		return []byte(`{"note":"` + strings.Repeat("x", n-len(`{"note":""}`)) + `"}`)
	}
	publish := func(msgID string, b []byte, header int) (*jetstream.PubAck, error) {
		m := nats.NewMsg(eventstore.TriggerSubject("default", "o-big", WorkedExampleTriggers[0]))
		m.Header.Set(jetstream.MsgIDHeader, msgID)
		if header > 0 {
			m.Header.Set("Trace-Padding", strings.Repeat("h", header))
		}
		m.Data = b
		return f.js.PublishMsg(f.ctx, m)
	}
	stored := lastSeqOf(t, f, eventstore.StreamTriggers)
	for _, c := range []struct {
		name         string
		body, header int
	}{
		{"a body over the message limit", eventstore.MaxTriggerMsgSize + 1, 0},
		{"a body of 1 MiB", 1 << 20, 0},
		{"a body within the body limit, with headers that take it over", MaxTriggerBody, 8 << 10},
	} {
		ack, err := publish("big-"+c.name, body(c.body), c.header)
		if !errors.Is(err, jetstream.ErrStreamMessageExceedsMaximum) {
			t.Fatalf("%s: %v, %+v; want %v", c.name, err, ack, jetstream.ErrStreamMessageExceedsMaximum)
		}
	}
	if now := lastSeqOf(t, f, eventstore.StreamTriggers); now != stored {
		t.Fatalf("the trigger stream went from sequence %d to %d: a refused trigger was stored", stored, now)
	}

	// Stored, and put aside: a body over its limit in a message within
	// its own, and a body at its limit with headers of a few KiB (its
	// note is over 2,000 characters).
	for _, c := range []struct {
		msgID        string
		body, header int
		reason       string
	}{
		{"big-body", MaxTriggerBody + 1, 0, fmt.Sprintf("trigger body of %d bytes is over the %d byte limit", MaxTriggerBody+1, MaxTriggerBody)},
		{"full-body", MaxTriggerBody, 4 << 10, "note: longer than 2000 characters"},
	} {
		if _, err := publish(c.msgID, body(c.body), c.header); err != nil {
			t.Fatalf("%s: a body of %d bytes: %v", c.msgID, c.body, err)
		}
		var dls []DeadLetter
		eventstoretest.Eventually(t, 30*time.Second, func() bool {
			var err error
			dls, err = ReadDeadLetters(f.ctx, f.c.Store, DeadLetterQuery{Limit: 10})
			return err == nil && len(dls) > 0 && dls[len(dls)-1].TriggerID == c.msgID
		}, c.msgID+" put aside")
		if got := dls[len(dls)-1].Reason; !strings.Contains(got, c.reason) {
			t.Fatalf("%s: dead letter's reason %q, want it to say %q", c.msgID, got, c.reason)
		}
	}
	f.trigger(t, "o-big", WorkedExampleTriggers[0], "small")
	f.waitAdvanced(t, "o-big", "small")
}

func lastSeqOf(t *testing.T, f *laneFixture, stream string) uint64 {
	t.Helper()
	seq, err := f.c.Store.LastSequence(f.ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	return seq
}

// A dead letter goes on the subject of its tenant, order and trigger key,
// and the log names them; while a process of an earlier version has set
// the dead-letter stream back to the one subject of all, it goes there
// instead of failing.
func TestDeadLetterSubjects(t *testing.T) {
	t.Parallel()
	f := newLaneFixture(t)
	logs := &eventstoretest.LogBuffer{}
	p := startProcessorWith(t, f.c, f.srv.ClientURL(), ProcessorConfig{Lanes: 2, AckWait: time.Second, Logger: slog.New(slog.NewTextHandler(logs, nil))}, nil)
	defer p.Close()
	deadLetterOn := func(order, msgID string) string {
		t.Helper()
		f.trigger(t, order, WorkedExampleTriggers[0], msgID)
		var dls []DeadLetter
		eventstoretest.Eventually(t, 30*time.Second, func() bool {
			all, err := ReadDeadLetters(f.ctx, f.c.Store, DeadLetterQuery{Limit: 10})
			dls = all
			return err == nil && len(all) > 0 && all[len(all)-1].TriggerID == msgID
		}, "the trigger for an unknown order put aside")
		stream, err := f.js.Stream(f.ctx, eventstore.StreamDeadLetter)
		if err != nil {
			t.Fatal(err)
		}
		m, err := stream.GetMsg(f.ctx, dls[len(dls)-1].Seq)
		if err != nil {
			t.Fatal(err)
		}
		return m.Subject
	}
	if got, want := deadLetterOn("o-ghost", "ghost-1"), eventstore.DeadLetterSubjectFor("default", "o-ghost", WorkedExampleTriggers[0]); got != want {
		t.Fatalf("dead letter on %q, want %q", got, want)
	}
	// The processor logs once the dead letter is stored, so the line may
	// come a moment after the dead letter can be read.
	want := `level=WARN msg="trigger put aside as a dead letter (orderflow deadletters lists them)" trigger_sequence=1 tenant=default order=o-ghost trigger=picked_up trigger_id=ghost-1 reason="poison trigger: unknown order`
	eventstoretest.Eventually(t, 30*time.Second, func() bool { return strings.Contains(logs.String(), want) },
		"a log line with "+want)

	stream, err := f.js.Stream(f.ctx, eventstore.StreamDeadLetter)
	if err != nil {
		t.Fatal(err)
	}
	cfg := stream.CachedInfo().Config
	cfg.Subjects = []string{eventstore.DeadLetterSubject} // as an earlier version makes it
	if _, err := f.js.UpdateStream(f.ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if got := deadLetterOn("o-ghost-2", "ghost-2"); got != eventstore.DeadLetterSubject {
		t.Fatalf("dead letter on %q, want %q", got, eventstore.DeadLetterSubject)
	}
}

// Dead letters are logged one by one only up to deadLetterLines in each
// window; the rest are counted, and one line says how many once the
// window ends or the processor closes. Before, a worker app's flood of
// 30,000 poison triggers wrote 30,000 lines.
func TestDeadLetterLinesAreBounded(t *testing.T) {
	t.Parallel()
	f := newLaneFixture(t)
	logs := &eventstoretest.LogBuffer{}
	p := startProcessorWith(t, f.c, f.srv.ClientURL(), ProcessorConfig{Lanes: 2, AckWait: time.Second, Logger: slog.New(slog.NewTextHandler(logs, nil))},
		func(p *Processor) { p.deadLog.n, p.deadLog.window = 3, time.Hour })
	const n = 12
	for i := range n {
		f.trigger(t, fmt.Sprintf("o-ghost-%d", i), WorkedExampleTriggers[0], fmt.Sprintf("ghost-%d", i))
	}
	eventstoretest.Eventually(t, 30*time.Second, func() bool {
		all, err := ReadDeadLetters(f.ctx, f.c.Store, DeadLetterQuery{Limit: 100})
		return err == nil && len(all) == n
	}, "every trigger put aside")
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	out := logs.String()
	if got := strings.Count(out, `msg="trigger put aside as a dead letter`); got != 3 {
		t.Fatalf("%d dead letters logged one by one, want 3:\n%s", got, out)
	}
	want := `level=WARN msg="more triggers put aside as dead letters than are logged one by one (orderflow deadletters lists them)" count=9 logged_at_most=3 every=1h0m0s`
	if got := strings.Count(out, "more triggers put aside"); got != 1 || !strings.Contains(out, want) {
		t.Fatalf("want one line %s, got:\n%s", want, out)
	}
}

// A line budget's count of the lines it left out is logged when its
// window ends, without a close; the next line then starts a window of
// its own, and is logged.
func TestLineBudgetLogsTheCountWhenTheWindowEnds(t *testing.T) {
	t.Parallel()
	logs := &eventstoretest.LogBuffer{}
	b := newLineBudget(slog.New(slog.NewTextHandler(logs, nil)), "left out", 2, time.Second)
	defer b.close()
	for i := range 5 { // within microseconds: one window
		b.warn("line", "i", i)
	}
	counted := func() (lines, leftOut int) {
		for l := range strings.Lines(logs.String()) {
			switch {
			case strings.Contains(l, `msg=line`):
				lines++
			case strings.Contains(l, `msg="left out"`):
				_, c, _ := strings.Cut(l, "count=")
				c, _, _ = strings.Cut(c, " ")
				k, err := strconv.Atoi(c)
				if err != nil {
					t.Fatalf("line %q", l)
				}
				leftOut += k
			}
		}
		return lines, leftOut
	}
	if lines, _ := counted(); lines != 2 {
		t.Fatalf("%d lines logged in the window, want 2:\n%s", lines, logs.String())
	}
	eventstoretest.Eventually(t, 10*time.Second, func() bool {
		_, leftOut := counted()
		return leftOut == 3
	}, "the three left out counted when the window ended")
	b.warn("line", "i", 5)
	if lines, _ := counted(); lines != 3 {
		t.Fatalf("a line after the window ended was not logged:\n%s", logs.String())
	}
}

// A trigger whose time, in UTC, lies outside years 0 to 9999 (which RFC
// 3339 spells with an offset: "9999-12-31T23:59:59-23:00") is put aside
// with the reason, and the order's next trigger takes effect. Before, its
// outcome could not be encoded and the trigger was tried again for good,
// holding every later trigger of its order.
func TestTriggerAtATimeNoOutcomeCanRecord(t *testing.T) {
	t.Parallel()
	f := newLaneFixture(t, "o-year")
	p := startProcessorWith(t, f.c, f.srv.ClientURL(), ProcessorConfig{Lanes: 2, AckWait: time.Second, Logger: quiet}, nil)
	defer p.Close()
	f.triggerWithBody(t, "o-year", WorkedExampleTriggers[0], "year-0", []byte(`{"worker":"ana","occurred_at":"9999-12-31T23:59:59-23:00"}`))
	f.triggerWithBody(t, "o-year", WorkedExampleTriggers[0], "year-1", []byte(`{"worker":"ana","occurred_at":"2026-12-07T09:00:00+01:00"}`))
	f.waitAdvanced(t, "o-year", "year-1")
	var dls []DeadLetter
	eventstoretest.Eventually(t, 10*time.Second, func() bool {
		all, err := ReadDeadLetters(f.ctx, f.c.Store, DeadLetterQuery{Limit: 10})
		dls = all
		return err == nil && len(all) == 1
	}, "the trigger put aside")
	if dls[0].TriggerID != "year-0" || !strings.Contains(dls[0].Reason, "occurred_at: is year 10000 in UTC") {
		t.Fatalf("dead letter %+v", dls[0])
	}
}

// A trigger that was put aside as a dead letter (an unreadable body) is
// not in the lanes and not in its order's history; looking for skipped
// triggers must not take it for one and publish it again.
func TestLanesRecoveryLeavesDeadLettersAlone(t *testing.T) {
	t.Parallel()
	f := newLaneFixture(t, "o-dead")
	logs := &eventstoretest.LogBuffer{}
	p := startProcessorWith(t, f.c, f.srv.ClientURL(), ProcessorConfig{Lanes: 2, AckWait: time.Second, Logger: slog.New(slog.NewTextHandler(logs, nil))}, nil)
	defer p.Close()
	seq := f.unreadableTrigger(t, "o-dead", "dead-0")
	eventstoretest.Eventually(t, 30*time.Second, func() bool {
		dls, err := ReadDeadLetters(f.ctx, f.c.Store, DeadLetterQuery{Limit: 10})
		return err == nil && len(dls) == 1 && dls[0].TriggerID == "dead-0"
	}, "the unreadable trigger put aside")
	p.recoverSkipped(seq, seq)
	if p.Recopied() != 0 || strings.Contains(logs.String(), "level=ERROR") {
		t.Fatalf("Recopied = %d; log:\n%s", p.Recopied(), logs.String())
	}
}

// A process died while it published the triggers the lanes had skipped
// again: one is published, its order was held only in that process's
// memory, and the process had read on past the skip. The next process
// starts reading beyond the skipped trigger and still finds it (it looks
// below where it starts), takes the copy already in the lanes for the one
// it awaits, and runs it before the order's later trigger.
func TestLanesRecoverAfterAProcessDiedRecovering(t *testing.T) {
	t.Parallel()
	f := newLaneFixture(t, "o-mid")
	skipped := f.trigger(t, "o-mid", WorkedExampleTriggers[0], "mid-0")
	for i := range 3 { // another order's triggers, read by the process that died
		f.trigger(t, "o-gone", WorkedExampleTriggers[i], fmt.Sprintf("gone-%d", i))
	}
	later := f.trigger(t, "o-mid", WorkedExampleTriggers[1], "mid-1")
	lanes := f.skippingLanes(t, skipped+1, 4)
	for seq := uint64(1); seq <= 3; seq++ { // processed by the process that died
		if err := lanes.DeleteMsg(f.ctx, seq); err != nil {
			t.Fatal(err)
		}
	}
	if !inLanes(f.ctx, lanes, later, "default", "o-mid", WorkedExampleTriggers[1]) ||
		inLanes(f.ctx, lanes, skipped, "default", "o-mid", WorkedExampleTriggers[0]) {
		t.Fatal("inLanes does not tell the copied trigger from the skipped one")
	}
	// What it published again before it died.
	if _, err := publishAgain(f.ctx, f.js, "default", "o-mid", WorkedExampleTriggers[0], "mid-0", nil,
		recopyPrefix+strconv.FormatUint(skipped, 10)); err != nil {
		t.Fatal(err)
	}

	p := startProcessorWith(t, f.c, f.srv.ClientURL(), ProcessorConfig{Lanes: 2, AckWait: time.Second, Logger: quiet}, nil)
	defer p.Close()
	f.waitAdvanced(t, "o-mid", "mid-0", "mid-1")
}

// SendTrigger (the HTTP route) looks for a repeated trigger id in the
// orders' cache. A process whose cache has not seen another process's
// work still answers a repeated trigger id as a duplicate at once: JetStream
// reports the id as known, and the order's history is read then.
func TestSendTriggerWithAStaleCache(t *testing.T) {
	t.Parallel()
	srv := eventstoretest.StartServer(t)
	c := newCommands(t, srv)
	startProcessor(t, c, srv.ClientURL(), nil)
	// Another process's commands: a cache of their own; a read timeout
	// long enough that only the history can answer within the test.
	other := &Commands{Store: c.Store, Defs: c.Defs, Tenant: "default", ReadTimeout: time.Hour}
	ctx, cancel := eventstoretest.Context(30 * time.Second)
	defer cancel()
	meta := Meta{Actor: eventstore.Actor{Kind: eventstore.ActorUser, ID: "test"}}
	if _, err := c.PlaceOrder(ctx, meta, "o-1", WorkedExampleOrderType, ""); err != nil {
		t.Fatal(err)
	}
	send := func(cmds *Commands, trigger, id string, want domain.TriggerOutcome) {
		t.Helper()
		if got, err := cmds.SendTrigger(ctx, "o-1", trigger, TriggerBody{TriggerID: id, Worker: "ana"}); err != nil || got != want {
			t.Fatalf("%s (%s): %v, %v; want %s", trigger, id, got, err, want)
		}
	}
	send(other, "picked_up", "t-0", domain.OutcomeAdvanced) // other caches the order as placed
	send(c, "items_tagged", "t-1", domain.OutcomeAdvanced)
	send(other, "items_tagged", "t-1", domain.OutcomeDuplicate)
	send(other, "picked_up", "t-0", domain.OutcomeDuplicate)
	send(c, "items_tagged", "t-1", domain.OutcomeDuplicate) // from the cache
	if s := other.OrderCacheStats(); s.Cached != 1 {
		t.Fatalf("other's cache: %+v", s)
	}
}

// An order is kept in memory as it stands, so a trigger, a supervisor
// action and a read cost no read of its history, however long: the store
// is asked only for events after the ones in memory. What a read answers
// is what the whole history says, times included.
func TestLongHistoryIsNotReadAgain(t *testing.T) {
	t.Parallel()
	c, ctx, meta := placedOrder(t, "o-long")
	for i := range 300 {
		res, _, err := c.ApplyTrigger(ctx, meta, "o-long", "delivered", fmt.Sprintf("wrong-%d", i), domain.TriggerReport{Worker: "w"})
		if err != nil || res.Outcome != domain.OutcomeRejected {
			t.Fatalf("wrong trigger %d: %+v, %v", i, res, err)
		}
		if i%50 == 0 {
			if _, err := c.HoldOrder(ctx, meta, "o-long", "check"); err != nil {
				t.Fatal(err)
			}
			if _, err := c.ResumeOrder(ctx, meta, "o-long", "check"); err != nil {
				t.Fatal(err)
			}
		}
	}
	got, events := currentIsHistory(t, ctx, c, "o-long")
	if s := c.OrderCacheStats(); s.Loads != 1 { // placing it: a new order is looked for once
		t.Fatalf("histories read from the store: %+v", s)
	}
	if got.Version != 313 || got.State != domain.StateActive || got.EnteredAt != events[0].OccurredAt || got.UpdatedAt != events[312].OccurredAt {
		t.Fatalf("the order: %+v", got)
	}
}

// A process answers a read with what another process stored after the
// order it holds in memory, and its next command decides on that too.
func TestCurrentOrderSeesAnotherProcess(t *testing.T) {
	t.Parallel()
	c, ctx, meta := placedOrder(t, "o-1")
	other := &Commands{Store: c.Store, Defs: c.Defs, Tenant: "default"}
	if _, err := other.CurrentOrder(ctx, "o-1"); err != nil { // other holds it as placed
		t.Fatal(err)
	}
	if _, _, err := c.ApplyTrigger(ctx, meta, "o-1", "picked_up", "t-1", domain.TriggerReport{Worker: "w"}); err != nil {
		t.Fatal(err)
	}
	got, err := other.CurrentOrder(ctx, "o-1")
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != 2 || got.Position.Status != "received" || got.EnteredAt.IsZero() || got.EnteredAt != got.UpdatedAt {
		t.Fatalf("other reads %+v", got)
	}
	res, snap, err := other.ApplyTrigger(ctx, meta, "o-1", "items_tagged", "t-2", domain.TriggerReport{Worker: "w"})
	if err != nil || res.Outcome != domain.OutcomeAdvanced || snap.Version != 3 {
		t.Fatalf("other's trigger: %+v %+v %v", res, snap, err)
	}
	if s := other.OrderCacheStats(); s.Loads != 1 {
		t.Fatalf("other read the whole history %d times, want once", s.Loads)
	}
	if _, err := c.CurrentOrder(ctx, "no-such-order"); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("an unknown order: %v", err)
	}
	if c.orderCache().has(c.orderAddr("no-such-order").Filter()) {
		t.Fatal("an unknown order is cached")
	}
}

// Commands and reads on one order from many goroutines: each command
// holds the order in memory alone, so none conflicts with another in this
// process, and every read is a state the history passed through.
func TestOneOrderFromManyGoroutines(t *testing.T) {
	t.Parallel()
	c, ctx, meta := placedOrder(t, "o-many")
	const workers, each = 6, 20
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				var err error
				switch i % 3 {
				case 0:
					_, _, err = c.ApplyTrigger(ctx, meta, "o-many", "delivered", fmt.Sprintf("w%d-%d", w, i), domain.TriggerReport{Worker: "w"})
				case 1:
					var o OrderSnapshot
					if o, err = c.CurrentOrder(ctx, "o-many"); err == nil && o.Version == 0 {
						err = fmt.Errorf("read %+v", o)
					}
				case 2:
					if _, err = c.HoldOrder(ctx, meta, "o-many", "x"); err == nil {
						_, err = c.ResumeOrder(ctx, meta, "o-many", "x")
					} else if errors.Is(err, domain.ErrConflict) {
						err = nil // held by another goroutine just now
					}
				}
				if err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	currentIsHistory(t, ctx, c, "o-many")
	// A conflict would have read the history again.
	if s := c.OrderCacheStats(); s.Loads != 1 {
		t.Fatalf("histories read from the store: %+v", s)
	}
}

// If-Match is checked against the order as the store holds it: a version
// another process stored since this one cached the order is not refused
// as stale.
func TestIfMatchSeesAnotherProcess(t *testing.T) {
	t.Parallel()
	c, ctx, meta := placedOrder(t, "o-1")
	other := &Commands{Store: c.Store, Defs: c.Defs, Tenant: "default"}
	if _, _, err := other.ApplyTrigger(ctx, meta, "o-1", "picked_up", "t-1", domain.TriggerReport{Worker: "w"}); err != nil {
		t.Fatal(err)
	}
	seen, stale := uint64(2), uint64(2)
	o, err := c.HoldOrder(ctx, Meta{Actor: meta.Actor, IfMatch: &seen}, "o-1", "x")
	if err != nil || o.Version != 3 || o.State != domain.StateOnHold {
		t.Fatalf("If-Match 2 at version 2: %+v, %v", o, err)
	}
	if _, err := c.ResumeOrder(ctx, Meta{Actor: meta.Actor, IfMatch: &stale}, "o-1", "x"); !errors.Is(err, ErrPreconditionFailed) {
		t.Fatalf("If-Match 2 at version 3: %v", err)
	}
}

// placedOrder is Commands on a server of its own with a worked-example
// order placed (and held in memory), and a ctx and worker meta for the
// test.
func placedOrder(t *testing.T, id string) (*Commands, context.Context, Meta) {
	t.Helper()
	c := newCommands(t, eventstoretest.StartServer(t))
	ctx, cancel := eventstoretest.Context(time.Minute)
	t.Cleanup(cancel)
	meta := Meta{Actor: eventstore.Actor{Kind: eventstore.ActorWorker, ID: "w"}}
	if _, err := c.PlaceOrder(ctx, meta, id, WorkedExampleOrderType, ""); err != nil {
		t.Fatal(err)
	}
	return c, ctx, meta
}

// currentIsHistory reads the order as c answers it and fails the test
// unless that is what the order's whole history says (times included).
func currentIsHistory(t *testing.T, ctx context.Context, c *Commands, id string) (OrderSnapshot, []eventstore.Event) {
	t.Helper()
	got, err := c.CurrentOrder(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	o, events, err := c.LoadOrder(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if want := snapshotFrom(o, events); !reflect.DeepEqual(got, want) || got.Version != uint64(len(events)) {
		t.Fatalf("the order in memory:\n%+v\nits history says:\n%+v", got, want)
	}
	return got, events
}

// A server stopped hard can come back with triggers in the lane stream
// below their lane's acknowledgement floor (acknowledged, their removal
// lost), where no lane delivers them again; a consumer reset past
// triggers leaves them the same way, which is how this test makes them.
// The processor removes them: one whose trigger took effect stays at
// that, one whose trigger did not is published again and takes effect.
func TestLanesRemoveWhatTheirFloorPassed(t *testing.T) {
	t.Parallel()
	f := newLaneFixture(t, "o-left", "o-stranded")
	first := startProcessor(t, f.c, f.srv.ClientURL(), nil)
	f.trigger(t, "o-left", WorkedExampleTriggers[0], "left-0")
	f.waitAdvanced(t, "o-left", "left-0")
	lanes, err := f.js.Stream(f.ctx, eventstore.StreamTriggerLanes)
	if err != nil {
		t.Fatal(err)
	}
	// Its acknowledgement taken (the outcome is stored before it): the
	// lanes hold only what comes next.
	eventstoretest.Eventually(t, 30*time.Second, func() bool {
		info, err := lanes.Info(f.ctx)
		return err == nil && info.State.Msgs == 0
	}, "left-0 acknowledged")
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	f.trigger(t, "o-left", WorkedExampleTriggers[1], "left-1")
	f.trigger(t, "o-stranded", WorkedExampleTriggers[0], "stranded-0")
	var last uint64
	eventstoretest.Eventually(t, 30*time.Second, func() bool {
		info, err := lanes.Info(f.ctx)
		last = info.State.LastSeq
		return err == nil && info.State.Msgs == 2
	}, "the two triggers copied into the lanes")
	// left-1 takes effect as if its lane had delivered it.
	meta := Meta{Actor: eventstore.Actor{Kind: eventstore.ActorWorker, ID: "w"}}
	if _, _, err := f.c.ApplyTrigger(f.ctx, meta, "o-left", WorkedExampleTriggers[1], "left-1", domain.TriggerReport{Worker: "w"}); err != nil {
		t.Fatal(err)
	}
	nc := eventstoretest.Connect(t, f.srv.ClientURL())
	for i := range 2 {
		resp, err := nc.RequestWithContext(f.ctx, "$JS.API.CONSUMER.RESET."+eventstore.StreamTriggerLanes+"."+eventstore.LaneConsumer(i),
			fmt.Appendf(nil, `{"seq":%d}`, last+1))
		if err != nil || strings.Contains(string(resp.Data), `"error"`) {
			t.Fatalf("reset lane %d: %v %s", i, err, resp.Data)
		}
	}
	if left, err := f.c.Store.LaneLeftovers(f.ctx, []string{eventstore.LaneConsumer(0), eventstore.LaneConsumer(1)}); err != nil || len(left) != 2 {
		t.Fatalf("LaneLeftovers = %d, %v; want the two triggers", len(left), err)
	}

	// Taken over, a lane is reset to its first trigger, which would
	// deliver the leftovers again (TestLaneTakenFromAGoneReader); here they
	// stay, as they do when they come while a process runs the lanes.
	logs := &eventstoretest.LogBuffer{}
	p := startProcessorWith(t, f.c, f.srv.ClientURL(), ProcessorConfig{Lanes: 2, AckWait: time.Second, Logger: slog.New(slog.NewTextHandler(logs, nil))},
		func(p *Processor) { p.lanes.noReset = true })
	defer p.Close()
	f.waitAdvanced(t, "o-stranded", "stranded-0")
	eventstoretest.Eventually(t, 30*time.Second, func() bool {
		info, err := lanes.Info(f.ctx)
		return err == nil && info.State.Msgs == 0
	}, "the lanes emptied")
	if p.LaneLeftovers() != 2 || p.Recopied() != 1 || !strings.Contains(logs.String(), "removed=2") {
		t.Fatalf("LaneLeftovers = %d, Recopied = %d; log:\n%s", p.LaneLeftovers(), p.Recopied(), logs.String())
	}
	if o, _, err := f.c.LoadOrder(f.ctx, "o-left"); err != nil || o.Version() != 3 {
		t.Fatalf("o-left at version %d (%v), want 3: left-1 took effect once", o.Version(), err)
	}
	rep, err := CheckTriggers(f.ctx, f.c.Store, nil)
	if err != nil || rep.Triggers != 4 || rep.Answered != 4 || rep.Pending != 0 || len(rep.Missing) != 0 {
		t.Fatalf("CheckTriggers = %+v, %v; want 4 triggers (one published again), all answered", rep, err)
	}
}

// A processor whose server goes away between its set-up and its run (a
// restart while it starts) runs, and processes triggers once the server is
// back: the lanes were looked up during the set-up (retried as the
// store's creates are), so running them asks nothing of the server.
// Before, each lane looked itself up when the router subscribed it, and
// the run failed ("cannot subscribe topic lane-0").
func TestProcessorStartOutlastsAServerRestart(t *testing.T) {
	t.Parallel()
	dir, listen := t.TempDir(), fmt.Sprintf("127.0.0.1:%d", eventstoretest.FreePort(t))
	srv := eventstoretest.StartServerAt(t, dir, listen)
	c := newCommands(t, srv)
	ctx, cancel := eventstoretest.Context(2 * time.Minute)
	defer cancel()
	meta := Meta{Actor: eventstore.Actor{Kind: eventstore.ActorUser, ID: "t"}}
	if _, err := c.PlaceOrder(ctx, meta, "o-restart", WorkedExampleOrderType, ""); err != nil {
		t.Fatal(err)
	}
	p, err := NewProcessor(ctx, c, srv.ClientURL(), ProcessorConfig{Lanes: 2, AckWait: time.Second, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()

	srv.Shutdown()
	ran := make(chan error, 1)
	go func() { ran <- p.Run(context.Background()) }()
	select {
	case <-p.Running():
	case err := <-ran:
		t.Fatalf("the processor stopped while its server was away: %v", err)
	case <-ctx.Done():
		t.Fatal("the processor did not run")
	}
	eventstoretest.StartServerAt(t, dir, listen)

	js, _ := jetstream.New(eventstoretest.Connect(t, srv.ClientURL()))
	f := &laneFixture{c: c, ctx: ctx, js: js}
	f.trigger(t, "o-restart", WorkedExampleTriggers[0], "restart-0")
	f.waitVersion(t, "o-restart", 2, 30*time.Second, "the trigger to take effect")
}

// After a restart a server may load the lane stream before
// ORDERFLOW_TRIGGERS: the copy then fails ("stream not found") and the
// server tries it again only about 12 s later. Here the lane stream is
// made before the trigger stream exists, which fails the copy the same
// way; the processor sets the copy up again at once (the lanes are
// empty), and a trigger takes effect. At once means at its first look,
// as it starts: the looks after it are an hour apart here (a second
// apart by default, and the first was a second on, so after every such
// restart the first triggers waited that second).
func TestProcessorSetsUpACopyThatFoundNoTriggers(t *testing.T) {
	t.Parallel()
	srv := eventstoretest.StartServer(t)
	ctx, cancel := eventstoretest.Context(time.Minute)
	defer cancel()
	js, err := jetstream.New(eventstoretest.Connect(t, srv.ClientURL()))
	if err != nil {
		t.Fatal(err)
	}
	lanes, err := js.CreateStream(ctx, eventstore.LaneStreamConfig(2, 1))
	if err != nil {
		t.Fatal(err)
	}
	eventstoretest.Eventually(t, 10*time.Second, func() bool {
		info, err := lanes.Info(ctx)
		return err == nil && len(info.Sources) == 1 && info.Sources[0].Error != nil
	}, "the copy to fail")

	c := newCommands(t, srv) // makes ORDERFLOW_TRIGGERS
	meta := Meta{Actor: eventstore.Actor{Kind: eventstore.ActorUser, ID: "t"}}
	if _, err := c.PlaceOrder(ctx, meta, "o-late-copy", WorkedExampleOrderType, ""); err != nil {
		t.Fatal(err)
	}
	p := startProcessorWith(t, c, srv.ClientURL(), ProcessorConfig{Lanes: 2, AckWait: time.Second, Logger: quiet, copyCheckEvery: time.Hour}, nil)
	f := &laneFixture{c: c, ctx: ctx, js: js}
	f.trigger(t, "o-late-copy", WorkedExampleTriggers[0], "late-copy-0")
	f.waitVersion(t, "o-late-copy", 2, 30*time.Second, "the trigger to take effect")
	if p.CopyRestarts() == 0 {
		t.Fatal("the trigger took effect on the server's own retry: the processor did not set the copy up again")
	}
}

// A lane whose unacknowledged triggers went to a reader that is gone (a
// process killed, or a server restarted under it: the pin lapsed, the
// deliveries were never acknowledged) is reset when a processor takes it,
// and the triggers take effect at once, in order, instead of after
// AckWait (a minute here, longer than the test waits). The reset starts
// at the lane's first trigger, so one the lane holds below its floor (as
// a kill can leave) comes with them instead of waiting for the sweeps.
func TestLaneTakenFromAGoneReader(t *testing.T) {
	t.Parallel()
	f := newLaneFixture(t, "o-orphan", "o-below")
	const ackWait = time.Minute
	if _, err := f.c.Store.EnsureLanes(f.ctx, eventstore.LaneConfig{Lanes: 1, AckWait: ackWait}); err != nil {
		t.Fatal(err)
	}
	lanes, err := f.js.Stream(f.ctx, eventstore.StreamTriggerLanes)
	if err != nil {
		t.Fatal(err)
	}
	copied := func(n uint64) uint64 {
		t.Helper()
		var last uint64
		eventstoretest.Eventually(t, 30*time.Second, func() bool {
			info, err := lanes.Info(f.ctx)
			last = info.State.LastSeq
			return err == nil && info.State.Msgs == n
		}, fmt.Sprintf("%d triggers copied into the lane", n))
		return last
	}
	f.trigger(t, "o-below", WorkedExampleTriggers[0], "below-0")
	last := copied(1)
	if _, err := lanes.ResetConsumerToSequence(f.ctx, eventstore.LaneConsumer(0), last+1); err != nil {
		t.Fatal(err) // below-0 is now below the lane's floor
	}
	ids := []string{"orphan-0", "orphan-1"}
	for i, id := range ids {
		f.trigger(t, "o-orphan", WorkedExampleTriggers[i], id)
	}
	copied(3)

	// The gone reader: takes both, acknowledges neither, and its pin is
	// let go as the pin's lapse or a server's restart would.
	gone, _ := jetstream.New(eventstoretest.Connect(t, f.srv.ClientURL()))
	cons, err := gone.Consumer(f.ctx, eventstore.StreamTriggerLanes, eventstore.LaneConsumer(0))
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := cons.Fetch(2, jetstream.FetchPriorityGroup(eventstore.LaneGroup), jetstream.FetchMaxWait(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	taken := 0
	for range msgs.Messages() {
		taken++
	}
	if taken != 2 {
		t.Fatalf("the gone reader took %d triggers, want 2", taken)
	}
	if err := lanes.UnpinConsumer(f.ctx, eventstore.LaneConsumer(0), eventstore.LaneGroup); err != nil {
		t.Fatal(err)
	}
	gone.Conn().Close()

	p := startProcessorWith(t, f.c, f.srv.ClientURL(), ProcessorConfig{Lanes: 1, AckWait: ackWait, Logger: quiet}, nil)
	defer p.Close()
	f.waitAdvanced(t, "o-orphan", ids...)
	f.waitAdvanced(t, "o-below", "below-0")
	if got := p.LaneResets(); got != 1 {
		t.Fatalf("LaneResets = %d, want 1", got)
	}
	if got := p.LaneLeftovers(); got != 0 {
		t.Fatalf("LaneLeftovers = %d: below-0 waited for the sweeps", got)
	}
}

// readingCount is how many lanes this process is reading: a lane counts
// from the start of its period until it has been handed over.
func (m *members) readingCount() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.reads)
}

// A processor dies (its connection cut, no goodbye) with a trigger applied
// and not acknowledged. Its lane's pin and the trigger would stay with it
// for AckWait, a minute here; the lane's next reader releases the pin and
// has the trigger delivered again as soon as it knows no live process
// reads the lane: when the dead one's heartbeats stop ("shared", the two
// shared the lanes), or once it has heard every live process after its
// start ("restarted", it started after the death).
func TestLaneOfAProcessNoLongerHeardIsTakenAtOnce(t *testing.T) {
	t.Parallel()
	for _, shared := range []bool{true, false} {
		name := map[bool]string{true: "shared", false: "restarted"}[shared]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := newLaneFixture(t, "o-"+name)
			var log eventstoretest.LogBuffer
			// At debug level: should it fail, the log tells how the lane went.
			cfg := ProcessorConfig{Lanes: 1, AckWait: time.Minute, Heartbeat: 200 * time.Millisecond,
				Logger: slog.New(slog.NewTextHandler(&log, &slog.HandlerOptions{Level: slog.LevelDebug}))}
			var once sync.Once
			died := make(chan *Processor, 1)
			dieAfterFirst := func(p *Processor) {
				p.afterApply = func(msg *message.Message) {
					if msg.UUID == name+"-0" {
						once.Do(func() { p.nc.Close(); died <- p })
					}
				}
			}
			procs := []*Processor{startProcessorWith(t, f.c, f.srv.ClientURL(), cfg, dieAfterFirst)}
			if shared {
				procs = append(procs, startProcessorWith(t, f.c, f.srv.ClientURL(), cfg, dieAfterFirst))
				// Agreed, and the other has handed the lane over: while both
				// read it, the first trigger may pin the owner, and the
				// other's handover then releases that pin (the owner reads
				// on after a moment), leaving nothing for the unpin counted
				// below to do.
				eventstoretest.Eventually(t, 10*time.Second, func() bool {
					return procs[0].OwnedLanes()+procs[1].OwnedLanes() == 1 && procs[0].members.readingCount()+procs[1].members.readingCount() == 1
				}, "the two processors to agree on the lane's owner, and the other to have handed it over")
			}
			for _, p := range procs {
				defer p.Close()
			}
			f.trigger(t, "o-"+name, WorkedExampleTriggers[0], name+"-0")
			var dead *Processor
			select {
			case dead = <-died:
			case <-f.ctx.Done():
				t.Fatal("no processor applied the first trigger")
			}
			next := procs[0]
			if shared {
				if next == dead {
					next = procs[1]
				}
			} else {
				next = startProcessorWith(t, f.c, f.srv.ClientURL(), cfg, nil)
				defer next.Close()
			}
			f.trigger(t, "o-"+name, WorkedExampleTriggers[1], name+"-1")
			f.waitAdvanced(t, "o-"+name, name+"-0", name+"-1")
			// At least once: a heartbeat late under load may make the two
			// take each other for gone before the death as well.
			if got := next.LaneUnpins(); got < 1 {
				t.Fatalf("LaneUnpins = %d, want 1 (dead %s, next %s); the log:\n%s", got, dead.ID(), next.ID(), log.String())
			}
			if got := next.LaneResets(); got < 1 {
				t.Fatalf("LaneResets = %d, want 1: the first trigger waited for AckWait (dead %s, next %s); the log:\n%s", got, dead.ID(), next.ID(), log.String())
			}
			if shared {
				if n := next.Processors(); n != 1 {
					t.Fatalf("Processors = %d after the other went silent, want 1", n)
				}
				if want := "a trigger processor went silent"; !strings.Contains(log.String(), want) || !strings.Contains(log.String(), dead.ID()) {
					t.Fatalf("the log does not say the dead processor %s went silent:\n%s", dead.ID(), log.String())
				}
			}
			o, _, err := f.c.LoadOrder(f.ctx, "o-"+name)
			if err != nil {
				t.Fatal(err)
			}
			if o.Version() != 3 {
				t.Fatalf("order at version %d, want 3 (each trigger once)", o.Version())
			}
		})
	}
}

// A processor that stops gracefully hands every lane it read over at once:
// it unpins each as it closes, and the lanes' new owner leaves those pins
// to it (its goodbye names them). With AckWait at a minute, a lane it did
// not unpin would hold its triggers that long.
func TestGracefulLeaveHandsLanesOver(t *testing.T) {
	t.Parallel()
	orders := orderIDs("o-leave", 48)
	f := newLaneFixture(t, orders...)
	log := newLaneLog()
	cfg := ProcessorConfig{Lanes: 8, AckWait: time.Minute}
	first := startProcessorWith(t, f.c, f.srv.ClientURL(), log.config(cfg, "first"), nil)
	defer first.Close()
	second := startProcessorWith(t, f.c, f.srv.ClientURL(), log.config(cfg, "second"), nil)
	if !eventstoretest.Within(10*time.Second, func() bool { return first.OwnedLanes() == 4 && second.OwnedLanes() == 4 }) {
		log.print(t, "the lanes only")
		t.Fatalf("timed out after %s waiting for each processor to own four lanes of eight: the first owns %d, the second %d",
			eventstoretest.Patience(10*time.Second), first.OwnedLanes(), second.OwnedLanes())
	}
	for k := range 2 {
		for _, id := range orders {
			f.trigger(t, id, WorkedExampleTriggers[k], fmt.Sprintf("%s-%d", id, k))
		}
		if k == 0 {
			// Each order's first trigger applied, read from the store: a
			// count of Handled (duplicates included) would never reach
			// exactly 48 if a trigger were delivered again while the lanes
			// settle. The lanes' log is printed if this times out.
			applied := func() bool {
				for _, id := range orders {
					if o, _, err := f.c.LoadOrder(f.ctx, id); err != nil || o.Version() < 2 {
						return false
					}
				}
				return true
			}
			if !eventstoretest.Within(20*time.Second, applied) {
				log.print(t, "the lanes only")
				t.Fatalf("timed out after %s waiting for the 48 orders' first triggers: %d applied by the first processor, %d by the second (duplicates included)",
					eventstoretest.Patience(20*time.Second), first.Handled(), second.Handled())
			}
			if err := second.Close(); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, id := range orders {
		f.waitAdvanced(t, id, id+"-0", id+"-1")
	}
	if n := first.LaneUnpins(); n != 0 {
		t.Fatalf("LaneUnpins = %d: the leaving processor's pins were taken for a dead one's", n)
	}
}

// SendTrigger answers with the outcome the order's history has, not with
// one it heard: a plain subscriber also hears an event that the stream
// refuses (an append that lost a race with another writer of the order).
// Here a rejection of the trigger is published and refused while no
// processor runs; the answer is what the processor, started after,
// stores: advanced.
func TestSendTriggerAnswersFromTheStore(t *testing.T) {
	t.Parallel()
	f := newLaneFixture(t, "o-phantom")
	type result struct {
		out domain.TriggerOutcome
		err error
	}
	done := make(chan result, 1)
	go func() {
		out, err := f.c.SendTrigger(f.ctx, "o-phantom", WorkedExampleTriggers[0], TriggerBody{TriggerID: "t-phantom", Worker: "w"})
		done <- result{out, err}
	}()
	// Once the trigger is stored, SendTrigger listens (it does first).
	eventstoretest.WaitMessages(t, f.js, eventstore.StreamTriggers, 1, 10*time.Second)
	phantom := nats.NewMsg(f.c.orderAddr("o-phantom").Subject(domain.TypeTriggerRejected))
	phantom.Data, _ = json.Marshal(eventstore.Envelope{Type: domain.TypeTriggerRejected, AggregateID: "o-phantom", Version: 2, CausationID: "t-phantom",
		Data: json.RawMessage(fmt.Sprintf(`{"trigger":%q,"trigger_id":"t-phantom","reason":%q,"expected":%q}`, WorkedExampleTriggers[0], domain.RejectOnHold, WorkedExampleTriggers[0]))})
	phantom.Header.Set(jetstream.ExpectedLastSubjSeqHeader, "999") // the order has no such event: refused
	if _, err := f.js.PublishMsg(f.ctx, phantom); err == nil {
		t.Fatal("the stream stored the phantom rejection")
	}
	p := startProcessor(t, f.c, f.srv.ClientURL(), nil)
	defer p.Close()
	if r := <-done; r.err != nil || r.out != domain.OutcomeAdvanced {
		t.Fatalf("the answer: %q, %v (want advanced, as stored)", r.out, r.err)
	}
}

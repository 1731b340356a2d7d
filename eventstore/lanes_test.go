package eventstore_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/eventstore/eventstoretest"
)

// A lane consumer from before lanes were pinned (one unacknowledged
// trigger, no priority group) is replaced by a pinned one, and the
// trigger waiting in its lane is still delivered.
func TestEnsureLanesReplacesUnpinnedConsumers(t *testing.T) {
	t.Parallel()
	st, ctx := serverStore(t)
	if _, err := st.EnsureLanes(ctx, eventstore.LaneConfig{Lanes: 1}); err != nil {
		t.Fatal(err)
	}
	js := st.JetStream()
	lanes, err := js.Stream(ctx, eventstore.StreamTriggerLanes)
	if err != nil {
		t.Fatal(err)
	}
	// Put the old consumer back, as an earlier orderflow made it.
	if err := lanes.DeleteConsumer(ctx, eventstore.LaneConsumer(0)); err != nil {
		t.Fatal(err)
	}
	if _, err := lanes.CreateConsumer(ctx, jetstream.ConsumerConfig{
		Durable: eventstore.LaneConsumer(0), FilterSubject: "orderflow._lanes.0.>",
		AckPolicy: jetstream.AckExplicitPolicy, MaxAckPending: 1,
	}); err != nil {
		t.Fatal(err)
	}
	triggerInLane(t, ctx, js, lanes, "o-upgrade", "upgrade-1")

	if _, err := st.EnsureLanes(ctx, eventstore.LaneConfig{Lanes: 1, Window: 32}); err != nil {
		t.Fatal(err)
	}
	cons, err := lanes.Consumer(ctx, eventstore.LaneConsumer(0))
	if err != nil {
		t.Fatal(err)
	}
	cfg := cons.CachedInfo().Config
	if cfg.PriorityPolicy != jetstream.PriorityPolicyPinned || cfg.MaxAckPending != 32 || len(cfg.PriorityGroups) != 1 || cfg.PriorityGroups[0] != eventstore.LaneGroup {
		t.Fatalf("lane consumer not replaced: %+v", cfg)
	}
	msgs, err := cons.Fetch(1, jetstream.FetchPriorityGroup(eventstore.LaneGroup))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for m := range msgs.Messages() {
		got = append(got, m.Headers().Get(jetstream.MsgIDHeader))
	}
	if len(got) != 1 || got[0] != "upgrade-1" {
		t.Fatalf("waiting trigger after the upgrade: %v (%v)", got, msgs.Error())
	}
}

// A lane's pin lasts AckWait, and at least three seconds: a reader asks
// again only as its pull request expires (a second at the least), so a
// one-second pin lapsed between two requests of a busy reader. A lane
// made with the pin at AckWait takes the longer TTL when opened again.
func TestEnsureLanesPinsForAckWaitAndAtLeastThreeSeconds(t *testing.T) {
	t.Parallel()
	st, ctx := serverStore(t)
	js := st.JetStream()
	lane0 := func(cfg eventstore.LaneConfig) jetstream.ConsumerConfig {
		t.Helper()
		if _, err := st.EnsureLanes(ctx, cfg); err != nil {
			t.Fatal(err)
		}
		cons, err := js.Consumer(ctx, eventstore.StreamTriggerLanes, eventstore.LaneConsumer(0))
		if err != nil {
			t.Fatal(err)
		}
		return cons.CachedInfo().Config
	}
	old := lane0(eventstore.LaneConfig{Lanes: 1, AckWait: 10 * time.Second})
	if old.PinnedTTL != 10*time.Second {
		t.Fatalf("pin TTL with AckWait 10s: %s, want 10s", old.PinnedTTL)
	}
	// As an earlier orderflow made it: the pin at an AckWait of 1s.
	old.AckWait, old.PinnedTTL = time.Second, time.Second
	if _, err := js.UpdateConsumer(ctx, eventstore.StreamTriggerLanes, old); err != nil {
		t.Fatal(err)
	}
	if got := lane0(eventstore.LaneConfig{Lanes: 1, AckWait: time.Second}).PinnedTTL; got != 3*time.Second {
		t.Fatalf("pin TTL with AckWait 1s: %s, want 3s", got)
	}
}

// The lane stream allows no direct gets: a get is answered by its leader,
// never by a follower that may lag behind it (the trigger processor's
// lane gate takes a trigger the lane stream no longer has for
// acknowledged).
func TestLaneStreamGetsAreAnsweredByItsLeader(t *testing.T) {
	t.Parallel()
	st, ctx := serverStore(t)
	if _, err := st.EnsureLanes(ctx, eventstore.LaneConfig{Lanes: 2}); err != nil {
		t.Fatal(err)
	}
	stream, err := st.JetStream().Stream(ctx, eventstore.StreamTriggerLanes)
	if err != nil {
		t.Fatal(err)
	}
	if cfg := stream.CachedInfo().Config; cfg.AllowDirect || cfg.MirrorDirect {
		t.Fatalf("lane stream allows direct gets (allow_direct %v, mirror_direct %v)", cfg.AllowDirect, cfg.MirrorDirect)
	}
}

// A dead-letter stream from before dead letters were put aside per
// tenant, order and trigger key (one subject for all) takes the new
// subjects too, and keeps its dead letters.
func TestEnsureLanesGivesDeadLettersTheirSubjects(t *testing.T) {
	t.Parallel()
	st, ctx := serverStore(t)
	js := st.JetStream()
	old, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: eventstore.StreamDeadLetter, Subjects: []string{eventstore.DeadLetterSubject}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, eventstore.DeadLetterSubject, []byte("an earlier dead letter")); err != nil {
		t.Fatal(err)
	}
	if _, err := st.EnsureLanes(ctx, eventstore.LaneConfig{Lanes: 1}); err != nil {
		t.Fatal(err)
	}
	ack, err := js.Publish(ctx, eventstore.DeadLetterSubjectFor("default", "o-1", "picked_up"), []byte("a dead letter"))
	if err != nil || ack.Stream != eventstore.StreamDeadLetter || ack.Sequence != 2 {
		t.Fatalf("a dead letter on its own subject: %+v, %v", ack, err)
	}
	if m, err := old.GetMsg(ctx, 1); err != nil || string(m.Data) != "an earlier dead letter" {
		t.Fatalf("the earlier dead letter: %v", err)
	}
}

// The lanes' copy of ORDERFLOW_TRIGGERS reports the server's error while
// the copy fails (here: the trigger stream does not exist), and the lane
// stream's waiting triggers.
func TestLaneCopyStateReportsACopyError(t *testing.T) {
	t.Parallel()
	srv := eventstoretest.StartServer(t)
	ctx := ctxT(t)
	nc := eventstoretest.Connect(t, srv.ClientURL())
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(ctx, eventstore.LaneStreamConfig(2, 1)); err != nil {
		t.Fatal(err)
	}
	st, err := eventstore.Attach(ctx, nc, eventstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	var lc eventstore.LaneCopy
	eventstoretest.Eventually(t, 10*time.Second, func() bool {
		lc, err = st.LaneCopyState(ctx)
		return err == nil && lc.Err != ""
	}, "the copy's error to show")
	if lc.Waiting != 0 || !strings.Contains(lc.Err, "stream not found") || lc.Idle != -1 {
		t.Fatalf("LaneCopyState = %+v", lc)
	}
}

// A working copy: the copied trigger waits in the lanes, there is no
// error, and the lane stream has heard from the copy.
func TestLaneCopyStateOfAWorkingCopy(t *testing.T) {
	t.Parallel()
	st, ctx := serverStore(t)
	if _, err := st.EnsureLanes(ctx, eventstore.LaneConfig{Lanes: 2}); err != nil {
		t.Fatal(err)
	}
	m := nats.NewMsg(eventstore.TriggerSubject("default", "o-state", "picked_up"))
	m.Header.Set(jetstream.MsgIDHeader, "state-1")
	if _, err := st.JetStream().PublishMsg(ctx, m); err != nil {
		t.Fatal(err)
	}
	var lc eventstore.LaneCopy
	eventstoretest.Eventually(t, 10*time.Second, func() bool {
		var err error
		lc, err = st.LaneCopyState(ctx)
		return err == nil && lc.Waiting == 1
	}, "the trigger copied into the lanes")
	if lc.Err != "" || lc.Idle < 0 {
		t.Fatalf("LaneCopyState = %+v", lc)
	}
}

// A lane stream made by StartLanesAt copies from that trigger on once
// EnsureLanes sets its copy up, each lane message at its trigger's own
// sequence; the triggers before it are not copied. It is made only where
// there is none.
func TestStartLanesAt(t *testing.T) {
	t.Parallel()
	onServerAndCluster(t, func(t *testing.T, st *eventstore.Store, replicas int) {
		ctx := ctxT(t)
		publishTriggers(t, ctx, st, "start", 1, 6)
		if made, err := st.StartLanesAt(ctx, 1); made || err != nil {
			t.Fatalf("StartLanesAt(1) = %v, %v; want nothing made", made, err)
		}
		if made, err := st.StartLanesAt(ctx, 4); !made || err != nil {
			t.Fatalf("StartLanesAt(4) = %v, %v", made, err)
		}
		if made, err := st.StartLanesAt(ctx, 2); made || err != nil {
			t.Fatalf("StartLanesAt(2) on the lane stream made = %v, %v; want it left alone", made, err)
		}
		if _, err := st.EnsureLanes(ctx, eventstore.LaneConfig{Lanes: 1}); err != nil {
			t.Fatal(err)
		}
		publishTriggers(t, ctx, st, "start", 7, 7)
		if got := laneReader(t, ctx, st)(4); !slices.Equal(got, []uint64{4, 5, 6, 7}) {
			t.Fatalf("copied: %v", got)
		}
		lanes, err := st.JetStream().Stream(ctx, eventstore.StreamTriggerLanes)
		if err != nil {
			t.Fatal(err)
		}
		info := lanes.CachedInfo()
		if info.State.LastSeq != 7 || len(info.Config.Subjects) != 0 || info.Config.Replicas != replicas {
			t.Fatalf("lane stream: last sequence %d (want 7, each trigger's own), subjects %v (want none), replicas %d",
				info.State.LastSeq, info.Config.Subjects, info.Config.Replicas)
		}
		if lc, err := st.LaneCopyState(ctx); err != nil || lc.ResumeAt != 4 || lc.Copied != 7 || lc.Lanes != 1 {
			t.Fatalf("LaneCopyState = %+v, %v", lc, err)
		}
	})
}

// A lane stream that has lost its place in the copy resumes from the point
// set with SetLaneCopyResume: it copies again what came since (each a
// duplicate) and skips nothing. A kill leaves the lane stream so while the
// store is younger than the server's first record of where the copy got;
// without a resume point the server then resumes by time, from the lane
// stream's last message. EnsureLanes moves the point up to the copy.
func TestLaneCopyResumesWhereItWasSet(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	srv := eventstoretest.StartServerIn(t, dir)
	st := eventstoretest.OpenStore(t, srv.ClientURL(), eventstore.Config{})
	ctx := ctxT(t)
	if _, err := st.EnsureLanes(ctx, eventstore.LaneConfig{Lanes: 1}); err != nil {
		t.Fatal(err)
	}
	publishTriggers(t, ctx, st, "resume", 1, 8)
	if got := laneReader(t, ctx, st)(8); !slices.Equal(got, []uint64{1, 2, 3, 4, 5, 6, 7, 8}) {
		t.Fatalf("copied: %v", got)
	}
	lc, err := st.LaneCopyState(ctx)
	if err != nil || lc.Copied != 8 || lc.ResumeAt != 1 || lc.Waiting != 0 { // a new lane stream resumes at the first trigger
		t.Fatalf("LaneCopyState = %+v, %v", lc, err)
	}
	if err := st.SetLaneCopyResume(ctx, 6); err != nil {
		t.Fatal(err)
	}
	if err := st.SetLaneCopyResume(ctx, 4); err != nil { // earlier: ignored
		t.Fatal(err)
	}
	if lc, err := st.LaneCopyState(ctx); err != nil || lc.ResumeAt != 6 {
		t.Fatalf("LaneCopyState = %+v, %v", lc, err)
	}
	st.Conn().Close()
	srv.Shutdown()
	// What a kill leaves in a young store: no record of where the copy got.
	rec, err := filepath.Glob(filepath.Join(dir, "jetstream", "*", "streams", eventstore.StreamTriggerLanes, "sources.db"))
	if err != nil || len(rec) != 1 {
		t.Fatalf("the lane stream's record of its copy: %v, %v", rec, err)
	}
	if err := os.Remove(rec[0]); err != nil {
		t.Fatal(err)
	}

	srv2 := eventstoretest.StartServerIn(t, dir)
	st2 := eventstoretest.OpenStore(t, srv2.ClientURL(), eventstore.Config{})
	if got := laneReader(t, ctx, st2)(3); !slices.Equal(got, []uint64{6, 7, 8}) {
		t.Fatalf("copied again after the restart: %v", got)
	}
	// EnsureLanes moves the point up to where the copy stands.
	if _, err := st2.EnsureLanes(ctx, eventstore.LaneConfig{Lanes: 1}); err != nil {
		t.Fatal(err)
	}
	if lc, err := st2.LaneCopyState(ctx); err != nil || lc.ResumeAt != 9 {
		t.Fatalf("after EnsureLanes: LaneCopyState = %+v, %v", lc, err)
	}
}

// After a run that did not stop cleanly (here: a stale record of the copy
// put back, and the embedded server's RunningFile left, as a kill leaves
// both), the embedded server forgets the lane stream's record of its copy,
// so the copy resumes from the resume point instead of copying again
// everything since the record was written.
func TestUncleanStopForgetsTheStaleCopyRecord(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ctx := ctxT(t)
	running := filepath.Join(dir, eventstore.RunningFile)
	rec := filepath.Join(dir, "jetstream", "$G", "streams", eventstore.StreamTriggerLanes, "sources.db")

	srv := eventstoretest.StartServerIn(t, dir)
	if _, err := os.Stat(running); err != nil {
		t.Fatalf("a running server's %s: %v", eventstore.RunningFile, err)
	}
	st := eventstoretest.OpenStore(t, srv.ClientURL(), eventstore.Config{})
	if _, err := st.EnsureLanes(ctx, eventstore.LaneConfig{Lanes: 1}); err != nil {
		t.Fatal(err)
	}
	publishTriggers(t, ctx, st, "unclean", 1, 3)
	if got := laneReader(t, ctx, st)(3); !slices.Equal(got, []uint64{1, 2, 3}) {
		t.Fatalf("copied: %v", got)
	}
	st.Conn().Close()
	srv.Shutdown() // clean: the record says 3
	if _, err := os.Stat(running); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s after a clean stop: %v", eventstore.RunningFile, err)
	}
	stale, err := os.ReadFile(rec)
	if err != nil {
		t.Fatal(err)
	}

	srv = eventstoretest.StartServerIn(t, dir)
	st = eventstoretest.OpenStore(t, srv.ClientURL(), eventstore.Config{})
	publishTriggers(t, ctx, st, "unclean", 4, 6)
	if got := laneReader(t, ctx, st)(3); !slices.Equal(got, []uint64{4, 5, 6}) {
		t.Fatalf("copied: %v", got)
	}
	if err := st.SetLaneCopyResume(ctx, 7); err != nil {
		t.Fatal(err)
	}
	st.Conn().Close()
	srv.Shutdown()
	// What a kill after the record's last write leaves.
	if err := os.WriteFile(rec, stale, 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(running, nil, 0o640); err != nil {
		t.Fatal(err)
	}

	srv = eventstoretest.StartServerIn(t, dir)
	st = eventstoretest.OpenStore(t, srv.ClientURL(), eventstore.Config{})
	publishTriggers(t, ctx, st, "unclean", 7, 7)
	if got := laneReader(t, ctx, st)(1); !slices.Equal(got, []uint64{7}) {
		t.Fatalf("first copied after the unclean stop: %v (4: triggers 4 to 6 copied again)", got)
	}
}

// On a cluster too the resume point is set (a stream update through the
// cluster's meta leader) and kept by EnsureLanes, and the copy goes on.
func TestLaneCopyResumeOnACluster(t *testing.T) {
	t.Parallel()
	c := eventstoretest.StartCluster(t, 3)
	st := eventstoretest.OpenStore(t, c.URLs(), eventstore.Config{Replicas: 3})
	ctx := ctxT(t)
	if _, err := st.EnsureLanes(ctx, eventstore.LaneConfig{Lanes: 1}); err != nil {
		t.Fatal(err)
	}
	take := laneReader(t, ctx, st)
	for i := uint64(1); i <= 3; i++ {
		publishTriggers(t, ctx, st, "cluster", int(i), int(i))
		if got := take(1); !slices.Equal(got, []uint64{i}) {
			t.Fatalf("copied: %v, want [%d]", got, i)
		}
		if err := st.SetLaneCopyResume(ctx, i+1); err != nil {
			t.Fatal(err)
		}
		if _, err := st.EnsureLanes(ctx, eventstore.LaneConfig{Lanes: 1}); err != nil {
			t.Fatal(err)
		}
	}
	if lc, err := st.LaneCopyState(ctx); err != nil || lc.ResumeAt != 4 || lc.Copied != 3 {
		t.Fatalf("LaneCopyState = %+v, %v", lc, err)
	}
}

// On one server RestartLaneCopy replaces the copy with one that copies
// the same under the other spelling, which the server sets up at once;
// while the lanes are empty it goes on exactly where the copy stood,
// nothing copied twice and nothing skipped. EnsureLanes keeps the
// spelling, and nothing is changed while the lanes hold triggers.
func TestRestartLaneCopyOnOneServer(t *testing.T) {
	t.Parallel()
	st, ctx := serverStore(t)
	if _, err := st.EnsureLanes(ctx, eventstore.LaneConfig{Lanes: 1}); err != nil {
		t.Fatal(err)
	}
	take := laneReader(t, ctx, st)
	transforms := func() int {
		t.Helper()
		lanes, err := st.JetStream().Stream(ctx, eventstore.StreamTriggerLanes)
		if err != nil {
			t.Fatal(err)
		}
		return len(lanes.CachedInfo().Config.Sources[0].SubjectTransforms)
	}
	publishTriggers(t, ctx, st, "respell", 1, 3)
	if got := take(3); !slices.Equal(got, []uint64{1, 2, 3}) {
		t.Fatalf("copied: %v", got)
	}
	eventstoretest.Eventually(t, 10*time.Second, func() bool {
		lc, err := st.LaneCopyState(ctx)
		return err == nil && lc.Waiting == 0
	}, "the lanes to be empty")

	for i, want := range []int{2, 2, 1} { // respelled, kept by EnsureLanes, back
		if i != 1 {
			if err := st.RestartLaneCopy(ctx); err != nil {
				t.Fatal(err)
			}
		} else if _, err := st.EnsureLanes(ctx, eventstore.LaneConfig{Lanes: 1}); err != nil {
			t.Fatal(err)
		}
		if got := transforms(); got != want {
			t.Fatalf("step %d: the copy has %d transforms, want %d", i, got, want)
		}
		publishTriggers(t, ctx, st, "respell", 4+i, 4+i)
		if got := take(1); !slices.Equal(got, []uint64{uint64(4 + i)}) {
			t.Fatalf("step %d: copied %v, want [%d] (a lower one: copied twice)", i, got, 4+i)
		}
	}

	publishTriggers(t, ctx, st, "respell", 7, 7)
	eventstoretest.Eventually(t, 10*time.Second, func() bool {
		lc, err := st.LaneCopyState(ctx)
		return err == nil && lc.Waiting == 1
	}, "the trigger to wait in its lane")
	if err := st.RestartLaneCopy(ctx); !errors.Is(err, eventstore.ErrLanesHold) {
		t.Fatalf("RestartLaneCopy while the lanes hold a trigger: %v, want ErrLanesHold", err)
	}
	if got := transforms(); got != 1 {
		t.Fatalf("the copy was changed while the lanes held a trigger: %d transforms", got)
	}
	if got := take(1); !slices.Equal(got, []uint64{7}) {
		t.Fatalf("copied: %v", got)
	}
}

// publishTriggers stores the triggers prefix-from..prefix-to, each for
// its own order o-prefix-i.
func publishTriggers(t *testing.T, ctx context.Context, st *eventstore.Store, prefix string, from, to int) {
	t.Helper()
	for i := from; i <= to; i++ {
		m := nats.NewMsg(eventstore.TriggerSubject("default", fmt.Sprintf("o-%s-%d", prefix, i), "picked_up"))
		m.Header.Set(jetstream.MsgIDHeader, fmt.Sprintf("%s-%d", prefix, i))
		if _, err := st.JetStream().PublishMsg(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
}

// laneReader reads lane 0 through one consumer handle (a pinned lane
// goes on delivering to the handle it is pinned to; another waits for the
// pin to expire): take(n) takes n messages, acknowledges them, and
// returns the ORDERFLOW_TRIGGERS sequences they copy.
func laneReader(t *testing.T, ctx context.Context, st *eventstore.Store) (take func(n int) []uint64) {
	t.Helper()
	lanes, err := st.JetStream().Stream(ctx, eventstore.StreamTriggerLanes)
	if err != nil {
		t.Fatal(err)
	}
	cons, err := lanes.Consumer(ctx, eventstore.LaneConsumer(0))
	if err != nil {
		t.Fatal(err)
	}
	return func(n int) []uint64 {
		t.Helper()
		var got []uint64
		eventstoretest.Eventually(t, 10*time.Second, func() bool {
			msgs, err := cons.Fetch(n-len(got), jetstream.FetchPriorityGroup(eventstore.LaneGroup), jetstream.FetchMaxWait(time.Second))
			if err != nil {
				t.Fatal(err)
			}
			for m := range msgs.Messages() {
				f := strings.Fields(m.Headers().Get("Nats-Stream-Source"))
				if len(f) < 2 {
					t.Fatalf("lane message without its source: %v", m.Headers())
				}
				seq, err := strconv.ParseUint(f[1], 10, 64)
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, seq)
				if err := m.DoubleAck(ctx); err != nil {
					t.Fatal(err)
				}
			}
			return len(got) >= n
		}, fmt.Sprintf("%d lane messages", n))
		return got
	}
}

// LaneLeftovers finds the lane messages at or below their lane consumer's
// acknowledgement floor (here left by a consumer reset past them, as a
// server stopped hard leaves acknowledged ones), and not those above it;
// DropLaneMessages removes them. On one server and on a cluster.
func TestLaneLeftovers(t *testing.T) {
	t.Parallel()
	onServerAndCluster(t, func(t *testing.T, st *eventstore.Store, replicas int) {
		ctx := ctxT(t)
		names, err := st.EnsureLanes(ctx, eventstore.LaneConfig{Lanes: 1})
		if err != nil {
			t.Fatal(err)
		}
		publishTriggers(t, ctx, st, "left", 1, 3)
		lanes, err := st.JetStream().Stream(ctx, eventstore.StreamTriggerLanes)
		if err != nil {
			t.Fatal(err)
		}
		eventstoretest.Eventually(t, 10*time.Second, func() bool {
			info, err := lanes.Info(ctx)
			return err == nil && info.State.Msgs == 3
		}, "three triggers in the lane")
		if left, err := st.LaneLeftovers(ctx, names); err != nil || len(left) != 0 {
			t.Fatalf("LaneLeftovers before the reset = %d, %v; want none", len(left), err)
		}
		// The floor past the first two: they stay, never delivered.
		resp, err := st.JetStream().Conn().RequestWithContext(ctx,
			"$JS.API.CONSUMER.RESET."+eventstore.StreamTriggerLanes+"."+names[0], []byte(`{"seq":3}`))
		if err != nil || strings.Contains(string(resp.Data), `"error"`) {
			t.Fatalf("reset: %v %s", err, resp.Data)
		}
		var left []*jetstream.RawStreamMsg
		eventstoretest.Eventually(t, 10*time.Second, func() bool {
			left, err = st.LaneLeftovers(ctx, names)
			return err == nil && len(left) == 2
		}, "the two triggers below the floor")
		if left[0].Sequence != 1 || left[1].Sequence != 2 {
			t.Fatalf("leftovers at %d and %d, want 1 and 2", left[0].Sequence, left[1].Sequence)
		}
		if n, err := st.DropLaneMessages(ctx, []uint64{left[0].Sequence, left[1].Sequence}); n != 2 || err != nil {
			t.Fatalf("DropLaneMessages = %d, %v", n, err)
		}
		if n, err := st.DropLaneMessages(ctx, []uint64{left[0].Sequence}); n != 1 || err != nil {
			t.Fatalf("dropping one already gone: %d, %v", n, err)
		}
		info, err := lanes.Info(ctx)
		if err != nil || info.State.Msgs != 1 || info.State.FirstSeq != 3 {
			t.Fatalf("lane stream after: %+v, %v; want the third trigger alone", info.State, err)
		}
		if left, err := st.LaneLeftovers(ctx, names); err != nil || len(left) != 0 {
			t.Fatalf("LaneLeftovers after = %d, %v; want none", len(left), err)
		}
	})
}

// The lanes are partitioned anew for another number of lanes only when
// they hold nothing and no process reads them: with triggers waiting, or
// a process reading a lane, EnsureLanes refuses (ErrLanesInUse), and
// changes nothing.
func TestEnsureLanesRefusesAnotherNumberWhileInUse(t *testing.T) {
	t.Parallel()
	st, ctx := serverStore(t)
	if _, err := st.EnsureLanes(ctx, eventstore.LaneConfig{Lanes: 4}); err != nil {
		t.Fatal(err)
	}
	js := st.JetStream()
	lanes, err := js.Stream(ctx, eventstore.StreamTriggerLanes)
	if err != nil {
		t.Fatal(err)
	}
	triggerInLane(t, ctx, js, lanes, "o-lanes", "lanes-1")
	number := func() int {
		lc, err := st.LaneCopyState(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return lc.Lanes
	}
	if _, err := st.EnsureLanes(ctx, eventstore.LaneConfig{Lanes: 8}); !errors.Is(err, eventstore.ErrLanesInUse) || number() != 4 {
		t.Fatalf("another number with a trigger waiting: %v, %d lanes; want ErrLanesInUse and 4", err, number())
	}

	// The trigger taken out of its lane by a reader that is still there
	// (pinned to the lane).
	lane, m := takeFromLane(t, ctx, lanes, 4)
	if err := m.Ack(); err != nil {
		t.Fatal(err)
	}
	eventstoretest.Eventually(t, 10*time.Second, func() bool {
		info, err := lanes.Info(ctx)
		return err == nil && info.State.Msgs == 0
	}, "the lane emptied")
	if _, err := st.EnsureLanes(ctx, eventstore.LaneConfig{Lanes: 8}); !errors.Is(err, eventstore.ErrLanesInUse) || number() != 4 {
		t.Fatalf("another number with a lane being read: %v, %d lanes; want ErrLanesInUse and 4", err, number())
	}
	if err := lanes.UnpinConsumer(ctx, lane.CachedInfo().Name, eventstore.LaneGroup); err != nil {
		t.Fatal(err)
	}

	// Empty and unread: partitioned anew.
	if _, err := st.EnsureLanes(ctx, eventstore.LaneConfig{Lanes: 8}); err != nil {
		t.Fatalf("empty lanes that nothing reads: %v", err)
	}
	if n := number(); n != 8 {
		t.Fatalf("%d lanes, want 8", n)
	}
	// The same number again is no change at all.
	if _, err := st.EnsureLanes(ctx, eventstore.LaneConfig{Lanes: 8}); err != nil {
		t.Fatal(err)
	}
}

// triggerInLane publishes the order's picked_up trigger with id as its
// Nats-Msg-Id, and waits until the lane stream (empty before) holds it.
// The lane consumers are shared by every process: while a process reads a
// lane, EnsureLanes refuses (ErrLanesInUse) another AckWait or Window and
// changes no lane; with the same settings it goes ahead, and with nobody
// reading the settings change.
func TestEnsureLanesRefusesOtherSettingsWhileRead(t *testing.T) {
	t.Parallel()
	st, ctx := serverStore(t)
	first := eventstore.LaneConfig{Lanes: 2, AckWait: 10 * time.Second, Window: 256}
	if _, err := st.EnsureLanes(ctx, first); err != nil {
		t.Fatal(err)
	}
	js := st.JetStream()
	lanes, err := js.Stream(ctx, eventstore.StreamTriggerLanes)
	if err != nil {
		t.Fatal(err)
	}
	settings := func() [][2]any {
		var got [][2]any
		for i := range 2 {
			c, err := lanes.Consumer(ctx, eventstore.LaneConsumer(i))
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, [2]any{c.CachedInfo().Config.AckWait, c.CachedInfo().Config.MaxAckPending})
		}
		return got
	}
	want := [][2]any{{10 * time.Second, 256}, {10 * time.Second, 256}}

	// A reader takes a trigger from its lane and keeps the pin.
	triggerInLane(t, ctx, js, lanes, "o-settings", "settings-1")
	lane, held := takeFromLane(t, ctx, lanes, 2)

	for _, other := range []eventstore.LaneConfig{
		{Lanes: 2, AckWait: 30 * time.Second, Window: 256},
		{Lanes: 2, AckWait: 10 * time.Second, Window: 64},
	} {
		_, err := st.EnsureLanes(ctx, other)
		if !errors.Is(err, eventstore.ErrLanesInUse) || !strings.Contains(err.Error(), "--ack-wait") {
			t.Fatalf("EnsureLanes(%+v) while a lane is read: %v; want ErrLanesInUse naming the flags", other, err)
		}
		if got := settings(); !slices.Equal(got, want) {
			t.Fatalf("after a refusal the lanes are %v, want %v", got, want)
		}
	}
	if _, err := st.EnsureLanes(ctx, first); err != nil {
		t.Fatalf("the same settings while a lane is read: %v", err)
	}

	// The reader acknowledges and lets go: the settings change.
	if err := held.Ack(); err != nil {
		t.Fatal(err)
	}
	if err := lanes.UnpinConsumer(ctx, lane.CachedInfo().Name, eventstore.LaneGroup); err != nil {
		t.Fatal(err)
	}
	if _, err := st.EnsureLanes(ctx, eventstore.LaneConfig{Lanes: 2, AckWait: 30 * time.Second, Window: 64}); err != nil {
		t.Fatalf("other settings with nobody reading: %v", err)
	}
	if got, want := settings(), [][2]any{{30 * time.Second, 64}, {30 * time.Second, 64}}; !slices.Equal(got, want) {
		t.Fatalf("lanes are %v, want %v", got, want)
	}
}

// takeFromLane takes the one trigger waiting in one of the first lanes
// the way a reader does (pinned to the lane), and leaves it
// unacknowledged.
func takeFromLane(t *testing.T, ctx context.Context, lanes jetstream.Stream, n int) (jetstream.Consumer, jetstream.Msg) {
	t.Helper()
	var lane jetstream.Consumer
	// The lane stream has the trigger; its consumer counts it a moment
	// later (the server signals consumers in a goroutine of its own).
	eventstoretest.Eventually(t, 10*time.Second, func() bool {
		for i := range n {
			c, err := lanes.Consumer(ctx, eventstore.LaneConsumer(i))
			if err != nil {
				t.Fatal(err)
			}
			if c.CachedInfo().NumPending > 0 {
				lane = c
				return true
			}
		}
		return false
	}, "a lane's consumer to count the trigger waiting")
	msgs, err := lane.Fetch(1, jetstream.FetchPriorityGroup(eventstore.LaneGroup))
	if err != nil {
		t.Fatal(err)
	}
	var held []jetstream.Msg
	for m := range msgs.Messages() {
		held = append(held, m)
	}
	if len(held) != 1 {
		t.Fatalf("took %d triggers from the lane, want 1", len(held))
	}
	return lane, held[0]
}

func triggerInLane(t *testing.T, ctx context.Context, js jetstream.JetStream, lanes jetstream.Stream, order, id string) {
	t.Helper()
	m := nats.NewMsg(eventstore.TriggerSubject("default", order, "picked_up"))
	m.Header.Set(jetstream.MsgIDHeader, id)
	if _, err := js.PublishMsg(ctx, m); err != nil {
		t.Fatal(err)
	}
	eventstoretest.Eventually(t, 10*time.Second, func() bool {
		info, err := lanes.Info(ctx)
		return err == nil && info.State.Msgs == 1
	}, "the trigger to reach its lane")
}

// onServerAndCluster runs test in parallel on a store of one embedded
// server and on one of a three-server cluster (replicas 3).
func onServerAndCluster(t *testing.T, test func(t *testing.T, st *eventstore.Store, replicas int)) {
	for _, topo := range []struct {
		name     string
		replicas int
	}{{"server", 1}, {"cluster", 3}} {
		t.Run(topo.name, func(t *testing.T) {
			t.Parallel()
			url := ""
			if topo.replicas == 1 {
				url = eventstoretest.StartServer(t).ClientURL()
			} else {
				url = eventstoretest.StartCluster(t, 3).URLs()
			}
			test(t, eventstoretest.OpenStore(t, url, eventstore.Config{Replicas: topo.replicas}), topo.replicas)
		})
	}
}

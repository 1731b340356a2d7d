package eventstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Trigger lanes: how triggers are shared out for processing.
//
// ORDERFLOW_TRIGGER_LANES sources ORDERFLOW_TRIGGERS and rewrites each
// subject with a deterministic partition of the order id:
//
//	orderflow.<tenant>.trigger.<orderId>.<triggerKey>
//	  → orderflow._lanes.<partition>.<tenant>.<orderId>.<triggerKey>
//
// so every trigger of one order lands in the same lane, in the order it was
// stored. Each lane has one durable consumer in a pinned priority group
// (LaneGroup): JetStream hands a lane's triggers to one client at a time,
// and moves the lane to another client only when the pinned one stops
// asking (after the pin's TTL) or gives it up (UnpinConsumer). The pinned
// process may hold up to Window unacknowledged triggers of its lane; it
// applies triggers of different orders in parallel and triggers of one
// order one after another, in lane order. The lane stream is a work queue
// (a processed trigger leaves it); ORDERFLOW_TRIGGERS keeps the record.
// The number of lanes is fixed for a deployment: changing it re-partitions
// orders, so drain the lanes first.
const (
	StreamTriggerLanes = "ORDERFLOW_TRIGGER_LANES"
	laneRoot           = SubjectRoot + "._lanes"
	// StreamDeadLetter keeps triggers that can never be processed, with
	// the reason, under DeadLetterSubject.
	StreamDeadLetter = "ORDERFLOW_DEADLETTER"
	// DeadLetterSubject is the root of the subjects where the trigger
	// processor puts poison triggers: each on DeadLetterSubjectFor its
	// tenant, order and trigger key, so that NATS permissions can give a
	// tenant's worker apps the dead letters of that tenant only. The root
	// itself holds those of earlier versions (all tenants together), and
	// any whose subject did not name a tenant, an order and a trigger.
	DeadLetterSubject = SubjectRoot + "._deadletter.triggers"
	// LaneGroup is the lane consumers' pinned priority group.
	LaneGroup = "processors"
	// ProcessorsSubject is where trigger processors announce themselves
	// to each other (core NATS, not stored), so that they can share the
	// lanes out.
	ProcessorsSubject = SubjectRoot + "._processors"
)

// deadLetterDuplicates is the least time the dead-letter stream remembers
// a dead letter's Nats-Msg-Id (the stored trigger it puts aside): longer
// than a redelivery takes, and than the 2 to 2.5 minutes of triggers the
// server copies into the lanes again after a crash. Dead letters are few,
// so remembering them longer costs next to nothing.
const deadLetterDuplicates = 10 * time.Minute

// LaneConfig sets up the trigger lanes.
type LaneConfig struct {
	Lanes   int           // number of lanes; default 8
	AckWait time.Duration // how long a lane waits for an acknowledgement before redelivering, and how long a silent pinned client keeps its lane (see LanePinTTL); default 10 s
	Window  int           // unacknowledged triggers a lane's pinned client may hold; default 256
}

// LanePinTTL is how long a lane's pinned client keeps the lane without
// asking for more: AckWait, and at least three seconds. A reader's pull
// requests last at least a second (nats.go's floor), and it asks again
// as one expires; with a TTL of a second the pin lapsed between one
// request and the next whenever the reader's process was slow, and each
// new pin made the reader take its lane for read elsewhere
// (TestLaneHandoverKeepsOrder under -race, with --ack-wait 1s).
func LanePinTTL(ackWait time.Duration) time.Duration { return max(ackWait, 3*time.Second) }

// LaneConsumer names lane i's durable consumer.
func LaneConsumer(i int) string { return fmt.Sprintf("lane-%d", i) }

// LaneIndex is the lane number of a lane consumer's name.
func LaneIndex(consumer string) (int, error) {
	n, ok := strings.CutPrefix(consumer, "lane-")
	i, err := strconv.Atoi(n)
	if !ok || err != nil || i < 0 {
		return 0, fmt.Errorf("%q is not a lane consumer", consumer)
	}
	return i, nil
}

// ParseLaneSubject splits a lane subject into tenant, order id and trigger
// key.
func ParseLaneSubject(subject string) (tenant, orderID, triggerKey string, err error) {
	rest, ok := strings.CutPrefix(subject, laneRoot+".")
	parts := strings.Split(rest, ".")
	if !ok || len(parts) != 4 {
		return "", "", "", fmt.Errorf("%w: %q is not a trigger lane subject", ErrInvalidToken, subject)
	}
	return parts[1], parts[2], parts[3], nil
}

// DeadLetterSubjectFor is where a trigger for the order and trigger key,
// as the trigger's stored subject spells them, is put aside.
func DeadLetterSubjectFor(tenant, orderID, triggerKey string) string {
	return DeadLetterSubject + "." + tenant + "." + orderID + "." + triggerKey
}

// LaneFilter matches an order's trigger in whichever lane it is copied to.
func LaneFilter(tenant, orderID, triggerKey string) string {
	return laneRoot + ".*." + tenant + "." + orderID + "." + triggerKey
}

// respelling is a subject transform the lanes' copy may carry besides its
// own: its filter has two tokens, and ORDERFLOW_TRIGGERS stores only
// subjects of five, so it copies nothing. A copy with it and one without
// it copy the same, but nats-server tells them apart (the transforms are
// part of a source's name), which is what RestartLaneCopy needs.
var respelling = jetstream.SubjectTransformConfig{Source: SubjectRoot + "._respelled", Destination: laneRoot + "._respelled"}

// respelled reports whether src carries the respelling.
func respelled(src *jetstream.StreamSource) bool {
	return src != nil && slices.Contains(src.SubjectTransforms, respelling)
}

// LaneStreamConfig is the lane stream's configuration: a work queue that
// copies every trigger of ORDERFLOW_TRIGGERS, in order, from its first,
// under a subject that carries the order's partition. It allows no direct
// gets, so that a get is answered by its leader: on a cluster a follower
// answering a direct get may lag behind, and the trigger processor's lane
// gate takes a trigger the lane stream no longer has for acknowledged.
func LaneStreamConfig(lanes, replicas int) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        StreamTriggerLanes,
		Description: "orderflow triggers partitioned by order id for processing (derived from ORDERFLOW_TRIGGERS)",
		Retention:   jetstream.WorkQueuePolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
		Sources: []*jetstream.StreamSource{{
			Name: StreamTriggers,
			SubjectTransforms: []jetstream.SubjectTransformConfig{{
				Source:      SubjectRoot + ".*.trigger.*.*",
				Destination: fmt.Sprintf("%s.{{partition(%d,2)}}.{{wildcard(1)}}.{{wildcard(2)}}.{{wildcard(3)}}", laneRoot, lanes),
			}},
		}},
	}
}

// LaneCopy is how the lane stream stands: what it holds, and whether its
// copy of ORDERFLOW_TRIGGERS is failing.
type LaneCopy struct {
	// Waiting counts the triggers in the lanes: copied, and not yet
	// applied and acknowledged by a trigger processor.
	Waiting uint64
	// Err is the server's error for the copy, empty while it works. While
	// there is one the server copies nothing and retries by itself (after
	// a restart, for example, the copy can be refused with "stream not
	// found" and retried after seconds to minutes): stored triggers wait.
	Err string
	// Idle is how long the lane stream has not heard from its copy
	// (copied triggers, or the server's heartbeat about every second), or
	// -1 while it never has. Above a few seconds the copy has stalled
	// without an error: when the cluster node that led ORDERFLOW_TRIGGERS
	// stops, nats-server notices the copy is gone and sets it up again
	// only after 10 to 20 seconds; stored triggers wait meanwhile.
	Idle time.Duration
	// Copied is the ORDERFLOW_TRIGGERS sequence of the last trigger the
	// copy stored in the lanes (0: none yet, or not known).
	Copied uint64
	// ResumeAt is where the copy starts again should the server lose its
	// place (see SetLaneCopyResume): 1 in a new lane stream; 0 in one made
	// before orderflow kept it, until EnsureLanes sets it.
	ResumeAt uint64
	// SourceMissing: the server's error for the copy is that it found no
	// ORDERFLOW_TRIGGERS. After a restart a server may load the lane
	// stream before the larger trigger stream, and then tries the copy
	// again only about 12 s later (RestartLaneCopy sets it up at once).
	SourceMissing bool

	// Lanes is how many lanes the copy partitions triggers into (0: not
	// known).
	Lanes int

	respelled bool   // the copy carries the respelling (see RestartLaneCopy)
	unset     bool   // no copy is set up yet (see StartLanesAt)
	next      uint64 // the lane stream's next sequence
}

// ErrLanesInUse is EnsureLanes's error when asked for another number of
// lanes than the lane stream has while it holds triggers, or while a
// process reads its lanes: partitioned anew, the triggers waiting in
// lanes past the new number would never be delivered, and one order's
// triggers would run in two lanes at once. It is also the error when
// asked for another AckWait or Window while a process reads a lane: the
// lane consumers are shared, so the settings are changed only with every
// process stopped (see checkLaneSettings).
var ErrLanesInUse = errors.New("the trigger lanes are in use with other settings")

// partitionCount reads the number of lanes from the lane copy's subject
// transform ("…{{partition(N,2)}}…"); 0 when there is none.
func partitionCount(src *jetstream.StreamSource) int {
	for _, tr := range src.SubjectTransforms {
		_, rest, ok := strings.Cut(tr.Destination, "{{partition(")
		if !ok {
			continue
		}
		num, _, _ := strings.Cut(rest, ",")
		if n, err := strconv.Atoi(strings.TrimSpace(num)); err == nil {
			return n
		}
	}
	return 0
}

// NextResume is where the copy's resume point belongs now: just past the
// last trigger copied, and never below where it is.
func (lc LaneCopy) NextResume() uint64 { return max(lc.ResumeAt, lc.Copied+1) }

// SetLaneCopyResume makes seq the ORDERFLOW_TRIGGERS sequence the lanes'
// copy starts from should the server lose its place in it, unless a later
// one is set already. Give it a trigger the copy has reached (LaneCopy.
// Copied + 1): triggers from there on are then copied again (each a
// duplicate, taking effect once), never skipped.
//
// Why (nats-server 2.15): the lane stream records how far the copy got
// only with its full state, every two minutes or so and at a clean stop.
// After a kill that left it empty, a lane stream without that record (a
// store younger than its first write, or one whose record is lost) has no
// place to resume from; without a resume point the server resumes by
// time, from the lane stream's last message, and skips triggers stored
// before then but not yet copied. The resume point is the source's
// OptStartSeq, which the server reads only then: the update leaves the
// running copy and its place alone.
func (s *Store) SetLaneCopyResume(ctx context.Context, seq uint64) error {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	info, err := s.streamInfo(ctx, StreamTriggerLanes)
	if err != nil {
		return err
	}
	cfg := info.Config
	if len(cfg.Sources) != 1 || cfg.Sources[0] == nil {
		return fmt.Errorf("lane stream: %d sources, want 1", len(cfg.Sources))
	}
	if cfg.Sources[0].OptStartSeq >= seq {
		return nil
	}
	cfg.Sources[0].OptStartSeq = seq
	if _, err := s.js.UpdateStream(ctx, cfg); err != nil {
		return fmt.Errorf("lane stream: set where the copy resumes: %w", err)
	}
	return nil
}

// ErrLanesHold is RestartLaneCopy's answer on one server while the lane
// stream holds triggers: nothing was changed.
var ErrLanesHold = errors.New("the lanes hold triggers: the copy is not set up again while they do")

// RestartLaneCopy has the copy of ORDERFLOW_TRIGGERS set up again at once,
// for a copy that nats-server would set up again itself only seconds on:
// one stalled without an error (see LaneCopy.Idle), 10 to 20 s, or one
// that found no ORDERFLOW_TRIGGERS after a restart (LaneCopy.
// SourceMissing), about 12 s.
//
// On a cluster it asks the lane stream's leader to step down; the next
// leader sets the copy up from where it stands. One server has no other
// leader: there the copy is replaced by one that copies the same but
// carries the respelling (or no longer does), which the server sets up at
// once. The server starts a copy it has not seen after the last trigger
// the lane stream holds from it, or else at the resume point, which the
// update sets just past the last trigger copied; so this is done only
// while the lanes hold nothing (ErrLanesHold otherwise), and the copy
// goes on exactly where it stood: nothing skipped, nothing copied twice.
// While they hold triggers, a spelling the lanes hold triggers of would
// start after the last of them (triggers copied since, copied again), and
// for a spelling never used the server looks through every trigger held
// for one of its own, under the lane stream's lock: on nats-server
// 2.15.2 that took 7 s with 15,000 triggers held, every lane stalled
// meanwhile. After a kill, which is when the lanes hold triggers at a
// start, the trigger processor has them delivered again at once and
// applies them within seconds, then sets the copy up again.
func (s *Store) RestartLaneCopy(ctx context.Context) error {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	if s.cfg.Replicas <= 1 {
		return s.respellLaneCopy(ctx)
	}
	resp, err := s.nc.RequestWithContext(ctx, "$JS.API.STREAM.LEADER.STEPDOWN."+StreamTriggerLanes, nil)
	if err != nil {
		return fmt.Errorf("lane stream leader step-down: %w", err)
	}
	var r struct {
		Success bool `json:"success"`
		Error   *struct {
			Description string `json:"description"`
		} `json:"error"`
	}
	if err := json.Unmarshal(resp.Data, &r); err != nil {
		return fmt.Errorf("lane stream leader step-down: %w", err)
	}
	if !r.Success {
		desc := "refused"
		if r.Error != nil {
			desc = r.Error.Description
		}
		return fmt.Errorf("lane stream leader step-down: %s", desc)
	}
	return nil
}

// respellLaneCopy is RestartLaneCopy on one server.
func (s *Store) respellLaneCopy(ctx context.Context) error {
	if _, err := s.streamInfo(ctx, StreamTriggers); err != nil {
		return err // set up again, the copy would fail the same way
	}
	info, err := s.streamInfo(ctx, StreamTriggerLanes)
	if err != nil {
		return err
	}
	lc := laneCopyOf(info)
	if lc.Waiting > 0 {
		return ErrLanesHold
	}
	cfg := info.Config
	if len(cfg.Sources) != 1 || cfg.Sources[0] == nil {
		return fmt.Errorf("lane stream: %d sources, want 1", len(cfg.Sources))
	}
	src := *cfg.Sources[0]
	if lc.respelled {
		src.SubjectTransforms = slices.DeleteFunc(slices.Clone(src.SubjectTransforms),
			func(t jetstream.SubjectTransformConfig) bool { return t == respelling })
	} else {
		src.SubjectTransforms = append(slices.Clone(src.SubjectTransforms), respelling)
	}
	src.OptStartSeq = lc.NextResume()
	cfg.Sources = []*jetstream.StreamSource{&src}
	if _, err := s.js.UpdateStream(ctx, cfg); err != nil {
		return fmt.Errorf("lane stream: set the copy up again: %w", err)
	}
	return nil
}

// LaneLeftovers lists the messages the lane stream still holds at or
// below their lane consumer's acknowledgement floor (consumers names the
// lane consumers), oldest first per lane. A work queue removes a message
// when its consumer acknowledges it, so as a rule there are none. But a
// server stopped hard (kill -9) can come back with a consumer's state
// saved after acknowledgements whose removals were not: those messages
// stay in the stream, below the floor, and are never delivered again
// (nats-server 2.15 looks for them only on a stream update, and only
// above where it last looked). A consumer reset past messages leaves them
// the same way, not processed. Each lane costs one consumer info and one
// get per leftover, plus one.
func (s *Store) LaneLeftovers(ctx context.Context, consumers []string) ([]*jetstream.RawStreamMsg, error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	st, err := s.js.Stream(ctx, StreamTriggerLanes)
	if err != nil {
		return nil, fmt.Errorf("lane stream: %w", err)
	}
	state := st.CachedInfo().State
	if state.Msgs == 0 {
		return nil, nil
	}
	var left []*jetstream.RawStreamMsg
	for _, name := range consumers {
		c, err := st.Consumer(ctx, name)
		if err != nil {
			return left, fmt.Errorf("lane consumer %s: %w", name, err)
		}
		info := c.CachedInfo()
		floor := info.AckFloor.Stream
		for seq := state.FirstSeq; seq <= floor; {
			m, err := st.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(info.Config.FilterSubject))
			if errors.Is(err, jetstream.ErrMsgNotFound) {
				break
			}
			if err != nil {
				return left, fmt.Errorf("lane stream: %w", err)
			}
			if m.Sequence > floor {
				break
			}
			left = append(left, m)
			seq = m.Sequence + 1
		}
	}
	return left, nil
}

// DropLaneMessages removes the lane stream's messages at seqs (some of
// LaneLeftovers), in order, through one look-up of the stream, and
// returns how many of them, from the first, are gone: at an error, those
// before it. One already gone is no error.
func (s *Store) DropLaneMessages(ctx context.Context, seqs []uint64) (int, error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	st, err := s.js.Stream(ctx, StreamTriggerLanes)
	if err != nil {
		return 0, fmt.Errorf("lane stream: %w", err)
	}
	for i, seq := range seqs {
		if err := st.DeleteMsg(ctx, seq); err != nil {
			// A message already gone fails the delete with a generic code
			// (10057, "no message found"): ask for it to tell.
			if _, gerr := st.GetMsg(ctx, seq); errors.Is(gerr, jetstream.ErrMsgNotFound) {
				continue
			}
			return i, fmt.Errorf("lane stream: remove %d: %w", seq, err)
		}
	}
	return len(seqs), nil
}

// LaneCopyState reads the lane stream's state.
func (s *Store) LaneCopyState(ctx context.Context) (LaneCopy, error) {
	info, err := s.streamInfo(ctx, StreamTriggerLanes)
	if err != nil {
		return LaneCopy{}, err
	}
	return laneCopyOf(info), nil
}

// laneCopyOf reads the lane stream's state from its info.
func laneCopyOf(info *jetstream.StreamInfo) LaneCopy {
	lc := LaneCopy{Waiting: info.State.Msgs, Idle: -1}
	for _, src := range info.Sources {
		if src == nil {
			continue
		}
		if src.Error != nil {
			lc.Err = src.Error.Error()
			lc.SourceMissing = src.Error.ErrorCode == jetstream.JSErrCodeStreamNotFound
		}
		if src.Active >= 0 {
			lc.Idle = src.Active
		}
		lc.Copied = src.Seq
	}
	for _, src := range info.Config.Sources {
		if src != nil {
			lc.ResumeAt, lc.respelled, lc.Lanes = src.OptStartSeq, respelled(src), partitionCount(src)
		}
	}
	lc.unset, lc.next = len(info.Config.Sources) == 0, info.State.LastSeq+1
	return lc
}

// StartLanesAt makes the lane stream, empty and copying nothing yet, for
// the copy of ORDERFLOW_TRIGGERS that EnsureLanes sets up to start at the
// trigger stored at seq: for a store restored by import, whose triggers
// before seq were all answered or put aside, so that the trigger
// processor does not read them all again. The lane stream starts at
// sequence seq itself, so that each lane message keeps the sequence of
// the trigger it copies, as the copy check expects. It does nothing
// (false) when seq is 1 or the lane stream is there already (a process
// that ran during the import has its copy set up).
func (s *Store) StartLanesAt(ctx context.Context, seq uint64) (bool, error) {
	if seq <= 1 {
		return false, nil
	}
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	switch _, err := s.streamInfo(ctx, StreamTriggerLanes); {
	case err == nil:
		return false, nil
	case !errors.Is(err, jetstream.ErrStreamNotFound):
		return false, err
	}
	sc := LaneStreamConfig(1, s.cfg.Replicas)
	// With neither subjects nor a source JetStream would give the stream
	// its own name as its subject; this one no publisher uses, and the
	// copy's set-up drops it.
	sc.Sources, sc.Subjects, sc.FirstSeq = nil, []string{laneRoot + "._unset"}, seq
	if _, err := s.js.CreateStream(ctx, sc); err != nil {
		return false, fmt.Errorf("lane stream: make it start at trigger %d: %w", seq, err)
	}
	return true, nil
}

// checkRepartition refuses (ErrLanesInUse) to partition the lanes anew
// into lanes while the lane stream, partitioned into lc.Lanes, holds
// triggers or a process reads one of its lanes (a lane consumer with a
// pull request waiting, triggers handed out, or a client pinned: a
// process that stopped hard holds its pin for the pin's time to live).
// An idle, empty lane stream may be partitioned anew: that is how the
// number is changed.
func (s *Store) checkRepartition(ctx context.Context, lc LaneCopy, lanes int) error {
	if lc.Lanes == 0 || lc.Lanes == lanes {
		return nil
	}
	if lc.Waiting > 0 {
		return fmt.Errorf("%w: %s is partitioned into %d lanes and holds %d triggers not yet processed: start with %d lanes, "+
			"or let processes with %d lanes process them, stop them all, and then change it", ErrLanesInUse, StreamTriggerLanes, lc.Lanes, lc.Waiting, lc.Lanes, lc.Lanes)
	}
	for i := range lc.Lanes {
		info, err := s.laneConsumerInfo(ctx, i)
		if err != nil {
			return err
		}
		if info != nil && (info.NumWaiting > 0 || info.NumAckPending > 0 || LanePin(info) != "") {
			return fmt.Errorf("%w: lane %d of the %d of %s is being read (another process runs with %d lanes): every process must use the same number",
				ErrLanesInUse, i, lc.Lanes, StreamTriggerLanes, lc.Lanes)
		}
	}
	s.cfg.Logger.Warn("partitioning the trigger lanes anew: no process reads them and they hold nothing", "from", lc.Lanes, "to", lanes)
	return nil
}

// EnsureDeadLetters creates or updates the dead-letter stream
// (StreamDeadLetter).
func (s *Store) EnsureDeadLetters(ctx context.Context) error {
	_, err := s.ensureStream(ctx, jetstream.StreamConfig{
		Name:        StreamDeadLetter,
		Description: "orderflow triggers that can never be processed, with the reason",
		Subjects:    []string{DeadLetterSubject, DeadLetterSubject + ".>"},
		Storage:     jetstream.FileStorage,
		Replicas:    s.cfg.Replicas,
		Duplicates:  max(s.cfg.DuplicateWindow, deadLetterDuplicates),
		DenyDelete:  true,
		DenyPurge:   true,
		AllowDirect: true, // ScanMessagesOn and ScanMessages: a trigger's dead letters, orderflow deadletters
	})
	return err
}

// EnsureLanes creates or updates the lane stream, its consumers and the
// dead-letter stream, and returns the lane consumers' names.
func (s *Store) EnsureLanes(ctx context.Context, cfg LaneConfig) ([]string, error) {
	if cfg.Lanes <= 0 {
		cfg.Lanes = 8
	}
	if cfg.Lanes > 1024 {
		return nil, fmt.Errorf("lanes %d: at most 1024", cfg.Lanes)
	}
	if cfg.AckWait <= 0 {
		cfg.AckWait = 10 * time.Second
	}
	if cfg.Window <= 0 {
		cfg.Window = 256
	}
	sc := LaneStreamConfig(cfg.Lanes, s.cfg.Replicas)
	var lc LaneCopy
	err := s.Retry(ctx, func(ctx context.Context) error { // see ensureLaneConsumer
		var err error
		lc, err = s.LaneCopyState(ctx)
		return err
	})
	switch {
	case err == nil:
		if err := s.checkRepartition(ctx, lc, cfg.Lanes); err != nil {
			return nil, err
		}
		// Where the copy resumes should the server lose its place, kept
		// and moved up to where the copy stands (unreadable, it is unset
		// until the trigger processor sets it again, seconds later).
		sc.Sources[0].OptStartSeq = lc.NextResume()
		if lc.unset {
			// Made by StartLanesAt: the copy starts at the lane stream's
			// next sequence, so that the two sequences stay the same.
			sc.Sources[0].OptStartSeq = lc.next
		}
		if lc.respelled {
			// Kept as RestartLaneCopy left it: the other spelling would be
			// a copy the server has not seen, set up again.
			sc.Sources[0].SubjectTransforms = append(sc.Sources[0].SubjectTransforms, respelling)
		}
	case errors.Is(err, jetstream.ErrStreamNotFound):
		// A new lane stream copies from the first trigger, and resumes
		// there until the point is moved up.
		sc.Sources[0].OptStartSeq = 1
	}
	st, err := s.ensureStream(ctx, sc)
	if err != nil {
		return nil, err
	}
	if err := s.EnsureDeadLetters(ctx); err != nil {
		return nil, err
	}
	was, err := s.checkLaneSettings(ctx, cfg)
	if err != nil {
		return nil, err
	}
	names := make([]string, cfg.Lanes)
	for i := range cfg.Lanes {
		names[i] = LaneConsumer(i)
		cc := jetstream.ConsumerConfig{
			Durable:        names[i],
			Description:    fmt.Sprintf("orderflow trigger lane %d of %d", i, cfg.Lanes),
			FilterSubject:  fmt.Sprintf("%s.%d.>", laneRoot, i),
			AckPolicy:      jetstream.AckExplicitPolicy,
			AckWait:        cfg.AckWait,
			MaxAckPending:  cfg.Window,
			DeliverPolicy:  jetstream.DeliverAllPolicy,
			Replicas:       s.cfg.Replicas,
			PriorityPolicy: jetstream.PriorityPolicyPinned,
			PriorityGroups: []string{LaneGroup},
			PinnedTTL:      LanePinTTL(cfg.AckWait),
		}
		if err := s.ensureLaneConsumer(ctx, st, cc, was[i]); err != nil {
			return nil, fmt.Errorf("lane consumer %s: %w", names[i], err)
		}
	}
	return names, nil
}

// checkLaneSettings refuses (ErrLanesInUse) to change a lane consumer's
// AckWait or Window (MaxAckPending) while a process reads the lane (it is
// pinned, or a pull waits on it), before any lane is changed. The lane
// consumers are shared by every process, so the last one to start would
// otherwise set them for all, each process timing its hand-overs and
// drains by its own flags and its lanes by another's. With nobody reading,
// the settings change (logged): that is how an operator changes them, all
// processes stopped. A process killed keeps its lanes pinned for up to
// AckWait; starting again with other settings is refused until then.
//
// It returns what it found of each lane's consumer (nil: none yet), for
// ensureLaneConsumer.
func (s *Store) checkLaneSettings(ctx context.Context, cfg LaneConfig) ([]*jetstream.ConsumerInfo, error) {
	warned := false
	infos := make([]*jetstream.ConsumerInfo, cfg.Lanes)
	for i := range cfg.Lanes {
		info, err := s.laneConsumerInfo(ctx, i)
		if err != nil {
			return nil, fmt.Errorf("lane consumer %s: %w", LaneConsumer(i), err)
		}
		if infos[i] = info; info == nil {
			continue
		}
		was := info.Config
		if was.PriorityPolicy != jetstream.PriorityPolicyPinned || (was.AckWait == cfg.AckWait && was.MaxAckPending == cfg.Window) {
			continue // the same, or from before lanes were pinned (replaced)
		}
		if LanePin(info) != "" || info.NumWaiting > 0 {
			return nil, fmt.Errorf("%w: lane %d is being read by a process with ack wait %s and a window of %d, asked for %s and %d: "+
				"every process must use the same --ack-wait and --lane-window; stop them all to change them "+
				"(a process that was killed holds its lanes for up to its ack wait)",
				ErrLanesInUse, i, was.AckWait, was.MaxAckPending, cfg.AckWait, cfg.Window)
		}
		if !warned {
			warned = true
			s.cfg.Logger.Warn("changing the trigger lanes' settings: no process reads them",
				"ack_wait_from", was.AckWait, "ack_wait_to", cfg.AckWait, "window_from", was.MaxAckPending, "window_to", cfg.Window)
		}
	}
	return infos, nil
}

// laneConsumerInfo looks lane i's consumer up: nil when there is none.
func (s *Store) laneConsumerInfo(ctx context.Context, i int) (*jetstream.ConsumerInfo, error) {
	var info *jetstream.ConsumerInfo
	err := s.Retry(ctx, func(ctx context.Context) error {
		c, err := s.js.Consumer(ctx, StreamTriggerLanes, LaneConsumer(i))
		if err == nil {
			info = c.CachedInfo()
		}
		return err
	})
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil, nil
	}
	return info, err
}

// LanePin is the id of the reader a lane consumer is pinned to ("": none).
func LanePin(info *jetstream.ConsumerInfo) string {
	for _, g := range info.PriorityGroups {
		if g.PinnedClientID != "" {
			return g.PinnedClientID
		}
	}
	return ""
}

// ensureLaneConsumer creates or updates a lane consumer. A consumer from
// before lanes were pinned (JetStream cannot add a priority policy to an
// existing consumer) is replaced: the lane stream is a work queue, so what
// it still holds is exactly what has not been processed, and the new
// consumer delivers it from the start. The first attempt goes by was
// (what checkLaneSettings found; nil: none); a retry looks the consumer
// up again with its create (Retry): when processes start together, either
// may go unanswered, and another process may have replaced it meanwhile.
func (s *Store) ensureLaneConsumer(ctx context.Context, st jetstream.Stream, cc jetstream.ConsumerConfig, was *jetstream.ConsumerInfo) error {
	first := true
	return s.Retry(ctx, func(ctx context.Context) error {
		info := was
		if !first {
			c, err := st.Consumer(ctx, cc.Durable)
			switch {
			case err == nil:
				info = c.CachedInfo()
			case errors.Is(err, jetstream.ErrConsumerNotFound):
				info = nil
			default:
				return err
			}
		}
		first = false
		if info != nil && info.Config.PriorityPolicy != cc.PriorityPolicy {
			if err := st.DeleteConsumer(ctx, cc.Durable); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
				return err
			}
		}
		_, err := st.CreateOrUpdateConsumer(ctx, cc)
		return err
	})
}

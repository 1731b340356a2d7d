package handlers

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/ThreeDotsLabs/watermill"
	wmjs "github.com/ThreeDotsLabs/watermill-nats/v2/pkg/jetstream"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/orderflow/orderflow/domain"
	"github.com/orderflow/orderflow/eventstore"
)

// TriggerBody is the optional JSON body of a trigger message. TriggerID,
// when set, is the trigger's idempotency key instead of Nats-Msg-Id (so a
// worker app that re-sends after JetStream's duplicate window, or with a
// new message id, still gets one effect).
type TriggerBody struct {
	Worker     string    `json:"worker,omitempty"`
	OccurredAt time.Time `json:"occurred_at,omitzero"`
	Note       string    `json:"note,omitempty"`
	TriggerID  string    `json:"trigger_id,omitempty"`
}

// MaxTriggerBody bounds a trigger message's body; a larger one is put
// aside as a dead letter. ORDERFLOW_TRIGGERS stores no message over
// eventstore.MaxTriggerMsgSize, body and headers.
const MaxTriggerBody = eventstore.MaxTriggerBody

// DecodeTriggerBody reads a trigger message body: empty, or one JSON object
// with known fields only.
func DecodeTriggerBody(b []byte) (TriggerBody, error) {
	var body TriggerBody
	if len(bytes.TrimSpace(b)) == 0 {
		return body, nil
	}
	if len(b) > MaxTriggerBody {
		return body, fmt.Errorf("trigger body of %d bytes is over the %d byte limit", len(b), MaxTriggerBody)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		return TriggerBody{}, fmt.Errorf("trigger body: %w", JSONError(&body, err, "the body"))
	}
	if dec.More() {
		return TriggerBody{}, errors.New("trigger body: data after the JSON object")
	}
	// The limits of the order's own checks (domain.TriggerReport.Check,
	// ValidateTriggerID), in the same units: what a worker app's client
	// lets through is never poison for its length.
	switch {
	case len(body.Worker) > domain.MaxActorIDLen:
		return TriggerBody{}, fmt.Errorf("trigger body: worker: longer than %d bytes", domain.MaxActorIDLen)
	case len(body.TriggerID) > domain.MaxTriggerIDLen:
		return TriggerBody{}, fmt.Errorf("trigger body: trigger_id: longer than %d bytes", domain.MaxTriggerIDLen)
	case utf8.RuneCountInString(body.Note) > domain.MaxDescriptionLen:
		return TriggerBody{}, fmt.Errorf("trigger body: note: longer than %d characters", domain.MaxDescriptionLen)
	}
	return body, nil
}

// checkTriggerBody refuses what DecodeTriggerBody lets through, which
// reads every stored trigger's id as it always has: a field given twice
// (which of the two would count?), as HTTP refuses it, and text
// encoding/json would read altered (see checkJSONText). The worker, the
// note and the trigger id are the order's to check
// (domain.Order.ApplyTrigger), once it knows the id is a new one.
func checkTriggerBody(b []byte) error {
	if name, ok := repeatedTriggerField(b); ok {
		return fmt.Errorf("trigger body: field %q is given twice", name)
	}
	if err := checkJSONText(b); err != nil {
		return fmt.Errorf("trigger body %w", err)
	}
	return nil
}

// triggerFields are the names of a trigger body's fields.
var triggerFields = [][]byte{[]byte("worker"), []byte("occurred_at"), []byte("note"), []byte("trigger_id")}

// repeatedTriggerField is duplicateName for a body DecodeTriggerBody
// took: one flat object of triggerFields, whose names encoding/json
// matches without regard to case. Every trigger pays for it, so it scans
// the bytes once instead of walking JSON tokens (about 2.4 µs and 49
// allocations a body); a name spelled with an escape goes to
// duplicateName.
func repeatedTriggerField(b []byte) (string, bool) {
	var seen [4]bool
	name := false // the next string is a member's name
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '{', ',':
			name = true
		case '"':
			j := i + 1
			for ; j < len(b) && b[j] != '"'; j++ {
				if b[j] == '\\' {
					if name {
						return duplicateName(b)
					}
					j++
				}
			}
			j = min(j, len(b)) // past an escape that ends the input (not JSON: DecodeTriggerBody refused it)
			if name {
				for k, f := range triggerFields {
					if bytes.EqualFold(b[i+1:j], f) {
						if seen[k] {
							return string(b[i+1 : j]), true
						}
						seen[k] = true
					}
				}
				name = false
			}
			i = j
		}
	}
	return "", false
}

// answeredBefore reports whether the order's history answers the trigger
// msg, whose body fails readTrigger's checks, by its id (read as the
// trigger account reads stored triggers, triggerIDOf) for its key. Such a
// trigger took effect, or was answered, under the laxer checks of an
// earlier version: read again (on a store restored by import, whose lanes
// copy every imported trigger), it is a duplicate, not a dead letter.
func (p *Processor) answeredBefore(msg *message.Message, tenant, orderID, key string) bool {
	var bodyID string
	if body, err := DecodeTriggerBody(msg.Payload); err == nil {
		bodyID = body.TriggerID
	}
	id := pickTriggerID(bodyID, msg.UUID, 0) // UUID: see triggerMessage
	history, err := p.cmds.Store.Load(msg.Context(), eventstore.Aggregate{Tenant: tenant, Type: domain.AggregateOrder, ID: orderID}, 0)
	if err != nil {
		return false // an unsafe token, say: put aside
	}
	ev, ok := causedBy(history, id)
	if !ok {
		return false
	}
	answers, _ := domain.OutcomeTrigger(ev.Type, ev.Data)
	return answers == key
}

// readTrigger reads a trigger stored for tenant, order id and trigger key
// (as its subject spells them) with body b. A trigger that no order could
// ever take (an unsafe token, a body that cannot be read) is a poison
// error with the reason.
func readTrigger(tenant, orderID, key string, b []byte) (TriggerBody, error) {
	for _, t := range []struct{ field, value string }{{"tenant", tenant}, {"order id", orderID}, {"trigger key", key}} {
		if err := eventstore.ValidateToken(t.field, t.value); err != nil {
			return TriggerBody{}, poison("%v", err)
		}
	}
	body, err := DecodeTriggerBody(b)
	if err == nil {
		err = checkTriggerBody(b)
	}
	if err != nil {
		return TriggerBody{}, poison("%v", err)
	}
	return body, nil
}

// errPoison marks a trigger that can never be processed: it goes to the
// dead-letter stream with the reason and is acknowledged.
var errPoison = errors.New("poison trigger")

func poison(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errPoison, fmt.Sprintf(format, args...))
}

func unknownOrder(tenant, orderID string) error {
	return poison("unknown order %q in tenant %q", orderID, tenant)
}

// errReported marks a failure the processor reports itself, at most once
// per reportEvery for all triggers, so Watermill's lines for each attempt
// are demoted to debug (see gatedLogger.Error).
var errReported = errors.New("reported by the processor")

// errWaitForRoom marks a trigger whose outcome found no storage left: it
// is not retried in place, and its lane tries it again after
// ProcessorConfig.StorageWait.
var errWaitForRoom = fmt.Errorf("waiting for storage (%w)", errReported)

// The conditions the processor reports itself (Processor.report).
const (
	reportStorageFull = iota
	reportNoLeader
	reportSlowStore
	reportIncompleteRead
	reportKinds
)

// ProcessorConfig tunes the trigger processor.
type ProcessorConfig struct {
	// Lanes is the number of trigger lanes (see eventstore.EnsureLanes);
	// every process sharing the work must use the same number. Default 8.
	Lanes int
	// AckWait is how long a lane waits for an acknowledgement before
	// redelivering (a crashed process's trigger goes to another). Default 10 s.
	AckWait time.Duration
	// MaxRetries is how often a transient failure (a concurrency conflict
	// with a supervisor action, a timeout) is retried in place before the
	// trigger is handed back to JetStream. Default 5.
	MaxRetries int
	// Window is how many unacknowledged triggers a lane's process may
	// hold: triggers of different orders in a lane run in parallel up to
	// it. Every process sharing the work must use the same. Default 256.
	Window int
	// Heartbeat is how often processes announce themselves to each other
	// to share the lanes out; one silent for three of its heartbeats is
	// taken as gone (for up to twelve, if it was wrongly taken for gone
	// lately: see members). Each heartbeat says how often its process
	// sends them, so a process is timed by its own; still, every process
	// sharing the work should use the same (see members.heard). From
	// MinHeartbeat to MaxHeartbeat; default 1 s.
	Heartbeat time.Duration
	// StorageWait is how long a trigger whose outcome found no storage
	// left (eventstore.ErrStorageFull) waits before it is tried again.
	// Default 5 s.
	StorageWait time.Duration
	Logger      *slog.Logger
	// ConnectOptions are added to the processor's own NATS connection's
	// options (credentials for a cluster that requires them).
	ConnectOptions []nats.Option

	copyCheckEvery time.Duration // how often watchCopy looks after its first look; default 1 s (tests lengthen it)
}

// Processor applies worker apps' triggers to orders: a Watermill router
// with one handler per lane. Dead letters go out through watermill-nats's
// JetStream publisher; the lanes are read by laneSubscriber (see there why
// not watermill-nats's subscriber).
type Processor struct {
	cfg     ProcessorConfig
	cmds    *Commands
	nc      *nats.Conn
	router  *message.Router
	members *members
	lanes   *laneSubscriber

	lanesCreated time.Time          // the lane stream's creation, which a copyMark names
	markMu       sync.Mutex         // one recordCopyMark at a time
	closing      context.Context    // ends at Close: no copyMark is recorded after, watchCopy stops
	endClosing   context.CancelFunc // ends closing
	watching     sync.WaitGroup     // watchCopy
	copyRestarts atomic.Uint64      // stalled copies set up again (watchCopy)
	laneNames    []string           // the lane consumers
	leftovers    atomic.Uint64      // lane messages removed below their lane's acknowledgement floor (sweepLanes)
	suspects     map[uint64]bool    // lane sequences the last sweep found below their floor (watchCopy's only)
	putAside     *putAside          // stored triggers with a dead letter: not processed again

	// beforeApply, when set (tests), runs before a trigger is applied; an
	// error it returns fails the attempt as the same error of applying it
	// would.
	beforeApply func(msg *message.Message) error
	// afterApply, when set (tests), runs after a trigger's outcome is
	// stored and before it is acknowledged.
	afterApply func(msg *message.Message)
	handled    atomic.Uint64
	fullAt     atomic.Int64          // when an outcome last found no storage left (Unix nanoseconds; 0: never)
	reported   [reportKinds]reporter // each condition's last line, and how often it was met since
	deadLog    *lineBudget           // the dead letters' lines
	outcomeMu  sync.Mutex
	outcomes   map[outcomeKey]uint64
}

type outcomeKey struct {
	outcome domain.TriggerOutcome
	reason  domain.RejectReason // of a rejection
}

// Handled is how many triggers this processor has applied (outcomes
// stored, duplicates included).
func (p *Processor) Handled() uint64 { return p.handled.Load() }

// TriggerCount is how many triggers this processor applied with one
// outcome and, for rejections, one reason.
type TriggerCount struct {
	Outcome domain.TriggerOutcome
	Reason  domain.RejectReason
	N       uint64
}

// Outcomes is how many triggers this processor applied, by outcome and
// rejection reason, in that order.
func (p *Processor) Outcomes() []TriggerCount {
	p.outcomeMu.Lock()
	defer p.outcomeMu.Unlock()
	counts := make([]TriggerCount, 0, len(p.outcomes))
	for k, n := range p.outcomes {
		counts = append(counts, TriggerCount{Outcome: k.outcome, Reason: k.reason, N: n})
	}
	slices.SortFunc(counts, func(a, b TriggerCount) int {
		return cmp.Or(cmp.Compare(a.Outcome, b.Outcome), cmp.Compare(a.Reason, b.Reason))
	})
	return counts
}

func (p *Processor) count(res domain.TriggerResult) {
	k := outcomeKey{outcome: res.Outcome}
	if res.Outcome == domain.OutcomeRejected {
		k.reason = res.Reason
	}
	p.outcomeMu.Lock()
	if p.outcomes == nil {
		p.outcomes = map[outcomeKey]uint64{}
	}
	p.outcomes[k]++
	p.outcomeMu.Unlock()
	p.handled.Add(1)
}

// WriteLatency writes, as the Prometheus histogram
// orderflow_trigger_duration_seconds, how long the triggers this process
// applied took from their arrival in a lane to their outcome stored
// (every outcome; dead letters too). A trigger that waited behind its
// order's earlier ones, for a retry, or in a lane while no process read
// it, counts that wait.
func (p *Processor) WriteLatency(w io.Writer) {
	fmt.Fprint(w, "# HELP orderflow_trigger_duration_seconds How long triggers took from their arrival in a lane to their outcome stored, waits included.\n# TYPE orderflow_trigger_duration_seconds histogram\n")
	p.lanes.latency.write(w, "orderflow_trigger_duration_seconds", "")
}

// Processors is how many trigger processors share the lanes as this one
// knows them (those it has heard within the last three heartbeats, or up
// to twelve for one wrongly taken for gone lately), itself included.
func (p *Processor) Processors() int { return p.members.count() }

// ID is how this processor names itself to the others (in their logs).
func (p *Processor) ID() string { return p.members.self }

// OwnedLanes is how many lanes this processor owns now (its share of the
// processes it hears from).
func (p *Processor) OwnedLanes() int {
	n := 0
	for i := range p.cfg.Lanes {
		if p.members.owns(i) {
			n++
		}
	}
	return n
}

// Recopied is how many triggers stored in ORDERFLOW_TRIGGERS this
// processor found the lane stream had skipped, and published again (see
// copyCheck).
func (p *Processor) Recopied() uint64 { return p.lanes.copies.recopied.Load() }

// LaneLeftovers is how many triggers this processor removed from the lane
// stream because their lane had acknowledged past them (see sweepLanes).
func (p *Processor) LaneLeftovers() uint64 { return p.leftovers.Load() }

// CopyRestarts is how many times this processor found the lanes' copy of
// ORDERFLOW_TRIGGERS stalled and had it set up again (see watchCopy).
func (p *Processor) CopyRestarts() uint64 { return p.copyRestarts.Load() }

// HandedBack is how many triggers this processor has handed back, not
// started, when it gave a lane up.
func (p *Processor) HandedBack() uint64 { return p.lanes.handedBack.Load() }

// LaneResets is how many lanes this processor took over with triggers
// their reader, gone, had not acknowledged, and reset so that those came
// again at once (see redeliverOrphans).
func (p *Processor) LaneResets() uint64 { return p.lanes.resets.Load() }

// LaneUnpins is how many lanes this processor took over whose pin was
// held by a process it no longer heard from, and released so that the lane
// went on at once (see releaseOrphanPin).
func (p *Processor) LaneUnpins() uint64 { return p.lanes.unpins.Load() }

// deadLetters publishes each dead letter on the subject of its tenant,
// order and trigger key (eventstore.DeadLetterSubjectFor), read from the
// lane subject the trigger came on: Watermill's poison queue has one topic
// for all. One whose lane subject cannot be read goes to the topic itself,
// and so does one that no stream takes (a process of an earlier version,
// started since, set the dead-letter stream back to that one subject).
type deadLetters struct {
	message.Publisher
	putAside *putAside   // takes each one stored
	log      *lineBudget // a line for each, deadLetterLines at most every deadLetterLinesEvery
}

func (d deadLetters) Publish(topic string, msgs ...*message.Message) error {
	for _, m := range msgs {
		subject := topic
		tenant, order, trigger, err := eventstore.ParseLaneSubject(m.Metadata.Get(mdSubject))
		if err == nil {
			subject = eventstore.DeadLetterSubjectFor(tenant, order, trigger)
		}
		err = d.Publisher.Publish(subject, m)
		if errors.Is(err, jetstream.ErrNoStreamResponse) && subject != topic {
			err = d.Publisher.Publish(topic, m)
		}
		if err != nil {
			return err
		}
		d.putAside.add(m.Metadata.Get(mdDeadLetterID))
		seq, _ := deadLetterSeq(m.Metadata.Get(mdDeadLetterID))
		d.log.warn("trigger put aside as a dead letter (orderflow deadletters lists them)",
			"trigger_sequence", seq, "tenant", tenant, "order", order, "trigger", trigger, "trigger_id", m.UUID,
			"reason", m.Metadata.Get(middleware.ReasonForPoisonedKey))
	}
	return nil
}

// metadata keys of a trigger's Watermill message (the poison queue copies
// them into a dead letter's headers).
const (
	mdSubject   = "subject"
	mdStreamSeq = "stream_seq"
	// mdRedelivered is set on a trigger that may have been in another
	// reader's hands: delivered before it came to this one, or held here
	// while the lane was read elsewhere (see putAsideElsewhere).
	mdRedelivered = "redelivered"
	// mdDeadLetterID becomes the dead letter's Nats-Msg-Id: it names the
	// stored trigger ("deadletter-<N>", N its ORDERFLOW_TRIGGERS
	// sequence), so a trigger delivered again (a crash before its
	// acknowledgement) or copied into the lanes again (after a crash of
	// the server) is put aside once, within the dead-letter stream's
	// duplicate window. A trigger sent again by deadletters retry is a new
	// stored trigger, and is put aside anew if it fails again.
	mdDeadLetterID = jetstream.MsgIDHeader
)

// triggerMessage turns a lane message, at stream sequence seq (0 when
// unknown), into a Watermill message. Unlike watermill-nats's default
// unmarshaler it keeps the subject (the order id and trigger key live
// there) and Nats-Msg-Id (the trigger id), and it never fails (the default
// refuses repeated headers, which would leave nothing to dead-letter).
//
// A trigger published without an id gets "trigger-seq-<N>", N being where
// ORDERFLOW_TRIGGERS stored it: that names the stored trigger for good,
// while a lane sequence would not (a lane stream made anew, or one that
// copies a trigger again after a crash, numbers its copies differently:
// a trigger could then take effect twice, or pass for another one's
// duplicate). One that may have been in another reader's hands
// (elsewhere, see held) is marked mdRedelivered.
func triggerMessage(m jetstream.Msg, seq uint64, elsewhere bool) *message.Message {
	h := m.Headers()
	md := message.Metadata{mdSubject: m.Subject()}
	if seq != 0 {
		md[mdStreamSeq] = strconv.FormatUint(seq, 10)
	}
	if elsewhere {
		md[mdRedelivered] = "true"
	}
	source, _ := sourceSequence(h.Get(streamSourceHeader))
	// A copy: nats.go cuts every header value out of one string of the
	// message's whole header block, and the order cache keeps each
	// trigger id for as long as it keeps the order. The value itself
	// would keep the block (about 300 bytes, the copy's source and pin
	// included) with it.
	id := pickTriggerID("", strings.Clone(h.Get(jetstream.MsgIDHeader)), source) // the body's trigger_id, if any, wins in handle
	if id == "" && seq != 0 {
		id = "lane-seq-" + md[mdStreamSeq] // not copied from ORDERFLOW_TRIGGERS: the lane's own number is all there is
	}
	switch {
	case source != 0:
		md[mdDeadLetterID] = deadLetterID(source)
	case seq != 0:
		md[mdDeadLetterID] = deadLetterPrefix + "lane-" + md[mdStreamSeq]
	}
	wm := message.NewMessage(id, m.Data())
	wm.Metadata = md
	return wm
}

// pickTriggerID is the id under which a trigger takes effect: the body's
// trigger_id, else its Nats-Msg-Id, else "trigger-seq-<N>" with N its
// ORDERFLOW_TRIGGERS sequence ("" when that is unknown too). The
// processor and the trigger account (CheckTriggers) both name triggers
// by it.
func pickTriggerID(bodyID, msgID string, triggerSeq uint64) string {
	switch {
	case bodyID != "":
		return bodyID
	case msgID != "":
		return msgID
	case triggerSeq != 0:
		return "trigger-seq-" + strconv.FormatUint(triggerSeq, 10)
	}
	return ""
}

// streamSourceHeader is the header JetStream puts on a message one stream
// copies from another (nats.go has no name for it).
const streamSourceHeader = "Nats-Stream-Source"

// sourceSequence reads the ORDERFLOW_TRIGGERS sequence from the header
// JetStream puts on a message it copies from another stream:
// "<stream> <sequence> <filter> <destination> <subject> <identity>".
func sourceSequence(header string) (uint64, bool) {
	stream, rest, _ := strings.Cut(header, " ")
	if stream != eventstore.StreamTriggers {
		return 0, false
	}
	num, _, _ := strings.Cut(rest, " ")
	n, err := strconv.ParseUint(num, 10, 64)
	return n, err == nil && n > 0
}

// NewProcessor connects to NATS at url with a connection of its own and
// sets up the lanes.
func NewProcessor(ctx context.Context, cmds *Commands, url string, cfg ProcessorConfig) (*Processor, error) {
	if cfg.Lanes <= 0 {
		cfg.Lanes = 8
	}
	if cfg.AckWait <= 0 {
		cfg.AckWait = 10 * time.Second
	}
	if cfg.MaxRetries <= 0 {
		cfg.MaxRetries = 5
	}
	if cfg.Window <= 0 {
		cfg.Window = 256
	}
	if cfg.StorageWait <= 0 {
		cfg.StorageWait = 5 * time.Second
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = time.Second
	}
	if cfg.Heartbeat < MinHeartbeat || cfg.Heartbeat > MaxHeartbeat {
		return nil, fmt.Errorf("trigger processor: heartbeat %s: must be from %s to %s", cfg.Heartbeat, MinHeartbeat, MaxHeartbeat)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	lanes, err := cmds.Store.EnsureLanes(ctx, eventstore.LaneConfig{Lanes: cfg.Lanes, AckWait: cfg.AckWait, Window: cfg.Window})
	if err != nil {
		return nil, err
	}
	// The store's connection reached url a moment ago: a server away now
	// is restarting, so the connection is made in the background, and the
	// look-ups below (tried again for up to 30 s) wait for it.
	nc, err := nats.Connect(url, append(slices.Clip(cfg.ConnectOptions),
		nats.Name("orderflow-trigger-processor"), nats.MaxReconnects(-1), nats.ReconnectWait(250*time.Millisecond),
		nats.RetryOnFailedConnect(true),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			cfg.Logger.Warn("trigger processor: nats", "err", err)
		}))...)
	if err != nil {
		return nil, fmt.Errorf("trigger processor: connect: %w", err)
	}
	p := &Processor{cfg: cfg, cmds: cmds, nc: nc, members: newMembers(nc, cfg.Heartbeat)}
	p.members.log = cfg.Logger.With("component", "trigger-processor", "self", p.members.self)
	p.closing, p.endClosing = context.WithCancel(context.Background())
	if err := p.build(ctx, lanes); err != nil {
		nc.Close()
		return nil, err
	}
	if err := p.members.start(); err != nil {
		nc.Close()
		return nil, fmt.Errorf("trigger processor: %w", err)
	}
	p.watching.Add(1)
	go p.watchCopy()
	return p, nil
}

func (p *Processor) build(ctx context.Context, lanes []string) error {
	// Watermill logs every message at info; orderflow keeps that at debug.
	plog := p.cfg.Logger.With("component", "trigger-processor")
	wlog := watermillLogger(plog, map[slog.Level]slog.Level{slog.LevelInfo: slog.LevelDebug})
	// Each attempt that is retried is reported through Error (ShouldRetry,
	// below); a concurrency conflict retried is expected work, so this
	// logger writes those as warnings, and only a trigger that failed every
	// attempt logs an error (the router's).
	retryLog := watermillLogger(plog, map[slog.Level]slog.Level{slog.LevelInfo: slog.LevelDebug, slog.LevelError: slog.LevelWarn})
	js, err := jetstream.New(p.nc)
	if err != nil {
		return err
	}
	sub := newLaneSubscriber(js, p.members, p.cfg.Window, p.cfg.AckWait, 500*time.Millisecond, min(p.cfg.AckWait, maxDrain))
	sub.log, sub.copies.log, sub.copies.recover, sub.copies.wait = plog, plog, p.recoverSkipped, 2*p.cfg.AckWait
	sub.wait = p.waitForRoom
	if err := sub.lookUp(ctx, lanes, p.cmds.Store.Retry); err != nil {
		return fmt.Errorf("trigger processor: %w", err)
	}
	p.restoreCopyMark(ctx, sub.stream.CachedInfo().Created, &sub.copies)
	pub, err := wmjs.NewPublisher(wmjs.PublisherConfig{
		Conn:   p.nc,
		Logger: wlog,
		// watermill-nats publishes to the stream config's Name: make it
		// the dead-letter subject itself.
		ConfigureStream: func(topic string) jetstream.StreamConfig { return jetstream.StreamConfig{Name: topic} },
	})
	if err != nil {
		return fmt.Errorf("trigger processor: dead-letter publisher: %w", err)
	}
	router, err := message.NewRouter(message.RouterConfig{CloseTimeout: 15 * time.Second}, wlog)
	if err != nil {
		return err
	}
	if p.putAside, err = readPutAside(ctx, p.cmds.Store); err != nil {
		return fmt.Errorf("trigger processor: %w", err)
	}
	p.deadLog = newLineBudget(p.cfg.Logger, "more triggers put aside as dead letters than are logged one by one (orderflow deadletters lists them)",
		deadLetterLines, deadLetterLinesEvery)
	poisonQueue, err := middleware.PoisonQueueWithFilter(deadLetters{pub, p.putAside, p.deadLog}, eventstore.DeadLetterSubject, func(err error) bool {
		var panicked middleware.RecoveredPanicError
		return errors.Is(err, errPoison) || errors.As(err, &panicked)
	})
	if err != nil {
		return err
	}
	router.AddMiddleware(
		poisonQueue,
		middleware.Recoverer,
		middleware.Retry{
			MaxRetries:      p.cfg.MaxRetries,
			InitialInterval: 10 * time.Millisecond,
			MaxInterval:     time.Second,
			Multiplier:      2,
			// Retry logs a retry that failed, after it; logging here, before
			// each retry, gives one line for every attempt that is retried,
			// the first included.
			ShouldRetry: func(rp middleware.RetryParams) bool {
				if errors.Is(rp.Err, errPoison) || errors.Is(rp.Err, errWaitForRoom) {
					return false
				}
				retryLog.Error("Error occurred, retrying", rp.Err, watermill.LogFields{
					"retry_no": rp.RetryNum, "max_retries": p.cfg.MaxRetries, "wait_time": rp.Delay,
				})
				return true
			},
		}.Middleware,
	)
	for _, lane := range lanes {
		router.AddNoPublisherHandler(lane, lane, sub, p.handle)
	}
	p.router, p.lanes, p.laneNames = router, sub, lanes
	return nil
}

// Run processes triggers until ctx ends or Close is called.
func (p *Processor) Run(ctx context.Context) error { return p.router.Run(ctx) }

// Running is closed once every lane handler is running.
func (p *Processor) Running() chan struct{} { return p.router.Running() }

// Close stops the lanes (letting the triggers in hand finish) and closes
// the processor's connection.
func (p *Processor) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	p.members.close(ctx)
	cancel()
	err := p.router.Close()
	p.deadLog.close() // the handlers have finished: say how many dead letters went unlogged
	p.endClosing()
	p.watching.Wait()
	p.markMu.Lock() // a barrier: a copy mark being recorded ends first
	//lint:ignore SA2001 the empty section is the barrier
	p.markMu.Unlock()
	p.nc.Close()
	return err
}

// storageFull notes that an outcome found no storage left, and reports it.
func (p *Processor) storageFull(err error) {
	p.fullAt.Store(time.Now().UnixNano())
	p.report(reportStorageFull, slog.LevelError, "no storage left for the outcomes of triggers: they wait in their lanes, tried again every "+p.cfg.StorageWait.String()+
		", until there is room (a higher --max-store or account limit, more disk); see orderflow_jetstream_storage_bytes", err)
}

// report logs msg at level at most once per reportEvery for each kind of
// condition: every trigger in hand meets the same one, and would
// otherwise log it on every attempt.
func (p *Processor) report(kind int, level slog.Level, msg string, err error) {
	if unlogged, ok := p.reported[kind].due(time.Now()); ok {
		p.cfg.Logger.Log(context.Background(), level, msg, "err", err, "unlogged_since_last", unlogged)
	}
}

// waitForRoom is how much longer a failed trigger waits before its next
// attempt: StorageWait while outcomes find no storage left.
func (p *Processor) waitForRoom() time.Duration {
	if at := p.fullAt.Load(); at != 0 && time.Since(time.Unix(0, at)) < p.cfg.StorageWait {
		return p.cfg.StorageWait
	}
	return 0
}

// storeTrouble reports, once for every trigger in hand, a failure of the
// event store that they all meet, and marks it reported (the trigger is
// retried in place, as on any transient failure); another error comes
// back as it is.
func (p *Processor) storeTrouble(err error) error {
	switch {
	case eventstore.Unavailable(err):
		// A cluster elects a leader in seconds, and a restarted one's
		// servers answer for the stream once they have loaded it. One
		// whose servers ran out of storage stays without a leader, and
		// every attempt would log.
		p.report(reportNoLeader, slog.LevelError, "a stream has no leader to take or serve the events of triggers: they are retried (a cluster electing one, or starting; if it lasts, its servers may be out of storage)", err)
		return fmt.Errorf("%w: %w", errReported, err)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, eventstore.ErrOutcomeUnknown):
		// Every trigger in hand meets a store that answers slowly (a
		// server loading its streams after a start, thousands of triggers
		// redelivered at once, a cluster node lost with the appends in
		// flight unacknowledged): one line, not one per attempt. A retry
		// finds an outcome that was stored after all.
		p.report(reportSlowStore, slog.LevelWarn, "the event store did not answer in time: triggers are retried, then handed back to their lanes "+
			"(a server busy after a start, say)", err)
		return fmt.Errorf("%w: %w", errReported, err)
	case errors.Is(err, eventstore.ErrIncompleteRead):
		// A server that cannot read its files (out of open files, a
		// failing disk) or a replica behind: the order is not decided on
		// from part of its history, and not taken for unknown.
		p.report(reportIncompleteRead, slog.LevelError, "the event store returned part of an order's history: triggers are retried "+
			"(the server's log says what it could not read)", err)
		return fmt.Errorf("%w: %w", errReported, err)
	}
	return err
}

// handle applies one trigger.
func (p *Processor) handle(msg *message.Message) error {
	if p.putAside.has(msg.Metadata.Get(mdDeadLetterID)) {
		p.cfg.Logger.Debug("a trigger put aside before is not processed again (orderflow deadletters retry sends it again)",
			"dead_letter", msg.Metadata.Get(mdDeadLetterID))
		return nil
	}
	tenant, orderID, key, err := eventstore.ParseLaneSubject(msg.Metadata.Get(mdSubject))
	if err != nil {
		return poison("%v", err)
	}
	// The order keeps the key with each trigger id it has seen, for as
	// long as the cache keeps it: a copy, not the whole subject.
	key = strings.Clone(key)
	if msg.Metadata.Get(mdRedelivered) != "" {
		switch aside, err := p.putAsideElsewhere(msg, tenant, orderID, key); {
		case err != nil:
			return p.storeTrouble(err) // tried again: processed now, a trigger put aside could take effect
		case aside:
			p.cfg.Logger.Debug("a trigger another process put aside is not processed again (orderflow deadletters retry sends it again)",
				"dead_letter", msg.Metadata.Get(mdDeadLetterID))
			return nil
		}
	}
	body, err := readTrigger(tenant, orderID, key, msg.Payload)
	if err != nil {
		if p.answeredBefore(msg, tenant, orderID, key) {
			p.count(domain.TriggerResult{Outcome: domain.OutcomeDuplicate})
			return nil
		}
		return err
	}
	triggerID := pickTriggerID(body.TriggerID, msg.UUID, 0) // UUID: see triggerMessage
	worker := body.Worker
	if worker == "" {
		worker = "unknown"
	}
	var res domain.TriggerResult
	if p.beforeApply != nil {
		err = p.beforeApply(msg)
	}
	if err == nil {
		cmds := p.cmds.ForTenant(tenant)
		meta := Meta{Actor: eventstore.Actor{Kind: eventstore.ActorWorker, ID: worker}, CorrelationID: triggerID}
		res, _, err = cmds.ApplyTrigger(msg.Context(), meta, orderID, key, triggerID,
			domain.TriggerReport{Worker: worker, Note: body.Note, OccurredAt: body.OccurredAt})
	}
	switch {
	case errors.Is(err, domain.ErrNotFound):
		return unknownOrder(tenant, orderID)
	// Never processable: a trigger id or worker against the rules, the id
	// of another trigger of the order (domain.Order.CheckTriggerID), or an
	// order whose history holds a message no retry can read.
	case errors.Is(err, domain.ErrInvalid), errors.Is(err, eventstore.ErrInvalidToken), errors.Is(err, eventstore.ErrInvalidEnvelope),
		errors.Is(err, eventstore.ErrUnreadableEvent), errors.Is(err, domain.ErrDuplicate):
		return poison("%v", err)
	case errors.Is(err, eventstore.ErrStorageFull):
		p.storageFull(err)
		return fmt.Errorf("%w: %w", errWaitForRoom, err)
	case err != nil:
		return p.storeTrouble(err) // transient: retried, then handed back to JetStream
	}
	p.count(res)
	if p.afterApply != nil {
		p.afterApply(msg)
	}
	return nil
}

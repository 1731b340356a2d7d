package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/orderflow/orderflow/eventstore"
)

// rawTriggerPipeline measures the JetStream work that the contract asks of
// one trigger, with nothing of orderflow in the way: the trigger is stored
// (with a Nats-Msg-Id), copied into a lane by a partitioning source,
// delivered to the lane's consumer, answered by an outcome appended with
// the aggregate concurrency check on the order's wildcard filter, then
// acknowledged (a work-queue delete), and the outcome is seen by a
// subscriber. Each lane's reader keeps one order's outcomes in turn (it
// waits for an order's previous outcome before appending the next) and
// everything else pipelined. It runs on streams of its own, deleted
// afterwards, and returns triggers per second, round-robin across orders.
//
// The shape says how triggers reach the readers (pipeLanes is the
// contract's flow; the others drop parts of it to show what they cost).
type pipeShape int

const (
	// pipeLanes: a partitioning source copies triggers into lanes; a
	// work-queue consumer per lane, acknowledged per trigger.
	pipeLanes pipeShape = iota
	// pipeDirect: no lane copy; one work-queue consumer reads the trigger
	// stream itself (a single reader: what orderflow would do if it gave
	// up sharing the work among processes).
	pipeDirect
	// pipeOrdered: no lane copy and no acknowledgements; one ordered
	// consumer reads the trigger stream. The least JetStream work any
	// design could do per trigger: nothing durable says what was
	// processed, and nothing is shared.
	pipeOrdered
)

func rawTriggerPipeline(ctx context.Context, nc *nats.Conn, replicas, orders, lanes, window int, shape pipeShape) (float64, error) {
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		return 0, err
	}
	id := strings.ToLower(uuid.NewString()[:8])
	root := "orderflow._benchpipe_" + id
	name := "ORDERFLOW_BENCH_PIPE_" + strings.ToUpper(id)
	streams := []jetstream.StreamConfig{
		{Name: name + "_IN", Subjects: []string{root + ".in.*.*"}, Storage: jetstream.FileStorage, Replicas: replicas},
		{Name: name + "_LANES", Retention: jetstream.WorkQueuePolicy, Storage: jetstream.FileStorage, Replicas: replicas,
			Sources: []*jetstream.StreamSource{{Name: name + "_IN", SubjectTransforms: []jetstream.SubjectTransformConfig{{
				Source: root + ".in.*.*", Destination: fmt.Sprintf("%s.lane.{{partition(%d,1)}}.{{wildcard(1)}}.{{wildcard(2)}}", root, lanes),
			}}}}},
		{Name: name + "_OUT", Subjects: []string{root + ".out.>"}, Storage: jetstream.FileStorage, Replicas: replicas},
	}
	laneStream, laneFilter := name+"_LANES", root+".lane.%d.>"
	direct := shape != pipeLanes
	if direct {
		if shape == pipeDirect {
			streams[0].Retention = jetstream.WorkQueuePolicy
		}
		streams = []jetstream.StreamConfig{streams[0], streams[2]}
		lanes, laneStream, laneFilter = 1, name+"_IN", root+".in.>"
		window *= 16
	}
	for _, sc := range streams {
		if _, err := js.CreateStream(ctx, sc); err != nil {
			return 0, err
		}
		defer js.DeleteStream(context.WithoutCancel(ctx), sc.Name)
	}
	total := 7 * orders
	var seen atomic.Int64
	done := make(chan struct{})
	sub, err := nc.Subscribe(root+".out.>", func(*nats.Msg) {
		if seen.Add(1) == int64(total) {
			close(done)
		}
	})
	if err != nil {
		return 0, err
	}
	defer sub.Unsubscribe()
	if err := nc.Flush(); err != nil {
		return 0, err
	}
	outcome := []byte(`{"id":"0190a3b2-7c1d-7e4f-8a9b-0c1d2e3f4a5b","type":"OrderAdvanced","tenant":"default","aggregate_type":"order",` +
		`"aggregate_id":"o-1","version":2,"occurred_at":"2026-11-28T07:00:00Z","actor":{"kind":"worker","id":"w1"},"causation_id":"t-1",` +
		`"data":{"trigger":"wash_done","trigger_id":"t-1","worker":"w1","from":{"workflow_id":"production","workflow_version":1,"step":0,"status":"washing"},` +
		`"to":{"workflow_id":"production","workflow_version":1,"step":1,"status":"drying"}},"prev_hash":"","hash":"0123456789abcdef0123456789abcdef"}`)

	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	errs := make(chan error, lanes)
	for lane := range lanes {
		filter := laneFilter
		if !direct {
			filter = fmt.Sprintf(laneFilter, lane)
		}
		var cons jetstream.Consumer
		if shape == pipeOrdered {
			cons, err = js.OrderedConsumer(ctx, laneStream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{filter}})
		} else {
			cons, err = js.CreateOrUpdateConsumer(ctx, laneStream, jetstream.ConsumerConfig{
				Durable: fmt.Sprintf("lane-%d", lane), FilterSubject: filter,
				AckPolicy: jetstream.AckExplicitPolicy, MaxAckPending: window, Replicas: replicas,
			})
		}
		if err != nil {
			return 0, err
		}
		it, err := cons.Messages(jetstream.PullMaxMessages(window))
		if err != nil {
			return 0, err
		}
		go func() { <-runCtx.Done(); it.Stop() }()
		go func() {
			type outcomeAck struct {
				done chan struct{}
				seq  uint64
				err  error
			}
			pending := map[string]*outcomeAck{}
			last := map[string]uint64{}
			var n uint64
			for {
				m, err := it.Next()
				if err != nil {
					if !errors.Is(err, jetstream.ErrMsgIteratorClosed) {
						errs <- err
					}
					return
				}
				tokens := strings.Split(m.Subject(), ".") // orderflow._benchpipe_x.in.<order>.<trigger>, or .lane.<n>.<order>.<trigger>
				order := tokens[len(tokens)-2]
				if p, ok := pending[order]; ok {
					<-p.done
					if p.err != nil {
						errs <- p.err
						return
					}
					last[order] = p.seq
				}
				n++
				out := nats.NewMsg(root + ".out." + order + ".OrderAdvanced")
				out.Data = outcome
				out.Header.Set(jetstream.MsgIDHeader, fmt.Sprintf("%d-%d", lane, n))
				out.Header.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(last[order], 10))
				out.Header.Set(jetstream.ExpectedLastSubjSeqSubjHeader, root+".out."+order+".>")
				f, err := eventstore.PublishAsync(runCtx, js, out)
				if err != nil {
					errs <- err
					return
				}
				p := &outcomeAck{done: make(chan struct{})}
				pending[order] = p
				go func() {
					defer close(p.done)
					select {
					case ack := <-f.Ok():
						p.seq = ack.Sequence
						if shape != pipeOrdered {
							_ = m.Ack()
						}
					case p.err = <-f.Err():
					}
				}()
			}
		}()
	}

	start := time.Now()
	for a := range total {
		i, k := a%orders, a/orders // round-robin, as orderflow's run
		m := nats.NewMsg(fmt.Sprintf("%s.in.o%d.t%d", root, i, k))
		m.Header.Set(jetstream.MsgIDHeader, strconv.Itoa(a))
		if _, err := eventstore.PublishAsync(ctx, js, m); err != nil {
			return 0, err
		}
	}
	select {
	case <-done:
	case err := <-errs:
		return 0, fmt.Errorf("raw trigger pipeline: %w", err)
	case <-time.After(2 * time.Minute):
		return 0, fmt.Errorf("raw trigger pipeline: %d of %d outcomes seen", seen.Load(), total)
	}
	return float64(total) / time.Since(start).Seconds(), nil
}

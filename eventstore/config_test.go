package eventstore_test

import (
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/eventstore/eventstoretest"
)

// Config.Validate names every setting out of range, all at once; zero
// values take the defaults.
func TestConfigValidate(t *testing.T) {
	for _, ok := range []eventstore.Config{
		{},
		{Replicas: 5, DuplicateWindow: time.Hour, Timeout: time.Minute, LoadBatch: 4096, MaxAppend: 1000},
	} {
		if err := ok.Validate(); err != nil {
			t.Errorf("%+v: %v", ok, err)
		}
	}
	for _, tc := range []struct {
		cfg  eventstore.Config
		says []string
	}{
		{eventstore.Config{Replicas: 6}, []string{"replicas 6"}},
		{eventstore.Config{Replicas: -1}, []string{"replicas -1"}},
		{eventstore.Config{DuplicateWindow: -time.Second}, []string{"duplicate window -1s"}},
		{eventstore.Config{Timeout: -time.Second}, []string{"timeout -1s"}},
		{eventstore.Config{LoadBatch: -1}, []string{"load batch -1"}},
		{eventstore.Config{MaxAppend: 1001}, []string{"max append 1001"}},
		{eventstore.Config{MaxAppend: -1}, []string{"max append -1"}},
		{
			eventstore.Config{Replicas: 7, DuplicateWindow: -1, Timeout: -1, LoadBatch: -2, MaxAppend: 5000},
			[]string{"replicas 7", "duplicate window", "timeout", "load batch -2", "max append 5000"},
		},
	} {
		err := tc.cfg.Validate()
		if err == nil {
			t.Errorf("%+v: accepted", tc.cfg)
			continue
		}
		for _, s := range tc.says {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("%+v: %q does not say %q", tc.cfg, err, s)
			}
		}
	}
}

// Open and Attach refuse a configuration out of range before they create
// or change anything: no stream is made.
func TestOpenRefusesABadConfig(t *testing.T) {
	t.Parallel()
	srv := eventstoretest.StartServer(t)
	nc := eventstoretest.Connect(t, srv.ClientURL())
	ctx := ctxT(t)
	bad := eventstore.Config{MaxAppend: 1001}
	if _, err := eventstore.Open(ctx, nc, bad); err == nil || !strings.Contains(err.Error(), "max append 1001") {
		t.Fatalf("Open: %v", err)
	}
	if _, err := eventstore.Attach(ctx, nc, bad); err == nil || !strings.Contains(err.Error(), "max append 1001") {
		t.Fatalf("Attach: %v", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	names := js.StreamNames(ctx)
	var made []string
	for name := range names.Name() {
		made = append(made, name)
	}
	if err := names.Err(); err != nil {
		t.Fatal(err)
	}
	if len(made) != 0 {
		t.Fatalf("a refused Open made streams %v", made)
	}
}

// Open brings the trigger stream of an earlier version, which took
// messages of up to 1 MiB, to MaxTriggerMsgSize; the event streams keep
// room for the largest envelope.
func TestOpenBoundsTriggerMessages(t *testing.T) {
	t.Parallel()
	srv := eventstoretest.StartServer(t)
	nc := eventstoretest.Connect(t, srv.ClientURL())
	ctx := ctxT(t)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	for _, sc := range (eventstore.Config{}).StreamConfigs() {
		want := int32(eventstore.MaxTriggerMsgSize)
		if sc.Name != eventstore.StreamTriggers {
			want = 1 << 20
			if int(sc.MaxMsgSize) < eventstore.MaxEnvelopeSize+4<<10 {
				t.Fatalf("%s takes messages of %d bytes: no room for an envelope of %d and its headers", sc.Name, sc.MaxMsgSize, eventstore.MaxEnvelopeSize)
			}
		}
		if sc.MaxMsgSize != want {
			t.Fatalf("%s: max message size %d, want %d", sc.Name, sc.MaxMsgSize, want)
		}
		if sc.Name == eventstore.StreamTriggers {
			sc.MaxMsgSize = 1 << 20 // as an earlier version made it
			if _, err := js.CreateStream(ctx, sc); err != nil {
				t.Fatal(err)
			}
		}
	}
	eventstoretest.OpenStore(t, srv.ClientURL(), eventstore.Config{})
	s, err := js.Stream(ctx, eventstore.StreamTriggers)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.CachedInfo().Config.MaxMsgSize; got != eventstore.MaxTriggerMsgSize {
		t.Fatalf("after Open the trigger stream takes messages of %d bytes, want %d", got, eventstore.MaxTriggerMsgSize)
	}
}

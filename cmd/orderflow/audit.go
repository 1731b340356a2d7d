package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/synadia-io/orbit.go/jetstreamext"

	"github.com/orderflow/orderflow/domain"
	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/handlers"
	"github.com/orderflow/orderflow/projections"
)

// storeFlags are the flags of commands that read the streams directly:
// --nats-url (a running server or cluster) or --data-dir (a store on disk
// that no orderflow is running on; an embedded server is started on it).
type storeFlags struct {
	natsURL, natsCreds, natsCA, dataDir string
	replicas                            int // of the streams a command makes (import)
}

func (f *storeFlags) register(fs *flag.FlagSet, create bool) {
	fs.StringVar(&f.natsURL, "nats-url", "nats://127.0.0.1:4222", "NATS server or cluster holding orderflow's streams")
	fs.StringVar(&f.natsCreds, "nats-creds", "", "NATS credentials file (user JWT and seed) for a --nats-url cluster that requires one")
	fs.StringVar(&f.natsCA, "nats-ca", "", "PEM file of the CAs a tls:// --nats-url server's certificate is checked against; empty: the system's")
	dataDir := "read a data directory directly instead (no orderflow may be running on it)"
	if create {
		dataDir = "write into a data directory directly instead (made when missing; no orderflow may be running on it)"
	}
	fs.StringVar(&f.dataDir, "data-dir", "", dataDir)
	if create {
		fs.IntVar(&f.replicas, "replicas", 1, "replicas of each stream made (3 on a three-node cluster, as serve's --replicas)")
	}
}

// open attaches to the streams; create makes missing streams (import).
func (f *storeFlags) open(ctx context.Context, create bool) (*eventstore.Store, func(), error) {
	url := f.natsURL
	var srv *eventstore.Server
	if create {
		if err := checkReplicas(f.replicas, f.dataDir != ""); err != nil {
			return nil, nil, err
		}
	}
	if f.natsCreds != "" || f.natsCA != "" {
		if f.dataDir != "" {
			return nil, nil, errors.New("--nats-creds and --nats-ca are for --nats-url, not --data-dir")
		}
		if f.natsCreds != "" {
			if err := checkCreds(f.natsCreds); err != nil {
				return nil, nil, err
			}
		}
		if f.natsCA != "" {
			if err := checkCA(f.natsCA); err != nil {
				return nil, nil, err
			}
		}
	}
	if f.dataDir != "" {
		// Reading a directory that holds no store would make one there:
		// a mistyped path is refused instead.
		if _, err := os.Stat(filepath.Join(f.dataDir, "jetstream")); !create && err != nil {
			return nil, nil, fmt.Errorf("--data-dir %s holds no store (serve's --data-dir is the one to read): %w", f.dataDir, err)
		}
		var err error
		srv, err = eventstore.StartServer(eventstore.ServerConfig{DataDir: f.dataDir, Listen: "127.0.0.1:0"})
		if err != nil {
			return nil, nil, err
		}
		url = srv.ClientURL()
	}
	nc, err := nats.Connect(url, append(natsClient(f.natsCreds, f.natsCA), nats.Name("orderflow-audit"), nats.SyncQueueLen(eventstore.SyncQueueLen))...)
	if err != nil {
		if srv != nil {
			srv.Shutdown()
		}
		return nil, nil, fmt.Errorf("connect %s: %w", redactURLs(url), notNATS(err))
	}
	closeAll := func() {
		nc.Close()
		if srv != nil {
			srv.Shutdown()
		}
	}
	var st *eventstore.Store
	if create {
		st, err = eventstore.Open(ctx, nc, eventstore.Config{Replicas: f.replicas})
		if err == nil {
			st.Close() // no background index needed for an import
		}
	} else {
		st, err = eventstore.Attach(ctx, nc, eventstore.Config{})
		if err == nil && !st.HasStream(eventstore.StreamDefinitions) && !st.HasStream(eventstore.StreamOrders) {
			where := redactURLs(url)
			if f.dataDir != "" {
				where = f.dataDir
			}
			err = fmt.Errorf("%s holds none of orderflow's streams: is it the store orderflow serve uses?", where)
		}
	}
	if err != nil {
		closeAll()
		return nil, nil, err
	}
	return st, closeAll, nil
}

// storeCommand parses a command's flags (the store flags, plus those
// define adds), checks its positional arguments with arguments (nil: it
// takes none), and opens the store; done closes it. Arguments are checked
// first, so a mistake in them is told as such, not as a store that could
// not be reached.
func storeCommand(ctx context.Context, name string, args []string, stderr io.Writer, env func(string) (string, bool),
	create bool, arguments func(*flag.FlagSet) error, define func(*flag.FlagSet)) (fs *flag.FlagSet, st *eventstore.Store, done func(), err error) {
	fs, sf, err := storeCommandFlags(name, args, stderr, env, create, arguments, define)
	if err != nil {
		return nil, nil, nil, err
	}
	st, done, err = sf.open(ctx, create)
	return fs, st, done, err
}

// storeCommandFlags is storeCommand's first half, for a command that has
// more to check before the store is opened (or made).
func storeCommandFlags(name string, args []string, stderr io.Writer, env func(string) (string, bool),
	create bool, arguments func(*flag.FlagSet) error, define func(*flag.FlagSet)) (*flag.FlagSet, *storeFlags, error) {
	fs := commandFlags(name, storeUsage[name], stderr)
	sf := new(storeFlags)
	sf.register(fs, create)
	if define != nil {
		define(fs)
	}
	if err := parseFlags(fs, args, env); err != nil {
		return nil, nil, err
	}
	if arguments == nil {
		arguments = noArguments
	}
	if err := arguments(fs); err != nil {
		return nil, nil, err
	}
	return fs, sf, nil
}

// progressTo prints progress on w when it is a terminal, and nothing
// otherwise (so logs and pipes stay clean).
func progressTo(w io.Writer, what string) eventstore.Progress {
	f, ok := w.(*os.File)
	if !ok {
		return nil
	}
	if fi, err := f.Stat(); err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		return nil
	}
	start := time.Now()
	return func(done, total uint64) {
		el := time.Since(start).Seconds()
		rate := float64(done) / max(el, 1e-9)
		left := 0.0
		if rate > 0 && total > done {
			left = float64(total-done) / rate
		}
		fmt.Fprintf(f, "\r%s: %d/%d events, %.0f/s, %.1fs left   ", what, done, total, rate, left)
		if done >= total {
			fmt.Fprintln(f)
		}
	}
}

var errBreaks = errors.New("the hash chain is broken")

// verifyCmd: orderflow verify.
func verifyCmd(ctx context.Context, args []string, stdout, stderr io.Writer, env func(string) (string, bool)) error {
	var streams *string
	var triggers *bool
	checked := func(fs *flag.FlagSet) error {
		if err := noArguments(fs); err != nil {
			return err
		}
		if slices.Contains(strings.Split(*streams, ","), "") {
			return fmt.Errorf("--streams %q: a stream name is empty", *streams)
		}
		return nil
	}
	_, st, done, err := storeCommand(ctx, "verify", args, stderr, env, false, checked, func(fs *flag.FlagSet) {
		streams = fs.String("streams", eventstore.StreamDefinitions+","+eventstore.StreamOrders, "streams to verify, comma-separated")
		triggers = fs.Bool("triggers", false, "also account for every stored trigger: taken effect or answered, a dead letter, or still on its way; list the missing")
	})
	if err != nil {
		return err
	}
	defer done()
	rep, err := st.Verify(ctx, strings.Split(*streams, ","), progressTo(stderr, "verify"))
	if err != nil {
		return err
	}
	for _, b := range rep.Breaks {
		fmt.Fprintln(stdout, b)
	}
	rate := float64(rep.Events) / max(rep.Took.Seconds(), 1e-9)
	fmt.Fprintf(stdout, "verified %d events of %d aggregates in %.2fs (%.0f events/s): %d break(s)\n",
		rep.Events, rep.Aggregates, rep.Took.Seconds(), rate, len(rep.Breaks))
	if len(rep.Breaks) > 0 {
		return errBreaks
	}
	if *triggers {
		return verifyTriggers(ctx, st, stdout, stderr)
	}
	return nil
}

var errMissingTriggers = errors.New("stored triggers are missing")

// verifyTriggers: orderflow verify --triggers.
func verifyTriggers(ctx context.Context, st *eventstore.Store, stdout, stderr io.Writer) error {
	rep, err := handlers.CheckTriggers(ctx, st, progressTo(stderr, "triggers"))
	if err != nil {
		return err
	}
	for _, m := range rep.Missing {
		fmt.Fprintln(stdout, m)
	}
	fmt.Fprintf(stdout, "accounted for %d stored triggers: %d answered in their order's history, %d dead letters, %d on their way, %d missing\n",
		rep.Triggers, rep.Answered, rep.DeadLetters, rep.Pending, len(rep.Missing))
	if len(rep.Missing) > 0 {
		return errMissingTriggers
	}
	return nil
}

// exportLine is one line of an export: a stored message.
type exportLine struct {
	Stream   string              `json:"stream"`
	Sequence uint64              `json:"seq"`
	Subject  string              `json:"subject"`
	Headers  map[string][]string `json:"headers,omitempty"`
	// Envelope is an event's body (definitions and orders); Data holds the
	// bytes of other messages (triggers, dead letters).
	Envelope json.RawMessage `json:"envelope,omitempty"`
	Data     []byte          `json:"data,omitempty"`
}

// exportStreams are exported and imported in this order. The dead
// letters go too: a server on the restored store reads every imported
// trigger again, and leaves those put aside as they were (without them,
// one put aside for an order not placed yet would take effect there).
var exportStreams = []string{eventstore.StreamDefinitions, eventstore.StreamOrders, eventstore.StreamTriggers, eventstore.StreamDeadLetter}

// exportCmd: orderflow export.
func exportCmd(ctx context.Context, args []string, stdout, stderr io.Writer, env func(string) (string, bool)) error {
	var out *string
	// Where --out goes is checked before the store is reached: a
	// mistyped directory is told at once, not after reading every stream.
	checked := func(fs *flag.FlagSet) error {
		if err := noArguments(fs); err != nil {
			return err
		}
		if *out == "-" {
			return nil
		}
		dir := filepath.Dir(*out)
		if fi, err := os.Stat(dir); err != nil {
			return fmt.Errorf("--out %s: %w", *out, err)
		} else if !fi.IsDir() {
			return fmt.Errorf("--out %s: %s is not a directory", *out, dir)
		}
		return nil
	}
	_, st, done, err := storeCommand(ctx, "export", args, stderr, env, false, checked, func(fs *flag.FlagSet) {
		out = fs.String("out", "-", "file to write the JSON Lines to (- for standard output)")
	})
	if err != nil {
		return err
	}
	defer done()
	w := stdout
	var file *os.File
	if *out != "-" {
		// Written beside --out and renamed to it once whole, so an export
		// that stops part way (an error, an interrupt) leaves no file
		// that passes for a whole one.
		if file, err = os.CreateTemp(filepath.Dir(*out), filepath.Base(*out)+".*.partial"); err != nil {
			return err
		}
		defer func() { // on an error; closed and renamed below otherwise
			file.Close()
			os.Remove(file.Name())
		}()
		w = file
	}
	bw := bufio.NewWriterSize(w, 1<<20)
	enc := json.NewEncoder(bw)
	// Each envelope goes out byte for byte as stored: escaped as
	// encoding/json escapes HTML by default, one with "<", ">" or "&" in
	// its actor or ids would no longer match its hash once imported.
	enc.SetEscapeHTML(false)
	total := uint64(0)
	start := time.Now()
	for _, stream := range exportStreams {
		if !st.HasStream(stream) {
			continue
		}
		n, err := st.ReadStream(ctx, stream, func(m eventstore.StoredMsg) error {
			line := exportLine{Stream: m.Stream, Sequence: m.Sequence, Subject: m.Subject, Headers: m.Header}
			if stream == eventstore.StreamTriggers || stream == eventstore.StreamDeadLetter || !json.Valid(m.Data) {
				line.Data = m.Data
			} else {
				line.Envelope = m.Data
			}
			return enc.Encode(line)
		}, progressTo(stderr, "export "+stream))
		total += n
		if err != nil {
			return err
		}
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	if file != nil {
		// An export is a backup: on disk, or an error, before it is
		// reported written.
		if err := errors.Join(file.Sync(), file.Close(), os.Rename(file.Name(), *out)); err != nil {
			return fmt.Errorf("export %s: %w", *out, err)
		}
	}
	fmt.Fprintf(stderr, "exported %d messages in %.2fs\n", total, time.Since(start).Seconds())
	return nil
}

// openExport opens the export import reads (in, or "-" for standard
// input) as a file it can read twice: to check it whole, then to store it.
// Standard input or a pipe, which can be read only once, is first copied
// to a temporary file, which closeExport removes.
func openExport(in string) (f *os.File, name string, closeExport func(), err error) {
	src, name := os.Stdin, "standard input"
	if in != "-" {
		if src, err = os.Open(in); err != nil {
			return nil, "", nil, err
		}
		name = in
	}
	fi, err := src.Stat()
	if err == nil && fi.Mode().IsRegular() {
		return src, name, func() { src.Close() }, nil
	}
	if src != os.Stdin {
		defer src.Close()
	}
	if err != nil {
		return nil, "", nil, err
	}
	tmp, err := os.CreateTemp("", "orderflow-import-*.jsonl")
	if err != nil {
		return nil, "", nil, fmt.Errorf("a copy of %s, to check before anything is stored: %w", name, err)
	}
	closeExport = func() {
		tmp.Close()
		os.Remove(tmp.Name())
	}
	if _, err := io.Copy(tmp, src); err != nil {
		closeExport()
		return nil, "", nil, fmt.Errorf("reading %s: %w", name, err)
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		closeExport()
		return nil, "", nil, err
	}
	return tmp, name, closeExport, nil
}

// importCmd: orderflow import.
func importCmd(ctx context.Context, args []string, stdout, stderr io.Writer, env func(string) (string, bool)) error {
	var in *string
	_, sf, err := storeCommandFlags("import", args, stderr, env, true, nil, func(fs *flag.FlagSet) {
		in = fs.String("in", "-", "JSON Lines file written by export (- for standard input)")
	})
	if err != nil {
		return err
	}
	// The export is read through and checked before the store is opened:
	// one that is missing, cut short or no export changes nothing, and
	// makes no store (at a mistyped --data-dir, say).
	f, name, closeExport, err := openExport(*in)
	if err != nil {
		return err
	}
	defer closeExport()
	if err := checkExport(f); err != nil {
		return fmt.Errorf("%s: %w; nothing was imported", name, err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	r, size := io.Reader(f), fi.Size()
	st, done, err := sf.open(ctx, true)
	if err != nil {
		return err
	}
	defer done()
	if err := st.EnsureDeadLetters(ctx); err != nil {
		return err
	}
	for _, stream := range exportStreams {
		last, err := st.LastSequence(ctx, stream)
		if err != nil {
			return fmt.Errorf("%s: %w", stream, err)
		}
		if last != 0 {
			return fmt.Errorf("import needs an empty store: %s holds %d messages (import into a new --data-dir, or a cluster without orderflow's streams)", stream, last)
		}
	}
	counted := &countingReader{r: r}
	dec := json.NewDecoder(bufio.NewReaderSize(counted, 1<<20))
	progress := progressTo(stderr, "import (bytes)")
	js := st.JetStream()
	settings := &importSettings{js: js, was: map[string]jetstream.StreamConfig{}, shortened: map[string]bool{}}
	defer settings.restore(stderr)
	n := 0
	// stopped says what an import that stops part way leaves behind: the
	// lines before, stored, which a second import would refuse to add to.
	stopped := func(err error) error {
		if n == 0 {
			return err
		}
		lines := fmt.Sprintf("the %d lines", n)
		if n == 1 {
			lines = "the line"
		}
		return fmt.Errorf("%w; the store now holds %s before it: mend the file and import it into an empty store", err, lines)
	}
	// The export is read and its batches made while the batch before is
	// stored: two cores at work where one waited for the other. One batch
	// is stored at a time, in order.
	triggers := handlers.NewImportedTriggers()
	batches := make(chan *importBatch, 1)
	readCtx, stopReading := context.WithCancel(ctx)
	go readBatches(readCtx, dec, counted, triggers, batches)
	defer func() {
		stopReading()
		for range batches { // until the reader is done with the export
		}
	}()
	start := time.Now()
	for b := range batches {
		stored, err := b.store(ctx, st, settings)
		n += stored
		if err == nil {
			err = b.err
		}
		if err != nil {
			return stopped(err)
		}
		if progress != nil && size > 0 {
			progress(uint64(b.read), uint64(size))
		}
	}
	if progress != nil && size > 0 {
		progress(uint64(size), uint64(size))
	}
	fmt.Fprintf(stdout, "imported %d messages in %.2fs\n", n, time.Since(start).Seconds())
	startLanes(ctx, st, triggers.FirstToRead(), stdout, stderr)
	return nil
}

// startLanes has the restored store's trigger lanes start at the first
// imported trigger still to be read, from (see handlers.ImportedTriggers).
// The import stands whatever happens here: without it, a trigger
// processor reads every imported trigger again, as before.
func startLanes(ctx context.Context, st *eventstore.Store, from uint64, stdout, stderr io.Writer) {
	made, err := st.StartLanesAt(ctx, from)
	switch {
	case err != nil:
		fmt.Fprintf(stderr, "the trigger lanes could not be made to start at trigger %d (%v): a trigger processor will read every imported trigger again\n", from, err)
	case made:
		fmt.Fprintf(stdout, "the trigger lanes start at trigger %d: the %d before it were answered or put aside\n", from, from-1)
	case from > 1:
		fmt.Fprintf(stdout, "the trigger lanes were there before the import: a trigger processor reads every imported trigger again\n")
	}
}

// importBatch is a run of lines an import stores at once: consecutive
// lines of one stream, stored as one atomic batch (one round trip where
// one message at a time took one each). The dead-letter stream takes no
// atomic batches; its lines go one at a time.
type importBatch struct {
	stream string
	msgs   []*nats.Msg
	seqs   []uint64 // each line's sequence in the export
	first  int      // the first line's number in the export
	bytes  int
	read   int64 // bytes of the export read once the batch was whole
	err    error // the line after the batch could not be read (the last batch)
}

// Up to importBatchLines lines and importBatchBytes bytes go in one batch
// (the server takes up to 1,000 messages in one by default).
const (
	importBatchLines = 256
	importBatchBytes = 4 << 20
)

// readBatches reads the export's lines into batches and sends them in
// order, each line also to triggers; it closes batches at the end of the
// export, after a line it cannot read (the last batch's err), or once ctx
// is done.
func readBatches(ctx context.Context, dec *json.Decoder, counted *countingReader, triggers *handlers.ImportedTriggers, batches chan<- *importBatch) {
	defer close(batches)
	send := func(b *importBatch) bool {
		b.read = counted.n
		select {
		case batches <- b:
			return true
		case <-ctx.Done():
			return false
		}
	}
	b := &importBatch{}
	for lines := 1; ; lines++ {
		var line exportLine
		err := dec.Decode(&line)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			b.err = fmt.Errorf("line %d: %w", lines, err)
			break
		}
		m := nats.NewMsg(line.Subject)
		m.Data = line.Data
		if line.Envelope != nil {
			// An export made before envelopes went out as stored, or
			// rewritten by another JSON tool, is brought back to the
			// bytes its hashes cover.
			m.Data = eventstore.AsEncoded(line.Envelope)
		}
		for k, vs := range line.Headers {
			// Batch and expectation headers did their work when the
			// message was first stored; replaying them would only refuse it.
			if strings.HasPrefix(k, "Nats-Expected-") || strings.HasPrefix(k, "Nats-Batch-") {
				continue
			}
			for _, v := range vs {
				m.Header.Add(k, v)
			}
		}
		triggers.Add(eventstore.StoredMsg{Stream: line.Stream, Sequence: line.Sequence, Subject: line.Subject, Header: m.Header, Data: m.Data})
		if !b.fits(line.Stream, m) {
			if !send(b) {
				return
			}
			b = &importBatch{}
		}
		b.add(line.Stream, line.Sequence, lines, m)
	}
	send(b)
}

// fits reports whether m, of stream, can join the batch.
func (b *importBatch) fits(stream string, m *nats.Msg) bool {
	if len(b.msgs) == 0 {
		return true
	}
	return stream == b.stream && stream != eventstore.StreamDeadLetter &&
		len(b.msgs) < importBatchLines && b.bytes+len(m.Data) <= importBatchBytes
}

// add puts the export's line number line, m at sequence seq of stream,
// in the batch (see fits).
func (b *importBatch) add(stream string, seq uint64, line int, m *nats.Msg) {
	if len(b.msgs) == 0 {
		b.stream, b.first = stream, line
	}
	b.msgs, b.seqs = append(b.msgs, m), append(b.seqs, seq)
	b.bytes += len(m.Data)
}

// store stores the batch: as one atomic batch, or, when the stream did
// not take it whole (a trigger sent again after the duplicate window, a
// message over the stream's size limit: a batch is stored whole or not
// at all), one line at a time, as storeOne. It returns how many of its
// lines are stored.
func (b *importBatch) store(ctx context.Context, st *eventstore.Store, settings *importSettings) (int, error) {
	js := st.JetStream()
	msgs, seqs, first, stream := b.msgs, b.seqs, b.first, b.stream
	if len(msgs) == 0 {
		return 0, nil
	}
	last := seqs[len(seqs)-1]
	if len(msgs) > 1 {
		ack, err := jetstreamext.PublishMsgBatch(ctx, js, msgs, jetstreamext.BatchFlowControl{AckFirst: false})
		if err == nil {
			if ack.Stream != stream || ack.Sequence != last {
				return 0, fmt.Errorf("lines %d to %d: %s sequences %d to %d were stored in %s up to %d: the export has gaps or the store was not empty",
					first, first+len(msgs)-1, stream, seqs[0], last, ack.Stream, ack.Sequence)
			}
			return len(msgs), nil
		}
		// Stored whole or not at all: the stream says which.
		stored, ierr := st.LastSequence(ctx, stream)
		if ierr != nil {
			return 0, fmt.Errorf("lines %d to %d: %w; and then: %w", first, first+len(msgs)-1, err, ierr)
		}
		switch stored {
		case last:
			return len(msgs), nil // the answer was lost
		case seqs[0] - 1: // one at a time, below
		default:
			return 0, fmt.Errorf("lines %d to %d (%s %d to %d): %w", first, first+len(msgs)-1, stream, seqs[0], last, err)
		}
	}
	for i, m := range msgs {
		if err := storeOne(ctx, js, settings, m, stream, seqs[i], first+i); err != nil {
			return i, err
		}
	}
	return len(msgs), nil
}

// storeOne stores m, the export's line number line, at sequence seq of
// stream.
func storeOne(ctx context.Context, js jetstream.JetStream, settings *importSettings, m *nats.Msg, stream string, seq uint64, line int) error {
	ack, err := js.PublishMsg(ctx, m, jetstream.WithExpectStream(stream))
	if errors.Is(err, jetstream.ErrStreamMessageExceedsMaximum) {
		ack, err = settings.storeLarge(ctx, m, stream)
	}
	if err == nil && ack.Duplicate && m.Header.Get(jetstream.MsgIDHeader) != "" {
		ack, err = settings.storeAgain(ctx, m, stream)
	}
	if err != nil {
		return fmt.Errorf("line %d (%s %d): %w", line, stream, seq, err)
	}
	if ack.Sequence != seq {
		return fmt.Errorf("line %d: %s sequence %d was stored at %d: the export has gaps or the store was not empty", line, stream, seq, ack.Sequence)
	}
	return nil
}

// checkExport reads an export through and reports its first line that
// import could not store: one that is not an exportLine (a file cut
// short ends in one), of a stream export does not write, or out of
// export's order (its streams in turn, each from sequence 1 without a
// gap).
func checkExport(r io.Reader) error {
	dec := json.NewDecoder(bufio.NewReaderSize(r, 1<<20))
	next := map[string]uint64{}
	at := 0 // the index in exportStreams of the stream being read
	for n := 1; ; n++ {
		var line exportLine
		err := dec.Decode(&line)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("line %d: %w", n, handlers.JSONError(&line, err, "the line"))
		}
		i := slices.Index(exportStreams, line.Stream)
		switch {
		case i < 0:
			return fmt.Errorf("line %d: stream %q is not one export writes (%s)", n, line.Stream, strings.Join(exportStreams, ", "))
		case i < at:
			return fmt.Errorf("line %d: %s comes after %s: not in export's order", n, line.Stream, exportStreams[at])
		case line.Sequence != next[line.Stream]+1:
			return fmt.Errorf("line %d: %s sequence %d where %d is due: the export has gaps or is out of order", n, line.Stream, line.Sequence, next[line.Stream]+1)
		case line.Subject == "":
			return fmt.Errorf("line %d: no subject", n)
		}
		at, next[line.Stream] = i, line.Sequence
	}
}

// leastDuplicateWindow is the shortest duplicate window JetStream takes.
const leastDuplicateWindow = 100 * time.Millisecond

// importSettings changes the settings of the streams an import stores
// into for as long as it runs (see storeAgain and storeLarge), and puts
// them back after (restore).
type importSettings struct {
	js        jetstream.JetStream
	was       map[string]jetstream.StreamConfig // each changed stream's settings before the import
	shortened map[string]bool                   // the streams whose duplicate window storeAgain shortened
}

// change applies f to stream's settings, noting them as they were before
// the first change.
func (s *importSettings) change(ctx context.Context, stream string, f func(*jetstream.StreamConfig)) error {
	st, err := s.js.Stream(ctx, stream)
	if err != nil {
		return err
	}
	cfg := st.CachedInfo().Config
	if _, ok := s.was[stream]; !ok {
		s.was[stream] = cfg
	}
	f(&cfg)
	_, err = s.js.UpdateStream(ctx, cfg)
	return err
}

// storeLarge stores m, which stream refused for its size: a trigger over
// eventstore.MaxTriggerMsgSize, which a store of an earlier version took
// (its trigger stream took messages of up to 1 MiB) and put aside as a
// dead letter. It lifts the stream's limit for the rest of the import,
// since what the store held is restored whole.
func (s *importSettings) storeLarge(ctx context.Context, m *nats.Msg, stream string) (*jetstream.PubAck, error) {
	if err := s.change(ctx, stream, func(cfg *jetstream.StreamConfig) { cfg.MaxMsgSize = -1 }); err != nil {
		return nil, fmt.Errorf("lift the message size limit of %s for the import: %w", stream, err)
	}
	return s.js.PublishMsg(ctx, m, jetstream.WithExpectStream(stream))
}

// storeAgain stores m, which stream took for a duplicate of a message
// this import stored before with the same Nats-Msg-Id: the store it was
// exported from took it again once its duplicate window had passed (a
// worker app that sent a trigger again much later, say). It lowers the
// stream's window to the least for the rest of the import and sends m
// until the stream stores it.
func (s *importSettings) storeAgain(ctx context.Context, m *nats.Msg, stream string) (*jetstream.PubAck, error) {
	shorten := func(window time.Duration) error {
		if err := s.change(ctx, stream, func(cfg *jetstream.StreamConfig) { cfg.Duplicates = window }); err != nil {
			return fmt.Errorf("shorten the duplicate window of %s for the import: %w", stream, err)
		}
		return nil
	}
	if !s.shortened[stream] {
		if err := shorten(leastDuplicateWindow); err != nil {
			return nil, err
		}
		s.shortened[stream] = true
	}
	tick := time.NewTicker(leastDuplicateWindow / 4)
	defer tick.Stop()
	giveUp := time.Now().Add(10 * time.Second)
	nudge := time.Now().Add(time.Second)
	for i := 1; ; i++ {
		ack, err := s.js.PublishMsg(ctx, m, jetstream.WithExpectStream(stream))
		if err != nil || !ack.Duplicate {
			return ack, err
		}
		if time.Now().After(giveUp) {
			return nil, fmt.Errorf("Nats-Msg-Id %q is still taken for a duplicate of sequence %d", m.Header.Get(jetstream.MsgIDHeader), ack.Sequence)
		}
		if time.Now().After(nudge) {
			// The server forgets ids past the window when its timer fires,
			// and a window changed sets that timer to fire at once; but it
			// may fire before the new window takes effect, measure the
			// ids against the old one, and not fire again for minutes
			// (nats-server 2.15.2 with the race detector: 17 of 300 tries
			// in an ad-hoc run). Changing the window again, between two
			// short ones, sets it to fire once more (0 of 300 then).
			nudge = time.Now().Add(time.Second)
			if err := shorten(leastDuplicateWindow + time.Duration(i%2)*time.Millisecond); err != nil {
				return nil, err
			}
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-tick.C:
		}
	}
}

// restore puts back the settings the import changed.
func (s *importSettings) restore(stderr io.Writer) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for stream, was := range s.was {
		err := s.change(ctx, stream, func(cfg *jetstream.StreamConfig) {
			cfg.Duplicates, cfg.MaxMsgSize = was.Duplicates, was.MaxMsgSize
		})
		if err != nil {
			fmt.Fprintf(stderr, "%s keeps the settings the import changed (its duplicate window, its message size limit) until orderflow serve sets them back at its start: %v\n", stream, err)
		}
	}
}

// replayCmd: orderflow replay --until T.
func replayCmd(ctx context.Context, args []string, stdout, stderr io.Writer, env func(string) (string, bool)) error {
	var untilFlag, out, tenant *string
	var asDefinitions *bool
	var until *time.Time // nil: now
	// Checked before the store is reached.
	checked := func(fs *flag.FlagSet) error {
		if err := noArguments(fs); err != nil {
			return err
		}
		if err := eventstore.ValidateToken("tenant", *tenant); err != nil {
			return err
		}
		if *asDefinitions && *out != "" {
			return errors.New("--definitions prints the definitions, --out writes every read model: give one of them")
		}
		if *untilFlag != "" {
			t, err := time.Parse(time.RFC3339Nano, *untilFlag)
			if err != nil {
				return fmt.Errorf("--until %q: want RFC 3339, such as 2026-11-27T17:00:00Z", *untilFlag)
			}
			until = &t
		}
		return nil
	}
	_, st, done, err := storeCommand(ctx, "replay", args, stderr, env, false, checked, func(fs *flag.FlagSet) {
		untilFlag = fs.String("until", "", "rebuild the read models as they were at this time (RFC 3339); empty for now")
		out = fs.String("out", "", "write the read models as JSON to this file instead of printing the board")
		asDefinitions = fs.Bool("definitions", false, "print the definitions instead of the board, as 'definitions show' prints them: 'definitions apply --prune' puts them back")
		tenant = fs.String("tenant", eventstore.DefaultTenant, "tenant")
	})
	if err != nil {
		return err
	}
	defer done()
	defs, orders, stats, err := projections.Replay(ctx, st, until, progressTo(stderr, "replay"))
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "replayed %d of %d events in %.2fs (%.0f events/s)\n", stats.Applied, stats.Events,
		stats.Took.Seconds(), float64(stats.Events)/max(stats.Took.Seconds(), 1e-9))
	if *asDefinitions {
		rm := handlers.ReadModels(defs, orders, *tenant)
		live := &liveDefinitions{statuses: rm.Statuses, triggers: rm.Triggers, workflows: rm.Workflows, orderTypes: rm.OrderTypes}
		return printProcess(stdout, live.process())
	}
	if *out != "" {
		// The tenant's read models as the HTTP API would have answered
		// then, and the instant and stream positions they stand for.
		doc := struct {
			Until   *time.Time `json:"until"` // null: now
			Tenant  string     `json:"tenant"`
			Applied uint64     `json:"applied_sequence"` // of ORDERFLOW_ORDERS
			handlers.ReadModelsJSON
		}{Until: until, Tenant: *tenant, Applied: orders.Applied(), ReadModelsJSON: handlers.ReadModels(defs, orders, *tenant)}
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false) // as the API writes text: "Wash & Fold"
		if err := enc.Encode(doc); err != nil {
			return err
		}
		return os.WriteFile(*out, b.Bytes(), 0o644)
	}
	view := defs.Tenant(*tenant)
	board := handlers.BoardJSON(view, "", orders.Board(*tenant, ""))
	if statuses, _ := view.Statuses(); len(statuses) == 0 && len(board) == 0 {
		// An empty table alone would not say whether nothing had happened
		// yet or the tenant is misspelt.
		fmt.Fprintf(stderr, "nothing of tenant %q was stored by then: no definitions, no orders\n", *tenant)
	}
	return printBoard(stdout, board)
}

// printBoard prints board stages as a table (replay, board).
func printBoard(w io.Writer, board []handlers.BoardItem) error {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "WORKFLOW\tSTATUS\tORDERS\tON HOLD\tOLDEST ENTERED\tLEFT\tAVERAGE STAY")
	for _, c := range board {
		name, status := cmp.Or(c.WorkflowName, c.WorkflowID), cmp.Or(c.StatusName, c.Status)
		oldest := ""
		if c.OldestEnteredAt != nil {
			oldest = c.OldestEnteredAt.Format(time.RFC3339)
		}
		stay := time.Duration(c.AverageStaySeconds * float64(time.Second)).Round(time.Second)
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%d\t%s\n", name, status, c.Count, c.Held, oldest, c.Left, stay)
	}
	return tw.Flush()
}

// auditKinds are what audit prints the history of: the aggregate type of
// each ("" for every definition of a tenant at once), and its name in
// words.
var auditKinds = map[string]struct{ aggType, words string }{
	"order":       {domain.AggregateOrder, "order"},
	"workflow":    {domain.AggregateWorkflow, "workflow"},
	"ordertype":   {domain.AggregateOrderType, "order type"},
	"definitions": {"", "definitions"},
}

// auditCmd: orderflow audit order ID | workflow ID | ordertype ID | definitions.
func auditCmd(ctx context.Context, args []string, stdout, stderr io.Writer, env func(string) (string, bool)) error {
	var kind string
	if len(args) > 0 {
		kind = args[0]
	}
	what, known := auditKinds[kind]
	aggType := what.aggType
	if !known {
		fmt.Fprintln(stderr, "Usage: orderflow audit order ID | audit workflow ID | audit ordertype ID | audit definitions")
		return errors.New("want: audit order ID, audit workflow ID, audit ordertype ID or audit definitions")
	}
	var tenant, sinceFlag *string
	var since time.Time
	var agg eventstore.Aggregate
	arguments := func(fs *flag.FlagSet) error {
		if *sinceFlag != "" {
			t, err := time.Parse(time.RFC3339Nano, *sinceFlag)
			if err != nil {
				return fmt.Errorf("--since %q: want RFC 3339, such as 2026-11-27T17:00:00Z", *sinceFlag)
			}
			since = t
		}
		if aggType == "" {
			if err := noArguments(fs); err != nil {
				return err
			}
			return eventstore.ValidateToken("tenant", *tenant) // "*" would read every tenant's
		}
		if fs.NArg() != 1 {
			return fmt.Errorf("want one ID, got %q", fs.Args())
		}
		agg = eventstore.Aggregate{Tenant: *tenant, Type: aggType, ID: fs.Arg(0)}
		return agg.Validate() // "*" would read every order's events as one
	}
	fs, st, done, err := storeCommand(ctx, "audit "+kind, args[1:], stderr, env, false, arguments, func(fs *flag.FlagSet) {
		tenant = fs.String("tenant", eventstore.DefaultTenant, "tenant")
		sinceFlag = fs.String("since", "", "print only the events that occurred at or after this time (RFC 3339), each still named as things were named then")
	})
	if err != nil {
		return err
	}
	defer done()
	// Statuses and workflows are named as they were when each event
	// occurred (a status renamed since shows its old name before the
	// rename): the tenant's definitions are applied, in their order, up to
	// each event.
	defEvents, err := st.LoadFilter(ctx, eventstore.StreamDefinitions, eventstore.DefinitionsFilter(*tenant), 0)
	if err != nil {
		return err
	}
	events := defEvents
	switch aggType {
	case "":
	case domain.AggregateOrder:
		if events, err = st.LoadFilter(ctx, agg.Stream(), agg.Filter(), 0); err != nil {
			return err
		}
	default:
		events = slices.DeleteFunc(slices.Clone(defEvents), func(ev eventstore.Event) bool {
			return ev.AggregateType != agg.Type || ev.AggregateID != agg.ID
		})
	}
	if len(events) == 0 {
		if aggType == "" {
			return fmt.Errorf("no definitions in tenant %q", *tenant)
		}
		return fmt.Errorf("no %s %q", what.words, fs.Arg(0))
	}
	defs, applied := projections.NewDefinitions(nil), 0
	view := defs.Tenant(*tenant)
	// upTo applies the definitions up to ev, and ev itself when it is one:
	// then it says what ev changed.
	upTo := func(ev eventstore.Event, e domain.Event) (what string) {
		for ; applied < len(defEvents); applied++ {
			d := defEvents[applied]
			if ev.Stream == eventstore.StreamDefinitions && d.Sequence > ev.Sequence ||
				ev.Stream != eventstore.StreamDefinitions && d.OccurredAt.After(ev.OccurredAt) {
				break
			}
			apply := func() { _ = defs.Apply(d) } // one that cannot be applied is verify's to report
			if ev.Stream != eventstore.StreamDefinitions || d.Sequence != ev.Sequence {
				apply()
				continue
			}
			what = describeDefinitionEvent(view, ev.AggregateID, e, apply)
			if aggType == "" && (ev.AggregateType == domain.AggregateWorkflow || ev.AggregateType == domain.AggregateOrderType) {
				what = ev.AggregateID + ": " + what
			}
		}
		return what
	}
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, timelineHeader)
	for _, ev := range events {
		e, err := domain.DecodeEvent(ev.Type, ev.Data)
		if err != nil {
			return err
		}
		what := upTo(ev, e)
		if w, ok := orderEventWhat(e, ev.Actor, definitionNames{view}.status); ok {
			what = w
		}
		if ev.OccurredAt.Before(since) {
			continue // applied above all the same, for the names of the events after it
		}
		timelineRow(tw, ev.Envelope, what)
	}
	return tw.Flush()
}

// definitionNames names statuses and workflows as a tenant's definitions
// (as far as they have been applied) name them, or by their key or id
// when they do not.
type definitionNames struct{ view *projections.TenantView }

func (n definitionNames) status(key string) string {
	if s, _, ok := n.view.Status(key); ok {
		return s.Name
	}
	return key
}

func (n definitionNames) workflow(id string) string {
	if w, ok := n.view.Workflow(id); ok {
		return w.Name
	}
	return id
}

// describeDefinitionEvent applies a definition's event e (of the aggregate id)
// to view with apply, and says what it changed, from the definitions
// before and after.
func describeDefinitionEvent(view *projections.TenantView, id string, e domain.Event, apply func()) string {
	names := definitionNames{view}
	switch e := e.(type) {
	case domain.StatusAdded:
		apply()
		return fmt.Sprintf("%s: %q (%s)", e.Key, e.Name, e.Category)
	case domain.StatusRenamed:
		was := names.status(e.Key)
		apply()
		return fmt.Sprintf("%s: %q → %q", e.Key, was, e.Name)
	case domain.StatusRecategorized:
		was, _, _ := view.Status(e.Key)
		apply()
		return fmt.Sprintf("%s %q: %s → %s", e.Key, was.Name, was.Category, e.Category)
	case domain.StatusArchived:
		apply()
		return fmt.Sprintf("%s %q", e.Key, names.status(e.Key))
	case domain.TriggerAdded:
		apply()
		if e.Description == "" {
			return fmt.Sprintf("%s: %q", e.Key, e.Name)
		}
		return fmt.Sprintf("%s: %q, %q", e.Key, e.Name, e.Description)
	case domain.TriggerRenamed:
		was, _, _ := view.Trigger(e.Key)
		apply()
		var changes []string
		if was.Name != e.Name {
			changes = append(changes, fmt.Sprintf("%q → %q", was.Name, e.Name))
		}
		if was.Description != e.Description {
			changes = append(changes, fmt.Sprintf("description %q → %q", was.Description, e.Description))
		}
		return e.Key + ": " + strings.Join(changes, ", ")
	case domain.TriggerArchived:
		apply()
		tr, _, _ := view.Trigger(e.Key)
		return fmt.Sprintf("%s %q", e.Key, tr.Name)
	case domain.OrderTypeCreated, domain.OrderTypeChanged, domain.OrderTypeArchived:
		before, _ := view.OrderType(id)
		apply()
		after, _ := view.OrderType(id)
		return orderTypeChange(e, before, after, names.workflow)
	default:
		before, _ := view.Workflow(id)
		apply()
		after, _ := view.Workflow(id)
		return workflowChange(e, before, after, names.status)
	}
}

// orderTypeChange is an order type's event as the timeline shows it: what
// changed, then the order type as it then stood, its workflows named.
func orderTypeChange(e domain.Event, before, after domain.OrderTypeState, workflowName func(string) string) string {
	slot := func(id string) string {
		if id == "" {
			return "none"
		}
		return workflowName(id)
	}
	fulfillment := func(ids []string) string {
		names := make([]string, len(ids))
		for i, id := range ids {
			names[i] = workflowName(id)
		}
		return strings.Join(names, " or ")
	}
	change := ""
	switch e.(type) {
	case domain.OrderTypeChanged:
		var was []string
		if before.Name != after.Name {
			was = append(was, fmt.Sprintf("name was %q", before.Name))
		}
		if before.Intake != after.Intake {
			was = append(was, "intake was "+slot(before.Intake))
		}
		if before.Production != after.Production {
			was = append(was, "production was "+slot(before.Production))
		}
		if !slices.Equal(before.Fulfillment, after.Fulfillment) {
			was = append(was, "fulfillment was "+fulfillment(before.Fulfillment))
		}
		if len(was) > 0 {
			change = strings.Join(was, ", ") + "; "
		}
	case domain.OrderTypeArchived:
		change = "archived; "
	}
	return fmt.Sprintf("%s%q: intake %s, production %s, fulfillment %s", change, after.Name, slot(after.Intake), slot(after.Production), fulfillment(after.Fulfillment))
}

// timelineHeader and timelineRow print a timeline (audit, order history)
// through a tabwriter.
const timelineHeader = "TIME\tV\tEVENT\tWHO\tWHAT"

func timelineRow(tw io.Writer, env eventstore.Envelope, what string) {
	fmt.Fprintf(tw, "%s\t%d\t%s\t%s:%s\t%s\n", env.OccurredAt.Format(time.RFC3339), env.Version, env.Type, env.Actor.Kind, env.Actor.ID, what)
}

// orderEventWhat is an order event as a timeline shows it (audit order,
// events), statuses named by statusName; false for an event of no order.
func orderEventWhat(e domain.Event, actor eventstore.Actor, statusName func(string) string) (string, bool) {
	what := ""
	switch e := e.(type) {
	case domain.OrderPlaced:
		what = fmt.Sprintf("→ %s (%s v%d)", statusName(e.To.Status), e.To.WorkflowID, e.To.WorkflowVersion)
	case domain.OrderAdvanced:
		what = fmt.Sprintf("%s: %s → %s%s%s", e.Trigger, statusName(e.From.Status), statusName(e.To.Status), entered(e.From, e.To),
			workerSaid(actor, e.Worker, e.Note, e.WorkerOccurredAt))
	case domain.OrderCompleted:
		what = fmt.Sprintf("%s: %s → completed%s", e.Trigger, statusName(e.From.Status), workerSaid(actor, e.Worker, e.Note, e.WorkerOccurredAt))
	case domain.TriggerRejected:
		expected := ""
		if e.Expected != "" { // a completed or cancelled order expects none
			expected = ", expected " + e.Expected
		}
		what = fmt.Sprintf("%s rejected: %s%s%s", e.Trigger, e.Reason, expected, workerSaid(actor, e.Worker, e.Note, e.WorkerOccurredAt))
	case domain.OrderHeld:
		what = reasonGiven(e.Reason)
	case domain.OrderResumed:
		what = reasonGiven(e.Reason)
	case domain.OrderCancelled:
		what = reasonGiven(e.Reason)
	case domain.OrderMoved:
		what = fmt.Sprintf("%s → %s%s: %s", statusName(e.From.Status), statusName(e.To.Status), entered(e.From, e.To), e.Reason)
	case domain.OrderMigrated:
		what = fmt.Sprintf("%s v%d → v%d: %s", e.From.WorkflowID, e.From.WorkflowVersion, e.To.WorkflowVersion, e.Reason)
	default:
		return "", false
	}
	return what, true
}

// workflowChange is a workflow event as the timeline shows it: what
// changed, then the workflow as it then stood.
func workflowChange(e domain.Event, before, after domain.WorkflowState, statusName func(string) string) string {
	step := func(s domain.Step) string { return statusName(s.Status) + " until " + s.Trigger }
	change := ""
	switch e := e.(type) {
	case domain.WorkflowRenamed:
		change = fmt.Sprintf("renamed from %q; ", before.Name)
	case domain.WorkflowTypeChanged:
		change = fmt.Sprintf("type was %s; ", workflowKind(before))
	case domain.WorkflowStepAdded:
		change = fmt.Sprintf("added step %d (%s); ", e.Position, step(e.Step))
	case domain.WorkflowStepRemoved:
		change = fmt.Sprintf("removed step %d (%s); ", e.Index, step(e.Step))
	case domain.WorkflowStepMoved:
		if e.From >= 0 && e.From < len(before.Steps) {
			change = fmt.Sprintf("moved step %d (%s) to %d; ", e.From, statusName(before.Steps[e.From].Status), e.To)
		}
	case domain.WorkflowStepsReplaced:
		change = "replaced the steps; "
	case domain.WorkflowArchived:
		change = "archived; "
	}
	steps := make([]string, 0, len(after.Steps))
	for _, s := range after.Steps {
		steps = append(steps, step(s))
	}
	return fmt.Sprintf("%s%q %s: %s", change, after.Name, workflowKind(after), strings.Join(steps, "; "))
}

// workflowKind is a workflow's type, with its fulfillment method if any.
func workflowKind(s domain.WorkflowState) string {
	if s.FulfillmentMethod.IsZero() {
		return s.Type.String()
	}
	return s.Type.String() + " (" + s.FulfillmentMethod.String() + ")"
}

// entered names the workflow version an order went into when it left
// another for it (" (home_delivery v3)", as OrderPlaced names the first),
// so a timeline shows which version each workflow was pinned at; "" when
// it stayed in the one it was in.
func entered(from, to domain.Position) string {
	if from.WorkflowID == to.WorkflowID && from.WorkflowVersion == to.WorkflowVersion {
		return ""
	}
	return fmt.Sprintf(" (%s v%d)", to.WorkflowID, to.WorkflowVersion)
}

// reasonGiven is a supervisor's reason as the timeline shows it.
func reasonGiven(reason string) string {
	if reason == "" {
		return "(no reason given)"
	}
	return "reason: " + reason
}

// workerSaid is what a trigger's worker reported, in parentheses after a
// space: the worker when the WHO column (the event's actor) shows
// another, when by its clock, and its note; "" when there is nothing to
// add.
func workerSaid(actor eventstore.Actor, worker, note string, at time.Time) string {
	var said []string
	if actor.Kind != eventstore.ActorWorker || actor.ID != worker {
		said = append(said, "worker "+worker)
	}
	if !at.IsZero() {
		said = append(said, "at "+at.Format(time.RFC3339)+" by its clock")
	}
	if note != "" {
		said = append(said, fmt.Sprintf("note %q", note))
	}
	if len(said) == 0 {
		return ""
	}
	return " (" + strings.Join(said, ", ") + ")"
}

// countingReader counts the bytes read through it (import's progress).
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

package eventstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// CheckpointBucket is the JetStream object store that holds read-model
// checkpoints. A checkpoint only saves time: dropping one makes the read
// model rebuild from the streams, with the same result.
const CheckpointBucket = "ORDERFLOW_CHECKPOINTS"

// lazyBucket opens a bucket once it can: a failure (a cluster still
// electing its leaders while the process starts) is not kept, so the next
// use tries again instead of failing for the life of the process.
type lazyBucket[T any] struct {
	mu     sync.Mutex
	opened T
	ok     bool
}

// get returns the bucket, opening it with open (tried again by s.Retry,
// within the store's timeout) unless it is open.
func (l *lazyBucket[T]) get(ctx context.Context, s *Store, name string, open func(context.Context) (T, error)) (T, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ok {
		return l.opened, nil
	}
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	var b T
	err := s.Retry(ctx, func(ctx context.Context) error {
		var err error
		b, err = open(ctx)
		return err
	})
	if err != nil {
		return b, fmt.Errorf("%s: %w", name, err)
	}
	l.opened, l.ok = b, true
	return b, nil
}

func (s *Store) checkpointStore(ctx context.Context) (jetstream.ObjectStore, error) {
	return s.cp.get(ctx, s, "checkpoint bucket", func(ctx context.Context) (jetstream.ObjectStore, error) {
		if err := s.keepsReplicas(ctx, "OBJ_"+CheckpointBucket, CheckpointBucket, s.cfg.Replicas); err != nil {
			return nil, err
		}
		return s.js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{
			Bucket:      CheckpointBucket,
			Description: "orderflow read-model checkpoints",
			Storage:     jetstream.FileStorage,
			Replicas:    s.cfg.Replicas,
		})
	})
}

// SaveCheckpoint stores a read model's checkpoint under name.
func (s *Store) SaveCheckpoint(ctx context.Context, name string, data []byte) error {
	return s.WriteCheckpoint(ctx, name, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// checkpointChunk is the size of a checkpoint's chunks in the object
// store. Put sends up to 4,000 chunks before the first is acknowledged, and
// a stream refuses messages (429 "too many requests") once 128 MiB wait
// to be stored: with nats.go's 128 KiB chunks a checkpoint of a few
// hundred MB outran a slower disk and failed; with 16 KiB at most about
// 62 MiB wait (BenchmarkCheckpointSave at 1,000,000 orders).
const checkpointChunk = 16 << 10

// WriteCheckpoint stores under name the checkpoint write writes, as it
// writes it: the object store takes it in chunks, so the whole checkpoint
// is never in memory at once. An error of write's ends the save, and the
// checkpoint stored before stays. write may be called again: a bucket just
// made on a cluster answers "no responders" for a moment, and the save is
// then tried again, as a load is.
func (s *Store) WriteCheckpoint(ctx context.Context, name string, write func(io.Writer) error) error {
	obs, err := s.checkpointStore(ctx)
	if err != nil {
		return err
	}
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	err = retryTransient(ctx, 100*time.Millisecond, func() error {
		pr, pw := io.Pipe()
		wrote := make(chan error, 1)
		go func() {
			err := write(pw)
			pw.CloseWithError(err) // nil: the reader sees the end
			wrote <- err
		}()
		_, err := obs.Put(ctx, jetstream.ObjectMeta{Name: name, Opts: &jetstream.ObjectMetaOptions{ChunkSize: checkpointChunk}}, pr)
		pr.CloseWithError(err) // a failed put stops the writer
		if werr := <-wrote; werr != nil && err == nil {
			return werr
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("save checkpoint %s: %w", name, Refusal(err))
	}
	return nil
}

// LoadCheckpoint returns the checkpoint stored under name, if any.
func (s *Store) LoadCheckpoint(ctx context.Context, name string) ([]byte, bool, error) {
	obs, err := s.checkpointStore(ctx)
	if err != nil {
		return nil, false, err
	}
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	var b []byte
	// A bucket just created on a cluster answers "no responders" until its
	// replicas serve direct gets.
	err = retryTransient(ctx, 100*time.Millisecond, func() error {
		var err error
		b, err = obs.GetBytes(ctx, name)
		return err
	})
	switch {
	case errors.Is(err, jetstream.ErrObjectNotFound):
		return nil, false, nil
	case err != nil:
		return nil, false, fmt.Errorf("load checkpoint %s: %w", name, err)
	}
	return b, true, nil
}

// DropCheckpoint removes the checkpoint stored under name.
func (s *Store) DropCheckpoint(ctx context.Context, name string) error {
	obs, err := s.checkpointStore(ctx)
	if err != nil {
		return err
	}
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	if err := obs.Delete(ctx, name); err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
		return fmt.Errorf("drop checkpoint %s: %w", name, err)
	}
	return nil
}

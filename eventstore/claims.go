package eventstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// ClaimBucket is the JetStream key-value bucket that holds claims: which
// value a name was first given, for ClaimLifetime. A request key, say,
// names the one thing it made, even when the key is sent again with
// another body. A claim is a guard, not a fact: no event refers to it,
// and export leaves the bucket out.
const ClaimBucket = "ORDERFLOW_CLAIMS"

// ClaimLifetime is how long a claim holds: after it, the name may be
// claimed anew.
const ClaimLifetime = 24 * time.Hour

// Claim is the outcome of Store.Claim: the value the name holds, and
// whether this call gave it (Made), which Release may then undo.
type Claim struct {
	Value string
	Made  bool
	key   string
	rev   uint64
}

func (s *Store) claimStore(ctx context.Context) (jetstream.KeyValue, error) {
	return s.claims.get(ctx, s, "claim bucket", func(ctx context.Context) (jetstream.KeyValue, error) {
		if err := s.keepsReplicas(ctx, "KV_"+ClaimBucket, ClaimBucket, s.cfg.Replicas); err != nil {
			return nil, err
		}
		return s.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket:      ClaimBucket,
			Description: "orderflow claims: the value a name (a request key) was first given",
			History:     1,
			TTL:         ClaimLifetime,
			Storage:     jetstream.FileStorage,
			Replicas:    s.cfg.Replicas,
		})
	})
}

// claimKey is the bucket key of name in scope: a hash, so that any
// string is a name.
func claimKey(scope, name string) string {
	h := sha256.New()
	h.Write([]byte(scope))
	h.Write([]byte{0})
	h.Write([]byte(name))
	return hex.EncodeToString(h.Sum(nil))
}

// Claim gives name (in scope) value, unless it holds a value already:
// the answer is the value it holds, and Made says whether this call gave
// it. Claims of one name race safely: one of them makes it, and every
// other answers its value. A claim lasts ClaimLifetime.
func (s *Store) Claim(ctx context.Context, scope, name, value string) (Claim, error) {
	kv, err := s.claimStore(ctx)
	if err != nil {
		return Claim{}, err
	}
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	key := claimKey(scope, name)
	var c Claim
	err = retryTransient(ctx, 100*time.Millisecond, func() error {
		for {
			rev, err := kv.Create(ctx, key, []byte(value))
			if err == nil {
				c = Claim{Value: value, Made: true, key: key, rev: rev}
				return nil
			}
			if !errors.Is(err, jetstream.ErrKeyExists) {
				if wrongLastSequence(err) {
					// The name was found released, and then its write
					// refused: claimed anew since, or, on a replicated
					// bucket, the leader still applying the release just
					// acknowledged (see PendingAppend.refusedWithoutCause).
					// kv.Create passes that refusal on as it is; claim again.
					continue
				}
				return err
			}
			e, err := kv.Get(ctx, key)
			if errors.Is(err, jetstream.ErrKeyNotFound) {
				continue // released or expired in between: claim again
			}
			if err != nil {
				return err
			}
			c = Claim{Value: string(e.Value()), key: key, rev: e.Revision()}
			return nil
		}
	})
	if err != nil {
		return Claim{}, fmt.Errorf("claim: %w", err)
	}
	return c, nil
}

// ClaimOf answers the value name (in scope) holds, and false when it
// holds none (never claimed, released, or its ClaimLifetime over).
func (s *Store) ClaimOf(ctx context.Context, scope, name string) (string, bool, error) {
	kv, err := s.claimStore(ctx)
	if err != nil {
		return "", false, err
	}
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	var value string
	var held bool
	err = retryTransient(ctx, 100*time.Millisecond, func() error {
		e, err := kv.Get(ctx, claimKey(scope, name))
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return nil // held stays false
		}
		if err != nil {
			return err
		}
		value, held = string(e.Value()), true
		return nil
	})
	if err != nil {
		return "", false, fmt.Errorf("claim look-up: %w", err)
	}
	return value, held, nil
}

// Release undoes a claim this process made (c.Made), for a request that
// was refused and so made nothing: the name may then be claimed anew.
// A claim given since to another value is left alone.
func (s *Store) Release(ctx context.Context, c Claim) error {
	if !c.Made {
		return nil
	}
	kv, err := s.claimStore(ctx)
	if err != nil {
		return err
	}
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	err = kv.Delete(ctx, c.key, jetstream.LastRevision(c.rev))
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return nil // claimed anew since
	}
	if err != nil {
		return fmt.Errorf("release claim: %w", err)
	}
	return nil
}

package handlers

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// errRateLimited answers 429: a key sent more requests than its rate.
var errRateLimited = errors.New("rate limited")

// rateLimiter is a token bucket per API key name: a key may send rate
// requests a second, and up to burst at once after a quiet spell.
type rateLimiter struct {
	rate  float64 // tokens a second
	burst float64
	now   func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newRateLimiter(rate float64, now func() time.Time) *rateLimiter {
	if now == nil {
		now = time.Now
	}
	return &rateLimiter{rate: rate, burst: max(1, rate), now: now, buckets: map[string]*bucket{}}
}

// take spends one of key's tokens, or says how long until there is one.
func (l *rateLimiter) take(key string) (ok bool, wait time.Duration) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[key]
	if b == nil {
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[key] = b
	}
	if elapsed := now.Sub(b.last); elapsed > 0 {
		b.tokens = min(l.burst, b.tokens+elapsed.Seconds()*l.rate)
		b.last = now
	}
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	return false, time.Duration((1 - b.tokens) / l.rate * float64(time.Second))
}

// SetRateLimit limits each API key to perSecond requests a second (with
// bursts of as many), answered 429 beyond it with Retry-After; 0 lifts
// the limit. It applies only while API keys are in use: without them
// there is nobody to tell apart. Call it before serving.
func (api *API) SetRateLimit(perSecond float64) {
	if perSecond <= 0 {
		api.limiter = nil
		return
	}
	api.limiter = newRateLimiter(perSecond, nil)
}

// limit spends a request of key, or answers 429 and reports false.
func (api *API) limit(w http.ResponseWriter, r *http.Request, key APIKey) bool {
	if api.limiter == nil {
		return true
	}
	ok, wait := api.limiter.take(key.Name)
	if ok {
		return true
	}
	w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
	api.fail(w, r, fmt.Errorf("%w: key %q may send %g requests a second; try again in %s", errRateLimited, key.Name, api.limiter.rate, wait.Round(time.Millisecond)))
	return false
}

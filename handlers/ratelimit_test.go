package handlers

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestRateLimiter(t *testing.T) {
	now := time.Date(2026, 11, 29, 0, 0, 0, 0, time.UTC)
	l := newRateLimiter(2, func() time.Time { return now })
	take := func(key string, wantOK bool, wantWait time.Duration) {
		t.Helper()
		if ok, wait := l.take(key); ok != wantOK || wait != wantWait {
			t.Fatalf("take(%s) = %v, %s; want %v, %s", key, ok, wait, wantOK, wantWait)
		}
	}
	take("a", true, 0) // a burst of 2
	take("a", true, 0)
	take("a", false, 500*time.Millisecond)
	take("b", true, 0) // keys do not share
	now = now.Add(250 * time.Millisecond)
	take("a", false, 250*time.Millisecond)
	now = now.Add(250 * time.Millisecond)
	take("a", true, 0)
	now = now.Add(time.Hour) // a quiet spell refills up to the burst only
	take("a", true, 0)
	take("a", true, 0)
	take("a", false, 500*time.Millisecond)
	now = now.Add(-time.Minute) // a clock stepping back gives nothing
	take("a", false, 500*time.Millisecond)

	slow := newRateLimiter(0.5, func() time.Time { return now })
	take = func(key string, wantOK bool, wantWait time.Duration) {
		t.Helper()
		if ok, wait := slow.take(key); ok != wantOK || wait != wantWait {
			t.Fatalf("slow take(%s) = %v, %s; want %v, %s", key, ok, wait, wantOK, wantWait)
		}
	}
	take("a", true, 0) // a burst of at least 1
	take("a", false, 2*time.Second)
}

// Over its rate a key gets 429 rate_limited with Retry-After, whatever
// the route's role; another key is not held back.
func TestGuardRateLimit(t *testing.T) {
	token, keys := oneKey(t, "van-7", RoleWorker)
	other, otherKeys := oneKey(t, "board", RoleReader)
	for k, v := range otherKeys.byHash {
		keys.byHash[k] = v
	}
	now := time.Date(2026, 11, 29, 0, 0, 0, 0, time.UTC)
	api := &API{}
	api.SetKeys(keys)
	api.limiter = newRateLimiter(1, func() time.Time { return now })
	ok := func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }
	send := func(token string, role Role) *httptest.ResponseRecorder {
		r := httptest.NewRequest("GET", "/v1/orders", nil)
		r.Header.Set("Authorization", "Bearer "+token)
		w := httptest.NewRecorder()
		api.guard(role, ok)(w, r)
		return w
	}
	if w := send(token, RoleWorker); w.Code != 204 {
		t.Fatalf("first request: %d", w.Code)
	}
	w := send(token, RoleAdmin) // over the rate before the role is looked at
	if w.Code != 429 || w.Header().Get("Retry-After") != "1" {
		t.Fatalf("second request: %d %v %s", w.Code, w.Header(), w.Body)
	}
	if p := w.Body.String(); !strings.Contains(p, `"code":"rate_limited"`) || !strings.Contains(p, `key \"van-7\" may send 1 requests a second`) {
		t.Fatalf("problem %s", p)
	}
	if w := send(other, RoleReader); w.Code != 204 {
		t.Fatalf("another key: %d", w.Code)
	}
	now = now.Add(time.Second)
	if w := send(token, RoleWorker); w.Code != 204 {
		t.Fatalf("a second later: %d", w.Code)
	}
}

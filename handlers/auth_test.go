package handlers

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/orderflow/orderflow/domain"
)

// A keys file: one key per line, comments and blank lines skipped, every
// mistake named with its line; a made key's token is accepted, its hash
// is all the file holds.
func TestParseAPIKeys(t *testing.T) {
	token, line, err := NewAPIKey(APIKey{Name: "van-7", Tenant: "acme", Role: RoleWorker})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(line, token) || !strings.HasPrefix(line, "van-7 acme worker sha256:") || strings.Contains(line, "expires") {
		t.Fatalf("key line %q", line)
	}
	until := time.Date(2027, 3, 1, 12, 0, 0, 0, time.UTC)
	temp, tempLine, err := NewAPIKey(APIKey{Name: "temp", Tenant: "acme", Role: RoleReader, Expires: until.In(time.FixedZone("x", 3600))})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(tempLine, " expires=2027-03-01T12:00:00Z") {
		t.Fatalf("expiring key line %q", tempLine)
	}
	keys, err := ParseAPIKeys(strings.NewReader("# keys\n\n" + line + "\n" + tempLine + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	if key, ok := keys.lookup(token); !ok || key != (APIKey{Name: "van-7", Tenant: "acme", Role: RoleWorker}) {
		t.Fatalf("lookup = %+v, %v", key, ok)
	}
	if key, ok := keys.lookup(temp); !ok || !key.Expires.Equal(until) || key.ExpiredAt(until.Add(-time.Second)) || !key.ExpiredAt(until) {
		t.Fatalf("lookup of the expiring key = %+v, %v", key, ok)
	}
	if _, ok := keys.lookup(token + "x"); ok {
		t.Fatal("another token was accepted")
	}
	hash := " sha256:" + strings.Repeat("0f", 32)
	for _, tc := range []struct{ name, file, want string }{
		{"no keys", "# none\n", "no keys"},
		{"too few fields", "ana default reader\n", "line 1: want NAME TENANT ROLE"},
		{"unknown role", "ana default owner" + hash, "line 1: role \"owner\""},
		{"unsafe name", "an.a default reader" + hash, "line 1: invalid key name"},
		{"unsafe tenant", "ana def*ault reader" + hash, "line 1: invalid tenant"},
		{"tenant longer than a key", "ana " + strings.Repeat("t", domain.MaxKeyLen+1) + " reader" + hash, "line 1: tenant: longer than 64 characters"},
		{"not hex", "ana default reader sha256:" + strings.Repeat("zz", 32), "line 1: key \"ana\": want sha256:"},
		{"name twice", "ana default reader" + hash + "\nana default admin sha256:" + strings.Repeat("1f", 32), "line 2: key \"ana\" named twice"},
		{"token twice", "ana default reader" + hash + "\nbo default admin" + hash, "line 2: key \"bo\" has the token of another key"},
		{"too many fields", "ana default reader" + hash + " expires=2027-01-01T00:00:00Z x", "line 1: want NAME TENANT ROLE"},
		{"not an expiry", "ana default reader" + hash + " until=2027-01-01T00:00:00Z", "line 1: key \"ana\": want expires="},
		{"not a time", "ana default reader" + hash + " expires=2027-01-01", "line 1: key \"ana\": want expires="},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ParseAPIKeys(strings.NewReader(tc.file)); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

// oneKey makes a key of the default tenant and the keys that hold it alone.
func oneKey(tb testing.TB, name string, role Role) (token string, keys *APIKeys) {
	tb.Helper()
	return makeKeys(tb, APIKey{Name: name, Tenant: "default", Role: role})
}

// makeKeys makes key and the keys that hold it alone.
func makeKeys(tb testing.TB, key APIKey) (token string, keys *APIKeys) {
	tb.Helper()
	token, line, err := NewAPIKey(key)
	if err == nil {
		keys, err = ParseAPIKeys(strings.NewReader(line))
	}
	if err != nil {
		tb.Fatal(err)
	}
	return token, keys
}

// guard lets a request through only with a known token of a role high
// enough; without keys every request passes.
func TestGuard(t *testing.T) {
	token, keys := oneKey(t, "lead", RoleSupervisor)
	expired, expiredKeys := makeKeys(t, APIKey{Name: "temp", Tenant: "default", Role: RoleAdmin, Expires: time.Now().Add(-time.Second)})
	later, laterKeys := makeKeys(t, APIKey{Name: "temp", Tenant: "default", Role: RoleAdmin, Expires: time.Now().Add(time.Hour)})
	ok := func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }
	for _, tc := range []struct {
		name   string
		keys   *APIKeys
		auth   string
		role   Role
		status int
	}{
		{"no keys, no token", nil, "", RoleAdmin, 204},
		{"no token", keys, "", RoleReader, 401},
		{"unknown token", keys, "Bearer of_x", RoleReader, 401},
		{"empty bearer", keys, "Bearer ", RoleReader, 401},
		{"lower-case scheme", keys, "bearer " + token, RoleSupervisor, 204},
		{"role below", keys, "Bearer " + token, RoleAdmin, 403},
		{"role above", keys, "Bearer " + token, RoleWorker, 204},
		{"expired", expiredKeys, "Bearer " + expired, RoleReader, 401},
		{"not yet expired", laterKeys, "Bearer " + later, RoleAdmin, 204},
	} {
		t.Run(tc.name, func(t *testing.T) {
			api := &API{}
			api.SetKeys(tc.keys)
			r := httptest.NewRequest("GET", "/v1/orders", nil)
			if tc.auth != "" {
				r.Header.Set("Authorization", tc.auth)
			}
			w := httptest.NewRecorder()
			api.guard(tc.role, ok)(w, r)
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", w.Code, tc.status, w.Body)
			}
			if (w.Code == 401) != (w.Header().Get("WWW-Authenticate") != "") {
				t.Fatalf("WWW-Authenticate %q with status %d", w.Header().Get("WWW-Authenticate"), w.Code)
			}
		})
	}
}

// What a key costs a request: the guard and the metrics wrapper around a
// handler that does nothing, without keys and with a valid bearer token.
func BenchmarkGuardedRoute(b *testing.B) {
	token, keys := oneKey(b, "van-7", RoleWorker)
	noop := func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }
	for _, withKeys := range []bool{false, true} {
		name := "without keys"
		if withKeys {
			name = "with a key"
		}
		b.Run(name, func(b *testing.B) {
			api := &API{}
			if withKeys {
				api.SetKeys(keys)
			}
			h := api.observe("POST /v1/orders/{id}/triggers", api.guard(RoleWorker, noop))
			r := httptest.NewRequest("POST", "/v1/orders/o-1/triggers", nil)
			r.Header.Set("Authorization", "Bearer "+token)
			w := httptest.NewRecorder()
			b.ReportAllocs()
			for b.Loop() {
				h(w, r)
			}
			if w.Code != http.StatusNoContent {
				b.Fatalf("status %d", w.Code)
			}
		})
	}
}

package handlers

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/orderflow/orderflow/domain"
	"github.com/orderflow/orderflow/eventstore"
)

// Role is what an API key may do over HTTP. Each role may do everything
// the roles before it may.
type Role int

const (
	// RoleReader reads: definitions, orders, history, the board, the feed.
	RoleReader Role = iota + 1
	// RoleWorker also places orders and applies triggers.
	RoleWorker
	// RoleSupervisor also holds, resumes, cancels, moves and migrates orders.
	RoleSupervisor
	// RoleAdmin also changes the tenant's definitions.
	RoleAdmin
	// RoleOperator also sees where the process's read models stand and
	// rebuilds them: actions on every tenant at once.
	RoleOperator
)

var roleNames = []string{RoleReader: "reader", RoleWorker: "worker", RoleSupervisor: "supervisor", RoleAdmin: "admin", RoleOperator: "operator"}

func (r Role) String() string {
	if r < RoleReader || r > RoleOperator {
		return fmt.Sprintf("Role(%d)", int(r))
	}
	return roleNames[r]
}

// ParseRole reads a role's name.
func ParseRole(s string) (Role, error) {
	for r := RoleReader; r <= RoleOperator; r++ {
		if roleNames[r] == s {
			return r, nil
		}
	}
	return 0, fmt.Errorf("role %q: want reader, worker, supervisor, admin or operator", s)
}

// APIKey is one caller of the HTTP API: its name (the actor of what it
// does), the one tenant it acts for, its role, and when it stops being
// let in (zero: never).
type APIKey struct {
	Name    string
	Tenant  string
	Role    Role
	Expires time.Time
}

// ExpiredAt reports whether the key is no longer let in at now.
func (k APIKey) ExpiredAt(now time.Time) bool {
	return !k.Expires.IsZero() && !now.Before(k.Expires)
}

// APIKeys are the keys the HTTP API accepts, found by the SHA-256 of the
// bearer token: the keys file holds no token itself.
type APIKeys struct {
	byHash map[[sha256.Size]byte]APIKey
}

// Len is how many keys there are.
func (k *APIKeys) Len() int { return len(k.byHash) }

// List is the keys, by name.
func (k *APIKeys) List() []APIKey {
	list := slices.Collect(maps.Values(k.byHash))
	slices.SortFunc(list, func(a, b APIKey) int { return strings.Compare(a.Name, b.Name) })
	return list
}

func (k *APIKeys) lookup(token string) (APIKey, bool) {
	key, ok := k.byHash[sha256.Sum256([]byte(token))]
	return key, ok
}

// LoadAPIKeys reads a keys file (see ParseAPIKeys).
func LoadAPIKeys(path string) (*APIKeys, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("API keys: %w", err)
	}
	defer f.Close()
	keys, err := ParseAPIKeys(f)
	if err != nil {
		return nil, fmt.Errorf("API keys %s: %w", path, err)
	}
	return keys, nil
}

// ParseAPIKeys reads one key per line, "NAME TENANT ROLE sha256:HEX",
// optionally followed by "expires=TIME" (RFC 3339), as NewAPIKey writes
// it; blank lines and lines starting with # are skipped. Names and
// tenants are subject-safe tokens; names and tokens are unique.
func ParseAPIKeys(r io.Reader) (*APIKeys, error) {
	keys := &APIKeys{byHash: map[[sha256.Size]byte]APIKey{}}
	names := map[string]bool{}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, hash, err := parseKeyLine(line)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		if names[key.Name] {
			return nil, fmt.Errorf("line %d: key %q named twice", n, key.Name)
		}
		if _, dup := keys.byHash[hash]; dup {
			return nil, fmt.Errorf("line %d: key %q has the token of another key", n, key.Name)
		}
		names[key.Name] = true
		keys.byHash[hash] = key
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(keys.byHash) == 0 {
		return nil, errors.New("no keys: every request would be refused")
	}
	return keys, nil
}

func parseKeyLine(line string) (APIKey, [sha256.Size]byte, error) {
	var hash [sha256.Size]byte
	f := strings.Fields(line)
	if len(f) != 4 && len(f) != 5 {
		return APIKey{}, hash, fmt.Errorf("want NAME TENANT ROLE sha256:HEX [expires=TIME], got %d fields", len(f))
	}
	key := APIKey{Name: f[0], Tenant: f[1]}
	if err := checkKeyNames(key); err != nil {
		return APIKey{}, hash, err
	}
	role, err := ParseRole(f[2])
	if err != nil {
		return APIKey{}, hash, err
	}
	key.Role = role
	h, ok := strings.CutPrefix(f[3], "sha256:")
	b, err := hex.DecodeString(h)
	if !ok || err != nil || len(b) != sha256.Size {
		return APIKey{}, hash, fmt.Errorf("key %q: want sha256: and 64 hex digits", key.Name)
	}
	copy(hash[:], b)
	if len(f) == 5 {
		at, ok := strings.CutPrefix(f[4], "expires=")
		t, err := time.Parse(time.RFC3339, at)
		if !ok || err != nil {
			return APIKey{}, hash, fmt.Errorf("key %q: want expires= and an RFC 3339 time, got %q", key.Name, f[4])
		}
		key.Expires = t.UTC()
	}
	return key, hash, nil
}

// checkKeyNames checks a key's name and tenant: each a safe subject
// token, and the tenant a key too (at most domain.MaxKeyLen), as the
// client package requires of the tenant a worker app publishes for.
func checkKeyNames(key APIKey) error {
	tenant := eventstore.ValidateToken("tenant", key.Tenant)
	if tenant == nil {
		tenant = domain.CheckKey("tenant", key.Tenant)
	}
	return errors.Join(eventstore.ValidateToken("key name", key.Name), tenant)
}

// NewAPIKey makes a random bearer token for key and the keys-file line
// that accepts it. The token is shown once; the line holds only its hash.
func NewAPIKey(key APIKey) (token, line string, err error) {
	if err := checkKeyNames(key); err != nil {
		return "", "", err
	}
	if key.Role < RoleReader || key.Role > RoleOperator {
		return "", "", fmt.Errorf("no role %s", key.Role)
	}
	token = "of_" + rand.Text()
	sum := sha256.Sum256([]byte(token))
	line = fmt.Sprintf("%s %s %s sha256:%s", key.Name, key.Tenant, key.Role, hex.EncodeToString(sum[:]))
	if !key.Expires.IsZero() {
		line += " expires=" + key.Expires.UTC().Format(time.RFC3339)
	}
	return token, line, nil
}

// Errors of the HTTP API's authentication.
var (
	errUnauthenticated = errors.New("unauthenticated")
	errForbidden       = errors.New("forbidden")
)

type callerCtx struct{}

// caller is who a request was let in as: the API key, and the commands
// acting for its tenant (made at the request's first need, once).
type caller struct {
	key  APIKey
	role Role // the least role the route needs
	cmds *Commands
}

// SetKeys sets the API keys every /v1 route asks for from now on (see
// guard); nil, as at the start, serves every caller as the default tenant.
// Requests in flight finish under the keys they were let in with, except
// event feeds, which last as long as their dashboards: a feed whose key
// the new keys no longer let in ends (see stillLetIn).
func (api *API) SetKeys(k *APIKeys) {
	api.keysMu.Lock()
	defer api.keysMu.Unlock()
	api.keys.Store(k)
	if api.keysSet != nil {
		close(api.keysSet)
	}
	api.keysSet = make(chan struct{})
}

// keysChanged is closed when SetKeys next sets the keys.
func (api *API) keysChanged() <-chan struct{} {
	api.keysMu.Lock()
	defer api.keysMu.Unlock()
	if api.keysSet == nil {
		api.keysSet = make(chan struct{})
	}
	return api.keysSet
}

// stillLetIn reports whether the keys in use now would let a request in
// as guard let it in: the same key, for the same tenant, with a role high
// enough for its route, not expired; and returns the key as it now stands
// (the zero key when the request was let in without keys). The keys file
// read again may have taken the key out or changed it since, or it may
// have expired; an event feed asks this for as long as it runs.
func (api *API) stillLetIn(r *http.Request) (APIKey, bool) {
	c, ok := r.Context().Value(callerCtx{}).(*caller)
	keys := api.keys.Load()
	if !ok || keys == nil {
		return APIKey{}, true // let in without keys
	}
	key, found := bearerKey(keys, r)
	return key, found && key.Name == c.key.Name && key.Tenant == c.key.Tenant && key.Role >= c.role && !key.ExpiredAt(time.Now())
}

// guard wraps a route that needs role. Without keys every request passes
// and acts for the default tenant. With keys, a request needs
// "Authorization: Bearer TOKEN" of a key whose role is at least role; it
// then acts for the key's tenant, as the key's name.
func (api *API) guard(role Role, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		keys := api.keys.Load()
		if keys == nil {
			h(w, r)
			return
		}
		key, ok := bearerKey(keys, r)
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="orderflow"`)
			api.fail(w, r, fmt.Errorf("%w: send Authorization: Bearer and an API key's token", errUnauthenticated))
			return
		}
		if key.ExpiredAt(time.Now()) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="orderflow", error="invalid_token", error_description="the key expired"`)
			api.fail(w, r, fmt.Errorf("%w: key %q expired at %s", errUnauthenticated, key.Name, key.Expires.Format(time.RFC3339)))
			return
		}
		if !api.limit(w, r, key) {
			return
		}
		if key.Role < role {
			api.fail(w, r, fmt.Errorf("%w: key %q has the role %s; %s %s needs %s", errForbidden, key.Name, key.Role, r.Method, r.URL.Path, role))
			return
		}
		h(w, r.WithContext(context.WithValue(r.Context(), callerCtx{}, &caller{key: key, role: role})))
	}
}

// bearerKey is the key of the request's "Authorization: Bearer TOKEN",
// if keys hold one.
func bearerKey(keys *APIKeys, r *http.Request) (APIKey, bool) {
	scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	if !strings.EqualFold(scheme, "Bearer") || token == "" {
		return APIKey{}, false
	}
	return keys.lookup(strings.TrimSpace(token))
}

// tokenFromQuery passes ?access_token= on as the bearer token when the
// request has no Authorization header, and takes it out of the URL the
// handler sees.
func tokenFromQuery(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if token := q.Get("access_token"); token != "" && r.Header.Get("Authorization") == "" {
			q.Del("access_token")
			r = r.Clone(r.Context())
			r.URL.RawQuery = q.Encode()
			r.Header.Set("Authorization", "Bearer "+token)
		}
		h(w, r)
	}
}

// callerKey is the API key a request was let in with, if any.
func callerKey(r *http.Request) (APIKey, bool) {
	if c, ok := r.Context().Value(callerCtx{}).(*caller); ok {
		return c.key, true
	}
	return APIKey{}, false
}

// cmds are the commands acting for the request's tenant.
func (api *API) cmds(r *http.Request) *Commands {
	c, ok := r.Context().Value(callerCtx{}).(*caller)
	if !ok {
		return api.Commands
	}
	if c.cmds == nil {
		c.cmds = api.Commands.ForTenant(c.key.Tenant)
	}
	return c.cmds
}

// onBehalf is who a request acts as, given X-Orderflow-Actor or a
// trigger's worker (field): given itself without API keys; with them, the
// key's name, followed by "/" and given when there is one. It is at most
// 128 bytes.
func onBehalf(r *http.Request, given, field string) (string, error) {
	if err := domain.CheckActorID(field, given); err != nil {
		return "", err
	}
	what := field
	if key, ok := callerKey(r); ok {
		given = strings.TrimSuffix(key.Name+"/"+given, "/")
		what = "the API key's name, '/' and " + field
	}
	if len(given) > domain.MaxActorIDLen {
		return "", fmt.Errorf("%w: %s: longer than %d bytes", errBadRequest, what, domain.MaxActorIDLen)
	}
	return given, nil
}

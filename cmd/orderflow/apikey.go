package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/handlers"
)

// apiKeyCmd: orderflow apikey --name N --role R [--tenant T]
// [--expires-in D] [--keys-file F].
// It makes a new key: the token goes to stdout, once; the keys-file line,
// which holds only the token's hash, is appended to the keys file (or
// printed after the token when no file is given). `apikey list` and
// `apikey revoke` show and take back the keys of a file.
func apiKeyCmd(_ context.Context, args []string, stdout, stderr io.Writer, env func(string) (string, bool)) error {
	if len(args) > 0 && (args[0] == "list" || args[0] == "revoke") {
		return apiKeyFileCmd(args[0], args[1:], stdout, stderr, env)
	}
	fs := commandFlags("apikey", "Usage: orderflow apikey --name NAME --role ROLE [--tenant T] [--expires-in D] [--keys-file F]\n"+
		"       orderflow apikey list --keys-file F\n"+
		"       orderflow apikey revoke --keys-file F --name NAME\n\n"+
		"Make an HTTP API key for 'orderflow serve --api-keys F'. The token is printed once; the keys file keeps only its hash.", stderr)
	name := fs.String("name", "", "the key's name: the actor recorded for what it does")
	tenant := fs.String("tenant", eventstore.DefaultTenant, "the tenant the key acts for")
	role := fs.String("role", "", "reader, worker (also places orders and applies triggers), supervisor (also holds, resumes, cancels, moves, migrates), admin (also changes definitions) or operator (also sees and rebuilds the process's read models, for every tenant)")
	expiresIn := fs.String("expires-in", "", "refuse the key this long from now: days (90d) or a Go duration (12h); empty: it does not expire")
	keysFile := fs.String("keys-file", "", "append the key's line to this file (made, mode 0600, when missing); empty: print the line")
	if err := parseFlags(fs, args, env); err != nil {
		return err
	}
	if err := noArguments(fs); err != nil {
		return err
	}
	if *name == "" {
		return errors.New("--name is required: the key's name, recorded as the actor of what it does")
	}
	r, err := handlers.ParseRole(*role)
	if err != nil {
		return err
	}
	key := handlers.APIKey{Name: *name, Tenant: *tenant, Role: r}
	if *expiresIn != "" {
		d, err := parseDays(*expiresIn)
		if err != nil || d <= 0 {
			return fmt.Errorf("--expires-in %q: want a positive number of days (90d, at most %dd) or a Go duration (12h)", *expiresIn, maxKeyDays)
		}
		key.Expires = time.Now().Add(d).Truncate(time.Second)
	}
	token, line, err := handlers.NewAPIKey(key)
	if err != nil {
		return err
	}
	if *keysFile == "" {
		_, err = fmt.Fprintf(stdout, "%s\n%s\n", token, line)
		return err
	}
	if err := appendKeyLine(*keysFile, key.Name, line); err != nil {
		return err
	}
	_, err = fmt.Fprintln(stdout, token)
	return err
}

// maxKeyDays is the longest --expires-in in days: a hundred years.
const maxKeyDays = 100 * 365

// parseDays reads a duration that may also be a whole number of days
// ("90d").
func parseDays(s string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n > maxKeyDays {
			return 0, fmt.Errorf("%q: not a number of days", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	return time.ParseDuration(s)
}

// appendKeyLine adds the line of the key name to a keys file, refusing
// one that would make the file unreadable (a name it already has, say). A
// running server lets the key in once it sees the file changed.
func appendKeyLine(path, name, line string) error {
	old, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if keys, err := handlers.ParseAPIKeys(bytes.NewReader(old)); err == nil &&
		slices.ContainsFunc(keys.List(), func(k handlers.APIKey) bool { return k.Name == name }) {
		return fmt.Errorf("%s has a key named %q already: take it back first (orderflow apikey revoke --name %s), or choose another name", path, name, name)
	}
	if len(old) > 0 && old[len(old)-1] != '\n' {
		line = "\n" + line
	}
	if _, err := handlers.ParseAPIKeys(strings.NewReader(string(old) + line + "\n")); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintln(f, line); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// apiKeyFileCmd: orderflow apikey list|revoke --keys-file F [--name N].
func apiKeyFileCmd(verb string, args []string, stdout, stderr io.Writer, env func(string) (string, bool)) error {
	usage := "Usage: orderflow apikey list --keys-file F\n\nShow the keys of a keys file: name, tenant, role, expiry."
	if verb == "revoke" {
		usage = "Usage: orderflow apikey revoke --keys-file F --name NAME\n\nTake a key back: its line leaves the keys file, and a running server refuses it once it sees the change."
	}
	fs := commandFlags("apikey "+verb, usage, stderr)
	keysFile := fs.String("keys-file", "", "the keys file (as given to 'serve --api-keys')")
	name := fs.String("name", "", "the key to take back (revoke)")
	if err := parseFlags(fs, args, env); err != nil {
		return err
	}
	switch {
	case fs.NArg() != 0:
		return noArguments(fs)
	case *keysFile == "":
		return errors.New("--keys-file is required: the keys file, as given to 'serve --api-keys'")
	case verb == "revoke" && *name == "":
		return errors.New("--name is required: the key to take back")
	case verb == "list" && *name != "":
		return errors.New("--name is for revoke; list shows every key")
	}
	if verb == "revoke" {
		return revokeKey(*keysFile, *name, stdout)
	}
	keys, err := handlers.LoadAPIKeys(*keysFile)
	if err != nil {
		return err
	}
	now := time.Now()
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tTENANT\tROLE\tEXPIRES")
	for _, k := range keys.List() {
		expires := "never"
		if !k.Expires.IsZero() {
			expires = k.Expires.Format(time.RFC3339)
			if k.ExpiredAt(now) {
				expires += " (expired)"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", k.Name, k.Tenant, k.Role, expires)
	}
	return tw.Flush()
}

// revokeKey takes a key's line out of a keys file, replacing the file at
// once (a temporary file renamed over it), and refuses to leave it with
// no key. A running server refuses the key once it sees the file changed
// (--reload-interval), or at once on SIGHUP.
func revokeKey(path, name string, stdout io.Writer) error {
	if err := eventstore.ValidateToken("key name", name); err != nil {
		return err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var kept []string
	found := false
	for _, line := range strings.SplitAfter(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] == name {
			found = true
			continue
		}
		kept = append(kept, line)
	}
	if !found {
		return fmt.Errorf("%s has no key %q", path, name)
	}
	rest := strings.Join(kept, "")
	if _, err := handlers.ParseAPIKeys(strings.NewReader(rest)); err != nil {
		return fmt.Errorf("%s without %q: %w", path, name, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".keys-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // gone once renamed
	if _, err := tmp.WriteString(rest); err != nil {
		tmp.Close()
		return err
	}
	if err := errors.Join(tmp.Chmod(0o600), tmp.Close()); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "revoked %s; a running orderflow refuses it once it sees the file changed (--reload-interval, 5s by default), or at once on SIGHUP (kill -HUP PID)\n", name)
	return err
}

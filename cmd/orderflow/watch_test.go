package main

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/orderflow/orderflow/eventstore/eventstoretest"
)

func TestChanged(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	write := func(s string, mod time.Time) {
		t.Helper()
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(path, mod, mod); err != nil {
			t.Fatal(err)
		}
	}
	stat := func() []os.FileInfo {
		return (&watchedFiles{paths: []string{path}}).stat()
	}
	then := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	write("abc", then)
	was := stat()
	if changed(was, stat()) {
		t.Error("an untouched file changed")
	}
	write("abc", then.Add(time.Second))
	if !changed(was, stat()) {
		t.Error("a file written later did not change")
	}
	write("abc", then)
	if changed(was, stat()) {
		t.Error("the same file with the same time and size changed")
	}
	write("abcd", then)
	if !changed(was, stat()) {
		t.Error("a resized file did not change")
	}
	write("abc", then)
	// Replaced: a new file of the same time and size renamed over it.
	other := filepath.Join(dir, "g")
	if err := os.WriteFile(other, []byte("abc"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(other, then, then); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(other, path); err != nil {
		t.Fatal(err)
	}
	if now := stat(); !changed(was, now) {
		t.Error("a file renamed over it did not change")
	} else {
		was = now
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	gone := stat()
	if gone[0] != nil || !changed(was, gone) || changed(gone, stat()) {
		t.Errorf("removed: %v, changed %v", gone, changed(was, gone))
	}
	write("abc", then)
	if !changed(gone, stat()) {
		t.Error("a file put back did not change")
	}
}

// serve notices a changed keys file by itself: a key added is let in, a
// key revoked refused, with no signal; a file gone or broken leaves the
// keys in use.
func TestServeReadsTheChangedKeysFile(t *testing.T) {
	t.Parallel()
	keys := filepath.Join(t.TempDir(), "keys")
	admin := newKey(t, keys, "admin", "default", "admin")
	cfg := newTestConfig(t)
	cfg.APIKeys = keys
	cfg.ReloadInterval = 10 * time.Millisecond
	var log eventstoretest.LogBuffer
	app := startAppWith(t, cfg, func(a *App) { a.Logger = slog.New(slog.NewTextHandler(&log, nil)) })
	status := func(token string) func() bool {
		return func() bool {
			return (&httpClient{t: t, base: "http://" + app.HTTPAddr(), token: token}).do("GET", "/v1/statuses", nil).Status == 200
		}
	}
	refused := func(token string) func() bool {
		ok := status(token)
		return func() bool { return !ok() }
	}

	late := newKey(t, keys, "late", "default", "reader")
	eventstoretest.Eventually(t, 10*time.Second, status(late), "a key added to the file is let in")
	if code, out, errOut := runMain(t, "apikey", "revoke", "--keys-file", keys, "--name", "admin"); code != 0 || !strings.Contains(out, "--reload-interval") {
		t.Fatalf("apikey revoke: exit %d: %s%s", code, out, errOut)
	}
	eventstoretest.Eventually(t, 10*time.Second, refused(admin), "a key revoked in the file is refused")

	saved, err := os.ReadFile(keys)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(keys); err != nil {
		t.Fatal(err)
	}
	eventstoretest.Eventually(t, 10*time.Second, func() bool { return strings.Contains(log.String(), "a watched file is gone") }, "the gone file is noticed")
	if !status(late)() {
		t.Fatal("a key was refused once its file was gone")
	}
	if err := os.WriteFile(keys, []byte("late default reader sha256:nothex\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	eventstoretest.Eventually(t, 10*time.Second, func() bool { return strings.Contains(log.String(), "could not be used") }, "the broken file is noticed")
	if !status(late)() {
		t.Fatal("a key was refused after its file was broken")
	}
	if err := os.WriteFile(keys, saved, 0o600); err != nil {
		t.Fatal(err)
	}
	more := newKey(t, keys, "more", "default", "reader")
	eventstoretest.Eventually(t, 10*time.Second, status(more), "the mended file is read")
}

// serve notices renewed certificate files by itself.
func TestServeReadsARenewedCertificate(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certFile, keyFile, _ := writeCert(t, dir, 1)
	cfg := newTestConfig(t)
	cfg.TLSCert, cfg.TLSKey = certFile, keyFile
	cfg.ReloadInterval = 10 * time.Millisecond
	app := startApp(t, cfg)
	_, _, renewed := writeCert(t, dir, 2)
	eventstoretest.Eventually(t, 10*time.Second, func() bool {
		resp, err := getTrusting(app, renewed, "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.TLS.PeerCertificates[0].SerialNumber.Int64() == 2
	}, "the renewed certificate is served")
}

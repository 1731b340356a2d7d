//go:build unix

package main

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// An export read from a pipe, as from standard input, is copied to a
// temporary file and checked whole before anything is stored, as a file
// is (TestExportImport): cut short, it is refused and the store keeps
// nothing, so the whole export then imports there.
func TestImportFromAPipe(t *testing.T) {
	t.Parallel()
	app := startApp(t, newTestConfig(t))
	seedWorkedExample(t, newClient(t, app))
	dump := filepath.Join(t.TempDir(), "export.jsonl")
	if code, out, errOut := runMain(t, "export", "--nats-url", app.NATSURL(), "--out", dump); code != 0 {
		t.Fatalf("export: %d %s %s", code, out, errOut)
	}
	whole, err := os.ReadFile(dump)
	if err != nil {
		t.Fatal(err)
	}
	cut := whole[:bytes.IndexByte(whole, '\n')+20]
	into := t.TempDir()
	copies := filepath.Join(os.TempDir(), "orderflow-import-*")
	before, _ := filepath.Glob(copies) // a killed import's copy stays behind; it is not this test's
	for _, tc := range []struct {
		body       []byte
		code       int
		out, error string
	}{
		{cut, 1, "", "line 2: malformed JSON: unexpected EOF; nothing was imported"},
		{whole, 0, "imported", ""},
	} {
		pipe := filepath.Join(t.TempDir(), "export.pipe")
		if err := syscall.Mkfifo(pipe, 0o600); err != nil {
			t.Skipf("no named pipes here: %v", err)
		}
		go func() {
			f, err := os.OpenFile(pipe, os.O_WRONLY, 0)
			if err != nil {
				return
			}
			defer f.Close()
			_, _ = f.Write(tc.body)
		}()
		code, out, errOut := runMain(t, "import", "--data-dir", into, "--in", pipe)
		if code != tc.code || !strings.Contains(out, tc.out) || !strings.Contains(errOut, tc.error) {
			t.Errorf("import of %d bytes from a pipe: %d %q %q", len(tc.body), code, out, errOut)
		}
	}
	after, _ := filepath.Glob(copies)
	if left := slices.DeleteFunc(after, func(f string) bool { return slices.Contains(before, f) }); len(left) > 0 {
		t.Errorf("the copies of the pipe are left behind: %v", left)
	}
}

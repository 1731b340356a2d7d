package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/orderflow/orderflow/eventstore/eventstoretest"
)

// binary is orderflow compiled once for the tests that run it (with
// -count=3, five tests each ran go build three times); TestMain removes it.
var binary struct {
	once      sync.Once
	dir, path string
	err       error
}

// buildBinary returns the path of orderflow compiled into a temp dir.
func buildBinary(t *testing.T) string {
	t.Helper()
	binary.once.Do(func() {
		if binary.dir, binary.err = os.MkdirTemp("", "orderflow-bin-"); binary.err != nil {
			return
		}
		binary.path = filepath.Join(binary.dir, "orderflow")
		if out, err := exec.Command("go", "build", "-o", binary.path, ".").CombinedOutput(); err != nil {
			binary.err = fmt.Errorf("go build: %w\n%s", err, out)
		}
	})
	if binary.err != nil {
		t.Fatal(binary.err)
	}
	return binary.path
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binary.dir != "" {
		_ = os.RemoveAll(binary.dir)
	}
	os.Exit(code)
}

// The real binary starts with --demo on a fresh data dir, becomes ready,
// its simulated workers complete orders, and it exits 0 on SIGTERM after a
// clean shutdown; flags come from ORDERFLOW_* variables.
func TestBinaryServeReadyAndSIGTERM(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	t.Parallel()
	bin := buildBinary(t)
	httpAddr := fmt.Sprintf("127.0.0.1:%d", eventstoretest.FreePort(t))
	// The process lives past the waits below (up to 90 s, times
	// eventstoretest.Slack like its own deadline), so that a slow
	// first completion fails as that, not as a process killed meanwhile.
	ctx, cancel := eventstoretest.Context(2 * time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "serve", "--demo", "--data-dir", t.TempDir())
	cmd.Env = append(cmd.Environ(),
		"ORDERFLOW_HTTP="+httpAddr,
		fmt.Sprintf("ORDERFLOW_NATS_LISTEN=127.0.0.1:%d", eventstoretest.FreePort(t)),
	)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(eventstoretest.Patience(30 * time.Second))
	for {
		resp, err := http.Get("http://" + httpAddr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			t.Fatalf("not ready within %s (last error %v)", eventstoretest.Patience(30*time.Second), err)
		}
		time.Sleep(20 * time.Millisecond) // polling with a deadline
	}
	// Within 10 s of ready (times eventstoretest.Slack), the demo's board
	// is not empty.
	boardBy := time.Now().Add(eventstoretest.Patience(10 * time.Second))
	for {
		resp, err := http.Get("http://" + httpAddr + "/v1/board")
		if err == nil {
			var board struct{ Items []any }
			_ = json.NewDecoder(resp.Body).Decode(&board)
			resp.Body.Close()
			if len(board.Items) > 0 {
				break
			}
		}
		if time.Now().After(boardBy) {
			_ = cmd.Process.Kill()
			t.Fatalf("the demo's board was still empty %s after ready", eventstoretest.Patience(10*time.Second))
		}
		time.Sleep(50 * time.Millisecond) // polling with a deadline
	}
	// The demo seeded the worked example and its workers move orders.
	for {
		resp, err := http.Get("http://" + httpAddr + "/v1/orders?state=completed&limit=1")
		if err == nil {
			var page struct{ Items []any }
			_ = json.NewDecoder(resp.Body).Decode(&page)
			resp.Body.Close()
			if len(page.Items) > 0 {
				break
			}
		}
		if time.Now().After(deadline.Add(60 * time.Second)) {
			_ = cmd.Process.Kill()
			t.Fatal("the demo completed no order")
		}
		time.Sleep(50 * time.Millisecond) // polling with a deadline
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
}

// The real binary reads its --api-keys file again on SIGHUP: a key added
// to the file is let in without a restart.
func TestBinaryReloadsAPIKeysOnSIGHUP(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	t.Parallel()
	bin := buildBinary(t)
	keys := filepath.Join(t.TempDir(), "keys")
	admin := newKey(t, keys, "admin", "default", "admin")
	httpAddr := fmt.Sprintf("127.0.0.1:%d", eventstoretest.FreePort(t))
	ctx, cancel := eventstoretest.Context(60 * time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "serve", "--data-dir", t.TempDir(), "--api-keys", keys, "--http", httpAddr,
		"--nats-listen", fmt.Sprintf("127.0.0.1:%d", eventstoretest.FreePort(t)))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	status := func(token string) int {
		req, _ := http.NewRequest("GET", "http://"+httpAddr+"/v1/statuses", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	deadline := time.Now().Add(eventstoretest.Patience(30 * time.Second))
	for status(admin) != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatalf("not ready within %s (last %d)", eventstoretest.Patience(30*time.Second), status(admin))
		}
		time.Sleep(20 * time.Millisecond) // polling with a deadline
	}
	late := newKey(t, keys, "late", "default", "reader")
	if got := status(late); got != http.StatusUnauthorized {
		t.Fatalf("a key added after the start: %d before SIGHUP, want 401", got)
	}
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	for status(late) != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatalf("the key added before SIGHUP is still refused (%d)", status(late))
		}
		time.Sleep(20 * time.Millisecond) // polling with a deadline
	}
}

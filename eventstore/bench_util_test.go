package eventstore_test

import (
	"os"
	"runtime"
	"testing"
)

// TestMain removes the benchmarks' shared server and its files after the run.
func TestMain(m *testing.M) {
	code := m.Run()
	if bench.srv != nil {
		bench.st.Conn().Close()
		bench.srv.Shutdown()
	}
	if bench.dir != "" {
		os.RemoveAll(bench.dir)
	}
	os.Exit(code)
}

func runtimeProcs() int { return runtime.GOMAXPROCS(0) }

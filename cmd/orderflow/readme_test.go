package main

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// readmeBlock returns the lines of the first ```sh block after heading.
func readmeBlock(t *testing.T, heading string) []string {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	i := strings.Index(text, "\n"+heading+"\n")
	if i < 0 {
		t.Fatalf("README has no %q section", heading)
	}
	text = text[i:]
	start := strings.Index(text, "```sh\n")
	end := strings.Index(text[start+6:], "```")
	if start < 0 || end < 0 {
		t.Fatalf("no sh block under %q", heading)
	}
	var lines []string
	for _, l := range strings.Split(text[start+6:start+6+end], "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			lines = append(lines, l)
		}
	}
	return lines
}

// The README's "Define your process" commands work, as written, against a
// running orderflow.
func TestReadmeDefineYourProcess(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl is not installed")
	}
	t.Parallel()
	app := startApp(t, newTestConfig(t))
	for _, line := range readmeBlock(t, "## Define your process") {
		cmd := strings.ReplaceAll(line, "localhost:8080", app.HTTPAddr())
		out, err := exec.Command("bash", "-c", cmd+" --fail-with-body").CombinedOutput()
		if err != nil {
			t.Fatalf("%s\n%v\n%s", line, err, out)
		}
	}
	c := newClient(t, app)
	wf := c.must(200, "GET", "/v1/workflows/standard_laundry_production", nil)
	if got := strings.Join(steps(wf), ","); got != "washing<-wash_done,drying<-dry_done,folding<-folded" {
		t.Fatalf("production steps %s", got)
	}
	c.must(200, "GET", "/v1/order-types/wash_fold_delivery", nil)
}

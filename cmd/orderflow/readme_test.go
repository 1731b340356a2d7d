package main

import (
	"context"
	"flag"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
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
	runReadmeLines(t, app, readmeBlock(t, "## Define your process"))
	runReadmeLines(t, app, readmeBlock(t, "## Place an order and publish triggers"))
	runReadmeLines(t, app, readmeBlock(t, "## Audit and replay"))
	c := newClient(t, app)
	o := c.must(200, "GET", "/v1/orders/order-1", nil)
	if o["position"].(map[string]any)["status"] != "washing" {
		t.Fatalf("order-1 after the README's triggers: %v", o["position"])
	}
	wf := c.must(200, "GET", "/v1/workflows/standard_laundry_production", nil)
	if got := strings.Join(steps(wf), ","); got != "washing<-wash_done,drying<-dry_done,folding<-folded" {
		t.Fatalf("production steps %s", got)
	}
	c.must(200, "GET", "/v1/order-types/wash_fold_delivery", nil)
	runReadmeLines(t, app, readmeBlock(t, "## Change a workflow while orders are inside it"))
	wf = c.must(200, "GET", "/v1/workflows/standard_laundry_production", nil)
	o = c.must(200, "GET", "/v1/orders/order-1", nil)
	if pos := o["position"].(map[string]any); pos["workflow_version"] != wf["version"] || pos["status"] != "washing" {
		t.Fatalf("order-1 after the README's migration: %v, workflow %v", pos, wf["version"])
	}
}

// runReadmeLines runs README command lines against app: curl lines with
// bash, `go run ./cmd/orderflow ...` lines through Main.
func runReadmeLines(t *testing.T, app *App, lines []string) {
	t.Helper()
	tmp := t.TempDir()
	vars := map[string]string{}
	for _, line := range lines {
		// Shell variables the README sets, such as T=$(date ...), are
		// expanded here so that Main sees them too.
		if name, _, ok := strings.Cut(line, "=$(date -u +%Y-%m-%dT%H:%M:%SZ)"); ok && !strings.Contains(name, " ") {
			vars["$"+name] = time.Now().UTC().Add(time.Second).Format(time.RFC3339)
			continue
		}
		for k, v := range vars {
			line = strings.ReplaceAll(line, k, v)
		}
		if rest, ok := strings.CutPrefix(line, "go run ./cmd/orderflow "); ok {
			if i := strings.Index(rest, "  #"); i >= 0 {
				rest = rest[:i]
			}
			rest = strings.ReplaceAll(rest, "/tmp/", tmp+"/")
			var out, errOut strings.Builder
			env := func(k string) (string, bool) {
				switch k {
				case "ORDERFLOW_SERVER":
					return "http://" + app.HTTPAddr(), true
				case "ORDERFLOW_NATS_URL":
					return app.NATSURL(), true
				}
				return "", false
			}
			if code := Main(context.Background(), strings.Fields(rest), &out, &errOut, env); code != 0 {
				t.Fatalf("%s: exit %d\n%s%s", line, code, out.String(), errOut.String())
			}
			continue
		}
		cmd := strings.ReplaceAll(line, "localhost:8080", app.HTTPAddr())
		cmd = strings.ReplaceAll(cmd, "/tmp/", tmp+"/")
		out, err := exec.Command("bash", "-c", cmd+" --fail-with-body").CombinedOutput()
		if err != nil {
			t.Fatalf("%s\n%v\n%s", line, err, out)
		}
	}
}

// The README's configuration section names the variable of every flag of
// serve.
func TestReadmeNamesEveryVariable(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, _ := strings.Cut(string(b), "\n## Configuration\n")
	section, _, _ = strings.Cut(section, "\n## ")
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	cfg := DefaultConfig()
	cfg.RegisterFlags(fs)
	fs.VisitAll(func(f *flag.Flag) {
		if !strings.Contains(section, "`"+EnvName(f.Name)+"`") {
			t.Errorf("the README's configuration section does not name %s (--%s)", EnvName(f.Name), f.Name)
		}
	})
}

package main

import (
	"flag"
	"io"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

type composeFile struct {
	Services map[string]struct {
		Image   string   `yaml:"image"`
		Build   string   `yaml:"build"`
		Command []string `yaml:"command"`
	} `yaml:"services"`
}

// flagValue returns the value after name in args ("" when absent).
func flagValue(args []string, name string) string {
	for i, a := range args {
		if a == name && i+1 < len(args) {
			return args[i+1]
		}
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v
		}
	}
	return ""
}

// The compose file's orderflow command lines parse with the real flag set
// and point at the cluster's nodes; the NATS nodes' routes are consistent.
func TestComposeFile(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("../../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var cf composeFile
	if err := yaml.Unmarshal(b, &cf); err != nil {
		t.Fatal(err)
	}
	nats := map[string][]string{} // service → command
	var orderflows []string
	for name, svc := range cf.Services {
		switch {
		case strings.HasPrefix(svc.Image, "nats:"):
			nats[name] = svc.Command
		case svc.Build != "":
			orderflows = append(orderflows, name)
		default:
			t.Fatalf("service %s is neither NATS nor orderflow", name)
		}
	}
	if len(nats) != 3 || len(orderflows) != 2 {
		t.Fatalf("%d NATS nodes and %d orderflow replicas, want 3 and 2", len(nats), len(orderflows))
	}
	// NATS: one cluster name, unique server names, every node routes to
	// every other node's cluster port, JetStream on.
	clusterPort := map[string]string{}
	for name, cmd := range nats {
		u, err := url.Parse(flagValue(cmd, "--cluster"))
		if err != nil || u.Port() == "" {
			t.Fatalf("%s: --cluster %q", name, flagValue(cmd, "--cluster"))
		}
		clusterPort[name] = u.Port()
		if flagValue(cmd, "--cluster_name") != "orderflow" || flagValue(cmd, "--name") != name || !slices.Contains(cmd, "--jetstream") {
			t.Fatalf("%s: %v", name, cmd)
		}
	}
	for name, cmd := range nats {
		var routed []string
		for _, r := range strings.Split(flagValue(cmd, "--routes"), ",") {
			u, err := url.Parse(r)
			if err != nil {
				t.Fatalf("%s: route %q: %v", name, r, err)
			}
			if _, ok := nats[u.Hostname()]; !ok || u.Port() != clusterPort[u.Hostname()] {
				t.Fatalf("%s routes to %s, which is no node's cluster address", name, r)
			}
			routed = append(routed, u.Hostname())
		}
		for other := range nats {
			if other != name && !slices.Contains(routed, other) {
				t.Fatalf("%s does not route to %s", name, other)
			}
		}
	}
	// orderflow: the real serve flags accept the command line; it uses the
	// cluster with 3 replicas; both replicas agree on the lanes.
	lanes := map[int]bool{}
	for _, name := range orderflows {
		cmd := cf.Services[name].Command
		if len(cmd) == 0 || cmd[0] != "serve" {
			t.Fatalf("%s: command %v", name, cmd)
		}
		cfg := DefaultConfig()
		fs := flag.NewFlagSet("serve", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		cfg.RegisterFlags(fs)
		if err := parseFlags(fs, cmd[1:], func(string) (string, bool) { return "", false }); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if cfg.Replicas != 3 {
			t.Fatalf("%s: replicas %d", name, cfg.Replicas)
		}
		lanes[cfg.Lanes] = true
		var hosts []string
		for _, s := range strings.Split(cfg.NATSURL, ",") {
			u, err := url.Parse(s)
			if err != nil || u.Port() != "4222" {
				t.Fatalf("%s: nats url %q", name, s)
			}
			if _, ok := nats[u.Hostname()]; !ok {
				t.Fatalf("%s points at %s, not a cluster node", name, u.Hostname())
			}
			hosts = append(hosts, u.Hostname())
		}
		slices.Sort(hosts)
		if len(slices.Compact(hosts)) != 3 {
			t.Fatalf("%s does not use all three nodes: %v", name, hosts)
		}
	}
	if len(lanes) != 1 {
		t.Fatalf("replicas disagree on --lanes: %v", lanes)
	}
}

// Command orderflow runs the orderflow order-progression backend and talks
// to a running one. `orderflow serve` runs everything in one process; the
// other subcommands are clients of a running server.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(Main(ctx, os.Args[1:], os.Stdout, os.Stderr, os.LookupEnv))
}

const usage = `orderflow: event-sourced order progression on NATS JetStream

Usage:
  orderflow serve [flags]                  run orderflow (embedded JetStream unless --nats-url)
  orderflow trigger [flags] ORDER TRIGGER  apply a worker's trigger to an order (client of a running server)
  orderflow order show [flags] ORDER       show an order's current step (client of a running server)
  orderflow order list [flags]             list orders and where they stand, by status, state, workflow or type (client of a running server)
  orderflow order history ORDER            print an order's events as a timeline (client of a running server)
  orderflow board [--workflow ID]          orders per workflow and status, oldest entry, average stay (client of a running server)
  orderflow events [--order ID]            follow order events as they are stored, a line each (client of a running server)
  orderflow order place [flags] TYPE       place an order of an order type, safe to send again (client of a running server)
  orderflow order hold|resume|cancel ORDER a supervisor's action, with --reason; safe to send again (client of a running server)
  orderflow order move --workflow ID --step N --reason R ORDER
                                           put an order at a step of its route; safe to send again (client of a running server)
  orderflow order migrate --workflow ID [ORDER...]
                                           move a workflow's in-flight orders (or those named) to its latest version (client of a running server)
  orderflow definitions show               print the statuses, triggers, workflows and order types as one JSON document (client of a running server)
  orderflow definitions apply --file F     add and change definitions to match such a document; --dry-run to see how (client of a running server)
  orderflow status                         how a running orderflow stands: readiness, streams, storage, read models, lanes, latencies; exit 1 on trouble
  orderflow projections rebuild [flags]    rebuild the read models from the streams (client of a running server)
  orderflow audit order|workflow|ordertype ID
                                           print an order's, a workflow's or an order type's history as a timeline
  orderflow audit definitions              print every change to the statuses, triggers, workflows and order types as one timeline
  orderflow replay --until T [--out F]     rebuild the read models as they were at T, print the board
  orderflow verify [--triggers]            check every aggregate's hash chain (and account for every stored trigger); exit 1 on a fault
  orderflow export [--out F]               write every stored message as JSON Lines
  orderflow deadletters [retry SEQ...]     list the triggers put aside as unprocessable, or publish them again
  orderflow import --data-dir D --in F     load an export into an empty store
  orderflow bench [flags]                  measure orderflow against raw JetStream on this machine
  orderflow apikey --name N --role R       make an HTTP API key for 'serve --api-keys' (prints its token once)
  orderflow apikey list|revoke             show the keys of a keys file, or take one back
  orderflow openapi                        print the HTTP API's OpenAPI document (as GET /openapi.json), for generating clients

Run 'orderflow serve -h' for the flags. Every flag also reads ORDERFLOW_<FLAG>.
`

// Main runs one subcommand and returns the process exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer, env func(string) (string, bool)) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "serve":
		err = serve(ctx, args[1:], stderr, env)
	case "trigger":
		err = triggerCmd(ctx, args[1:], stdout, stderr, env)
	case "order":
		err = orderCmd(ctx, args[1:], stdout, stderr, env)
	case "board":
		err = boardCmd(ctx, args[1:], stdout, stderr, env)
	case "events":
		err = eventsCmd(ctx, args[1:], stdout, stderr, env)
	case "status":
		err = statusCmd(ctx, args[1:], stdout, stderr, env)
	case "definitions":
		err = definitionsCmd(ctx, args[1:], stdout, stderr, env)
	case "projections":
		err = projectionsCmd(ctx, args[1:], stdout, stderr, env)
	case "audit":
		err = auditCmd(ctx, args[1:], stdout, stderr, env)
	case "replay":
		err = replayCmd(ctx, args[1:], stdout, stderr, env)
	case "verify":
		err = verifyCmd(ctx, args[1:], stdout, stderr, env)
	case "export":
		err = exportCmd(ctx, args[1:], stdout, stderr, env)
	case "import":
		err = importCmd(ctx, args[1:], stdout, stderr, env)
	case "deadletters":
		err = deadLettersCmd(ctx, args[1:], stdout, stderr, env)
	case "bench":
		err = benchCmd(ctx, args[1:], stdout, stderr, env)
	case "apikey":
		err = apiKeyCmd(ctx, args[1:], stdout, stderr, env)
	case "openapi":
		err = openAPICmd(args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "orderflow: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	default:
		fmt.Fprintf(stderr, "orderflow %s: %v\n", commandName(args), err)
		return 1
	}
}

// subcommands are the words after a command that name what it does
// (order move, apikey list), for the name an error is reported under.
var subcommands = map[string][]string{
	"order":       {"show", "list", "history", "place", "hold", "resume", "cancel", "move", "migrate"},
	"definitions": {"show", "apply"},
	"projections": {"rebuild"},
	"audit":       {"order", "workflow", "ordertype", "definitions"},
	"apikey":      {"list", "revoke"},
	"deadletters": {"retry"},
}

// commandName is the command args run, with its subcommand when it has
// one: "order move", not "order".
func commandName(args []string) string {
	if len(args) > 1 && slices.Contains(subcommands[args[0]], args[1]) {
		return args[0] + " " + args[1]
	}
	return args[0]
}

func serve(ctx context.Context, args []string, stderr io.Writer, env func(string) (string, bool)) error {
	cfg := DefaultConfig()
	fs := commandFlags("serve", "Usage: orderflow serve [flags]\n\n"+
		"Run orderflow: the HTTP API, the trigger processor and the read models, on an embedded JetStream server unless --nats-url names a cluster.", stderr)
	cfg.RegisterFlags(fs)
	if err := parseFlags(fs, args, env); err != nil {
		return err
	}
	if err := noArguments(fs); err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	logger := newLogger(stderr, cfg.LogFormat, cfg.LogLevel)

	// SIGHUP reloads the API keys and the TLS certificate; caught from
	// before the start, so one sent once the API answers cannot end the
	// process.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	app := NewApp(cfg, logger)
	if err := app.Run(ctx); err != nil {
		return err
	}
	for {
		select {
		case <-hup:
			if err := app.Reload(); err != nil {
				logger.Error("not all reloaded; what could not be read stays as it was", "err", err)
			}
		case <-ctx.Done():
			logger.Info("shutting down")
			return app.Close()
		}
	}
}

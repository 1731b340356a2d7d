package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/handlers"
)

// deadLettersCmd lists the triggers the processor put aside
// (`deadletters`), or publishes some of them again (`deadletters retry
// SEQ...`) once what they lacked is there.
func deadLettersCmd(ctx context.Context, args []string, stdout, stderr io.Writer, env func(string) (string, bool)) error {
	retry := len(args) > 0 && args[0] == "retry"
	if retry {
		args = args[1:]
	}
	var after *uint64
	var limit *int
	var tenant, order *string
	var asJSON *bool
	name := "deadletters"
	if retry {
		name = "deadletters retry"
	}
	arguments := func(fs *flag.FlagSet) error {
		switch {
		case !retry && fs.NArg() > 0:
			return fmt.Errorf("unexpected %q (to publish dead letters again: deadletters retry SEQ...)", fs.Arg(0))
		case retry && fs.NArg() == 0:
			return errors.New("name the dead letters' sequences (see `orderflow deadletters`)")
		case !retry && *limit < 1:
			return fmt.Errorf("--limit %d: want 1 or more", *limit)
		}
		return nil
	}
	fs, st, done, err := storeCommand(ctx, name, args, stderr, env, false, arguments, func(fs *flag.FlagSet) {
		if !retry {
			after = fs.Uint64("after", 0, "list the dead letters after this sequence")
			limit = fs.Int("limit", 100, "list at most this many")
			tenant = fs.String("tenant", "", "list only this tenant's (empty: every tenant's; \""+eventstore.DefaultTenant+"\" with --order)")
			order = fs.String("order", "", "list only this order's (its id as the trigger's subject spells it)")
			asJSON = fs.Bool("json", false, "print JSON Lines, a dead letter an object, for scripts")
		}
	})
	if err != nil {
		return err
	}
	defer done()
	if !retry {
		q := handlers.DeadLetterQuery{Tenant: *tenant, OrderID: *order, After: *after, Limit: *limit}
		again := "orderflow deadletters" // the command that lists the next page
		// Compared as they are, not made into a subject: an order id no
		// subject may hold is how a poison trigger is found.
		if q.OrderID != "" {
			if q.Tenant == "" {
				q.Tenant = eventstore.DefaultTenant
			}
			again += " --order " + shellWord(q.OrderID)
		}
		if q.Tenant != "" {
			again += " --tenant " + shellWord(q.Tenant)
		}
		if *asJSON {
			again += " --json"
		}
		dls, err := handlers.ReadDeadLetters(ctx, st, q)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		enc := json.NewEncoder(stdout)
		enc.SetEscapeHTML(false)
		if !*asJSON {
			fmt.Fprintln(tw, "SEQ\tTIME\tTENANT\tORDER\tTRIGGER\tTRIGGER ID\tANSWERED\tREASON")
		}
		// Whether each order has answered its trigger since (a dead
		// letter retried, or sent again, needs nothing more): an order
		// read each, deadLetterLookups at a time.
		type answer struct {
			answered string
			err      error
		}
		lookups, stop := context.WithCancel(ctx)
		defer stop()
		var failed error
		eachInOrder(lookups, dls, deadLetterLookups, func(dl handlers.DeadLetter) answer {
			answered, err := handlers.AnsweredBy(lookups, st, dl)
			return answer{answered, err}
		}, func(i int, a answer) {
			if failed != nil {
				return
			}
			if failed = cmp.Or(a.err, lookups.Err()); failed == nil {
				failed = printDeadLetter(tw, enc, *asJSON, dls[i], a.answered)
			}
			if failed != nil {
				stop()
			}
		})
		if failed != nil {
			return failed
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		if len(dls) == *limit {
			q.After, q.Limit = dls[len(dls)-1].Seq, 1
			if more, err := handlers.ReadDeadLetters(ctx, st, q); err == nil && len(more) > 0 {
				fmt.Fprintf(stderr, "more follow: %s --after %d\n", again, q.After)
			}
		}
		return nil
	}
	var errs []error
	for _, arg := range fs.Args() {
		if err := redrive(ctx, st, arg, stdout); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// printDeadLetter prints a dead letter's line of the listing: a row of
// tw, or with asJSON a JSON object of enc.
func printDeadLetter(tw io.Writer, enc *json.Encoder, asJSON bool, dl handlers.DeadLetter, answered string) error {
	if asJSON {
		return enc.Encode(deadLetterLine{Seq: dl.Seq, Time: dl.Time.UTC(), Tenant: dl.Tenant, OrderID: dl.OrderID,
			Trigger: dl.Trigger, TriggerID: dl.TriggerID, Answered: answered, Reason: dl.Reason})
	}
	_, err := fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", dl.Seq, dl.Time.UTC().Format(time.RFC3339), dash(dl.Tenant), dash(dl.OrderID),
		dash(dl.Trigger), dash(dl.TriggerID), dash(answered), dl.Reason)
	return err
}

// deadLetterLookups is how many orders a listing of dead letters reads at
// once for its ANSWERED column.
const deadLetterLookups = 8

// redrive publishes the dead letter at sequence arg again.
func redrive(ctx context.Context, st *eventstore.Store, arg string, stdout io.Writer) error {
	seq, err := strconv.ParseUint(arg, 10, 64)
	if err != nil || seq == 0 {
		return fmt.Errorf("dead letter %q: not a sequence number", arg)
	}
	dl, err := handlers.ReadDeadLetter(ctx, st, seq)
	if err != nil {
		return err
	}
	ack, err := handlers.Redrive(ctx, st, dl)
	if err != nil {
		return err
	}
	note := ""
	if ack.Duplicate {
		note = " (it was sent again within the duplicate window already: nothing new stored)"
	}
	fmt.Fprintf(stdout, "dead letter %d: trigger %s of order %s (id %s) published again at trigger sequence %d%s\n",
		seq, dl.Trigger, dl.OrderID, dl.TriggerID, ack.Sequence, note)
	return nil
}

// deadLetterLine is a dead letter as deadletters --json prints it.
type deadLetterLine struct {
	Seq       uint64    `json:"seq"`
	Time      time.Time `json:"time"`
	Tenant    string    `json:"tenant"`
	OrderID   string    `json:"order_id"`
	Trigger   string    `json:"trigger"`
	TriggerID string    `json:"trigger_id"`
	Answered  string    `json:"answered"` // the event type of the order's answer since, or ""
	Reason    string    `json:"reason"`
}

// shellWord is s as a shell reads it back: bare when it is a safe token,
// else in single quotes.
func shellWord(s string) string {
	if eventstore.ValidateToken("word", s) == nil {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"text/tabwriter"
	"time"

	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/handlers"
)

// boardCmd: orderflow board [--workflow ID].
func boardCmd(ctx context.Context, args []string, stdout, stderr io.Writer, env func(string) (string, bool)) error {
	fs := commandFlags("board", "Usage: orderflow board [flags]\n\n"+
		"Print the board: per workflow and status, how many orders are there, since when the oldest, how long orders stayed.", stderr)
	server := serverFlags(fs)
	workflow := fs.String("workflow", "", "one workflow's stages only (its id)")
	asJSON := fs.Bool("json", false, "print the answer of GET /v1/board as it is")
	if err := parseFlags(fs, args, env); err != nil {
		return err
	}
	if err := noArguments(fs); err != nil {
		return err
	}
	q := url.Values{}
	if *workflow != "" {
		q.Set("workflow_id", *workflow)
	}
	b, err := apiCall(ctx, server, "GET", pathWith("/v1/board", q), nil)
	if err != nil {
		return err
	}
	if *asJSON {
		return printIndented(stdout, b)
	}
	var res struct {
		Items []handlers.BoardItem `json:"items"`
	}
	if err := json.Unmarshal(b, &res); err != nil {
		return err
	}
	return printBoard(stdout, res.Items)
}

// orderListCmd: orderflow order list [filters].
func orderListCmd(ctx context.Context, args []string, stdout, stderr io.Writer, env func(string) (string, bool)) error {
	fs := commandFlags("order list", "Usage: orderflow order list [flags]\n\n"+
		"List orders with where each stands (GET /v1/orders): all of them, or those the flags name; by id, or with --oldest those longest in their stage first.", stderr)
	server := serverFlags(fs)
	status := fs.String("status", "", "only orders at this status (its key)")
	state := fs.String("state", "", "only orders in this state: active, on_hold, completed or cancelled")
	workflow := fs.String("workflow", "", "only orders inside this workflow (its id)")
	orderType := fs.String("type", "", "only orders of this order type (its id)")
	oldest := fs.Bool("oldest", false, "those longest in their current stage first (else by id)")
	limit := fs.Int("limit", 50, "list at most this many (at most 500)")
	cursor := fs.String("cursor", "", "list from where an earlier page ended (what it said to send)")
	asJSON := fs.Bool("json", false, "print the answer of GET /v1/orders as it is")
	if err := parseFlags(fs, args, env); err != nil {
		return err
	}
	if err := noArguments(fs); err != nil {
		return err
	}
	q := url.Values{}
	again := "orderflow order list" // the command that lists the next page
	for _, f := range []struct{ param, flag, value string }{
		{"status", "status", *status}, {"state", "state", *state}, {"workflow_id", "workflow", *workflow}, {"order_type_id", "type", *orderType},
	} {
		if f.value != "" {
			q.Set(f.param, f.value)
			again += " --" + f.flag + " " + shellWord(f.value)
		}
	}
	if *oldest {
		q.Set("sort", "entered_at")
		again += " --oldest"
	}
	q.Set("limit", fmt.Sprint(*limit))
	if *limit != 50 {
		again += fmt.Sprintf(" --limit %d", *limit)
	}
	if *asJSON {
		again += " --json"
	}
	if *cursor != "" {
		q.Set("cursor", *cursor)
	}
	b, err := apiCall(ctx, server, "GET", pathWith("/v1/orders", q), nil)
	if err != nil {
		return err
	}
	var res struct {
		Items      []handlers.OrderJSON `json:"items"`
		NextCursor string               `json:"next_cursor"`
	}
	if err := json.Unmarshal(b, &res); err != nil {
		return err
	}
	if *asJSON {
		if err := printIndented(stdout, b); err != nil {
			return err
		}
	} else {
		tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ORDER\tTYPE\tSTATE\tSTATUS\tWORKFLOW\tSINCE\tWAITING FOR")
		for _, o := range res.Items {
			p := o.Position
			waiting := "-"
			if p.ExpectedTrigger != nil {
				waiting = *p.ExpectedTrigger
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s v%d, step %d\t%s\t%s\n", o.ID, o.OrderTypeID, o.State, cmp.Or(p.StatusName, p.Status),
				dash(p.WorkflowName), p.WorkflowVersion, p.Step, p.EnteredAt.Format(time.RFC3339), waiting)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		if len(res.Items) == 0 {
			fmt.Fprintln(stderr, "no orders match")
		}
	}
	if res.NextCursor != "" {
		fmt.Fprintf(stderr, "more follow: %s --cursor %s\n", again, res.NextCursor)
	}
	return nil
}

// orderHistoryCmd: orderflow order history ORDER.
func orderHistoryCmd(ctx context.Context, args []string, stdout, stderr io.Writer, env func(string) (string, bool)) error {
	fs := commandFlags("order history", "Usage: orderflow order history [flags] ORDER\n\n"+
		"Print an order's events as a timeline, oldest first (GET /v1/orders/{id}/history), statuses by their names now.", stderr)
	server := serverFlags(fs)
	asJSON := fs.Bool("json", false, "print each event's envelope as JSON, a line each")
	if err := parseFlags(fs, args, env); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("want one ORDER")
	}
	path := "/v1/orders/" + url.PathEscape(fs.Arg(0)) + "/history"
	var events []json.RawMessage
	for cursor := ""; ; { // a page at a time, as a long history is best read
		q := url.Values{"limit": {"500"}}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		b, err := apiCall(ctx, server, "GET", pathWith(path, q), nil)
		if err != nil {
			return err
		}
		var page struct {
			Events     []json.RawMessage `json:"events"`
			NextCursor string            `json:"next_cursor"`
		}
		if err := json.Unmarshal(b, &page); err != nil {
			return err
		}
		events = append(events, page.Events...)
		if cursor = page.NextCursor; cursor == "" || len(page.Events) == 0 {
			break
		}
	}
	if *asJSON {
		for _, raw := range events {
			if _, err := fmt.Fprintf(stdout, "%s\n", raw); err != nil {
				return err
			}
		}
		return nil
	}
	statusName := statusNames(ctx, server)
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, timelineHeader)
	for _, raw := range events {
		var env eventstore.Envelope
		if err := json.Unmarshal(raw, &env); err != nil {
			return err
		}
		timelineRow(tw, env, envelopeWhat(env, statusName))
	}
	return tw.Flush()
}

// pathWith is path with the query q, if any.
func pathWith(path string, q url.Values) string {
	if len(q) == 0 {
		return path
	}
	return path + "?" + q.Encode()
}

// printIndented prints a JSON answer indented, as the API sent it.
func printIndented(w io.Writer, b []byte) error {
	var out bytes.Buffer
	if err := json.Indent(&out, b, "", "  "); err != nil {
		return err
	}
	_, err := fmt.Fprintln(w, out.String())
	return err
}

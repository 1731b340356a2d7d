package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/google/uuid"
)

// orderMigrateCmd: orderflow order migrate --workflow ID [--to-version N] [ORDER...].
// It moves every in-flight order (active or on hold; or each ORDER named)
// that runs an older version of the workflow to the newer one, one POST
// /v1/orders/{id}/migrate each, --parallel at a time, and reports the
// orders that could not move (their status is no step of the new
// version, say), which a supervisor then moves by hand.
func orderMigrateCmd(ctx context.Context, args []string, stdout, stderr io.Writer, env func(string) (string, bool)) error {
	fs := commandFlags("order migrate", "Usage: orderflow order migrate [flags] --workflow ID [ORDER...]\n\n"+
		"Move every active or held order inside the workflow to a newer version of it, or only the ORDERs named.", stderr)
	server := serverFlags(fs)
	actorFlag(fs, server)
	workflow := fs.String("workflow", "", "the workflow whose orders move (required)")
	toVersion := fs.Uint64("to-version", 0, "the version they move to; 0: the workflow's latest")
	reason := fs.String("reason", "", `recorded on each OrderMigrated (default "migrated to version N")`)
	dryRun := fs.Bool("dry-run", false, "list the orders that would move, and move none")
	parallel := fs.Int("parallel", 8, fmt.Sprintf("orders moved at once (1 to %d)", maxMigrateParallel))
	if err := parseFlags(fs, args, env); err != nil {
		return err
	}
	if *workflow == "" {
		fs.Usage()
		return errors.New("want --workflow ID")
	}
	if *parallel < 1 || *parallel > maxMigrateParallel {
		return fmt.Errorf("--parallel %d: want 1 to %d", *parallel, maxMigrateParallel)
	}
	to := *toVersion
	if to == 0 {
		b, err := apiCall(ctx, server, "GET", "/v1/workflows/"+url.PathEscape(*workflow), nil)
		if err != nil {
			return err
		}
		var w struct {
			Version uint64 `json:"version"`
		}
		if err := json.Unmarshal(b, &w); err != nil {
			return err
		}
		to = w.Version
	}
	orders, err := ordersBelow(ctx, server, *workflow, to)
	if err != nil {
		return err
	}
	if fs.NArg() > 0 {
		if orders, err = onlyNamed(orders, fs.Args()); err != nil {
			return fmt.Errorf("%w: not in flight inside a version of workflow %s before %d", err, *workflow, to)
		}
	}
	if *dryRun {
		for _, o := range orders {
			fmt.Fprintf(stdout, "would migrate %s: %s, version %d, at %s\n", o.ID, o.State, o.Position.WorkflowVersion, o.Position.Status)
		}
		fmt.Fprintf(stdout, "%d orders of workflow %s would move to version %d\n", len(orders), *workflow, to)
		return nil
	}
	failed, moved := migrateEach(ctx, orders, *parallel, func(o orderRow) migrateOutcome {
		return migrateOne(ctx, server, o, *workflow, to, *reason)
	}, stdout)
	if ctx.Err() != nil {
		return fmt.Errorf("%d of %d orders migrated, then: %w", moved, len(orders), ctx.Err())
	}
	fmt.Fprintf(stdout, "migrated %d of %d orders of workflow %s to version %d\n", moved, len(orders), *workflow, to)
	if failed > 0 {
		return fmt.Errorf("%d of %d orders not migrated (see above): move each to a step whose status version %d has (orderflow order move --workflow %s --step N --reason R ORDER), then run this again",
			failed, len(orders), to, *workflow)
	}
	return nil
}

// maxMigrateParallel bounds order migrate's --parallel: each move is a
// request the server answers after its append, so more than a few dozen
// at once only queue there.
const maxMigrateParallel = 64

// migrateOutcome is what became of one order: moved, left alone (it
// moved on meanwhile) or failed, and the line printed for it ("" for
// one moved).
type migrateOutcome struct {
	moved, failed bool
	line          string
}

// migrateEach runs move for each order, up to parallel at once, and
// prints each order's line in the order the orders were listed, as soon
// as it and those before it are done. Once ctx ends no more orders are
// tried.
func migrateEach(ctx context.Context, orders []orderRow, parallel int, move func(orderRow) migrateOutcome, stdout io.Writer) (failed, moved int) {
	eachInOrder(ctx, orders, parallel, move, func(_ int, o migrateOutcome) {
		if o.line != "" {
			fmt.Fprintln(stdout, o.line)
		}
		if o.moved {
			moved++
		}
		if o.failed {
			failed++
		}
	})
	return failed, moved
}

// eachInOrder calls work for each item, up to parallel at once, and then
// took with each result in the items' order, as soon as it and those
// before it are in; took runs on the caller's goroutine. Once ctx ends no
// more items are begun: theirs is the zero R.
func eachInOrder[T, R any](ctx context.Context, items []T, parallel int, work func(T) R, took func(int, R)) {
	results := make([]R, len(items))
	done := make([]chan struct{}, len(items))
	next := make(chan int, len(items))
	for i := range items {
		done[i] = make(chan struct{})
		next <- i
	}
	close(next)
	for range min(parallel, len(items)) {
		go func() {
			for i := range next {
				if ctx.Err() == nil {
					results[i] = work(items[i])
				}
				close(done[i])
			}
		}()
	}
	for i := range items {
		<-done[i]
		took(i, results[i])
	}
}

// migrateOne moves one order to version to of workflow. The move carries
// a key of its own, so a 503 or a lost answer is sent again and moves the
// order once. A refused move is looked at again: an order that moved on
// since it was listed is left alone.
func migrateOne(ctx context.Context, server *apiServer, o orderRow, workflow string, to uint64, reason string) migrateOutcome {
	_, _, _, err := apiCallRepeatable(ctx, server, "POST", "/v1/orders/"+url.PathEscape(o.ID)+"/migrate",
		map[string]any{"workflow_id": workflow, "to_version": to, "reason": reason},
		http.Header{"Idempotency-Key": {uuid.Must(uuid.NewV7()).String()}})
	switch {
	case err == nil:
		return migrateOutcome{moved: true}
	case ctx.Err() != nil:
		return migrateOutcome{}
	}
	if now, gerr := getOrderRow(ctx, server, o.ID); gerr == nil && !now.waitsFor(workflow, to) {
		return migrateOutcome{line: fmt.Sprintf("%s: left alone, it moved on meanwhile (%s, %s version %d)",
			o.ID, now.State, now.Position.WorkflowID, now.Position.WorkflowVersion)}
	}
	return migrateOutcome{failed: true, line: fmt.Sprintf("%s: not migrated: %v", o.ID, err)}
}

// onlyNamed keeps the orders named by ids, in the order named; an id
// that is not among them is an error (a typo, or an order that need not
// move).
func onlyNamed(orders []orderRow, ids []string) ([]orderRow, error) {
	var named []orderRow
	var missing []string
	seen := map[string]bool{}
	for _, id := range ids {
		if seen[id] {
			continue
		}
		seen[id] = true
		if i := slices.IndexFunc(orders, func(o orderRow) bool { return o.ID == id }); i >= 0 {
			named = append(named, orders[i])
		} else {
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 {
		return nil, errors.New(strings.Join(missing, ", "))
	}
	return named, nil
}

// orderRow is what the migration reads of an order.
type orderRow struct {
	ID       string `json:"id"`
	State    string `json:"state"`
	Position struct {
		WorkflowID      string `json:"workflow_id"`
		WorkflowVersion uint64 `json:"workflow_version"`
		Status          string `json:"status"`
	} `json:"position"`
}

// waitsFor: the order is in flight inside an older version of workflow
// than to.
func (o orderRow) waitsFor(workflow string, to uint64) bool {
	return (o.State == "active" || o.State == "on_hold") && o.Position.WorkflowID == workflow && o.Position.WorkflowVersion < to
}

func getOrderRow(ctx context.Context, server *apiServer, id string) (orderRow, error) {
	var o orderRow
	b, err := apiCall(ctx, server, "GET", "/v1/orders/"+url.PathEscape(id), nil)
	if err == nil {
		err = json.Unmarshal(b, &o)
	}
	return o, err
}

// ordersBelow lists the in-flight orders inside workflow at a version
// below to, a page of the orders list at a time.
func ordersBelow(ctx context.Context, server *apiServer, workflow string, to uint64) ([]orderRow, error) {
	var out []orderRow
	for _, state := range []string{"active", "on_hold"} {
		cursor := ""
		for {
			q := url.Values{"workflow_id": {workflow}, "state": {state}, "limit": {strconv.Itoa(500)}}
			if cursor != "" {
				q.Set("cursor", cursor)
			}
			b, err := apiCall(ctx, server, "GET", "/v1/orders?"+q.Encode(), nil)
			if err != nil {
				return nil, err
			}
			var page struct {
				Items      []orderRow `json:"items"`
				NextCursor string     `json:"next_cursor"`
			}
			if err := json.Unmarshal(b, &page); err != nil {
				return nil, err
			}
			for _, o := range page.Items {
				if o.waitsFor(workflow, to) {
					out = append(out, o)
				}
			}
			if page.NextCursor == "" {
				break
			}
			cursor = page.NextCursor
		}
	}
	return out, nil
}

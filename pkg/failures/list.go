package failures

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/dvrouter/dvrouter/pkg/tables"
)

const (
	DefaultTop = 50   // page size when Query.Top is zero
	MaxTop     = 1000 // largest page size (Table Storage's own page limit)
)

// Query selects failures for List. Empty fields do not filter.
type Query struct {
	Consumer string
	Status   string // a Status
	Kind     string // a Kind
	Table    string
	// EventID, RecordID and CorrelationID find the failures of one event, one record (with
	// Table, since a record id is unique within its table) or one correlation. They match the
	// stored value exactly or in lower case, since Dataverse writes its GUIDs in lower case and
	// people paste them in either.
	EventID, RecordID, CorrelationID string
	// From (inclusive) and To (exclusive) bound OccurredAt, the event's time, at 100 ns
	// resolution.
	From, To time.Time
	// Top is the page size: DefaultTop when zero, at most MaxTop.
	Top int
	// Continuation is Page.Continuation from the previous page of the same query. It is a
	// position (after this row), so it stays meaningful when the filters change.
	Continuation string
}

// Page is one page of failures, newest first, without payloads (Failure.PayloadSize says
// how large each is). Continuation is empty on the last page.
type Page struct {
	Items        []Failure
	Continuation string
}

// continuationPrefix versions the token format.
const continuationPrefix = "c1."

// List returns failures matching q, newest first by OccurredAt.
func (s *Store) List(ctx context.Context, q Query) (Page, error) {
	top := q.Top
	switch {
	case top == 0:
		top = DefaultTop
	case top < 0:
		return Page{}, fmt.Errorf("list: %w: top %d", ErrInvalid, top)
	case top > MaxTop:
		top = MaxTop
	}
	filter, err := listFilter(q)
	if err != nil {
		return Page{}, fmt.Errorf("list: %w", err)
	}
	after, err := parseContinuation(q.Continuation)
	if err != nil {
		return Page{}, fmt.Errorf("list: %w", err)
	}

	// Failures spread evenly over the shards, so each is asked for a fair share first; one
	// that runs dry while it may still hold the next row is asked again, for more each time.
	batch := min(top, (top+shardCount-1)/shardCount+4)
	shards := make([]*shardCursor, shardCount)
	for i := range shards {
		shards[i] = &shardCursor{store: s, pk: partitionKey(i), filter: filter, after: after, next: batch, max: top}
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	items := make([]Failure, 0, top)
	for len(items) < top {
		if err := refill(ctx, shards); errors.Is(err, errNoTable) {
			// The table went away after Open (deleted, or an emulator restarted empty): there
			// are no failures, and the next Record makes it again.
			return Page{}, nil
		} else if err != nil {
			return Page{}, fmt.Errorf("list: %w", callError(ctx, err))
		}
		var best *shardCursor
		for _, c := range shards {
			if len(c.buf) > 0 && (best == nil || c.buf[0].rk < best.buf[0].rk) {
				best = c
			}
		}
		if best == nil {
			return Page{Items: items}, nil // every shard is exhausted
		}
		items = append(items, best.buf[0].f)
		best.buf = best.buf[1:]
	}
	for _, c := range shards {
		if len(c.buf) > 0 || !c.done {
			last, _ := parseID(items[len(items)-1].ID) // ids made by the store parse
			return Page{Items: items, Continuation: continuationPrefix + last.rk}, nil
		}
	}
	return Page{Items: items}, nil
}

// listFilter is the OData filter every shard query shares, without partition and position.
func listFilter(q Query) (string, error) {
	var terms []string
	eq := func(name, v string) {
		if v != "" {
			terms = append(terms, fmt.Sprintf("%s eq '%s'", name, quote(v)))
		}
	}
	// eqID matches an id as given or in lower case.
	eqID := func(name, v string) {
		if lower := strings.ToLower(v); lower != v {
			terms = append(terms, fmt.Sprintf("(%s eq '%s' or %s eq '%s')", name, quote(v), name, quote(lower)))
			return
		}
		eq(name, v)
	}
	if q.RecordID != "" && q.Table == "" {
		return "", fmt.Errorf("%w: record %q without its table", ErrInvalid, q.RecordID)
	}
	switch Status(q.Status) {
	case "", StatusPending, StatusReplayed, StatusDiscarded, StatusReplaying:
	default:
		return "", fmt.Errorf("%w: status %q", ErrInvalid, q.Status)
	}
	switch Kind(q.Kind) {
	case "", KindDelivery, KindBreakerOpen, KindPoison, KindPaused, KindReread:
	default:
		return "", fmt.Errorf("%w: kind %q", ErrInvalid, q.Kind)
	}
	if !q.From.IsZero() && !q.To.IsZero() && !q.To.After(q.From) {
		return "", fmt.Errorf("%w: to %s is not after from %s", ErrInvalid, q.To.Format(time.RFC3339), q.From.Format(time.RFC3339))
	}
	// OccurredAt is inverted in the RowKey: From is an upper bound on the key, To a lower one.
	// Row keys of one instant are "r<digits>-<hash>", and '.' sorts right after '-'.
	upper, lower := rowEnd, rowPrefix
	if !q.From.IsZero() {
		upper = rowPrefix + tables.InvertedTime(normTime(q.From)) + "."
	}
	if !q.To.IsZero() {
		lower = rowPrefix + tables.InvertedTime(normTime(q.To)) + "."
	}
	terms = append(terms, fmt.Sprintf("RowKey gt '%s' and RowKey lt '%s'", lower, upper))
	eq(pConsumer, q.Consumer)
	eq(pStatus, q.Status)
	eq(pKind, q.Kind)
	eq(pTable, q.Table)
	eqID(pEventID, q.EventID)
	eqID(pRecordID, q.RecordID)
	eqID(pCorrelationID, q.CorrelationID)
	return strings.Join(terms, " and "), nil
}

// quote escapes a value for an OData string literal.
func quote(v string) string { return strings.ReplaceAll(v, "'", "''") }

// parseContinuation gives the RowKey a page continues after ("" for the first page).
func parseContinuation(token string) (string, error) {
	if token == "" {
		return "", nil
	}
	rk, ok := strings.CutPrefix(token, continuationPrefix)
	if !ok {
		return "", fmt.Errorf("%w: continuation token", ErrInvalid)
	}
	if _, err := parseID("00-" + strings.TrimPrefix(rk, rowPrefix)); err != nil || !strings.HasPrefix(rk, rowPrefix) {
		return "", fmt.Errorf("%w: continuation token", ErrInvalid)
	}
	return rk, nil
}

// shardCursor reads one partition of a list in RowKey order.
type shardCursor struct {
	store  *Store
	pk     string
	filter string
	after  string // RowKey the next read starts after
	next   int    // rows to ask for on the next read
	max    int
	buf    []listed
	done   bool // the partition has no more matching rows
}

type listed struct {
	rk string
	f  Failure
}

// refill reads more rows, in parallel, for every shard whose buffer ran dry while it may
// still hold rows: any of them could hold the next row in order.
func refill(ctx context.Context, shards []*shardCursor) error {
	var wg sync.WaitGroup
	errs := make([]error, len(shards))
	for i, c := range shards {
		if len(c.buf) > 0 || c.done {
			continue
		}
		wg.Go(func() { errs[i] = c.read(ctx) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func (c *shardCursor) read(ctx context.Context) error {
	filter := fmt.Sprintf("PartitionKey eq '%s' and %s", c.pk, c.filter)
	if c.after != "" {
		filter += fmt.Sprintf(" and RowKey gt '%s'", c.after)
	}
	top := int32(c.next)
	pager := c.store.client.NewListEntitiesPager(&aztables.ListEntitiesOptions{Filter: &filter, Select: &metaSelect, Top: &top})
	// The service may answer a filtered query with short or empty pages and a continuation;
	// follow them until the batch is full or the partition ends.
	for pager.More() && len(c.buf) < c.next {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("query %s: %w", c.pk, storageError(err))
		}
		for _, raw := range page.Entities {
			var e entity
			if err := json.Unmarshal(raw, &e); err != nil {
				return fmt.Errorf("query %s: decode entity: %w", c.pk, err)
			}
			f, err := e.failure()
			if err != nil {
				return fmt.Errorf("query %s: %w", c.pk, err)
			}
			c.buf = append(c.buf, listed{rk: e.RowKey, f: f})
		}
	}
	if len(c.buf) > 0 {
		c.after = c.buf[len(c.buf)-1].rk
	}
	c.done = !pager.More()
	c.next = min(c.next*2, c.max)
	return nil
}

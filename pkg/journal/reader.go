package journal

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/dvrouter/dvrouter/pkg/tables"
)

// ErrInvalid: a lookup the journal cannot answer (the message says why).
var ErrInvalid = errors.New("invalid lookup")

// ErrUnavailable: Table Storage did not answer the lookup.
var ErrUnavailable = errors.New("journal unavailable")

// DefaultLimit and MaxLimit bound how many entries one lookup returns.
const (
	DefaultLimit = 200
	MaxLimit     = 1000
)

// MaxRange is the longest consumer time range one lookup reads: each hour in it is
// consumerShards queries.
const MaxRange = 31 * 24 * time.Hour

// Query is one lookup: exactly one of EventID, Record (Table and RecordID), CorrelationID or
// Consumer. Since and Until narrow any of them; a Consumer lookup needs Since (Until defaults
// to now).
type Query struct {
	EventID       string
	Table         string
	RecordID      string
	CorrelationID string
	Consumer      string
	Since, Until  time.Time
	Limit         int // DefaultLimit when 0, at most MaxLimit
}

// Lookup returns the entries q asks for, newest first.
func (j *Journal) Lookup(ctx context.Context, q Query) ([]Entry, error) {
	n := 0
	for _, set := range []bool{q.EventID != "", q.Table != "" || q.RecordID != "", q.CorrelationID != "", q.Consumer != ""} {
		if set {
			n++
		}
	}
	if n != 1 {
		return nil, fmt.Errorf("%w: give exactly one of event id, record (table and id), correlation id, consumer", ErrInvalid)
	}
	if (q.Table == "") != (q.RecordID == "") {
		return nil, fmt.Errorf("%w: a record lookup needs both the table and the record id", ErrInvalid)
	}
	limit := q.Limit
	if limit <= 0 {
		limit = DefaultLimit
	}
	limit = min(limit, MaxLimit)
	if !q.Since.IsZero() && !q.Until.IsZero() && q.Until.Before(q.Since) {
		return nil, fmt.Errorf("%w: until is before since", ErrInvalid)
	}
	ctx, cancel := context.WithTimeout(ctx, j.cfg.CallTimeout)
	defer cancel()
	if q.Consumer == "" {
		var pk, prefix string
		switch {
		case q.EventID != "":
			pk, prefix = eventKeys(q.EventID)
		case q.RecordID != "":
			pk, prefix = recordKeys(q.Table, q.RecordID)
		default:
			pk, prefix = correlationKeys(q.CorrelationID)
		}
		return j.queryIndex(ctx, pk, prefix+"|", q.Since, q.Until, limit)
	}
	if q.Since.IsZero() {
		return nil, fmt.Errorf("%w: a consumer lookup needs a start time (since)", ErrInvalid)
	}
	until := q.Until
	if until.IsZero() {
		until = time.Now()
	}
	if until.Sub(q.Since) > MaxRange {
		return nil, fmt.Errorf("%w: a consumer lookup covers at most %d days", ErrInvalid, int(MaxRange/(24*time.Hour)))
	}
	var out []Entry
	// Hours newest first; stop once an hour fills the limit, since older hours sort after it.
	for h := until.UTC().Truncate(time.Hour); !h.Before(q.Since.UTC().Truncate(time.Hour)); h = h.Add(-time.Hour) {
		var hour []Entry
		for s := range consumerShards {
			es, err := j.queryPartition(ctx, consumerPartition(escape(q.Consumer), h, s), "", q.Since, until, limit)
			if err != nil {
				return nil, err
			}
			hour = append(hour, es...)
		}
		sortNewestFirst(hour)
		out = append(out, hour...)
		if len(out) >= limit {
			return out[:limit], nil
		}
	}
	return out, nil
}

func sortNewestFirst(es []Entry) {
	sort.SliceStable(es, func(a, b int) bool { return es[a].At.After(es[b].At) })
}

// readConcurrency bounds the row reads of one index lookup in flight at once.
const readConcurrency = 8

// queryIndex reads the index rows of one partition whose RowKey starts with prefix, newest
// first, within [since, until] when set, then the rows they name, in the same order. A row
// that is missing (its write was lost, or retention took it first) is left out.
func (j *Journal) queryIndex(ctx context.Context, pk, prefix string, since, until time.Time, limit int) ([]Entry, error) {
	var keys []indexRow
	sel := "PartitionKey,RowKey"
	err := j.query(ctx, pk, prefix, since, until, limit, &sel, func(raw []byte) bool {
		var x indexRow
		if json.Unmarshal(raw, &x) != nil || !strings.HasPrefix(x.RowKey, prefix) {
			return true // not ours to trust; skip what does not decode
		}
		x.PartitionKey, x.RowKey = rowKeys(x.RowKey[len(prefix):])
		keys = append(keys, x)
		return len(keys) < limit
	})
	if err != nil || len(keys) == 0 {
		return nil, err
	}
	found := make([]*Entry, len(keys))
	errs := make([]error, len(keys))
	var wg sync.WaitGroup
	slots := make(chan struct{}, readConcurrency)
	for i, k := range keys {
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			resp, err := j.client.GetEntity(ctx, k.PartitionKey, k.RowKey, nil)
			switch {
			case isCode(err, aztables.ResourceNotFound):
			case err != nil:
				errs[i] = fmt.Errorf("%w: %v", ErrUnavailable, err)
			default:
				var x entity
				if json.Unmarshal(resp.Value, &x) == nil {
					e := x.entry()
					found[i] = &e
				}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	out := make([]Entry, 0, len(keys))
	for _, e := range found {
		if e != nil {
			out = append(out, *e)
		}
	}
	return out, nil
}

// queryPartition reads the rows of one partition whose RowKey starts with prefix, newest
// first, within [since, until] when set.
func (j *Journal) queryPartition(ctx context.Context, pk, prefix string, since, until time.Time, limit int) ([]Entry, error) {
	var out []Entry
	err := j.query(ctx, pk, prefix, since, until, limit, nil, func(raw []byte) bool {
		var x entity
		if err := json.Unmarshal(raw, &x); err != nil {
			return true // not ours to trust; skip what does not decode
		}
		out = append(out, x.entry())
		return len(out) < limit
	})
	return out, err
}

// query hands each entity of partition pk whose RowKey starts with prefix, within [since,
// until] when set, newest first, to each until it says stop. A missing table is no entities.
func (j *Journal) query(ctx context.Context, pk, prefix string, since, until time.Time, limit int, sel *string, each func(raw []byte) bool) error {
	filter := "PartitionKey eq '" + odataQuote(pk) + "'"
	// Inverted times: a later until is a smaller RowKey. "~" sorts after every key character
	// that follows a time ("|" and digits), so it closes the range.
	lo, hi := prefix, prefix+"~"
	if !until.IsZero() {
		lo = prefix + tables.InvertedTime(until)
	}
	if !since.IsZero() {
		hi = prefix + tables.InvertedTime(since) + "~"
	}
	filter += " and RowKey ge '" + odataQuote(lo) + "' and RowKey lt '" + odataQuote(hi) + "'"
	top := int32(min(limit, 1000))
	pager := j.client.NewListEntitiesPager(&aztables.ListEntitiesOptions{Filter: &filter, Top: &top, Select: sel})
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			if isCode(err, aztables.TableNotFound) {
				return nil // nothing journaled yet
			}
			return fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
		for _, raw := range page.Entities {
			if !each(raw) {
				return nil
			}
		}
	}
	return nil
}

func odataQuote(s string) string { return strings.ReplaceAll(s, "'", "''") }

package breaker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/dvrouter/dvrouter/pkg/tables"
	"github.com/sony/gobreaker/v2"
)

// StoreConfig says where the breaker table is: the account of the failure store, a table of its
// own.
type StoreConfig struct {
	ConnectionString string // when set, ServiceURI and ClientID are ignored
	ServiceURI       string // https://ACCOUNT.table.core.windows.net, reached with managed identity
	ClientID         string // user-assigned identity; empty: DefaultAzureCredential
	Table            string
}

// Store keeps one entity per consumer (PartitionKey the consumer's name, RowKey "state"), so
// that consumers never contend for a partition. The entity holds the breaker's state and the
// operator's pause (Paused, PausedBy, PausedAt, PauseReason), read by the same sync.
type Store struct {
	client *aztables.Client
	table  string
}

const rowKey = "state"

// maxConflicts bounds the read-modify-write retries of one update when other instances keep
// winning the race.
const maxConflicts = 8

// OpenStore prepares the client of the breaker table. It makes no call: the first Sync creates
// the table if it is missing, and so does any later one that finds it gone (deleted, or an
// emulator restarted empty).
func OpenStore(cfg StoreConfig) (*Store, error) {
	if cfg.Table == "" {
		return nil, errors.New("breaker store: no table name")
	}
	// One retry at most: a breaker store that does not answer promptly is treated as unreachable
	// (each instance then uses its own breaker), which is better than a sync that lags.
	opts := &aztables.ClientOptions{ClientOptions: azcore.ClientOptions{
		Retry: policy.RetryOptions{MaxRetries: 1, RetryDelay: 100 * time.Millisecond, MaxRetryDelay: 500 * time.Millisecond, TryTimeout: 5 * time.Second},
	}}
	acct := tables.Account{ConnectionString: cfg.ConnectionString, ServiceURI: cfg.ServiceURI, ClientID: cfg.ClientID}
	svc, err := acct.Service(opts)
	if err != nil {
		return nil, fmt.Errorf("breaker store: %w", err)
	}
	return &Store{client: svc.NewClient(cfg.Table), table: cfg.Table}, nil
}

// update reads consumer's state (or starts from start, read moments ago), lets change modify it,
// and writes it back if change says so, guarded by the ETag it read: when another instance
// wrote in between, it reads again and calls change again. It returns the state as stored.
func (s *Store) update(ctx context.Context, consumer string, start *record, change func(r *record, now time.Time) bool) (record, error) {
	var r record
	var err error
	if start != nil {
		r = *start
	} else if r, err = s.get(ctx, consumer); err != nil {
		return record{}, err
	}
	for range maxConflicts {
		if !change(&r, time.Now()) {
			return r, nil
		}
		etag, err := s.put(ctx, consumer, r)
		if err == nil {
			r.etag = etag
			return r, nil
		}
		if !hasStatus(err, http.StatusPreconditionFailed) && !hasStatus(err, http.StatusConflict) {
			return record{}, fmt.Errorf("write breaker state of %s: %w", consumer, err)
		}
		if r, err = s.get(ctx, consumer); err != nil {
			return record{}, err
		}
	}
	return record{}, fmt.Errorf("write breaker state of %s: %d other writers won in a row", consumer, maxConflicts)
}

// get reads one consumer's state; a consumer never stored yet is closed with no counts.
func (s *Store) get(ctx context.Context, consumer string) (record, error) {
	resp, err := s.client.GetEntity(ctx, consumer, rowKey, nil)
	if hasStatus(err, http.StatusNotFound) {
		return record{}, nil
	}
	if err != nil {
		return record{}, fmt.Errorf("read breaker state of %s: %w", consumer, err)
	}
	var e aztables.EDMEntity
	if err := json.Unmarshal(resp.Value, &e); err != nil {
		return record{}, fmt.Errorf("read breaker state of %s: %w", consumer, err)
	}
	r, err := fromEntity(e)
	if err != nil {
		return record{}, fmt.Errorf("read breaker state of %s: %w", consumer, err)
	}
	r.etag = string(resp.ETag)
	return r, nil
}

// list reads every consumer's state in one query (the table holds a row per consumer, no more),
// creating the table when it is missing.
func (s *Store) list(ctx context.Context) (map[string]record, error) {
	out, err := s.listOnce(ctx)
	if hasStatus(err, http.StatusNotFound) {
		if _, cerr := s.client.CreateTable(ctx, nil); cerr != nil && !hasStatus(cerr, http.StatusConflict) {
			return nil, fmt.Errorf("create breaker table %s: %w", s.table, cerr)
		}
		out, err = s.listOnce(ctx)
	}
	return out, err
}

func (s *Store) listOnce(ctx context.Context) (map[string]record, error) {
	out := map[string]record{}
	pager := s.client.NewListEntitiesPager(nil)
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list breaker states: %w", err)
		}
		for _, raw := range page.Entities {
			var e aztables.EDMEntity
			if err := json.Unmarshal(raw, &e); err != nil {
				return nil, fmt.Errorf("list breaker states: %w", err)
			}
			if e.RowKey != rowKey {
				continue
			}
			r, err := fromEntity(e)
			if err != nil {
				return nil, fmt.Errorf("breaker state of %s: %w", e.PartitionKey, err)
			}
			r.etag = e.ETag
			out[e.PartitionKey] = r
		}
	}
	return out, nil
}

// put writes r: an insert when it was never stored (a second instance inserting first gets a
// conflict and reads again), else a replace only if nobody wrote since r was read.
func (s *Store) put(ctx context.Context, consumer string, r record) (string, error) {
	body, err := json.Marshal(toEntity(consumer, r))
	if err != nil {
		return "", err
	}
	if r.etag == "" {
		resp, err := s.client.AddEntity(ctx, body, nil)
		return string(resp.ETag), err
	}
	etag := azcore.ETag(r.etag)
	resp, err := s.client.UpdateEntity(ctx, body, &aztables.UpdateEntityOptions{IfMatch: &etag, UpdateMode: aztables.UpdateModeReplace})
	return string(resp.ETag), err
}

// Property names of the stored state; Buckets is JSON: [[bucket number, successes, failures], ...].
func toEntity(consumer string, r record) aztables.EDMEntity {
	p := map[string]any{
		"State":     r.State.String(),
		"Opened":    aztables.EDMInt64(r.Opened),
		"ChangedBy": r.ChangedBy,
		"Prober":    r.Prober,
	}
	for name, t := range map[string]time.Time{"OpenUntil": r.OpenUntil, "ProbeUntil": r.ProbeUntil, "ChangedAt": r.ChangedAt} {
		if !t.IsZero() {
			p[name] = aztables.EDMDateTime(t.UTC())
		}
	}
	triples := make([][3]int64, len(r.Buckets))
	for i, b := range r.Buckets {
		triples[i] = [3]int64{b.At, int64(b.Successes), int64(b.Failures)}
	}
	buf, _ := json.Marshal(triples) // integers only: cannot fail
	p["Buckets"] = string(buf)
	if r.Pause != nil {
		p["Paused"] = true
		p["PausedBy"] = r.Pause.By
		p["PausedAt"] = aztables.EDMDateTime(r.Pause.At.UTC())
		p["PauseReason"] = r.Pause.Reason
	}
	return aztables.EDMEntity{Entity: aztables.Entity{PartitionKey: consumer, RowKey: rowKey}, Properties: p}
}

func fromEntity(e aztables.EDMEntity) (record, error) {
	var r record
	switch state, _ := e.Properties["State"].(string); state {
	case "", "closed":
		r.State = gobreaker.StateClosed
	case "open":
		r.State = gobreaker.StateOpen
	case "half-open":
		r.State = gobreaker.StateHalfOpen
	default:
		return r, fmt.Errorf("unknown state %q", state)
	}
	r.Prober, _ = e.Properties["Prober"].(string)
	r.ChangedBy, _ = e.Properties["ChangedBy"].(string)
	switch n := e.Properties["Opened"].(type) {
	case aztables.EDMInt64:
		r.Opened = int64(n)
	case int32:
		r.Opened = int64(n)
	}
	for name, t := range map[string]*time.Time{"OpenUntil": &r.OpenUntil, "ProbeUntil": &r.ProbeUntil, "ChangedAt": &r.ChangedAt} {
		if v, ok := e.Properties[name].(aztables.EDMDateTime); ok {
			*t = time.Time(v)
		}
	}
	if paused, _ := e.Properties["Paused"].(bool); paused {
		p := &Pause{}
		p.By, _ = e.Properties["PausedBy"].(string)
		p.Reason, _ = e.Properties["PauseReason"].(string)
		if v, ok := e.Properties["PausedAt"].(aztables.EDMDateTime); ok {
			p.At = time.Time(v).UTC()
		}
		r.Pause = p
	}
	if s, _ := e.Properties["Buckets"].(string); s != "" {
		var triples [][3]int64
		if err := json.Unmarshal([]byte(s), &triples); err != nil {
			return r, fmt.Errorf("buckets: %w", err)
		}
		for _, t := range triples {
			if t[1] < 0 || t[2] < 0 || t[1] > 1<<32-1 || t[2] > 1<<32-1 {
				return r, fmt.Errorf("buckets: count out of range in %v", t)
			}
			r.Buckets = append(r.Buckets, bucket{At: t[0], Successes: uint32(t[1]), Failures: uint32(t[2])})
		}
	}
	return r, nil
}

func hasStatus(err error, status int) bool {
	var re *azcore.ResponseError
	return errors.As(err, &re) && re.StatusCode == status
}

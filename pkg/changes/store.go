package changes

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/dvrouter/dvrouter/pkg/tables"
)

// ErrLeased means another instance holds the table's lease: it is reading the table now.
var ErrLeased = errors.New("another instance is reading this table")

// ErrLeaseLost means the lease ran out while the page was delivered and another instance took
// it: what this instance read is not stored, the other instance reads it again.
var ErrLeaseLost = errors.New("the table's lease was taken by another instance")

// State is where change tracking of one table stands, as the store holds it.
type State struct {
	Environment string `json:"environment"` // the environment's host, contoso.crm4.dynamics.com
	Table       string `json:"table"`
	// DeltaLink is the @odata.deltaLink of the last read that reached its end: the next read
	// starts there. Empty: the next read is a full read.
	DeltaLink string `json:"-"`
	// NextLink is the @odata.nextLink of a read between two pages: every event of the pages
	// before it is delivered or kept as a failure, and the read goes on from it.
	NextLink string `json:"-"`
	// Select is the $select the links were made with; a read that needs other columns starts over.
	Select string `json:"select"`
	// Pending reports a read between two pages (NextLink set).
	Pending     bool      `json:"pending"`
	PagesRead   int64     `json:"pagesRead"`   // in the read under way
	TokenAt     time.Time `json:"tokenAt"`     // when DeltaLink was received
	LastRunAt   time.Time `json:"lastRunAt"`   // when a run last stored a page
	FullReads   int64     `json:"fullReads"`   // full reads started, the first one included
	FullReadWhy string    `json:"fullReadWhy"` // why the last full read started
	Changed     int64     `json:"changed"`     // changed rows delivered, all runs
	Deleted     int64     `json:"deleted"`     // deletions delivered, all runs
	LeaseOwner  string    `json:"leaseOwner,omitempty"`
	LeaseUntil  time.Time `json:"leaseUntil,omitzero"`
	ResetBy     string    `json:"resetBy,omitempty"`
	ResetAt     time.Time `json:"resetAt,omitzero"`

	etag azcore.ETag
}

// Store keeps one entity per (environment, table) in a table of its own: PartitionKey the
// environment's host, RowKey the table's logical name. The same entity is the table's lease,
// taken and renewed with ETag-guarded writes, so a token is only ever stored by the instance
// that holds the lease.
type Store struct {
	service *aztables.ServiceClient
	client  *aztables.Client
	table   string
}

// OpenStore prepares the store in acct's table name; it makes no call (Acquire creates the
// table when it is missing).
func OpenStore(acct tables.Account, table string) (*Store, error) {
	if table == "" {
		return nil, errors.New("change tracking store: no table name")
	}
	svc, err := acct.Service(nil)
	if err != nil {
		return nil, fmt.Errorf("change tracking store: %w", err)
	}
	return &Store{service: svc, client: svc.NewClient(table), table: table}, nil
}

// Lease is one instance's hold on one table, for one run.
type Lease struct {
	store *Store
	owner string
	dur   time.Duration
	state State
}

// State is the table's state as of the last read or write under the lease.
func (l *Lease) State() State { return l.state }

// Acquire takes the lease of env's table for owner, for d, when nobody else holds it (or theirs
// has run out). It returns ErrLeased when another instance holds it.
func (s *Store) Acquire(ctx context.Context, env, table, owner string, d time.Duration) (*Lease, error) {
	for range 3 {
		st, found, err := s.get(ctx, env, table)
		if err != nil {
			return nil, err
		}
		now := time.Now().UTC()
		if found && st.LeaseOwner != "" && st.LeaseOwner != owner && now.Before(st.LeaseUntil) {
			return nil, fmt.Errorf("%s %s: %w (%s, until %s)", env, table, ErrLeased, st.LeaseOwner, st.LeaseUntil.Format(time.RFC3339))
		}
		st.Environment, st.Table = env, table
		st.LeaseOwner, st.LeaseUntil = owner, now.Add(d)
		err = s.put(ctx, &st, found)
		if isStatus(err, http.StatusPreconditionFailed) || isStatus(err, http.StatusConflict) {
			// Another instance wrote between the read and the write: look again.
			continue
		}
		if err != nil {
			return nil, err
		}
		return &Lease{store: s, owner: owner, dur: d, state: st}, nil
	}
	return nil, fmt.Errorf("%s %s: %w (lost the race for the lease three times)", env, table, ErrLeased)
}

// Save stores change under the lease and renews it. It returns ErrLeaseLost when another
// instance took the lease meanwhile; nothing is stored then.
func (l *Lease) Save(ctx context.Context, change func(*State)) error {
	st := l.state
	change(&st)
	st.LeaseOwner, st.LeaseUntil = l.owner, time.Now().UTC().Add(l.dur)
	if err := l.store.put(ctx, &st, true); err != nil {
		if isStatus(err, http.StatusPreconditionFailed) || isStatus(err, http.StatusNotFound) {
			return fmt.Errorf("%s %s: %w", st.Environment, st.Table, ErrLeaseLost)
		}
		return err
	}
	l.state = st
	return nil
}

// Release gives the lease up, so the next run need not wait for it to run out. A failure to
// release only delays the next reader until the lease ends.
func (l *Lease) Release(ctx context.Context) error {
	return l.store.release(ctx, l)
}

// release writes the state with the lease cleared, when the lease is still this instance's.
func (s *Store) release(ctx context.Context, l *Lease) error {
	st := l.state
	st.LeaseOwner, st.LeaseUntil = "", time.Time{}
	if err := s.put(ctx, &st, true); err != nil {
		return err
	}
	l.state = st
	return nil
}

// List returns every table's state, by environment and table.
func (s *Store) List(ctx context.Context) ([]State, error) {
	var out []State
	pager := s.client.NewListEntitiesPager(nil)
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if isStatus(err, http.StatusNotFound) {
			return nil, nil // no table yet: nothing was ever read
		}
		if err != nil {
			return nil, fmt.Errorf("list change tracking states: %w", err)
		}
		for _, raw := range page.Entities {
			var e aztables.EDMEntity
			if err := json.Unmarshal(raw, &e); err != nil {
				return nil, fmt.Errorf("list change tracking states: %w", err)
			}
			out = append(out, fromEntity(e))
		}
	}
	slices.SortFunc(out, func(a, b State) int {
		return strings.Compare(a.Environment+"/"+a.Table, b.Environment+"/"+b.Table)
	})
	return out, nil
}

// Reset forgets env's table's tokens, so that its next read is a full read; by says who asked.
// It fails with ErrLeased while a reader holds the lease (the reader would store its token
// after the reset). found is false when the table was never read.
func (s *Store) Reset(ctx context.Context, env, table, by string) (found bool, err error) {
	st, found, err := s.get(ctx, env, table)
	if err != nil || !found {
		return found, err
	}
	if st.LeaseOwner != "" && time.Now().Before(st.LeaseUntil) {
		return true, fmt.Errorf("%s %s: %w (%s, until %s); try again after it", env, table, ErrLeased, st.LeaseOwner, st.LeaseUntil.Format(time.RFC3339))
	}
	st.DeltaLink, st.NextLink, st.Pending, st.PagesRead, st.Select = "", "", false, 0, ""
	st.TokenAt = time.Time{}
	st.ResetBy, st.ResetAt = by, time.Now().UTC()
	st.FullReadWhy = "reset by " + by
	err = s.put(ctx, &st, true)
	if isStatus(err, http.StatusPreconditionFailed) {
		return true, fmt.Errorf("%s %s: %w; try again", env, table, ErrLeased)
	}
	return true, err
}

func (s *Store) get(ctx context.Context, env, table string) (State, bool, error) {
	resp, err := s.client.GetEntity(ctx, env, table, nil)
	if isStatus(err, http.StatusNotFound) {
		if _, cerr := s.service.CreateTable(ctx, s.table, nil); cerr != nil && !isStatus(cerr, http.StatusConflict) {
			return State{}, false, fmt.Errorf("create change tracking table %s: %w", s.table, cerr)
		}
		return State{Environment: env, Table: table}, false, nil
	}
	if err != nil {
		return State{}, false, fmt.Errorf("read change tracking state of %s %s: %w", env, table, err)
	}
	var e aztables.EDMEntity
	if err := json.Unmarshal(resp.Value, &e); err != nil {
		return State{}, false, fmt.Errorf("read change tracking state of %s %s: %w", env, table, err)
	}
	st := fromEntity(e)
	st.etag = resp.ETag
	return st, true, nil
}

// put inserts st (found false) or replaces it when nobody wrote since it was read.
func (s *Store) put(ctx context.Context, st *State, found bool) error {
	body, err := json.Marshal(toEntity(*st))
	if err != nil {
		return err
	}
	if !found {
		resp, err := s.client.AddEntity(ctx, body, nil)
		if err != nil {
			return err
		}
		st.etag = resp.ETag
		return nil
	}
	etag := st.etag
	resp, err := s.client.UpdateEntity(ctx, body, &aztables.UpdateEntityOptions{IfMatch: &etag, UpdateMode: aztables.UpdateModeReplace})
	if err != nil {
		return err
	}
	st.etag = resp.ETag
	return nil
}

func toEntity(st State) aztables.EDMEntity {
	p := map[string]any{
		"DeltaLink":   st.DeltaLink,
		"NextLink":    st.NextLink,
		"Select":      st.Select,
		"PagesRead":   aztables.EDMInt64(st.PagesRead),
		"FullReads":   aztables.EDMInt64(st.FullReads),
		"FullReadWhy": st.FullReadWhy,
		"Changed":     aztables.EDMInt64(st.Changed),
		"Deleted":     aztables.EDMInt64(st.Deleted),
		"LeaseOwner":  st.LeaseOwner,
		"ResetBy":     st.ResetBy,
	}
	for name, t := range map[string]time.Time{"TokenAt": st.TokenAt, "LastRunAt": st.LastRunAt, "LeaseUntil": st.LeaseUntil, "ResetAt": st.ResetAt} {
		if !t.IsZero() {
			p[name] = aztables.EDMDateTime(t.UTC())
		}
	}
	return aztables.EDMEntity{Entity: aztables.Entity{PartitionKey: st.Environment, RowKey: st.Table}, Properties: p}
}

func fromEntity(e aztables.EDMEntity) State {
	st := State{Environment: e.PartitionKey, Table: e.RowKey}
	str := func(name string) string { s, _ := e.Properties[name].(string); return s }
	num := func(name string) int64 {
		switch n := e.Properties[name].(type) {
		case aztables.EDMInt64:
			return int64(n)
		case int32:
			return int64(n)
		}
		return 0
	}
	st.DeltaLink, st.NextLink, st.Select = str("DeltaLink"), str("NextLink"), str("Select")
	st.FullReadWhy, st.LeaseOwner, st.ResetBy = str("FullReadWhy"), str("LeaseOwner"), str("ResetBy")
	st.PagesRead, st.FullReads, st.Changed, st.Deleted = num("PagesRead"), num("FullReads"), num("Changed"), num("Deleted")
	for name, t := range map[string]*time.Time{"TokenAt": &st.TokenAt, "LastRunAt": &st.LastRunAt, "LeaseUntil": &st.LeaseUntil, "ResetAt": &st.ResetAt} {
		if v, ok := e.Properties[name].(aztables.EDMDateTime); ok {
			*t = time.Time(v).UTC()
		}
	}
	st.Pending = st.NextLink != ""
	st.etag = azcore.ETag(e.ETag)
	return st
}

func isStatus(err error, status int) bool {
	var re *azcore.ResponseError
	return errors.As(err, &re) && re.StatusCode == status
}

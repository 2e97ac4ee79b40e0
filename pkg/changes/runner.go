package changes

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/dvrouter/dvrouter/pkg/config"
	"github.com/dvrouter/dvrouter/pkg/route"
)

// ErrUnknownTable means no route reads the table by change tracking.
var ErrUnknownTable = errors.New("no route reads this table by change tracking (source: changes or both)")

// Runner reads, one after the other, every table the routes read by change tracking; the
// ChangeTracking timer runs it.
type Runner struct {
	Reader *Reader
	Tables []Table
	// StaleAfter is how long a table may go without a complete read before Status calls it stale.
	StaleAfter time.Duration
}

// TablesFor lists the tables f's routes read by change tracking, each with the columns its
// routes need: every column when one of its change-tracking routes has no select (it sends the
// whole row on), else the columns the routes for the table read (route.Set.Columns).
func TablesFor(f *config.RouteFile, set *route.Set) []Table {
	var out []Table
	for _, name := range f.ChangeTables() {
		all := false
		for _, r := range f.Routes {
			if r.TakesChanges() && r.Table == name && len(r.Select) == 0 {
				all = true
			}
		}
		t := Table{Name: name}
		if !all {
			t.Columns = set.Columns(name)
		}
		out = append(out, t)
	}
	return out
}

// Run reads every table until its delta link or until ctx ends; one table's failure does not
// keep the others from being read. The error joins every table's.
func (r *Runner) Run(ctx context.Context) ([]Report, error) {
	var reps []Report
	var errs []error
	for _, t := range r.Tables {
		if ctx.Err() != nil {
			break
		}
		rep, err := r.Reader.Read(ctx, t)
		reps = append(reps, rep)
		if err != nil {
			errs = append(errs, err)
		}
	}
	return reps, errors.Join(errs...)
}

// TableStatus is one table's state for people: where its reading stands and whether it is late.
type TableStatus struct {
	State
	Columns []string `json:"columns"` // nil: every column
	// Stale: no complete read (or stored page) for longer than StaleAfter.
	Stale bool `json:"stale"`
	// Configured is false for a table still in the store that no route reads any more.
	Configured bool `json:"configured"`
}

// Status lists every configured table, read or not, and any other the store holds.
func (r *Runner) Status(ctx context.Context) ([]TableStatus, error) {
	states, err := r.Reader.Store.List(ctx)
	if err != nil {
		return nil, err
	}
	host := envHost(r.Reader.Env)
	var out []TableStatus
	now := time.Now()
	for _, t := range r.Tables {
		st := State{Environment: host, Table: t.Name}
		if i := slices.IndexFunc(states, func(s State) bool { return s.Environment == host && s.Table == t.Name }); i >= 0 {
			st = states[i]
		}
		last := st.LastRunAt
		out = append(out, TableStatus{State: st, Columns: t.Columns, Configured: true,
			Stale: r.StaleAfter > 0 && (last.IsZero() || now.Sub(last) > r.StaleAfter)})
	}
	for _, st := range states {
		if !slices.ContainsFunc(out, func(o TableStatus) bool { return o.Environment == st.Environment && o.Table == st.Table }) {
			out = append(out, TableStatus{State: st})
		}
	}
	return out, nil
}

// Reset makes the table's next read a full read; by is who asked, for the record.
func (r *Runner) Reset(ctx context.Context, table, by string) error {
	table = strings.ToLower(strings.TrimSpace(table))
	if !slices.ContainsFunc(r.Tables, func(t Table) bool { return t.Name == table }) {
		return fmt.Errorf("%s: %w", table, ErrUnknownTable)
	}
	_, err := r.Reader.Store.Reset(ctx, envHost(r.Reader.Env), table, by)
	return err
}

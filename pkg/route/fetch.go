package route

import (
	"fmt"
	"slices"
	"strings"

	"github.com/dvrouter/dvrouter/pkg/config"
	"github.com/dvrouter/dvrouter/pkg/dataverse"
)

// What an event must have read from the Dataverse Web API before it is matched. Power
// Automate's trigger sees the whole row; a plugin event carries the Target and the registered
// images only, and a size-exceeded event carries neither.

// pseudoColumns are in every row dvrouter builds (Power Automate's trigger body has them too),
// so they are never read from the Web API.
var pseudoColumns = []string{"sdkmessage", "iteminternalid", "runassystemuserid"}

// columnName is the logical name of a column as an expression names it: lower case, the
// annotation (x@OData.Community.Display.V1.FormattedValue) and the lookup spelling
// (_x_value) taken off. It is "" for the row's pseudo-columns.
func columnName(c string) string {
	c = strings.ToLower(c)
	if i := strings.IndexByte(c, '@'); i >= 0 {
		c = c[:i]
	}
	c = newColumn(c).name
	if c == "" || slices.Contains(pseudoColumns, c) {
		return ""
	}
	return c
}

// present reports whether the row carries column c (a logical name) in either spelling: a
// column the event holds with a null value is present (it was cleared, or is null in an image).
func present(row dataverse.Row, c column) bool {
	if _, ok := row[c.name]; ok {
		return true
	}
	_, ok := row[c.lookup]
	return ok
}

// hasColumn is present for a column name built on the spot (Explain, not the hot path).
func hasColumn(row dataverse.Row, c string) bool { return present(row, newColumn(c)) }

// columnsOf turns logical names into columns with their lookup spelling built once.
func columnsOf(names []string) []column {
	out := make([]column, len(names))
	for i, n := range names {
		out[i] = newColumn(n)
	}
	return out
}

// compileFetch fills the route's fetch columns once, at compile time: for `fetch: missing` the
// columns its filter and conditions read, for `fetch: [...]` the ones listed.
func (s *Set) compileFetch(r *Route) {
	var names []string
	add := func(c string) {
		if c = columnName(c); c != "" && !slices.Contains(names, c) {
			names = append(names, c)
		}
	}
	for _, c := range r.Config.Fetch {
		add(c)
	}
	if r.Config.FetchMissing {
		for _, c := range s.exprColumns(r) {
			add(c)
		}
	}
	r.fetch = columnsOf(names)
	if len(r.fetch) > 0 {
		s.anyFetch = true
	}
	if r.table != "" {
		s.named[strings.ToLower(r.table)] = nil
	}
}

// compileReads lists, once all routes are compiled, the columns a size-exceeded event of each
// named table is read with.
func (s *Set) compileReads() {
	for t := range s.named {
		var cols []string
		for _, c := range s.Columns(t) {
			if c = columnName(c); c != "" && !slices.Contains(cols, c) {
				cols = append(cols, c)
			}
		}
		s.named[t] = columnsOf(cols)
	}
}

// exprColumns lists the columns the route's filter and conditions read.
func (s *Set) exprColumns(r *Route) []string {
	var out []string
	if r.filter >= 0 && s.filters[r.filter] != nil {
		out = append(out, s.filters[r.filter].Columns()...)
	}
	for _, id := range r.conds {
		if s.conds[id] != nil {
			out = append(out, s.conds[id].Columns()...)
		}
	}
	return out
}

// Reads says which columns of ev's row must be read from the Web API before ev is matched,
// and why: for a size-exceeded event (no Target, no images) whose table a route names, every
// column the routes for that table read (reread true); otherwise the columns that routes with
// fetch, which ev could still match, read and ev lacks. Nil when nothing is to be read, which
// is the common case and allocates nothing. A Delete is never read: its row is gone.
func (s *Set) Reads(ev *dataverse.Event) (columns []string, reread bool) {
	if ev.Message == "Delete" || ev.RecordID == "" {
		return nil, false
	}
	if cols, named := s.named[ev.Table]; ev.SizeExceeded && (named || s.namedFold(ev.Table, &cols)) {
		out := make([]string, 0, len(cols))
		for _, c := range cols {
			if !present(ev.Row, c) {
				out = append(out, c.name)
			}
		}
		return out, true
	}
	if !s.anyFetch {
		return nil, false
	}
	var out []string
	for _, r := range s.routes {
		if len(r.fetch) == 0 || !r.couldMatch(ev) {
			continue
		}
		for _, c := range r.fetch {
			if !present(ev.Row, c) && !slices.Contains(out, c.name) {
				out = append(out, c.name)
			}
		}
	}
	return out, false
}

// couldMatch runs the tests that do not read the row's columns: a route that fails one of them
// does not match whatever a read would add.
func (r *Route) couldMatch(ev *dataverse.Event) bool {
	if r.table != "" && !strings.EqualFold(r.table, ev.Table) {
		return false
	}
	if len(r.messages) > 0 && !hasFold(r.messages, ev.Message) {
		return false
	}
	if r.stage != 0 && ev.Stage != r.stage {
		return false
	}
	if r.mode != "" && ev.Mode != r.mode {
		return false
	}
	update := strings.EqualFold(ev.Message, "Update")
	return !update || len(r.filtering) == 0 || targetUnknown(ev) || anyInTarget(ev, r.filtering)
}

// targetUnknown reports whether ev is a re-read size-exceeded event: Dataverse sent no Target,
// so which columns the update changed is not known. Dataverse's own step already applied its
// filtering attributes; a route's filteringAttributes and changed cannot be told and pass.
func targetUnknown(ev *dataverse.Event) bool {
	return ev.Reread && ev.SizeExceeded && ev.ChangedColumns == nil
}

// absent lists the columns the route's filter and first n conditions read that ev's row does
// not carry: a decision on them was made on a null that may not be the row's value.
func (s *Set) absent(r *Route, ev *dataverse.Event, filter bool, n int) []string {
	var out []string
	add := func(cols []string) {
		for _, c := range cols {
			if c = columnName(c); c != "" && !hasColumn(ev.Row, c) && !slices.Contains(out, c) {
				out = append(out, c)
			}
		}
	}
	if filter && r.filter >= 0 && s.filters[r.filter] != nil {
		add(s.filters[r.filter].Columns())
	}
	for i, id := range r.conds {
		if i >= n {
			break
		}
		if s.conds[id] != nil {
			add(s.conds[id].Columns())
		}
	}
	return out
}

// Fetches reports whether the route reads columns from the Web API (fetch: missing or a list).
func (r *Route) Fetches() bool { return r.Config.FetchMissing || len(r.Config.Fetch) > 0 }

// alwaysInTarget are the columns an update's Target always holds (Dataverse stamps them).
var alwaysInTarget = []string{"modifiedon", "modifiedby", "modifiedonbehalfby"}

// imageWarnings warns of a route that, on Update, reads columns the event is unlikely to
// carry and has no fetch: an update's Target holds only the columns that changed, so a
// condition pasted from a flow (which saw the whole row) reads null there unless the step's
// post-image holds the column.
func (s *Set) imageWarnings(file string, r *Route) {
	if r.Fetches() || len(r.messages) > 0 && !hasFold(r.messages, "Update") {
		return
	}
	var cols []string
	for _, c := range s.exprColumns(r) {
		c = columnName(c)
		if c == "" || slices.Contains(cols, c) || slices.Contains(alwaysInTarget, c) ||
			r.table != "" && c == strings.ToLower(r.table)+"id" {
			continue
		}
		cols = append(cols, c)
	}
	if len(cols) == 0 {
		return
	}
	s.warnings = append(s.warnings, config.Problem{File: file, Pos: r.Config.Pos, Msg: fmt.Sprintf(
		"warning: route %q reads [%s] on Update, whose Target holds only the columns that changed: unless the step's post-image holds them, its filter and conditions see null where Power Automate sees the row's value; add fetch: missing to read them from the Web API",
		r.Name, strings.Join(cols, ", "))})
}

// Warnings are the compiler's warnings about the route file (FILE:LINE:COL: warning: ...), in
// file order; Compile succeeds with them.
func (s *Set) Warnings() []config.Problem { return s.warnings }

// namedFold finds a named table whose name differs from table in case only.
func (s *Set) namedFold(table string, cols *[]column) bool {
	for t, c := range s.named {
		if strings.EqualFold(t, table) {
			*cols = c
			return true
		}
	}
	return false
}

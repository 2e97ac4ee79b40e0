// Package route decides which routes an event matches. Compile turns the route file's routes
// into tests (table, messages, stage, mode, filtering attributes, changed columns, the OData
// filter and the Power Automate trigger conditions), compiling every expression once; Match runs
// them on each event, and Explain says which test failed.
package route

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/dvrouter/dvrouter/pkg/config"
	"github.com/dvrouter/dvrouter/pkg/dataverse"
	"github.com/dvrouter/dvrouter/pkg/odata"
	"github.com/dvrouter/dvrouter/pkg/wdl"
)

// Options are what Compile needs besides the file.
type Options struct {
	// Logger receives run-time condition errors (warn, with the route name).
	Logger zerolog.Logger
	// Now is utcNow() in trigger conditions; nil means time.Now.
	Now func() time.Time
}

// Route is one compiled route.
type Route struct {
	Name      string
	Consumers []string
	Select    []string // columns sent on; empty means all
	Exclude   []string // columns never sent on
	Config    config.Route

	table     string // "" matches any table
	messages  []string
	stage     int
	mode      string
	filtering []column
	changed   []column
	filter    int      // index into Set.filters; -1 for none
	conds     []int    // indexes into Set.conds
	fetch     []column // columns to read from the Web API when the event lacks them
}

// column is a column named in filteringAttributes or changed. A lookup appears in the Target
// under its logical name (parentcustomerid) and in the Web API row as _parentcustomerid_value;
// both spellings are accepted in the file and both are looked up.
type column struct {
	name   string // logical name
	lookup string // _name_value
}

func newColumn(s string) column {
	if strings.HasPrefix(s, "_") && strings.HasSuffix(s, "_value") && len(s) > len("__value") {
		s = s[1 : len(s)-len("_value")]
	}
	return column{name: s, lookup: "_" + s + "_value"}
}

// Set is the compiled routes of one file, in file order. It is safe for concurrent use.
type Set struct {
	routes []*Route
	byName map[string]*Route
	log    zerolog.Logger
	now    func() time.Time

	// Expressions are compiled once per distinct source text, however many routes share them,
	// and evaluated at most once per event: route files repeat conditions (the message, a
	// state) across many routes.
	filters []*odata.Filter
	conds   []*wdl.Expr
	scratch sync.Pool // of *scratch

	anyFetch bool                // some route has fetch
	named    map[string][]column // the tables routes name (lower case) and the columns to re-read a size-exceeded event of each with
	warnings []config.Problem
}

// scratch is the working memory of deciding one event, pooled so that matching allocates
// nothing: the odata.RowCache through which every filter reads the event's columns (each looked
// up and converted once per event rather than once per filter), and the conditions' wdl.Env.
type scratch struct {
	row odata.RowCache
	env wdl.Env
}

func (s *Set) getScratch(ev *dataverse.Event) *scratch {
	sc, _ := s.scratch.Get().(*scratch)
	if sc == nil {
		sc = new(scratch)
	}
	sc.row.Reset(ev.Row)
	sc.env = wdl.Env{Body: ev.Row, Now: s.now}
	return sc
}

// putScratch returns sc to the pool, holding no reference to the event.
func (s *Set) putScratch(sc *scratch) {
	sc.row.Reset(nil)
	sc.env = wdl.Env{}
	s.scratch.Put(sc)
}

// Compile compiles every route of f. Expression errors are reported together, as a
// *config.ValidationError whose positions point into the expression. A nil f gives an empty set.
func Compile(f *config.RouteFile, opts Options) (*Set, error) {
	s := &Set{byName: map[string]*Route{}, log: opts.Logger, now: opts.Now, named: map[string][]column{}}
	filterIDs, condIDs := map[string]int{}, map[string]int{}
	if s.now == nil {
		s.now = time.Now
	}
	if f == nil {
		return s, nil
	}
	var problems []config.Problem
	bad := func(at config.Pos, src, what string, err error) {
		p := config.Problem{File: f.Path, Pos: at, Msg: what + ": " + err.Error()}
		var oe *odata.Error
		var we *wdl.Error
		switch {
		case errors.As(err, &oe):
			p.Pos, p.Msg = at.At(src, oe.Offset), what+": "+oe.Msg
		case errors.As(err, &we):
			p.Pos, p.Msg = at.At(src, we.Offset), what+": "+we.Msg
		}
		problems = append(problems, p)
	}
	for _, cr := range f.Routes {
		r := &Route{
			Name:      cr.Name,
			Consumers: cr.Consumers,
			Select:    cr.Select,
			Exclude:   cr.Exclude,
			Config:    cr,
			messages:  cr.Messages,
			stage:     cr.Stage,
			mode:      cr.Mode,
			filter:    -1,
		}
		if cr.Table != "*" {
			r.table = cr.Table
		}
		for _, c := range cr.FilteringAttributes {
			r.filtering = append(r.filtering, newColumn(c))
		}
		for _, c := range cr.Changed {
			r.changed = append(r.changed, newColumn(c))
		}
		if cr.Filter != "" {
			id, seen := filterIDs[cr.Filter]
			if !seen {
				fl, err := odata.Compile(cr.Filter)
				if err != nil {
					// Every error in the expression, not only the first.
					errs := odata.Check(cr.Filter)
					for _, e := range errs {
						bad(cr.FilterPos, cr.Filter, "filter", e)
					}
					if len(errs) == 0 {
						bad(cr.FilterPos, cr.Filter, "filter", err)
					}
				}
				id = len(s.filters)
				filterIDs[cr.Filter] = id
				s.filters = append(s.filters, fl)
			}
			r.filter = id
		}
		for i, src := range cr.Conditions {
			at := cr.Pos
			if i < len(cr.ConditionPos) {
				at = cr.ConditionPos[i]
			}
			id, seen := condIDs[src]
			if !seen {
				e, err := wdl.Compile(src)
				if err != nil {
					errs := wdl.Check(src)
					for _, we := range errs {
						bad(at, src, fmt.Sprintf("conditions[%d]", i), we)
					}
					if len(errs) == 0 {
						bad(at, src, fmt.Sprintf("conditions[%d]", i), err)
					}
				}
				id = len(s.conds)
				condIDs[src] = id
				s.conds = append(s.conds, e)
			}
			r.conds = append(r.conds, id)
		}
		s.compileFetch(r)
		s.imageWarnings(f.Path, r)
		s.routes = append(s.routes, r)
		s.byName[r.Name] = r
	}
	if len(problems) > 0 {
		return nil, &config.ValidationError{Problems: problems}
	}
	s.compileReads()
	return s, nil
}

// Len is the number of routes.
func (s *Set) Len() int { return len(s.routes) }

// Routes returns the routes in file order. The slice is shared: do not modify it.
func (s *Set) Routes() []*Route { return s.routes }

// Route returns the route named name, or nil.
func (s *Set) Route(name string) *Route { return s.byName[name] }

// Match returns the routes ev matches, in file order. A trigger condition that fails at run time
// counts as not matched and is logged at warn.
func (s *Set) Match(ev *dataverse.Event) []*Route {
	var out []*Route
	sc := s.getScratch(ev)
	defer s.putScratch(sc)
	var fbuf, cbuf [64]result
	m := s.newMemo(fbuf[:0], cbuf[:0])
	for i, r := range s.routes {
		o := r.eval(ev, sc, &m)
		if o.test == passed {
			if out == nil {
				out = make([]*Route, 0, len(s.routes)-i) // one allocation, whatever matches
			}
			out = append(out, r)
			continue
		}
		if o.err != nil {
			s.log.Warn().Str("route", r.Name).Int("condition", o.index).Str("eventId", ev.ID).
				Str("table", ev.Table).Str("sdkMessage", ev.Message).Err(o.err).
				Msg("trigger condition failed; route not matched")
		}
	}
	return out
}

// Decision says whether one route matched an event, and if not, which test failed.
type Decision struct {
	Name    string `json:"name"`
	Matched bool   `json:"matched"`
	Reason  string `json:"reason"`
	// Absent are the columns the route's filter and conditions read (those that were
	// evaluated) that the event does not carry: the decision took them as null, which the
	// row in Dataverse may not be. fetch: missing reads them.
	Absent []string `json:"absent,omitempty"`
}

// Explain decides every route for ev, in file order, with reasons. It is for people (the
// `match` command, support tools): unlike Match it does not log.
func (s *Set) Explain(ev *dataverse.Event) []Decision {
	out := make([]Decision, 0, len(s.routes))
	sc := s.getScratch(ev)
	defer s.putScratch(sc)
	m := s.newMemo(nil, nil)
	for _, r := range s.routes {
		o := r.eval(ev, sc, &m)
		reason := r.reason(ev, o)
		// A failed expression also says what it compared.
		switch {
		case o.test == failFilter:
			if why := s.filters[r.filter].Explain(ev.Row); why != "" {
				reason += ": " + why
			}
		case o.test == failCondition && o.err == nil:
			if why := s.conds[r.conds[o.index]].Explain(&sc.env); why != "" {
				reason += ": " + why
			}
		}
		var absent []string
		switch o.test {
		case passed:
			absent = s.absent(r, ev, true, len(r.conds))
		case failFilter:
			absent = s.absent(r, ev, true, 0)
		case failCondition:
			absent = s.absent(r, ev, true, o.index+1)
		}
		if len(absent) > 0 {
			reason += fmt.Sprintf(" (decided on absent column(s) %s: the event does not carry them", strings.Join(absent, ", "))
			if r.Fetches() {
				reason += " and the route's fetch did not read them"
			} else {
				reason += "; add fetch: missing to read them from the Web API"
			}
			reason += ")"
		}
		out = append(out, Decision{Name: r.Name, Matched: o.test == passed, Reason: reason, Absent: absent})
	}
	return out
}

type test int

const (
	passed test = iota
	failTable
	failMessage
	failStage
	failMode
	failFiltering
	failChanged
	failFilter
	failCondition
)

// outcome is the result of evaluating one route, kept small so Match allocates nothing.
type outcome struct {
	test  test
	index int   // which condition
	err   error // a condition's run-time error
}

// result is a memoized expression result for one event.
type result uint8

const (
	unknown result = iota
	isTrue
	isFalse
)

// memo holds, for one event, the result of every expression evaluated so far.
type memo struct {
	set     *Set
	filters []result
	conds   []result
}

// newMemo sizes the memo, in the buffers given when they are large enough (Match passes arrays
// on its stack, so matching allocates nothing for files of up to 64 distinct expressions).
func (s *Set) newMemo(fbuf, cbuf []result) memo {
	grow := func(buf []result, n int) []result {
		if cap(buf) >= n {
			return buf[:n]
		}
		return make([]result, n)
	}
	return memo{set: s, filters: grow(fbuf, len(s.filters)), conds: grow(cbuf, len(s.conds))}
}

func (m *memo) filter(id int, row *odata.RowCache) bool {
	if m.filters[id] == unknown {
		m.filters[id] = isFalse
		if m.set.filters[id].MatchCached(row) {
			m.filters[id] = isTrue
		}
	}
	return m.filters[id] == isTrue
}

// cond evaluates a condition once per event. Errors are not memoized: each route that meets
// one reports it (and evaluating again gives the same error).
func (m *memo) cond(id int, env *wdl.Env) (bool, error) {
	if r := m.conds[id]; r != unknown {
		return r == isTrue, nil
	}
	ok, err := m.set.conds[id].Bool(env)
	if err != nil {
		return false, err
	}
	m.conds[id] = isFalse
	if ok {
		m.conds[id] = isTrue
	}
	return ok, nil
}

// eval runs the tests cheapest first, stopping at the first that fails.
func (r *Route) eval(ev *dataverse.Event, sc *scratch, m *memo) outcome {
	if r.table != "" && r.table != ev.Table && !strings.EqualFold(r.table, ev.Table) {
		return outcome{test: failTable}
	}
	if len(r.messages) > 0 && !hasFold(r.messages, ev.Message) {
		return outcome{test: failMessage}
	}
	if r.stage != 0 && ev.Stage != r.stage {
		return outcome{test: failStage}
	}
	if r.mode != "" && ev.Mode != r.mode {
		return outcome{test: failMode}
	}
	// Filtering attributes and changed columns restrict updates only, as the Dataverse step's
	// filtering attributes do: a Create or Delete has no "which columns changed".
	// A re-read size-exceeded event has no Target to tell them by (targetUnknown).
	update := (ev.Message == "Update" || strings.EqualFold(ev.Message, "Update")) && !targetUnknown(ev)
	if update && len(r.filtering) > 0 && !anyInTarget(ev, r.filtering) {
		return outcome{test: failFiltering}
	}
	if update && len(r.changed) > 0 && !anyChanged(ev, r.changed) {
		return outcome{test: failChanged}
	}
	if r.filter >= 0 && !m.filter(r.filter, &sc.row) {
		return outcome{test: failFilter}
	}
	for i, c := range r.conds {
		ok, err := m.cond(c, &sc.env)
		if err != nil {
			return outcome{test: failCondition, index: i, err: err}
		}
		if !ok {
			return outcome{test: failCondition, index: i}
		}
	}
	return outcome{test: passed}
}

func (r *Route) reason(ev *dataverse.Event, o outcome) string {
	switch o.test {
	case passed:
		return "matched"
	case failTable:
		return fmt.Sprintf("table: %s is not %s", ev.Table, r.table)
	case failMessage:
		return fmt.Sprintf("messages: %s is not in [%s]", ev.Message, strings.Join(r.messages, ", "))
	case failStage:
		return fmt.Sprintf("stage: %d is not %d", ev.Stage, r.stage)
	case failMode:
		return fmt.Sprintf("mode: %s is not %s", ev.Mode, r.mode)
	case failFiltering:
		return fmt.Sprintf("filteringAttributes: none of [%s] in Target", names(r.filtering))
	case failChanged:
		return fmt.Sprintf("changed: none of [%s] differs from the pre-image", names(r.changed))
	case failFilter:
		return "filter: false"
	case failCondition:
		if o.err != nil {
			return fmt.Sprintf("conditions[%d]: error: %v", o.index, o.err)
		}
		return fmt.Sprintf("conditions[%d]: false", o.index)
	}
	return "unknown"
}

func names(cs []column) string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.name
	}
	return strings.Join(out, ", ")
}

// hasFold reports whether list holds s ignoring case. It looks for the exact spelling first, the
// usual case, since it runs for every route on every event.
func hasFold(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

// inTarget reports whether the update's Target carries column c. ChangedColumns leaves out the
// columns Dataverse stamps on every update, so those count as always present, as they are in
// the Target a Dataverse step's filtering attributes see.
func inTarget(ev *dataverse.Event, c column) bool {
	switch c.name {
	case "modifiedon", "modifiedby":
		return true
	}
	for _, t := range ev.ChangedColumns {
		if t == c.name || t == c.lookup {
			return true
		}
	}
	return false
}

func anyInTarget(ev *dataverse.Event, cs []column) bool {
	for _, c := range cs {
		if inTarget(ev, c) {
			return true
		}
	}
	return false
}

// anyChanged reports whether one of cs is in the Target with a value other than the pre-image's.
// A column missing from the pre-image was null: Dataverse leaves null columns out of images.
// Without a pre-image the old values are unknown, so a column in the Target counts as changed.
func anyChanged(ev *dataverse.Event, cs []column) bool {
	for _, c := range cs {
		if !inTarget(ev, c) {
			continue
		}
		if !ev.HasPreImage {
			return true
		}
		if !sameValue(get(ev.Row, c), get(ev.PreImage, c)) {
			return true
		}
	}
	return false
}

func get(row dataverse.Row, c column) any {
	if v, ok := row[c.name]; ok {
		return v
	}
	return row[c.lookup]
}

// sameValue compares two row values: numbers by value (1 equals 1.0000000000, as Dataverse
// prints decimals with trailing zeros), strings exactly, null equal only to null.
func sameValue(a, b any) bool {
	switch x := a.(type) {
	case nil:
		return b == nil
	case string:
		y, ok := b.(string)
		return ok && x == y
	case bool:
		y, ok := b.(bool)
		return ok && x == y
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, v := range x {
			w, ok := y[k]
			if !ok || !sameValue(v, w) {
				return false
			}
		}
		return true
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !sameValue(x[i], y[i]) {
				return false
			}
		}
		return true
	}
	xs, ok1 := numberText(a)
	ys, ok2 := numberText(b)
	if !ok1 || !ok2 {
		return false
	}
	if xs == ys {
		return true
	}
	var rx, ry big.Rat
	if _, ok := rx.SetString(xs); !ok {
		return false
	}
	if _, ok := ry.SetString(ys); !ok {
		return false
	}
	return rx.Cmp(&ry) == 0
}

func numberText(v any) (string, bool) {
	switch n := v.(type) {
	case json.Number:
		return string(n), true
	case float64:
		return strconv.FormatFloat(n, 'g', -1, 64), true
	case int:
		return strconv.Itoa(n), true
	case int64:
		return strconv.FormatInt(n, 10), true
	}
	return "", false
}

// Columns returns the columns that the routes for table (and the routes for any table, "*") read,
// in lower case and in file order: filteringAttributes, changed, the columns of the filter and of
// the trigger conditions, and select. These are the columns an event must carry to be matched
// and shaped as the full row would be. Lookups are named by their logical name (parentcustomerid,
// not _parentcustomerid_value).
func (s *Set) Columns(table string) []string {
	var out []string
	add := func(c string) {
		c = columnName(c)
		if c != "" && !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	for _, r := range s.routes {
		if r.table != "" && !strings.EqualFold(r.table, table) {
			continue
		}
		for _, c := range r.filtering {
			add(c.name)
		}
		for _, c := range r.changed {
			add(c.name)
		}
		if r.filter >= 0 && s.filters[r.filter] != nil {
			for _, c := range s.filters[r.filter].Columns() {
				add(c)
			}
		}
		for _, id := range r.conds {
			if s.conds[id] != nil {
				for _, c := range s.conds[id].Columns() {
					add(c)
				}
			}
		}
		for _, c := range r.Select {
			add(c)
		}
	}
	return out
}

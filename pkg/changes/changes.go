// Package changes is dvrouter's second source of events: it reads the tables that routes name
// with `source: changes` through Dataverse change tracking, and hands every changed row (an
// Upsert) and every deletion (a Delete) to the same dispatch as the plugin step's events.
//
// It follows "Use change tracking to synchronize data with external systems"
// (https://learn.microsoft.com/power-apps/developer/data-platform/use-change-tracking-synchronize-data-external-systems):
// GET <entityset>?$select=... with Prefer: odata.track-changes reads every row, page by page
// (@odata.nextLink), and the last page carries an @odata.deltaLink from which the next read
// gets what changed since: rows created or updated (not told apart) and deleted rows
// ($deletedEntity, with their id and reason). $filter, $orderby, $expand and $top are not
// allowed with change tracking, so every route condition is applied here, after the read.
//
// Nothing read is lost and nothing is stored early: the link a page leads to is written to
// Table Storage only once every event of the page was delivered or kept as a failure. A run
// that stops in the middle of a page (a crash, a timeout) leaves the last stored link, and the
// next run reads that page again; the events come again with the same ids (ChangeID), which
// consumers use to drop repeats. One instance reads a table at a time: the table's entity in
// the store is its lease. A delta token Dataverse refuses (older than the organization's
// ExpireChangeTrackingInDays, 7 days by default) starts a full read, logged as an error, never
// a silent gap.
package changes

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/dvrouter/dvrouter/pkg/dataverse"
	"github.com/dvrouter/dvrouter/pkg/dataverse/webapi"
	"github.com/dvrouter/dvrouter/pkg/dispatch"
)

// Defaults of a Reader's settings.
const (
	DefaultPageSize = 1000
	DefaultLease    = 5 * time.Minute
	DefaultParallel = 8
	// PageReserve is the time a page is given: with less left before the run's deadline, the
	// run stops before reading the next page.
	PageReserve = time.Minute
)

// Dispatcher is the part of dispatch the reader uses; *dispatch.Dispatcher is one.
type Dispatcher interface {
	Dispatch(ctx context.Context, ev *dataverse.Event) (dispatch.Result, error)
}

// Reader reads tables by change tracking and dispatches what changed.
type Reader struct {
	Env        *webapi.Environment
	Store      *Store
	Dispatcher Dispatcher
	// Owner names this instance in the lease (host name and process id, say).
	Owner string
	// PageSize is odata.maxpagesize (at most 5,000, Dataverse's page); 0: DefaultPageSize.
	PageSize int
	// Lease is how long a reader holds a table without storing a page; 0: DefaultLease. It must
	// outlast the delivery of one page.
	Lease time.Duration
	// Parallel is how many events of one page are dispatched at once; 0: DefaultParallel. The
	// events of one page are of distinct rows (a read returns each row's last change once).
	Parallel int
	Log      zerolog.Logger
}

// Table is one table to read and the columns the routes reading it need (nil: every column).
type Table struct {
	Name    string
	Columns []string
}

// Report is what one read of one table did.
type Report struct {
	Table       string        `json:"table"`
	Skipped     string        `json:"skipped,omitempty"` // why the table was not read (another instance holds it)
	Requests    int           `json:"requests"`          // change-tracking GETs answered
	Pages       int           `json:"pages"`             // pages delivered and stored
	Changed     int           `json:"changed"`
	Deleted     int           `json:"deleted"`
	FullRead    bool          `json:"fullRead"`
	FullReadWhy string        `json:"fullReadWhy,omitempty"`
	Complete    bool          `json:"complete"` // reached a delta link: everything up to now is read
	Took        time.Duration `json:"took"`
}

// Read reads t from where its last run stopped until its delta link, or until ctx ends (the
// pages stored so far are kept, the next run goes on). The error is non-nil when a page could
// not be read, delivered durably or stored; its events come again on the next run.
func (r *Reader) Read(ctx context.Context, t Table) (rep Report, err error) {
	start := time.Now()
	rep.Table = t.Name
	host := envHost(r.Env)
	lease, err := r.Store.Acquire(ctx, host, t.Name, r.Owner, cmp(r.Lease, DefaultLease))
	if errors.Is(err, ErrLeased) {
		rep.Skipped = err.Error()
		r.Log.Info().Str("table", t.Name).Str("skipped", rep.Skipped).Msg("change tracking: table skipped")
		return rep, nil
	}
	if err != nil {
		return rep, fmt.Errorf("change tracking %s: %w", t.Name, err)
	}
	defer func() {
		rep.Took = time.Since(start)
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if rerr := lease.Release(rctx); rerr != nil && !isStatus(rerr, http.StatusPreconditionFailed) {
			r.Log.Warn().Err(rerr).Str("table", t.Name).Msg("change tracking: lease not released; the next reader waits for it to run out")
		}
		e := r.Log.Info()
		if err != nil {
			e = r.Log.Error().Err(err)
		}
		e.Str("table", t.Name).Int("requests", rep.Requests).Int("pages", rep.Pages).Int("changed", rep.Changed).
			Int("deleted", rep.Deleted).Bool("fullRead", rep.FullRead).Bool("complete", rep.Complete).
			Dur("took", rep.Took).Msg("change tracking read")
	}()

	info, err := r.Env.Table(ctx, t.Name)
	if err != nil {
		return rep, err
	}
	sel := selectOf(info, t.Columns)
	full := info.EntitySetName
	if sel != "" {
		full += "?$select=" + sel
	}
	st := lease.State()
	var link, why string
	switch {
	case st.Select != sel && (st.DeltaLink != "" || st.NextLink != ""):
		why = fmt.Sprintf("the routes read other columns now ($select %q, was %q)", sel, st.Select)
	case st.NextLink != "":
		link = st.NextLink
	case st.DeltaLink != "":
		link = st.DeltaLink
	case st.FullReadWhy != "" && st.ResetAt.After(st.TokenAt):
		why = st.FullReadWhy
	default:
		why = "first read of the table"
	}
	startFull := func(why string) error {
		rep.FullRead, rep.FullReadWhy = true, why
		link = full
		return lease.Save(ctx, func(s *State) {
			s.DeltaLink, s.NextLink, s.Select, s.PagesRead = "", "", sel, 0
			s.FullReads++
			s.FullReadWhy = why
		})
	}
	if link == "" {
		if err := startFull(why); err != nil {
			return rep, err
		}
	}
	for {
		// The time limit: no page is begun that might not be delivered before it; what is
		// stored is where the next run starts.
		if dl, ok := ctx.Deadline(); ctx.Err() != nil || ok && time.Until(dl) < PageReserve {
			return rep, nil
		}
		pg, err := r.get(ctx, link, info)
		rep.Requests++
		var we *webapi.Error
		if errors.As(err, &we) && refusedToken(we) && link != full {
			// An expired or refused token: read everything again rather than leave a gap.
			r.Log.Error().Str("table", t.Name).Int("status", we.Status).Str("code", we.Code).Str("error", we.Message).
				Str("metric", "changes.tokenRefused").Msg("change tracking: Dataverse refused the stored token (expired?); starting a full read")
			if err := startFull(fmt.Sprintf("Dataverse refused the stored token: %d %s %s", we.Status, we.Code, we.Message)); err != nil {
				return rep, err
			}
			continue
		}
		if err != nil {
			return rep, err
		}
		if err := r.deliver(ctx, pg.events); err != nil {
			return rep, fmt.Errorf("change tracking %s: page not stored, it is read again next run: %w", t.Name, err)
		}
		now := time.Now().UTC()
		err = lease.Save(ctx, func(s *State) {
			s.LastRunAt = now
			s.Changed += int64(pg.changed)
			s.Deleted += int64(pg.deleted)
			s.Select = sel
			if pg.next != "" {
				s.NextLink = pg.next
				s.PagesRead++
			} else {
				s.DeltaLink, s.NextLink, s.PagesRead, s.TokenAt = pg.delta, "", 0, now
			}
		})
		if err != nil {
			return rep, err
		}
		rep.Pages++
		rep.Changed += pg.changed
		rep.Deleted += pg.deleted
		if pg.next == "" {
			rep.Complete = true
			return rep, nil
		}
		link = pg.next
	}
}

// refusedToken reports whether a Web API error refuses the token itself: a client error other
// than authentication, a missing table and throttling (which Do has already waited out).
// Microsoft's page names no status for an expired token, so every such refusal counts.
func refusedToken(we *webapi.Error) bool {
	switch we.Status {
	case http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound, http.StatusTooManyRequests:
		return false
	}
	return we.Status >= 400 && we.Status < 500
}

// deliver dispatches a page's events, Parallel at a time; the first error (an outcome that
// could not be made durable) stops the page.
func (r *Reader) deliver(ctx context.Context, events []*dataverse.Event) error {
	n := cmp(r.Parallel, DefaultParallel)
	sem := make(chan struct{}, n)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for _, ev := range events {
		mu.Lock()
		stop := first != nil
		mu.Unlock()
		if stop {
			break
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if _, err := r.Dispatcher.Dispatch(ctx, ev); err != nil {
				mu.Lock()
				if first == nil {
					first = fmt.Errorf("event %s (%s %s): %w", ev.ID, ev.Message, ev.RecordID, err)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return first
}

// page is one change-tracking page, its items made into events.
type page struct {
	events           []*dataverse.Event
	changed, deleted int
	next, delta      string
}

func (r *Reader) get(ctx context.Context, link string, info webapi.Table) (*page, error) {
	path := link
	if strings.Contains(link, "://") {
		var ok bool
		if path, ok = strings.CutPrefix(link, r.Env.APIURL()); !ok {
			return nil, fmt.Errorf("change tracking %s: link %q is not under %s", info.LogicalName, link, r.Env.APIURL())
		}
	}
	req, err := r.Env.NewRequest(ctx, http.MethodGet, path, nil)
	if err != nil {
		return nil, err
	}
	// One Prefer header, the preferences comma-separated: tracking, the page size, and every
	// annotation, so rows carry formatted values and lookup targets as the event's row does.
	req.Header.Set("Prefer", fmt.Sprintf(`odata.track-changes,odata.maxpagesize=%d,odata.include-annotations="*"`, min(cmp(r.PageSize, DefaultPageSize), 5000)))
	req.Header.Set("Cache-Control", "no-cache")
	resp, err := r.Env.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		return nil, webapi.ResponseError(r.Env, http.MethodGet, info.LogicalName, "", resp)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return nil, fmt.Errorf("change tracking %s: reading the page: %w", info.LogicalName, err)
	}
	var body struct {
		Value []json.RawMessage `json:"value"`
		Next  string            `json:"@odata.nextLink"`
		Delta string            `json:"@odata.deltaLink"`
	}
	if err := json.Unmarshal(data, &body); err != nil {
		return nil, fmt.Errorf("change tracking %s: the page is not JSON: %w", info.LogicalName, err)
	}
	if body.Next == "" && body.Delta == "" {
		return nil, fmt.Errorf("change tracking %s: the page has neither @odata.nextLink nor @odata.deltaLink (is change tracking enabled for the table?)", info.LogicalName)
	}
	pg := &page{next: body.Next, delta: body.Delta, events: make([]*dataverse.Event, 0, len(body.Value))}
	host := envHost(r.Env)
	for i, raw := range body.Value {
		ev, err := itemEvent(host, info, raw)
		if err != nil {
			return nil, fmt.Errorf("change tracking %s: item %d of the page: %w", info.LogicalName, i, err)
		}
		if ev.Message == "Delete" {
			pg.deleted++
		} else {
			pg.changed++
		}
		pg.events = append(pg.events, ev)
	}
	return pg, nil
}

// itemEvent makes one item of a page into an event: a changed row is an Upsert (change tracking
// does not tell a new row from an updated one) carrying the row in Web API shape and its
// version (its @odata.etag); a $deletedEntity is a Delete carrying the primary key alone.
func itemEvent(host string, info webapi.Table, raw json.RawMessage) (*dataverse.Event, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var row dataverse.Row
	if err := dec.Decode(&row); err != nil || row == nil {
		return nil, fmt.Errorf("not a JSON object")
	}
	ctx, _ := row["@odata.context"].(string)
	ev := &dataverse.Event{Table: info.LogicalName, Source: dataverse.SourceChanges, OrganizationHost: host,
		Raw: raw, ChangedColumns: nil}
	if strings.HasSuffix(ctx, "/$deletedEntity") {
		id, _ := row["id"].(string)
		if id == "" {
			return nil, fmt.Errorf("a $deletedEntity without an id")
		}
		ev.Message, ev.RecordID = "Delete", strings.ToLower(id)
		ev.Row = dataverse.Row{info.PrimaryIDAttribute: ev.RecordID}
		ev.ID = ChangeID(host, info.LogicalName, ev.RecordID, "deleted")
		return ev, nil
	}
	id, _ := row[info.PrimaryIDAttribute].(string)
	if id == "" {
		return nil, fmt.Errorf("a row without its primary key %s", info.PrimaryIDAttribute)
	}
	etag, _ := row["@odata.etag"].(string)
	version := strings.Trim(strings.TrimPrefix(etag, "W/"), `"`)
	for k := range row {
		if strings.HasPrefix(k, "@odata.") {
			delete(row, k)
		}
	}
	ev.Message, ev.RecordID, ev.Version, ev.Row = "Upsert", strings.ToLower(id), version, row
	ev.ID = ChangeID(host, info.LogicalName, ev.RecordID, version)
	return ev, nil
}

// changeIDVersion starts the hashed text of ChangeID; a change to the derivation changes it.
const changeIDVersion = "dvrouter-change-id/v1"

// ChangeID is the id of a change-tracking event: the same row at the same version, read twice
// (a page read again after a crash, a full read after a refused token), gets the same id, and
// consumers drop the repeat. SHA-256 over changeIDVersion and the environment's host, the table,
// the lower-case record id and the version ("deleted" for a deletion), each prefixed by its
// length (unsigned varint); the first 16 bytes as a version-8 UUID, as plugin event ids are.
func ChangeID(host, table, id, version string) string {
	b := []byte(changeIDVersion)
	for _, s := range []string{strings.ToLower(host), table, strings.ToLower(id), version} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	return dataverse.HashUUID(b)
}

// selectOf is the $select for the columns routes need: lookups as _x_value, in a fixed order so
// that a stored link is recognized as made for the same columns; "" for every column.
func selectOf(info webapi.Table, columns []string) string {
	if columns == nil {
		return ""
	}
	var sel []string
	for _, c := range columns {
		c = strings.ToLower(c)
		if strings.HasPrefix(c, "_") && strings.HasSuffix(c, "_value") && len(c) > len("__value") {
			c = c[1 : len(c)-len("_value")]
		}
		if c == info.PrimaryIDAttribute {
			continue
		}
		if slices.Contains(info.Lookups, c) {
			c = "_" + c + "_value"
		}
		if !slices.Contains(sel, c) {
			sel = append(sel, c)
		}
	}
	slices.Sort(sel)
	return strings.Join(sel, ",")
}

func envHost(e *webapi.Environment) string {
	u := e.URL()
	return strings.TrimPrefix(strings.TrimPrefix(u, "https://"), "http://")
}

func cmp[T int | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

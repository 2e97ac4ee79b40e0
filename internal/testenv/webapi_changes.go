package testenv

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Change tracking in the WebAPI TEST STAND-IN, as "Use change tracking to synchronize data with
// external systems" describes it
// (https://learn.microsoft.com/power-apps/developer/data-platform/use-change-tracking-synchronize-data-external-systems):
//
//	GET /api/data/v9.2/<entityset>?$select=a,b          Prefer: odata.track-changes[, odata.maxpagesize=N]
//	GET <@odata.nextLink>                                the next page of the same read
//	GET <@odata.deltaLink>                               what changed since that read
//
// The stand-in keeps, per tracked table, the version of each row's last change (one counter per
// environment, as Dataverse's versionnumber is) and a tombstone for each deleted row. A read
// without a token returns every row; a read with one returns the rows changed after it (new or
// updated, not told apart) and then the deleted ones, as the page says Dataverse orders them.
// Rows change only through ChangeRow and DeleteRow, which move the version on.
type webapiChanges struct {
	version      int64                        // the environment's last change version
	tables       map[string]map[string]change // logical name -> lower-case id -> last change
	expiredBelow int64                        // tokens of a version below this are refused
	reads        int                          // requests to a tracked entity set answered 200
}

// change is a row's last change.
type change struct {
	version int64
	deleted bool
}

// TrackChanges turns change tracking on for a table added with AddTable (its rows so far count
// as changed now) and serves GET <entityset> for it.
func (w *WebAPI) TrackChanges(table string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	t := w.tables[table]
	if t == nil {
		panic("testenv.WebAPI: TrackChanges on unknown table " + table)
	}
	if w.changes == nil {
		w.changes = &webapiChanges{version: 900000, tables: map[string]map[string]change{}}
	}
	log := map[string]change{}
	ids := make([]string, 0, len(t.Rows))
	for id := range t.Rows {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		w.changes.version++
		log[id] = change{version: w.changes.version}
	}
	w.changes.tables[table] = log
	w.mux.HandleFunc("GET /api/data/v9.2/"+t.EntitySetName, w.serveChanges)
}

// ChangeRow creates or replaces a row of a tracked table (Web API shape, annotations included)
// and records the change; it returns the row's new version.
func (w *WebAPI) ChangeRow(table, id string, row map[string]any) int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	log := w.changeLog(table)
	id = strings.ToLower(id)
	w.tables[table].Rows[id] = row
	w.changes.version++
	log[id] = change{version: w.changes.version}
	return w.changes.version
}

// DeleteRow deletes a row of a tracked table and records the deletion.
func (w *WebAPI) DeleteRow(table, id string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	log := w.changeLog(table)
	id = strings.ToLower(id)
	delete(w.tables[table].Rows, id)
	w.changes.version++
	log[id] = change{version: w.changes.version, deleted: true}
}

// ExpireChangeTokens makes every delta token issued so far expired, as a token older than the
// organization's ExpireChangeTrackingInDays (7 days by default) is.
func (w *WebAPI) ExpireChangeTokens() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.changes != nil {
		w.changes.expiredBelow = w.changes.version + 1
	}
}

// ChangeReads counts the change-tracking requests answered 200.
func (w *WebAPI) ChangeReads() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.changes == nil {
		return 0
	}
	return w.changes.reads
}

func (w *WebAPI) changeLog(table string) map[string]change {
	if w.changes == nil || w.changes.tables[table] == nil {
		panic("testenv.WebAPI: change on a table without TrackChanges: " + table)
	}
	return w.changes.tables[table]
}

// readCursor is what the stand-in's opaque tokens hold. A $deltatoken is "<version>!<time>", the
// form of the page's example (919042!08/22/2017 08:10:44, URL-encoded). A $skiptoken (the stand-in's
// own, nextLink is opaque to the client) is "<since>:<upto>:<phase>:<after>": the page of a read
// that returns the changes after since up to upto (the version when the read began), going on
// after the last item the previous page held (phase 0 rows, 1 deletions, and its version), so a
// row that changes between two pages moves no other row out of the read.
type readCursor struct {
	since, upto int64
	phase       int
	after       int64
}

// serveChanges answers a read of a tracked table's entity set.
func (w *WebAPI) serveChanges(rw http.ResponseWriter, r *http.Request) {
	set := strings.TrimPrefix(r.URL.Path, "/api/data/v9.2/")
	t := w.TableBySet(set)
	q := r.URL.Query()
	prefer := preferences(r.Header.Values("Prefer"))
	_, tracking := prefer["odata.track-changes"]
	delta, skip := q.Get("$deltatoken"), q.Get("$skiptoken")
	if !tracking && delta == "" && skip == "" {
		WebAPIError(rw, http.StatusNotImplemented, "0x80060888", "The test stand-in only answers entity set reads with Prefer: odata.track-changes.")
		return
	}
	// "Query options not supported in Change Tracking Web API request": $filter, $orderby,
	// $expand and $top are refused with this message.
	for _, opt := range []string{"$filter", "$orderby", "$expand", "$top"} {
		if q.Has(opt) {
			WebAPIError(rw, http.StatusBadRequest, "0x80060888",
				fmt.Sprintf(`The "%s" query parameter isn't supported when Change Tracking is enabled.`, strings.TrimPrefix(opt, "$")))
			return
		}
	}
	var sel []string
	if s := q.Get("$select"); s != "" {
		sel = strings.Split(s, ",")
	}
	for _, c := range sel {
		if c != t.PrimaryID && !slices.Contains(t.Columns, c) {
			WebAPIError(rw, http.StatusBadRequest, "0x0", fmt.Sprintf("Could not find a property named '%s' on type 'Microsoft.Dynamics.CRM.%s'.", c, t.LogicalName))
			return
		}
	}
	pageSize := 5000 // "If the new or updated item collection is greater than 5000, the user can page"
	if n, err := strconv.Atoi(prefer["odata.maxpagesize"]); err == nil && n > 0 {
		pageSize = min(n, 5000)
	}

	w.mu.Lock()
	ch := w.changes
	var cur readCursor
	switch {
	case skip != "":
		var ok bool
		if cur, ok = parseSkip(skip); !ok {
			w.mu.Unlock()
			WebAPIError(rw, http.StatusBadRequest, "0x80060888", "The $skiptoken is not valid.")
			return
		}
	case delta != "":
		v, ok := parseDeltaToken(delta)
		if !ok || v < ch.expiredBelow {
			w.mu.Unlock()
			// The page says only that "if there are unprocessed changes older than the
			// configured value, the system throws an exception"; it names no status or code.
			// The stand-in answers 400 in the Web API's error shape, with a code of its own
			// choosing; dvrouter treats any refusal of a delta token as expired (a full read
			// follows), whatever the code.
			WebAPIError(rw, http.StatusBadRequest, "0x80044352",
				"The delta token has expired or is not valid: changes older than ExpireChangeTrackingInDays are no longer kept.")
			return
		}
		cur = readCursor{since: v, upto: ch.version}
	default:
		cur = readCursor{since: 0, upto: ch.version}
	}
	items := w.changesBetween(t, cur.since, cur.upto)
	start := 0
	for start < len(items) && !items[start].after(cur.phase, cur.after) {
		start++
	}
	end := min(start+pageSize, len(items))
	page := items[start:end]
	annotations := prefer["odata.include-annotations"] == `"*"`
	value := make([]any, 0, len(page))
	for _, it := range page {
		if it.deleted {
			// A deleted row: its id and reason, under a $deletedEntity context (same page).
			value = append(value, map[string]any{
				"@odata.context": w.URL + "/api/data/v9.2/$metadata#" + set + "/$deletedEntity",
				"id":             it.id,
				"reason":         "deleted",
			})
			continue
		}
		value = append(value, changedRow(t, it, sel, annotations))
	}
	ch.reads++
	w.mu.Unlock()

	ctx := w.URL + "/api/data/v9.2/$metadata#" + set + "(" + q.Get("$select") + ")"
	if cur.since > 0 {
		ctx += "/$delta"
	}
	out := map[string]any{"@odata.context": ctx, "value": value}
	// Links spell the system query options with their $, as the page's examples do
	// (accounts?$select=name,...&$deltatoken=919042%2108%2f22%2f2017%2008%3a10%3a44).
	link := w.URL + "/api/data/v9.2/" + set + "?"
	if s := q.Get("$select"); s != "" {
		link += "$select=" + s + "&"
	}
	if end < len(items) {
		last := items[end-1]
		phase := 0
		if last.deleted {
			phase = 1
		}
		out["@odata.nextLink"] = link + "$skiptoken=" + url.QueryEscape(fmt.Sprintf("%d:%d:%d:%d", cur.since, cur.upto, phase, last.version))
	} else {
		// The delta link comes with the last page only.
		out["@odata.deltaLink"] = link + "$deltatoken=" + url.QueryEscape(fmt.Sprintf("%d!%s", cur.upto, time.Now().UTC().Format("01/02/2006 15:04:05")))
	}
	applied := []string{"odata.track-changes"}
	if _, ok := prefer["odata.maxpagesize"]; ok {
		applied = append(applied, "odata.maxpagesize="+strconv.Itoa(pageSize))
	}
	if annotations {
		applied = append(applied, `odata.include-annotations="*"`)
	}
	rw.Header().Set("Preference-Applied", strings.Join(applied, ","))
	w.writeJSON(rw, out)
}

type changeItem struct {
	id      string
	version int64
	deleted bool
	row     map[string]any
}

// after reports whether the item comes after (phase, version) in a read's order.
func (it changeItem) after(phase int, version int64) bool {
	p := 0
	if it.deleted {
		p = 1
	}
	return p > phase || p == phase && it.version > version
}

// changesBetween lists a table's rows whose last change is after since and at most upto: new or
// updated rows first, by version, then deleted ones ("Usually, the caller will get all new or
// updated records first (sorted by version number) followed by deleted records"). A read without
// a token (since 0) lists no deletions: "Deleted objects are not returned." Callers hold w.mu.
func (w *WebAPI) changesBetween(t *WebAPITable, since, upto int64) []changeItem {
	var rows, deleted []changeItem
	for id, c := range w.changes.tables[t.LogicalName] {
		if c.version <= since || c.version > upto {
			continue
		}
		if c.deleted {
			if since > 0 {
				deleted = append(deleted, changeItem{id: id, version: c.version, deleted: true})
			}
			continue
		}
		rows = append(rows, changeItem{id: id, version: c.version, row: t.Rows[id]})
	}
	byVersion := func(a, b changeItem) int { return int(a.version - b.version) }
	slices.SortFunc(rows, byVersion)
	slices.SortFunc(deleted, byVersion)
	return append(rows, deleted...)
}

// changedRow writes a row as a change-tracking read returns it: @odata.etag holding its version
// (W/"915244" in the page's example), the selected columns (null when unset) and the primary
// key, and with odata.include-annotations="*" their annotations, as retrieve does.
func changedRow(t *WebAPITable, it changeItem, sel []string, annotations bool) map[string]any {
	cols := sel
	if cols == nil {
		cols = t.Columns
	}
	out := map[string]any{"@odata.etag": `W/"` + strconv.FormatInt(it.version, 10) + `"`}
	for _, c := range append(slices.Clone(cols), t.PrimaryID) {
		v, ok := it.row[c]
		if !ok {
			v = nil
		}
		out[c] = v
		if !annotations {
			continue
		}
		for k, a := range it.row {
			if strings.HasPrefix(k, c+"@") {
				out[k] = a
			}
		}
	}
	out[t.PrimaryID] = it.id
	return out
}

// preferences reads Prefer headers (comma-separated, possibly several) into name -> value.
func preferences(headers []string) map[string]string {
	out := map[string]string{}
	for _, h := range headers {
		for _, p := range strings.Split(h, ",") {
			name, val, _ := strings.Cut(strings.TrimSpace(p), "=")
			if name != "" {
				out[strings.ToLower(name)] = val
			}
		}
	}
	return out
}

func parseDeltaToken(s string) (int64, bool) {
	v, _, ok := strings.Cut(s, "!")
	n, err := strconv.ParseInt(v, 10, 64)
	return n, ok && err == nil && n > 0
}

func parseSkip(s string) (readCursor, bool) {
	parts := strings.Split(s, ":")
	if len(parts) != 4 {
		return readCursor{}, false
	}
	var n [4]int64
	for i, p := range parts {
		v, err := strconv.ParseInt(p, 10, 64)
		if err != nil || v < 0 {
			return readCursor{}, false
		}
		n[i] = v
	}
	return readCursor{since: n[0], upto: n[1], phase: int(n[2]), after: n[3]}, true
}

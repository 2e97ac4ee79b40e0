package changes_test

import (
	"context"
	"encoding/json"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/dvrouter/dvrouter/internal/testenv"
	"github.com/dvrouter/dvrouter/pkg/changes"
	"github.com/dvrouter/dvrouter/pkg/dataverse"
	"github.com/dvrouter/dvrouter/pkg/journal"
	"github.com/dvrouter/dvrouter/pkg/tables"
)

// TestReconcile_SendsExactlyTheChangesThePluginPathMissed: a route takes both sources with
// reconcile: true. The plugin step delivers rows A and C (C at an older version); change
// tracking then reads A, B and C: only B (never sent) and C's newer version reach the consumer.
func TestReconcile_SendsExactlyTheChangesThePluginPathMissed(t *testing.T) {
	az := testenv.StartAzurite(t)
	jnl, err := journal.Open(context.Background(), journal.Config{Account: tables.Account{ConnectionString: az.ConnectionString()},
		Table: "ReconcileJournal", FlushInterval: 20 * time.Millisecond, Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { jnl.Close(context.Background()) })
	r := newRigWith(t, 0, `{name: accounts, table: account, source: both, reconcile: true, select: [name], consumers: [erp]}`, jnl)
	ctx := context.Background()
	cd := *r.disp
	cd.Deliver = &changes.Reconciling{Next: r.disp.Deliver, History: jnl, Routes: r.disp.Routes, Log: zerolog.Nop()}
	rd := r.reader("a", &cd)
	if _, err := rd.Read(ctx, changes.Table{Name: "account", Columns: []string{"name"}}); err != nil {
		t.Fatal(err) // the first read: an empty table, a delta link
	}

	a, b, c := rowID(1), rowID(2), rowID(3)
	va := r.api.ChangeRow("account", a, accountRow(1, "a"))
	r.api.ChangeRow("account", b, accountRow(2, "b")) // the webhook never sent this one
	vc := r.api.ChangeRow("account", c, accountRow(3, "c"))
	plugin := func(id string, version int64) {
		ev := &dataverse.Event{ID: "plugin-" + id, Message: "Update", Table: "account", RecordID: id, Stage: 40, Mode: "async",
			Row: dataverse.Row{"name": "x"}, PostImage: dataverse.Row{"versionnumber": json.Number(strconv.FormatInt(version, 10))}}
		if res, err := r.disp.Dispatch(ctx, ev); err != nil || len(res.Delivered) != 1 {
			t.Fatalf("plugin event %s: %+v (err %v)", id, res, err)
		}
	}
	plugin(a, va)
	plugin(c, vc)
	r.api.ChangeRow("account", c, accountRow(3, "c again")) // a later change the webhook missed
	fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := jnl.Flush(fctx); err != nil {
		t.Fatal(err)
	}

	rep, err := rd.Read(ctx, changes.Table{Name: "account", Columns: []string{"name"}})
	if err != nil || rep.Changed != 3 {
		t.Fatalf("read = %+v (err %v)", rep, err)
	}
	var fromChanges []string
	for _, ev := range received(t, r.consumer) {
		if ev.Source == "changes" {
			fromChanges = append(fromChanges, ev.RecordID+" "+ev.Row["name"].(string))
		}
	}
	slices.Sort(fromChanges) // one page's events are delivered in parallel
	if len(fromChanges) != 2 || fromChanges[0] != b+" b 2" || fromChanges[1] != c+" c again 3" {
		t.Fatalf("change tracking delivered %q, want B and C's later version only", fromChanges)
	}
	// The journal tells the two paths apart.
	if err := jnl.Flush(fctx); err != nil {
		t.Fatal(err)
	}
	hist, err := jnl.Lookup(ctx, journal.Query{Table: "account", RecordID: c})
	if err != nil {
		t.Fatal(err)
	}
	sources := map[string]bool{}
	for _, e := range hist {
		sources[e.Source] = true
	}
	if !sources[""] || !sources["changes"] {
		t.Fatalf("journal of C = %+v, want one entry per path", hist)
	}
}

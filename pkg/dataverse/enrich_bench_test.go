package dataverse_test

// BenchmarkEnrichment sits next to BenchmarkDecode so that one `go test -bench` run measures
// both: completing a size-exceeded event from the Web API (dispatch's re-read) must cost one
// round trip and no more CPU than one decode of the event.

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/rs/zerolog"

	"github.com/dvrouter/dvrouter/internal/testenv"
	"github.com/dvrouter/dvrouter/pkg/config"
	"github.com/dvrouter/dvrouter/pkg/dataverse"
	"github.com/dvrouter/dvrouter/pkg/dataverse/webapi"
	"github.com/dvrouter/dvrouter/pkg/deliver"
	"github.com/dvrouter/dvrouter/pkg/dispatch"
	"github.com/dvrouter/dvrouter/pkg/route"
)

type nopDeliverer struct{}

func (nopDeliverer) Deliver(context.Context, *dataverse.Event, []deliver.Target) (deliver.Outcome, error) {
	return deliver.Outcome{Delivered: []deliver.Result{}, Failed: []deliver.Result{}}, nil
}

// canned answers every request with one recorded response, in process: what is left is the
// client's own CPU (request, token, answer decoding, merge).
type canned struct {
	defs, lookups, row []byte
}

func (c canned) RoundTrip(r *http.Request) (*http.Response, error) {
	body := c.row
	switch {
	case strings.HasSuffix(r.URL.Path, "/EntityDefinitions"):
		body = c.defs
	case strings.Contains(r.URL.Path, "LookupAttributeMetadata"):
		body = c.lookups
	}
	return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/json"}},
		ContentLength: int64(len(body)), Body: io.NopCloser(bytes.NewReader(body)), Request: r}, nil
}

// enrichmentSetup serves the bench event's row (its Target over its post-image: the row a full
// event gives) from the stand-in, and returns the event stripped as Dataverse strips one over
// the size limit, with routes that read every column of that row.
func enrichmentSetup(b *testing.B) (*testenv.WebAPI, *dataverse.Event, *route.Set, canned) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "testdata", "events", "update-opportunity-bench.json"))
	if err != nil {
		b.Fatal(err)
	}
	full, err := dataverse.Decode(raw)
	if err != nil {
		b.Fatal(err)
	}
	w := testenv.StartWebAPI(b)
	var cols []string
	row := map[string]any{}
	for k, v := range full.Row {
		switch k {
		case "SdkMessage", "ItemInternalId", "RunAsSystemUserId":
			continue
		}
		row[k] = v
		if !strings.Contains(k, "@") {
			cols = append(cols, k)
		}
	}
	slices.Sort(cols)
	w.AddTable(testenv.WebAPITable{LogicalName: full.Table, EntitySetName: full.Table + "s", PrimaryID: full.Table + "id", Columns: cols})
	w.SetRow(full.Table, full.RecordID, row)

	var ctx map[string]json.RawMessage
	if err := json.Unmarshal(raw, &ctx); err != nil {
		b.Fatal(err)
	}
	for _, k := range []string{"ParentContext", "InputParameters", "PreEntityImages", "PostEntityImages"} {
		delete(ctx, k)
	}
	small, _ := json.Marshal(ctx)
	ev, err := dataverse.Decode(small)
	if err != nil || !ev.SizeExceeded {
		b.Fatalf("stripped event: %v (sizeExceeded %v)", err, ev != nil && ev.SizeExceeded)
	}
	sel := make([]string, 0, len(cols))
	for _, c := range cols {
		if c != full.Table+"id" {
			sel = append(sel, c)
		}
	}
	src := "consumers:\n  - {name: c, type: http, url: \"https://c.example.com/\"}\nroutes:\n" +
		"  - {name: all, table: " + full.Table + ", filter: \"estimatedvalue gt 0\", select: [" + strings.Join(sel, ", ") + "], consumers: [c]}\n"
	rf, err := config.LoadRoutesBytes("bench.yaml", []byte(src), nil)
	if err != nil {
		b.Fatal(err)
	}
	routes, err := route.Compile(rf, route.Options{})
	if err != nil {
		b.Fatal(err)
	}

	// Record the stand-in's answers for the in-process variant.
	get := func(path string, prefer bool) []byte {
		req, _ := http.NewRequest(http.MethodGet, w.URL+webapi.APIPath+path, nil)
		tok, _ := w.Credential().GetToken(context.Background(), tokenOpts(w.URL))
		req.Header.Set("Authorization", "Bearer "+tok.Token)
		if prefer {
			req.Header.Set("Prefer", `odata.include-annotations="*"`)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 200 {
			b.Fatalf("GET %s: %v %v", path, resp, err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return body
	}
	readCols, _ := routes.Reads(ev)
	c := canned{
		defs:    get("EntityDefinitions?$filter=LogicalName%20eq%20'"+full.Table+"'&$select=EntitySetName,PrimaryIdAttribute", false),
		lookups: get("EntityDefinitions(LogicalName='"+full.Table+"')/Attributes/Microsoft.Dynamics.CRM.LookupAttributeMetadata?$select=LogicalName", false),
	}
	tbl := webapiSelect(readCols, c.lookups)
	c.row = get(full.Table+"s("+full.RecordID+")?$select="+tbl, true)
	return w, ev, routes, c
}

// webapiSelect spells the columns as the client selects them (lookups as _x_value).
func webapiSelect(cols []string, lookups []byte) string {
	var l struct {
		Value []struct{ LogicalName string } `json:"value"`
	}
	_ = json.Unmarshal(lookups, &l)
	out := make([]string, len(cols))
	for i, c := range cols {
		out[i] = c
		for _, v := range l.Value {
			if v.LogicalName == c {
				out[i] = "_" + c + "_value"
			}
		}
	}
	return strings.Join(out, ",")
}

// BenchmarkEnrichment dispatches the size-exceeded bench event (no deliveries: its one route
// matches, the deliverer does nothing), which reads its row (every column the route reads)
// from the Web API first. inprocess answers from memory, so its time is the enrichment's CPU
// (plus a Match of one route, and copying the event's four-column row); loopback goes to the
// stand-in over loopback HTTP and reports the row reads per event.
func BenchmarkEnrichment(b *testing.B) {
	w, ev, routes, c := enrichmentSetup(b)
	run := func(b *testing.B, httpClient *http.Client, count func() int) {
		rows, err := webapi.New(map[string]string{ev.OrganizationID: w.URL}, webapi.Options{Credential: w.Credential(), HTTPClient: httpClient})
		if err != nil {
			b.Fatal(err)
		}
		d := &dispatch.Dispatcher{Routes: routes, Deliver: nopDeliverer{}, Rows: rows, Log: zerolog.Nop()}
		ctx := context.Background()
		if _, err := d.Dispatch(ctx, copyEvent(ev)); err != nil { // the table's definition, once
			b.Fatal(err)
		}
		before := count()
		b.ReportAllocs()
		b.ResetTimer()
		for b.Loop() {
			e := copyEvent(ev)
			res, err := d.Dispatch(ctx, e)
			if err != nil || len(res.Matched) != 1 || !e.Reread {
				b.Fatalf("dispatch: %+v, %v (reread %v)", res, err, e.Reread)
			}
		}
		b.StopTimer()
		if count != nil {
			b.ReportMetric(float64(count()-before)/float64(b.N), "reads/op")
		}
	}
	b.Run("inprocess", func(b *testing.B) {
		n := 0
		run(b, &http.Client{Transport: countingTransport{c, &n}}, func() int { return n })
	})
	b.Run("loopback", func(b *testing.B) {
		run(b, &http.Client{Transport: http.DefaultTransport}, w.RowReads)
	})
}

// BenchmarkEnrichmentVsDecode alternates a decode of the bench event with the in-process
// enrichment of its size-exceeded twin, timing each, so that both see the same machine load:
// it reports each one's mean and their ratio, which must stay at or under 1. The enrichment is
// the dispatch with the read less the same dispatch without it (Match, copying the event).
func BenchmarkEnrichmentVsDecode(b *testing.B) {
	w, ev, routes, c := enrichmentSetup(b)
	raw, err := os.ReadFile(filepath.Join("..", "..", "testdata", "events", "update-opportunity-bench.json"))
	if err != nil {
		b.Fatal(err)
	}
	rows, err := webapi.New(map[string]string{ev.OrganizationID: w.URL}, webapi.Options{Credential: w.Credential(), HTTPClient: &http.Client{Transport: c}})
	if err != nil {
		b.Fatal(err)
	}
	d := &dispatch.Dispatcher{Routes: routes, Deliver: nopDeliverer{}, Rows: rows, Log: zerolog.Nop()}
	ctx := context.Background()
	if _, err := d.Dispatch(ctx, copyEvent(ev)); err != nil {
		b.Fatal(err)
	}
	// The same dispatch without the read: what is left after subtracting it is the
	// enrichment's own CPU.
	plain := &dispatch.Dispatcher{Routes: routes, Deliver: nopDeliverer{}, Log: zerolog.Nop()}
	var tDecode, tWith, tWithout time.Duration
	n := 0
	b.ReportAllocs()
	for b.Loop() {
		t0 := time.Now()
		if _, err := dataverse.Decode(raw); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		e := copyEvent(ev)
		if _, err := d.Dispatch(ctx, e); err != nil || !e.Reread {
			b.Fatal(err)
		}
		t2 := time.Now()
		if _, err := plain.Dispatch(ctx, copyEvent(ev)); err != nil {
			b.Fatal(err)
		}
		tDecode += t1.Sub(t0)
		tWith += t2.Sub(t1)
		tWithout += time.Since(t2)
		n++
	}
	enrich := tWith - tWithout
	b.ReportMetric(float64(tDecode.Nanoseconds())/float64(n), "decode-ns/op")
	b.ReportMetric(float64(enrich.Nanoseconds())/float64(n), "enrich-ns/op")
	b.ReportMetric(float64(enrich)/float64(tDecode), "enrich/decode")
}

type countingTransport struct {
	rt http.RoundTripper
	n  *int
}

func (t countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if !strings.Contains(r.URL.Path, "EntityDefinitions") {
		*t.n++
	}
	return t.rt.RoundTrip(r)
}

func copyEvent(ev *dataverse.Event) *dataverse.Event {
	e := *ev
	e.Row = make(dataverse.Row, len(ev.Row))
	for k, v := range ev.Row {
		e.Row[k] = v
	}
	return &e
}

func tokenOpts(envURL string) policy.TokenRequestOptions {
	return policy.TokenRequestOptions{Scopes: []string{envURL + "/.default"}}
}

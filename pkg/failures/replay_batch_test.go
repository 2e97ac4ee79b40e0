package failures_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/dvrouter/dvrouter/internal/testenv"
	"github.com/dvrouter/dvrouter/pkg/config"
	"github.com/dvrouter/dvrouter/pkg/deliver"
	"github.com/dvrouter/dvrouter/pkg/dispatch"
	"github.com/dvrouter/dvrouter/pkg/failures"
	"github.com/dvrouter/dvrouter/pkg/route"
)

// A bulk replay to a dataverse consumer goes as $batch change sets of up to 100, with every
// failure still claimed and settled on its own; the Web API is the stand-in, the store Azurite.

// newDataverseReplayFixture is newReplayFixture with erp a dataverse consumer mirroring contacts
// into new_contactmirror (keyed by new_sourceid) of the stand-in w.
func newDataverseReplayFixture(t *testing.T, az *testenv.Azurite, w *testenv.WebAPI, mode string) *replayFixture {
	t.Helper()
	replayTables++
	store, err := failures.Open(context.Background(), failures.Config{ConnectionString: az.ConnectionString(), Table: fmt.Sprintf("Replayer%d", replayTables)})
	if err != nil {
		t.Fatal(err)
	}
	rf, err := config.LoadRoutesBytes("routes.yaml", []byte(`consumers:
  - name: erp
    type: dataverse
    environment: "`+w.URL+`"
    table: new_contactmirror
    key: [new_sourceid]
    mode: `+mode+`
    retry: {attempts: 3, initialDelay: 10ms, maxDelay: 100ms}
    breaker: {minRequests: 1000}
    columns: {new_sourceid: contactid}
routes:
  - {name: contacts-to-erp, table: contact, consumers: [erp]}
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	log := zerolog.Nop()
	routes, err := route.Compile(rf, route.Options{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	fx := &replayFixture{t: t, store: store}
	fx.deliverer, err = deliver.New(rf.Consumers, store, deliver.Options{Budget: 10 * time.Second, Logger: log, Credential: w.Credential()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = fx.deliverer.Close(context.Background()) })
	d := &dispatch.Dispatcher{Routes: routes, Deliver: fx.deliverer, Recorder: store, Log: log}
	fx.replayer = &failures.Replayer{Store: store, Sender: fx.deliverer, Router: d, Budget: 10 * time.Second, Log: log}
	return fx
}

func mirrorStandIn(t *testing.T) *testenv.WebAPI {
	w := testenv.StartWebAPI(t).EnableWrites()
	w.AddTable(testenv.WebAPITable{LogicalName: "new_contactmirror", EntitySetName: "new_contactmirrors", PrimaryID: "new_contactmirrorid",
		Columns: []string{"new_sourceid"}})
	return w
}

// batches counts the $batch requests and the other writes the stand-in was sent.
func batches(w *testenv.WebAPI) (batch, single int) {
	for _, r := range w.Requests() {
		switch {
		case r.Method == http.MethodPost && strings.HasSuffix(r.Path, "$batch"):
			batch++
		case r.Method != http.MethodGet:
			single++
		}
	}
	return batch, single
}

func TestReplayer_DataverseBatches(t *testing.T) {
	az := testenv.StartAzurite(t)
	ctx := context.Background()
	who := failures.Actor{Name: "ann", Key: "support"}

	t.Run("ReplayMatching_250FailuresGoAsThreeChangeSets", func(t *testing.T) {
		w := mirrorStandIn(t)
		fx := newDataverseReplayFixture(t, az, w, "upsert")
		const n = 250
		for i := range n {
			fx.keep(i)
		}

		out, err := fx.replayer.ReplayMatching(ctx, failures.Query{Consumer: "erp"}, n, false, who)

		if err != nil || out.Matched != n || out.Delivered != n {
			t.Fatalf("outcome %+v, %v: want all %d delivered", out, err, n)
		}
		if b, s := batches(w); b != 3 || s != 0 {
			t.Errorf("%d $batch requests and %d single writes, want 3 batches (100+100+50: pages of 200) and none", b, s)
		}
		if rows := w.RowCount("new_contactmirror"); rows != n {
			t.Errorf("%d rows, want %d", rows, n)
		}
		left, err := fx.store.List(ctx, failures.Query{Consumer: "erp", Status: "pending"})
		if err != nil || len(left.Items) != 0 {
			t.Errorf("pending after the replay: %d, %v", len(left.Items), err)
		}
	})

	t.Run("ReplayMatching_AFailedChangeSetFallsBackToEachItsOwnOutcome", func(t *testing.T) {
		w := mirrorStandIn(t)
		fx := newDataverseReplayFixture(t, az, w, "create")
		const n = 30
		for i := range n {
			fx.keep(i)
		}
		// One row is there already: a create-only write of it fails, and with it the change set.
		w.SetRow("new_contactmirror", "00000000-0000-4000-8000-000000000001", map[string]any{"new_sourceid": fmt.Sprintf("%08x-3d4e-4f60-8b70-%012x", 7, 7)})

		out, err := fx.replayer.ReplayMatching(ctx, failures.Query{Consumer: "erp"}, n, false, who)

		if err != nil || out.Delivered != n-1 || out.Failed != 1 || out.Skipped != 0 {
			t.Fatalf("outcome %+v, %v: want %d delivered, the conflicting one failed", out, err, n-1)
		}
		if b, s := batches(w); b != 1 || s != n {
			t.Errorf("%d batches, %d single writes; want the change set, then each on its own", b, s)
		}
		left, err := fx.store.List(ctx, failures.Query{Consumer: "erp", Status: "pending"})
		if err != nil || len(left.Items) != 1 || left.Items[0].LastStatusCode != http.StatusPreconditionFailed || left.Items[0].Attempts != 5 {
			t.Fatalf("pending %+v, %v: want the conflicting one kept, attempts 4+1, with its 412", left.Items, err)
		}
	})

	t.Run("ReplayMatching_ThrottledBatchWaitsAndLosesNothing", func(t *testing.T) {
		w := mirrorStandIn(t)
		fx := newDataverseReplayFixture(t, az, w, "upsert")
		const n = 120
		for i := range n {
			fx.keep(i)
		}
		w.ThrottleAfter(2, 2, "0.05") // the metadata reads, then two 429s

		out, err := fx.replayer.ReplayMatching(ctx, failures.Query{Consumer: "erp"}, n, false, who)

		if err != nil || out.Delivered != n || w.RowCount("new_contactmirror") != n {
			t.Fatalf("outcome %+v, %v, rows %d: want all %d delivered after the waits", out, err, w.RowCount("new_contactmirror"), n)
		}
	})
}

package dispatch_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/dvrouter/dvrouter/internal/testenv"
	"github.com/dvrouter/dvrouter/pkg/config"
	"github.com/dvrouter/dvrouter/pkg/dataverse"
	"github.com/dvrouter/dvrouter/pkg/deliver"
	"github.com/dvrouter/dvrouter/pkg/dispatch"
	"github.com/dvrouter/dvrouter/pkg/failures"
	"github.com/dvrouter/dvrouter/pkg/route"
)

func compile(t *testing.T, yaml string) (*config.RouteFile, *route.Set) {
	t.Helper()
	f, err := config.LoadRoutesBytes("routes.yaml", []byte(yaml), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	s, err := route.Compile(f, route.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return f, s
}

func event(t *testing.T, name string) *dataverse.Event {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "testdata", "events", name))
	if err != nil {
		t.Fatal(err)
	}
	ev, err := dataverse.Decode(raw)
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

func TestTargets_OneDeliveryPerConsumerShapedByTheFirstRoute(t *testing.T) {
	_, s := compile(t, `
consumers:
  - {name: a, type: http, url: "http://127.0.0.1:1/a"}
  - {name: b, type: http, url: "http://127.0.0.1:1/b"}
routes:
  - {name: first, table: "*", exclude: [emailaddress1], consumers: [a]}
  - {name: second, table: "*", consumers: [a, b]}
`)
	got := dispatch.Targets(s.Routes())
	if len(got) != 2 || got[0].Consumer != "a" || got[0].Route != "first" || len(got[0].Exclude) != 1 ||
		got[1].Consumer != "b" || got[1].Route != "second" {
		t.Fatalf("targets = %+v", got)
	}
}

func TestDispatch_DeliversToMatchedConsumersAndRecordsFailures(t *testing.T) {
	az := testenv.StartAzurite(t)
	store, err := failures.Open(context.Background(), failures.Config{ConnectionString: az.ConnectionString(), Table: "DispatchTest"})
	if err != nil {
		t.Fatal(err)
	}
	good := testenv.StartConsumer(t)
	bad := testenv.StartConsumer(t)
	bad.Otherwise(testenv.ReplyStatus(http.StatusBadRequest))
	f, s := compile(t, `
consumers:
  - {name: good, type: http, url: "`+good.URL+`"}
  - {name: bad, type: http, url: "`+bad.URL+`"}
  - {name: idle, type: http, url: "http://127.0.0.1:1/never"}
routes:
  - {name: accounts, table: account, consumers: [good, bad]}
  - {name: contacts, table: contact, consumers: [idle]}
`)
	d, err := deliver.New(f.Consumers, store, deliver.Options{Budget: 5 * time.Second, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close(context.Background())
	disp := &dispatch.Dispatcher{Routes: s, Deliver: d, Recorder: store, Log: zerolog.Nop()}

	ev := event(t, "update-account-async-images.json")
	res, err := disp.Dispatch(context.Background(), ev)
	if err != nil {
		t.Fatal(err)
	}
	if res.ID != ev.ID || len(res.Matched) != 1 || len(res.Delivered) != 1 || res.Delivered[0] != "good" || len(res.Failed) != 1 || res.Failed[0] != "bad" {
		t.Fatalf("result = %+v", res)
	}
	page, err := store.List(context.Background(), failures.Query{Consumer: "bad"})
	if err != nil || len(page.Items) != 1 || page.Items[0].EventID != ev.ID || page.Items[0].Route != "accounts" {
		t.Fatalf("failures = %+v (err %v)", page.Items, err)
	}
}

func TestRecordPoison_KeepsTheRawBytes(t *testing.T) {
	az := testenv.StartAzurite(t)
	store, err := failures.Open(context.Background(), failures.Config{ConnectionString: az.ConnectionString(), Table: "PoisonTest"})
	if err != nil {
		t.Fatal(err)
	}
	disp := &dispatch.Dispatcher{Recorder: store, Log: zerolog.Nop()}
	body := []byte{0x40, 0x01, 0xff, 0x00}
	err = disp.RecordPoison(context.Background(), dispatch.Poison{Body: body, MessageID: "m-1", Reason: errors.New("binary XML")})
	if err != nil {
		t.Fatal(err)
	}
	page, err := store.List(context.Background(), failures.Query{Kind: string(failures.KindPoison)})
	if err != nil || len(page.Items) != 1 {
		t.Fatalf("poison entries = %d (err %v)", len(page.Items), err)
	}
	kept, _, err := store.Get(context.Background(), page.Items[0].ID)
	if err != nil || !bytes.Equal(kept.Payload, body) || kept.MessageID != "m-1" || kept.LastError != "binary XML" {
		t.Fatalf("kept = %+v (err %v)", kept, err)
	}
}

func TestRecordPoison_WithoutAStoreIsNotDurable(t *testing.T) {
	disp := &dispatch.Dispatcher{Log: zerolog.Nop()}
	err := disp.RecordPoison(context.Background(), dispatch.Poison{Body: []byte("x"), Reason: errors.New("bad")})
	if !errors.Is(err, dispatch.ErrNoStore) {
		t.Fatalf("err = %v, want ErrNoStore", err)
	}
}

func TestResult_AppendJSONMatchesEncodingJSON(t *testing.T) {
	if n := reflect.TypeFor[dispatch.Result]().NumField(); n != 4 {
		t.Fatalf("Result has %d fields; AppendJSON writes 4: teach it the new one", n)
	}
	cases := []dispatch.Result{
		{ID: "3f2a9c1e-5b7d-8e4f-9a0b-1c2d3e4f5a6b", Matched: []string{"contacts-to-erp"}, Delivered: []string{"erp"}, Failed: []string{}},
		{ID: "e", Matched: []string{}, Delivered: []string{}, Failed: []string{}},
		{ID: "e", Matched: []string{"a", "b"}, Delivered: []string{"x"}, Failed: []string{"y", "z"}},
		{},
		{ID: `quote " backslash \ <html> & tab	nl
 ctl` + "\x01 é \u2028 \xff", Matched: []string{"<r>", "ü"}, Delivered: []string{"a&b"}, Failed: []string{"\x7f"}},
	}
	for c := 0; c < 256; c++ { // every byte value, as an id and as a name
		cases = append(cases, dispatch.Result{ID: "a" + string(rune(c)) + string([]byte{byte(c)}), Matched: []string{string([]byte{byte(c)})}})
	}
	for _, r := range cases {
		want, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		if got := r.AppendJSON([]byte("prefix:")); string(got) != "prefix:"+string(want) {
			t.Errorf("AppendJSON(%+v) =\n%s\nwant\nprefix:%s", r, got, want)
		}
	}
}

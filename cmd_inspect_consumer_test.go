package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/dvrouter/dvrouter/pkg/config"
	"github.com/dvrouter/dvrouter/pkg/dataverse"
	"github.com/dvrouter/dvrouter/pkg/deliver"
	"github.com/dvrouter/dvrouter/pkg/dispatch"
	"github.com/dvrouter/dvrouter/pkg/route"
)

// The delivery encoder writes a row's columns in Go's map order, which differs from one encoding
// to the next (pkg/deliver/jsonenc.go: sorting would cost a third of the encoding), so two
// deliveries of one event may order a row's members differently. Byte-for-byte comparison
// therefore selects one column per row; the wide route is compared as JSON.
const consumerRoutes = `consumers:
  - {name: rows, type: http, url: "%BASE%/rows"}
  - {name: structured, type: http, url: "%BASE%/structured", format: cloudevent}
  - {name: binary, type: http, url: "%BASE%/binary", format: cloudevent, cloudevent: {mode: binary}}
  - {name: original, type: http, url: "%BASE%/original", format: raw}
  - {name: contacts, type: http, url: "%BASE%/contacts"}
  - {name: wide, type: http, url: "%BASE%/wide", format: cloudevent}
routes:
  - name: accounts
    table: account
    select: [name, telephone1]
    exclude: [telephone1]
    consumers: [rows, structured, binary]
  - name: accounts-wide
    table: account
    select: [name, revenue, primarycontactid, telephone1]
    exclude: [telephone1]
    consumers: [wide]
  - name: accounts-raw
    table: account
    consumers: [original]
  - name: contacts
    table: contact
    consumers: [contacts]
`

// inspect --consumer prints what delivery sends: the test delivers the same event to a loopback
// consumer through package deliver and compares the bytes received with the bytes printed.
func TestInspect_ConsumerBodyIsByteForByteWhatDeliverySends(t *testing.T) {
	var mu sync.Mutex
	received := map[string][]byte{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		received[strings.TrimPrefix(r.URL.Path, "/")] = b
		mu.Unlock()
	}))
	defer srv.Close()
	env := map[string]string{"BASE": srv.URL}
	path := writeRoutes(t, consumerRoutes)
	event := filepath.Join("testdata", "events", "update-account-async-images.json")

	// Delivery, as serve does it: decode, match, one target per consumer, send.
	rf, err := config.LoadRoutes(path, lookup(envOf(env)))
	if err != nil {
		t.Fatal(err)
	}
	set, err := route.Compile(rf, route.Options{})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(event)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := dataverse.DecodeBody(raw, "application/json", dataverse.DecodeOptions{Lookups: rf.Lookups})
	if err != nil {
		t.Fatal(err)
	}
	d, err := deliver.New(rf.Consumers, nil, deliver.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close(context.Background())
	targets := dispatch.Targets(set.Match(ev))
	if len(targets) != 5 {
		t.Fatalf("targets %+v, want rows, structured, binary, original and wide", targets)
	}
	for _, tg := range targets {
		if r := d.Send(context.Background(), ev, tg); !r.Delivered {
			t.Fatalf("deliver to %s: %+v", tg.Consumer, r)
		}
	}

	printed := map[string][]byte{}
	for _, name := range []string{"rows", "structured", "binary", "original", "wide"} {
		var out, errOut bytes.Buffer
		code := runInspect([]string{"--routes", path, "--consumer", name, event}, strings.NewReader(""), &out, &errOut, envOf(env))
		if code != 0 {
			t.Fatalf("%s: exit %d, stderr %q", name, code, errOut.String())
		}
		printed[name] = out.Bytes()
		if name != "wide" && !bytes.Equal(out.Bytes(), received[name]) {
			t.Errorf("%s: inspect printed\n%s\nthe consumer received\n%s", name, out.Bytes(), received[name])
		}
	}
	if !bytes.Contains(received["rows"], []byte(`"row":{"name":"Fabrikam"}`)) {
		t.Errorf("rows: select and exclude not applied: %s", received["rows"])
	}
	var got, want any
	if err := json.Unmarshal(printed["wide"], &got); err != nil {
		t.Fatalf("wide: %v", err)
	}
	if err := json.Unmarshal(received["wide"], &want); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("wide: inspect printed\n%s\nthe consumer received\n%s", printed["wide"], received["wide"])
	}

	// The shaping is there to see: select and exclude applied, in the consumer's format.
	var wide struct {
		Data struct {
			Row map[string]any `json:"row"`
		} `json:"data"`
	}
	if err := json.Unmarshal(received["wide"], &wide); err != nil {
		t.Fatal(err)
	}
	if len(wide.Data.Row) == 0 {
		t.Error("wide: empty row")
	}
	for k := range wide.Data.Row {
		if c := strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(strings.SplitN(k, "@", 2)[0], "_"), "_value")); c != "name" && c != "revenue" && c != "primarycontactid" {
			t.Errorf("row key %q: not selected, or excluded", k)
		}
	}
	if !bytes.HasPrefix(received["structured"], []byte(`{"specversion":"1.0",`)) {
		t.Errorf("structured: %s", received["structured"])
	}
	if !bytes.Equal(received["original"], raw) && !bytes.Equal(received["original"], bytes.TrimPrefix(raw, []byte("\xef\xbb\xbf"))) {
		t.Error("original: not the payload as received")
	}
}

func TestInspect_ConsumerThatReceivesNothingOrDoesNotExist(t *testing.T) {
	path := writeRoutes(t, consumerRoutes)
	env := envOf(map[string]string{"BASE": "http://127.0.0.1:1"})
	event := filepath.Join("testdata", "events", "update-account-async-images.json")
	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--routes", path, "--consumer", "contacts", event}, 1, `consumer "contacts" receives nothing for this event: it matches none of the routes that feed it (contacts)`},
		{[]string{"--routes", path, "--consumer", "nobody", event}, 1, `--consumer "nobody": no such consumer`},
		{[]string{"--consumer", "rows", event}, 2, "--consumer needs --routes"},
	}
	for _, c := range cases {
		var out, errOut bytes.Buffer
		code := runInspect(c.args, strings.NewReader(""), &out, &errOut, env)
		if code != c.code || !strings.Contains(errOut.String(), c.want) || out.Len() != 0 {
			t.Errorf("inspect %q: exit %d, stdout %q, stderr %q; want exit %d and %q", c.args, code, out.String(), errOut.String(), c.code, c.want)
		}
	}
}

func TestInspect_PrettyIndentsTheSameJSON(t *testing.T) {
	event := filepath.Join("testdata", "events", "update-account-async-images.json")
	_, plain, _ := inspect(t, "", event)
	code, pretty, errOut := inspect(t, "", "--pretty", event)
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	if !strings.HasPrefix(pretty, "{\n  \"id\": ") || strings.Count(pretty, "\n") < 20 {
		t.Errorf("not indented: %q", pretty[:min(len(pretty), 80)])
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, []byte(pretty)); err != nil {
		t.Fatal(err)
	}
	if compact.String()+"\n" != plain {
		t.Error("--pretty changed the event, not only its layout")
	}

	path := writeRoutes(t, consumerRoutes)
	var out, errBuf bytes.Buffer
	if code := runInspect([]string{"--routes", path, "--consumer", "rows", "--pretty", event}, strings.NewReader(""), &out, &errBuf,
		envOf(map[string]string{"BASE": "http://127.0.0.1:1"})); code != 0 || !strings.HasPrefix(out.String(), "{\n  ") {
		t.Errorf("--consumer --pretty: exit %d, stdout %q, stderr %q", code, out.String(), errBuf.String())
	}
}

package deliver_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dvrouter/dvrouter/internal/testenv"
	"github.com/dvrouter/dvrouter/pkg/config"
	"github.com/dvrouter/dvrouter/pkg/deliver"
)

// verifyStandardWebhook checks a request the way the Standard Webhooks specification tells a
// receiver to, written from the published scheme rather than from dvrouter's signer: the key is
// the base64 after an optional "whsec_", the signed content is
// "<webhook-id>.<webhook-timestamp>.<body>", the signature header holds space-separated
// "v1,<base64 HMAC-SHA256>" entries, and the timestamp must be within 5 minutes.
func verifyStandardWebhook(secret string, h http.Header, body []byte) bool {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		return false
	}
	id, ts, sigs := h.Get("webhook-id"), h.Get("webhook-timestamp"), h.Get("webhook-signature")
	sec, err := strconv.ParseInt(ts, 10, 64)
	if id == "" || err != nil || sigs == "" {
		return false
	}
	if d := time.Since(time.Unix(sec, 0)); d > 5*time.Minute || d < -5*time.Minute {
		return false
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + ts + "."))
	mac.Write(body)
	want := mac.Sum(nil)
	for _, s := range strings.Fields(sigs) {
		version, sig, ok := strings.Cut(s, ",")
		if !ok || version != "v1" {
			continue
		}
		got, err := base64.StdEncoding.DecodeString(sig)
		if err == nil && hmac.Equal(got, want) {
			return true
		}
	}
	return false
}

func TestHTTP_StandardWebhooksSignatureVerifies(t *testing.T) {
	oldKey := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	newKey := base64.StdEncoding.EncodeToString([]byte("fedcba9876543210fedcba9876543210"))
	cases := []struct {
		name, setting string
		secrets       []string // each must verify on its own
	}{
		{"whsec secret", "whsec_" + oldKey, []string{"whsec_" + oldKey}},
		{"unprefixed base64 secret", oldKey, []string{oldKey}},
		{"two secrets while rotating", "whsec_" + oldKey + " whsec_" + newKey, []string{"whsec_" + oldKey, "whsec_" + newKey}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := testenv.StartConsumer(t, testenv.ReplyStatus(http.StatusServiceUnavailable))
			c := consumerConfig("erp", srv.URL)
			httpSpec(&c).SigningSecret = tc.setting
			f := newDeliverer(t, 0, c)

			f.deliverOne(t, "erp")

			for _, req := range srv.Requests() {
				if n := len(strings.Fields(req.Header.Get("webhook-signature"))); n != len(tc.secrets) {
					t.Errorf("attempt %d: %d signatures, want one per secret (%d)", req.Attempt, n, len(tc.secrets))
				}
				for _, secret := range tc.secrets {
					if !verifyStandardWebhook(secret, req.Header, req.Body) {
						t.Errorf("attempt %d: signature %q does not verify", req.Attempt, req.Header.Get("webhook-signature"))
					}
				}
				if got := req.Header.Get("webhook-id"); got != testEvent().ID {
					t.Errorf("webhook-id = %q, want the event id", got)
				}
				if verifyStandardWebhook(base64.StdEncoding.EncodeToString([]byte("another key, 24 bytes long")), req.Header, req.Body) {
					t.Error("signature verifies with the wrong secret")
				}
				if verifyStandardWebhook(tc.secrets[0], req.Header, append(bytes.Clone(req.Body), ' ')) {
					t.Error("signature verifies for a changed body")
				}
			}
		})
	}
}

func TestNew_RejectsAMalformedWhsecSecret(t *testing.T) {
	c := consumerConfig("erp", "http://127.0.0.1:1")
	httpSpec(&c).SigningSecret = "whsec_not*base64"

	_, err := deliver.New([]config.Consumer{c}, &memRecorder{}, deliver.Options{})

	if err == nil || !strings.Contains(err.Error(), "erp") {
		t.Errorf("New = %v, want an error naming the consumer", err)
	}
}

// received delivers the test event through a route with sel and excl to a consumer of format
// and returns what the consumer got.
func received(t *testing.T, format string, sel, excl []string) testenv.ReceivedRequest {
	t.Helper()
	srv := testenv.StartConsumer(t)
	c := consumerConfig("erp", srv.URL)
	c.Format = format
	f := newDeliverer(t, 0, c)
	tg := deliver.Target{Route: "contacts", Consumer: "erp", Select: sel, Exclude: excl}
	out, err := f.d.Deliver(t.Context(), testEvent(), []deliver.Target{tg})
	if err != nil || len(out.Delivered) != 1 {
		t.Fatalf("Deliver = %+v, %v", out, err)
	}
	return srv.Requests()[0]
}

func TestFormat_RawSendsTheBytesAsReceived(t *testing.T) {
	req := received(t, deliver.FormatRaw, nil, nil)

	if !bytes.Equal(req.Body, testEvent().Raw) {
		t.Errorf("body = %s, want the raw event bytes", req.Body)
	}
	if ct := req.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
}

func TestFormat_RawLeavesOutTheByteOrderMark(t *testing.T) {
	srv := testenv.StartConsumer(t)
	c := consumerConfig("erp", srv.URL)
	c.Format = deliver.FormatRaw
	f := newDeliverer(t, 0, c)
	ev := testEvent()
	want := ev.Raw
	ev.Raw = append([]byte("\xEF\xBB\xBF"), ev.Raw...)

	if out, err := f.d.Deliver(t.Context(), ev, []deliver.Target{{Route: "r", Consumer: "erp"}}); err != nil || len(out.Delivered) != 1 {
		t.Fatalf("Deliver = %+v, %v", out, err)
	}

	if got := srv.Requests()[0].Body; !bytes.Equal(got, want) {
		t.Errorf("body = %q, want the context without its BOM", got)
	}
}

func TestFormat_RowSendsTheNormalizedEvent(t *testing.T) {
	req := received(t, deliver.FormatRow, nil, nil)

	var got map[string]any
	dec := json.NewDecoder(bytes.NewReader(req.Body))
	dec.UseNumber()
	if err := dec.Decode(&got); err != nil {
		t.Fatalf("body is not JSON: %v", err)
	}
	want := testEvent()
	if got["id"] != want.ID || got["table"] != "contact" || got["message"] != "Update" || got["recordId"] != want.RecordID {
		t.Errorf("event fields = %v", got)
	}
	row := got["row"].(map[string]any)
	if row["creditlimit"] != json.Number("12345678901234567890.50") {
		t.Errorf("creditlimit = %v, want the exact decimal", row["creditlimit"])
	}
	if !bytes.Contains(req.Body, []byte("Contoso <Ltd>")) {
		t.Error("HTML characters were escaped; want them as Dataverse sent them")
	}
}

func TestFormat_RowIsShapedBySelectAndExclude(t *testing.T) {
	cases := []struct {
		name       string
		sel, excl  []string
		row, image []string // keys expected in row and in postImage
		changed    []string
	}{
		{
			name: "select keeps columns and their annotations",
			sel:  []string{"firstname", "parentcustomerid", "statecode"},
			row: []string{"_parentcustomerid_value", "_parentcustomerid_value@Microsoft.Dynamics.CRM.lookuplogicalname",
				"_parentcustomerid_value@OData.Community.Display.V1.FormattedValue", "firstname", "statecode",
				"statecode@OData.Community.Display.V1.FormattedValue"},
			image:   []string{"firstname"},
			changed: []string{"parentcustomerid"},
		},
		{
			name:    "exclude drops columns and their annotations",
			excl:    []string{"emailaddress1", "_parentcustomerid_value", "statecode"},
			row:     []string{"contactid", "creditlimit", "firstname", "lastname"},
			image:   []string{"firstname", "fullname"},
			changed: []string{},
		},
		{
			name:    "exclude wins over select",
			sel:     []string{"firstname", "emailaddress1"},
			excl:    []string{"EmailAddress1"},
			row:     []string{"firstname"},
			image:   []string{"firstname"},
			changed: []string{},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := received(t, deliver.FormatRow, tc.sel, tc.excl)

			var got struct {
				Row       map[string]any `json:"row"`
				PostImage map[string]any `json:"postImage"`
				Changed   []string       `json:"changedColumns"`
			}
			if err := json.Unmarshal(req.Body, &got); err != nil {
				t.Fatal(err)
			}
			if keys := sortedKeys(got.Row); !slices.Equal(keys, tc.row) {
				t.Errorf("row keys = %v, want %v", keys, tc.row)
			}
			if keys := sortedKeys(got.PostImage); !slices.Equal(keys, tc.image) {
				t.Errorf("postImage keys = %v, want %v", keys, tc.image)
			}
			if !slices.Equal(got.Changed, tc.changed) {
				t.Errorf("changedColumns = %v, want %v", got.Changed, tc.changed)
			}
		})
	}
}

// Without the webhook's x-ms-dynamics-organization (a queued event from Service Bus, a replay),
// source still names the environment, by its organization id; a consumer's own source wins.
func TestFormat_CloudEventSourceWithoutTheOrgHost(t *testing.T) {
	cases := []struct {
		name, fixed, want string
	}{
		{"from the organization id", "", "urn:dataverse:org:0f0e0d0c-0000-4000-8000-00000000000a"},
		{"configured", "https://crm.contoso.com/", "https://crm.contoso.com/"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := testenv.StartConsumer(t)
			c := consumerConfig("erp", srv.URL)
			c.Format = deliver.FormatCloudEvent
			c.CloudEvent = config.CloudEvent{Mode: "binary", Source: tc.fixed}
			f := newDeliverer(t, 0, c)
			ev := testEvent()
			ev.OrganizationHost = ""
			if out, err := f.d.Deliver(t.Context(), ev, []deliver.Target{{Route: "r", Consumer: "erp"}}); err != nil || len(out.Delivered) != 1 {
				t.Fatalf("Deliver = %+v, %v", out, err)
			}
			h := srv.Requests()[0].Header
			if got := h.Get("ce-source"); got != tc.want {
				t.Errorf("ce-source = %q, want %q", got, tc.want)
			}
			if got := h.Get("ce-type"); got != "com.microsoft.dataverse.contact.update" {
				t.Errorf("ce-type = %q", got)
			}
			if got := h.Get("Content-Type"); got != "application/json" {
				t.Errorf("Content-Type = %q, want the data's in binary mode", got)
			}
		})
	}
}

func TestFormat_CloudEvent(t *testing.T) {
	req := received(t, deliver.FormatCloudEvent, nil, []string{"emailaddress1"})

	if ct := req.Header.Get("Content-Type"); ct != "application/cloudevents+json" {
		t.Errorf("Content-Type = %q, want application/cloudevents+json", ct)
	}
	var ce map[string]any
	if err := json.Unmarshal(req.Body, &ce); err != nil {
		t.Fatal(err)
	}
	ev := testEvent()
	want := map[string]any{
		"specversion":     "1.0",
		"id":              ev.ID,
		"source":          "https://contoso.crm4.dynamics.com/",
		"type":            "com.microsoft.dataverse.contact.update",
		"subject":         ev.RecordID,
		"time":            "2024-05-01T10:00:00.123Z",
		"datacontenttype": "application/json",
	}
	for k, v := range want {
		if ce[k] != v {
			t.Errorf("%s = %v, want %v", k, ce[k], v)
		}
	}
	data, _ := ce["data"].(map[string]any)
	row, _ := data["row"].(map[string]any)
	if data["id"] != ev.ID || row["firstname"] != "Ada" {
		t.Errorf("data = %v, want the normalized event", data)
	}
	if _, ok := row["emailaddress1"]; ok {
		t.Error("data.row has the excluded column")
	}
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func TestDeliver_EachTargetGetsItsOwnRoutesShape(t *testing.T) {
	a, b, c := testenv.StartConsumer(t), testenv.StartConsumer(t), testenv.StartConsumer(t)
	f := newDeliverer(t, 0, consumerConfig("a", a.URL), consumerConfig("b", b.URL), consumerConfig("c", c.URL))

	_, err := f.d.Deliver(t.Context(), testEvent(), []deliver.Target{
		{Route: "r1", Consumer: "a", Select: []string{"firstname"}},
		{Route: "r2", Consumer: "b", Exclude: []string{"firstname"}},
		{Route: "r1", Consumer: "c", Select: []string{"firstname"}},
	})
	if err != nil {
		t.Fatal(err)
	}

	rowOf := func(srv *testenv.Consumer) map[string]any {
		var ev struct {
			Row map[string]any `json:"row"`
		}
		if err := json.Unmarshal(srv.Requests()[0].Body, &ev); err != nil {
			t.Fatal(err)
		}
		return ev.Row
	}
	if keys := sortedKeys(rowOf(a)); !slices.Equal(keys, []string{"firstname"}) {
		t.Errorf("a got row %v, want only firstname", keys)
	}
	if _, ok := rowOf(b)["firstname"]; ok || len(rowOf(b)) < 2 {
		t.Errorf("b got row %v, want every column but firstname", sortedKeys(rowOf(b)))
	}
	if keys := sortedKeys(rowOf(c)); !slices.Equal(keys, []string{"firstname"}) {
		t.Errorf("c got row %v, want only firstname", keys)
	}
}

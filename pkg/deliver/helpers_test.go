package deliver_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/dvrouter/dvrouter/internal/testenv"

	"github.com/dvrouter/dvrouter/pkg/config"
	"github.com/dvrouter/dvrouter/pkg/dataverse"
	"github.com/dvrouter/dvrouter/pkg/deliver"
	"github.com/dvrouter/dvrouter/pkg/deliver/httpdest"
	"github.com/dvrouter/dvrouter/pkg/failures"
)

// testEvent is an Update of a contact, written for these tests in the normalized event's shape.
func testEvent() *dataverse.Event {
	const recordID = "6d3b1f5e-2c4a-4e8b-9f10-0a1b2c3d4e5f"
	raw := fmt.Appendf(nil, `{"CorrelationId":"9a8b7c6d-0000-4000-8000-000000000001","MessageName":"Update",`+
		`"OperationCreatedOn":"\/Date(1714557600123)\/","OrganizationId":"0f0e0d0c-0000-4000-8000-00000000000a",`+
		`"PrimaryEntityId":"%s","PrimaryEntityName":"contact"}`, recordID)
	return &dataverse.Event{
		ID:                 "evt-2b7e151628aed2a6",
		Message:            "Update",
		Table:              "contact",
		RecordID:           recordID,
		Stage:              40,
		Mode:               "async",
		Depth:              1,
		OrganizationID:     "0f0e0d0c-0000-4000-8000-00000000000a",
		OrganizationName:   "contoso",
		CorrelationID:      "9a8b7c6d-0000-4000-8000-000000000001",
		OperationID:        "11111111-0000-4000-8000-000000000002",
		UserID:             "22222222-0000-4000-8000-000000000003",
		InitiatingUserID:   "22222222-0000-4000-8000-000000000003",
		BusinessUnitID:     "33333333-0000-4000-8000-000000000004",
		OperationCreatedOn: "2024-05-01T10:00:00Z",
		OperationCreatedAt: time.UnixMilli(1714557600123).UTC(),
		OrganizationHost:   "contoso.crm4.dynamics.com",
		ChangedColumns:     []string{"emailaddress1", "parentcustomerid"},
		Row: dataverse.Row{
			"contactid":               recordID,
			"firstname":               "Ada",
			"lastname":                "Lovelace",
			"emailaddress1":           "ada@example.com",
			"_parentcustomerid_value": "44444444-0000-4000-8000-000000000005",
			"_parentcustomerid_value@Microsoft.Dynamics.CRM.lookuplogicalname":  "account",
			"_parentcustomerid_value@OData.Community.Display.V1.FormattedValue": "Contoso <Ltd>",
			"statecode": json.Number("0"),
			"statecode@OData.Community.Display.V1.FormattedValue": "Active",
			"creditlimit": json.Number("12345678901234567890.50"),
		},
		PreImage:    dataverse.Row{"emailaddress1": "old@example.com", "firstname": "Ada"},
		PostImage:   dataverse.Row{"emailaddress1": "ada@example.com", "firstname": "Ada", "fullname": "Ada Lovelace"},
		HasPreImage: true,
		Raw:         raw,
	}
}

// consumerConfig is an HTTP consumer with every default filled, as package config would, but
// with delays short enough for tests.
func consumerConfig(name, url string) config.Consumer {
	return config.Consumer{
		Name:           name,
		Type:           "http",
		Format:         deliver.FormatRow,
		Timeout:        2 * time.Second,
		Retry:          config.Retry{Attempts: 4, InitialDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond},
		Breaker:        config.Breaker{FailureRatio: 0.5, MinRequests: 1000, OpenFor: time.Minute, HalfOpenRequests: 1},
		MaxConcurrency: 16,
		Spec:           httpdest.Spec{URL: url, Method: "POST"},
	}
}

// httpSpec is c's http settings, to change in place.
func httpSpec(c *config.Consumer) *httpdest.Spec {
	switch s := c.Spec.(type) {
	case *httpdest.Spec:
		return s
	case httpdest.Spec:
		c.Spec = &s
		return &s
	}
	s := &httpdest.Spec{}
	c.Spec = s
	return s
}

// memRecorder keeps failures in memory, or refuses them when err is set. It stands in for the
// Table Storage store, which has its own tests against Azurite.
type memRecorder struct {
	mu  sync.Mutex
	got []failures.Failure
	err error
}

func (m *memRecorder) Record(_ context.Context, f failures.Failure) (failures.Failure, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return failures.Failure{}, m.err
	}
	f.ID = fmt.Sprintf("f%d", len(m.got)+1)
	m.got = append(m.got, f)
	return f, nil
}

func (m *memRecorder) failures() []failures.Failure {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]failures.Failure(nil), m.got...)
}

// logBuffer collects JSON log lines from several goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(l.buf.Bytes()))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("log line %q: %v", sc.Text(), err)
		}
		out = append(out, m)
	}
	return out
}

// withMsg returns the log lines whose msg is msg.
func (l *logBuffer) withMsg(t *testing.T, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, m := range l.lines(t) {
		if m[zerolog.MessageFieldName] == msg {
			out = append(out, m)
		}
	}
	return out
}

type fixture struct {
	d    *deliver.Deliverer
	rec  *memRecorder
	logs *logBuffer
}

func newDeliverer(t *testing.T, budget time.Duration, consumers ...config.Consumer) fixture {
	t.Helper()
	f := fixture{rec: &memRecorder{}, logs: &logBuffer{}}
	d, err := deliver.New(consumers, f.rec, deliver.Options{Budget: budget, Logger: zerolog.New(f.logs)})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = d.Close(context.Background()) })
	f.d = d
	return f
}

func target(consumer string) deliver.Target {
	return deliver.Target{Route: "contacts", Consumer: consumer}
}

// deliverOne delivers the test event to one consumer and returns its Result.
func (f fixture) deliverOne(t *testing.T, consumer string) deliver.Result {
	t.Helper()
	out, err := f.d.Deliver(context.Background(), testEvent(), []deliver.Target{target(consumer)})
	if err != nil {
		t.Fatalf("Deliver: %v", err)
	}
	all := append(out.Delivered, out.Failed...)
	if len(all) != 1 {
		t.Fatalf("Deliver: %d results, want 1", len(all))
	}
	return all[0]
}

func attemptsOf(reqs []testenv.ReceivedRequest) []int {
	out := make([]int, len(reqs))
	for i, r := range reqs {
		out[i] = r.Attempt
	}
	return out
}

var errStoreDown = errors.New("table storage unavailable")

package loadtest_test

import (
	"bytes"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dvrouter/dvrouter/internal/testenv"
	"github.com/dvrouter/dvrouter/loadtest"
	"github.com/dvrouter/dvrouter/pkg/dataverse"
)

func templates(t *testing.T) []*loadtest.Template {
	t.Helper()
	ts, err := loadtest.LoadTemplates(filepath.Join(testenv.RepoRoot(), "testdata", "events"))
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

func TestTemplateEvent_SameSeqIsSameEvent(t *testing.T) {
	for _, tpl := range templates(t) {
		a, b := tpl.Event("run", 7), tpl.Event("run", 7)
		if !bytes.Equal(a.Body, b.Body) {
			t.Errorf("%s: event 7 made twice differs", tpl.Name)
		}
	}
}

func TestTemplateEvent_EveryEventHasItsOwnIDAndDecodes(t *testing.T) {
	next := loadtest.Mix(templates(t), "run")
	seen := map[string]int{}
	for seq := range 240 {
		ev := next(seq)
		decoded, err := dataverse.Decode(ev.Body)
		if err != nil {
			t.Fatalf("event %d (%s) does not decode: %v", seq, ev.Template.Name, err)
		}
		if prev, dup := seen[decoded.ID]; dup {
			t.Fatalf("events %d and %d share id %s", prev, seq, decoded.ID)
		}
		seen[decoded.ID] = seq
		if decoded.CorrelationID != ev.CorrelationID || decoded.Table != ev.Template.Table {
			t.Errorf("event %d: correlation %s table %s, want %s %s", seq, decoded.CorrelationID, decoded.Table, ev.CorrelationID, ev.Template.Table)
		}
		if !strings.EqualFold(decoded.RecordID, ev.RecordID) {
			t.Errorf("event %d (%s): record id %s, want %s", seq, ev.Template.Name, decoded.RecordID, ev.RecordID)
		}
	}
}

func TestConsumer_CountsOnlyDeliveriesItAccepted(t *testing.T) {
	c, err := loadtest.StartConsumer("erp")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	post := func(id string) int {
		req, _ := http.NewRequest(http.MethodPost, c.URL, strings.NewReader("{}"))
		req.Header.Set("Idempotency-Key", id)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	c.SetFault(&loadtest.Fault{Status: http.StatusInternalServerError})
	if got := post("a"); got != http.StatusInternalServerError {
		t.Fatalf("faulty consumer answered %d, want 500", got)
	}
	c.SetFault(nil)
	post("a")
	post("a")
	post("b")
	if c.Delivered("a") != 2 || c.Delivered("b") != 1 || c.Requests() != 4 {
		t.Errorf("delivered a=%d b=%d of %d requests, want a=2 b=1 of 4", c.Delivered("a"), c.Delivered("b"), c.Requests())
	}
}

func TestConsumer_RefusedThenBackOnTheSamePort(t *testing.T) {
	c, err := loadtest.StartConsumer("erp")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	client := &http.Client{Timeout: 2 * time.Second}
	c.Refuse()
	if resp, err := client.Post(c.URL, "application/json", strings.NewReader("{}")); err == nil {
		resp.Body.Close()
		t.Fatalf("refusing consumer answered %s", resp.Status)
	}
	if err := c.Accept(); err != nil {
		t.Fatal(err)
	}
	resp, err := client.Post(c.URL, "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatalf("consumer back: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("consumer back answered %s", resp.Status)
	}
}

func TestPercentile(t *testing.T) {
	ms := func(ns ...int) []time.Duration {
		var out []time.Duration
		for _, n := range ns {
			out = append(out, time.Duration(n)*time.Millisecond)
		}
		return out
	}
	tests := []struct {
		name string
		in   []time.Duration
		p    float64
		want time.Duration
	}{
		{"none", nil, 50, 0},
		{"one", ms(5), 99, 5 * time.Millisecond},
		{"median of ten, unsorted", ms(10, 1, 9, 2, 8, 3, 7, 4, 6, 5), 50, 5 * time.Millisecond},
		{"p90 of ten", ms(10, 1, 9, 2, 8, 3, 7, 4, 6, 5), 90, 9 * time.Millisecond},
		{"p100 is the largest", ms(3, 1, 2), 100, 3 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := loadtest.Percentile(tt.in, tt.p); got != tt.want {
				t.Errorf("Percentile(%v, %v) = %v, want %v", tt.in, tt.p, got, tt.want)
			}
		})
	}
}

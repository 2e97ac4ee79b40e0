package failures

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
)

// listFixture records failures that differ in every filtered field, some sharing an instant.
func listFixture(t *testing.T, s *Store) []Failure {
	t.Helper()
	ctx := testCtx(t)
	var all []Failure
	for i := range 60 {
		f := deliveryFailure(i, []string{"erp", "crm", "o'brien"}[i%3])
		f.OccurredAt = baseTime.Add(time.Duration(i/2) * time.Minute) // pairs share an instant
		f.EventID = fmt.Sprintf("evt-%06d", i/3)                      // one event, three consumers
		f.RecordID = fmt.Sprintf("%08d-0000-0000-0000-00000000abcd", i/2)
		f.CorrelationID = fmt.Sprintf("corr-%d", i%4)
		if i%4 == 0 {
			f.Kind = KindBreakerOpen
		}
		if i%5 == 0 {
			f.Table = "account"
		}
		if i%7 == 0 {
			f.Consumer, f.Kind, f.MessageID = "", KindPoison, fmt.Sprintf("msg-%d", i)
		}
		rec, err := s.Record(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		switch i % 6 {
		case 1:
			if err := s.Discard(ctx, rec.ID, "", "alice", "test"); err != nil {
				t.Fatal(err)
			}
			rec.Status = StatusDiscarded
		case 2:
			etag, err := s.Claim(ctx, rec.ID, "", "alice")
			if err != nil {
				t.Fatal(err)
			}
			if err := s.MarkReplayed(ctx, rec.ID, etag, nil, "alice"); err != nil {
				t.Fatal(err)
			}
			rec.Status = StatusReplayed
		}
		all = append(all, rec)
	}
	return all
}

func TestList_PagesReturnEveryItemOnceNewestFirst(t *testing.T) {
	s := newStore(t)
	all := listFixture(t, s)
	at := func(min int) time.Time { return baseTime.Add(time.Duration(min) * time.Minute) }
	tests := []struct {
		name  string
		q     Query
		match func(Failure) bool
	}{
		{"everything", Query{}, func(Failure) bool { return true }},
		{"consumer", Query{Consumer: "erp"}, func(f Failure) bool { return f.Consumer == "erp" }},
		{"consumer with a quote", Query{Consumer: "o'brien"}, func(f Failure) bool { return f.Consumer == "o'brien" }},
		{"status", Query{Status: "pending"}, func(f Failure) bool { return f.Status == StatusPending }},
		{"kind", Query{Kind: "poison"}, func(f Failure) bool { return f.Kind == KindPoison }},
		{"table", Query{Table: "account"}, func(f Failure) bool { return f.Table == "account" }},
		{"from (inclusive)", Query{From: at(10)}, func(f Failure) bool { return !f.OccurredAt.Before(at(10)) }},
		{"to (exclusive)", Query{To: at(10)}, func(f Failure) bool { return f.OccurredAt.Before(at(10)) }},
		{"from and to", Query{From: at(5), To: at(20)}, func(f Failure) bool {
			return !f.OccurredAt.Before(at(5)) && f.OccurredAt.Before(at(20))
		}},
		{"everything at once", Query{Consumer: "crm", Status: "pending", Kind: "delivery", Table: "contact", From: at(3), To: at(27)},
			func(f Failure) bool {
				return f.Consumer == "crm" && f.Status == StatusPending && f.Kind == KindDelivery && f.Table == "contact" &&
					!f.OccurredAt.Before(at(3)) && f.OccurredAt.Before(at(27))
			}},
		{"event", Query{EventID: "evt-000004"}, func(f Failure) bool { return f.EventID == "evt-000004" }},
		{"record", Query{Table: "contact", RecordID: "00000003-0000-0000-0000-00000000abcd"}, func(f Failure) bool {
			return f.Table == "contact" && f.RecordID == "00000003-0000-0000-0000-00000000abcd"
		}},
		{"record in upper case", Query{Table: "contact", RecordID: "00000003-0000-0000-0000-00000000ABCD"}, func(f Failure) bool {
			return f.Table == "contact" && f.RecordID == "00000003-0000-0000-0000-00000000abcd"
		}},
		{"record in another table", Query{Table: "account", RecordID: "00000005-0000-0000-0000-00000000abcd"}, func(f Failure) bool {
			return f.Table == "account" && f.RecordID == "00000005-0000-0000-0000-00000000abcd"
		}},
		{"correlation", Query{CorrelationID: "CORR-1"}, func(f Failure) bool { return f.CorrelationID == "corr-1" }},
		{"correlation and consumer", Query{CorrelationID: "corr-2", Consumer: "crm"}, func(f Failure) bool {
			return f.CorrelationID == "corr-2" && f.Consumer == "crm"
		}},
		{"nothing matches", Query{Consumer: "nobody"}, func(Failure) bool { return false }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var want []string
			for _, f := range all {
				if tt.match(f) {
					want = append(want, f.ID)
				}
			}
			// Newest first; one instant in RowKey order, which is the id without its shard.
			slices.SortFunc(want, func(a, b string) int { return strings.Compare(a[3:], b[3:]) })

			var got []string
			q := tt.q
			q.Top = 7
			for pages := 0; ; pages++ {
				if pages > len(all) {
					t.Fatal("paging does not end")
				}
				page, err := s.List(testCtx(t), q)
				if err != nil {
					t.Fatal(err)
				}
				if len(page.Items) > 7 {
					t.Fatalf("page of %d items, Top is 7", len(page.Items))
				}
				for _, f := range page.Items {
					if f.Payload != nil {
						t.Fatalf("%s listed with its payload", f.ID)
					}
					if f.PayloadSize == 0 {
						t.Fatalf("%s listed without its payload size", f.ID)
					}
					got = append(got, f.ID)
				}
				if page.Continuation == "" {
					break
				}
				q.Continuation = page.Continuation
			}
			if !slices.Equal(got, want) {
				t.Errorf("listed %d:\n%v\nwant %d:\n%v", len(got), got, len(want), want)
			}
		})
	}
}

func TestList_ItemsCarryTheirFields(t *testing.T) {
	s := newStore(t)
	ctx := testCtx(t)
	rec, err := s.Record(ctx, deliveryFailure(1, "erp"))
	if err != nil {
		t.Fatal(err)
	}
	page, err := s.List(ctx, Query{})
	if err != nil {
		t.Fatal(err)
	}
	rec.Payload, rec.History = nil, nil // lists carry neither
	if len(page.Items) != 1 || !reflect.DeepEqual(page.Items[0], rec) {
		t.Errorf("listed %+v\nwant %+v", page.Items, rec)
	}
}

func TestList_RejectsBadQueries(t *testing.T) {
	s := newStore(t)
	for name, q := range map[string]Query{
		"unknown status":           {Status: "lost"},
		"unknown kind":             {Kind: "weird"},
		"negative top":             {Top: -1},
		"record without table":     {RecordID: "00000001-0000-0000-0000-000000000000"},
		"to before from":           {From: baseTime, To: baseTime.Add(-time.Hour)},
		"garbage continuation":     {Continuation: "abc"},
		"continuation with quote":  {Continuation: "c1.r' or 1 eq 1"},
		"continuation wrong shape": {Continuation: "c1.r123-abc"},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := s.List(testCtx(t), q); !errors.Is(err, ErrInvalid) {
				t.Errorf("List = %v, want ErrInvalid", err)
			}
		})
	}
}

func TestList_TopAboveMaxIsCapped(t *testing.T) {
	s := newStore(t)
	if _, err := s.List(testCtx(t), Query{Top: MaxTop * 10}); err != nil {
		t.Fatal(err)
	}
}

// countRows counts the rows of partition pk with lo <= RowKey < hi.
func countRows(t *testing.T, s *Store, pk, lo, hi string) int {
	t.Helper()
	filter := fmt.Sprintf("PartitionKey eq '%s' and RowKey ge '%s' and RowKey lt '%s'", pk, lo, hi)
	sel := "RowKey"
	pager := s.client.NewListEntitiesPager(&aztables.ListEntitiesOptions{Filter: &filter, Select: &sel})
	n := 0
	for pager.More() {
		page, err := pager.NextPage(testCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		n += len(page.Entities)
	}
	return n
}

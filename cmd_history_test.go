package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/dvrouter/dvrouter/handlers"
	"github.com/dvrouter/dvrouter/internal/testenv"
	"github.com/dvrouter/dvrouter/pkg/config"
	"github.com/dvrouter/dvrouter/pkg/dispatch"
	"github.com/dvrouter/dvrouter/pkg/journal"
	"github.com/dvrouter/dvrouter/pkg/supportapi"
	"github.com/dvrouter/dvrouter/pkg/tables"
)

func TestHistoryCLI(t *testing.T) {
	az := testenv.StartAzurite(t)
	j, err := journal.Open(context.Background(), journal.Config{Account: tables.Account{ConnectionString: az.ConnectionString()},
		FlushInterval: 20 * time.Millisecond, Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close(context.Background()) })
	at := time.Date(2024, 7, 25, 9, 30, 0, 0, time.UTC)
	j.Add(journal.Entry{At: at, EventID: "ev-1", CorrelationID: "corr-1", Table: "account", RecordID: "rec-1", Message: "Update",
		Route: "accounts", Consumer: "erp", Outcome: journal.Failed, AttemptCount: 3, StatusCode: 503, Duration: 2 * time.Second,
		Error: "consumer answered 503", Attempts: []journal.Attempt{{At: at, StatusCode: 503, Duration: time.Second, Error: "busy"}}})
	j.Add(journal.Entry{At: at.Add(time.Minute), EventID: "ev-1", CorrelationID: "corr-1", Table: "account", RecordID: "rec-1",
		Route: "accounts", Consumer: "erp", Outcome: journal.Replayed, AttemptCount: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := j.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	settings := &config.Settings{AdminKeys: []config.AdminKey{{Name: "support", Key: cliKey}}}
	srv := httptest.NewServer(handlers.New(handlers.Deps{Settings: settings, Dispatcher: &dispatch.Dispatcher{}, History: j, Log: zerolog.Nop()}))
	t.Cleanup(srv.Close)
	env := map[string]string{"DVROUTER_ENDPOINT": srv.URL, "DVROUTER_ADMIN_KEY": cliKey}
	history := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := run(append([]string{"history"}, args...), strings.NewReader(""), &out, &errb, func(k string) string { return env[k] })
		return code, out.String(), errb.String()
	}

	for _, args := range [][]string{
		{"--event", "ev-1"},
		{"--record", "account/rec-1"},
		{"--correlation", "corr-1"},
		{"--consumer", "erp", "--since", "2024-07-25", "--until", "2024-07-25"},
	} {
		code, out, errOut := history(args...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, errOut)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 4 || !strings.Contains(lines[1], "replayed") || !strings.Contains(lines[2], "failed") ||
			!strings.Contains(lines[2], "503") || !strings.Contains(lines[3], "attempt 09:30:00.000") {
			t.Errorf("%v:\n%s", args, out)
		}
	}
	code, out, _ := history("--event", "ev-1", "--json")
	var h supportapi.History
	if code != 0 || json.Unmarshal([]byte(out), &h) != nil || len(h.Items) != 2 || len(h.Items[1].Attempts) != 1 {
		t.Errorf("--json: %d %s", code, out)
	}
	if code, out, _ := history("--event", "nope"); code != 0 || !strings.Contains(out, "nothing in the journal matches") {
		t.Errorf("no match: %d %s", code, out)
	}
	for _, args := range [][]string{{}, {"--event", "a", "--consumer", "b"}, {"--consumer", "erp"}, {"--record", "account"}, {"extra"}} {
		if code, _, _ := history(args...); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
	if code, _, errOut := history("--consumer", "erp", "--since", "25/07/2024"); code != 1 || !strings.Contains(errOut, "2024-07-25") {
		t.Errorf("bad date: %d %s", code, errOut)
	}
}

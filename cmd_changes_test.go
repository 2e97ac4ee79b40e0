package main

import (
	"bytes"
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/dvrouter/dvrouter/handlers"
	"github.com/dvrouter/dvrouter/pkg/changes"
	"github.com/dvrouter/dvrouter/pkg/config"
	"github.com/dvrouter/dvrouter/pkg/dispatch"
)

// fakeChanges is change tracking with one table and a recorded reset.
type fakeChanges struct{ resetBy string }

func (f *fakeChanges) Run(context.Context) ([]changes.Report, error) { return nil, nil }
func (f *fakeChanges) Status(context.Context) ([]changes.TableStatus, error) {
	at := time.Date(2024, 7, 25, 9, 30, 0, 0, time.UTC)
	return []changes.TableStatus{{State: changes.State{Table: "account", TokenAt: at, LastRunAt: at, Pending: true, PagesRead: 2,
		Changed: 12000, Deleted: 3, FullReads: 1}, Configured: true, Stale: true}}, nil
}
func (f *fakeChanges) Reset(_ context.Context, table, by string) error {
	if table != "account" {
		return changes.ErrUnknownTable
	}
	f.resetBy = by
	return nil
}

func TestChangesCLI(t *testing.T) {
	fake := &fakeChanges{}
	settings := &config.Settings{AdminKeys: []config.AdminKey{{Name: "support", Key: cliKey}},
		Changes: config.Changes{Environment: "https://contoso.crm4.dynamics.com", Schedule: "0 */5 * * * *", StaleAfter: 15 * time.Minute}}
	srv := httptest.NewServer(handlers.New(handlers.Deps{Settings: settings, Dispatcher: &dispatch.Dispatcher{}, Changes: fake, Log: zerolog.Nop()}))
	t.Cleanup(srv.Close)
	env := map[string]string{"DVROUTER_ENDPOINT": srv.URL, "DVROUTER_ADMIN_KEY": cliKey}
	cli := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := run(append([]string{"changes"}, args...), strings.NewReader(""), &out, &errb, func(k string) string { return env[k] })
		return code, out.String(), errb.String()
	}
	code, out, errOut := cli("status")
	if code != 0 || !strings.Contains(out, "https://contoso.crm4.dynamics.com") || !strings.Contains(out, "2024-07-25 09:30:00") ||
		!strings.Contains(out, "yes, 2 read") || !strings.Contains(out, "STALE") {
		t.Fatalf("status: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = cli("reset", "--table", "account")
	if code != 0 || fake.resetBy != "support" || !strings.Contains(out, "account: token forgotten by support") {
		t.Fatalf("reset: exit %d\n%s%s", code, out, errOut)
	}
	if code, _, errOut = cli("reset", "--table", "contact"); code != 1 || !strings.Contains(errOut, "no route reads this table") {
		t.Fatalf("reset of an unknown table: exit %d, %s", code, errOut)
	}
	if code, _, _ = cli("reset"); code != 2 {
		t.Fatalf("reset without --table: exit %d, want 2", code)
	}
}

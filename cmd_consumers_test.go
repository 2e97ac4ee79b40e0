package main

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/dvrouter/dvrouter/internal/testenv"
	"github.com/dvrouter/dvrouter/pkg/config"
	"github.com/dvrouter/dvrouter/pkg/dataverse"
	"github.com/dvrouter/dvrouter/pkg/deliver"
	"github.com/dvrouter/dvrouter/pkg/failures"
)

// runConsumersCLI runs `dvrouter consumers args...` against the fixture's API.
func (fx *cliFixture) consumers(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	env := map[string]string{"DVROUTER_ENDPOINT": fx.url, "DVROUTER_ADMIN_KEY": cliKey}
	code := run(append([]string{"consumers"}, args...), strings.NewReader(""), &out, &errb, func(k string) string { return env[k] })
	return code, out.String(), errb.String()
}

func TestConsumersCLI_PauseListResumeReplayResetTest(t *testing.T) {
	fx := newCLIFixture(t, testenv.StartAzurite(t), config.Breaker{})

	code, out, errOut := fx.consumers("pause", "erp", "--reason", "ERP upgrade")
	if code != 0 || !strings.Contains(out, "erp paused") {
		t.Fatalf("pause: %d %q %q", code, out, errOut)
	}
	if code, out, _ := fx.consumers("pause", "erp"); code != 0 || !strings.Contains(out, "already paused") || !strings.Contains(out, "by support") {
		t.Errorf("pause again: %d %q, want already paused by support", code, out)
	}
	code, out, _ = fx.consumers()
	if code != 0 || !strings.Contains(out, "PAUSED") || !strings.Contains(out, "by support") || !strings.Contains(out, "ERP upgrade") {
		t.Errorf("list: %d %q, want erp paused by support with the reason", code, out)
	}

	for i := range 3 {
		raw, _ := cliContact(i)
		ev, err := dataverse.Decode(raw)
		if err != nil {
			t.Fatal(err)
		}
		outc, err := fx.d.Deliver(context.Background(), ev, []deliver.Target{{Route: "contacts-to-erp", Consumer: "erp", Exclude: []string{"emailaddress1"}}})
		if err != nil || len(outc.Failed) != 1 || outc.Failed[0].Kind != failures.KindPaused {
			t.Fatalf("deliver while paused: %+v, %v", outc, err)
		}
	}
	if fx.erp.Count() != 0 {
		t.Fatalf("erp got %d requests while paused", fx.erp.Count())
	}
	if code, out, _ := runCLI(map[string]string{"DVROUTER_ENDPOINT": fx.url, "DVROUTER_ADMIN_KEY": cliKey}, "list", "--kind", "paused"); code != 0 || strings.Count(out, "paused") < 3 {
		t.Errorf("failures list --kind paused: %d %q", code, out)
	}
	if code, _, errOut := runCLI(map[string]string{"DVROUTER_ENDPOINT": fx.url, "DVROUTER_ADMIN_KEY": cliKey}, "replay", "--consumer", "erp", "--kind", "paused"); code == 0 && fx.erp.Count() != 0 {
		t.Errorf("replay while paused sent something: %q", errOut)
	}

	if code, out, _ := fx.consumers("resume", "erp"); code != 0 || !strings.Contains(out, "--kind paused") {
		t.Errorf("resume: %d %q, want the replay hint", code, out)
	}
	code, out, errOut = runCLI(map[string]string{"DVROUTER_ENDPOINT": fx.url, "DVROUTER_ADMIN_KEY": cliKey}, "replay", "--consumer", "erp", "--kind", "paused")
	if code != 0 || fx.erp.Count() != 3 {
		t.Errorf("replay after resume: %d %q %q; erp got %d, want 3", code, out, errOut, fx.erp.Count())
	}

	if code, out, _ := fx.consumers("reset", "erp"); code != 0 || !strings.Contains(out, "already closed") {
		t.Errorf("reset: %d %q", code, out)
	}
	code, out, _ = fx.consumers("test", "erp")
	if code != 0 || !strings.Contains(out, "delivered to erp") {
		t.Errorf("test: %d %q", code, out)
	}
	if last := fx.erp.Requests()[fx.erp.Count()-1]; last.Header.Get("X-Dvrouter-Test") != "true" {
		t.Errorf("the test request lacks X-Dvrouter-Test: %v", last.Header)
	}
	fx.erp.Otherwise(testenv.ReplyStatus(http.StatusBadGateway))
	if code, out, _ := fx.consumers("test", "erp"); code != 1 || !strings.Contains(out, "NOT delivered") || !strings.Contains(out, "502") {
		t.Errorf("failed test: %d %q, want exit 1 saying why", code, out)
	}
}

func TestConsumersCLI_Errors(t *testing.T) {
	fx := newCLIFixture(t, testenv.StartAzurite(t), config.Breaker{})
	if code, _, errOut := fx.consumers("pause", "nope"); code != 1 || !strings.Contains(errOut, `"nope"`) {
		t.Errorf("unknown consumer: %d %q, want exit 1 naming it", code, errOut)
	}
	if code, _, errOut := fx.consumers("pause"); code != 2 || !strings.Contains(errOut, "needs one consumer NAME") {
		t.Errorf("no name: %d %q", code, errOut)
	}
	if code, _, errOut := fx.consumers("explode"); code != 2 || !strings.Contains(errOut, "unknown consumers command") {
		t.Errorf("unknown command: %d %q", code, errOut)
	}
	if code, out, _ := fx.consumers("--help"); code != 0 || !strings.Contains(out, "dvrouter consumers pause NAME") {
		t.Errorf("help: %d %q", code, out)
	}
}

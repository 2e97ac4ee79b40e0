package main

import (
	"bytes"
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"
)

func TestRun_NoArgumentsPrintsHelpOutsideTheHost(t *testing.T) {
	var out, errOut bytes.Buffer
	code := run(nil, strings.NewReader(""), &out, &errOut, envOf(nil))
	if code != 2 {
		t.Fatalf("exit %d, want 2", code)
	}
	if !strings.Contains(errOut.String(), "Usage:") || !strings.Contains(errOut.String(), "dvrouter serve") {
		t.Fatalf("stderr %q: want the usage", errOut.String())
	}
	if out.Len() != 0 {
		t.Fatalf("stdout %q, want nothing", out.String())
	}
}

// The host starts the binary with host.json's customHandler.description.arguments; they must
// say `serve`, since without arguments dvrouter prints its help.
func TestHostJSON_PassesServe(t *testing.T) {
	raw, err := os.ReadFile("host.json")
	if err != nil {
		t.Fatal(err)
	}
	var host struct {
		CustomHandler struct {
			Description struct {
				DefaultExecutablePath string   `json:"defaultExecutablePath"`
				Arguments             []string `json:"arguments"`
			} `json:"description"`
		} `json:"customHandler"`
	}
	if err := json.Unmarshal(raw, &host); err != nil {
		t.Fatalf("host.json: %v", err)
	}
	if got := host.CustomHandler.Description.Arguments; !reflect.DeepEqual(got, []string{"serve"}) {
		t.Fatalf("host.json customHandler.description.arguments = %q, want [serve]", got)
	}
	if got := host.CustomHandler.Description.DefaultExecutablePath; got != "dvrouter" {
		t.Fatalf("defaultExecutablePath = %q, want dvrouter", got)
	}
}

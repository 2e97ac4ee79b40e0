package dataverse

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/golden from the current decoder")

// eventFiles lists the project's own payloads.
func eventFiles(t testing.TB) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(eventsDir, "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no payloads in %s (%v)", eventsDir, err)
	}
	return files
}

func readEvent(t testing.TB, name string) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(eventsDir, name))
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// TestGolden decodes every payload in testdata/events and compares the normalized event with
// testdata/golden/<same name>, so any change to the output shows up in review.
// Run `go test ./pkg/dataverse -run Golden -update` to accept a change.
func TestGolden(t *testing.T) {
	for _, path := range eventFiles(t) {
		name := filepath.Base(path)
		t.Run(strings.TrimSuffix(name, ".json"), func(t *testing.T) {
			raw, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			ev, err := Decode(raw)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			var buf bytes.Buffer
			enc := json.NewEncoder(&buf)
			enc.SetEscapeHTML(false)
			enc.SetIndent("", "  ")
			if err := enc.Encode(ev); err != nil {
				t.Fatal(err)
			}
			got := buf.Bytes()
			golden := filepath.Join(goldenDir, name)
			if *update {
				if err := os.MkdirAll(goldenDir, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("normalized event differs from %s (run with -update to accept):\n%s", golden, got)
			}
		})
	}
}

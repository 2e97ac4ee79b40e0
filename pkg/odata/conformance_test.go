package odata

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// oasisCase is one case of testdata/oasis-filter-cases.json (see testdata/README.md).
type oasisCase struct {
	Name    string `json:"name"`
	Filter  string `json:"filter"`
	Valid   bool   `json:"valid"`
	FailAt  *int   `json:"failAt"`
	Derived string `json:"derived"`
}

// stillRefused lists the in-scope OASIS cases this package refuses on purpose, with the reason;
// docs/routes.md lists the same. Empty today.
var stillRefused = map[string]string{}

// TestOASISConformance runs the OASIS ABNF test cases of the supported $filter subset: a valid
// filter compiles, an invalid one is refused at the position the case names.
func TestOASISConformance(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "oasis-filter-cases.json"))
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Licence string      `json:"licence"`
		Cases   []oasisCase `json:"cases"`
	}
	if err := json.Unmarshal(raw, &file); err != nil {
		t.Fatal(err)
	}
	if file.Licence == "" || len(file.Cases) < 60 {
		t.Fatalf("testdata/oasis-filter-cases.json: licence %q, %d cases", file.Licence, len(file.Cases))
	}
	for _, c := range file.Cases {
		t.Run(c.Name+": "+c.Filter, func(t *testing.T) {
			_, err := Compile(c.Filter)
			if why, ok := stillRefused[c.Filter]; ok {
				if err == nil {
					t.Fatalf("accepted, but listed as still refused (%s): remove it from stillRefused and docs/routes.md", why)
				}
				return
			}
			if c.Valid {
				if err != nil {
					t.Fatalf("refused a valid filter: %v", err)
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("accepted an invalid filter (err %v)", err)
			}
			if c.FailAt != nil && e.Offset != *c.FailAt {
				t.Errorf("refused at offset %d (%v), want %d", e.Offset, err, *c.FailAt)
			}
		})
	}
}

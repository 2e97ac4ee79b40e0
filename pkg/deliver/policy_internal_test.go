package deliver

import (
	"testing"
	"time"

	"github.com/dvrouter/dvrouter/pkg/config"
)

func TestBackoff_FullJitterUnderAnExponentialCeiling(t *testing.T) {
	p := config.Retry{Attempts: 8, InitialDelay: 100 * time.Millisecond, MaxDelay: time.Second}
	ceilings := map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 3: 400 * time.Millisecond, 4: 800 * time.Millisecond, 5: time.Second, 7: time.Second}
	for n, ceiling := range ceilings {
		var most time.Duration
		for range 2000 {
			d := backoff(p, n, 0)
			if d < 0 || d > ceiling {
				t.Fatalf("retry %d waited %s, want within [0, %s]", n, d, ceiling)
			}
			most = max(most, d)
		}
		// 2000 uniform draws all below 80% of the ceiling happen with probability 0.8^2000.
		if most < ceiling*8/10 {
			t.Errorf("retry %d: longest of 2000 waits %s, want the whole range up to %s used", n, most, ceiling)
		}
	}
}

func TestBackoff_RetryAfterWinsButIsCappedAtMaxDelay(t *testing.T) {
	p := config.Retry{Attempts: 4, InitialDelay: time.Second, MaxDelay: 30 * time.Second}
	cases := []struct{ retryAfter, want time.Duration }{
		{2 * time.Second, 2 * time.Second},
		{10 * time.Millisecond, 10 * time.Millisecond},
		{time.Hour, 30 * time.Second},
	}
	for _, tc := range cases {
		if got := backoff(p, 1, tc.retryAfter); got != tc.want {
			t.Errorf("Retry-After %s: waited %s, want %s", tc.retryAfter, got, tc.want)
		}
	}
}

func TestColumn_OfRowKeys(t *testing.T) {
	cases := map[string]string{
		"firstname": "firstname",
		"FirstName": "firstname",
		"statecode@OData.Community.Display.V1.FormattedValue":               "statecode",
		"_parentcustomerid_value":                                           "parentcustomerid",
		"_parentcustomerid_value@Microsoft.Dynamics.CRM.lookuplogicalname":  "parentcustomerid",
		"_parentcustomerid_value@OData.Community.Display.V1.FormattedValue": "parentcustomerid",
		"_value":        "_value",
		"new_value":     "new_value",
		"@odata.etag":   "",
		"_x_value_text": "_x_value_text",
	}
	for key, want := range cases {
		if got := column(key); got != want {
			t.Errorf("column(%q) = %q, want %q", key, got, want)
		}
	}
}

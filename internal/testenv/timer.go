package testenv

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"time"
)

// TimerAnswer is what a custom handler answered a timer invocation, as the host reads it.
type TimerAnswer struct {
	Status int      // the HTTP status: 2xx means the invocation succeeded
	Logs   []string // the Logs lines the host writes to the invocation's log
}

// InvokeTimer plays the Functions host firing a timerTrigger function for a custom handler: it
// POSTs handlerURL + "/" + function the envelope the host sends (Data holds the TimerInfo under
// the binding's name, as the host serializes it: Schedule, ScheduleStatus, IsPastDue; Metadata
// holds sys), and reads the answer as strictly as the host does (azure-functions-host,
// DefaultHttpWorkerService): a 2xx must be JSON with Content-Type application/json and never
// empty (an empty 2xx hangs the invocation until functionTimeout), in the
// {"Outputs", "Logs", "ReturnValue"} shape. A non-2xx fails the invocation and its body is
// thrown away, so Logs is only read from a 2xx. Test code only.
func InvokeTimer(ctx context.Context, handlerURL, function, binding string, pastDue bool) (TimerAnswer, error) {
	now := time.Now().UTC().Truncate(time.Second)
	// DateTime values as the host writes them: seconds and no zone (UTC).
	stamp := func(t time.Time) string { return t.Format("2006-01-02T15:04:05") }
	body, err := json.Marshal(map[string]any{
		"Data": map[string]any{binding: map[string]any{
			"Schedule":       map[string]any{"AdjustForDST": true},
			"ScheduleStatus": map[string]any{"Last": stamp(now.Add(-time.Hour)), "Next": stamp(now.Add(time.Hour)), "LastUpdated": stamp(now.Add(-time.Hour))},
			"IsPastDue":      pastDue,
		}},
		"Metadata": map[string]any{"sys": map[string]any{"MethodName": function, "UtcNow": stamp(now), "RandGuid": newUUID()}},
	})
	if err != nil {
		return TimerAnswer{}, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, handlerURL+"/"+function, bytes.NewReader(body))
	if err != nil {
		return TimerAnswer{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Azure-Functions-Host/4.0")
	req.Header.Set("X-Azure-Functions-InvocationId", newUUID())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return TimerAnswer{}, fmt.Errorf("timer invocation %s: no answer: %w", function, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return TimerAnswer{}, fmt.Errorf("timer invocation %s: reading the answer: %w", function, err)
	}
	ans := TimerAnswer{Status: resp.StatusCode}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return ans, nil
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		return ans, fmt.Errorf("timer invocation %s: empty 2xx answer: the host would wait for it until functionTimeout", function)
	}
	if mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return ans, fmt.Errorf("timer invocation %s: Content-Type %q, the host needs application/json", function, resp.Header.Get("Content-Type"))
	}
	var out struct {
		Outputs     map[string]json.RawMessage
		Logs        []string
		ReturnValue json.RawMessage
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return ans, fmt.Errorf("timer invocation %s: the answer is not the invocation result shape: %w", function, err)
	}
	ans.Logs = out.Logs
	return ans, nil
}

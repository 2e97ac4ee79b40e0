package testenv

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// getChanges reads one change-tracking page from the stand-in as a client would.
func getChanges(t *testing.T, w *WebAPI, target string, prefer string) (int, http.Header, map[string]any) {
	t.Helper()
	if !strings.HasPrefix(target, "http") {
		target = w.URL + "/api/data/v9.2/" + target
	}
	req, _ := http.NewRequest(http.MethodGet, target, nil)
	req.Header.Set("Authorization", "Bearer "+w.token)
	if prefer != "" {
		req.Header.Set("Prefer", prefer)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, resp.Header, body
}

func TestWebAPIChanges_PagesDeltaLinkDeletesAndRefusals(t *testing.T) {
	w := StartWebAPI(t)
	w.AddTable(WebAPITable{LogicalName: "account", EntitySetName: "accounts", PrimaryID: "accountid", Columns: []string{"name"}})
	for _, id := range []string{"00000000-0000-0000-0000-000000000001", "00000000-0000-0000-0000-000000000002", "00000000-0000-0000-0000-000000000003"} {
		w.SetRow("account", id, map[string]any{"name": id[len(id)-1:]})
	}
	w.TrackChanges("account")

	status, h, page := getChanges(t, w, "accounts?$select=name", "odata.track-changes,odata.maxpagesize=2")
	if status != 200 || h.Get("Preference-Applied") != "odata.track-changes,odata.maxpagesize=2" || len(page["value"].([]any)) != 2 || page["@odata.nextLink"] == nil {
		t.Fatalf("first page: %d %v %v", status, h, page)
	}
	_, _, page = getChanges(t, w, page["@odata.nextLink"].(string), "odata.track-changes,odata.maxpagesize=2")
	delta, _ := page["@odata.deltaLink"].(string)
	if len(page["value"].([]any)) != 1 || !strings.Contains(delta, "$deltatoken=") {
		t.Fatalf("last page: %v", page)
	}
	row := page["value"].([]any)[0].(map[string]any)
	if row["@odata.etag"] == nil || row["accountid"] == nil || row["name"] == nil {
		t.Fatalf("row = %v", row)
	}

	w.ChangeRow("account", "00000000-0000-0000-0000-000000000002", map[string]any{"name": "two"})
	w.DeleteRow("account", "00000000-0000-0000-0000-000000000003")
	_, _, page = getChanges(t, w, delta, "")
	items := page["value"].([]any)
	if len(items) != 2 || !strings.HasSuffix(page["@odata.context"].(string), "/$delta") {
		t.Fatalf("delta page: %v", page)
	}
	changed, deleted := items[0].(map[string]any), items[1].(map[string]any)
	if changed["name"] != "two" || deleted["reason"] != "deleted" || deleted["id"] != "00000000-0000-0000-0000-000000000003" ||
		!strings.HasSuffix(deleted["@odata.context"].(string), "/$deletedEntity") {
		t.Fatalf("changed %v, deleted %v", changed, deleted)
	}

	if status, _, body := getChanges(t, w, "accounts?$select=name&$filter="+url.QueryEscape("name eq 'x'"), "odata.track-changes"); status != 400 ||
		!strings.Contains(body["error"].(map[string]any)["message"].(string), "isn't supported when Change Tracking is enabled") {
		t.Fatalf("$filter with change tracking: %d %v", status, body)
	}
	w.ExpireChangeTokens()
	if status, _, _ := getChanges(t, w, delta, ""); status != 400 {
		t.Fatalf("expired token: %d, want 400", status)
	}
	w.ThrottleAfter(0, 1, "1")
	if status, h, _ := getChanges(t, w, "accounts", "odata.track-changes"); status != 429 || h.Get("Retry-After") != "1" {
		t.Fatalf("throttled: %d %v", status, h)
	}
}

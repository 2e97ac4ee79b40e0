package loadtest_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/dvrouter/dvrouter/internal/testenv"
	"github.com/dvrouter/dvrouter/loadtest"
)

// Three `dvrouter serve` processes on one Azurite share one breaker per consumer: a consumer
// that goes down is open for all of them within one openFor of one tripping it, and when the
// breaker half-opens exactly one of them sends the trial.

const (
	sharedOpenFor = 2 * time.Second
	sharedKey     = "shared-breaker-admin-key"
)

type breakerStatus struct {
	Consumer   string     `json:"consumer"`
	State      string     `json:"state"`
	Shared     bool       `json:"shared"`
	HalfOpenAt *time.Time `json:"halfOpenAt"`
	Prober     string     `json:"prober"`
	Opened     int64      `json:"opened"`
	ChangedBy  string     `json:"changedBy"`
}

func TestSharedBreaker_ThreeInstances(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Azurite and three dvrouter processes")
	}
	bin := os.Getenv("DVROUTER_BIN")
	if bin == "" {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		var err error
		if bin, err = loadtest.Build(ctx, testenv.RepoRoot(), t.TempDir()); err != nil {
			t.Fatal(err)
		}
	}
	az := testenv.StartAzurite(t)
	erp, err := loadtest.StartConsumer("erp")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(erp.Close)
	dir := t.TempDir()
	routes := filepath.Join(dir, "routes.yaml")
	// One attempt per delivery, so six events are six outcomes; every table goes to erp.
	yaml := fmt.Sprintf("consumers:\n  - name: erp\n    type: http\n    url: %s\n    timeout: 2s\n    retry: {attempts: 1}\n"+
		"    breaker: {failureRatio: 0.5, minRequests: 6, openFor: %s, window: 10s}\n"+
		"routes:\n  - name: everything\n    table: \"*\"\n    consumers: [erp]\n", erp.URL, sharedOpenFor)
	if err := os.WriteFile(routes, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	var routers []*loadtest.Router
	for i := range 3 {
		port, err := testenv.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		r := &loadtest.Router{Bin: bin, Port: port, Log: filepath.Join(dir, fmt.Sprintf("dvrouter-%d.log", i)), Env: []string{
			"DVROUTER_ROUTES=" + routes,
			"DVROUTER_TABLES=" + az.ConnectionString(),
			"DVROUTER_BREAKER_TABLE=SharedBreakers",
			"DVROUTER_BREAKER_SYNC=100ms",
			"DVROUTER_ADMIN_KEYS=ops=" + sharedKey,
			"DVROUTER_DELIVERY_BUDGET=5s",
			"DVROUTER_LOG_LEVEL=warn",
			"GOMAXPROCS=1",
		}}
		t.Cleanup(func() {
			_ = r.Stop(10 * time.Second)
			if t.Failed() {
				t.Logf("dvrouter %d log ends:\n%s", i, loadtest.Tail(r.Log, 20))
			}
		})
		if err := r.Start(time.Minute); err != nil {
			t.Fatal(err)
		}
		routers = append(routers, r)
	}
	templates := templates(t)
	next := loadtest.Mix(templates, "shared-breaker-"+randomHex(4))
	seq := 0
	post := func(r *loadtest.Router) answer {
		seq++
		return postEvent(t, r, next(seq).Body)
	}

	// The consumer goes down; six events through the first instance trip the breaker.
	erp.SetFault(&loadtest.Fault{Status: http.StatusServiceUnavailable})
	for i := range 6 {
		if a := post(routers[0]); len(a.Failed) != 1 {
			t.Fatalf("event %d through instance 0: answer %+v, want erp failed", i+1, a)
		}
	}
	tripped := time.Now()
	for i, r := range routers {
		for {
			st := consumerStatus(t, r)
			if st.State == "open" && st.Shared {
				if i > 0 {
					t.Logf("instance %d saw erp open %s after instance 0 tripped it", i, time.Since(tripped).Round(time.Millisecond))
				}
				break
			}
			if time.Since(tripped) > sharedOpenFor {
				t.Fatalf("instance %d: erp is %+v %s after instance 0 tripped it, want open within openFor", i, st, time.Since(tripped))
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	before := erp.Requests()
	for _, r := range routers[1:] {
		if a := post(r); len(a.Failed) != 1 {
			t.Errorf("answer %+v, want erp failed (breaker open)", a)
		}
	}
	if n := erp.Requests() - before; n != 0 {
		t.Errorf("erp got %d requests from the other instances while open, want 0", n)
	}

	// The consumer is back, slow enough that every instance asks for a trial while one runs.
	erp.SetFault(&loadtest.Fault{Stall: 700 * time.Millisecond})
	st := consumerStatus(t, routers[1])
	if st.HalfOpenAt == nil {
		t.Fatalf("open breaker shows no halfOpenAt: %+v", st)
	}
	time.Sleep(time.Until(*st.HalfOpenAt) + 50*time.Millisecond)
	before = erp.Requests()
	var mu sync.Mutex
	delivered := 0
	var wg sync.WaitGroup
	for _, r := range routers {
		for range 3 {
			seq++
			body := next(seq).Body
			wg.Go(func() {
				a := postEvent(t, r, body)
				mu.Lock()
				delivered += len(a.Delivered)
				mu.Unlock()
			})
		}
	}
	wg.Wait()
	if n := erp.Requests() - before; n != 1 || delivered != 1 {
		t.Errorf("half-open: erp got %d requests and %d events were delivered, want exactly 1 trial from one instance", n, delivered)
	}
	for i, r := range routers {
		deadline := time.Now().Add(2 * time.Second)
		for consumerStatus(t, r).State != "closed" {
			if time.Now().After(deadline) {
				t.Fatalf("instance %d: erp not closed 2s after the trial succeeded: %+v", i, consumerStatus(t, r))
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	erp.SetFault(nil)
	for i, r := range routers {
		if a := post(r); len(a.Delivered) != 1 {
			t.Errorf("instance %d after the trial: answer %+v, want delivered", i, a)
		}
	}

	// Each change was made, and logged, by one instance: the alert counts one line per change.
	changes := map[string][]int{}
	for i, r := range routers {
		for _, to := range stateChanges(t, r.Log) {
			changes[to] = append(changes[to], i)
		}
	}
	if len(changes["open"]) != 1 || changes["open"][0] != 0 || len(changes["half-open"]) != 1 || len(changes["closed"]) != 1 ||
		changes["half-open"][0] != changes["closed"][0] {
		t.Errorf("state changes logged by instance: %v; want open by 0, half-open and closed by the one prober", changes)
	}
}

type answer struct {
	Delivered []string `json:"delivered"`
	Failed    []string `json:"failed"`
}

func postEvent(t *testing.T, r *loadtest.Router, body []byte) answer {
	t.Helper()
	resp, err := http.Post(r.URL()+"/api/dataverse/webhook", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Errorf("post: %v", err)
		return answer{}
	}
	defer resp.Body.Close()
	var a answer
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("post: %s (%v)", resp.Status, err)
	}
	return a
}

func consumerStatus(t *testing.T, r *loadtest.Router) breakerStatus {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, r.URL()+"/api/consumers", nil)
	req.Header.Set("x-functions-key", sharedKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET /api/consumers: %v", err)
	}
	defer resp.Body.Close()
	var list struct {
		Items []breakerStatus `json:"items"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil || resp.StatusCode != http.StatusOK || len(list.Items) != 1 {
		t.Fatalf("GET /api/consumers: %s, %+v (%v)", resp.Status, list, err)
	}
	return list.Items[0]
}

// stateChanges lists the "to" of every breaker state change in a dvrouter log.
func stateChanges(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var l struct {
			Msg string `json:"message"`
			To  string `json:"to"`
		}
		if json.Unmarshal(sc.Bytes(), &l) == nil && l.Msg == "breaker state changed" {
			out = append(out, l.To)
		}
	}
	return out
}

package testenv_test

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dvrouter/dvrouter/internal/testenv"
)

func post(t *testing.T, url, attempt string) (*http.Response, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url+"/hook?x=1", strings.NewReader("payload"))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Dvrouter-Attempt", attempt)
	// A fresh connection per request keeps a reset from being retried by the transport.
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	resp, err := client.Do(req)
	if err == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
	}
	return resp, err
}

func TestConsumer_AnswersTheScriptThenItsDefault(t *testing.T) {
	c := testenv.StartConsumer(t, testenv.ReplyStatus(503), testenv.ReplyRetryAfter(429, "7"))
	c.Otherwise(testenv.ReplyStatus(202))

	var got []string
	for _, attempt := range []string{"1", "2", "3", "4"} {
		resp, err := post(t, c.URL, attempt)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, resp.Status[:3]+"/"+resp.Header.Get("Retry-After"))
	}

	if want := "503/ 429/7 202/ 202/"; strings.Join(got, " ") != want {
		t.Errorf("answers = %v, want %s", got, want)
	}
	reqs := c.Requests()
	if len(reqs) != 4 || reqs[1].Attempt != 2 || string(reqs[0].Body) != "payload" || reqs[0].Path != "/hook?x=1" || reqs[0].Method != "POST" {
		t.Errorf("recorded %+v", reqs)
	}
}

func TestConsumer_ResetLeavesTheClientWithoutAnAnswer(t *testing.T) {
	c := testenv.StartConsumer(t, testenv.ReplyReset())

	_, err := post(t, c.URL, "1")

	if err == nil {
		t.Fatal("got an answer, want the connection reset")
	}
	if !errors.Is(err, syscall.ECONNRESET) && !strings.Contains(err.Error(), "EOF") {
		t.Errorf("error = %v, want a reset", err)
	}
	if c.Count() != 1 {
		t.Errorf("recorded %d requests, want 1", c.Count())
	}
}

func TestConsumer_StallCountsInFlightRequests(t *testing.T) {
	c := testenv.StartConsumer(t)
	c.Otherwise(testenv.ReplyStall(time.Second)) // long enough for all three to overlap on a busy machine

	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() { _, _ = post(t, c.URL, "1") })
	}
	c.Wait(t, 3, 5*time.Second)
	wg.Wait()

	if got := c.MaxInFlight(); got != 3 {
		t.Errorf("MaxInFlight = %d, want 3 stalled requests at once", got)
	}
}

// Command consumer is the example downstream consumer that `make run` starts beside dvrouter: it
// accepts events on POST /events, prints one line per event, and answers 200. Stop it (or start
// it with -fail) to see deliveries fail, land in the failure store, and be replayed.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"sync/atomic"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:7072", "listen address")
	fail := flag.Bool("fail", false, "answer 503 to every event (a consumer that is down)")
	flag.Parse()

	var count atomic.Int64
	http.HandleFunc("POST /events", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 8<<20))
		if err != nil {
			http.Error(w, "cannot read body", http.StatusBadRequest)
			return
		}
		if *fail {
			http.Error(w, "example consumer started with -fail", http.StatusServiceUnavailable)
			return
		}
		var ev struct {
			ID       string `json:"id"`
			Message  string `json:"message"`
			Table    string `json:"table"`
			RecordID string `json:"recordId"`
		}
		_ = json.Unmarshal(body, &ev)
		n := count.Add(1)
		fmt.Fprintf(os.Stdout, "consumer: #%d event %s %s %s record %s (route %s, attempt %s, %d bytes)\n",
			n, ev.ID, ev.Message, ev.Table, ev.RecordID, r.Header.Get("X-Dvrouter-Route"), r.Header.Get("X-Dvrouter-Attempt"), len(body))
		w.WriteHeader(http.StatusOK)
	})
	log.Printf("example consumer listening on http://%s/events", *addr)
	log.Fatal(http.ListenAndServe(*addr, nil))
}

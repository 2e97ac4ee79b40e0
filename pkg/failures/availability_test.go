package failures

import (
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dvrouter/dvrouter/internal/testenv"
)

func TestRecord_RecreatesATableThatWentAway(t *testing.T) {
	s := newStore(t)
	ctx := testCtx(t)
	first, err := s.Record(ctx, deliveryFailure(1, "erp"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.service.DeleteTable(ctx, s.table, nil); err != nil {
		t.Fatal(err)
	}

	page, err := s.List(ctx, Query{})
	if err != nil || len(page.Items) != 0 || page.Continuation != "" {
		t.Fatalf("List without the table = %+v, %v; want an empty page and no error", page, err)
	}
	if _, _, err := s.Get(ctx, first.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get without the table = %v, want ErrNotFound", err)
	}
	if _, err := s.Claim(ctx, first.ID, "", "alice"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Claim without the table = %v, want ErrNotFound", err)
	}

	second, err := s.Record(ctx, deliveryFailure(2, "erp"))
	if err != nil {
		t.Fatalf("Record without the table = %v, want it to create the table and succeed", err)
	}
	page, err = s.List(ctx, Query{})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Items) != 1 || page.Items[0].ID != second.ID {
		t.Fatalf("List after recreating = %+v, want just %s", page.Items, second.ID)
	}
}

// A store that accepts connections and never answers (a hung service, a black-holing
// network) must not hold a caller: each call fails with ErrUnavailable at its CallTimeout.
func TestStore_HungServiceFailsEveryCallWithinItsTimeout(t *testing.T) {
	az := testenv.StartAzurite(t) // its own: this test takes its port
	const callTimeout = 700 * time.Millisecond
	s := openStore(t, az.ConnectionString(), Config{CallTimeout: callTimeout})
	ctx := testCtx(t)
	f, err := s.Record(ctx, deliveryFailure(1, "erp"))
	if err != nil {
		t.Fatal(err)
	}
	az.Stop()
	hang := blackHole(t, az.Port())
	defer hang.Close()

	calls := map[string]func() error{
		"Record": func() error { _, err := s.Record(ctx, deliveryFailure(2, "erp")); return err },
		"List":   func() error { _, err := s.List(ctx, Query{}); return err },
		"Get":    func() error { _, _, err := s.Get(ctx, f.ID); return err },
		"Claim":  func() error { _, err := s.Claim(ctx, f.ID, "", "alice"); return err },
		"Discard": func() error {
			return s.Discard(ctx, f.ID, "", "alice", "test")
		},
		// A purge makes many calls; the first that gets no answer ends it.
		"Purge": func() error {
			_, err := s.Purge(ctx, time.Now(), Retention{Failures: time.Hour})
			return err
		},
	}
	for name, call := range calls {
		start := time.Now()
		err := call()
		took := time.Since(start)
		if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "did not answer within") {
			t.Errorf("%s against a hung store = %v, want ErrUnavailable saying it did not answer", name, err)
		}
		// Generous: the bound is what matters, not its precision on a busy machine.
		if took > callTimeout+5*time.Second {
			t.Errorf("%s took %s against a hung store, want about %s", name, took, callTimeout)
		}
	}
	if ctx.Err() != nil {
		t.Fatal("the calls only ended at the test's own deadline")
	}
}

// blackHole listens on port, accepts connections, reads what they send and never answers.
func blackHole(t *testing.T, port int) net.Listener {
	t.Helper()
	var ln net.Listener
	var err error
	for range 50 { // the port is free once the stopped process has let go of it
		if ln, err = net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port)); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 4096)
				for {
					if _, err := c.Read(buf); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln
}

package breaker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// DefaultInterval is how often an instance syncs with the store when SharedOptions.Interval is
// zero.
const DefaultInterval = time.Second

// SharedOptions tune a Shared.
type SharedOptions struct {
	// Interval is how often counts are merged into the store and the others' state read: the
	// longest a breaker opened by another instance goes unnoticed here (a failure that trips the
	// breaker merges at once). DefaultInterval when zero.
	Interval time.Duration
	// ProbeLease is how long an instance's claim on the half-open trials holds: longer than a
	// delivery can take (its budget), so that a prober that died mid-trial is replaced.
	ProbeLease time.Duration
	// Instance names this instance in the store; empty: host name, process id and a random part.
	Instance string
	Logger   zerolog.Logger
}

// Shared keeps breakers in a Store and syncs them in the background. Start it after creating
// its breakers; Close stops it.
type Shared struct {
	store       *Store
	instance    string
	interval    time.Duration
	staleAfter  time.Duration // a view older than this is not trusted: the local breaker decides
	probeLease  time.Duration
	callTimeout time.Duration
	log         zerolog.Logger

	mu       sync.Mutex
	breakers []*Breaker
	down     bool // the last sync failed (logged once per outage)

	wake chan struct{}
	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// NewShared returns a Shared over store.
func NewShared(store *Store, o SharedOptions) *Shared {
	s := &Shared{
		store:      store,
		instance:   o.Instance,
		interval:   o.Interval,
		probeLease: o.ProbeLease,
		log:        o.Logger,
		wake:       make(chan struct{}, 1),
		stop:       make(chan struct{}),
		done:       make(chan struct{}),
	}
	if s.interval <= 0 {
		s.interval = DefaultInterval
	}
	if s.probeLease <= 0 {
		s.probeLease = 30 * time.Second
	}
	if s.instance == "" {
		s.instance = instanceName()
	}
	// A few missed syncs are a slow store, not a lost one.
	s.staleAfter = max(4*s.interval, 3*time.Second)
	s.callTimeout = max(2*s.interval, 2*time.Second)
	return s
}

// instanceName is unique per process and readable in the table: several instances can share a
// host name (one machine in tests), never a process id and random suffix.
func instanceName() string {
	host, _ := os.Hostname()
	if host == "" {
		host = "dvrouter"
	}
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return host + "-" + strconv.Itoa(os.Getpid()) + "-" + hex.EncodeToString(b)
}

// Instance is the name this instance goes by in the store.
func (s *Shared) Instance() string { return s.instance }

func (s *Shared) add(b *Breaker) {
	s.mu.Lock()
	s.breakers = append(s.breakers, b)
	s.mu.Unlock()
}

// poke asks for a sync now, without waiting for it.
func (s *Shared) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Start syncs once (so that the breakers start from the shared state, not from stale
// fallbacks), then keeps syncing every interval until Close.
func (s *Shared) Start(ctx context.Context) {
	s.Sync(ctx)
	go s.run()
}

func (s *Shared) run() {
	defer close(s.done)
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			ctx, cancel := context.WithTimeout(context.Background(), s.callTimeout)
			s.Sync(ctx) // hand over what was counted since the last sync
			cancel()
			return
		case <-t.C:
		case <-s.wake:
		}
		ctx, cancel := context.WithTimeout(context.Background(), s.callTimeout)
		s.Sync(ctx)
		cancel()
	}
}

// Close stops the background sync after a last one. It does not wait past ctx.
func (s *Shared) Close(ctx context.Context) {
	s.once.Do(func() { close(s.stop) })
	select {
	case <-s.done:
	case <-ctx.Done():
	}
}

// Sync reads every breaker's shared state in one query and merges this instance's counts into
// it. A store that does not answer leaves the breakers to go stale, and so to their local
// fallback, after staleAfter.
func (s *Shared) Sync(ctx context.Context) {
	s.mu.Lock()
	breakers := append([]*Breaker(nil), s.breakers...)
	s.mu.Unlock()
	listed, err := s.store.list(ctx)
	var errs []error
	if err != nil {
		errs = append(errs, err)
	} else {
		for _, b := range breakers {
			var start *record
			if r, ok := listed[b.name]; ok {
				start = &r
			} else {
				start = &record{}
			}
			if err := b.merge(ctx, start); err != nil {
				errs = append(errs, err)
			}
		}
	}
	s.mu.Lock()
	wasDown := s.down
	s.down = len(errs) > 0
	s.mu.Unlock()
	switch {
	case len(errs) > 0 && !wasDown:
		s.log.Warn().Err(errors.Join(errs...)).Str("table", s.store.table).
			Msg("breaker store unreachable: each instance judges consumers on its own until it answers")
	case len(errs) == 0 && wasDown:
		s.log.Warn().Str("table", s.store.table).Msg("breaker store reachable again: breakers are shared")
	}
}

package journal

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
	"github.com/rs/zerolog"

	"github.com/dvrouter/dvrouter/pkg/tables"
)

// Defaults for Config's zero values.
const (
	DefaultBuffer = 20000
	// DefaultFlushInterval is how long an entry may wait for its batches to fill: the journal
	// is a history, not the acknowledgement path, and fuller transactions are fewer requests.
	DefaultFlushInterval = time.Second
	DefaultWorkers       = 4
	// DefaultCallTimeout bounds one batch write, retries included.
	DefaultCallTimeout = 10 * time.Second
)

// maxBatch is Table Storage's limit of operations in one entity group transaction.
const maxBatch = 100

// Config says where the journal is and how it buffers.
type Config struct {
	Account tables.Account
	Table   string // DefaultTable when empty; Open creates it if missing
	// Buffer is how many entries wait for the flusher; when it is full Add drops the entry
	// and counts it.
	Buffer        int
	FlushInterval time.Duration // how long an entry may wait for a fuller batch
	Workers       int           // batches written at once
	CallTimeout   time.Duration
	Log           zerolog.Logger
}

// Journal writes entries in the background and answers lookups. It is safe for concurrent use.
type Journal struct {
	client  *aztables.Client
	service *aztables.ServiceClient
	batches *tables.BatchWriter // the flusher's writes: cheaper than the SDK's SubmitTransaction
	table   string
	cfg     Config
	log     zerolog.Logger

	ch      chan Entry
	work    chan *batch   // the flusher's batches, taken by Workers writers
	kick    chan struct{} // Flush: write what is gathered now
	down    atomic.Bool   // a batch found the store failing: skip until the next interval
	closing chan struct{}
	done    chan struct{}
	once    sync.Once
	enc     encoder // the flusher's

	added, dropped, written, lost atomic.Int64
	adding                        atomic.Int64 // Adds past their closing check: the flusher's last take waits for them
}

// Stats counts what the journal did with the entries it was given.
type Stats struct {
	Added   int64 `json:"added"`   // taken into the buffer
	Dropped int64 `json:"dropped"` // not taken: the buffer was full
	Written int64 `json:"written"` // entries whose every copy was stored
	Lost    int64 `json:"lost"`    // entries a batch failed to store
}

// Open connects to the journal's table, creating it if missing, and starts the flusher.
// Close stops it.
func Open(ctx context.Context, cfg Config) (*Journal, error) {
	j, err := newJournal(cfg)
	if err != nil {
		return nil, err
	}
	if err := j.CreateTable(ctx); err != nil {
		return nil, fmt.Errorf("open journal: %w", err)
	}
	j.start()
	return j, nil
}

// CreateTable creates the journal's table unless it exists.
func (j *Journal) CreateTable(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, j.cfg.CallTimeout)
	defer cancel()
	if _, err := j.service.CreateTable(ctx, j.table, nil); err != nil && !isCode(err, aztables.TableAlreadyExists) {
		return fmt.Errorf("create table %s: %w", j.table, err)
	}
	return nil
}

// OpenLazy is Open without creating the table, for a start-up that must not wait on
// Table Storage: a write that finds the table missing creates it and tries again.
func OpenLazy(cfg Config) (*Journal, error) {
	j, err := newJournal(cfg)
	if err != nil {
		return nil, err
	}
	j.start()
	return j, nil
}

func newJournal(cfg Config) (*Journal, error) {
	cfg.Table = cmp.Or(cfg.Table, DefaultTable)
	cfg.Buffer = cmp.Or(max(cfg.Buffer, 0), DefaultBuffer)
	cfg.FlushInterval = cmp.Or(max(cfg.FlushInterval, 0), DefaultFlushInterval)
	cfg.Workers = cmp.Or(max(cfg.Workers, 0), DefaultWorkers)
	cfg.CallTimeout = cmp.Or(max(cfg.CallTimeout, 0), DefaultCallTimeout)
	// Few retries: a batch that cannot be written is counted as lost rather than holding up
	// the batches behind it, so a table that is down costs the journal entries, never
	// deliveries their time.
	opts := azcore.ClientOptions{
		Retry: policy.RetryOptions{MaxRetries: 2, RetryDelay: 100 * time.Millisecond, MaxRetryDelay: time.Second, TryTimeout: 5 * time.Second},
	}
	svc, err := cfg.Account.Service(&aztables.ClientOptions{ClientOptions: opts})
	if err != nil {
		return nil, fmt.Errorf("open journal: %w", err)
	}
	batches, err := cfg.Account.BatchWriter(cfg.Table, &opts)
	if err != nil {
		return nil, fmt.Errorf("open journal: %w", err)
	}
	return &Journal{client: svc.NewClient(cfg.Table), service: svc, batches: batches, table: cfg.Table, cfg: cfg, log: cfg.Log,
		ch: make(chan Entry, cfg.Buffer), work: make(chan *batch), kick: make(chan struct{}, 1),
		closing: make(chan struct{}), done: make(chan struct{})}, nil
}

func isCode(err error, code aztables.TableErrorCode) bool {
	var re *azcore.ResponseError
	return errors.As(err, &re) && re.ErrorCode == string(code)
}

// Add hands e to the flusher without waiting: when the buffer is full, or the journal is
// closed, e is dropped and counted. A nil Journal drops nothing and keeps nothing.
func (j *Journal) Add(e Entry) {
	if j == nil {
		return
	}
	j.adding.Add(1) // before the closing check, so that Close's last take waits for this Add
	select {
	case <-j.closing:
		j.dropped.Add(1)
	default:
		select {
		case j.ch <- e:
			j.added.Add(1)
		default:
			j.dropped.Add(1)
		}
	}
	j.adding.Add(-1)
}

// Stats is what the journal counted so far.
func (j *Journal) Stats() Stats {
	if j == nil {
		return Stats{}
	}
	return Stats{Added: j.added.Load(), Dropped: j.dropped.Load(), Written: j.written.Load(), Lost: j.lost.Load()}
}

// Close stops taking entries, writes what is buffered (for as long as ctx allows) and logs the
// counts.
func (j *Journal) Close(ctx context.Context) {
	if j == nil {
		return
	}
	j.once.Do(func() { close(j.closing) })
	select {
	case <-j.done:
	case <-ctx.Done():
	}
	s := j.Stats()
	j.log.Info().Int64("added", s.Added).Int64("dropped", s.Dropped).Int64("written", s.Written).
		Int64("lost", s.Lost).Msg("journal closed")
}

// Flush waits until every entry added before the call has been written or lost, or ctx ends.
// It asks the flusher to write what it holds now rather than at the next FlushInterval.
func (j *Journal) Flush(ctx context.Context) error {
	target := j.added.Load()
	for j.written.Load()+j.lost.Load() < target {
		select {
		case j.kick <- struct{}{}:
		default:
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	return nil
}

// tracked is an entry on its way: how many of its entities are not yet stored or lost, and
// whether one was lost. The last of its batches to finish counts it.
type tracked struct {
	left   atomic.Int32
	failed atomic.Bool
}

// batch is one transaction: up to maxBatch entities of one partition, written into its body
// as they are placed, and for each the entry it belongs to (an entry has at most one entity in
// a partition).
type batch struct {
	pk     string
	tx     *tables.Batch
	owners []*tracked
	// rows holds a hash of each entity's outcome (its time, event and consumer, which every one
	// of its RowKeys ends in): a transaction holds an entity once, and two entities of one
	// partition with the same RowKey are of the same outcome. Two outcomes of the same hash only
	// send the batch early.
	rows map[uint64]struct{}
}

func (j *Journal) start() {
	var wg sync.WaitGroup
	for range j.cfg.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range j.work {
				j.store(b)
			}
		}()
	}
	go func() {
		j.run()
		close(j.work)
		wg.Wait()
		close(j.done)
	}()
}

// gatherInterval is how often the flusher takes what Add left in the buffer. The flusher does
// not wait on the buffer itself: a receiver waiting there would be woken by every Add, which
// costs the delivery that adds a scheduler wake-up (a futex call, and the other core's time).
const gatherInterval = 50 * time.Millisecond

// run is the flusher: every gatherInterval it takes the entries off the buffer and gathers
// their entities by partition. A partition's batch goes to the workers as soon as it holds
// maxBatch entities, and every FlushInterval (or when Flush asks) the partly filled ones go
// too: under load nearly every transaction is full, and an entry waits at most about
// FlushInterval. When the workers are all busy the flusher waits on them and the buffer fills
// behind it: Add then drops and counts.
func (j *Journal) run() {
	tick := time.NewTicker(j.cfg.FlushInterval)
	defer tick.Stop()
	gather := time.NewTicker(min(gatherInterval, j.cfg.FlushInterval))
	defer gather.Stop()
	open := map[string]*batch{}
	take := func() {
		for n := len(j.ch); n > 0; n-- {
			j.place(<-j.ch, open)
		}
	}
	sendAll := func() {
		take()
		for pk, b := range open {
			j.work <- b
			delete(open, pk)
		}
	}
	for {
		select {
		case <-gather.C:
			take()
		case <-tick.C:
			j.down.Store(false) // the store gets another try each interval
			sendAll()
		case <-j.kick:
			sendAll()
		case <-j.closing:
			// An Add that passed its closing check before the close may still be putting its
			// entry in: wait for it, or that entry would be counted added and never written.
			for j.adding.Load() > 0 {
				time.Sleep(50 * time.Microsecond)
			}
			sendAll()
			return
		}
	}
}

// place adds e's entities to the open batches of their partitions, handing a batch to the
// workers when it is full.
func (j *Journal) place(e Entry, open map[string]*batch) {
	c := &j.enc
	if err := c.encode(&e); err != nil {
		j.log.Warn().Err(err).Msg("journal entry not kept")
		j.lost.Add(1)
		return
	}
	t := &tracked{}
	t.left.Store(int32(c.n))
	h := fnv64a(c.tail)
	for i := range c.n {
		x := &c.ents[i]
		b := open[string(x.pk)]
		if b != nil {
			if _, dup := b.rows[h]; dup {
				j.work <- b
				b = nil
			}
		}
		if b == nil {
			pk := string(x.pk)
			b = &batch{pk: pk, tx: j.batches.NewBatch(pk), owners: make([]*tracked, 0, maxBatch),
				rows: make(map[uint64]struct{}, maxBatch)}
			open[pk] = b
		}
		b.tx.Put(x.rk, x.body)
		b.owners = append(b.owners, t)
		b.rows[h] = struct{}{}
		if b.tx.Len() == maxBatch {
			j.work <- b
			delete(open, b.pk)
		}
	}
}

// fnv64a is hash/fnv's 64-bit FNV-1a of b.
func fnv64a(b []byte) uint64 {
	h := uint64(14695981039346656037)
	for _, c := range b {
		h ^= uint64(c)
		h *= 1099511628211
	}
	return h
}

// store writes one batch and settles its entries: an entry is written when the last of its
// batches is, lost when any of them failed. After a batch finds Table Storage unreachable or
// failing, the batches behind it until the next interval are lost at once instead of each
// waiting out its own retries.
func (j *Journal) store(b *batch) {
	var err error
	if j.down.Load() {
		err = errSkipped
	} else if err = j.submit(b.tx); err != nil && unhealthy(err) {
		if !j.down.Swap(true) {
			j.log.Warn().Err(err).Str("until", "the next interval").Msg("journal entries not written")
		}
	}
	if err != nil && !errors.Is(err, errSkipped) && !unhealthy(err) {
		j.log.Warn().Err(err).Int("entities", b.tx.Len()).Msg("journal entries not written")
	}
	b.tx.Release()
	var written, lost int64
	for _, t := range b.owners {
		if err != nil {
			t.failed.Store(true)
		}
		if t.left.Add(-1) == 0 {
			if t.failed.Load() {
				lost++
			} else {
				written++
			}
		}
	}
	j.lost.Add(lost)
	j.written.Add(written)
}

var errSkipped = errors.New("skipped: table storage is failing")

// unhealthy says err is the store's, not the batch's: no answer, a 5xx, or no table.
func unhealthy(err error) bool {
	var re *azcore.ResponseError
	if !errors.As(err, &re) {
		return true
	}
	return re.StatusCode >= 500 || re.ErrorCode == string(aztables.TableNotFound)
}

func (j *Journal) submit(tx *tables.Batch) error {
	ctx, cancel := context.WithTimeout(context.Background(), j.cfg.CallTimeout)
	defer cancel()
	err := j.batches.Submit(ctx, tx)
	if isCode(err, aztables.TableNotFound) {
		// OpenLazy's table not created yet, or one deleted (or an in-memory emulator
		// restarted): create it and write once more; a second failure is the batch's.
		if cerr := j.CreateTable(ctx); cerr != nil {
			return fmt.Errorf("%w (and %v)", err, cerr)
		}
		err = j.batches.Submit(ctx, tx)
	}
	return err
}

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
	DefaultBuffer        = 20000
	DefaultFlushInterval = 200 * time.Millisecond
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
	closing chan struct{}
	done    chan struct{}
	once    sync.Once

	added, dropped, written, lost atomic.Int64
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
		ch: make(chan Entry, cfg.Buffer), closing: make(chan struct{}), done: make(chan struct{})}, nil
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
	select {
	case <-j.closing:
		j.dropped.Add(1)
		return
	default:
	}
	select {
	case j.ch <- e:
		j.added.Add(1)
	default:
		j.dropped.Add(1)
	}
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
func (j *Journal) Flush(ctx context.Context) error {
	target := j.added.Load()
	for j.written.Load()+j.lost.Load() < target {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	return nil
}

// batch is one transaction: up to maxBatch entities of one partition, and the entries whose
// copies it holds.
type batch struct {
	pk       string
	entities []tables.Entity
	rows     map[string]bool
}

func (j *Journal) start() {
	go j.run()
}

// run is the flusher: it takes entries off the buffer, groups their copies by partition, and
// writes a round of batches every FlushInterval or sooner when the round is full.
func (j *Journal) run() {
	defer close(j.done)
	const roundLimit = 2000 // entries per round: bounds memory, keeps batches full under load
	tick := time.NewTicker(j.cfg.FlushInterval)
	defer tick.Stop()
	var round []Entry
	for {
		select {
		case e := <-j.ch:
			round = append(round, e)
			if len(round) >= roundLimit {
				j.write(round)
				round = round[:0]
			}
		case <-tick.C:
			if len(round) > 0 {
				j.write(round)
				round = round[:0]
			}
		case <-j.closing:
		drain:
			for {
				select {
				case e := <-j.ch:
					round = append(round, e)
					if len(round) >= roundLimit {
						j.write(round)
						round = round[:0]
					}
				default:
					break drain
				}
			}
			if len(round) > 0 {
				j.write(round)
			}
			return
		}
	}
}

// write stores one round of entries and counts each as written or lost.
func (j *Journal) write(round []Entry) {
	byPK := map[string][]*batch{}
	var order []string
	owners := map[*batch][]int{}
	failed := make([]bool, len(round))
	for i, e := range round {
		xs, err := records(e)
		if err != nil {
			j.log.Warn().Err(err).Msg("journal entry not kept")
			failed[i] = true
			continue
		}
		for _, x := range xs {
			bs := byPK[x.pk]
			if len(bs) == 0 {
				order = append(order, x.pk)
			}
			if len(bs) == 0 || len(bs[len(bs)-1].entities) == maxBatch || bs[len(bs)-1].rows[x.rk] {
				bs = append(bs, &batch{pk: x.pk, rows: map[string]bool{}})
				byPK[x.pk] = bs
			}
			b := bs[len(bs)-1]
			b.entities = append(b.entities, tables.Entity{PartitionKey: x.pk, RowKey: x.rk, JSON: x.body})
			b.rows[x.rk] = true
			if o := owners[b]; len(o) == 0 || o[len(o)-1] != i {
				owners[b] = append(o, i)
			}
		}
	}
	var all []*batch
	for _, pk := range order {
		all = append(all, byPK[pk]...)
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	// down is set by the first batch that finds Table Storage unreachable or failing: the rest
	// of the round is then lost at once instead of each batch waiting out its own retries.
	var down atomic.Bool
	var failedBatches atomic.Int64
	var firstErr atomic.Value
	work := make(chan *batch)
	for range min(j.cfg.Workers, len(all)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range work {
				var err error
				if down.Load() {
					err = errSkipped
				} else if err = j.submit(b); err != nil && unhealthy(err) {
					down.Store(true)
				}
				if err != nil {
					failedBatches.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					mu.Lock()
					for _, i := range owners[b] {
						failed[i] = true
					}
					mu.Unlock()
				}
			}
		}()
	}
	for _, b := range all {
		work <- b
	}
	close(work)
	wg.Wait()
	var lost int64
	for _, f := range failed {
		if f {
			lost++
		}
	}
	if n := failedBatches.Load(); n > 0 {
		msg, _ := firstErr.Load().(string)
		j.log.Warn().Int64("batches", n).Int64("entries", lost).Str("error", msg).Msg("journal entries not written")
	}
	j.lost.Add(lost)
	j.written.Add(int64(len(round)) - lost)
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

func (j *Journal) submit(b *batch) error {
	ctx, cancel := context.WithTimeout(context.Background(), j.cfg.CallTimeout)
	defer cancel()
	err := j.batches.InsertOrReplace(ctx, b.entities)
	if isCode(err, aztables.TableNotFound) {
		// OpenLazy's table not created yet, or one deleted (or an in-memory emulator
		// restarted): create it and write once more; a second failure is the batch's.
		if cerr := j.CreateTable(ctx); cerr != nil {
			return fmt.Errorf("%w (and %v)", err, cerr)
		}
		err = j.batches.InsertOrReplace(ctx, b.entities)
	}
	return err
}

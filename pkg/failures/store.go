package failures

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/dvrouter/dvrouter/pkg/tables"
)

// DefaultTable is the table used when Config.Table is empty.
const DefaultTable = "DeliveryFailures"

// DefaultClaimTimeout is how long a replay's claim holds when Config.ClaimTimeout is zero.
const DefaultClaimTimeout = 5 * time.Minute

var (
	// ErrNotFound: no failure has this id (or the id is malformed).
	ErrNotFound = errors.New("failure not found")
	// ErrConflict: the failure changed since the caller read it (stale ETag), another replay
	// holds it, or its status does not allow the change.
	ErrConflict = errors.New("failure conflict")
	// ErrPayloadTooLarge: the payload is over MaxPayloadSize.
	ErrPayloadTooLarge = errors.New("payload too large")
	// ErrInvalid: a Record or Query argument the store cannot accept (the message says which).
	ErrInvalid = errors.New("invalid argument")
	// ErrUnavailable: Table Storage did not answer in time, could not be reached, or answered
	// with an error of its own. The message says what happened; it may name the account, so
	// callers show their users a message of their own and log this one.
	ErrUnavailable = errors.New("failure store unavailable")
)

// errNoTable marks a 404 TableNotFound: the table was deleted, or an emulator restarted
// empty, after Open created it. It wraps ErrNotFound.
var errNoTable = fmt.Errorf("%w: the failure table does not exist", ErrNotFound)

// ETag is the version of a stored failure, for optimistic concurrency.
type ETag string

// Config says where the store is.
type Config struct {
	// ConnectionString is a Table Storage connection string (Azurite locally). When set,
	// ServiceURI and ClientID are ignored.
	ConnectionString string
	// ServiceURI is the table service URL (https://ACCOUNT.table.core.windows.net), reached
	// with managed identity: user-assigned when ClientID is set, else DefaultAzureCredential.
	ServiceURI string
	ClientID   string
	// Table is the table name; DefaultTable when empty. Open creates it if missing.
	Table string
	// ClaimTimeout is how long a Claim holds before another replay may take the failure
	// over; DefaultClaimTimeout when zero.
	ClaimTimeout time.Duration
	// CallTimeout bounds each call of the store (Record, List, Get and every status change),
	// retries included, when the caller's context allows longer; DefaultCallTimeout when zero.
	CallTimeout time.Duration
}

// DefaultCallTimeout is how long one call of the store may take when Config.CallTimeout is
// zero: long enough for the client's retries against a slow service, short enough that a
// hung store gets its caller a 503 within seconds rather than a request that hangs.
const DefaultCallTimeout = 10 * time.Second

// Store keeps failures in one table. It is safe for concurrent use.
type Store struct {
	service  *aztables.ServiceClient
	table    string
	client   *aztables.Client
	claimTTL time.Duration
	callTTL  time.Duration
	now      func() time.Time
	// afterPurgeBatch, when set (by tests), runs after each purge transaction that succeeded.
	afterPurgeBatch func()
}

// Retry settings: a store that is down must fail a Record within seconds, so the caller can
// answer 503 (and the sender retry) instead of holding the request for minutes.
var retryOptions = policy.RetryOptions{
	MaxRetries:    3,
	RetryDelay:    250 * time.Millisecond,
	MaxRetryDelay: 2 * time.Second,
	TryTimeout:    30 * time.Second,
}

// Open connects to the table service and creates the table if it does not exist.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	table := cfg.Table
	if table == "" {
		table = DefaultTable
	}
	opts := &aztables.ClientOptions{ClientOptions: azcore.ClientOptions{
		Retry:     retryOptions,
		Transport: newHTTPClient(),
	}}
	acct := tables.Account{ConnectionString: cfg.ConnectionString, ServiceURI: cfg.ServiceURI, ClientID: cfg.ClientID}
	svc, err := acct.Service(opts)
	if err != nil {
		return nil, fmt.Errorf("open failure store: %w", err)
	}
	s := &Store{service: svc, table: table, client: svc.NewClient(table),
		claimTTL: cmp.Or(max(cfg.ClaimTimeout, 0), DefaultClaimTimeout),
		callTTL:  cmp.Or(max(cfg.CallTimeout, 0), DefaultCallTimeout),
		now:      time.Now}
	if err := s.createTable(ctx); err != nil {
		return nil, fmt.Errorf("open failure store: %w", err)
	}
	return s, nil
}

// createTable creates the store's table unless it exists.
func (s *Store) createTable(ctx context.Context) error {
	if _, err := s.service.CreateTable(ctx, s.table, nil); err != nil && !hasCode(err, aztables.TableAlreadyExists) {
		return fmt.Errorf("create table %s: %w", s.table, storageError(err))
	}
	return nil
}

// bound gives one call of the store its deadline: the caller's, or callTTL from now when
// that comes first. A call that runs out of time fails with ErrUnavailable.
func (s *Store) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeoutCause(ctx, s.callTTL,
		fmt.Errorf("%w: table storage did not answer within %s", ErrUnavailable, s.callTTL))
}

// newHTTPClient is azcore's default transport with room for more idle connections per host:
// Record runs from many deliveries at once, and the default 10 makes the rest reconnect.
func newHTTPClient() *http.Client {
	return &http.Client{Transport: &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          128,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}}
}

// noContent asks the service not to echo an inserted entity back: the payload would cross the
// wire twice.
func noContent(ctx context.Context) context.Context {
	return policy.WithHTTPHeader(ctx, http.Header{"Prefer": []string{"return-no-content"}})
}

// Record stores a failure, or adds to it when the same (EventID, Consumer) failed before (for
// poison messages, Consumer empty: the same MessageID). It returns the failure as stored, with
// its ID. Recording needs EventID when Consumer is set; Kind defaults to poison without a
// consumer and delivery with one; Attempts to 1; LastFailedAt to now; FirstFailedAt to
// LastFailedAt; UpdatedBy to "dvrouter". Status is always pending for a new failure.
// OccurredAt must be a property of the event (it places the failure in time and in its keys:
// the same event recorded with another OccurredAt is another failure); zero sorts oldest.
// An error means nothing was recorded (or, if the answer was lost, possibly recorded: recording
// again is safe and counts one more attempt).
func (s *Store) Record(ctx context.Context, f Failure) (Failure, error) {
	f, err := s.normalize(f)
	if err != nil {
		return Failure{}, err
	}
	ident, err := identity(f)
	if err != nil {
		return Failure{}, err
	}
	k := keysFor(ident, f.OccurredAt)
	f.ID = k.id()
	sp, err := encodePayload(f.Payload)
	if err != nil {
		return Failure{}, fmt.Errorf("record %s: %w", f.ID, err)
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	recreated := false
	// Normally one round: the insert succeeds, or the entity exists and the merge succeeds.
	// More rounds only when others change the entity (lost merge) or delete it in between.
	for range 20 {
		w, err := s.insert(ctx, k, f, sp)
		if errors.Is(err, errNoTable) && !recreated {
			// The table went away under a running store (deleted, or an emulator restarted
			// empty): make it again and retry once, rather than failing every event until a
			// restart.
			recreated = true
			if err = s.createTable(ctx); err == nil {
				continue
			}
		}
		if err != nil {
			return Failure{}, fmt.Errorf("record %s: %w", f.ID, callError(ctx, err))
		}
		if w.inserted {
			return f, nil
		}
		merged, done, err := s.addTo(ctx, k, f, w)
		if err != nil {
			return Failure{}, fmt.Errorf("record %s: %w", f.ID, callError(ctx, err))
		}
		if done {
			return merged, nil
		}
	}
	return Failure{}, fmt.Errorf("record %s: %w: too many concurrent changes", f.ID, ErrConflict)
}

func (s *Store) normalize(f Failure) (Failure, error) {
	now := normTime(s.now())
	switch {
	case f.Kind == "" && f.Consumer == "":
		f.Kind = KindPoison
	case f.Kind == "":
		f.Kind = KindDelivery
	case f.Kind == KindPoison && f.Consumer != "":
		return Failure{}, fmt.Errorf("%w: a poison message has no consumer (got %q)", ErrInvalid, f.Consumer)
	case (f.Kind == KindDelivery || f.Kind == KindBreakerOpen || f.Kind == KindPaused) && f.Consumer == "":
		return Failure{}, fmt.Errorf("%w: a %s failure needs its consumer", ErrInvalid, f.Kind)
	case f.Kind == KindReread && (f.Consumer != "" || f.EventID == ""):
		return Failure{}, fmt.Errorf("%w: a reread failure is one per event: it has an event id and no consumer", ErrInvalid)
	case f.Kind != KindDelivery && f.Kind != KindBreakerOpen && f.Kind != KindPoison && f.Kind != KindPaused && f.Kind != KindReread:
		return Failure{}, fmt.Errorf("%w: kind %q", ErrInvalid, f.Kind)
	}
	f.Status = StatusPending
	f.Attempts = max(f.Attempts, 1)
	f.OccurredAt = normTime(f.OccurredAt)
	f.LastFailedAt = normTime(f.LastFailedAt)
	if f.LastFailedAt.IsZero() {
		f.LastFailedAt = now
	}
	f.FirstFailedAt = normTime(f.FirstFailedAt)
	if f.FirstFailedAt.IsZero() || f.FirstFailedAt.After(f.LastFailedAt) {
		f.FirstFailedAt = f.LastFailedAt
	}
	if f.UpdatedBy == "" {
		f.UpdatedBy = "dvrouter"
	}
	f.UpdatedBy = capText(f.UpdatedBy, maxFieldChars)
	f.UpdatedAt = now
	f.LastError = capText(f.LastError, maxErrorChars)
	f.ClaimedBy, f.ClaimedAt, f.Reason = "", time.Time{}, ""
	f.PayloadSize = len(f.Payload)
	f.History = withChange(nil, recordedChange(f))
	f.Tries = LastTries(f.Tries)
	return f, nil
}

// recordedChange is the first entry of a new failure's history.
func recordedChange(f Failure) Change {
	return Change{At: f.UpdatedAt, By: f.UpdatedBy, Action: ActionRecorded, Status: f.Status, Detail: f.LastError}
}

// write is one insert attempt.
type write struct {
	token    string   // random, stored as writeId: tells our own insert from someone else's
	chunks   []string // RowKeys of the payload chunks written for it
	inserted bool
}

// insert adds the failure as a new entity; inserted is false when it already exists.
func (s *Store) insert(ctx context.Context, k keys, f Failure, sp storedPayload) (write, error) {
	var w write
	var err error
	if w.token, err = newToken(); err != nil {
		return w, err
	}
	p, rest := mainProps(k, f, sp)
	p[pWriteID] = w.token
	if len(rest) > 0 {
		// Chunks first: the main entity appearing is what makes the payload whole.
		w.chunks, err = s.writeChunks(ctx, k, w.token, rest)
		if err != nil {
			return w, err // chunks already written stay: nothing refers to them
		}
		p[pPayloadSpill] = w.token
		p[pPayloadChunks] = int32(len(w.chunks))
	}
	body, err := p.marshal()
	if err != nil {
		return w, fmt.Errorf("encode entity: %w", err)
	}
	if _, err := s.client.AddEntity(noContent(ctx), body, nil); err != nil {
		if hasCode(err, aztables.EntityAlreadyExists) {
			// Maybe someone else's entity, maybe ours: a retried insert whose first try
			// succeeded also answers this. addTo reads the entity and tells.
			return w, nil
		}
		// Whether the insert happened is unknown (the answer may have been lost), so the
		// chunks stay: deleting them could break a stored payload.
		return w, storageError(err)
	}
	w.inserted = true
	return w, nil
}

// mainProps is a new failure's main entity, holding as many payload parts as fit; rest are
// the parts that must spill into chunks.
func mainProps(k keys, f Failure, sp storedPayload) (p props, rest [][]byte) {
	p = newProps(k.pk, k.rk)
	p.str(pEventID, f.EventID, maxFieldChars)
	p.str(pConsumer, f.Consumer, maxFieldChars)
	p.str(pRoute, f.Route, maxFieldChars)
	p.str(pTable, f.Table, maxFieldChars)
	p.str(pMessage, f.Message, maxFieldChars)
	p.str(pRecordID, f.RecordID, maxFieldChars)
	p.str(pCorrelationID, f.CorrelationID, maxFieldChars)
	p.str(pMessageID, f.MessageID, maxFieldChars)
	if f.OrganizationHost != "" {
		p.str(pOrgHost, f.OrganizationHost, maxFieldChars)
	}
	p.str(pKind, string(f.Kind), maxFieldChars)
	p.str(pStatus, string(f.Status), maxFieldChars)
	p[pAttempts] = int32(min(f.Attempts, 1<<31-1))
	p.time(pOccurredAt, f.OccurredAt)
	p.time(pFirstFailedAt, f.FirstFailedAt)
	p.time(pLastFailedAt, f.LastFailedAt)
	p.str(pLastError, f.LastError, maxErrorChars)
	p[pLastStatusCode] = int32(f.LastStatusCode)
	p.str(pUpdatedBy, f.UpdatedBy, maxFieldChars)
	p.time(pUpdatedAt, f.UpdatedAt)
	p[pPayloadCodec] = sp.codec
	p[pPayloadLen] = int32(sp.rawLen)
	p[pPayloadCRC] = fmt.Sprintf("%08x", sp.crc)
	inMain := sp.parts[:min(len(sp.parts), mainParts)]
	for i, part := range inMain {
		p.binary(partName(i), part)
	}
	p[pPayloadParts] = int32(len(inMain))
	p.history(nil, recordedChange(f))
	p.tries(f.Tries)
	return p, sp.parts[len(inMain):]
}

// chunkProps is one spilled chunk entity.
func chunkProps(pk, rk string, parts [][]byte) props {
	p := newProps(pk, rk)
	for i, part := range parts {
		p.binary(partName(i), part)
	}
	p[pPayloadParts] = int32(len(parts))
	return p
}

func newToken() (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("write token: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// writeChunks stores the payload parts that do not fit in the main entity, and returns their
// RowKeys.
func (s *Store) writeChunks(ctx context.Context, k keys, token string, parts [][]byte) ([]string, error) {
	var written []string
	for n := 0; len(parts) > 0; n++ {
		c := min(len(parts), chunkParts)
		rk := fmt.Sprintf("%s%02d", k.chunkPrefix(token), n)
		p := chunkProps(k.pk, rk, parts[:c])
		parts = parts[c:]
		body, err := p.marshal()
		if err != nil {
			return written, fmt.Errorf("encode payload chunk: %w", err)
		}
		// The token in the key is new, so "already exists" can only be this very write,
		// retried by the SDK after its first try succeeded.
		if _, err := s.client.AddEntity(noContent(ctx), body, nil); err != nil && !hasCode(err, aztables.EntityAlreadyExists) {
			return written, fmt.Errorf("write payload chunk %d: %w", n, storageError(err))
		}
		written = append(written, rk)
	}
	return written, nil
}

// deleteChunks removes chunks nothing refers to. It is best effort and not tied to the
// caller's context (which may be what failed); what it misses only costs storage.
func (s *Store) deleteChunks(pk string, rowKeys []string) {
	if len(rowKeys) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, rk := range rowKeys {
		_, _ = s.client.DeleteEntity(ctx, pk, rk, nil)
	}
}

// addTo merges a new failure of the same (event, consumer) into the stored one, after insert
// w found it existing. done is false when the caller must try again from the insert (the
// entity vanished, or changed under us).
func (s *Store) addTo(ctx context.Context, k keys, f Failure, w write) (Failure, bool, error) {
	stored, err := s.readMeta(ctx, k)
	if errors.Is(err, ErrNotFound) {
		s.deleteChunks(k.pk, w.chunks)
		return Failure{}, false, nil
	}
	if err != nil {
		return Failure{}, false, err
	}
	if stored.writeID == w.token {
		return f, true, nil // our own insert, retried by the SDK after it succeeded
	}
	s.deleteChunks(k.pk, w.chunks) // the stored failure keeps its own payload
	cur, etag := stored.Failure, stored.etag
	m := cur
	m.Attempts = min(cur.Attempts+f.Attempts, 1<<31-1)
	m.LastError, m.LastStatusCode, m.Kind = f.LastError, f.LastStatusCode, f.Kind
	if f.LastFailedAt.After(cur.LastFailedAt) {
		m.LastFailedAt = f.LastFailedAt
	}
	if cur.FirstFailedAt.IsZero() || f.FirstFailedAt.Before(cur.FirstFailedAt) {
		m.FirstFailedAt = f.FirstFailedAt
	}
	if cur.Status == StatusDiscarded {
		m.Status = StatusPending
	}
	// A replayed failure stays replayed: the consumer already has this event (same id).
	m.UpdatedBy, m.UpdatedAt = f.UpdatedBy, f.UpdatedAt

	p := newProps(k.pk, k.rk)
	p[pAttempts] = int32(m.Attempts)
	p.str(pLastError, m.LastError, maxErrorChars)
	p[pLastStatusCode] = int32(m.LastStatusCode)
	p.str(pKind, string(m.Kind), maxFieldChars)
	p.time(pLastFailedAt, m.LastFailedAt)
	p.time(pFirstFailedAt, m.FirstFailedAt)
	p.str(pStatus, string(m.Status), maxFieldChars)
	p.str(pUpdatedBy, m.UpdatedBy, maxFieldChars)
	p.time(pUpdatedAt, m.UpdatedAt)
	m.History = p.history(cur.History, Change{At: m.UpdatedAt, By: m.UpdatedBy, Action: ActionFailedAgain, Status: m.Status, Detail: m.LastError})
	if len(f.Tries) > 0 {
		m.Tries = p.tries(append(cur.Tries[:len(cur.Tries):len(cur.Tries)], f.Tries...))
	}
	if _, err := s.merge(ctx, p, etag); err != nil {
		if errors.Is(err, ErrConflict) || errors.Is(err, ErrNotFound) {
			return Failure{}, false, nil
		}
		return Failure{}, false, err
	}
	m.Payload = f.Payload
	return m, true, nil
}

// merge writes p over the stored entity if it still has etag.
func (s *Store) merge(ctx context.Context, p props, etag ETag) (ETag, error) {
	body, err := p.marshal()
	if err != nil {
		return "", fmt.Errorf("encode entity: %w", err)
	}
	tag := azcore.ETag(etag)
	resp, err := s.client.UpdateEntity(ctx, body, &aztables.UpdateEntityOptions{IfMatch: &tag, UpdateMode: aztables.UpdateModeMerge})
	if err != nil {
		return "", storageError(err)
	}
	return ETag(resp.ETag), nil
}

// meta is a failure as read without its payload.
type meta struct {
	Failure
	etag    ETag
	writeID string
	spill   string // token of the spilled payload chunks, if any
	chunks  int    // spilled payload chunk entities
}

// readMeta reads a failure's columns without its payload, by a query for the one row (a point
// read that can $select, which GetEntity cannot).
func (s *Store) readMeta(ctx context.Context, k keys) (meta, error) {
	filter := fmt.Sprintf("PartitionKey eq '%s' and RowKey eq '%s'", k.pk, k.rk)
	top := int32(1)
	pager := s.client.NewListEntitiesPager(&aztables.ListEntitiesOptions{Filter: &filter, Select: &detailSelect, Top: &top})
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return meta{}, storageError(err)
		}
		for _, raw := range page.Entities {
			var e entity
			if err := json.Unmarshal(raw, &e); err != nil {
				return meta{}, fmt.Errorf("decode entity: %w", err)
			}
			// $select may leave the keys out of the answer; they are the ones asked for.
			e.PartitionKey, e.RowKey = k.pk, k.rk
			f, err := e.failure()
			if err != nil {
				return meta{}, err
			}
			return meta{Failure: f, etag: ETag(e.ETag), writeID: e.WriteID, spill: e.PayloadSpill, chunks: int(e.PayloadChunks)}, nil
		}
	}
	return meta{}, ErrNotFound
}

// Get reads one failure with its payload.
func (s *Store) Get(ctx context.Context, id string) (Failure, ETag, error) {
	k, err := parseID(id)
	if err != nil {
		return Failure{}, "", fmt.Errorf("get %q: %w: %w", id, ErrNotFound, err)
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	resp, err := s.client.GetEntity(ctx, k.pk, k.rk, nil)
	if err != nil {
		return Failure{}, "", fmt.Errorf("get %s: %w", id, callError(ctx, storageError(err)))
	}
	var e entity
	if err := json.Unmarshal(resp.Value, &e); err != nil {
		return Failure{}, "", fmt.Errorf("get %s: decode entity: %w", id, err)
	}
	f, err := e.failure()
	if err != nil {
		return Failure{}, "", fmt.Errorf("get %s: %w", id, err)
	}
	stored, err := partsOf(resp.Value, int(e.PayloadParts))
	if err != nil {
		return Failure{}, "", fmt.Errorf("get %s: %w", id, err)
	}
	if e.PayloadSpill != "" {
		more, err := s.readChunks(ctx, k, e.PayloadSpill, int(e.PayloadChunks))
		if err != nil {
			return Failure{}, "", fmt.Errorf("get %s: %w", id, callError(ctx, err))
		}
		stored = append(stored, more...)
	}
	crc, err := e.crc()
	if err != nil {
		return Failure{}, "", fmt.Errorf("get %s: %w", id, err)
	}
	if f.Payload, err = decodePayload(e.PayloadCodec, int(e.PayloadLen), crc, stored); err != nil {
		return Failure{}, "", fmt.Errorf("get %s: %w", id, err)
	}
	return f, ETag(resp.ETag), nil
}

// partsOf concatenates the payload properties payload00 .. payload(n-1) of an entity.
func partsOf(raw []byte, n int) ([]byte, error) {
	if n == 0 {
		return nil, nil
	}
	var cols map[string]json.RawMessage
	if err := json.Unmarshal(raw, &cols); err != nil {
		return nil, fmt.Errorf("decode payload: %w", err)
	}
	var out []byte
	for i := range n {
		col, ok := cols[partName(i)]
		if !ok {
			return nil, fmt.Errorf("payload part %s is missing", partName(i))
		}
		var part []byte // JSON base64 string -> bytes
		if err := json.Unmarshal(col, &part); err != nil {
			return nil, fmt.Errorf("decode payload part %s: %w", partName(i), err)
		}
		out = append(out, part...)
	}
	return out, nil
}

// readChunks reads the spilled part of a payload, in order.
func (s *Store) readChunks(ctx context.Context, k keys, token string, want int) ([]byte, error) {
	prefix := k.chunkPrefix(token)
	filter := fmt.Sprintf("PartitionKey eq '%s' and RowKey ge '%s' and RowKey lt '%s'",
		k.pk, prefix, prefix[:len(prefix)-1]+".") // '.' follows '-'
	pager := s.client.NewListEntitiesPager(&aztables.ListEntitiesOptions{Filter: &filter})
	var out []byte
	got := 0
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("read payload chunks: %w", storageError(err))
		}
		for _, raw := range page.Entities {
			var c struct {
				RowKey string `json:"RowKey"`
				Parts  int32  `json:"payloadParts"`
			}
			if err := json.Unmarshal(raw, &c); err != nil {
				return nil, fmt.Errorf("decode payload chunk: %w", err)
			}
			if c.RowKey != fmt.Sprintf("%s%02d", prefix, got) {
				return nil, fmt.Errorf("payload chunk %d is missing", got)
			}
			b, err := partsOf(raw, int(c.Parts))
			if err != nil {
				return nil, err
			}
			out = append(out, b...)
			got++
		}
	}
	if got != want {
		return nil, fmt.Errorf("payload has %d chunks, expected %d", got, want)
	}
	return out, nil
}

// storageError turns the SDK's errors into the store's: missing is ErrNotFound, a lost ETag
// race is ErrConflict, and any other service answer gets a one-line message (the SDK's spans
// many lines and quotes the request URL).
func storageError(err error) error {
	var re *azcore.ResponseError
	if !errors.As(err, &re) {
		return err
	}
	switch {
	case re.StatusCode == http.StatusNotFound && strings.EqualFold(re.ErrorCode, string(aztables.TableNotFound)):
		return errNoTable
	case re.StatusCode == http.StatusNotFound:
		return fmt.Errorf("%w (%s)", ErrNotFound, re.ErrorCode)
	case re.StatusCode == http.StatusPreconditionFailed, hasCode(err, aztables.UpdateConditionNotSatisfied):
		return ErrConflict
	}
	return &serviceError{status: re.StatusCode, code: re.ErrorCode, err: err}
}

// callError is err as the caller of a bounded call should see it: ErrUnavailable with the
// reason when the call's deadline passed, the connection failed or the service answered an
// error of its own; err itself when it says something about the failure (missing, conflict,
// invalid).
func callError(ctx context.Context, err error) error {
	switch {
	case errors.Is(err, ErrNotFound), errors.Is(err, ErrConflict), errors.Is(err, ErrInvalid),
		errors.Is(err, ErrPayloadTooLarge), errors.Is(err, ErrUnavailable):
		return err
	case ctx.Err() != nil && context.Cause(ctx) != ctx.Err():
		return context.Cause(ctx) // our deadline: it already wraps ErrUnavailable
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}

// serviceError is an error answer from Table Storage.
type serviceError struct {
	status int
	code   string
	err    error
}

func (e *serviceError) Error() string {
	if e.code == "" {
		return fmt.Sprintf("table storage answered %d", e.status)
	}
	return fmt.Sprintf("table storage answered %d %s", e.status, e.code)
}

func (e *serviceError) Unwrap() error { return e.err }

func hasCode(err error, code aztables.TableErrorCode) bool {
	var re *azcore.ResponseError
	return errors.As(err, &re) && strings.EqualFold(re.ErrorCode, string(code))
}

// Package failures is the failure store: every (event, consumer) delivery that still failed
// after its retries, and every queue message that could not be decoded, kept in Azure Table
// Storage until support staff replay or discard it.
//
// # Keys
//
// One failure is one entity, found by its identity: (EventID, Consumer) for a delivery, or the
// Service Bus MessageID (the SHA-256 of the payload when there is none) for a poison message
// (Consumer empty). h = SHA-256(identity) gives
//
//	PartitionKey  "s" + two hex digits of h[0] mod 16        e.g. "s0a"
//	RowKey        "r" + 19 digits (MaxInt64 - OccurredAt in Unix ns) + "-" + hex(h[:16])
//	public id     "<shard>-<19 digits>-<32 hex>"               e.g. "0a-7455...-9f3c..."
//
// so that:
//   - writes spread over 16 partitions by hash, so one consumer being down is bounded by 16
//     partitions' 2,000 entities/s, not one; the shard count is fixed (ids and lists depend on it).
//   - inside a partition rows sort newest first by OccurredAt (the event's time, which is the
//     same each time the same event fails, so the same failure always gets the same keys), and a
//     From/To time range is a RowKey range, not a scan.
//   - the public id holds both keys: Get is one point read. Ids contain only [0-9a-f-].
//
// List runs one query per partition (filters pushed down as OData $filter, non-payload columns
// only via $select) and merges them newest first. Rows never share a RowKey across partitions
// (the RowKey ends with the hash that picks the partition), so the RowKey alone orders all
// failures, and the continuation token is just the last RowKey returned: the next page asks
// every partition for rows after it. Each row is returned exactly once however small Top is.
//
// # Payloads
//
// The payload is compressed with DEFLATE at its fastest level (kept as is when that does not
// make it smaller) and cut into binary properties payload00, payload01, ... of at most 64 KiB
// each. The main entity holds up to 14 of them (917,504 bytes stored); with every text field at
// its cap it is still under the 1 MiB entity limit as Table Storage counts it (binary by its
// raw length, not its base64 form on the wire). Azurite checks the 64 KiB per property exactly
// (65,536 bytes pass, 65,537 fail) but not the entity total, so the store keeps to the limit
// itself and a test checks the arithmetic. Longer stored payloads spill into chunk entities of
// up to 15 parts each in the same partition, RowKey "x..." (outside the "r" range lists scan),
// named with a random token kept in the main entity. Chunks are written before the main entity,
// so the main entity appearing is the commit point. A write that finds the failure already
// stored deletes its own chunks (best effort); one that fails with an unknown outcome leaves
// them, since the main entity may have been written after all (they cost only storage). The
// length and CRC-32C of the original bytes are stored and checked on every read: a round trip
// is byte-exact or an error, never silently truncated. MaxPayloadSize (4 MiB of original bytes,
// incompressible included: 14 parts in the main entity and 4 chunks) is the largest payload
// accepted; larger ones fail with ErrPayloadTooLarge.
//
// # Recording the same failure again
//
// Record first tries one insert (the common case: the first failure of an (event, consumer)).
// When the entity exists it reads the non-payload columns and merges with If-Match, retrying on
// a lost race: attempts grow by the new attempts, lastError, lastStatusCode and lastFailedAt are
// the new ones, and a failure that had been discarded goes back to pending (it failed again, so
// someone should look at it). One that had been replayed stays replayed: the consumer has had
// this very event (same id) from the replay, so Dataverse sending it again adds an attempt and a
// history line, not work for support. One being replayed right now keeps status replaying. The
// payload is written once, with the first failure: the same event has the same payload.
//
// # Status changes
//
// Every status change (Claim, MarkReplayed, RecordAttempt, Release, Discard) reads the current
// entity, checks the caller's ETag and the status, and writes with If-Match on the ETag it read;
// a stale ETag or a lost race is ErrConflict. A replay first Claims the failure (status
// replaying), delivers, then calls MarkReplayed or RecordAttempt (Release when the consumer's
// breaker refused it untried) with the ETag Claim returned: of two
// concurrent replays exactly one Claim succeeds. A claim older than Config.ClaimTimeout (default
// 5 minutes) counts as abandoned (the replaying process died) and can be claimed again. A
// pending or discarded failure can be claimed; a replayed one cannot (it was delivered, and
// stays replayed when Record sees the same event fail again). A Record of the same failure during a replay changes
// its ETag, so that replay's MarkReplayed gets ErrConflict and the claim lapses after the
// timeout: the consumer may then get the event twice, and deduplicates by its id.
// Every change sets updatedBy and updatedAt, and appends to the history column (JSON, the
// newest 40 changes: when, who, what, the status it left, the error or reason), which Get
// returns and lists leave out.
//
// # Replaying and discarding
//
// Replayer holds the rules support staff act under: only pending failures are replayed or
// discarded; a replay claims first, so of two at once one wins; a failure whose route is gone is
// refused (its exclude list is unknown, so the event could leak columns it must not); a
// consumer whose breaker is open is not tried and no attempt counts; a bulk replay stops
// starting replays once a breaker opens. It sends through a Sender (delivery) and routes poison
// that decodes now through a Router (dispatch): interfaces defined here, so this package
// depends on neither.
//
// # Retention
//
// Purge deletes failures first recorded (firstFailedAt, when the payload was stored) before
// now - Retention.Failures, and replayed or discarded ones resolved (updatedAt) before
// now - Retention.Resolved: a filtered scan of each partition, then entity group transactions of
// at most 100 rows, each failure together with its chunks, with If-Match on the ETag listed (a
// failure recorded again meanwhile is left for the next run). The record time, not the event's,
// bounds the age of the data kept: an old event that fails today is kept the full window. Chunk
// rows that no failure refers to (an interrupted write's) are deleted once their Timestamp is
// past the same bound. Every transaction stands alone: a run stopped anywhere leaves the store
// consistent and the next run finishes the job.
//
// # Availability
//
// The client retries 3 times (250 ms doubling to 2 s) with a 30 s limit per try and a 5 s
// connect timeout: a store that is down makes Record fail within seconds (about 3 s against a
// stopped Azurite), so the caller can answer 503 and the sender retry. Every call also has a
// deadline of its own (Config.CallTimeout, 10 s by default, or the caller's if sooner): a store
// that accepts connections and never answers fails the call with ErrUnavailable, never holds it
// for minutes. ErrUnavailable's message can name the account and table: callers log it and show
// their own users a message of their own.
//
// A table that goes away under a running store (deleted, or an emulator restarted empty) is
// made again by the next Record, which then retries once; until then List answers an empty
// page and Get ErrNotFound.
package failures

package failures

import (
	"context"
	"fmt"
	"time"
)

// Claim takes a failure for one replay: status becomes replaying, held by by. Of two
// concurrent claims exactly one succeeds; the other gets ErrConflict. Pass the ETag from Get
// (or "" to claim whatever is stored now); use the returned ETag for MarkReplayed or
// RecordAttempt. A pending or discarded failure can be claimed, and a replaying one whose
// claim is older than the claim timeout (the replay that held it died); a replayed one
// cannot (it was delivered).
func (s *Store) Claim(ctx context.Context, id string, etag ETag, by string) (ETag, error) {
	return s.change(ctx, "claim", id, etag, by, func(cur Failure, now time.Time, p props) error {
		switch {
		case cur.Status == StatusReplayed:
			return fmt.Errorf("%w: already replayed", ErrConflict)
		case s.claimHeld(cur, now):
			return fmt.Errorf("%w: being replayed by %s since %s", ErrConflict, cur.ClaimedBy, cur.ClaimedAt.Format(time.RFC3339))
		}
		p.str(pStatus, string(StatusReplaying), maxFieldChars)
		p.str(pClaimedBy, by, maxFieldChars)
		p.time(pClaimedAt, now)
		p.history(cur.History, Change{At: now, By: by, Action: ActionClaimed, Status: StatusReplaying})
		return nil
	})
}

// MarkReplayed records that a replay delivered the failure (status replayed), adding the
// replay's tries to the failure's. Pass the ETag Claim returned.
func (s *Store) MarkReplayed(ctx context.Context, id string, etag ETag, tries []Try, by string) error {
	_, err := s.change(ctx, "mark replayed", id, etag, by, func(cur Failure, now time.Time, p props) error {
		p.str(pStatus, string(StatusReplayed), maxFieldChars)
		p.tries(append(cur.Tries[:len(cur.Tries):len(cur.Tries)], tries...))
		p.history(cur.History, Change{At: now, By: by, Action: ActionReplayed, Status: StatusReplayed})
		return nil
	})
	return err
}

// RecordAttempt records a replay that failed again: attempts + 1, the new error, the replay's
// tries added to the failure's, and status back to pending. Pass the ETag Claim returned.
func (s *Store) RecordAttempt(ctx context.Context, id string, etag ETag, errText string, statusCode int, tries []Try, by string) error {
	_, err := s.change(ctx, "record attempt", id, etag, by, func(cur Failure, now time.Time, p props) error {
		p.tries(append(cur.Tries[:len(cur.Tries):len(cur.Tries)], tries...))
		p[pAttempts] = int32(min(cur.Attempts+1, 1<<31-1))
		p.str(pLastError, errText, maxErrorChars)
		p[pLastStatusCode] = int32(statusCode)
		p.time(pLastFailedAt, now)
		p.str(pStatus, string(StatusPending), maxFieldChars)
		p.history(cur.History, Change{At: now, By: by, Action: ActionReplayFailed, Status: StatusPending, Detail: errText})
		return nil
	})
	return err
}

// Release gives back a claim whose replay was not tried (the consumer's breaker refused it):
// status pending again, attempts and error unchanged. Pass the ETag Claim returned.
func (s *Store) Release(ctx context.Context, id string, etag ETag, by string) error {
	_, err := s.change(ctx, "release", id, etag, by, func(cur Failure, now time.Time, p props) error {
		p.str(pStatus, string(StatusPending), maxFieldChars)
		p.history(cur.History, Change{At: now, By: by, Action: ActionReleased, Status: StatusPending})
		return nil
	})
	return err
}

// Discard sets a failure aside for good (status discarded) with the reason. Only a pending
// failure, or one whose replay died (its claim timed out), can be discarded: one being replayed
// right now is ErrConflict, and one already replayed or discarded is a *StatusError.
func (s *Store) Discard(ctx context.Context, id string, etag ETag, by, reason string) error {
	_, err := s.change(ctx, "discard", id, etag, by, func(cur Failure, now time.Time, p props) error {
		switch {
		case cur.Status == StatusReplayed || cur.Status == StatusDiscarded:
			return &StatusError{Failure: cur, Op: "discarded"}
		case s.claimHeld(cur, now):
			return fmt.Errorf("%w: being replayed by %s since %s", ErrConflict, cur.ClaimedBy, cur.ClaimedAt.Format(time.RFC3339))
		}
		p.str(pStatus, string(StatusDiscarded), maxFieldChars)
		p.str(pReason, reason, maxFieldChars)
		p.history(cur.History, Change{At: now, By: by, Action: ActionDiscarded, Status: StatusDiscarded, Detail: reason})
		return nil
	})
	return err
}

// StatusError says a failure's status does not allow what was asked: it was already replayed
// or discarded. It matches ErrConflict.
type StatusError struct {
	Failure Failure // as stored, without payload
	Op      string  // what was refused, as a past participle: "replayed", "discarded"
}

func (e *StatusError) Error() string {
	by, at := e.Failure.UpdatedBy, "an unknown time"
	if by == "" {
		by = "someone"
	}
	if !e.Failure.UpdatedAt.IsZero() {
		at = e.Failure.UpdatedAt.UTC().Format(time.RFC3339)
	}
	return fmt.Sprintf("failure %s is %s (by %s at %s); only pending failures can be %s", e.Failure.ID, e.Failure.Status, by, at, e.Op)
}

func (e *StatusError) Is(target error) bool { return target == ErrConflict }

func (s *Store) claimHeld(f Failure, now time.Time) bool {
	return f.Status == StatusReplaying && now.Sub(f.ClaimedAt) < s.claimTTL
}

// change reads a failure, checks the caller's ETag, lets set decide and fill in the change,
// and writes it conditionally on the version it read: a concurrent change makes exactly one
// of the writers fail with ErrConflict.
func (s *Store) change(ctx context.Context, op, id string, etag ETag, by string,
	set func(cur Failure, now time.Time, p props) error) (ETag, error) {
	k, err := parseID(id)
	if err != nil {
		return "", fmt.Errorf("%s %q: %w: %w", op, id, ErrNotFound, err)
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	stored, err := s.readMeta(ctx, k)
	if err != nil {
		return "", fmt.Errorf("%s %s: %w", op, id, callError(ctx, err))
	}
	if etag != "" && etag != stored.etag {
		return "", fmt.Errorf("%s %s: %w: changed since it was read", op, id, ErrConflict)
	}
	now := normTime(s.now())
	p := newProps(k.pk, k.rk)
	if err := set(stored.Failure, now, p); err != nil {
		return "", fmt.Errorf("%s %s: %w", op, id, err)
	}
	if by == "" {
		by = "unknown"
	}
	p.str(pUpdatedBy, by, maxFieldChars)
	p.time(pUpdatedAt, now)
	next, err := s.merge(ctx, p, stored.etag)
	if err != nil {
		return "", fmt.Errorf("%s %s: %w", op, id, callError(ctx, err))
	}
	return next, nil
}

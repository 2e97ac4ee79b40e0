package breaker

import (
	"time"

	"github.com/sony/gobreaker/v2"
)

// record is one consumer's shared breaker state, as stored.
type record struct {
	State      gobreaker.State
	OpenUntil  time.Time // open: when the trials may start
	Prober     string    // half-open: the instance running the trials...
	ProbeUntil time.Time // ...until then; after it another instance may take over
	Buckets    []bucket  // closed: outcomes in the window, oldest first
	Opened     int64     // times it opened
	ChangedAt  time.Time
	ChangedBy  string
	Pause      *Pause // the operator's pause, nil when none; never modified once set
	etag       string // "" when not stored yet
}

// bucket counts the deliveries that ended in one part of the window.
type bucket struct {
	At        int64  // bucket number (see Breaker.bucketOf)
	Successes uint32 // deliveries the consumer took
	Failures  uint32
}

// effective is the state at now, with the instance probing when half-open and its claim holds.
// An open breaker whose time is up is half-open with nobody probing yet: the first instance to
// want to deliver claims the trials.
func (r *record) effective(now time.Time) (gobreaker.State, string) {
	switch r.State {
	case gobreaker.StateOpen:
		if now.Before(r.OpenUntil) {
			return gobreaker.StateOpen, ""
		}
		return gobreaker.StateHalfOpen, ""
	case gobreaker.StateHalfOpen:
		if r.Prober != "" && now.Before(r.ProbeUntil) {
			return gobreaker.StateHalfOpen, r.Prober
		}
		return gobreaker.StateHalfOpen, ""
	}
	return gobreaker.StateClosed, ""
}

// toState moves r to closed (counts cleared) or open (for openFor from now).
func (r *record) toState(to gobreaker.State, now time.Time, openFor time.Duration) {
	r.State, r.Prober, r.ProbeUntil, r.Buckets, r.OpenUntil = to, "", time.Time{}, nil, time.Time{}
	if to == gobreaker.StateOpen {
		r.OpenUntil = now.Add(openFor)
		r.Opened++
	}
}

func (r *record) stamp(now time.Time, instance string) { r.ChangedAt, r.ChangedBy = now, instance }

// addOutcome counts one delivery in bucket at.
func addOutcome(bs []bucket, at int64, success bool) []bucket {
	if n := len(bs); n == 0 || bs[n-1].At != at {
		bs = append(bs, bucket{At: at})
	}
	last := &bs[len(bs)-1]
	if success {
		last.Successes++
	} else {
		last.Failures++
	}
	return bs
}

// mergeBuckets adds the counts of b into a, both oldest first; the result is oldest first.
func mergeBuckets(a, b []bucket) []bucket {
	out := make([]bucket, 0, len(a)+len(b))
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case j == len(b) || (i < len(a) && a[i].At < b[j].At):
			out = append(out, a[i])
			i++
		case i == len(a) || b[j].At < a[i].At:
			out = append(out, b[j])
			j++
		default:
			out = append(out, bucket{At: a[i].At, Successes: a[i].Successes + b[j].Successes, Failures: a[i].Failures + b[j].Failures})
			i++
			j++
		}
	}
	return out
}

// inWindow reports whether bucket at is among the window's buckets when current is the newest.
func inWindow(at, current int64) bool { return at > current-buckets && at <= current }

// pruneBuckets drops the buckets that left the window.
func pruneBuckets(bs []bucket, current int64) []bucket {
	out := bs[:0]
	for _, b := range bs {
		if inWindow(b.At, current) {
			out = append(out, b)
		}
	}
	return out
}

// sumWindow totals the buckets inside the window.
func sumWindow(bs []bucket, current int64) (successes, failures uint32) {
	for _, b := range bs {
		if inWindow(b.At, current) {
			successes += b.Successes
			failures += b.Failures
		}
	}
	return successes, failures
}

package tables

import (
	"fmt"
	"math"
	"testing"
	"time"
)

func TestInvertedTime_LaterSortsFirstAtFixedWidth(t *testing.T) {
	times := []time.Time{
		{}, // zero: clamped to the epoch, sorts last
		time.Unix(0, 1),
		time.Date(2024, 7, 25, 10, 30, 0, 0, time.UTC),
		time.Date(2024, 7, 25, 10, 30, 0, 1, time.UTC),
		time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC), // past 2262: clamped, sorts first
	}
	prev := ""
	for i, tm := range times {
		got := InvertedTime(tm)
		if len(got) != InvertedTimeDigits {
			t.Fatalf("%v: %q is %d digits, want %d", tm, got, len(got), InvertedTimeDigits)
		}
		if i > 0 && got >= prev {
			t.Errorf("%v: %q does not sort before the earlier time's %q", tm, got, prev)
		}
		prev = got
	}
	if got := InvertedTime(time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)); got != "0000000000000000000" {
		t.Errorf("clamped future = %q", got)
	}
}

// The digits are fmt's zero-padded decimal of math.MaxInt64 less the clamped time.
func TestInvertedTime_IsTheZeroPaddedDecimal(t *testing.T) {
	for _, tm := range []time.Time{{}, time.Unix(0, 1), time.Unix(0, math.MaxInt64), time.Date(2026, 12, 3, 17, 50, 1, 123456789, time.UTC),
		time.Date(1969, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2024, 7, 25, 10, 30, 0, 0, time.FixedZone("x", 7200))} {
		want := fmt.Sprintf("%019d", math.MaxInt64-ClampedUnixNano(tm))
		if got := InvertedTime(tm); got != want {
			t.Errorf("%v: %q, want %q", tm, got, want)
		}
		if got := AppendInvertedTime([]byte("x|"), tm); string(got) != "x|"+want {
			t.Errorf("%v appended: %q", tm, got)
		}
	}
}

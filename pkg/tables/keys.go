package tables

import (
	"math"
	"time"
)

// InvertedTimeDigits is the width of InvertedTime's text: the digits of math.MaxInt64.
const InvertedTimeDigits = 19

// InvertedTime makes later times sort first as fixed-width decimal text, so a RowKey that starts
// with it reads newest first. Times before 1970 or past 2262 are clamped to the ends.
func InvertedTime(t time.Time) string {
	return string(AppendInvertedTime(make([]byte, 0, InvertedTimeDigits), t))
}

// AppendInvertedTime appends InvertedTime(t) to b.
func AppendInvertedTime(b []byte, t time.Time) []byte {
	inv := math.MaxInt64 - ClampedUnixNano(t)
	var digits [InvertedTimeDigits]byte
	for i := len(digits) - 1; i >= 0; i-- {
		digits[i] = byte('0' + inv%10)
		inv /= 10
	}
	return append(b, digits[:]...)
}

// ClampedUnixNano is t in Unix nanoseconds as InvertedTime clamps it: 0 for a time before 1970
// (or the zero time), math.MaxInt64 past 2262.
func ClampedUnixNano(t time.Time) int64 {
	switch {
	case t.IsZero() || t.Before(time.Unix(0, 0)):
		return 0
	case t.After(time.Unix(0, math.MaxInt64)):
		return math.MaxInt64
	default:
		return t.UnixNano()
	}
}

package tables

import (
	"fmt"
	"math"
	"time"
)

// InvertedTimeDigits is the width of InvertedTime's text: the digits of math.MaxInt64.
const InvertedTimeDigits = 19

// InvertedTime makes later times sort first as fixed-width decimal text, so a RowKey that starts
// with it reads newest first. Times before 1970 or past 2262 are clamped to the ends.
func InvertedTime(t time.Time) string {
	var ns int64
	switch {
	case t.IsZero() || t.Before(time.Unix(0, 0)):
		ns = 0
	case t.After(time.Unix(0, math.MaxInt64)):
		ns = math.MaxInt64
	default:
		ns = t.UnixNano()
	}
	return fmt.Sprintf("%0*d", InvertedTimeDigits, math.MaxInt64-ns)
}

package deliver

import (
	"encoding/json"
	"fmt"
	"math/bits"
	"strconv"
	"unicode/utf8"

	"github.com/dvrouter/dvrouter/pkg/dataverse"
)

// appendEvent appends ev as JSON: what encoding/json writes for a dataverse.Event with HTML
// escaping off (fields in declaration order, the same escaping), except that a row's columns
// come in map order, unsorted. It is written by hand because encoding/json, reflecting over a
// row of a few dozen columns and sorting them, spends about as long as the loopback POST that
// sends it. TestAppendEvent_MatchesEncodingJSON keeps the two equal, and fails when Event gains
// a field this function does not write.
func appendEvent(b []byte, ev *dataverse.Event) ([]byte, error) {
	var err error
	b = append(b, `{"id":`...)
	b = appendString(b, ev.ID)
	b = append(b, `,"message":`...)
	b = appendString(b, ev.Message)
	b = append(b, `,"table":`...)
	b = appendString(b, ev.Table)
	b = append(b, `,"recordId":`...)
	b = appendString(b, ev.RecordID)
	b = append(b, `,"stage":`...)
	b = strconv.AppendInt(b, int64(ev.Stage), 10)
	b = append(b, `,"mode":`...)
	b = appendString(b, ev.Mode)
	b = append(b, `,"depth":`...)
	b = strconv.AppendInt(b, int64(ev.Depth), 10)
	b = append(b, `,"organizationId":`...)
	b = appendString(b, ev.OrganizationID)
	b = append(b, `,"organizationName":`...)
	b = appendString(b, ev.OrganizationName)
	b = append(b, `,"correlationId":`...)
	b = appendString(b, ev.CorrelationID)
	b = append(b, `,"operationId":`...)
	b = appendString(b, ev.OperationID)
	b = append(b, `,"requestId":`...)
	if ev.RequestID == nil {
		b = append(b, "null"...)
	} else {
		b = appendString(b, *ev.RequestID)
	}
	b = append(b, `,"userId":`...)
	b = appendString(b, ev.UserID)
	b = append(b, `,"initiatingUserId":`...)
	b = appendString(b, ev.InitiatingUserID)
	b = append(b, `,"businessUnitId":`...)
	b = appendString(b, ev.BusinessUnitID)
	b = append(b, `,"operationCreatedOn":`...)
	b = appendString(b, ev.OperationCreatedOn)
	b = append(b, `,"changedColumns":`...)
	if ev.ChangedColumns == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i, c := range ev.ChangedColumns {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, c)
		}
		b = append(b, ']')
	}
	b = append(b, `,"sizeExceeded":`...)
	b = strconv.AppendBool(b, ev.SizeExceeded)
	if ev.Reread {
		b = append(b, `,"reread":true`...)
	}
	if ev.Relationship != "" {
		b = append(b, `,"relationship":`...)
		b = appendString(b, ev.Relationship)
	}
	if len(ev.RelatedRecords) > 0 {
		b = append(b, `,"relatedRecords":[`...)
		for i, r := range ev.RelatedRecords {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"table":`...)
			b = appendString(b, r.Table)
			b = append(b, `,"id":`...)
			b = appendString(b, r.ID)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	b = append(b, `,"row":`...)
	if b, err = appendRow(b, ev.Row); err != nil {
		return nil, err
	}
	b = append(b, `,"preImage":`...)
	if b, err = appendRow(b, ev.PreImage); err != nil {
		return nil, err
	}
	b = append(b, `,"postImage":`...)
	if b, err = appendRow(b, ev.PostImage); err != nil {
		return nil, err
	}
	if ev.Source != "" {
		b = append(b, `,"source":`...)
		b = appendString(b, ev.Source)
	}
	if ev.Version != "" {
		b = append(b, `,"version":`...)
		b = appendString(b, ev.Version)
	}
	return append(b, '}'), nil
}

// appendRow writes r's columns in map order. Dataverse itself sends them in no fixed order, and
// a JSON object's member order carries no meaning; sorting them would cost about a third of
// the encoding.
func appendRow(b []byte, r dataverse.Row) ([]byte, error) {
	if r == nil {
		return append(b, "null"...), nil
	}
	b = append(b, '{')
	first := true
	var err error
	for k, v := range r {
		if !first {
			b = append(b, ',')
		}
		first = false
		b = appendString(b, k)
		b = append(b, ':')
		if b, err = appendValue(b, v); err != nil {
			return nil, fmt.Errorf("column %s: %w", k, err)
		}
	}
	return append(b, '}'), nil
}

func appendValue(b []byte, v any) ([]byte, error) {
	switch v := v.(type) {
	case nil:
		return append(b, "null"...), nil
	case string:
		return appendString(b, v), nil
	case bool:
		return strconv.AppendBool(b, v), nil
	case json.Number:
		if v == "" {
			return append(b, '0'), nil
		}
		if !validNumber(string(v)) {
			return nil, fmt.Errorf("invalid number literal %q", string(v))
		}
		return append(b, v...), nil
	case map[string]any:
		return appendRow(b, v)
	case []any:
		b = append(b, '[')
		var err error
		for i, item := range v {
			if i > 0 {
				b = append(b, ',')
			}
			if b, err = appendValue(b, item); err != nil {
				return nil, err
			}
		}
		return append(b, ']'), nil
	}
	// Not a type the decoder produces; let encoding/json have it.
	out, err := marshalStd(v)
	if err != nil {
		return nil, err
	}
	return append(b, out...), nil
}

const hexDigits = "0123456789abcdef"

// plainASCII marks the ASCII bytes a JSON string holds as they are.
var plainASCII = func() (t [utf8.RuneSelf]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// appendString writes s as a JSON string the way encoding/json does with HTML escaping off:
// invalid UTF-8 becomes U+FFFD, and U+2028/U+2029 are escaped for JavaScript's sake. Most
// strings (every key the decoder builds, ids, names) need no escape: one scan, one copy.
func appendString(b []byte, s string) []byte {
	i := plainRun(s)
	b = append(b, '"')
	if i == len(s) {
		b = append(b, s...)
		return append(b, '"')
	}
	return appendEscaped(b, s, i)
}

// appendEscaped writes the rest of s after '"', s[:i] being plain.
func appendEscaped(b []byte, s string, i int) []byte {
	start := 0
	for i < len(s) {
		c := s[i]
		if c < utf8.RuneSelf { // one plainRun stopped at: escape it
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
		} else {
			r, size := utf8.DecodeRuneInString(s[i:])
			switch {
			case r == utf8.RuneError && size == 1:
				b = append(b, s[start:i]...)
				b = append(b, `\ufffd`...)
				start = i + size
			case r == '\u2028' || r == '\u2029':
				b = append(b, s[start:i]...)
				b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
				start = i + size
			}
			i += size
		}
		i += plainRun(s[i:])
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// plainRun is how many leading bytes of s a JSON string holds as they are. It tests 32 bytes
// at a time (four words, one branch), then sixteen, for a control character, '"', '\\' or a
// non-ASCII byte, with the word tricks of "Bit Twiddling Hacks" (haszero, hasless), and goes
// straight to the first byte that needs a look; the last (or only) part word of a string of
// eight bytes or more is tested as the word ending the string, overlapping bytes already
// passed. Most text needs no escaping at all.
func plainRun(s string) int {
	// The rest of s is walked as t, so that the words are read at constant offsets into a string
	// known to be long enough: no bounds check per word.
	t := s
	for len(t) >= 32 {
		m0, m1 := stops8(load8(t, 0)), stops8(load8(t, 8))
		m2, m3 := stops8(load8(t, 16)), stops8(load8(t, 24))
		if m0|m1|m2|m3 != 0 {
			break // the sixteen-byte steps below find it
		}
		t = t[32:]
	}
	for len(t) >= 16 {
		m0, m1 := stops8(load8(t, 0)), stops8(load8(t, 8))
		if m0|m1 != 0 {
			if m0 != 0 {
				return len(s) - len(t) + bits.TrailingZeros64(m0)>>3
			}
			return len(s) - len(t) + 8 + bits.TrailingZeros64(m1)>>3
		}
		t = t[16:]
	}
	i := len(s) - len(t)
	if i+8 <= len(s) {
		if m := stops8(load8(s, i)); m != 0 {
			return i + bits.TrailingZeros64(m)>>3
		}
		i += 8
	}
	if i == len(s) {
		return i
	}
	if len(s) >= 8 {
		// The bytes below i are plain, so none of them is flagged (a borrow only flags a byte
		// above a match): the lowest flag is the first byte at or after i that needs a look.
		if m := stops8(load8(s, len(s)-8)); m != 0 {
			return len(s) - 8 + bits.TrailingZeros64(m)>>3
		}
		return len(s)
	}
	for ; i < len(s) && s[i] < utf8.RuneSelf && plainASCII[s[i]]; i++ {
	}
	return i
}

// load8 reads s[i:i+8] as a little-endian word (the compiler makes it one load).
func load8(s string, i int) uint64 {
	s = s[i : i+8]
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}

// stops8 sets the high bit of each byte of x that is a control character, '"', '\\' or not
// ASCII. A byte above a true match may be flagged too (a borrow), never one below: the lowest
// flag is exact. Per byte, c-0x20 has its high bit set for c < 0x20 (and some c >= 0x80),
// (c^'"')-1 for c == '"' (and c >= 0x80), (c^'\\')-1 for c == '\\' (and c >= 0x80), and c
// itself for c >= 0x80; no other byte sets it in any of them.
func stops8(x uint64) uint64 {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	q, b := x^(ones*'"'), x^(ones*'\\')
	return ((x - ones*0x20) | (q - ones) | (b - ones) | x) & highs
}

// validNumber reports whether s is a JSON number literal.
func validNumber(s string) bool {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && s[i] >= '1' && s[i] <= '9':
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
	default:
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		if i >= len(s) || s[i] < '0' || s[i] > '9' {
			return false
		}
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if i >= len(s) || s[i] < '0' || s[i] > '9' {
			return false
		}
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
	}
	return i == len(s)
}

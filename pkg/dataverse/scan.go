package dataverse

import (
	"math/bits"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// MaxDepth bounds how deeply objects and arrays may nest. Real contexts reach about 15 levels
// (a party list inside a pre-image inside a parent context); anything deeper is refused with a
// *SyntaxError rather than risking the stack.
const MaxDepth = 64

// decoder is a single-pass JSON scanner over the body. It works on the body seen as a string, so
// that every string value without escapes is a substring of it: no copy, no allocation.
//
// Scanning functions return only syntax errors. A shape problem (a field of the wrong type) is
// recorded in shape and the value skipped, so that a body that is also malformed further on
// is reported as malformed: that is the more useful answer (400 over 422).
type decoder struct {
	s     string
	base  int // bytes removed before s (a BOM), added to error offsets
	i     int
	depth int
	shape *ShapeError
	// sniffing counts the untyped objects, one inside another, being typed by their keys.
	sniffing int
	// How far the scratch stacks went, for done.
	hwAttrs, hwFmts, hwVals int
	// The last date formatted, and its milliseconds (see date).
	lastDate   string
	lastDateMS int64

	// Scratch stacks, reused across nested entities: a nested entity pushes above its parent's
	// entries and pops them before the parent continues, so each entity's entries stay contiguous.
	attrs []attr
	fmts  []fmtPair
	vals  []val
	buf   []byte
	// boxes holds the interfaces of the event being decoded: let go of, never reused, in done.
	boxes boxes
}

// maxScratch is how many entries the scratch stacks may keep between decodes.
const maxScratch = 4096

// start readies the decoder for a body; done lets go of it.
func (d *decoder) start(s string, base int) {
	d.s, d.base, d.i, d.depth, d.shape, d.sniffing = s, base, 0, 0, nil, 0
	d.lastDate, d.lastDateMS = "", 0
}

func (d *decoder) done() {
	// The stacks are popped without clearing while decoding (clearing pointers costs write
	// barriers); clear, once, as far as they went, so a pooled decoder holds on to no body.
	// After an error the stacks were not popped: clear what is still on them too.
	clear(d.attrs[:max(d.hwAttrs, len(d.attrs))])
	clear(d.fmts[:max(d.hwFmts, len(d.fmts))])
	clear(d.vals[:max(d.hwVals, len(d.vals))])
	d.attrs, d.fmts, d.vals, d.buf = d.attrs[:0], d.fmts[:0], d.vals[:0], d.buf[:0]
	d.hwAttrs, d.hwFmts, d.hwVals = 0, 0, 0
	d.boxes.reset()
	// A huge body leaves huge scratch behind; let it go rather than keep it in the pool.
	if cap(d.attrs)+cap(d.fmts)+cap(d.vals) > maxScratch || cap(d.buf) > maxScratch*64 {
		d.attrs, d.fmts, d.vals, d.buf = nil, nil, nil, nil
	}
	d.start("", 0)
}

// popEntity pops the attrs and fmts stacks back to abase and fbase, noting how far they went.
func (d *decoder) popEntity(abase, fbase int) {
	d.hwAttrs = max(d.hwAttrs, len(d.attrs))
	d.hwFmts = max(d.hwFmts, len(d.fmts))
	d.attrs, d.fmts = d.attrs[:abase], d.fmts[:fbase]
}

func (d *decoder) popVals(base int) {
	d.hwVals = max(d.hwVals, len(d.vals))
	d.vals = d.vals[:base]
}

func (d *decoder) errAt(i int, msg string) *SyntaxError {
	return &SyntaxError{Offset: int64(d.base + i), Msg: msg}
}

func (d *decoder) eof() error { return d.errAt(len(d.s), "unexpected end of input") }

func (d *decoder) unexpected(context string) error {
	return d.errAt(d.i, "invalid character "+quoteByte(d.s[d.i])+" "+context)
}

// shapeErr records the first shape problem; decoding goes on so later syntax errors win.
func (d *decoder) shapeErr(field, msg string) {
	if d.shape == nil {
		d.shape = &ShapeError{Field: field, Msg: msg}
	}
}

func quoteByte(c byte) string {
	if c >= 0x20 && c < 0x7f {
		return strconv.QuoteRune(rune(c))
	}
	return `'\x` + strconv.FormatUint(uint64(c)>>4, 16) + strconv.FormatUint(uint64(c)&15, 16) + `'`
}

func (d *decoder) ws() {
	// One table load per byte rather than a switch of four compares: ws runs before every
	// token, and the serializer writes no whitespace, so the first test nearly always ends it.
	for d.i < len(d.s) && space[d.s[d.i]] {
		d.i++
	}
}

// space marks JSON's whitespace bytes.
var space = [256]bool{' ': true, '\t': true, '\n': true, '\r': true}

// peek skips whitespace and returns the next byte without consuming it.
func (d *decoder) peek() (byte, error) {
	d.ws()
	if d.i >= len(d.s) {
		return 0, d.eof()
	}
	return d.s[d.i], nil
}

// describe names the JSON type starting with c, for shape errors.
func describe(c byte) string {
	switch c {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}

// open consumes the '{' or '[' at d.i. It is kept small enough to be inlined (the error is built
// out of line): every object and array of the body passes through it.
func (d *decoder) open() error {
	d.i++
	d.depth++
	if d.depth > MaxDepth {
		return d.tooDeep()
	}
	return nil
}

func (d *decoder) tooDeep() error {
	return d.errAt(d.i-1, "nesting deeper than "+strconv.Itoa(MaxDepth)+" levels")
}

// next advances to the next member of an object (close '}') or element of an array (close ']').
// It returns false, having consumed the closing byte, when there are no more.
func (d *decoder) next(first bool, close byte) (bool, error) {
	// The serializer writes no whitespace: a ',' right before the next member, or the closing
	// byte, is settled here.
	if d.i+1 < len(d.s) {
		switch d.s[d.i] {
		case ',':
			if !first && d.s[d.i+1] > ' ' {
				d.i++
				return true, nil
			}
		case close:
			d.i++
			d.depth--
			return false, nil
		}
	}
	c, err := d.peek()
	if err != nil {
		return false, err
	}
	if c == close {
		d.i++
		d.depth--
		return false, nil
	}
	if !first {
		if c != ',' {
			if close == '}' {
				return false, d.unexpected("after object member (expecting ',' or '}')")
			}
			return false, d.unexpected("after array element (expecting ',' or ']')")
		}
		d.i++
		if _, err := d.peek(); err != nil {
			return false, err
		}
	}
	return true, nil
}

// key reads an object key and the colon after it.
func (d *decoder) key() (string, error) {
	if d.s[d.i] != '"' {
		return "", d.unexpected("looking for the beginning of an object key")
	}
	k, err := d.str()
	if err != nil {
		return "", err
	}
	if d.i < len(d.s) && d.s[d.i] == ':' { // no whitespace before the colon: the usual case
		d.i++
		return k, nil
	}
	c, err := d.peek()
	if err != nil {
		return "", err
	}
	if c != ':' {
		return "", d.unexpected("after object key (expecting ':')")
	}
	d.i++
	return k, nil
}

// str reads the string starting at d.i (a '"'). Without escapes it is a substring of the body.
func (d *decoder) str() (string, error) {
	// The usual string, ASCII without escapes, ends at the first byte that needs a look: its
	// closing quote. Anything else (a non-ASCII byte, an escape, the end of the body) goes on
	// in strFrom.
	s := d.s
	start, i := d.i+1, d.i+1
	for i+8 <= len(s) {
		if m := stopsOrHigh8(load8(s, i)); m != 0 {
			i += bits.TrailingZeros64(m) >> 3
			if s[i] == '"' {
				d.i = i + 1
				return s[start:i], nil
			}
			break
		}
		i += 8
	}
	return d.strFrom(start, i)
}

// strFrom is str for the string that opened at start-1, whose bytes from start to i are plain
// ASCII.
func (d *decoder) strFrom(start, i int) (string, error) {
	s := d.s
	high := false
	for ; ; i++ {
		// Eight bytes at a time while none of them needs a look; then straight to the one that does.
		for i+8 <= len(s) {
			x := load8(s, i)
			var m uint64
			if high {
				m = stops8(x)
			} else {
				m = stopsOrHigh8(x)
			}
			if m != 0 {
				i += bits.TrailingZeros64(m) >> 3
				break
			}
			i += 8
		}
		if i >= len(s) {
			return "", d.eof()
		}
		switch c := s[i]; {
		case c == '"':
			d.i = i + 1
			out := s[start:i]
			if high && !utf8.ValidString(out) {
				// Invalid UTF-8 is passed through as U+FFFD, as encoding/json does.
				out = strings.ToValidUTF8(out, "\uFFFD")
			}
			return out, nil
		case c == '\\':
			return d.strEscaped(start, i)
		case c < 0x20:
			return "", d.errAt(i, "control character "+quoteByte(c)+" in string")
		case c >= 0x80:
			high = true
		}
	}
}

// SWAR ("SIMD within a register") helpers for scanning strings eight bytes at a time.
const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

// load8 reads s[i:i+8] as a little-endian word (the compiler makes it one load).
func load8(s string, i int) uint64 {
	s = s[i : i+8]
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}

// stops8 sets the high bit of each byte of x that is '"', '\\' or a control character. A byte
// above a true match may be flagged too (a borrow), never one below: the lowest flag is exact.
func stops8(x uint64) uint64 {
	q := x ^ (lsb * '"')
	b := x ^ (lsb * '\\')
	return ((q-lsb)&^q | (b-lsb)&^b | (x-lsb*0x20)&^x) & msb
}

// stopsOrHigh8 is stops8 that also flags each byte of 0x80 or more, in fewer operations: a
// byte's own high bit needs no masking out of the three tests. Per byte, c-0x20 has its high bit
// set for c < 0x20, (c^'"')-1 for c == '"', (c^'\\')-1 for c == '\\', each also for some bytes of
// 0x80 or more, and c itself for those; a borrow only flags a byte above a true match, so the
// lowest flag is exact.
func stopsOrHigh8(x uint64) uint64 {
	q, b := x^(lsb*'"'), x^(lsb*'\\')
	return ((x - lsb*0x20) | (q - lsb) | (b - lsb) | x) & msb
}

// plain marks the bytes a string scan can pass over without a second look.
var plain = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

func (d *decoder) strEscaped(start, i int) (string, error) {
	b := append(d.buf[:0], d.s[start:i]...)
	for i < len(d.s) {
		c := d.s[i]
		switch {
		case c == '"':
			d.i = i + 1
			d.buf = b
			if !utf8.Valid(b) {
				return strings.ToValidUTF8(string(b), "\uFFFD"), nil
			}
			return string(b), nil
		case c < 0x20:
			return "", d.errAt(i, "control character "+quoteByte(c)+" in string")
		case c != '\\':
			b = append(b, c)
			i++
			continue
		}
		if i+1 >= len(d.s) {
			return "", d.eof()
		}
		switch e := d.s[i+1]; e {
		case '"', '\\', '/':
			b = append(b, e)
		case 'b':
			b = append(b, '\b')
		case 'f':
			b = append(b, '\f')
		case 'n':
			b = append(b, '\n')
		case 'r':
			b = append(b, '\r')
		case 't':
			b = append(b, '\t')
		case 'u':
			r, ok := hex4(d.s, i+2)
			if !ok {
				return "", d.errAt(i, `invalid \u escape in string`)
			}
			i += 6
			if utf16.IsSurrogate(r) {
				r2, ok := rune(0), false
				if i+1 < len(d.s) && d.s[i] == '\\' && d.s[i+1] == 'u' {
					r2, ok = hex4(d.s, i+2)
				}
				if dec := utf16.DecodeRune(r, r2); ok && dec != utf8.RuneError {
					r = dec
					i += 6
				} else {
					r = utf8.RuneError
				}
			}
			b = utf8.AppendRune(b, r)
			continue
		default:
			return "", d.errAt(i, "invalid escape "+quoteByte(e)+" in string")
		}
		i += 2
	}
	return "", d.eof()
}

func hex4(s string, i int) (rune, bool) {
	if i+4 > len(s) {
		return 0, false
	}
	var r rune
	for _, c := range []byte(s[i : i+4]) {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// number reads a JSON number and returns its text, which is kept as json.Number so that no
// precision is lost.
func (d *decoder) number() (string, error) {
	s, start, i := d.s, d.i, d.i
	digits := func() bool {
		j := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		return i > j
	}
	if s[i] == '-' {
		i++
	}
	if i >= len(s) {
		return "", d.eof()
	}
	switch {
	case s[i] == '0':
		i++
	case s[i] >= '1' && s[i] <= '9':
		digits()
	default:
		d.i = i
		return "", d.unexpected("in number")
	}
	if i < len(s) && s[i] == '.' {
		i++
		if !digits() {
			if i >= len(s) {
				return "", d.eof()
			}
			d.i = i
			return "", d.unexpected("after decimal point in number")
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if !digits() {
			if i >= len(s) {
				return "", d.eof()
			}
			d.i = i
			return "", d.unexpected("in exponent of number")
		}
	}
	d.i = i
	return s[start:i], nil
}

// literal consumes true, false or null.
func (d *decoder) literal() (kind, error) {
	rest := d.s[d.i:]
	switch {
	case strings.HasPrefix(rest, "true"):
		d.i += 4
		return kTrue, nil
	case strings.HasPrefix(rest, "false"):
		d.i += 5
		return kFalse, nil
	case strings.HasPrefix(rest, "null"):
		d.i += 4
		return kNull, nil
	}
	// Find the first byte that breaks the literal, for a precise offset.
	for _, lit := range []string{"true", "false", "null"} {
		if lit[0] != rest[0] {
			continue
		}
		for j := 1; j < len(lit); j++ {
			if j >= len(rest) {
				return 0, d.eof()
			}
			if rest[j] != lit[j] {
				d.i += j
				return 0, d.unexpected("in literal " + lit)
			}
		}
	}
	return 0, d.unexpected("looking for the beginning of a value")
}

// skip consumes one value of any type, checking that it is well-formed.
func (d *decoder) skip() error {
	c, err := d.peek()
	if err != nil {
		return err
	}
	switch {
	case c == '"':
		return d.skipString()
	case c == '{':
		if err := d.open(); err != nil {
			return err
		}
		for first := true; ; first = false {
			more, err := d.next(first, '}')
			if err != nil || !more {
				return err
			}
			if d.s[d.i] != '"' {
				return d.unexpected("looking for the beginning of an object key")
			}
			if err := d.skipString(); err != nil {
				return err
			}
			if c, err := d.peek(); err != nil {
				return err
			} else if c != ':' {
				return d.unexpected("after object key (expecting ':')")
			}
			d.i++
			if err := d.skip(); err != nil {
				return err
			}
		}
	case c == '[':
		if err := d.open(); err != nil {
			return err
		}
		for first := true; ; first = false {
			more, err := d.next(first, ']')
			if err != nil || !more {
				return err
			}
			if err := d.skip(); err != nil {
				return err
			}
		}
	case c == '-' || (c >= '0' && c <= '9'):
		_, err := d.number()
		return err
	default:
		_, err := d.literal()
		return err
	}
}

// skipString consumes a string, checking its escapes, without building it.
func (d *decoder) skipString() error {
	s := d.s
	for i := d.i + 1; ; i++ {
		for i+8 <= len(s) {
			if m := stops8(load8(s, i)); m != 0 {
				i += bits.TrailingZeros64(m) >> 3
				break
			}
			i += 8
		}
		if i >= len(s) {
			return d.eof()
		}
		c := s[i]
		if plain[c] || c >= 0x80 {
			continue
		}
		switch {
		case c == '"':
			d.i = i + 1
			return nil
		case c < 0x20:
			return d.errAt(i, "control character "+quoteByte(c)+" in string")
		case c == '\\':
			if i+1 >= len(d.s) {
				return d.eof()
			}
			switch e := d.s[i+1]; e {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i++
			case 'u':
				if _, ok := hex4(d.s, i+2); !ok {
					return d.errAt(i, `invalid \u escape in string`)
				}
				i += 5
			default:
				return d.errAt(i, "invalid escape "+quoteByte(e)+" in string")
			}
		}
	}
}

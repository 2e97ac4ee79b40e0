package dataverse

import (
	"math"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"
)

// binReader reads .NET Binary XML, the record format of [MC-NBFX] ".NET Binary Format: XML Data
// Structure" (https://learn.microsoft.com/openspecs/windows_protocols/mc-nbfx), which Dataverse
// writes to a Service Bus queue with message format 1 (application/msbin1).
//
// Dataverse writes it with XmlDictionaryWriter.CreateBinaryWriter(stream, null, null, false): no
// dictionary and no session, so the records that name a dictionary string ([MC-NBFS] static
// strings, or session strings) never occur, and the reader the SDK pairs with it refuses them too.
// Here they are refused with an error naming the record. Every length is checked against what is
// left of the body, nesting is bounded by maxXMLDepth, and no input makes the reader panic.
type binReader struct {
	s     string // the body, as a string so that names and UTF-8 text are slices of it
	i     int
	depth int
	ns    nsScope
	// The prefix the root binds to the XML Schema instance namespace, and whether no element
	// has rebound it since (see isXSI).
	xsiPrefix         string
	xsiFixed, xsiSeen bool
	// endNext: the last text record was a ...WithEndElement one, so an element end comes next.
	endNext bool
	endOff  int
	// A pending Array record: its element, repeated count more times, each holding one value.
	arr binArray
}

type binArray struct {
	count int
	stage uint8 // 0: give the start next, 1: the value, 2: the end
	start xnode
	rt    byte // the value record type (a ...WithEndElement one)
	off   int
}

// maxXMLDepth bounds element nesting in both XML forms. The JSON the transcoder writes nests one
// level more than the XML (a key/value item is an element, its collection an array), so this
// keeps that JSON within the decoder's MaxDepth.
const maxXMLDepth = MaxDepth - 4

const formatBinary = ".NET binary XML"

func newBinReader(b []byte) *binReader {
	r := new(binReader)
	r.reset(b)
	return r
}

// reset readies the reader for body b, keeping its namespace scope's storage.
func (r *binReader) reset(b []byte) {
	clear(r.ns.decls)
	*r = binReader{s: unsafe.String(unsafe.SliceData(b), len(b)), ns: nsScope{decls: r.ns.decls[:0]}}
}

func (r *binReader) errAt(off int, msg string) error {
	return &SyntaxError{Format: formatBinary, Offset: int64(off), Msg: msg}
}

func (r *binReader) eof() error { return r.errAt(len(r.s), "unexpected end of input") }

func (r *binReader) next(n *xnode) error {
	if r.arr.count > 0 {
		return r.nextArray(n)
	}
	if r.endNext {
		r.endNext = false
		return r.end(n, r.endOff)
	}
	for {
		if r.i >= len(r.s) {
			if r.depth > 0 {
				return r.eof()
			}
			*n = xnode{kind: xEOF, off: r.i}
			return nil
		}
		off := r.i
		rt := r.s[r.i]
		r.i++
		switch {
		case rt == 0x40 || rt == 0x41 || (rt >= 0x5E && rt <= 0x77):
			return r.element(n, off, rt)
		case rt == 0x01: // EndElement
			return r.end(n, off)
		case rt == 0x02: // Comment: a String, ignored
			if _, err := r.str(); err != nil {
				return err
			}
			continue
		case rt == 0x03: // Array
			return r.array(n, off)
		case rt >= 0x42 && rt <= 0x5D:
			return r.errAt(off, "dictionary element record "+hexByte(rt)+": the body uses a dictionary, which Dataverse never writes")
		case rt >= 0x80 && rt <= 0xBD:
			if r.depth == 0 {
				return r.errAt(off, "text record "+hexByte(rt)+" outside the root element")
			}
			if err := r.text(&n.text, rt, off); err != nil {
				return err
			}
			n.kind, n.off = xText, off
			if rt&1 == 1 {
				r.endNext, r.endOff = true, off
			}
			return nil
		case rt >= 0x04 && rt <= 0x3F:
			return r.errAt(off, "attribute record "+hexByte(rt)+" not after an element record")
		default:
			return r.errAt(off, "unknown record type "+hexByte(rt))
		}
	}
}

func (r *binReader) end(n *xnode, off int) error {
	if r.depth == 0 {
		return r.errAt(off, "end of element with no element open")
	}
	r.depth--
	r.ns.close()
	n.kind, n.off = xEnd, off
	return nil
}

// element reads an element record and the attribute records after it.
func (r *binReader) element(n *xnode, off int, rt byte) error {
	if r.depth >= maxXMLDepth {
		return r.errAt(off, "elements nested deeper than "+strconv.Itoa(maxXMLDepth)+" levels")
	}
	n.kind, n.off, n.isNil, n.closed, n.hasText = xStart, off, false, false, false
	if n.typ != "" { // stored only when set: a pointer store costs a write barrier during GC
		n.typ, n.typNS = "", ""
	}
	if rt == 0x41 { // Element: Prefix, Name
		if _, err := r.str(); err != nil {
			return err
		}
	}
	name, err := r.str()
	if err != nil {
		return err
	}
	n.name = name
	r.depth++
	r.ns.open()
	// Most elements have no attribute: look before calling.
	if r.i < len(r.s) && r.s[r.i] >= 0x04 && r.s[r.i] <= 0x3F {
		if err := r.attributes(n); err != nil {
			return err
		}
	}
	// A leaf: one ...WithEndElement text record, or an EndElement, right after.
	if r.i < len(r.s) {
		switch c := r.s[r.i]; {
		case c == 0x01:
			r.i++
			n.closed = true
		case c == 0x99 && r.i+1 < len(r.s) && int(r.s[r.i+1]) <= len(r.s)-r.i-2:
			// Chars8TextWithEndElement, the usual leaf: read in place.
			l := int(r.s[r.i+1])
			n.text.k, n.text.s = tStr, r.s[r.i+2:r.i+2+l]
			r.i += 2 + l
			n.closed, n.hasText = true, true
		case c == 0x81 || c == 0x83 || c == 0x85 || c == 0x87: // Zero, One, False, True...WithEndElement
			n.text.k, n.text.i = tInt, int64(c>>1&1)
			if c >= 0x85 {
				n.text.k = tBool
			}
			r.i++
			n.closed, n.hasText = true, true
		case c == 0x89 && r.i+1 < len(r.s): // Int8TextWithEndElement
			n.text.k, n.text.i = tInt, int64(int8(r.s[r.i+1]))
			r.i += 2
			n.closed, n.hasText = true, true
		case c >= 0x80 && c <= 0xBD && c&1 == 1:
			r.i++
			if err := r.text(&n.text, c, r.i-1); err != nil {
				return err
			}
			n.closed, n.hasText = true, true
		}
		if n.closed {
			r.depth--
			r.ns.close()
		}
	}
	return nil
}

// attributes reads the attribute records of the element just read, keeping xmlns declarations
// and xsi:type / xsi:nil. Prefixes are resolved once all are read: a declaration may follow
// the attribute that uses it.
func (r *binReader) attributes(n *xnode) error {
	typePrefix, typeQName, haveType := "", "", false
	var nilPrefix string
	haveNil := false
	for r.i < len(r.s) {
		off := r.i
		rt := r.s[r.i]
		if rt < 0x04 || rt > 0x3F {
			break
		}
		r.i++
		prefix := ""
		switch {
		case rt == 0x04: // ShortAttribute: Name, Value
		case rt == 0x05: // Attribute: Prefix, Name, Value
			p, err := r.str()
			if err != nil {
				return err
			}
			prefix = p
		case rt == 0x08: // ShortXmlnsAttribute: Value
			uri, err := r.str()
			if err != nil {
				return err
			}
			r.declare("", uri)
			continue
		case rt == 0x09: // XmlnsAttribute: Prefix, Value
			p, err := r.str()
			if err != nil {
				return err
			}
			uri, err := r.str()
			if err != nil {
				return err
			}
			r.declare(p, uri)
			continue
		case rt >= 0x26 && rt <= 0x3F: // PrefixAttributeA..Z: Name, Value
			prefix = prefixLetters[rt-0x26 : rt-0x26+1]
		default:
			return r.errAt(off, "dictionary attribute record "+hexByte(rt)+": the body uses a dictionary, which Dataverse never writes")
		}
		name, err := r.str()
		if err != nil {
			return err
		}
		if r.i >= len(r.s) {
			return r.eof()
		}
		voff := r.i
		vt := r.s[r.i]
		r.i++
		if vt < 0x80 || vt > 0xBD || vt&1 == 1 {
			return r.errAt(voff, "attribute value record "+hexByte(vt)+" is not a text record")
		}
		var value string
		if vt == 0x98 { // Chars8Text, the usual form of an attribute value
			s, err := r.fixed(1)
			if err != nil {
				return err
			}
			if value, err = r.bytes(int(s[0])); err != nil {
				return err
			}
		} else {
			var v xtext
			if err := r.text(&v, vt, voff); err != nil {
				return err
			}
			value = textString(&v)
		}
		switch name {
		case "type":
			typePrefix, typeQName, haveType = prefix, value, true
		case "nil":
			nilPrefix, haveNil = prefix, value == "true" || value == "1"
		}
	}
	if haveType && r.isXSI(typePrefix) {
		n.typ, n.typNS = r.ns.resolveQName(typeQName)
	}
	if haveNil && r.isXSI(nilPrefix) {
		n.isNil = true
	}
	return nil
}

// isXSI reports whether prefix names the XML Schema instance namespace here. The serializer
// declares it once, on the root, and never rebinds it; while no element rebinds that prefix the
// answer needs no lookup.
func (r *binReader) isXSI(prefix string) bool {
	if r.xsiFixed && prefix == r.xsiPrefix {
		return true
	}
	uri, _ := r.ns.lookup(prefix)
	return uri == nsXSI
}

// declare binds a prefix for the element being read, keeping isXSI's shortcut valid.
func (r *binReader) declare(prefix, uri string) {
	switch {
	case r.depth == 1 && uri == nsXSI && !r.xsiSeen:
		r.xsiPrefix, r.xsiFixed, r.xsiSeen = prefix, true, true
	case prefix == r.xsiPrefix:
		r.xsiFixed = false
	}
	r.ns.declare(prefix, uri)
}

const prefixLetters = "abcdefghijklmnopqrstuvwxyz"

// array reads an Array record: one element record (with attributes), an EndElement, the record
// type of the values, their count, then the values. It stands for count copies of the element,
// each holding one value ([MC-NBFX] 2.3.3).
func (r *binReader) array(n *xnode, off int) error {
	if r.i >= len(r.s) {
		return r.eof()
	}
	eoff := r.i
	rt := r.s[r.i]
	r.i++
	if rt != 0x40 && rt != 0x41 && (rt < 0x5E || rt > 0x77) {
		return r.errAt(eoff, "array record without an element record")
	}
	var start xnode
	if err := r.element(&start, eoff, rt); err != nil {
		return err
	}
	if !start.closed || start.hasText {
		return r.errAt(r.i, "array element record not followed by an end element")
	}
	// element() saw the EndElement and closed the element again.
	r.depth++
	r.ns.open()
	start.closed = false
	if r.i >= len(r.s) {
		return r.eof()
	}
	voff := r.i
	vt := r.s[r.i]
	r.i++
	size := arrayValueSize(vt)
	if size == 0 {
		return r.errAt(voff, "array value record type "+hexByte(vt)+" is not allowed in an array")
	}
	count, err := r.int31()
	if err != nil {
		return err
	}
	if count == 0 {
		return r.errAt(voff+1, "array of no elements")
	}
	if count > (len(r.s)-r.i)/size {
		return r.eof()
	}
	// The element was opened by element(); each copy opens and closes it again.
	r.depth--
	r.ns.close()
	r.arr = binArray{count: count, start: start, rt: vt, off: off}
	return r.nextArray(n)
}

func arrayValueSize(rt byte) int {
	switch rt {
	case 0xB5: // BoolTextWithEndElement
		return 1
	case 0x8B:
		return 2
	case 0x8D, 0x91:
		return 4
	case 0x8F, 0x93, 0x97, 0xAF:
		return 8
	case 0x95, 0xB1:
		return 16
	}
	return 0
}

func (r *binReader) nextArray(n *xnode) error {
	a := &r.arr
	switch a.stage {
	case 0:
		if r.depth >= maxXMLDepth {
			return r.errAt(a.off, "elements nested deeper than "+strconv.Itoa(maxXMLDepth)+" levels")
		}
		*n = a.start
		r.depth++
		r.ns.open()
		a.stage = 1
	case 1:
		off := r.i
		if err := r.text(&n.text, a.rt, off); err != nil {
			return err
		}
		n.kind, n.off = xText, off
		a.stage = 2
	default:
		a.stage = 0
		a.count--
		return r.end(n, r.i)
	}
	return nil
}

// int31 reads a MultiByteInt31 ([MC-NBFX] 2.1.2): seven bits a byte, low bits first, the high
// bit set on every byte but the last; at most five bytes and at most 2^31-1.
func (r *binReader) int31() (int, error) {
	off := r.i
	v := 0
	for k := 0; k < 5; k++ {
		if r.i >= len(r.s) {
			return 0, r.eof()
		}
		c := r.s[r.i]
		r.i++
		if k == 4 && c > 0x07 {
			return 0, r.errAt(off, "MultiByteInt31 larger than 2^31-1")
		}
		v |= int(c&0x7F) << (7 * k)
		if c&0x80 == 0 {
			return v, nil
		}
	}
	return 0, r.errAt(off, "MultiByteInt31 longer than five bytes")
}

// str reads a String ([MC-NBFX] 2.1.3): a MultiByteInt31 length and that many UTF-8 bytes.
func (r *binReader) str() (string, error) {
	// Nearly every name and namespace is shorter than 128 bytes: a one-byte length.
	if r.i < len(r.s) && r.s[r.i] < 0x80 {
		n := int(r.s[r.i])
		if n > len(r.s)-r.i-1 {
			r.i++
			return "", r.eof()
		}
		s := r.s[r.i+1 : r.i+1+n]
		r.i += 1 + n
		return s, nil
	}
	n, err := r.int31()
	if err != nil {
		return "", err
	}
	return r.bytes(n)
}

func (r *binReader) bytes(n int) (string, error) {
	if n < 0 || n > len(r.s)-r.i {
		return "", r.eof()
	}
	s := r.s[r.i : r.i+n]
	r.i += n
	return s, nil
}

func (r *binReader) fixed(n int) (string, error) { return r.bytes(n) }

// text reads the body of text record rt (its type byte already read) into v ([MC-NBFX] 2.2.3).
func (r *binReader) text(v *xtext, rt byte, off int) error {
	// Only the fields of v's kind are set: textString and the transcoder read no others.
	switch rt &^ 1 {
	case 0x80: // ZeroText
		v.k, v.i = tInt, 0
	case 0x82: // OneText
		v.k, v.i = tInt, 1
	case 0x84: // FalseText
		v.k, v.i = tBool, 0
	case 0x86: // TrueText
		v.k, v.i = tBool, 1
	case 0x88, 0x8A, 0x8C, 0x8E: // Int8/16/32/64Text, little-endian, signed
		size := 1 << ((rt&^1 - 0x88) / 2)
		b, err := r.fixed(size)
		if err != nil {
			return err
		}
		v.k = tInt
		switch size {
		case 1:
			v.i = int64(int8(b[0]))
		case 2:
			v.i = int64(int16(uint16(b[0]) | uint16(b[1])<<8))
		case 4:
			v.i = int64(int32(le32(b)))
		default:
			v.i = int64(le64(b))
		}
	case 0x90: // FloatText
		b, err := r.fixed(4)
		if err != nil {
			return err
		}
		v.k, v.f = tFloat, float64(math.Float32frombits(le32(b)))
	case 0x92: // DoubleText
		b, err := r.fixed(8)
		if err != nil {
			return err
		}
		v.k, v.f = tDouble, math.Float64frombits(le64(b))
	case 0x94, 0xAC, 0xB0: // DecimalText, UniqueIdText, UuidText: 16 bytes
		b, err := r.fixed(16)
		if err != nil {
			return err
		}
		copy(v.raw[:], b)
		switch rt &^ 1 {
		case 0x94:
			v.k = tDecimal
		case 0xAC:
			v.k = tUniqueID
		default:
			v.k = tUUID
		}
	case 0x96: // DateTimeText
		b, err := r.fixed(8)
		if err != nil {
			return err
		}
		v.k, v.i = tDateTime, int64(le64(b))
	case 0x98, 0x9A, 0x9C: // Chars8/16/32Text: UTF-8
		n, err := r.length(rt)
		if err != nil {
			return err
		}
		s, err := r.bytes(n)
		if err != nil {
			return err
		}
		v.k, v.s = tStr, s
	case 0x9E, 0xA0, 0xA2: // Bytes8/16/32Text
		n, err := r.length(rt - 6)
		if err != nil {
			return err
		}
		s, err := r.bytes(n)
		if err != nil {
			return err
		}
		v.k, v.s = tBytes, s
	case 0xA4, 0xA6: // StartListText, EndListText
		return r.errAt(off, "list text records are not used in a data contract")
	case 0xA8: // EmptyText
		v.k = tStr
	case 0xAA, 0xBC: // DictionaryText, QNameDictionaryText
		return r.errAt(off, "dictionary text record "+hexByte(rt)+": the body uses a dictionary, which Dataverse never writes")
	case 0xAE: // TimeSpanText
		b, err := r.fixed(8)
		if err != nil {
			return err
		}
		v.k, v.i = tTimeSpan, int64(le64(b))
	case 0xB2: // UInt64Text
		b, err := r.fixed(8)
		if err != nil {
			return err
		}
		v.k, v.u = tUint, le64(b)
	case 0xB4: // BoolText
		b, err := r.fixed(1)
		if err != nil {
			return err
		}
		if b[0] > 1 {
			return r.errAt(off+1, "BoolText value "+hexByte(b[0])+" is neither 0 nor 1")
		}
		v.k, v.i = tBool, int64(b[0])
	case 0xB6, 0xB8, 0xBA: // UnicodeChars8/16/32Text: UTF-16LE
		n, err := r.length(rt - 0x1E)
		if err != nil {
			return err
		}
		s, err := r.bytes(n)
		if err != nil {
			return err
		}
		if n%2 != 0 {
			return r.errAt(off, "UnicodeChars text of an odd number of bytes")
		}
		v.k, v.s = tStr, utf16le(s)
	default:
		return r.errAt(off, "unknown record type "+hexByte(rt))
	}
	return nil
}

// length reads the length field of a Chars8/16/32Text-shaped record (rt one of 0x98..0x9D).
func (r *binReader) length(rt byte) (int, error) {
	switch rt &^ 1 {
	case 0x98:
		b, err := r.fixed(1)
		if err != nil {
			return 0, err
		}
		return int(b[0]), nil
	case 0x9A:
		b, err := r.fixed(2)
		if err != nil {
			return 0, err
		}
		return int(b[0]) | int(b[1])<<8, nil
	default:
		off := r.i
		b, err := r.fixed(4)
		if err != nil {
			return 0, err
		}
		n := int32(le32(b))
		if n < 0 {
			return 0, r.errAt(off, "negative length")
		}
		return int(n), nil
	}
}

func le32(s string) uint32 {
	return uint32(s[0]) | uint32(s[1])<<8 | uint32(s[2])<<16 | uint32(s[3])<<24
}

func le64(s string) uint64 { return uint64(le32(s)) | uint64(le32(s[4:]))<<32 }

func utf16le(s string) string {
	u := make([]uint16, len(s)/2)
	for i := range u {
		u[i] = uint16(s[2*i]) | uint16(s[2*i+1])<<8
	}
	b := make([]byte, 0, len(u)*2)
	for _, r := range utf16.Decode(u) {
		b = utf8.AppendRune(b, r)
	}
	return string(b)
}

func hexByte(c byte) string {
	const digits = "0123456789ABCDEF"
	return "0x" + string([]byte{digits[c>>4], digits[c&15]})
}

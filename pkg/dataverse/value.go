package dataverse

import (
	"math/bits"
	"strings"
)

// Web API annotation suffixes.
const (
	lookupSuffix    = "_value@Microsoft.Dynamics.CRM.lookuplogicalname"
	formattedSuffix = "@OData.Community.Display.V1.FormattedValue"
)

// kind is what a decoded value turned out to be.
type kind uint8

const (
	kNull kind = iota
	kTrue
	kFalse
	kString // also a /Date()/ string, already ISO 8601, and a multi-select, already joined
	kNumber
	kWrapped // OptionSetValue or Money (or an untyped {"Value": n}): a number in an object
	kEntity
	kRef
	kCollection
	kRelationship
	kArray
	kObject // any other object, typed or not
)

// val is a decoded value before it is placed in a Row. Keeping it as a plain struct (not an
// interface) means nothing is boxed until its final Web API form is known. It is kept small, with
// few pointers, because the scratch stacks copy it around; and at seven words, so that a (val,
// error) result, which every reader of a value returns, travels in registers (Go's register ABI
// has nine for results; one more field and the error goes through memory). A boolean is its kind.
type val struct {
	k  kind
	s  string // kString, kNumber, kWrapped: the text; kEntity, kRef: Id; kRelationship: SchemaName
	s2 string // kEntity, kRef: LogicalName; kRelationship: PrimaryEntityRole ("" when null)
	// x holds the rest: kEntity: Row, or *pending for the Target; kObject: Row;
	// kCollection: []any of Row; kArray: []val; kRef: the Name, boxed once (a string), or nil
	// when the Name was null or absent.
	x any
}

func (v *val) elems() []val   { e, _ := v.x.([]val); return e }
func (v *val) entries() []any { r, _ := v.x.([]any); return r }

// row returns the row of an Entity or object, building it for a pending Entity.
func (v *val) row(bx *boxes) Row {
	switch x := v.x.(type) {
	case Row:
		return x
	case *pending:
		r := make(Row, rowSize(x.attrs, x.fmts))
		fill(bx, r, x.attrs, x.fmts)
		return r
	}
	return nil
}

// attr is one Attributes entry waiting to be placed; fmtPair one FormattedValues entry.
type attr struct {
	key string
	v   val
}

type fmtPair struct {
	key string
	v   any
}

// hint says what an object without "__type" is, where the serializer left the type out because
// the declared type fixes it: image entities, EntityCollection items, OwningExtension.
type hint uint8

const (
	hintNone hint = iota
	hintEntity
	hintRef
	// hintPending: an Entity here (the Target) is kept as its columns, not built into a row,
	// because its columns go straight into the event's row.
	hintPending
)

// pending is an Entity whose row is not built: its columns as they came, still on the decoder's
// stacks (see entity), so valid only until decode lets the decoder go.
type pending struct {
	attrs []attr
	fmts  []fmtPair
}

// value reads any value. Typed objects come back as their kind; strings that are /Date()/ come
// back already converted.
func (d *decoder) value(h hint) (val, error) {
	c, err := d.peek()
	if err != nil {
		return val{}, err
	}
	switch {
	case c == '"':
		// A /Date()/ string opens with '/' or its escape "\/": only those are tried as dates.
		if j := d.i + 1; j < len(d.s) && (d.s[j] == '\\' || d.s[j] == '/') {
			if iso, ok := d.rawDate(); ok {
				return val{k: kString, s: iso}, nil
			}
		}
		s, err := d.str()
		if err != nil {
			return val{}, err
		}
		// A date written with \u escapes: rare, but the same value.
		if strings.HasPrefix(s, "/Date(") {
			if ms, ok := dateText(s); ok {
				if iso, ok := formatDate(ms); ok {
					s = iso
				}
			}
		}
		return val{k: kString, s: s}, nil
	case c == '{':
		return d.object(h)
	case c == '[':
		return d.array()
	case c == '-' || (c >= '0' && c <= '9'):
		n, err := d.number()
		return val{k: kNumber, s: n}, err
	default:
		k, err := d.literal()
		return val{k: k}, err
	}
}

// array reads an array into elems; an array of OptionSetValues only is a multi-select choice,
// joined into its Web API form at once.
func (d *decoder) array() (val, error) {
	if err := d.open(); err != nil {
		return val{}, err
	}
	base := len(d.vals)
	for first := true; ; first = false {
		more, err := d.next(first, ']')
		if err != nil {
			return val{}, err
		}
		if !more {
			break
		}
		v, err := d.value(hintNone)
		if err != nil {
			return val{}, err
		}
		d.vals = append(d.vals, v)
	}
	v := val{k: kArray}
	if multi, ok := multiSelect(d.vals[base:]); ok {
		// OptionSetValues only: a multi-select choice, joined at once.
		d.popVals(base)
		return val{k: kString, s: multi}, nil
	}
	if n := len(d.vals) - base; n > 0 {
		elems := make([]val, n)
		copy(elems, d.vals[base:])
		d.popVals(base)
		v.x = elems
	}
	return v, nil
}

// object reads an object, finding its type from a leading "__type" (where the serializer always
// puts it), else from the hint, else from the keys it has.
func (d *decoder) object(h hint) (val, error) {
	if err := d.open(); err != nil {
		return val{}, err
	}
	c, err := d.peek()
	if err != nil {
		return val{}, err
	}
	if c == '}' {
		d.i++
		d.depth--
		switch h {
		case hintEntity:
			return val{k: kEntity, x: Row{}}, nil
		case hintRef:
			return val{k: kRef}, nil
		}
		return val{k: kObject, x: Row{}}, nil
	}
	if rest := d.s[d.i:]; strings.HasPrefix(rest, `"__type"`) {
		if strings.HasPrefix(rest, `"__type":`) {
			d.i += len(`"__type":`) // the serializer's form: the key needs no second reading
		} else if _, err := d.key(); err != nil {
			return val{}, err
		}
		name, err := d.typeName()
		if err != nil {
			return val{}, err
		}
		return d.typed(name, false, h == hintPending)
	}
	switch h {
	case hintEntity:
		return d.entity(true, false)
	case hintRef:
		return d.ref(true)
	}
	// No type and no hint: look at the keys first, then parse from the top of the object.
	// Looking means reading the object twice, and a nested untyped object would be read again
	// by each untyped ancestor; past maxSniff nested looks, objects are kept generic so a
	// hostile body cannot multiply the work.
	if d.sniffing >= maxSniff {
		return d.generic(true, "")
	}
	start, depth := d.i, d.depth
	name, has, err := d.sniff()
	if err != nil {
		return val{}, err
	}
	d.i, d.depth = start, depth
	d.sniffing++
	v, err := d.sniffed(name, has, h == hintPending)
	d.sniffing--
	return v, err
}

// maxSniff bounds nested untyped objects that are typed by their keys. Real payloads need one
// level (the EntityReferences of RelatedEntities) or two.
const maxSniff = 3

func (d *decoder) sniffed(name string, has int, pend bool) (val, error) {
	switch {
	case name != "":
		return d.typed(name, true, pend)
	case has&hasAttributes != 0 && has&hasLogicalName != 0:
		return d.entity(true, pend)
	case has&hasLogicalName != 0 && has&hasID != 0:
		return d.ref(true)
	case has&hasEntities != 0:
		return d.collection(true)
	case has == hasValue:
		return d.wrapped(true)
	}
	return d.generic(true, "")
}

// typeName reads the value of "__type" and returns the part before ':'
// ("Entity:http://schemas.microsoft.com/xrm/2011/Contracts" is "Entity"). The common case,
// no escape before the colon, builds nothing.
func (d *decoder) typeName() (string, error) {
	c, err := d.peek()
	if err != nil {
		return "", err
	}
	if c != '"' {
		// A non-string __type is no type at all: keep the object generic.
		return "", d.skip()
	}
	j := d.i + 1
	// A word at a time to the first stop: the flags of stops8 and those of ':' (a zero byte of
	// x^':'), each exact in its lowest bit, so their union's lowest is the first stop.
	for j+8 <= len(d.s) {
		x := load8(d.s, j)
		c := x ^ (lsb * ':')
		if m := stops8(x) | (c-lsb)&^c&msb; m != 0 {
			j += bits.TrailingZeros64(m) >> 3
			break
		}
		j += 8
	}
	for ; j < len(d.s); j++ {
		if !typeStop[d.s[j]] {
			continue // one table load per letter, near the end of the body
		}
		switch d.s[j] {
		case ':', '"':
			name := d.s[d.i+1 : j]
			// Nearly every typed value names the same contract namespace: step over it whole.
			rest := d.s[j:]
			for _, ns := range [...]string{contractsEscaped, contractsPlain} {
				if strings.HasPrefix(rest, ns) {
					d.i = j + len(ns)
					return name, nil
				}
			}
			return name, d.skipString()
		case '\\':
			full, err := d.str()
			if i := strings.IndexByte(full, ':'); i >= 0 {
				full = full[:i]
			}
			return full, err
		default:
			if d.s[j] < 0x20 {
				// A raw control character is not JSON: let the string reader say so.
				_, err := d.str()
				return "", err
			}
		}
	}
	return "", d.eof()
}

// typeStop marks the bytes that end the plain part of a "__type" value: its colon, its closing
// quote, an escape, or a control character (which the string reader refuses).
var typeStop = func() (t [256]bool) {
	for c := 0; c < 0x20; c++ {
		t[c] = true
	}
	t[':'], t['"'], t['\\'] = true, true, true
	return t
}()

// The tail of a "__type" value in the SDK's contract namespace, with the closing quote.
const (
	contractsEscaped = `:http:\/\/schemas.microsoft.com\/xrm\/2011\/Contracts"`
	contractsPlain   = `:http://schemas.microsoft.com/xrm/2011/Contracts"`
)

func (d *decoder) typed(name string, first, pend bool) (val, error) {
	switch name {
	case "Entity":
		return d.entity(first, pend)
	case "EntityReference":
		return d.ref(first)
	case "OptionSetValue", "Money":
		return d.wrapped(first)
	case "EntityCollection":
		return d.collection(first)
	case "Relationship":
		return d.relationship(first)
	}
	return d.generic(first, name)
}

const (
	hasAttributes = 1 << iota
	hasLogicalName
	hasID
	hasEntities
	hasValue
	hasOther
)

// sniff scans the members of an untyped object, reporting which telling keys it has.
func (d *decoder) sniff() (name string, has int, err error) {
	for first := true; ; first = false {
		more, err := d.next(first, '}')
		if err != nil || !more {
			return name, has, err
		}
		k, err := d.key()
		if err != nil {
			return "", 0, err
		}
		switch k {
		case "__type":
			if name, err = d.typeName(); err != nil {
				return "", 0, err
			}
			continue
		case "Attributes":
			has |= hasAttributes
		case "LogicalName":
			has |= hasLogicalName
		case "Id":
			has |= hasID
		case "Entities":
			has |= hasEntities
		case "Value":
			has |= hasValue
		default:
			has |= hasOther
		}
		if err := d.skip(); err != nil {
			return "", 0, err
		}
	}
}

// The typed readers below each loop over the remaining members of an object whose '{' was
// consumed (first says whether any member was read yet). The loop is written out in each rather
// than shared through a callback, to keep the hot path free of closures. A "__type" met there is
// skipped like any unknown key: the type is already known.

// entity reads an Entity's members and builds its row, or with pend keeps its columns pending.
func (d *decoder) entity(first, pend bool) (val, error) {
	v := val{k: kEntity}
	abase, fbase := len(d.attrs), len(d.fmts)
	// The serializer's members in its order and form, each recognized by its literal text rather
	// than read as a key; at the first that differs, the loop below takes over.
	if d.member(first, `,"Attributes":`) {
		first = false
		if err := d.attributes(); err != nil {
			return val{}, err
		}
		d.literalMember(`,"EntityState":null`)
		ok := d.member(false, `,"FormattedValues":`)
		if ok {
			if err := d.formatted(); err != nil {
				return val{}, err
			}
			ok = d.member(false, `,"Id":`)
		}
		if ok {
			var err error
			if v.s, err = d.optString("Id"); err != nil {
				return val{}, err
			}
			d.emptyArrayMember(`,"KeyAttributes":[]`)
			ok = d.member(false, `,"LogicalName":`)
		}
		if ok {
			var err error
			if v.s2, err = d.optString("LogicalName"); err != nil {
				return val{}, err
			}
			d.emptyArrayMember(`,"RelatedEntities":[]`)
			d.literalMember(`,"RowVersion":null`)
		}
	}
	for ; ; first = false {
		more, err := d.next(first, '}')
		if err != nil {
			return val{}, err
		}
		if !more {
			break
		}
		k, err := d.key()
		if err != nil {
			return val{}, err
		}
		switch k {
		case "Attributes":
			err = d.attributes()
		case "FormattedValues":
			err = d.formatted()
		case "Id":
			v.s, err = d.optString("Id")
		case "LogicalName":
			v.s2, err = d.optString("LogicalName")
		default:
			err = d.skip()
		}
		if err != nil {
			return val{}, err
		}
	}
	if pend {
		// The columns stay where they are, on the stacks, and are not popped: what comes after
		// pushes above them, and decode builds the event from them before it lets the decoder
		// go. The full slice expressions keep an append from reaching what is pushed next.
		v.x = &pending{attrs: d.attrs[abase:len(d.attrs):len(d.attrs)], fmts: d.fmts[fbase:len(d.fmts):len(d.fmts)]}
		return v, nil
	}
	v.x = d.buildRow(abase, fbase)
	return v, nil
}

// member consumes lit, `,"name":`, when the next member is name in the serializer's form (without
// the comma when it is the object's first) and reports whether it did.
func (d *decoder) member(first bool, lit string) bool {
	if first {
		lit = lit[1:]
	}
	if strings.HasPrefix(d.s[d.i:], lit) {
		d.i += len(lit)
		return true
	}
	return false
}

// literalMember consumes lit, a whole member whose value is a literal (`,"RowVersion":null`),
// when it comes next.
func (d *decoder) literalMember(lit string) { d.member(false, lit) }

// emptyArrayMember consumes lit, a whole member whose value is [], when it comes next and the
// array would not nest too deeply (open refuses that, and so must this).
func (d *decoder) emptyArrayMember(lit string) {
	if d.depth < MaxDepth {
		d.member(false, lit)
	}
}

// optString reads a string or null ("").
func (d *decoder) optString(field string) (string, error) {
	c, err := d.peek()
	if err != nil {
		return "", err
	}
	switch c {
	case '"':
		return d.str()
	case 'n':
		_, err := d.literal()
		return "", err
	}
	d.shapeErr(field, "want a string, got "+describe(c))
	return "", d.skip()
}

// attributes reads a key/value array of columns onto the attrs stack.
func (d *decoder) attributes() error {
	if ok, err := d.keyValues("Attributes"); !ok {
		return err
	}
	for first := true; ; first = false {
		more, err := d.next(first, ']')
		if err != nil || !more {
			return err
		}
		k, v, ok, err := d.pair("Attributes", hintNone, "")
		if err != nil {
			return err
		}
		if ok {
			d.attrs = append(d.attrs, attr{key: k, v: v})
		}
	}
}

// formatted reads a FormattedValues array onto the fmts stack.
func (d *decoder) formatted() error {
	if ok, err := d.keyValues("FormattedValues"); !ok {
		return err
	}
	for first := true; ; first = false {
		more, err := d.next(first, ']')
		if err != nil || !more {
			return err
		}
		k, v, ok, err := d.pair("FormattedValues", hintNone, "")
		if err != nil {
			return err
		}
		if ok {
			d.fmts = append(d.fmts, fmtPair{key: k, v: v.any(&d.boxes)})
		}
	}
}

// pair reads one {"key": ..., "value": ...} element. When keep is not empty, only the keys it
// lists (a "|"-separated set, see wanted) have their value decoded; the others are skipped.
// ok is false for an element without a key, or one that is null, or one not wanted.
func (d *decoder) pair(field string, h hint, keep string) (k string, v val, ok bool, err error) {
	c := d.s[d.i]
	if c != '{' {
		if c == 'n' {
			_, err = d.literal()
			return "", val{}, false, err
		}
		d.shapeErr(field, "want {\"key\", \"value\"} elements, got "+describe(c))
		return "", val{}, false, d.skip()
	}
	if err := d.open(); err != nil {
		return "", val{}, false, err
	}
	haveKey, haveVal, first := false, false, true
	// Fast path for the serializer's own form, {"key":"...","value":...} without spaces, which
	// is most of a body; whatever follows, or any other form, goes through the loop below.
	if strings.HasPrefix(d.s[d.i:], `"key":"`) {
		d.i += len(`"key":`)
		if k, err = d.str(); err != nil {
			return "", val{}, false, err
		}
		haveKey, first = true, false
		if strings.HasPrefix(d.s[d.i:], `,"value":`) {
			d.i += len(`,"value":`)
			if keep != "" && !wanted(keep, k) {
				err = d.skip()
			} else {
				v, err = d.value(h)
				haveVal = true
			}
			if err != nil {
				return "", val{}, false, err
			}
			if d.i < len(d.s) && d.s[d.i] == '}' { // and nothing else: the pair is read
				d.i++
				d.depth--
				if keep == "" || wanted(keep, k) {
					return k, v, true, nil
				}
				return "", val{}, false, nil
			}
		}
	}
	for ; ; first = false {
		more, err := d.next(first, '}')
		if err != nil {
			return "", val{}, false, err
		}
		if !more {
			break
		}
		name, err := d.key()
		if err != nil {
			return "", val{}, false, err
		}
		switch name {
		case "key":
			var c byte
			if c, err = d.peek(); err == nil {
				if c == '"' {
					k, err = d.str()
					haveKey = true
				} else {
					d.shapeErr(field, "want a string key, got "+describe(c))
					err = d.skip()
				}
			}
		case "value":
			if haveKey && keep != "" && !wanted(keep, k) {
				err = d.skip()
			} else {
				v, err = d.value(h)
				haveVal = true
			}
		default:
			err = d.skip()
		}
		if err != nil {
			return "", val{}, false, err
		}
	}
	if !haveKey || !haveVal || (keep != "" && !wanted(keep, k)) {
		return "", val{}, false, nil
	}
	return k, v, true, nil
}

// wanted reports whether k is one of the "|"-separated names in set.
func wanted(set, k string) bool {
	for set != "" {
		name := set
		if i := strings.IndexByte(set, '|'); i >= 0 {
			name, set = set[:i], set[i+1:]
		} else {
			set = ""
		}
		if name == k {
			return true
		}
	}
	return false
}

// buildRow turns the attrs and fmts pushed since abase and fbase into a Web API row and pops them.
func (d *decoder) buildRow(abase, fbase int) Row {
	attrs, fmts := d.attrs[abase:], d.fmts[fbase:]
	row := make(Row, rowSize(attrs, fmts))
	fill(&d.boxes, row, attrs, fmts)
	d.popEntity(abase, fbase)
	return row
}

// rowSize counts the entries attrs and fmts make in a row.
func rowSize(attrs []attr, fmts []fmtPair) int {
	n := len(attrs) + len(fmts)
	for i := range attrs {
		if attrs[i].v.k == kRef {
			n += 2
		}
	}
	return n
}

// fill places columns and their formatted values into row.
func fill(bx *boxes, row Row, attrs []attr, fmts []fmtPair) {
	for i := range attrs {
		place(bx, row, attrs[i].key, &attrs[i].v)
	}
	var buf [128]byte
	for _, f := range fmts {
		key := f.key
		if _, ok := row[key]; !ok {
			// A lookup's formatted value goes with "_x_value" (logical names never start
			// with '_', so that key can only come from lookup x). The lookup by a []byte
			// conversion does not allocate.
			lk := append(append(append(buf[:0], '_'), key...), "_value"...)
			if _, ok := row[string(lk)]; ok {
				key = lookupKey(key)[:len(lk)]
			}
		}
		row[formattedKey(key)] = f.v
	}
}

// place puts one column into a row in Web API shape.
func place(bx *boxes, row Row, key string, v *val) {
	switch v.k {
	case kRef:
		// One string holds both keys: "_x_value" is a prefix of its annotation.
		long := lookupKey(key)
		short := long[:len(key)+len("__value")]
		if v.s == "" {
			row[short] = nil
		} else {
			row[short] = bx.str(v.s)
		}
		if v.s2 == "" {
			row[long] = nil
		} else {
			row[long] = bx.str(v.s2)
			if ann, nav, ok := navigation(key, v.s2); ok && v.s != "" {
				row[ann] = nav
			}
		}
		// The Web API's formatted value of a lookup is the record's name; an explicit
		// FormattedValues entry, placed after this, wins.
		if v.x != nil {
			row[formattedKey(short)] = v.x // the name, boxed once when read
		}
	case kArray:
		// A bare array in a column is a multi-select choice; with no choices it is null, as the
		// Web API shows it.
		if len(v.elems()) == 0 {
			row[key] = nil
			return
		}
		row[key] = v.any(bx)
	default:
		row[key] = v.any(bx)
	}
}

// any returns the value in Web API shape, outside of a column position.
func (v *val) any(bx *boxes) any {
	switch v.k {
	case kTrue:
		return true
	case kFalse:
		return false
	case kString:
		return bx.str(v.s)
	case kNumber, kWrapped:
		return bx.num(v.s)
	case kEntity, kObject:
		return v.row(bx)
	case kCollection:
		if e := v.entries(); e != nil {
			return e
		}
		return []any{}
	case kRef:
		// An entity reference that is not a column (inside an unknown structure): keep the SDK's
		// own shape, which says everything and needs no guessing.
		r := Row{"Id": bx.strOrNil(v.s), "LogicalName": bx.strOrNil(v.s2), "Name": nil}
		if v.x != nil {
			r["Name"] = v.x
		}
		return r
	case kRelationship:
		r := Row{"SchemaName": bx.strOrNil(v.s), "PrimaryEntityRole": nil}
		if v.s2 != "" {
			r["PrimaryEntityRole"] = bx.num(v.s2)
		}
		return r
	case kArray:
		elems := v.elems()
		out := make([]any, len(elems))
		for i := range elems {
			out[i] = elems[i].any(bx)
		}
		return out
	}
	return nil
}

// multiSelect joins an array of OptionSetValues into "100000000,100000002", the Web API's form.
func multiSelect(elems []val) (string, bool) {
	if len(elems) == 0 {
		return "", false
	}
	n := 0
	for i := range elems {
		if elems[i].k != kWrapped {
			return "", false
		}
		n += len(elems[i].s) + 1
	}
	var b strings.Builder
	b.Grow(n)
	for i := range elems {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(elems[i].s)
	}
	return b.String(), true
}

// ref reads an EntityReference.
func (d *decoder) ref(first bool) (val, error) {
	v := val{k: kRef}
	// The serializer's members in its order and form (see entity), then the loop.
	if d.member(first, `,"Id":`) {
		first = false
		var err error
		if v.s, err = d.optString("Id"); err != nil {
			return val{}, err
		}
		d.emptyArrayMember(`,"KeyAttributes":[]`)
		if d.member(false, `,"LogicalName":`) {
			if v.s2, err = d.optString("LogicalName"); err != nil {
				return val{}, err
			}
			if d.member(false, `,"Name":`) {
				if err = d.refName(&v); err != nil {
					return val{}, err
				}
				d.literalMember(`,"RowVersion":null`)
			}
		}
	}
	for ; ; first = false {
		more, err := d.next(first, '}')
		if err != nil {
			return val{}, err
		}
		if !more {
			return v, nil
		}
		k, err := d.key()
		if err != nil {
			return val{}, err
		}
		switch k {
		case "Id":
			v.s, err = d.optString("Id")
		case "LogicalName":
			v.s2, err = d.optString("LogicalName")
		case "Name":
			err = d.refName(&v)
		default:
			err = d.skip()
		}
		if err != nil {
			return val{}, err
		}
	}
}

// refName reads an EntityReference's Name into v.x, boxed once, or leaves v.x nil for null.
func (d *decoder) refName(v *val) error {
	c, err := d.peek()
	if err != nil {
		return err
	}
	if c != '"' {
		_, err = d.optString("Name")
		return err
	}
	name, err := d.str()
	v.x = d.boxes.str(name)
	return err
}

// wrapped reads an OptionSetValue or Money: {"Value": n}.
func (d *decoder) wrapped(first bool) (val, error) {
	v := val{k: kNull}
	if d.member(first, `,"Value":`) { // the serializer's form (see entity)
		first = false
		var err error
		if v, err = d.value(hintNone); err != nil {
			return val{}, err
		}
		if v.k == kNumber {
			v.k = kWrapped
		}
	}
	for ; ; first = false {
		more, err := d.next(first, '}')
		if err != nil {
			return val{}, err
		}
		if !more {
			return v, nil
		}
		k, err := d.key()
		if err != nil {
			return val{}, err
		}
		if k != "Value" {
			if err := d.skip(); err != nil {
				return val{}, err
			}
			continue
		}
		if v, err = d.value(hintNone); err != nil {
			return val{}, err
		}
		if v.k == kNumber {
			v.k = kWrapped
		}
	}
}

// collection reads an EntityCollection: its Entities become rows.
func (d *decoder) collection(first bool) (val, error) {
	v := val{k: kCollection}
	for ; ; first = false {
		more, err := d.next(first, '}')
		if err != nil {
			return val{}, err
		}
		if !more {
			return v, nil
		}
		k, err := d.key()
		if err != nil {
			return val{}, err
		}
		if k != "Entities" {
			if err := d.skip(); err != nil {
				return val{}, err
			}
			continue
		}
		c, err := d.peek()
		if err != nil {
			return val{}, err
		}
		if c != '[' {
			if c != 'n' {
				d.shapeErr("Entities", "want an array, got "+describe(c))
			}
			if err := d.skip(); err != nil {
				return val{}, err
			}
			continue
		}
		if err := d.open(); err != nil {
			return val{}, err
		}
		var rows []any
		for efirst := true; ; efirst = false {
			more, err := d.next(efirst, ']')
			if err != nil {
				return val{}, err
			}
			if !more {
				break
			}
			e, err := d.value(hintEntity)
			if err != nil {
				return val{}, err
			}
			rows = append(rows, e.any(&d.boxes))
		}
		if rows == nil {
			rows = []any{}
		}
		v.x = rows
	}
}

// relationship reads a Relationship: {"PrimaryEntityRole": null|0|1, "SchemaName": "..."}.
func (d *decoder) relationship(first bool) (val, error) {
	v := val{k: kRelationship}
	for ; ; first = false {
		more, err := d.next(first, '}')
		if err != nil {
			return val{}, err
		}
		if !more {
			return v, nil
		}
		k, err := d.key()
		if err != nil {
			return val{}, err
		}
		switch k {
		case "SchemaName":
			v.s, err = d.optString("Relationship.SchemaName")
		case "PrimaryEntityRole":
			var r val
			if r, err = d.value(hintNone); err == nil && r.k == kNumber {
				v.s2 = r.s
			}
		default:
			err = d.skip()
		}
		if err != nil {
			return val{}, err
		}
	}
}

// generic reads any other object into a row of its members, as they are, with values
// normalized. A typed one keeps its type name as "@odata.type": "#<Type>" (for example
// "#BooleanManagedProperty"), so that nothing Dataverse said is lost and no "__type" remains.
func (d *decoder) generic(first bool, name string) (val, error) {
	base := len(d.attrs)
	for ; ; first = false {
		more, err := d.next(first, '}')
		if err != nil {
			return val{}, err
		}
		if !more {
			break
		}
		k, err := d.key()
		if err != nil {
			return val{}, err
		}
		if k == "__type" {
			if err := d.skip(); err != nil {
				return val{}, err
			}
			continue
		}
		v, err := d.value(hintNone)
		if err != nil {
			return val{}, err
		}
		d.attrs = append(d.attrs, attr{key: k, v: v})
	}
	attrs := d.attrs[base:]
	row := make(Row, len(attrs)+1)
	if name != "" {
		row["@odata.type"] = "#" + name
	}
	for i := range attrs {
		row[attrs[i].key] = attrs[i].v.any(&d.boxes)
	}
	d.popEntity(base, len(d.fmts))
	return val{k: kObject, x: row}, nil
}

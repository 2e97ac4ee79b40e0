package dataverse

import (
	"bytes"
	"encoding/base64"
	"math"
	"math/big"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// The transcoder turns the XML form of a RemoteExecutionContext (text or binary) into the JSON
// form Dataverse sends with message format Json, as DataContractJsonSerializer writes the same
// object graph, so that one decoder, and one set of normalization rules, serves all three formats:
//
//   - an element is a member: "Name": value, in document order (DataContractSerializer writes
//     members in the same ordinal order as the JSON serializer);
//   - xsi:nil="true" is null; the key/value collections (InputParameters, Attributes,
//     FormattedValues, the image collections, ...) are arrays of {"key": ..., "value": ...};
//     OptionSetValueCollection, EntityReferenceCollection and ArrayOf... are arrays;
//   - xsi:type on a complex value becomes "__type": "Entity:http://schemas.microsoft.com/xrm/2011/Contracts"
//     (a DataContract namespace http://schemas.datacontract.org/2004/07/X becomes "#X"), written
//     exactly where the JSON serializer writes it: where the declared type (object) does not fix it;
//   - primitives follow their declared type or xsi:type: Guid and string as strings, int, long,
//     decimal and double as numbers with their text kept, bool as true/false, DateTime as
//     "/Date(ms)/" (UTC) or "/Date(ms+hhmm)/" (a local time, ms being its instant), as the JSON
//     serializer writes them.
//
// Leaf types come from the contracts below where the XML does not carry them (text XML writes
// <Depth>1</Depth>; binary XML does carry them, in its text records).

// ty is a declared or xsi:type type.
type ty struct {
	k    tyKind
	name string // for tyObject: the known contract, "" for an unknown one
	elem *ty    // tyArray: the items; tyPairs: the values
	key  *ty    // tyPairs: the keys
}

type tyKind uint8

const (
	tyAny tyKind = iota // object: the xsi:type says, or the content
	tyString
	tyGuid
	tyInt // every integer type: the text is the number
	tyDecimal
	tyDouble
	tyBool
	tyDateTime
	tyChar
	tyDuration
	tyBytes
	tyEnum // name -> number, from the contract's enum
	tyObject
	tyArray
	tyPairs // a key/value collection
)

var (
	anyT      = &ty{k: tyAny}
	stringT   = &ty{k: tyString}
	guidT     = &ty{k: tyGuid}
	intT      = &ty{k: tyInt}
	decimalT  = &ty{k: tyDecimal}
	doubleT   = &ty{k: tyDouble}
	boolT     = &ty{k: tyBool}
	dateTimeT = &ty{k: tyDateTime}
	charT     = &ty{k: tyChar}
	durationT = &ty{k: tyDuration}
	bytesT    = &ty{k: tyBytes}

	entityStateT = &ty{k: tyEnum, name: "EntityState"}
	entityRoleT  = &ty{k: tyEnum, name: "EntityRole"}

	contextT        = &ty{k: tyObject, name: "RemoteExecutionContext"}
	entityT         = &ty{k: tyObject, name: "Entity"}
	refT            = &ty{k: tyObject, name: "EntityReference"}
	optionSetT      = &ty{k: tyObject, name: "OptionSetValue"}
	moneyT          = &ty{k: tyObject, name: "Money"}
	collectionT     = &ty{k: tyObject, name: "EntityCollection"}
	relationshipT   = &ty{k: tyObject, name: "Relationship"}
	genericT        = &ty{k: tyObject}
	paramsT         = &ty{k: tyPairs, key: stringT, elem: anyT}
	formattedT      = &ty{k: tyPairs, key: stringT, elem: stringT}
	imagesT         = &ty{k: tyPairs, key: stringT, elem: entityT}
	relatedT        = &ty{k: tyPairs, key: relationshipT, elem: collectionT}
	entitiesT       = &ty{k: tyArray, elem: entityT}
	optionSetsT     = &ty{k: tyArray, elem: optionSetT}
	refsT           = &ty{k: tyArray, elem: refT}
	anyArrayT       = &ty{k: tyArray, elem: anyT}
	stringPairT     = &ty{k: tyObject, name: "KeyValuePair"}
	stringPairListT = &ty{k: tyArray, elem: stringPairT}
)

// member gives the declared type of member name of a known contract; genericT's members are
// unknown (anyT). Member lists: Microsoft.Xrm.Sdk's data contracts (Microsoft Learn, "Entity",
// "EntityReference", "EntityCollection", "RemoteExecutionContext" classes).
func (t *ty) member(name string) *ty {
	switch t.name {
	case "RemoteExecutionContext":
		switch name {
		case "BusinessUnitId", "CorrelationId", "InitiatingUserAzureActiveDirectoryObjectId", "InitiatingUserId",
			"OperationId", "OrganizationId", "PrimaryEntityId", "RequestId", "UserAzureActiveDirectoryObjectId", "UserId":
			return guidT
		case "Depth", "IsolationMode", "Mode", "Stage":
			return intT
		case "InitiatingUserAgent", "MessageName", "OrganizationName", "PrimaryEntityName", "SecondaryEntityName":
			return stringT
		case "IsExecutingOffline", "IsInTransaction", "IsOfflinePlayback":
			return boolT
		case "OperationCreatedOn":
			return dateTimeT
		case "InputParameters", "OutputParameters", "SharedVariables":
			return paramsT
		case "PreEntityImages", "PostEntityImages":
			return imagesT
		case "OwningExtension":
			return refT
		case "ParentContext":
			return contextT
		}
	case "Entity":
		switch name {
		case "Attributes", "KeyAttributes":
			return paramsT
		case "FormattedValues":
			return formattedT
		case "RelatedEntities":
			return relatedT
		case "EntityState":
			return entityStateT
		case "Id":
			return guidT
		case "LogicalName", "RowVersion":
			return stringT
		}
	case "EntityReference":
		switch name {
		case "Id":
			return guidT
		case "KeyAttributes":
			return paramsT
		case "LogicalName", "Name", "RowVersion":
			return stringT
		}
	case "OptionSetValue":
		if name == "Value" {
			return intT
		}
	case "Money":
		if name == "Value" {
			return decimalT
		}
	case "EntityCollection":
		switch name {
		case "Entities":
			return entitiesT
		case "EntityName", "MinActiveRowVersion", "PagingCookie":
			return stringT
		case "MoreRecords", "TotalRecordCountLimitExceeded":
			return boolT
		case "TotalRecordCount":
			return intT
		}
	case "Relationship":
		switch name {
		case "PrimaryEntityRole":
			return entityRoleT
		case "SchemaName":
			return stringT
		}
	case "KeyValuePair":
		return stringT
	}
	return anyT
}

// enumValue gives the number the JSON serializer writes for an enum member name.
func enumValue(t *ty, name string) (string, bool) {
	switch t.name + "." + name {
	case "EntityState.Unchanged", "EntityRole.Referencing":
		return "0", true
	case "EntityState.Created", "EntityRole.Referenced":
		return "1", true
	case "EntityState.Changed":
		return "2", true
	}
	return "", false
}

// xsiType resolves an xsi:type to a type; tagged says it is written as "__type".
func xsiType(local, ns string) (t *ty, tagged bool) {
	switch ns {
	case nsXSD, nsSerialization:
		switch local {
		case "string", "anyURI", "QName":
			return stringT, false
		case "guid":
			return guidT, false
		case "int", "long", "short", "byte", "unsignedByte", "unsignedShort", "unsignedInt", "unsignedLong", "integer":
			return intT, false
		case "decimal":
			return decimalT, false
		case "double", "float":
			return doubleT, false
		case "boolean":
			return boolT, false
		case "dateTime":
			return dateTimeT, false
		case "char":
			return charT, false
		case "duration":
			return durationT, false
		case "base64Binary":
			return bytesT, false
		case "anyType":
			return anyT, false
		}
	}
	if strings.HasPrefix(ns, "http://schemas.microsoft.com/xrm/") {
		switch local {
		case "Entity":
			return entityT, true
		case "EntityReference":
			return refT, true
		case "OptionSetValue":
			return optionSetT, true
		case "Money":
			return moneyT, true
		case "EntityCollection":
			return collectionT, true
		case "Relationship":
			return relationshipT, true
		case "OptionSetValueCollection":
			return optionSetsT, false
		case "EntityReferenceCollection":
			return refsT, false
		case "ParameterCollection", "AttributeCollection", "KeyAttributeCollection", "DataCollectionOfstringanyType":
			return paramsT, false
		case "EntityImageCollection":
			return imagesT, false
		case "FormattedValueCollection":
			return formattedT, false
		case "ArrayOfEntity":
			return entitiesT, false
		}
	}
	if item, ok := strings.CutPrefix(local, "ArrayOf"); ok {
		// A collection has no "__type" in JSON: it is a plain array.
		switch {
		case item == "anyType":
			return anyArrayT, false
		case strings.HasPrefix(item, "KeyValuePairOfstringstring"):
			return stringPairListT, false
		}
		if t, _ := xsiType(item, nsXSD); t != anyT {
			return &ty{k: tyArray, elem: t}, false
		}
		if t, _ := xsiType(item, ns); t.k == tyObject {
			return &ty{k: tyArray, elem: t}, false
		}
		return anyArrayT, false
	}
	if strings.HasPrefix(local, "KeyValuePairOf") {
		if strings.HasPrefix(local, "KeyValuePairOfstringstring") {
			return stringPairT, true
		}
		return genericT, true
	}
	return genericT, true
}

// transcoder writes the JSON form of the XML read from src.
type transcoder struct {
	// scratch holds a number or a date while it is formatted, before put copies it into out.
	scratch [128]byte
	bin     *binReader  // the source: binary XML,
	text    *textReader // or text XML
	n       xnode
	txt     xtext  // the text content of the element being read
	buf     []byte // the JSON so far is buf[:w]
	w       int
	limit   int
	// lastOff is the offset of the node last read, for errors found by the transcoder.
	format string
}

// transcode reads a whole XML body and returns its JSON form. The JSON is bounded at limit bytes
// (binary XML's Array record could otherwise make a small body expand without end).
//
// The JSON is written into a pooled buffer and returned as a copy of just its size: the event's
// strings share that copy's memory, and a buffer sized by guess would be a third larger.
func transcode(src xsource, format string, limit, sizeHint int) ([]byte, error) {
	buf := transcodeBufs.Get().(*[]byte)
	t := transcoder{limit: limit, format: format, buf: (*buf)[:cap(*buf)]}
	if len(t.buf) < sizeHint {
		t.buf = make([]byte, sizeHint)
	}
	switch r := src.(type) {
	case *binReader:
		t.bin = r
	case *textReader:
		t.text = r
	}
	out, err := t.run()
	var js []byte
	if err == nil {
		js = bytes.Clone(out)
	}
	if cap(t.buf) <= maxTranscodeBuf {
		*buf = t.buf[:0]
	}
	transcodeBufs.Put(buf)
	return js, err
}

var transcodeBufs = sync.Pool{New: func() any { return new([]byte) }}

// maxTranscodeBuf is the largest buffer kept between decodes.
const maxTranscodeBuf = 256 << 10

func (t *transcoder) run() ([]byte, error) {
	if err := t.advance(); err != nil {
		return nil, err
	}
	if t.n.kind != xStart {
		return nil, t.errHere("no root element")
	}
	if err := t.element(contextT); err != nil {
		return nil, err
	}
	if err := t.advance(); err != nil {
		return nil, err
	}
	if t.n.kind != xEOF {
		return nil, t.errHere("content after the root element")
	}
	return t.buf[:t.w], nil
}

func (t *transcoder) errHere(msg string) error {
	return &SyntaxError{Format: t.format, Offset: int64(t.n.off), Msg: msg}
}

// advance reads the next node, skipping nothing. The readers are called as concrete types, not
// through xsource, so that the transcoder, its node included, can live on the stack: a node is
// written for every record, and writes to the heap cost a write barrier each while the garbage
// collector runs.
func (t *transcoder) advance() error {
	if t.bin != nil {
		return t.bin.next(&t.n)
	}
	return t.text.next(&t.n)
}

// The writers below write into t.buf at t.w, and move t.w: an int. Appending to a slice field
// stores the slice's pointer each time, and a pointer store costs a write barrier whenever the
// garbage collector is marking, which in a stream of small writes adds up.

// put appends b (formatted in t.scratch, or any bytes).
func (t *transcoder) put(b []byte) {
	if len(t.buf)-t.w < len(b) {
		t.grow(len(b))
	}
	t.w += copy(t.buf[t.w:], b)
}

// bs appends s.
func (t *transcoder) bs(s string) {
	if len(t.buf)-t.w < len(s) {
		t.grow(len(s))
	}
	t.w += copy(t.buf[t.w:], s)
}

// b1 appends c.
func (t *transcoder) b1(c byte) {
	if t.w == len(t.buf) {
		t.grow(1)
	}
	t.buf[t.w] = c
	t.w++
}

// grow makes room for k more bytes: the only place the buffer's pointer is stored.
func (t *transcoder) grow(k int) {
	nb := make([]byte, max(2*len(t.buf), t.w+k, 1024))
	copy(nb, t.buf[:t.w])
	t.buf = nb
}

// jstr appends s as a JSON string (see appendJSONString).
func (t *transcoder) jstr(s string) {
	if !needsEscape(s) {
		// Most strings: one check of the room left, not three.
		if len(t.buf)-t.w < len(s)+2 {
			t.grow(len(s) + 2)
		}
		t.buf[t.w] = '"'
		w := t.w + 1 + copy(t.buf[t.w+1:], s)
		t.buf[w] = '"'
		t.w = w + 1
		return
	}
	t.b1('"')
	t.jstrBody(s)
	t.b1('"')
}

// jstrBody appends s escaped as in a JSON string, without the quotes.
func (t *transcoder) jstrBody(s string) {
	if !needsEscape(s) {
		t.bs(s)
		return
	}
	start := 0
	for i := 0; i < len(s); i++ {
		for i+8 <= len(s) && stops8(load8(s, i)) == 0 {
			i += 8
		}
		if i >= len(s) {
			break
		}
		if c := s[i]; jsonEscape[c] {
			t.bs(s[start:i])
			t.put(appendEscape(t.scratch[:0], c))
			start = i + 1
		}
	}
	t.bs(s[start:])
}

// typeTag writes the "__type" value of an xsi:type as DataContractJsonSerializer writes it
// ("Name:Namespace", a data contract namespace as "Name:#Rest"), straight into the output.
func (t *transcoder) typeTag(local, ns string) {
	t.b1('"')
	t.jstrBody(local)
	if rest, ok := strings.CutPrefix(ns, nsDataContract); ok {
		t.bs(":#")
		ns = rest
	} else {
		t.b1(':')
	}
	t.jstrBody(ns)
	t.b1('"')
}

// guid appends a UuidText value as a JSON string: hex digits and dashes, nothing to escape.
func (t *transcoder) guid(b *[16]byte) {
	t.put(append(appendGUID(append(t.scratch[:0], '"'), b), '"'))
}

// needsEscape reports whether s holds a byte a JSON string must escape, eight bytes at a time
// (the last eight overlapping what was seen: stops8 never flags a byte below a true stop).
func needsEscape(s string) bool {
	i := 0
	for ; i+8 <= len(s); i += 8 {
		if stops8(load8(s, i)) != 0 {
			return true
		}
	}
	if i == len(s) {
		return false
	}
	if len(s) >= 8 {
		return stops8(load8(s, len(s)-8)) != 0
	}
	for ; i < len(s); i++ {
		if jsonEscape[s[i]] {
			return true
		}
	}
	return false
}

// bounded checks the JSON written so far against the limit.
func (t *transcoder) bounded() error {
	if t.w > t.limit {
		return t.errHere("the body expands to more than " + strconv.Itoa(t.limit) + " bytes")
	}
	return nil
}

// content reads what follows a start node: the text before the first child or the end, into
// t.txt, joined when it comes in pieces. On return t.n is that child's start or the end.
//
// The text is t.txt, or, for a leaf, t.n.text itself: no node is read before it is used.
func (t *transcoder) content() (*xtext, bool, error) {
	if t.n.closed {
		t.n.kind, t.n.closed = xEnd, false
		return &t.n.text, t.n.hasText, nil
	}
	have := false
	for {
		if err := t.advance(); err != nil {
			return &t.txt, have, err
		}
		if t.n.kind != xText {
			return &t.txt, have, nil
		}
		if !have {
			t.txt, have = t.n.text, true
			continue
		}
		// Text in pieces (an entity or CDATA section splits it in text XML): join as strings.
		t.txt = xtext{k: tStr, s: textString(&t.txt) + textString(&t.n.text)}
	}
}

// skipTo consumes nodes up to and including the end of the element whose content is being read
// (t.n is a child start or that end).
func (t *transcoder) skipRest() error {
	depth := 0
	for {
		switch t.n.kind {
		case xStart:
			depth++
		case xEnd:
			if depth == 0 {
				return nil
			}
			depth--
		case xEOF:
			return t.errHere("unexpected end of input")
		}
		if err := t.advance(); err != nil {
			return err
		}
	}
}

// element writes the value of the element whose start is t.n, declared as decl, and consumes
// it through its end.
func (t *transcoder) element(decl *ty) error {
	if err := t.bounded(); err != nil {
		return err
	}
	// The common case first: a leaf of binary XML holding the text of a declared primitive.
	if t.n.closed && t.n.hasText && t.n.typ == "" && !t.n.isNil && decl.k >= tyString && decl.k <= tyEnum {
		t.n.kind, t.n.closed = xEnd, false
		t.primitive(decl, &t.n.text)
		return nil
	}
	typName, typNS, isNil := t.n.typ, t.n.typNS, t.n.isNil
	typ, tagged := decl, false
	if typName != "" {
		typ, tagged = xsiType(typName, typNS)
		if typ.k == tyAny && decl.k != tyAny {
			typ, tagged = decl, false
		}
		// Next most common: a leaf whose xsi:type names a primitive (an attribute's value).
		if t.n.closed && t.n.hasText && !isNil && typ.k >= tyString && typ.k <= tyEnum {
			t.n.kind, t.n.closed = xEnd, false
			t.primitive(typ, &t.n.text)
			return nil
		}
	}
	txt, have, err := t.content()
	if err != nil {
		return err
	}
	if isNil {
		t.bs("null")
		return t.skipRest()
	}
	switch typ.k {
	case tyObject:
		return t.object(typ, tagged, typName, typNS)
	case tyArray:
		return t.array(typ)
	case tyPairs:
		return t.pairs(typ)
	case tyAny:
		if t.n.kind == xStart {
			return t.object(genericT, false, "", "")
		}
		if !have {
			t.bs("null")
			return nil
		}
		t.natural(txt)
		return nil
	}
	// A primitive: its text, and nothing else.
	if t.n.kind == xStart {
		t.txt = *txt
		txt = &t.txt
		if err := t.skipRest(); err != nil {
			return err
		}
	}
	if !have {
		if typ.k == tyString {
			t.bs(`""`)
		} else if typ.k == tyBytes {
			t.bs(`[]`)
		} else {
			t.bs("null")
		}
		return nil
	}
	t.primitive(typ, txt)
	return nil
}

// object writes the members of a complex value (t.n is its first child or its end).
func (t *transcoder) object(typ *ty, tagged bool, typName, typNS string) error {
	t.b1('{')
	first := true
	if tagged {
		t.bs(`"__type":`)
		t.typeTag(typName, typNS)
		first = false
	}
	for t.n.kind == xStart {
		if !first {
			t.b1(',')
		}
		first = false
		t.jstr(t.n.name)
		t.b1(':')
		if err := t.element(typ.member(t.n.name)); err != nil {
			return err
		}
		if err := t.nextSibling(); err != nil {
			return err
		}
	}
	t.b1('}')
	return nil
}

// nextSibling moves past the text after an element's end (indentation) to the next start or
// the parent's end.
func (t *transcoder) nextSibling() error {
	for {
		if err := t.advance(); err != nil {
			return err
		}
		switch t.n.kind {
		case xText:
			continue
		case xEOF:
			return t.errHere("unexpected end of input")
		}
		return nil
	}
}

func (t *transcoder) array(typ *ty) error {
	t.b1('[')
	first := true
	for t.n.kind == xStart {
		if !first {
			t.b1(',')
		}
		first = false
		if err := t.element(typ.elem); err != nil {
			return err
		}
		if err := t.nextSibling(); err != nil {
			return err
		}
	}
	t.b1(']')
	return nil
}

// pairs writes a key/value collection: each item element holds a key and a value element.
func (t *transcoder) pairs(typ *ty) error {
	t.b1('[')
	first := true
	for t.n.kind == xStart {
		if !first {
			t.b1(',')
		}
		first = false
		if t.n.isNil {
			t.bs("null")
			if _, _, err := t.content(); err != nil {
				return err
			}
			if err := t.skipRest(); err != nil {
				return err
			}
		} else {
			if _, _, err := t.content(); err != nil {
				return err
			}
			t.b1('{')
			ifirst := true
			for t.n.kind == xStart {
				decl := anyT
				// The usual item, key then value, in one write each with its punctuation.
				switch {
				case ifirst && t.n.name == "key":
					decl = typ.key
					t.bs(`"key":`)
				case !ifirst && t.n.name == "value":
					decl = typ.elem
					t.bs(`,"value":`)
				default:
					if !ifirst {
						t.b1(',')
					}
					switch t.n.name {
					case "key":
						decl = typ.key
						t.bs(`"key":`)
					case "value":
						decl = typ.elem
						t.bs(`"value":`)
					default:
						t.jstr(t.n.name)
						t.b1(':')
					}
				}
				ifirst = false
				if err := t.element(decl); err != nil {
					return err
				}
				if err := t.nextSibling(); err != nil {
					return err
				}
			}
			t.b1('}')
		}
		if err := t.nextSibling(); err != nil {
			return err
		}
	}
	t.b1(']')
	return nil
}

// natural writes text whose type nothing declares: binary XML's typed records as what they
// are, anything else as a string.
func (t *transcoder) natural(v *xtext) {
	switch v.k {
	case tStr:
		t.jstr(v.s)
	case tBool:
		t.put(strconv.AppendBool(t.scratch[:0], v.i == 1))
	case tInt, tUint, tFloat, tDouble, tDecimal:
		t.primitive(decimalT, v)
	case tDateTime:
		t.primitive(dateTimeT, v)
	case tBytes:
		t.primitive(bytesT, v)
	case tUUID:
		t.guid(&v.raw)
	default:
		t.jstr(textString(v))
	}
}

// primitive writes text as the JSON of a primitive type.
func (t *transcoder) primitive(typ *ty, v *xtext) {
	if v.k == tStr && (typ.k == tyString || typ.k == tyGuid) {
		t.jstr(v.s)
		return
	}
	if v.k == tUUID && (typ.k == tyString || typ.k == tyGuid) {
		t.guid(&v.raw)
		return
	}
	switch typ.k {
	case tyInt, tyDecimal, tyDouble:
		switch v.k {
		case tInt:
			t.put(strconv.AppendInt(t.scratch[:0], v.i, 10))
			return
		case tUint:
			t.put(strconv.AppendUint(t.scratch[:0], v.u, 10))
			return
		case tDecimal:
			if d, ok := appendDecimal(t.scratch[:0], &v.raw); ok {
				t.put(d)
				return
			}
		case tFloat, tDouble:
			if !math.IsInf(v.f, 0) && !math.IsNaN(v.f) {
				t.put(appendDotNetFloat(t.scratch[:0], v.f, v.k == tFloat))
				return
			}
		}
		s := strings.TrimSpace(textString(v))
		if isJSONNumber(s) {
			t.bs(s)
		} else {
			// Not a number JSON can carry (INF, NaN, or text that is no number at all): kept as
			// a string, which the decoder reports where a number is required.
			t.jstr(s)
		}
	case tyBool:
		switch v.k {
		case tBool, tInt:
			t.put(strconv.AppendBool(t.scratch[:0], v.i != 0))
			return
		}
		switch strings.TrimSpace(textString(v)) {
		case "true", "1":
			t.bs("true")
		case "false", "0":
			t.bs("false")
		default:
			t.jstr(textString(v))
		}
	case tyDateTime:
		t.put(appendJSONDate(t.scratch[:0], v))
	case tyChar:
		s := strings.TrimSpace(textString(v))
		if n, err := strconv.ParseUint(s, 10, 32); err == nil && n <= utf8.MaxRune {
			t.jstr(string(rune(n)))
			return
		}
		t.jstr(s)
	case tyBytes:
		b := []byte(v.s)
		if v.k != tBytes {
			d, err := base64.StdEncoding.DecodeString(strings.TrimSpace(v.s))
			if err != nil {
				t.jstr(v.s)
				return
			}
			b = d
		}
		// DataContractJsonSerializer writes byte[] as an array of numbers.
		t.b1('[')
		for i, c := range b {
			if i > 0 {
				t.b1(',')
			}
			t.put(strconv.AppendUint(t.scratch[:0], uint64(c), 10))
		}
		t.b1(']')
	case tyEnum:
		s := strings.TrimSpace(textString(v))
		if n, ok := enumValue(typ, s); ok {
			t.bs(n)
		} else if isJSONNumber(s) {
			t.bs(s)
		} else {
			t.jstr(s)
		}
	default: // tyString, tyGuid, tyDuration
		t.jstr(textString(v))
	}
}

// textString gives the text a value stands for, as the XML text form writes it.
func textString(v *xtext) string {
	switch v.k {
	case tStr:
		return v.s
	case tBool:
		if v.i != 0 {
			return "true"
		}
		return "false"
	case tInt:
		return strconv.FormatInt(v.i, 10)
	case tUint:
		return strconv.FormatUint(v.u, 10)
	case tFloat, tDouble:
		switch {
		case math.IsNaN(v.f):
			return "NaN"
		case math.IsInf(v.f, 1):
			return "INF"
		case math.IsInf(v.f, -1):
			return "-INF"
		}
		return string(appendDotNetFloat(nil, v.f, v.k == tFloat))
	case tDecimal:
		s, _ := decimalText(&v.raw)
		return s
	case tDateTime:
		return xsdDateTime(v.i)
	case tUUID:
		return guidText(&v.raw)
	case tUniqueID:
		return "urn:uuid:" + guidText(&v.raw)
	case tTimeSpan:
		return xsdDuration(v.i)
	case tBytes:
		return base64.StdEncoding.EncodeToString([]byte(v.s))
	}
	return ""
}

// guidText writes 16 bytes in .NET Guid order (the first three fields little-endian) as the
// usual lowercase form.
func guidText(b *[16]byte) string { return string(appendGUID(nil, b)) }

// appendGUID appends guidText's form of b.
func appendGUID(out []byte, b *[16]byte) []byte {
	const hex = "0123456789abcdef"
	order := [16]int{3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15}
	for i, j := range order {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			out = append(out, '-')
		}
		out = append(out, hex[b[j]>>4], hex[b[j]&15])
	}
	return out
}

// decimalText writes a DECIMAL ([MS-OAUT] 2.2.26: wReserved, scale, sign, Hi32, Lo64, little-
// endian) as .NET writes a decimal: every digit its scale keeps ("1.0000000000").
func decimalText(b *[16]byte) (string, bool) {
	d, ok := appendDecimal(nil, b)
	return string(d), ok
}

// appendDecimal appends decimalText's form of b; a value whose 96-bit integer fits in 64 bits is
// formatted without allocating.
func appendDecimal(out []byte, b *[16]byte) ([]byte, bool) {
	scale := int(b[2])
	if scale > 28 || (b[3] != 0 && b[3] != 0x80) {
		return out, false
	}
	hi := uint64(b[4]) | uint64(b[5])<<8 | uint64(b[6])<<16 | uint64(b[7])<<24
	lo := le64(string(b[8:16]))
	var buf [40]byte // 2^96 has 29 digits
	var digits []byte
	if hi == 0 {
		digits = strconv.AppendUint(buf[:0], lo, 10)
	} else {
		n := new(big.Int).SetUint64(hi)
		n.Lsh(n, 64)
		n.Or(n, new(big.Int).SetUint64(lo))
		digits = n.Append(buf[:0], 10)
	}
	if b[3] == 0x80 {
		out = append(out, '-')
	}
	if len(digits) <= scale {
		// Leading zeros: one before the point, the rest after it.
		out = append(out, '0', '.')
		for k := len(digits); k < scale; k++ {
			out = append(out, '0')
		}
		return append(out, digits...), true
	}
	out = append(out, digits[:len(digits)-scale]...)
	if scale > 0 {
		out = append(out, '.')
		out = append(out, digits[len(digits)-scale:]...)
	}
	return out, true
}

// appendDotNetFloat writes a double as .NET's round-trip format does ("R", what
// XmlConvert.ToString and the JSON serializer use): the shortest digits that read back the
// same, in exponent form ("1E+20", "1E-05") outside 1e-5 <= |x| < 1e15.
func appendDotNetFloat(b []byte, f float64, single bool) []byte {
	bits := 64
	if single {
		bits = 32
	}
	if f == 0 {
		if math.Signbit(f) {
			return append(b, "-0"...)
		}
		return append(b, '0')
	}
	e := strconv.FormatFloat(f, 'e', -1, bits) // d.ddde±XX
	mant, exps, _ := strings.Cut(e, "e")
	exp, _ := strconv.Atoi(exps)
	if exp >= -5 && exp < 15 {
		return strconv.AppendFloat(b, f, 'f', -1, bits)
	}
	b = append(b, mant...)
	b = append(b, 'E')
	if exp < 0 {
		b = append(b, '-')
		exp = -exp
	} else {
		b = append(b, '+')
	}
	if exp < 10 {
		b = append(b, '0')
	}
	return strconv.AppendInt(b, int64(exp), 10)
}

// .NET ticks: 100 ns since 0001-01-01; the Unix epoch is this many ticks.
const (
	epochTicks   = 621355968000000000
	ticksPerMS   = 10000
	ticksMask    = 1<<62 - 1
	kindUTC      = 1
	kindLocal    = 2
	maxDateTicks = 3155378975999999999 // 9999-12-31T23:59:59.9999999
)

// appendJSONDate writes a DateTime as the JSON serializer does: "/Date(ms)/" for UTC (and for an
// unspecified kind, whose clock reading is taken as UTC), "/Date(ms+hhmm)/" for a local time,
// ms being its instant.
//
// Binary XML stores a DateTime as DateTime.ToBinary does: ticks with the kind in the top two
// bits, a local time converted to UTC ticks and its offset lost ([MC-NBFX] 2.2.3.9). Such a
// time is written with "+0000": on Dataverse online the server's zone is UTC, where this is
// exact. Text XML keeps the offset ("2024-08-26T07:43:16+03:00"), and it is carried over.
func appendJSONDate(b []byte, v *xtext) []byte {
	if v.k == tDateTime {
		ticks := v.i & ticksMask
		kind := uint64(v.i) >> 62
		b = append(b, `"/Date(`...)
		b = strconv.AppendInt(b, floorDiv(ticks-epochTicks, ticksPerMS), 10)
		if kind == kindLocal {
			b = append(b, "+0000"...)
		}
		return append(b, `)/"`...)
	}
	ms, off, zone, ok := parseXSDDateTime(strings.TrimSpace(textString(v)))
	if !ok {
		return appendJSONString(b, textString(v))
	}
	b = append(b, `"/Date(`...)
	b = strconv.AppendInt(b, ms, 10)
	if zone == zoneOffset {
		sign := byte('+')
		if off < 0 {
			sign, off = '-', -off
		}
		b = append(b, sign, byte('0'+off/600), byte('0'+off/60%10), byte('0'+off%60/10), byte('0'+off%10))
	}
	return append(b, `)/"`...)
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

const (
	zoneNone = iota
	zoneUTC
	zoneOffset
)

// parseXSDDateTime reads an xsd:dateTime as DataContractSerializer writes it,
// "2024-08-26T07:43:16.1234567+03:00" (fraction and zone optional, "Z" for UTC). It returns the
// instant in Unix milliseconds (floor) and the offset in minutes.
func parseXSDDateTime(s string) (ms int64, offMin int, zone int, ok bool) {
	num := func(i, n int) (int, bool) {
		if i+n > len(s) {
			return 0, false
		}
		v := 0
		for _, c := range []byte(s[i : i+n]) {
			if c < '0' || c > '9' {
				return 0, false
			}
			v = v*10 + int(c-'0')
		}
		return v, true
	}
	if len(s) < 19 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' {
		return 0, 0, 0, false
	}
	y, ok1 := num(0, 4)
	mo, ok2 := num(5, 2)
	d, ok3 := num(8, 2)
	h, ok4 := num(11, 2)
	mi, ok5 := num(14, 2)
	se, ok6 := num(17, 2)
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) || y < 1 || mo < 1 || mo > 12 || d < 1 || d > daysIn(y, mo) || h > 23 || mi > 59 || se > 59 {
		return 0, 0, 0, false
	}
	i := 19
	var frac int64 // in ticks
	if i < len(s) && s[i] == '.' {
		i++
		start := i
		scale := int64(1000000)
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			if i-start < 7 {
				frac += int64(s[i]-'0') * scale
				scale /= 10
			}
			i++
		}
		if i == start {
			return 0, 0, 0, false
		}
	}
	switch {
	case i == len(s):
	case s[i] == 'Z' && i+1 == len(s):
		zone = zoneUTC
	case (s[i] == '+' || s[i] == '-') && len(s) == i+6 && s[i+3] == ':':
		oh, okh := num(i+1, 2)
		om, okm := num(i+4, 2)
		if !okh || !okm || oh > 14 || om > 59 {
			return 0, 0, 0, false
		}
		offMin = oh*60 + om
		if s[i] == '-' {
			offMin = -offMin
		}
		zone = zoneOffset
	default:
		return 0, 0, 0, false
	}
	days := daysFromCivil(y, mo, d)
	ticks := (((days*24+int64(h))*60+int64(mi))*60+int64(se))*10000000 + frac
	ticks -= int64(offMin) * 60 * 10000000
	return floorDiv(ticks, ticksPerMS), offMin, zone, true
}

// daysIn is the number of days in month m of year y (proleptic Gregorian): day 0 of the next
// month is the last of this one.
func daysIn(y, m int) int {
	return time.Date(y, time.Month(m)+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

// daysFromCivil counts days from 1970-01-01 to y-m-d (proleptic Gregorian).
func daysFromCivil(y, m, d int) int64 {
	return time.Date(y, time.Month(m), d, 0, 0, 0, 0, time.UTC).Unix() / 86400
}

// xsdDateTime writes a binary DateTime as text XML would.
func xsdDateTime(v int64) string {
	ticks := v & ticksMask
	if ticks > maxDateTicks {
		return strconv.FormatInt(ticks, 10)
	}
	ms := floorDiv(ticks-epochTicks, ticksPerMS)
	iso, ok := formatDate(ms)
	if !ok {
		return strconv.FormatInt(ticks, 10)
	}
	if uint64(v)>>62 == 0 {
		return strings.TrimSuffix(iso, "Z")
	}
	return iso
}

// xsdDuration writes TimeSpan ticks as XmlConvert does ("PT1H30M", "-P1DT2S", "PT0S").
func xsdDuration(ticks int64) string {
	var b []byte
	neg := ticks < 0
	u := uint64(ticks)
	if neg {
		b = append(b, '-')
		u = uint64(-ticks)
	}
	b = append(b, 'P')
	days, rest := u/864000000000, u%864000000000
	if days > 0 {
		b = strconv.AppendUint(append(b, ""...), days, 10)
		b = append(b, 'D')
	}
	if rest > 0 || days == 0 {
		b = append(b, 'T')
		h, m := rest/36000000000, rest/600000000%60
		s, f := rest/10000000%60, rest%10000000
		if h > 0 {
			b = append(strconv.AppendUint(b, h, 10), 'H')
		}
		if m > 0 {
			b = append(strconv.AppendUint(b, m, 10), 'M')
		}
		if s > 0 || f > 0 || (h == 0 && m == 0) {
			b = strconv.AppendUint(b, s, 10)
			if f > 0 {
				fs := strconv.FormatUint(f+10000000, 10)[1:]
				b = append(append(b, '.'), strings.TrimRight(fs, "0")...)
			}
			b = append(b, 'S')
		}
	}
	return string(b)
}

// isJSONNumber reports whether s is a number in JSON's grammar.
func isJSONNumber(s string) bool {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	digits := func() bool {
		j := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		return i > j
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case !digits():
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		if !digits() {
			return false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if !digits() {
			return false
		}
	}
	return i == len(s)
}

// jsonEscape marks the bytes a JSON string cannot hold as they are.
var jsonEscape = func() (t [256]bool) {
	for c := 0; c < 0x20; c++ {
		t[c] = true
	}
	t['"'], t['\\'] = true, true
	return t
}()

// appendEscape writes the JSON escape of c.
func appendEscape(b []byte, c byte) []byte {
	switch c {
	case '"', '\\':
		return append(b, '\\', c)
	case '\n':
		return append(b, '\\', 'n')
	case '\r':
		return append(b, '\\', 'r')
	case '\t':
		return append(b, '\\', 't')
	}
	const hex = "0123456789abcdef"
	return append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&15])
}

// appendJSONString writes s as a JSON string. Invalid UTF-8 is passed on: the decoder turns it
// into U+FFFD, as it does for a JSON body.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		// Eight bytes at a time while none needs escaping (stops8, from the JSON scanner).
		for i+8 <= len(s) && stops8(load8(s, i)) == 0 {
			i += 8
		}
		if i >= len(s) {
			break
		}
		c := s[i]
		if !jsonEscape[c] {
			continue
		}
		b = append(b, s[start:i]...)
		b = appendEscape(b, c)
		start = i + 1
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

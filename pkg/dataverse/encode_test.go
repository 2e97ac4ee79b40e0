package dataverse

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"encoding/xml"
	"io"
	"math"
	"math/big"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Test-only writers for the project's own corpus (testdata/servicebus): the same context in text
// XML and in binary XML, written from its JSON the way DataContractSerializer would.
//
// genXML follows DataContractSerializer's rules: members in ordinal order, base type first;
// nulls as i:nil="true"; xsi:type where the declared type is object, chosen for untyped JSON
// values as the shared corpus's generator did (a GUID-shaped string is a Guid, "/Date(...)/" a
// DateTime, an integer an int or, out of range, a long, a number with a point a decimal).
// encodeNBFX then writes that XML as [MC-NBFX] records with no dictionary, choosing text records
// by type as XmlBinaryWriter does (Int8..Int64Text, Zero/OneText, True/FalseText, DecimalText,
// DoubleText, DateTimeText, Chars8..32Text, ...WithEndElement where an element holds one text).

var guidShape = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// genXML writes the text XML form of a JSON RemoteExecutionContext.
func genXML(t testing.TB, js []byte) []byte {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(bytes.TrimPrefix(js, []byte("\xEF\xBB\xBF"))))
	dec.UseNumber()
	var ctx map[string]any
	if err := dec.Decode(&ctx); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	b.WriteString(`<RemoteExecutionContext xmlns="` + nsContracts + `" xmlns:i="` + nsXSI + `">`)
	genMembers(t, &b, contextT, ctx)
	b.WriteString(`</RemoteExecutionContext>`)
	return []byte(b.String())
}

func genMembers(t testing.TB, b *strings.Builder, typ *ty, obj map[string]any) {
	keys := make([]string, 0, len(obj))
	for k := range obj {
		if k != "__type" {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		genValue(t, b, k, "", typ.member(k), obj[k])
	}
}

// genValue writes element name (with attrs) holding v, declared as decl.
func genValue(t testing.TB, b *strings.Builder, name, attrs string, decl *ty, v any) {
	if v == nil {
		b.WriteString("<" + name + attrs + ` i:nil="true"/>`)
		return
	}
	if decl.k == tyAny {
		decl, attrs = inferType(v, attrs)
	}
	open := func() { b.WriteString("<" + name + attrs + ">") }
	closeTag := func() { b.WriteString("</" + name + ">") }
	switch decl.k {
	case tyObject:
		obj, ok := v.(map[string]any)
		if !ok {
			t.Fatalf("%s: want an object, got %T", name, v)
		}
		open()
		genMembers(t, b, decl, obj)
		closeTag()
	case tyPairs:
		item := map[*ty]string{paramsT: "KeyValuePairOfstringanyType", formattedT: "KeyValuePairOfstringstring",
			imagesT: "KeyValuePairOfstringEntitygUGIFE1S", relatedT: "KeyValuePairOfRelationshipEntityCollectionX_PsK4FkN"}[decl]
		b.WriteString("<" + name + attrs + ` xmlns:a="http://schemas.datacontract.org/2004/07/System.Collections.Generic">`)
		for _, e := range v.([]any) {
			p := e.(map[string]any)
			b.WriteString("<" + item + ">")
			genValue(t, b, "a:key", "", decl.key, p["key"])
			genValue(t, b, "a:value", "", decl.elem, p["value"])
			b.WriteString("</" + item + ">")
		}
		closeTag()
	case tyArray:
		item := map[*ty]string{entitiesT: "Entity", optionSetsT: "OptionSetValue", refsT: "EntityReference"}[decl]
		if item == "" {
			item = "c:anyType"
		}
		open()
		for _, e := range v.([]any) {
			genValue(t, b, item, "", decl.elem, e)
		}
		closeTag()
	default:
		text := genText(t, decl, v)
		if text == "" {
			b.WriteString("<" + name + attrs + "/>")
			return
		}
		open()
		xml.EscapeText(b, []byte(text))
		closeTag()
	}
}

// inferType picks the xsi:type of a value in an object slot.
func inferType(v any, attrs string) (*ty, string) {
	const xsd = ` xmlns:b="` + nsXSD + `"`
	switch x := v.(type) {
	case bool:
		return boolT, attrs + ` i:type="b:boolean"` + xsd
	case string:
		switch {
		case strings.HasPrefix(x, "/Date("):
			return dateTimeT, attrs + ` i:type="b:dateTime"` + xsd
		case guidShape.MatchString(x):
			return guidT, attrs + ` i:type="b:guid" xmlns:b="` + nsSerialization + `"`
		}
		return stringT, attrs + ` i:type="b:string"` + xsd
	case json.Number:
		if strings.ContainsAny(string(x), ".eE") {
			return decimalT, attrs + ` i:type="b:decimal"` + xsd
		}
		if n, err := x.Int64(); err == nil && n >= math.MinInt32 && n <= math.MaxInt32 {
			return intT, attrs + ` i:type="b:int"` + xsd
		}
		return intT, attrs + ` i:type="b:long"` + xsd
	case map[string]any:
		tag, _ := x["__type"].(string)
		name, ns, _ := strings.Cut(tag, ":")
		switch {
		case tag == "":
			return genericT, attrs
		case strings.HasPrefix(ns, "#"):
			typ, _ := xsiType(name, nsDataContract+ns[1:])
			return typ, attrs + ` i:type="c:` + name + `" xmlns:c="` + nsDataContract + ns[1:] + `"`
		}
		typ, _ := xsiType(name, nsContracts)
		return typ, attrs + ` i:type="` + name + `"`
	case []any:
		allOptions, allRefs := len(x) > 0, len(x) > 0
		for _, e := range x {
			m, _ := e.(map[string]any)
			_, hasValue := m["Value"]
			_, hasName := m["LogicalName"]
			allOptions = allOptions && hasValue
			allRefs = allRefs && hasName
		}
		switch {
		case allOptions:
			return optionSetsT, attrs + ` i:type="OptionSetValueCollection"`
		case allRefs:
			return refsT, attrs + ` i:type="EntityReferenceCollection"`
		}
		return anyArrayT, attrs + ` i:type="c:ArrayOfanyType" xmlns:c="` + nsArrays + `"`
	}
	return stringT, attrs
}

// genText writes a primitive as DataContractSerializer's text.
func genText(t testing.TB, typ *ty, v any) string {
	switch x := v.(type) {
	case bool:
		return strconv.FormatBool(x)
	case json.Number:
		return string(x)
	case string:
		if typ.k == tyDateTime {
			ms, off, hasOff := jsonDate(t, x)
			if !hasOff {
				return time.UnixMilli(ms).UTC().Format("2006-01-02T15:04:05.999Z")
			}
			// A local time: its clock reading in its zone, with the offset.
			return time.UnixMilli(ms).In(time.FixedZone("", off*60)).Format("2006-01-02T15:04:05.999-07:00")
		}
		return x
	}
	t.Fatalf("primitive %T", v)
	return ""
}

var jsonDateRE = regexp.MustCompile(`^/Date\((-?\d+)(?:([+-])(\d\d)(\d\d))?\)/$`)

func jsonDate(t testing.TB, s string) (ms int64, offMin int, hasOff bool) {
	m := jsonDateRE.FindStringSubmatch(s)
	if m == nil {
		t.Fatalf("not a JSON date: %q", s)
	}
	ms, _ = strconv.ParseInt(m[1], 10, 64)
	if m[2] == "" {
		return ms, 0, false
	}
	h, _ := strconv.Atoi(m[3])
	mi, _ := strconv.Atoi(m[4])
	offMin = h*60 + mi
	if m[2] == "-" {
		offMin = -offMin
	}
	return ms, offMin, true
}

// encodeNBFX writes text XML as .NET binary XML records.
func encodeNBFX(t testing.TB, text []byte) []byte {
	t.Helper()
	type node struct {
		start *xml.StartElement
		text  string
		end   bool
	}
	var nodes []node
	d := xml.NewDecoder(bytes.NewReader(text))
	for {
		tok, err := d.RawToken()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		switch x := tok.(type) {
		case xml.StartElement:
			s := x.Copy()
			nodes = append(nodes, node{start: &s})
		case xml.EndElement:
			nodes = append(nodes, node{end: true})
		case xml.CharData:
			nodes = append(nodes, node{text: string(x)})
		}
	}
	var out []byte
	str := func(s string) {
		out = binary.AppendUvarint(out, uint64(len(s))) // MultiByteInt31 is the same encoding
		out = append(out, s...)
	}
	isLetter := func(p string) bool { return len(p) == 1 && p[0] >= 'a' && p[0] <= 'z' }
	var types []*ty
	for i := 0; i < len(nodes); i++ {
		n := nodes[i]
		switch {
		case n.start != nil:
			s := n.start
			// The declared type, from the parent's, then xsi:type.
			decl := contextT
			if len(types) > 0 {
				p := types[len(types)-1]
				switch p.k {
				case tyObject:
					decl = p.member(s.Name.Local)
				case tyArray:
					decl = p.elem
				case tyPairs:
					decl = &ty{k: tyObject, name: "pair"}
				}
				if p.k == tyObject && p.name == "pair" {
					decl = map[string]*ty{"key": types[len(types)-2].key, "value": types[len(types)-2].elem}[s.Name.Local]
				}
			}
			prefix := s.Name.Space
			switch {
			case prefix == "":
				out = append(out, 0x40)
				str(s.Name.Local)
			case isLetter(prefix):
				out = append(out, 0x5E+prefix[0]-'a')
				str(s.Name.Local)
			default:
				out = append(out, 0x41)
				str(prefix)
				str(s.Name.Local)
			}
			for _, a := range s.Attr {
				switch {
				case a.Name.Space == "" && a.Name.Local == "xmlns":
					out = append(out, 0x08)
					str(a.Value)
				case a.Name.Space == "xmlns":
					out = append(out, 0x09)
					str(a.Name.Local)
					str(a.Value)
				default:
					if a.Name.Space == "i" && a.Name.Local == "type" {
						local, ns := a.Value, nsContracts
						if p, l, ok := strings.Cut(a.Value, ":"); ok {
							local = l
							for _, b := range s.Attr {
								if b.Name.Space == "xmlns" && b.Name.Local == p {
									ns = b.Value
								}
							}
						}
						decl, _ = xsiType(local, ns)
					}
					out = append(out, 0x26+a.Name.Space[0]-'a')
					str(a.Name.Local)
					if a.Value == "true" {
						out = append(out, 0x86) // TrueText
					} else {
						out = append(out, 0x98, byte(len(a.Value)))
						out = append(out, a.Value...)
					}
				}
			}
			types = append(types, decl)
			// One text then the end: the text record ends the element.
			if i+2 < len(nodes) && nodes[i+1].start == nil && !nodes[i+1].end && nodes[i+2].end {
				out = appendTextRecord(t, out, decl, nodes[i+1].text)
				types = types[:len(types)-1]
				i += 2
			}
		case n.end:
			out = append(out, 0x01)
			types = types[:len(types)-1]
		default:
			t.Fatalf("text beside elements: %q", n.text)
		}
	}
	return out
}

// appendTextRecord writes s, of type typ, as its ...WithEndElement text record.
func appendTextRecord(t testing.TB, out []byte, typ *ty, s string) []byte {
	le := func(v uint64, n int) {
		for k := 0; k < n; k++ {
			out = append(out, byte(v>>(8*k)))
		}
	}
	switch typ.k {
	case tyInt:
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatalf("int %q", s)
		}
		switch {
		case n == 0:
			return append(out, 0x81)
		case n == 1:
			return append(out, 0x83)
		case n >= math.MinInt8 && n <= math.MaxInt8:
			out = append(out, 0x89)
			le(uint64(n), 1)
		case n >= math.MinInt16 && n <= math.MaxInt16:
			out = append(out, 0x8B)
			le(uint64(n), 2)
		case n >= math.MinInt32 && n <= math.MaxInt32:
			out = append(out, 0x8D)
			le(uint64(n), 4)
		default:
			out = append(out, 0x8F)
			le(uint64(n), 8)
		}
		return out
	case tyBool:
		if s == "true" {
			return append(out, 0x87)
		}
		return append(out, 0x85)
	case tyDecimal:
		neg := strings.HasPrefix(s, "-")
		intPart, frac, _ := strings.Cut(strings.TrimPrefix(s, "-"), ".")
		v, ok := new(big.Int).SetString(intPart+frac, 10)
		if !ok || v.BitLen() > 96 {
			t.Fatalf("decimal %q", s)
		}
		var raw [16]byte
		raw[2] = byte(len(frac))
		if neg {
			raw[3] = 0x80
		}
		lo := new(big.Int).And(v, new(big.Int).SetUint64(math.MaxUint64)).Uint64()
		hi := new(big.Int).Rsh(v, 64).Uint64()
		binary.LittleEndian.PutUint32(raw[4:], uint32(hi))
		binary.LittleEndian.PutUint64(raw[8:], lo)
		return append(append(out, 0x95), raw[:]...)
	case tyDouble:
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			t.Fatalf("double %q", s)
		}
		out = append(out, 0x93)
		le(math.Float64bits(f), 8)
		return out
	case tyDateTime:
		ms, off, zone, ok := parseXSDDateTime(s)
		if !ok {
			t.Fatalf("dateTime %q", s)
		}
		ticks := uint64(ms*ticksPerMS + epochTicks)
		switch zone {
		case zoneUTC:
			ticks |= kindUTC << 62
		case zoneOffset:
			_ = off // DateTime.ToBinary: a local time is stored as UTC ticks, its offset lost
			ticks |= kindLocal << 62
		}
		out = append(out, 0x97)
		le(ticks, 8)
		return out
	}
	switch {
	case len(s) < 0x100:
		out = append(out, 0x99, byte(len(s)))
	case len(s) < 0x10000:
		out = append(out, 0x9B)
		le(uint64(len(s)), 2)
	default:
		out = append(out, 0x9D)
		le(uint64(len(s)), 4)
	}
	return append(out, s...)
}

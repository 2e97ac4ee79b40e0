package odata

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
)

// The fast paths (fixed-point numbers, column-vs-literal nodes, plain ASCII patterns, the row
// cache) must decide exactly as the general path does. These tests compare the two over many
// generated inputs; a fixed seed keeps failures reproducible.

func newRand() *rand.Rand { return rand.New(rand.NewPCG(1, 2)) }

// randomNumber returns number text of the shapes rows and filters hold, and the ones the fixed
// form must refuse: signs, leading zeros, fractions of any scale, trailing points, exponents,
// up to 22 digits.
func randomNumber(r *rand.Rand) string {
	var b strings.Builder
	switch r.IntN(6) {
	case 0:
		b.WriteByte('-')
	case 1:
		if r.IntN(4) == 0 {
			b.WriteByte('+')
		}
	}
	digits := func(n int) {
		for range n {
			if r.IntN(3) == 0 {
				b.WriteByte('0') // zeros often, so that leading and trailing zeros occur
			} else {
				b.WriteByte(byte('0' + r.IntN(10)))
			}
		}
	}
	intLen := r.IntN(12)
	if r.IntN(8) == 0 {
		intLen = 15 + r.IntN(8) // around the 19-digit limit
	}
	digits(intLen)
	if intLen == 0 || r.IntN(2) == 0 {
		b.WriteByte('.')
		digits(r.IntN(12))
		if intLen == 0 && strings.HasSuffix(b.String(), ".") {
			b.WriteByte('5')
		}
	}
	if r.IntN(10) == 0 {
		fmt.Fprintf(&b, "e%d", r.IntN(7)-3)
	}
	return b.String()
}

func TestParseFixed(t *testing.T) {
	tests := []struct {
		s     string
		m     uint64
		scale uint8
		neg   bool
		ok    bool
	}{
		{"0", 0, 0, false, true},
		{"80", 80, 0, false, true},
		{"-42", 42, 0, true, true},
		{"+7", 7, 0, false, true},
		{"1.0000000000", 10000000000, 10, false, true},
		{"125000.5000", 1250005000, 4, false, true},
		{"1.", 1, 0, false, true},
		{".5", 5, 1, false, true},
		{"007", 7, 0, false, true},
		{"9999999999999999999", 9999999999999999999, 0, false, true},
		{"99999999999999999999", 0, 0, false, false}, // 20 digits
		{"1e3", 0, 0, false, false},
		{"1.5E3", 0, 0, false, false},
		{"", 0, 0, false, false},
		{"-", 0, 0, false, false},
		{".", 0, 0, false, false},
		{"1.2.3", 0, 0, false, false},
		{"1x", 0, 0, false, false},
		{"--1", 0, 0, false, false},
	}
	for _, tt := range tests {
		got := parseFixed(tt.s)
		want := fixed{m: tt.m, scale: tt.scale, neg: tt.neg, ok: tt.ok}
		if !tt.ok {
			want = fixed{}
		}
		if got != want {
			t.Errorf("parseFixed(%q) = %+v, want %+v", tt.s, got, want)
		}
	}
}

func TestParseFixed_OnlyWhereDecimalAccepts(t *testing.T) {
	r := newRand()
	for range 20000 {
		s := randomNumber(r)
		if parseFixed(s).ok {
			if _, ok := parseDecimal(s); !ok {
				t.Fatalf("parseFixed accepts %q, parseDecimal does not", s)
			}
		}
	}
}

func TestCompareFixed_AgreesWithDecimal(t *testing.T) {
	r := newRand()
	fixedPairs := 0
	for range 50000 {
		a, b := randomNumber(r), randomNumber(r)
		if r.IntN(4) == 0 {
			b = a + strings.Repeat("0", r.IntN(3)) // equal values, often differently written
			if !strings.Contains(a, ".") && !strings.Contains(a, "e") {
				b = a + "." + strings.Repeat("0", r.IntN(3))
			}
		}
		want, wantOK := compareDecimalText(a, b)
		va, vb := numVal(a), numVal(b)
		got, gotOK := compare(&va, &vb)
		if got != want || gotOK != wantOK {
			t.Fatalf("compare(%q, %q) = %d, %v; exact decimal comparison gives %d, %v", a, b, got, gotOK, want, wantOK)
		}
		if va.num.ok && vb.num.ok {
			fixedPairs++
		}
	}
	if fixedPairs < 10000 {
		t.Fatalf("only %d pairs took the fixed path; the generator no longer exercises it", fixedPairs)
	}
}

func TestCompareFixed_Boundaries(t *testing.T) {
	tests := []struct {
		a, b string
	}{
		{"9999999999999999999", "9999999999999999999.0"},
		{"9999999999999999999", "999999999999999999.9"},
		{"1844674407370955161", "18446744073709551615"}, // the second has no fixed form
		{"0.0000000000000000001", "0"},
		{"-0", "0.000"},
		{"-0.0", "+0"},
		{"1", "0.9999999999999999999"},
		{"100", "99.999999999999999"},
		{"-100", "-99.999999999999999"},
		{"1.0000000000", "1"},
		{"150000", "150000.0000"},
	}
	for _, tt := range tests {
		for _, p := range [][2]string{{tt.a, tt.b}, {tt.b, tt.a}} {
			want, _ := compareDecimalText(p[0], p[1])
			va, vb := numVal(p[0]), numVal(p[1])
			if got, ok := compare(&va, &vb); !ok || got != want {
				t.Errorf("compare(%q, %q) = %d, %v; want %d", p[0], p[1], got, ok, want)
			}
		}
	}
}

func randomASCII(r *rand.Rand, alphabet string, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[r.IntN(len(alphabet))]
	}
	return string(b)
}

func TestLikePlainASCII_AgreesWithLike(t *testing.T) {
	r := newRand()
	const alphabet = "abAB ]^-1"
	for range 50000 {
		s := randomASCII(r, alphabet, r.IntN(8))
		p := randomASCII(r, alphabet, r.IntN(4))
		if r.IntN(3) == 0 && len(s) > 0 { // a pattern taken from the text, so matches are common
			i := r.IntN(len(s))
			p = strings.ToUpper(s[i : i+r.IntN(len(s)-i+1)])
		}
		for _, mode := range [][2]bool{{true, true}, {false, true}, {true, false}, {false, false}} {
			want := like(s, p, mode[0], mode[1])
			if got := likePlainASCII(s, strings.ToLower(p), mode[0], mode[1]); got != want {
				t.Fatalf("likePlainASCII(%q, %q, %v, %v) = %v, like gives %v", s, p, mode[0], mode[1], got, want)
			}
		}
	}
}

// rowValues are column values of every kind a row can hold, in the forms that meet each literal
// kind: numbers in several spellings, numeric text, GUID and date text, booleans, null,
// collections.
var rowValues = []any{
	nil, true, false,
	json.Number("0"), json.Number("1"), json.Number("-1"), json.Number("80"), json.Number("1.0000000000"),
	json.Number("150000"), json.Number("150000.5000"), json.Number("1.5E3"), json.Number("9007199254740993"),
	json.Number("12345678901234567890123"), 80.0, 1.5e300, int(7), int64(-7),
	"", "abc", "ABC  ", "42", " 42 ", "Contoso Ltd", "straße", "K",
	"5c1a6e7b-1f2d-4e3a-9b8c-0d1e2f3a4b5c", "{5C1A6E7B-1F2D-4E3A-9B8C-0D1E2F3A4B5C}",
	"2024-07-25T10:30:00Z", "2024-07-25", "2024-07-25T12:30:00+02:00", "2023-02-29",
	[]any{"x"}, map[string]any{"a": json.Number("1")},
}

// literals are filter literals of every kind.
var literals = []string{
	"0", "1", "-1", "80", "1.0", "1e0", "150000", "150000.5", "1500", "9007199254740992", "-0.5",
	"12345678901234567890123", "true", "false", "'abc'", "'ABC'", "'42'", "''", "'contoso ltd'",
	"'STRASSE'", "'k'", "5c1a6e7b-1f2d-4e3a-9b8c-0d1e2f3a4b5c", "00000000-0000-0000-0000-000000000000",
	"2024-07-25T10:30:00Z", "2024-07-25", "2024-07-26T00:00:00.5+01:00",
}

var opNames = []string{"eq", "ne", "gt", "ge", "lt", "le"}

// general rebuilds a column comparison as the general path evaluates it: a cmpNode over a
// column node and a literal node.
func general(n *colCmpNode) node {
	col, lit := &colNode{col: n.col}, &litNode{v: n.lit}
	if n.litLeft {
		return &cmpNode{op: n.op, l: lit, r: col}
	}
	return &cmpNode{op: n.op, l: col, r: lit}
}

func TestColumnComparison_AgreesWithGeneralNode(t *testing.T) {
	var cache RowCache
	for _, lit := range literals {
		for _, op := range opNames {
			for _, src := range []string{"x " + op + " " + lit, lit + " " + op + " x"} {
				f, err := Compile(src)
				if err != nil {
					t.Fatalf("Compile(%q): %v", src, err)
				}
				fused, ok := f.root.(*colCmpNode)
				if !ok {
					t.Fatalf("%q compiled to %T, want *colCmpNode", src, f.root)
				}
				slow := general(fused)
				for _, v := range append(rowValues, "missing") {
					row := map[string]any{"x": v}
					if v == "missing" {
						row = map[string]any{}
					}
					want := slow.test(input{row: row})
					cache.Reset(row)
					for _, in := range []input{{row: row}, {row: row, cache: &cache}, {row: row, cache: &cache}} {
						if got := fused.test(in); got != want {
							t.Fatalf("%s with x = %#v (cached %v): %v, general path gives %v", src, v, in.cache != nil, got, want)
						}
					}
				}
			}
		}
	}
}

func TestInList_FixedNumbersAgreeWithDecimal(t *testing.T) {
	r := newRand()
	for range 5000 {
		items := []string{randomNumber(r), randomNumber(r), randomNumber(r)}
		x := randomNumber(r)
		if r.IntN(2) == 0 {
			x = items[r.IntN(3)] + "0"
			if !strings.ContainsAny(x[:len(x)-1], ".e") {
				x = x[:len(x)-1] + ".0"
			}
		}
		src := "x in (" + strings.Join(items, ", ") + ")"
		f, err := Compile(src)
		if err != nil {
			continue // a generated item that is not an OData number literal (a leading '+')
		}
		want := false
		for _, it := range items {
			if c, ok := compareDecimalText(x, it); ok && c == 0 {
				want = true
			}
		}
		if got := f.Match(map[string]any{"x": json.Number(x)}); got != want {
			t.Fatalf("%s with x = %s: %v, want %v", src, x, got, want)
		}
	}
}

func TestLike_PlainPatternAgreesWithGeneralNode(t *testing.T) {
	texts := []any{"Contoso Ltd", "CONTOSO", "ltd", "", "  contoso  ", "straße", "STRASSE", "Kelvin \u212a",
		"k", "100%_[x]", nil, json.Number("1"), true}
	patterns := []string{"contoso", "LTD", "", " ", "k", "ss", "oso l", "contoso ltd", "xyz"}
	for _, fn := range []string{"contains", "startswith", "endswith"} {
		for _, p := range patterns {
			src := fmt.Sprintf("%s(x, '%s')", fn, p)
			f, err := Compile(src)
			if err != nil {
				t.Fatal(err)
			}
			fast := f.root.(*likeNode)
			if !fast.hasPlain {
				t.Fatalf("%s: pattern not taken as plain", src)
			}
			slow := &likeNode{s: fast.s, p: fast.p, leadAny: fast.leadAny, trailAny: fast.trailAny}
			for _, x := range texts {
				row := map[string]any{"x": x}
				if got, want := fast.test(input{row: row}), slow.test(input{row: row}); got != want {
					t.Errorf("%s with x = %#v: %v, general path gives %v", src, x, got, want)
				}
			}
		}
	}
	// A pattern with wildcards, or non-ASCII, is never plain.
	for _, src := range []string{"contains(x, 'a%')", "contains(x, 'a_')", "contains(x, '[a]')", "contains(x, 'ß')", "contains(x, y)"} {
		f, err := Compile(src)
		if err != nil {
			t.Fatal(err)
		}
		if f.root.(*likeNode).hasPlain {
			t.Errorf("%s: pattern taken as plain", src)
		}
	}
}

// filterTemplates are the filters of a route file: several filters read the same columns.
var filterTemplates = []string{
	"amount gt %s",
	"amount ge %s and stage in (1, 2, 3)",
	"contains(name, 'widgets') or amount lt %s",
	"not (stage eq 0) or amount le %s",
	"owner eq 5c1a6e7b-1f2d-4e3a-9b8c-0d1e2f3a4b5c and probability ne %s",
	"closes lt 2025-06-01T00:00:00Z and amount ge %s",
	"description eq null and probability gt %s",
	"tolower(name) eq '500 units of widgets' and probability lt %s",
	"startswith(step, '3') and %s le amount",
	"rate eq 1 and flag",
	"name eq step or amount eq probability",
}

func randomRow(r *rand.Rand) map[string]any {
	pick := func(vs ...any) any { return vs[r.IntN(len(vs))] }
	row := map[string]any{}
	set := func(name string, v any) {
		if r.IntN(10) > 0 { // sometimes missing
			row[name] = v
		}
	}
	set("amount", json.Number(randomNumber(r)))
	set("stage", pick(json.Number("0"), json.Number("2"), json.Number("2.0"), json.Number("4"), "2", nil))
	set("probability", pick(json.Number("80"), json.Number("50.5"), json.Number("1e2"), nil, "x"))
	set("name", pick("500 units of widgets", "500 UNITS OF WIDGETS  ", "Contoso", "", nil))
	set("step", pick("3-Propose", "4-Close", "500 units of widgets", nil))
	set("owner", pick("5C1A6E7B-1F2D-4E3A-9B8C-0D1E2F3A4B5C", "00000000-0000-0000-0000-000000000000", "not a guid", nil))
	set("closes", pick("2025-03-01T00:00:00Z", "2025-06-01", "2026-01-01T00:00:00+02:00", "never", nil))
	set("description", pick(nil, "text"))
	set("rate", pick(json.Number("1.0000000000"), json.Number("1.5"), true))
	set("flag", pick(true, false, nil, "true"))
	return row
}

func TestMatchCached_AgreesWithMatch(t *testing.T) {
	r := newRand()
	var filters []*Filter
	for _, tmpl := range filterTemplates {
		for n := 0; n < 5; {
			src := tmpl
			if strings.Contains(tmpl, "%s") {
				src = fmt.Sprintf(tmpl, randomNumber(r))
			}
			f, err := Compile(src)
			if err != nil {
				continue // a number OData does not write (".5", "1.", "+1")
			}
			filters = append(filters, f)
			n++
		}
	}
	var cache RowCache // one cache, reused row after row as a route set does
	matched := 0
	for range 2000 {
		row := randomRow(r)
		cache.Reset(row)
		for _, f := range filters {
			want := f.Match(row)
			if got := f.MatchCached(&cache); got != want {
				t.Fatalf("%s on %v: MatchCached = %v, Match = %v", f, row, got, want)
			}
			if want {
				matched++
			}
		}
	}
	if matched == 0 {
		t.Fatal("no filter ever matched; the test compares nothing but false")
	}
}

func TestMatchCached_MoreColumnsThanSlots(t *testing.T) {
	var parts []string
	row := map[string]any{}
	for i := range 3 * cacheSlots {
		name := "c" + strconv.Itoa(i)
		parts = append(parts, name+" eq "+strconv.Itoa(i))
		row[name] = json.Number(strconv.Itoa(i))
	}
	f, err := Compile(strings.Join(parts, " and "))
	if err != nil {
		t.Fatal(err)
	}
	var cache RowCache
	cache.Reset(row)
	for pass := range 2 { // the second pass reads what the first cached
		if !f.MatchCached(&cache) {
			t.Fatalf("pass %d: a filter over %d columns did not match", pass, len(parts))
		}
	}
	row["c150"] = json.Number("0")
	cache.Reset(row)
	if f.MatchCached(&cache) {
		t.Error("matched after a column changed and the cache was reset")
	}
}

func TestRowCache_ResetForgetsThePreviousRow(t *testing.T) {
	f, err := Compile("statecode eq 1")
	if err != nil {
		t.Fatal(err)
	}
	var cache RowCache
	cache.Reset(map[string]any{"statecode": json.Number("1")})
	if !f.MatchCached(&cache) {
		t.Fatal("first row did not match")
	}
	cache.Reset(map[string]any{"statecode": json.Number("2")})
	if f.MatchCached(&cache) {
		t.Error("second row matched with the first row's value")
	}
	cache.Reset(nil)
	if cache.slots != ([cacheSlots]cacheSlot{}) {
		t.Error("Reset left values of the previous row in the cache")
	}
	if f.MatchCached(&cache) {
		t.Error("a nil row matched")
	}
	var fresh RowCache // never reset: an empty row
	if f.MatchCached(&fresh) {
		t.Error("a RowCache never reset matched")
	}
}

func TestMatch_AllocatesNothing(t *testing.T) {
	f, err := Compile("statecode eq 1 and (contains(name, 'toso') or estimatedvalue gt 100000) and " +
		"_parentaccountid_value ne 00000000-0000-0000-0000-000000000000 and createdon lt 2025-01-01 and statuscode in (3, 4)")
	if err != nil {
		t.Fatal(err)
	}
	row := sampleRow()
	var cache RowCache
	if n := testing.AllocsPerRun(100, func() { f.Match(row) }); n != 0 {
		t.Errorf("Match allocates %v times per call", n)
	}
	if n := testing.AllocsPerRun(100, func() { cache.Reset(row); f.MatchCached(&cache) }); n != 0 {
		t.Errorf("MatchCached allocates %v times per call", n)
	}
}

// FuzzMatchCached checks that any filter decides the same through a RowCache as without one,
// with the cache shared by a second filter first (as a route file's filters share it).
func FuzzMatchCached(f *testing.F) {
	for _, seed := range []string{
		"statecode eq 1",
		"estimatedvalue gt 125000.5 and big ge 9007199254740993",
		"1.0 eq statecode or neg lt -41.99",
		"contains(name, 'TOSO') and startswith(name, 'c') and endswith(padded, 'C  ')",
		"_parentaccountid_value eq 5c1a6e7b-1f2d-4e3a-9b8c-0d1e2f3a4b5c and createdon lt 2025-01-01",
		"statecode in (1, 2.0, null) and not (exp ne 1500)",
		"code eq 42 and donotemail and firstname eq lastname",
	} {
		f.Add(seed)
	}
	other, err := Compile("statecode ne 0 and name eq 'x' and estimatedvalue lt 1 and code eq 42")
	if err != nil {
		f.Fatal(err)
	}
	row := sampleRow()
	f.Fuzz(func(t *testing.T, src string) {
		flt, err := Compile(src)
		if err != nil {
			return
		}
		var cache RowCache
		cache.Reset(row)
		other.MatchCached(&cache)
		for pass := range 2 {
			if got, want := flt.MatchCached(&cache), flt.Match(row); got != want {
				t.Fatalf("%s, pass %d: MatchCached = %v, Match = %v", src, pass, got, want)
			}
		}
	})
}

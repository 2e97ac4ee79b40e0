package odata

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
)

// sampleRow is a row in Web API shape (the Dataverse Web API's JSON): columns by logical name, numbers as
// json.Number, lookups as _x_value, dates as ISO 8601 UTC.
func sampleRow() map[string]any {
	return map[string]any{
		"name":                   "Contoso Ltd",
		"statecode":              json.Number("1"),
		"statuscode":             json.Number("3"),
		"estimatedvalue":         json.Number("125000.5000"),
		"big":                    json.Number("9007199254740993"),
		"exp":                    json.Number("1.5E3"),
		"neg":                    json.Number("-42"),
		"isprivate":              false,
		"donotemail":             true,
		"_parentaccountid_value": "5C1A6E7B-1F2D-4E3A-9B8C-0D1E2F3A4B5C",
		"_parentaccountid_value@Microsoft.Dynamics.CRM.lookuplogicalname": "account",
		"createdon":     "2024-07-25T10:30:00Z",
		"modifiedon":    "2024-07-26T08:00:00Z",
		"birthdate":     "1990-05-17",
		"description":   nil,
		"firstname":     "Ann",
		"lastname":      "ANN",
		"emailaddress1": "o'brien@contoso.com",
		"padded":        "abc  ",
		"code":          "42",
		"categories":    "1,3,5",
		"pattern":       "100%_[x]",
		"SdkMessage":    "Update",
		"contact_customer_accounts": []any{
			map[string]any{"contactid": "00000000-0000-0000-0000-000000000001"},
		},
	}
}

func TestMatch(t *testing.T) {
	tests := []struct {
		name, filter string
		want         bool
	}{
		// Comparison operators on numbers, compared exactly as decimals.
		{"eq int", "statecode eq 1", true},
		{"eq int other", "statecode eq 2", false},
		{"eq int as decimal", "statecode eq 1.0", true},
		{"eq int as exponent", "statecode eq 1e0", true},
		{"ne", "statecode ne 2", true},
		{"ne equal", "statecode ne 1", false},
		{"gt decimal equal", "estimatedvalue gt 125000.5", false},
		{"ge decimal equal", "estimatedvalue ge 125000.5", true},
		{"lt decimal", "estimatedvalue lt 125000.50001", true},
		{"le decimal", "estimatedvalue le 125000.4999", false},
		{"gt decimal", "estimatedvalue gt 125000", true},
		{"big exact equal", "big eq 9007199254740993", true},
		{"big differs from neighbour", "big eq 9007199254740992", false},
		{"big greater than neighbour", "big gt 9007199254740992", true},
		{"exponent in row", "exp eq 1500", true},
		{"negative", "neg lt 0", true},
		{"negative eq", "neg eq -42", true},
		{"negative vs decimal", "neg gt -42.5", true},
		{"numeric text column", "code eq 42", true},
		{"non-numeric text vs number is unknown", "categories eq 1", false},
		{"non-numeric text vs number negated stays unknown", "not (categories eq 1)", false},

		// Keywords, operators, literals and functions in any case (OData ABNF strings are
		// case-insensitive); a leading + on a number.
		{"upper-case operator", "statecode EQ 1", true},
		{"mixed-case and", "statecode eq 1 And name Eq 'Contoso Ltd'", true},
		{"mixed-case or and not", "NOT (statecode eq 2) oR false", true},
		{"mixed-case literal", "donotemail eq tRUe", true},
		{"mixed-case literal false", "donotemail eq FALSE", false},
		{"upper-case null", "NULL eq missing", true},
		{"upper-case function", "Contains(name,'contoso') and STARTSWITH(name, 'C')", true},
		{"plus sign", "statecode eq +1", true},
		{"plus sign exponent", "exp eq +1.5e+3", true},
		{"in upper case", "statecode IN (0, 1)", true},

		// in with an empty list, and with a single column operand (x in (y) is x eq y).
		{"in empty list", "statecode in ()", false},
		{"not in empty list", "not (statecode in ())", true},
		{"in parenthesized column", "code in (code)", true},
		{"in parenthesized other column", "statecode in (neg)", false},

		// Strings: case-insensitive, trailing spaces ignored, '' escapes a quote.
		{"string eq", "name eq 'Contoso Ltd'", true},
		{"string eq ignores case", "name eq 'CONTOSO LTD'", true},
		{"string eq other", "name eq 'Contoso'", false},
		{"string gt", "name gt 'contoso'", true},
		{"string lt", "name lt 'd'", true},
		{"string ge ignores case", "name ge 'CONTOSO LTD'", true},
		{"string le", "name le 'a'", false},
		{"quote escape", "emailaddress1 eq 'O''Brien@contoso.com'", true},
		{"trailing spaces ignored", "padded eq 'abc'", true},
		{"trailing spaces and case", "padded eq 'ABC '", true},
		{"leading spaces count", "padded eq ' abc'", false},
		{"sdkmessage", "SdkMessage eq 'Update'", true},

		// Null and missing columns: OData eq/ne null, otherwise SQL three-valued logic.
		{"null eq null", "description eq null", true},
		{"null ne null", "description ne null", false},
		{"missing eq null", "missing eq null", true},
		{"missing ne null", "missing ne null", false},
		{"present ne null", "name ne null", true},
		{"present eq null", "name eq null", false},
		{"null literal on the left", "null eq description", true},
		{"null eq value is unknown", "description eq 'x'", false},
		{"null ne value is unknown", "description ne 'x'", false},
		{"not unknown is unknown", "not (description eq 'x')", false},
		{"not unknown ne", "not (description ne 'x')", false},
		{"missing gt", "missing gt 1", false},
		{"not missing gt", "not (missing gt 1)", false},
		{"ordering against null is unknown", "name gt null", false},
		{"unknown or true", "description eq 'x' or statecode eq 1", true},
		{"unknown and true", "description eq 'x' and statecode eq 1", false},
		{"not (unknown or false)", "not (description eq 'x' or statecode eq 2)", false},
		{"not (unknown and false)", "not (description eq 'x' and statecode eq 2)", true},
		{"null literals", "null eq null", true},

		// Booleans.
		{"bool eq true", "donotemail eq true", true},
		{"bool eq false", "isprivate eq false", true},
		{"bool ne", "donotemail ne false", true},
		{"bare bool column", "donotemail", true},
		{"bare false column", "isprivate", false},
		{"not bool column", "not isprivate", true},
		{"not true column", "not donotemail", false},
		{"text column as condition is unknown", "name", false},
		{"not text column is unknown", "not name", false},
		{"true literal", "true", true},
		{"false literal", "false", false},
		{"bool vs number", "donotemail eq 1", true},

		// Logical operators and precedence.
		{"and", "statecode eq 1 and name ne null", true},
		{"or", "statecode eq 2 or name ne null", true},
		{"and binds tighter than or", "statecode eq 1 or statecode eq 2 and statecode eq 3", true},
		{"parentheses", "(statecode eq 1 or statecode eq 2) and statecode eq 3", false},
		{"nested parentheses", "((statecode eq 1))", true},
		{"not parenthesised", "not (statecode eq 2)", true},
		{"double not", "not not donotemail", true},
		{"whitespace and newlines", "statecode eq 1\n and\tname ne null", true},
		{"literals on both sides", "'a' eq 'A'", true},
		{"numbers on both sides", "1 eq 1.00", true},

		// in.
		{"in match", "statecode in (0, 1)", true},
		{"in no match", "statecode in (2, 3)", false},
		{"in strings ignore case", "name in ('contoso ltd', 'x')", true},
		{"in missing is unknown", "missing in (1, 2)", false},
		{"not in missing stays unknown", "not (missing in (1))", false},
		{"in with null, no match, is unknown", "statecode in (2, null)", false},
		{"not in with null stays unknown", "not (statecode in (2, null))", false},
		{"in with null, match", "statecode in (1, null)", true},
		{"not in", "not (statecode in (2, 3))", true},
		{"in guids", "_parentaccountid_value in (00000000-0000-0000-0000-000000000000, 5c1a6e7b-1f2d-4e3a-9b8c-0d1e2f3a4b5c)", true},

		// GUIDs: unquoted literals compare with text columns ignoring case.
		{"guid lower literal", "_parentaccountid_value eq 5c1a6e7b-1f2d-4e3a-9b8c-0d1e2f3a4b5c", true},
		{"guid upper literal", "_parentaccountid_value eq 5C1A6E7B-1F2D-4E3A-9B8C-0D1E2F3A4B5C", true},
		{"guid quoted", "_parentaccountid_value eq '5c1a6e7b-1f2d-4e3a-9b8c-0d1e2f3a4b5c'", true},
		{"guid ne", "_parentaccountid_value ne 00000000-0000-0000-0000-000000000000", true},
		{"guid vs non-guid text is unknown", "name eq 00000000-0000-0000-0000-000000000000", false},
		{"not guid vs non-guid text stays unknown", "not (name eq 00000000-0000-0000-0000-000000000000)", false},
		{"guid starting with letters", "_parentaccountid_value ne abcdef01-2345-6789-abcd-ef0123456789", true},
		{"guid ordering", "_parentaccountid_value gt 00000000-0000-0000-0000-000000000000", true},

		// Dates: unquoted literals compare as instants.
		{"datetime eq", "createdon eq 2024-07-25T10:30:00Z", true},
		{"datetime eq with offset", "createdon eq 2024-07-25T12:30:00+02:00", true},
		{"datetime eq negative offset", "createdon ge 2024-07-25T06:30:00-04:00", true},
		{"datetime fraction", "createdon eq 2024-07-25T10:30:00.0000000Z", true},
		{"datetime fraction ordering", "createdon gt 2024-07-25T10:29:59.999Z", true},
		{"datetime without seconds", "createdon gt 2024-07-25T10:29Z", true},
		{"date literal vs datetime", "createdon gt 2024-07-25", true},
		{"date literal upper bound", "createdon lt 2024-07-26", true},
		{"date column", "birthdate eq 1990-05-17", true},
		{"date column vs datetime", "birthdate lt 2000-01-01T00:00:00Z", true},
		{"date column vs midnight", "birthdate eq 1990-05-17T00:00:00Z", true},
		{"two date columns", "createdon lt modifiedon", true},
		{"quoted datetime text vs column", "createdon eq '2024-07-25T12:30:00+02:00'", true},
		{"date vs non-date text is unknown", "name gt 2024-01-01", false},
		{"date vs missing", "missing lt 2024-01-01", false},

		// contains, startswith, endswith: case-insensitive, SQL LIKE wildcards.
		{"contains", "contains(name, 'toso')", true},
		{"contains ignores case", "contains(name, 'TOSO')", true},
		{"contains no match", "contains(name, 'xyz')", false},
		{"contains empty", "contains(name, '')", true},
		{"startswith", "startswith(name, 'cont')", true},
		{"startswith no match", "startswith(name, 'ltd')", false},
		{"endswith", "endswith(name, 'LTD')", true},
		{"endswith no match", "endswith(name, 'contoso')", false},
		{"not contains", "not contains(name, 'x')", true},
		{"contains on missing is unknown", "contains(missing, 'x')", false},
		{"not contains on missing stays unknown", "not contains(missing, 'x')", false},
		{"contains on number is unknown", "contains(statecode, '1')", false},
		{"wildcard percent", "contains(name, 'c%d')", true},
		{"wildcard underscore", "startswith(name, 'C_nt')", true},
		{"wildcard set", "startswith(name, '[a-c]on')", true},
		{"wildcard negated set", "startswith(name, '[^c]on')", false},
		{"wildcard set ignores case", "startswith(name, '[C]on')", true},
		{"escaped percent", "contains(pattern, '[%]')", true},
		{"escaped percent and underscore", "startswith(pattern, '100[%][_]')", true},
		{"literal percent needs escaping", "startswith(name, 'Contoso%')", true},
		{"unclosed bracket is literal", "contains(pattern, '[x')", true},
		{"underscore needs a character", "endswith(name, 'Ltd_')", false},
		{"column as pattern", "contains(name, firstname)", false},

		// tolower and toupper.
		{"tolower", "tolower(name) eq 'contoso ltd'", true},
		{"toupper", "toupper(name) eq 'CONTOSO LTD'", true},
		{"tolower in contains", "contains(tolower(name), 'ltd')", true},
		{"tolower of missing", "tolower(missing) eq null", true},
		{"tolower of number is unknown", "tolower(statecode) eq '1'", false},

		// Column against column.
		{"column eq column ignores case", "firstname eq lastname", true},
		{"column ne column", "firstname ne lastname", false},
		{"number columns", "statecode lt statuscode", true},
		{"column vs null column", "name eq description", false},

		// Values that cannot be compared.
		{"collection is not null", "contact_customer_accounts eq null", false},
		{"collection ne null", "contact_customer_accounts ne null", true},
		{"collection not unknown", "not (contact_customer_accounts eq 'x')", false},
	}
	row := sampleRow()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Compile(tt.filter)
			if err != nil {
				t.Fatalf("Compile(%q): %v", tt.filter, err)
			}
			if got := f.Match(row); got != tt.want {
				t.Errorf("Match(%q) = %v, want %v", tt.filter, got, tt.want)
			}
		})
	}
}

func TestMatch_NilRowIsAllNull(t *testing.T) {
	f, err := Compile("name eq null and not (statecode eq 1)")
	if err != nil {
		t.Fatal(err)
	}
	// name eq null is true, statecode eq 1 unknown, so not(...) is unknown: no match.
	if f.Match(nil) {
		t.Error("Match(nil) = true, want false")
	}
	g, _ := Compile("name eq null")
	if !g.Match(nil) {
		t.Error("Match(nil) for name eq null = false, want true")
	}
}

func TestCompile_Errors(t *testing.T) {
	tests := []struct {
		name, filter string
		offset       int
		msg          string
	}{
		{"empty", "", 0, "empty filter"},
		{"blank", "   ", 0, "empty filter"},
		{"missing right operand", "statecode eq", 12, "value is expected"},
		{"dangling and", "statecode eq 1 and", 18, "value is expected"},
		{"symbol operator", "statecode = 1", 10, "unexpected character"},
		{"unterminated string", "name eq 'abc", 8, "unterminated"},
		{"unclosed parenthesis", "(statecode eq 1", 15, `expected ")"`},
		{"extra parenthesis", "statecode eq 1)", 14, "unexpected"},
		{"trailing operand", "statecode eq 1 statecode", 15, "unexpected"},
		{"navigation", "primarycontactid/fullname eq 'x'", 16, "navigation"},
		{"upper-case operator as a value", "statecode eq AND", 13, "found the operator"},
		{"unknown function", "foo(name)", 0, "unknown or unsupported function"},
		{"arity", "contains(name)", 0, "takes 2"},
		{"number as text argument", "contains(name, 1)", 0, "text arguments"},
		{"v3 type suffix", "statecode eq 1.5M", 16, "malformed"},
		{"malformed GUID", "accountid eq 01234567-89ab-cdef-0123-456789abcdeg", 48, "malformed GUID"},
		{"short GUID", "accountid eq 01234567-89ab", 26, "malformed GUID"},
		{"in without list", "statecode in 1", 13, `expected "("`},
		{"in with a column among literals", "statecode in (1, a)", 17, "literals only"},
		{"in with two columns", "statecode in (a, b)", 15, "stand alone"},
		{"in with an unclosed column", "statecode in (a", 15, `expected ")"`},
		{"null in empty list", "null in ()", 5, "always unknown"},
		{"in unclosed", "statecode in (1, 2", 18, `expected "," or ")"`},
		{"not boolean", "5", 0, "boolean expression"},
		{"string not boolean", "'x'", 0, "boolean expression"},
		{"not of number", "not 5", 0, "not needs a boolean"},
		{"and with number", "statecode eq 1 and 5", 15, "needs boolean"},
		{"or with string", "'a' or true", 4, "needs boolean"},
		{"invalid month", "createdon gt 2024-13-01", 13, "invalid date"},
		{"invalid day", "createdon gt 2023-02-29T00:00:00Z", 13, "invalid date"},
		{"parameter alias", "@p1 eq 1", 0, "parameter aliases"},
		{"double quotes", `name eq "x"`, 8, "single quotes"},
		{"dataverse function", "Microsoft.Dynamics.CRM.In(PropertyName='x',PropertyValues=['a'])", 0, "Dataverse query function In"},
		{"dotted name", "a.b eq 1", 0, "not a column name"},
		{"operator as value", "statecode eq and", 13, "operator"},
		{"null in", "null in (1)", 5, "always unknown"},
		{"number then dot", "statecode eq 1.", 13, "digits expected"},
		{"deep parentheses", strings.Repeat("(", maxDepth+1) + "true" + strings.Repeat(")", maxDepth+1), maxDepth, "nested deeper"},
		{"deep not", strings.Repeat("not ", maxDepth+1) + "true", 4 * maxDepth, "nested deeper"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Compile(tt.filter)
			if err == nil {
				t.Fatalf("Compile(%q) = %v, want an error", tt.filter, f)
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %T %v is not *Error", err, err)
			}
			if e.Offset != tt.offset {
				t.Errorf("Offset = %d, want %d (%v)", e.Offset, tt.offset, err)
			}
			if !strings.Contains(e.Msg, tt.msg) {
				t.Errorf("Msg = %q, want it to contain %q", e.Msg, tt.msg)
			}
		})
	}
}

func TestError_NamesTheColumn(t *testing.T) {
	_, err := Compile("statecode = 1")
	if got, want := err.Error(), "col 11: unexpected character '='"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func TestColumns_InOrderOfFirstUse(t *testing.T) {
	f, err := Compile("name eq 'x' and (statecode eq 1 or contains(name, 'y')) and _x_value eq null and firstname eq lastname")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"name", "statecode", "_x_value", "firstname", "lastname"}
	if got := f.Columns(); !slices.Equal(got, want) {
		t.Errorf("Columns() = %v, want %v", got, want)
	}
	f.Columns()[0] = "changed"
	if f.Columns()[0] != "name" {
		t.Error("Columns() exposes the filter's own slice")
	}
}

func TestString_ReturnsSource(t *testing.T) {
	const src = "statecode eq 1"
	f, err := Compile(src)
	if err != nil {
		t.Fatal(err)
	}
	if f.String() != src {
		t.Errorf("String() = %q", f.String())
	}
}

func TestLike(t *testing.T) {
	tests := []struct {
		s, p              string
		leadAny, trailAny bool
		want              bool
	}{
		{"abc", "abc", false, false, true},
		{"abc", "ABC", false, false, true},
		{"abc", "ab", false, false, false},
		{"abc", "ab", false, true, true},
		{"abc", "bc", true, false, true},
		{"abc", "b", true, true, true},
		{"abc", "%", false, false, true},
		{"", "%", false, false, true},
		{"", "_", false, false, false},
		{"abc", "a%c", false, false, true},
		{"abbbc", "a%b%c", false, false, true},
		{"abc", "a%%c", false, false, true},
		{"abc", "[a-b]bc", false, false, true},
		{"cbc", "[a-b]bc", false, false, false},
		{"cbc", "[^a-b]bc", false, false, true},
		{"ÄBC", "äbc", false, false, true},
		{"straße", "STRA_E", false, false, true},
		{"aaaaaaaaaaaaaaaaaaaaaaaab", "%a%a%a%a%b", false, false, true},
		{"aaaaaaaaaaaaaaaaaaaaaaaaa", "%a%a%a%a%b", false, false, false},
		{"a]b", "a[]]b", false, false, true},
		{"x", "[", true, true, false},
		{"[", "[", false, false, true},
	}
	for _, tt := range tests {
		if got := like(tt.s, tt.p, tt.leadAny, tt.trailAny); got != tt.want {
			t.Errorf("like(%q, %q, %v, %v) = %v, want %v", tt.s, tt.p, tt.leadAny, tt.trailAny, got, tt.want)
		}
	}
}

func TestCompareDecimal(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"1", "1.0", 0},
		{"0", "-0.000", 0},
		{"0.1", "1e-1", 0},
		{"100", "1E2", 0},
		{"9007199254740993", "9007199254740992", 1},
		{"-9007199254740993", "-9007199254740992", -1},
		{"123456789012345678901234567890", "123456789012345678901234567891", -1},
		{"0.000001", "0.00001", -1},
		{"-1", "1", -1},
		{"12.5", "12.50000", 0},
		{"007", "7", 0},
		{"1e400", "1e399", 1},
	}
	for _, tt := range tests {
		got, ok := compareDecimalText(tt.a, tt.b)
		if !ok || got != tt.want {
			t.Errorf("compareDecimalText(%q, %q) = %d, %v; want %d", tt.a, tt.b, got, ok, tt.want)
		}
	}
	for _, bad := range []string{"", "-", ".", "1e", "1x", "1e99999999999", "--1", "1.2.3"} {
		if _, ok := parseDecimal(bad); ok {
			t.Errorf("parseDecimal(%q) accepted", bad)
		}
	}
}

func TestParseDateTime(t *testing.T) {
	tests := []struct {
		s    string
		sec  int64
		nsec int32
		ok   bool
	}{
		{"1970-01-01", 0, 0, true},
		{"1970-01-01T00:00:01Z", 1, 0, true},
		{"2024-07-25T10:30:00Z", 1721903400, 0, true},
		{"2024-07-25T12:30:00+02:00", 1721903400, 0, true},
		{"2024-07-25T10:30:00.1234567Z", 1721903400, 123456700, true},
		{"2024-02-29", 1709164800, 0, true},
		{"0001-01-01T00:00:00Z", -62135596800, 0, true},
		{"2023-02-29", 0, 0, false},
		{"2024-07-25T24:00:00Z", 0, 0, false},
		{"2024-07-25T10:30:00+0200", 0, 0, false},
		{"2024-07-25T10:30:00.Z", 0, 0, false},
		{"2024-7-25", 0, 0, false},
	}
	for _, tt := range tests {
		sec, nsec, ok := parseDateTime(tt.s)
		if ok != tt.ok || sec != tt.sec || nsec != tt.nsec {
			t.Errorf("parseDateTime(%q) = %d, %d, %v; want %d, %d, %v", tt.s, sec, nsec, ok, tt.sec, tt.nsec, tt.ok)
		}
	}
}

func TestParseGUID_SQLOrder(t *testing.T) {
	// SQL Server orders uniqueidentifier by the last group first: a GUID whose last byte is
	// larger sorts after one whose first group is larger.
	a, _ := parseGUID("ffffffff-0000-0000-0000-000000000000")
	b, _ := parseGUID("00000000-0000-0000-0000-000000000001")
	if compareGUID(&a, &b) >= 0 {
		t.Error("want ffffffff-...-000000000000 < 00000000-...-000000000001 in SQL order")
	}
	c, ok := parseGUID("{5C1A6E7B-1F2D-4E3A-9B8C-0D1E2F3A4B5C}")
	d, _ := parseGUID("5c1a6e7b-1f2d-4e3a-9b8c-0d1e2f3a4b5c")
	if !ok || compareGUID(&c, &d) != 0 {
		t.Error("braced upper-case GUID should equal its lower-case form")
	}
	if _, ok := parseGUID("5c1a6e7b1f2d4e3a9b8c0d1e2f3a4b5c"); ok {
		t.Error("GUID without hyphens accepted")
	}
}

func TestFilter_ConcurrentMatch(t *testing.T) {
	f, err := Compile("statecode eq 1 and contains(name, 'toso') and createdon gt 2024-01-01")
	if err != nil {
		t.Fatal(err)
	}
	row := sampleRow()
	done := make(chan bool)
	for i := 0; i < 4; i++ {
		go func() {
			ok := true
			for j := 0; j < 1000; j++ {
				ok = ok && f.Match(row)
			}
			done <- ok
		}()
	}
	for i := 0; i < 4; i++ {
		if !<-done {
			t.Error("concurrent Match returned false")
		}
	}
}

func FuzzCompile(f *testing.F) {
	for _, seed := range []string{
		"statecode eq 1",
		"name eq 'O''Brien' and not (statecode in (0, 1, null))",
		"contains(tolower(name), 'a%b_[c-d]') or startswith(name, '[^x]')",
		"_parentaccountid_value eq 5c1a6e7b-1f2d-4e3a-9b8c-0d1e2f3a4b5c",
		"createdon ge 2024-07-25T10:30:00.123+02:00 and birthdate lt 2000-01-01",
		"big gt 9007199254740992 or estimatedvalue le -1.5e3",
		"(donotemail eq true) and (isprivate ne null)",
		"firstname eq lastname",
		"a/b eq 1",
		"((((",
		"'unterminated",
		"endswith(name,'LTD') eq true",
	} {
		f.Add(seed)
	}
	row := sampleRow()
	f.Fuzz(func(t *testing.T, src string) {
		flt, err := Compile(src)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %T is not *Error", err)
			}
			if e.Offset < 0 || e.Offset > len(src) {
				t.Fatalf("offset %d outside [0, %d]", e.Offset, len(src))
			}
			return
		}
		flt.Match(row)
		flt.Match(nil)
		flt.Columns()
	})
}

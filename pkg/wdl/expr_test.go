package wdl

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

// sampleBody is a trigger body: the row in Web API shape (the Dataverse Web API's JSON).
func sampleBody() map[string]any {
	return map[string]any{
		"name":                   "Contoso Ltd",
		"stepname":               "Won",
		"statecode":              json.Number("1"),
		"estimatedvalue":         json.Number("125000.5000"),
		"money":                  json.Number("100.0000"),
		"big":                    json.Number("9007199254740993"),
		"huge":                   json.Number("123456789012345678901234567890"),
		"donotemail":             true,
		"isprivate":              false,
		"description":            nil,
		"empty":                  "",
		"_parentaccountid_value": "5c1a6e7b-1f2d-4e3a-9b8c-0d1e2f3a4b5c",
		"createdon":              "2024-07-25T10:30:00Z",
		"SdkMessage":             "Update",
		"name@OData.Community.Display.V1.FormattedValue": "Contoso Ltd (formatted)",
		"a/b": "slash key",
		"address": map[string]any{
			"city":  "Oslo",
			"lines": []any{"Main St 1", "Box 2"},
		},
		"contacts": []any{map[string]any{"name": "Ann"}, map[string]any{"name": "Bob"}},
		"tags":     []any{"a", json.Number("1"), true},
	}
}

var fixedNow = time.Date(2024, 7, 25, 10, 0, 0, 123456700, time.UTC)

func sampleEnv() *Env {
	return &Env{Body: sampleBody(), Now: func() time.Time { return fixedNow }}
}

func TestEval(t *testing.T) {
	tests := []struct {
		name, src string
		want      any
	}{
		// Literals and the forms of a JSON string value.
		{"int literal", "@1", int64(1)},
		{"negative int", "@-5", int64(-5)},
		{"plus sign, as the designer reads it", "@+7", int64(7)},
		{"plus sign float", "@+1.5e1", 15.0},
		{"float literal", "@1.5", 1.5},
		{"leading-dot float", "@.5", 0.5},
		{"exponent is float", "@1e3", 1000.0},
		{"string literal with escaped quote", "@'it''s'", "it's"},
		{"true", "@true", true},
		{"null", "@null", nil},
		{"spaces around", "@ equals( 1 , 1 ) ", true},
		{"plain text is a literal", "plain text", "plain text"},
		{"@ later in the text is literal", " @x", " @x"},
		{"@@ escapes a leading @", "@@abc", "@abc"},
		{"@@ alone", "@@", "@"},
		{"interpolation", "a @{'b'} c", "a b c"},
		{"interpolation of a number is text", "@{1}", "1"},
		{"interpolation of a column", "n=@{triggerBody()?['statecode']}", "n=1"},
		{"interpolation of null", "[@{null}]", "[]"},
		{"interpolation of a boolean", "@{true}", "True"},
		{"interpolation escape", "x @@{y}", "x @{y}"},
		{"interpolation with braces in a string", "@{concat('}', '{')}", "}{"},
		{"function names ignore case", "@EQUALS(1, 1)", true},
		{"function names ignore case 2", "@toupper('a')", "A"},

		// Navigation into the trigger body.
		{"triggerBody ?[]", "@triggerBody()?['name']", "Contoso Ltd"},
		{"triggerBody []", "@triggerBody()['name']", "Contoso Ltd"},
		{"triggerBody .", "@triggerBody().name", "Contoso Ltd"},
		{"triggerBody ?.", "@triggerBody()?.name", "Contoso Ltd"},
		{"triggerOutputs body path", "@triggerOutputs()?['body/name']", "Contoso Ltd"},
		{"triggerOutputs body then column", "@triggerOutputs()?['body']?['name']", "Contoso Ltd"},
		{"triggerOutputs dots", "@triggerOutputs().body.name", "Contoso Ltd"},
		{"trigger outputs body", "@trigger().outputs.body.name", "Contoso Ltd"},
		{"property names ignore case", "@triggerOutputs()?['Body/Name']", "Contoso Ltd"},
		{"mixed-case column by lower case", "@triggerBody()?['sdkmessage']", "Update"},
		{"lower-case column by upper case", "@triggerBody()?['NAME']", "Contoso Ltd"},
		{"missing column is null", "@triggerBody()?['missing']", nil},
		{"null column", "@triggerBody()?['description']", nil},
		{"nested object", "@triggerBody()?['address']?['city']", "Oslo"},
		{"path into nested object", "@triggerBody()?['address/city']", "Oslo"},
		{"literal key with slash wins", "@triggerBody()?['a/b']", "slash key"},
		{"array index", "@triggerBody()?['address']?['lines'][1]", "Box 2"},
		{"array of objects", "@triggerBody()?['contacts'][0]?['name']", "Ann"},
		{"?[] index out of range", "@triggerBody()?['contacts']?[5]", nil},
		{"?[] on null", "@triggerBody()?['missing']?['x']", nil},
		{"computed key", "@triggerBody()?[concat('na', 'me')]", "Contoso Ltd"},
		{"computed path", "@triggerOutputs()?[concat('body/', 'name')]", "Contoso Ltd"},
		{"formatted value annotation", "@triggerBody()?['name@OData.Community.Display.V1.FormattedValue']", "Contoso Ltd (formatted)"},
		{"outputs has no headers here", "@triggerOutputs()?['headers']", nil},
		{"path through missing", "@triggerOutputs()?['body/missing/x']", nil},

		// equals.
		{"equals ints", "@equals(1, 1)", true},
		{"equals int and float", "@equals(1, 1.0)", true},
		{"equals differs", "@equals(1, 2)", false},
		{"equals strings are case-sensitive", "@equals('abc', 'ABC')", false},
		{"equals strings", "@equals('abc', 'abc')", true},
		{"equals number and text", "@equals(123, '123')", false},
		{"equals text and boolean", "@equals('true', true)", false},
		{"equals true and 1", "@equals(true, 1)", true},
		{"equals false and 0", "@equals(false, 0)", true},
		{"equals true and 2", "@equals(true, 2)", false},
		{"equals nulls", "@equals(null, null)", true},
		{"equals null and empty text", "@equals(null, '')", true},
		{"equals null and zero", "@equals(null, 0)", false},
		{"equals missing and null", "@equals(triggerBody()?['missing'], null)", true},
		{"equals exact big int", "@equals(triggerBody()?['big'], 9007199254740993)", true},
		{"equals big int neighbour", "@equals(triggerBody()?['big'], 9007199254740992)", false},
		{"equals money and int", "@equals(triggerBody()?['money'], 100)", true},
		{"equals number column", "@equals(triggerBody()?['statecode'], 1)", true},
		{"equals huge number as float", "@equals(triggerBody()?['huge'], 1.2345678901234568e29)", true},
		{"equals arrays", "@equals(split('a,b', ','), split('a,b', ','))", true},
		{"equals arrays in order", "@equals(split('a,b', ','), split('b,a', ','))", false},
		{"equals objects", "@equals(triggerBody()?['address'], triggerBody()?['address'])", true},
		{"equals objects differ", "@equals(triggerBody()?['address'], triggerBody()?['contacts'][0])", false},
		{"equals three", "@equals(1, 1, 1.0)", true},
		{"equals three differ", "@equals(1, 1, 2)", false},

		// Ordering.
		{"greater", "@greater(10, 5)", true},
		{"greater false", "@greater(5, 10)", false},
		{"greater mixed numbers", "@greater(2, 1.5)", true},
		{"greater text", "@greater('b', 'a')", true},
		{"greater text doc example", "@greater('apple', 'banana')", false},
		{"less ignores case", "@less('a', 'B')", true},
		{"lessOrEquals doc example", "@lessOrEquals('apply', 'apple')", false},
		{"greaterOrEquals equal", "@greaterOrEquals(5, 5)", true},
		{"greaterOrEquals ignores case", "@greaterOrEquals('abc', 'ABC')", true},
		{"lessOrEquals equal", "@lessOrEquals(10, 10)", true},
		{"less exact big int", "@less(triggerBody()?['big'], 9007199254740994)", true},
		{"greater big int than its float", "@greater(triggerBody()?['big'], 9007199254740992.0)", true},
		{"greater decimal column", "@greater(triggerBody()?['estimatedvalue'], 125000)", true},
		{"null orders as empty text", "@less(null, 'a')", true},
		{"null as empty text not greater", "@greater(null, 'a')", false},

		// Logical.
		{"and", "@and(true, true)", true},
		{"and false", "@and(true, false)", false},
		{"and many", "@and(true, true, true, false)", false},
		{"or", "@or(false, true)", true},
		{"or false", "@or(false, false)", false},
		{"not true", "@not(true)", false},
		{"not false", "@not(false)", true},
		{"and stops at false", "@and(false, int('x'))", false},
		{"or stops at true", "@or(true, int('x'))", true},
		{"if true", "@if(true, 'yes', 'no')", "yes"},
		{"if false", "@if(equals(1, 2), 'a', 'b')", "b"},
		{"if evaluates one branch", "@if(true, 'ok', int('x'))", "ok"},
		{"trigger condition example", "@or(equals(triggerOutputs()?['body/stepname'], 'Won'), equals(triggerOutputs()?['body/stepname'], 'Lost'))", true},

		// Collections.
		{"empty text", "@empty('')", true},
		{"empty non-empty text", "@empty('abc')", false},
		{"empty null", "@empty(null)", true},
		{"empty missing", "@empty(triggerBody()?['missing'])", true},
		{"empty array", "@empty(triggerBody()?['contacts'])", false},
		{"empty split of empty", "@empty(split('', ','))", false},
		{"empty body", "@empty(triggerBody())", false},
		{"empty outputs", "@empty(triggerOutputs())", false},
		{"contains substring", "@contains('hello world', 'world')", true},
		{"contains is case-sensitive", "@contains('hello world', 'WORLD')", false},
		{"contains array text", "@contains(triggerBody()?['tags'], 'a')", true},
		{"contains array number", "@contains(triggerBody()?['tags'], 1)", true},
		{"contains array boolean", "@contains(triggerBody()?['tags'], true)", true},
		{"contains array missing", "@contains(triggerBody()?['tags'], 'b')", false},
		{"contains object key", "@contains(triggerBody(), 'name')", true},
		{"contains object key ignores case", "@contains(triggerBody(), 'NAME')", true},
		{"contains object missing key", "@contains(triggerBody(), 'nope')", false},
		{"contains nested object key", "@contains(triggerBody()?['address'], 'city')", true},
		{"length text", "@length('abcd')", int64(4)},
		{"length array", "@length(split('a,b,c', ','))", int64(3)},
		{"length column array", "@length(triggerBody()?['contacts'])", int64(2)},
		{"length counts UTF-16 units", "@length('😀')", int64(2)},
		{"coalesce boolean", "@coalesce(null, true, false)", true},
		{"coalesce text", "@coalesce(null, 'hello', 'world')", "hello"},
		{"coalesce all null", "@coalesce(null, null)", nil},
		{"coalesce missing", "@coalesce(triggerBody()?['missing'], 'default')", "default"},
		{"coalesce keeps empty text", "@coalesce('', 'x')", ""},
		{"coalesce stops at first", "@coalesce('a', int('x'))", "a"},

		// Strings.
		{"startsWith ignores case", "@startsWith('hello world', 'HELLO')", true},
		{"startsWith false", "@startsWith('hello', 'world')", false},
		{"startsWith empty", "@startsWith('hello', '')", true},
		{"endsWith ignores case", "@endsWith('hello world', 'WORLD')", true},
		{"endsWith blog example", "@endsWith('Manuel T. Gomes', 'gomes')", true},
		{"endsWith false", "@endsWith('hello world', 'universe')", false},
		{"endsWith non-ASCII", "@endsWith('Ørsted', 'STED')", true},
		{"toLower", "@toLower('Hello World')", "hello world"},
		{"toUpper", "@toUpper('Hello World')", "HELLO WORLD"},
		{"trim", "@trim(' Hello World  ')", "Hello World"},
		{"concat", "@concat('Hello', 'World')", "HelloWorld"},
		{"concat converts", "@concat('a', 1, true, null, 1.5)", "a1True1.5"},
		{"concat array as JSON", "@concat('x', split('a,b', ','))", `x["a","b"]`},
		{"substring", "@substring('hello world', 6, 5)", "world"},
		{"substring to end", "@substring('hello world', 6)", "world"},
		{"substring empty", "@substring('hello', 0, 0)", ""},
		{"substring non-ASCII", "@substring('héllo', 1, 3)", "éll"},
		{"substring after surrogate pair", "@substring('😀x', 2)", "x"},
		{"indexOf", "@indexOf('hello world', 'world')", int64(6)},
		{"indexOf ignores case", "@indexOf('hello world', 'WORLD')", int64(6)},
		{"indexOf missing", "@indexOf('hello', 'x')", int64(-1)},
		{"indexOf empty", "@indexOf('hello', '')", int64(0)},
		{"indexOf counts UTF-16 units", "@indexOf('😀hello', 'h')", int64(2)},
		{"replace", "@replace('the old string', 'old', 'new')", "the new string"},
		{"replace all", "@replace('aaa', 'a', 'b')", "bbb"},
		{"replace is case-sensitive", "@replace('Old', 'old', 'new')", "Old"},
		{"replace with null", "@replace('abc', 'b', null)", "ac"},
		{"split", "@split('a_b_c', '_')", []any{"a", "b", "c"}},
		{"split without delimiter", "@split('a_b_c', ' ')", []any{"a_b_c"}},
		{"split empty delimiter", "@split('abc', '')", []any{"abc"}},
		{"split then index", "@split('a_b_c', '_')[1]", "b"},

		// Conversions.
		{"int", "@int('10')", int64(10)},
		{"int trims", "@int(' 12 ')", int64(12)},
		{"int negative", "@int('-3')", int64(-3)},
		{"int of int", "@int(12)", int64(12)},
		{"int of integral float", "@int(12.0)", int64(12)},
		{"int of column", "@int(triggerBody()?['statecode'])", int64(1)},
		{"float", "@float('10.333')", 10.333},
		{"float of integer text", "@float('10')", 10.0},
		{"float of int", "@float(3)", 3.0},
		{"string int", "@string(10)", "10"},
		{"string float", "@string(1.5)", "1.5"},
		{"string null", "@string(null)", ""},
		{"string boolean", "@string(true)", "True"},
		{"string large float", "@string(1e15)", "1E+15"},
		{"string small float", "@string(0.0001)", "0.0001"},
		{"string tiny float", "@string(0.00001)", "1E-05"},
		{"string object", "@string(triggerBody()?['address'])", `{"city":"Oslo","lines":["Main St 1","Box 2"]}`},
		{"string money", "@string(triggerBody()?['money'])", "100"},
		{"string decimal", "@string(triggerBody()?['estimatedvalue'])", "125000.5"},
		{"string big int", "@string(triggerBody()?['big'])", "9007199254740993"},
		{"string outputs", "@string(triggerOutputs()?['body/stepname'])", "Won"},
		{"bool 1", "@bool(1)", true},
		{"bool 0", "@bool(0)", false},
		{"bool -1", "@bool(-1)", true},
		{"bool text", "@bool('true')", true},
		{"bool text ignores case", "@bool('FALSE')", false},
		{"bool boolean", "@bool(true)", true},

		// Dates and times.
		{"utcNow", "@utcNow()", "2024-07-25T10:00:00.1234567Z"},
		{"utcNow format", "@utcNow('yyyy-MM-dd')", "2024-07-25"},
		{"addDays", "@addDays('2018-03-15T00:00:00Z', 10)", "2018-03-25T00:00:00.0000000Z"},
		{"addDays negative", "@addDays('2018-03-15T00:00:00Z', -5)", "2018-03-10T00:00:00.0000000Z"},
		{"addHours", "@addHours('2018-03-15T00:00:00Z', 10)", "2018-03-15T10:00:00.0000000Z"},
		{"addHours negative", "@addHours('2018-03-15T15:00:00Z', -5)", "2018-03-15T10:00:00.0000000Z"},
		{"addMinutes", "@addMinutes('2018-03-15T00:10:00Z', 10)", "2018-03-15T00:20:00.0000000Z"},
		{"addMinutes negative", "@addMinutes('2018-03-15T00:20:00Z', -5)", "2018-03-15T00:15:00.0000000Z"},
		{"addDays format", "@addDays('2018-03-15T00:00:00Z', 1, 'yyyy-MM-dd')", "2018-03-16"},
		{"addDays converts offsets to UTC", "@addDays('2018-03-15T00:00:00+02:00', 0)", "2018-03-14T22:00:00.0000000Z"},
		{"addDays of utcNow", "@addDays(utcNow(), 1, 'yyyy-MM-dd')", "2024-07-26"},
		{"addDays beyond a time.Duration", "@addDays('2018-03-15T00:00:00Z', 365242, 'yyyy-MM-dd')", "3018-03-15"},
		{"addDays fractional", "@addDays('2018-03-15T00:00:00Z', 0.5)", "2018-03-15T12:00:00.0000000Z"},
		{"addMinutes to year one", "@addMinutes('0001-01-01T00:01:00Z', -1)", "0001-01-01T00:00:00.0000000Z"},
		{"formatDateTime doc example", "@formatDateTime('03/15/2018 12:00:00', 'yyyy-MM-ddTHH:mm:ss')", "2018-03-15T12:00:00"},
		{"formatDateTime default", "@formatDateTime('2018-03-15T13:27:36Z')", "2018-03-15T13:27:36.0000000Z"},
		{"format D", "@formatDateTime('2018-03-15T13:27:36Z', 'D')", "Thursday, March 15, 2018"},
		{"format d", "@formatDateTime('2018-03-15T13:27:36Z', 'd')", "3/15/2018"},
		{"format s", "@formatDateTime('2018-03-15T13:27:36Z', 's')", "2018-03-15T13:27:36"},
		{"format u", "@formatDateTime('2018-03-15T13:27:36Z', 'u')", "2018-03-15 13:27:36Z"},
		{"format r", "@formatDateTime('2018-03-15T13:27:36Z', 'r')", "Thu, 15 Mar 2018 13:27:36 GMT"},
		{"format t", "@formatDateTime('2018-03-15T13:27:36Z', 't')", "1:27 PM"},
		{"format T", "@formatDateTime('2018-03-15T13:27:36Z', 'T')", "1:27:36 PM"},
		{"format g", "@formatDateTime('2018-03-15T13:27:36Z', 'g')", "3/15/2018 1:27 PM"},
		{"format f", "@formatDateTime('2018-03-15T13:27:36Z', 'f')", "Thursday, March 15, 2018 1:27 PM"},
		{"format M", "@formatDateTime('2018-03-15T13:27:36Z', 'M')", "March 15"},
		{"format y", "@formatDateTime('2018-03-15T13:27:36Z', 'y')", "March 2018"},
		{"format fraction", "@formatDateTime('2018-03-15T13:27:36.1234567Z', 'HH:mm:ss.fff')", "13:27:36.123"},
		{"format seven fraction digits", "@formatDateTime('2018-03-15T13:27:36.1234567Z', 'fffffff')", "1234567"},
		{"format F trims zeros", "@formatDateTime('2018-03-15T13:27:36.5Z', 'ss.FFF')", "36.5"},
		{"format F drops the point", "@formatDateTime('2018-03-15T13:27:36Z', 'ss.FFF')", "36"},
		{"format 12-hour", "@formatDateTime('2018-03-15T13:27:36Z', 'hh:mm tt')", "01:27 PM"},
		{"format midnight 12-hour", "@formatDateTime('2018-03-15T00:05:00Z', 'h:mm t')", "12:05 A"},
		{"format names", "@formatDateTime('2018-03-15T13:27:36Z', 'dddd dd MMM yy')", "Thursday 15 Mar 18"},
		{"format quoted literal", "@formatDateTime('2018-03-15T13:27:36Z', '''Day'' d')", "Day 15"},
		{"format escaped character", "@formatDateTime('2018-03-15T13:27:36Z', 'HH\\h')", "13h"},
		{"format K and zzz", "@formatDateTime('2018-03-15T13:27:36Z', 'K zzz')", "Z +00:00"},
		{"format single custom specifier", "@formatDateTime('2018-03-15T13:27:36Z', '%d')", "15"},
		{"format offset input", "@formatDateTime('2024-07-25T12:30:00.5+02:00', 'o')", "2024-07-25T10:30:00.5000000Z"},
		{"format US input with PM", "@formatDateTime('3/5/2018 1:05 PM', 's')", "2018-03-05T13:05:00"},
		{"format date only keeps no zone", "@formatDateTime('2024-07-25')", "2024-07-25T00:00:00.0000000"},
		{"format zoned input keeps Z", "@formatDateTime('2024-07-25T00:00Z')", "2024-07-25T00:00:00.0000000Z"},
		{"format column", "@formatDateTime(triggerBody()?['createdon'], 'yyyy')", "2024"},
		{"ticks", "@ticks('2018-03-15T13:27:36Z')", int64(636567172560000000)},
		{"ticks of year one", "@ticks('0001-01-01T00:00:00Z')", int64(0)},
		{"ticks fraction", "@ticks('2024-07-25T10:30:00.1234567Z')", int64(638575002001234567)},
		{"ticks compare", "@greater(ticks(triggerBody()?['createdon']), ticks('2024-01-01'))", true},
	}
	env := sampleEnv()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := Compile(tt.src)
			if err != nil {
				t.Fatalf("Compile(%q): %v", tt.src, err)
			}
			got, err := e.Eval(env)
			if err != nil {
				t.Fatalf("Eval(%q): %v", tt.src, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Eval(%q) = %#v, want %#v", tt.src, got, tt.want)
			}
		})
	}
}

func TestEval_ReturnsRowValues(t *testing.T) {
	env := sampleEnv()
	e, _ := Compile("@triggerBody()")
	got, err := e.Eval(env)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, env.Body) {
		t.Errorf("triggerBody() = %v, want the body", got)
	}
	e, _ = Compile("@triggerOutputs()")
	got, _ = e.Eval(env)
	if m, ok := got.(map[string]any); !ok || !reflect.DeepEqual(m["body"], env.Body) {
		t.Errorf("triggerOutputs() = %v, want {body: Body}", got)
	}
}

func TestEval_RuntimeErrors(t *testing.T) {
	tests := []struct {
		name, src string
		offset    int
		msg       string
	}{
		{"missing property without ?", "@triggerBody()['missing']", 14, "property 'missing' doesn't exist"},
		{"property of null without ?", "@triggerBody()?['missing']['x']", 26, "null value"},
		{"index out of range", "@triggerBody()?['contacts'][5]", 27, "out of range"},
		{"index into text", "@triggerBody()?['name'][0]", 23, "String"},
		{"array by name", "@triggerBody()?['contacts']['x']", 27, "indexed by an integer"},
		{"object by number", "@triggerBody()?[1]", 14, "property names are strings"},
		{"null column without ?", "@triggerBody()['description']['x']", 29, "null value"},
		{"greater text and number", "@greater('10', 9)", 1, "matching types"},
		{"greater null and number", "@greater(null, 1)", 1, "got Null"},
		{"greater booleans", "@greater(true, false)", 1, "Boolean"},
		{"less arrays", "@less(split('a', ','), 1)", 1, "Array"},
		{"and non-boolean", "@and(true, 1)", 1, "boolean"},
		{"and error after true", "@and(true, int('x'))", 11, "cannot convert"},
		{"or non-boolean", "@or(false, 'true')", 1, "boolean"},
		{"not number", "@not(1)", 1, "boolean"},
		{"not null", "@not(null)", 1, "Null"},
		{"if non-boolean", "@if('true', 1, 2)", 1, "boolean"},
		{"empty number", "@empty(1)", 1, "Integer"},
		{"contains null", "@contains(null, 'x')", 1, "Null"},
		{"contains number", "@contains(5, 5)", 1, "Integer"},
		{"contains text with number", "@contains('abc', 1)", 1, "Integer"},
		{"endsWith number", "@endsWith('abc', 1)", 1, "second parameter"},
		{"startsWith null", "@startsWith(null, 'x')", 1, "first parameter"},
		{"toLower null", "@toLower(null)", 1, "Null"},
		{"trim number", "@trim(1)", 1, "Integer"},
		{"length null", "@length(null)", 1, "array or a string, got Null"},
		{"length object", "@length(triggerBody())", 1, "Object"},
		{"substring too long", "@substring('hello', 3, 5)", 1, "exceeds"},
		{"substring negative", "@substring('hello', -1)", 1, "outside"},
		{"substring past end", "@substring('hello', 6)", 1, "outside"},
		{"substring null", "@substring(null, 0)", 1, "Null"},
		{"substring text index", "@substring('hello', '1')", 1, "integer"},
		{"indexOf number", "@indexOf(1, 'x')", 1, "Integer"},
		{"replace empty", "@replace('abc', '', 'x')", 1, "non-empty"},
		{"split null", "@split(null, ',')", 1, "Null"},
		{"int decimal text", "@int('1.5')", 1, "cannot convert"},
		{"int fraction", "@int(1.5)", 1, "cannot convert"},
		{"int word", "@int('abc')", 1, "cannot convert"},
		{"int null", "@int(null)", 1, "Null"},
		{"int overflow", "@int('99999999999999999999')", 1, "cannot convert"},
		{"float word", "@float('abc')", 1, "cannot convert"},
		{"float NaN", "@float('NaN')", 1, "cannot convert"},
		{"bool word", "@bool('yes')", 1, "cannot convert"},
		{"bool null", "@bool(null)", 1, "Null"},
		{"utcNow non-text format", "@utcNow(triggerBody()?['statecode'])", 1, "string"},
		{"addDays past the last date", "@addDays('9999-12-31T00:00:00Z', 1)", 1, "outside the range"},
		{"addHours huge", "@addHours('2018-03-15T00:00:00Z', 9223372036854775807)", 1, "outside the range"},
		{"addDays huge float", "@addDays('2018-03-15T00:00:00Z', 1e300)", 1, "outside the range"},
		{"addDays bad timestamp", "@addDays(triggerBody()?['name'], 1)", 1, "cannot parse"},
		{"addDays text amount", "@addDays('2018-03-15', 'x')", 1, "number"},
		{"formatDateTime bad timestamp", "@formatDateTime(triggerBody()?['name'])", 1, "cannot parse"},
		{"formatDateTime invalid day", "@formatDateTime(concat('2023-02-2', triggerBody()?['statecode'], '9'))", 1, "cannot parse"},
		{"formatDateTime unknown standard format", "@formatDateTime('2018-03-15', substring(triggerBody()?['name'], 0, 1))", 1, "format"},
		{"formatDateTime too many f", "@formatDateTime('2018-03-15', concat('ffffffff', triggerBody()?['empty']))", 1, "7 fraction"},
		{"formatDateTime unterminated quote", "@formatDateTime('2018-03-15', concat('''abc', triggerBody()?['empty']))", 1, "unterminated"},
		{"formatDateTime null", "@formatDateTime(triggerBody()?['description'])", 1, "Null"},
		{"ticks number", "@ticks(triggerBody()?['statecode'])", 1, "Integer"},
		{"nested error keeps its offset", "@equals(1, length(null))", 11, "length"},
	}
	env := sampleEnv()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := Compile(tt.src)
			if err != nil {
				t.Fatalf("Compile(%q): %v", tt.src, err)
			}
			got, err := e.Eval(env)
			if err == nil {
				t.Fatalf("Eval(%q) = %#v, want an error", tt.src, got)
			}
			wantError(t, err, tt.offset, tt.msg)
		})
	}
}

func TestCompile_Errors(t *testing.T) {
	tests := []struct {
		name, src string
		offset    int
		msg       string
	}{
		{"bare @", "@", 1, "expression expected"},
		{"unclosed call", "@equals(1,1", 11, `expected "," or ")"`},
		{"extra parenthesis", "@equals(1,1))", 12, "unexpected"},
		{"trailing words", "@equals(1, 1) and", 14, "unexpected"},
		{"unknown function", "@foo(1)", 1, "unknown or unsupported function foo()"},
		{"workflow function", "@variables('x')", 1, "not available"},
		{"app setting", "@appsetting('x')", 1, "appsetting() is not available in a dvrouter condition"},
		{"XML", "@xml('<a/>')", 1, "XML values are not supported"},
		{"binary", "@base64ToBinary('aGVsbG8=')", 1, "binary content is not supported"},
		{"literal timestamp checked at compile time", "@addDays('x', 1)", 9, "addDays cannot parse 'x' as a timestamp"},
		{"literal invalid day", "@formatDateTime('2023-02-29')", 16, "cannot parse"},
		{"literal format checked", "@formatDateTime('2018-03-15', 'Q')", 30, "does not know the format 'Q'"},
		{"literal too many f", "@formatDateTime('2018-03-15', 'ffffffff')", 30, "7 fraction"},
		{"literal unterminated quote", "@formatDateTime('2018-03-15', '''abc')", 30, "unterminated"},
		{"literal null timestamp", "@formatDateTime(null)", 16, "Null"},
		{"literal number timestamp", "@ticks(1)", 7, "Integer"},
		{"literal utcNow format type", "@utcNow(1)", 8, "string"},
		{"unknown locale", "@formatDateTime('2018-03-15', 'D', 'xx-YY')", 35, "does not know the locale 'xx-YY'"},
		{"locale not carried", "@float('1,5', 'ja-JP')", 14, "dvrouter carries de-DE, en-US, es-ES, fr-FR, is-IS and the invariant culture"},
		{"unknown time zone", "@convertFromUtc('2018-01-01T08:00:00Z', 'Mars Standard Time')", 40, "does not know the time zone 'Mars Standard Time'"},
		{"unknown time unit", "@addToTime('2018-01-01', 1, 'Fortnight')", 28, "does not know the time unit 'Fortnight'"},
		{"unknown guid format", "@guid('Q')", 6, "GUID format"},
		{"convertTimeZone arity", "@convertTimeZone('2018-01-01', 'UTC')", 1, "takes 3 to 4"},
		{"action outputs", "@body('Get_row')", 1, "not available"},
		{"too few arguments", "@equals(1)", 1, "takes at least 2"},
		{"too many arguments", "@not(true, false)", 1, "takes 1"},
		{"if arity", "@if(true, 1)", 1, "takes 3"},
		{"utcNow arity", "@utcNow('o', 1)", 1, "0 to 1"},
		{"unterminated string", "@'abc", 1, "unterminated"},
		{"dangling ?", "@triggerBody()?", 14, "? must be followed"},
		{"unclosed index", "@triggerBody()['x'", 18, `expected "]"`},
		{"dot without name", "@triggerBody().", 15, "property name expected"},
		{"bare name", "@name", 1, "unknown name"},
		{"array literal", "@[1,2]", 1, "array literals"},
		{"double quotes", `@"x"`, 1, "single quotes"},
		{"malformed number", "@1x", 1, "malformed number"},
		{"integer overflow", "@99999999999999999999", 1, "64-bit range"},
		{"empty argument", "@equals(1,,2)", 10, "unexpected"},
		{"trailing comma", "@equals(1,2,)", 12, "unexpected"},
		{"lone minus", "@-", 1, "malformed number"},
		{"unclosed interpolation", "text @{equals(1,1)", 18, `expected "}"`},
		{"empty interpolation", "@{}", 2, "unexpected"},
		{"interpolation with two expressions", "@{1 2}", 4, `expected "}"`},
		{"deep nesting", "@" + strings.Repeat("not(", maxDepth+1) + "true" + strings.Repeat(")", maxDepth+1), 1 + 4*maxDepth, "nested deeper"},
		{"long index chain", "@triggerBody()" + strings.Repeat("?[0]", maxDepth+1), 14 + 4*(maxDepth-1) + 2, "nested deeper"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := Compile(tt.src)
			if err == nil {
				t.Fatalf("Compile(%q) = %v, want an error", tt.src, e)
			}
			wantError(t, err, tt.offset, tt.msg)
		})
	}
}

// wantError checks err is an *Error at offset whose message contains msg.
func wantError(t *testing.T, err error, offset int, msg string) {
	t.Helper()
	var ee *Error
	if !errors.As(err, &ee) {
		t.Fatalf("error %T is not *Error", err)
	}
	if ee.Offset != offset {
		t.Errorf("Offset = %d, want %d (%v)", ee.Offset, offset, err)
	}
	if !strings.Contains(ee.Msg, msg) {
		t.Errorf("Msg = %q, want it to contain %q", ee.Msg, msg)
	}
}

func TestError_NamesTheColumn(t *testing.T) {
	_, err := Compile("@foo()")
	if got, want := err.Error(), "col 2: unknown or unsupported function foo(); see pkg/wdl/README.md for the supported list"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func TestBool(t *testing.T) {
	tests := []struct {
		name, src string
		want      bool
		err       string // substring of the error, "" for none
	}{
		{"true", "@equals(1, 1)", true, ""},
		{"false", "@equals(1, 2)", false, ""},
		{"boolean column", "@triggerBody()?['donotemail']", true, ""},
		{"interpolated condition is text True", "@{equals(1, 1)}", true, ""},
		{"interpolated condition is text False", "@{equals(1, 2)}", false, ""},
		{"text is not a condition", "@'x'", false, "not a boolean"},
		{"missing @ is a literal", "equals(1, 1)", false, "an expression starts with @"},
		{"null is not a condition", "@triggerBody()?['missing']", false, "Null"},
		{"run-time error", "@int('x')", false, "cannot convert"},
		{"power automate example won", "@or(equals(triggerOutputs()?['body/stepname'], 'Won'), equals(triggerOutputs()?['body/stepname'], 'Lost'))", true, ""},
		{"sdk message", "@equals(triggerOutputs()?['body/SdkMessage'], 'Update')", true, ""},
		{"not empty column", "@not(empty(triggerOutputs()?['body/name']))", true, ""},
		{"null column is empty", "@empty(triggerOutputs()?['body/description'])", true, ""},
	}
	env := sampleEnv()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := Compile(tt.src)
			if err != nil {
				t.Fatalf("Compile(%q): %v", tt.src, err)
			}
			got, err := e.Bool(env)
			if tt.err == "" {
				if err != nil || got != tt.want {
					t.Errorf("Bool(%q) = %v, %v; want %v", tt.src, got, err, tt.want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("Bool(%q) error = %v, want one containing %q", tt.src, err, tt.err)
			}
			if got {
				t.Errorf("Bool(%q) = true alongside an error", tt.src)
			}
		})
	}
}

func TestEval_NilEnvAndNilBody(t *testing.T) {
	tests := []struct {
		src  string
		want any
	}{
		{"@triggerBody()", nil},
		{"@triggerBody()?['x']", nil},
		{"@triggerOutputs()?['body/x']", nil},
		{"@empty(triggerBody())", true},
	}
	for _, tt := range tests {
		e, err := Compile(tt.src)
		if err != nil {
			t.Fatal(err)
		}
		for _, env := range []*Env{nil, {}} {
			got, err := e.Eval(env)
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Eval(%q, %v) = %#v, %v; want %#v", tt.src, env, got, err, tt.want)
			}
		}
	}
	e, _ := Compile("@triggerOutputs()['body']['x']")
	if _, err := e.Eval(nil); err == nil {
		t.Error("triggerOutputs()['body']['x'] without a body: want an error")
	}
}

func TestEnv_ReusedForAnotherRow(t *testing.T) {
	e, err := Compile("@triggerBody()?['sdkmessage']")
	if err != nil {
		t.Fatal(err)
	}
	env := &Env{Body: map[string]any{"SdkMessage": "Create"}}
	if got, _ := e.Eval(env); got != "Create" {
		t.Fatalf("first row: %v", got)
	}
	env.Body = map[string]any{"SDKMESSAGE": "Delete"}
	if got, _ := e.Eval(env); got != "Delete" {
		t.Errorf("second row: %v, want Delete (the case index must follow the new body)", got)
	}
}

func TestExpr_ConcurrentBool(t *testing.T) {
	e, err := Compile("@and(equals(triggerBody()?['sdkmessage'], 'Update'), greater(triggerBody()?['estimatedvalue'], 1))")
	if err != nil {
		t.Fatal(err)
	}
	env := sampleEnv()
	var wg sync.WaitGroup
	failures := make(chan error, 4)
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 500; j++ {
				if ok, err := e.Bool(env); !ok || err != nil {
					failures <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(failures)
	for err := range failures {
		t.Errorf("concurrent Bool failed: %v", err)
	}
}

func TestString_ReturnsSource(t *testing.T) {
	const src = "@equals(1, 1)"
	e, err := Compile(src)
	if err != nil {
		t.Fatal(err)
	}
	if e.String() != src {
		t.Errorf("String() = %q", e.String())
	}
}

func FuzzCompile(f *testing.F) {
	for _, seed := range []string{
		"@or(equals(triggerOutputs()?['body/stepname'], 'Won'), equals(triggerOutputs()?['body/stepname'], 'Lost'))",
		"@and(greater(triggerBody()?['estimatedvalue'], 1.5e3), not(empty(triggerBody()?['name'])))",
		"@if(contains(triggerBody()?['tags'], 1), substring('hello', 1, 2), coalesce(null, 'x'))",
		"@formatDateTime(addDays(utcNow(), -1), 'dddd, MMMM d, yyyy h:mm:ss.FFF tt K')",
		"Total: @{triggerBody()?['statecode']} @@{literal}",
		"@ticks(triggerBody()?['createdon'])",
		"@triggerBody()?['contacts'][0].name",
		"@split(toLower(trim(' A,B ')), ',')[1]",
		"@int(string(length(concat('a', 1, true, null))))",
		"@equals(bool('TRUE'), float('1'))",
		"@replace(indexOf('abc', 'B'), 'a', 'b')",
		"@@",
		"@{",
		"@'",
		"@((",
		"@contains(createArray(1, 2), triggerOutputs()?['body/statecode'])",
		"@formatNumber(add(mul(1.5, 2), decimal('0.125')), '#,##0.00;(0.0);zero', 'de-DE')",
		"@parseDateTime('martes 20 octubre 2020 13:05', 'es-es', 'dddd d MMMM yyyy HH:mm')",
		"@convertTimeZone(addToTime(utcNow(), 1, 'Month'), 'UTC', 'Pacific Standard Time', 'F')",
		"@float('12345,6,78,-', 'fr-FR')",
		"@join(sort(union(createArray(3, 1), range(0, 3))), ',')",
		"@uriQuery(concat('https://x/?a=', uriComponent(base64ToString(base64('é')))))",
		"@dateDifference(getPastTime(1, 'Week'), startOfDay(utcNow()))",
		"@setProperty(json('{\"a\":[1]}'), 'b', slice(nthIndexOf('aaa', 'a', -2), 1))",
		"@+7",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, src string) {
		e, err := Compile(src)
		if err != nil {
			checkError(t, err, src)
			return
		}
		for _, env := range []*Env{sampleEnv(), nil} {
			if _, err := e.Eval(env); err != nil {
				checkError(t, err, src)
			}
			if _, err := e.Bool(env); err != nil {
				var ee *Error
				if !errors.As(err, &ee) {
					t.Fatalf("Bool error %T is not *Error", err)
				}
			}
		}
	})
}

func checkError(t *testing.T, err error, src string) {
	t.Helper()
	var ee *Error
	if !errors.As(err, &ee) {
		t.Fatalf("error %T is not *Error: %v", err, err)
	}
	if ee.Offset < 0 || ee.Offset > len(src) {
		t.Fatalf("offset %d outside [0, %d]: %v", ee.Offset, len(src), err)
	}
}

func TestCompile_FoldsConstantCalls(t *testing.T) {
	e, err := Compile("@ticks('2025-06-01T00:00:00Z')")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := e.root.(*litNode); !ok {
		t.Errorf("ticks of a literal compiled to %T, want a literal", e.root)
	}
	// A failing constant call is kept: it must fail only when evaluated.
	e, err = Compile("@if(true, 'ok', int('x'))")
	if err != nil {
		t.Fatal(err)
	}
	if v, err := e.Eval(nil); err != nil || v != "ok" {
		t.Errorf("Eval = %v, %v; want ok", v, err)
	}
	// Arrays are not shared between evaluations.
	e, _ = Compile("@split('a,b', ',')")
	a, _ := e.Eval(nil)
	a.([]any)[0] = "changed"
	if b, _ := e.Eval(nil); b.([]any)[0] != "a" {
		t.Error("a second evaluation returned the first one's array")
	}
}

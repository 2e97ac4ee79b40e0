package wdl

import (
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
)

// referenceFunctions is the alphabetical list of Microsoft's expression functions reference
// (https://learn.microsoft.com/azure/logic-apps/expression-functions-reference), 2025 revision,
// plus appsetting (Logic Apps Standard).
var referenceFunctions = strings.Fields(`action actionBody actionOutputs actions add addDays addHours
	addMinutes addProperty addSeconds addToTime and appsetting array base64 base64ToBinary
	base64ToString binary body bool chunk coalesce concat contains convertFromUtc convertTimeZone
	convertToUtc createArray dataUri dataUriToBinary dataUriToString dateDifference dayOfMonth
	dayOfWeek dayOfYear decimal decodeBase64 decodeDataUri decodeUriComponent div
	encodeUriComponent empty endsWith equals first float formatDateTime formDataMultiValues
	formDataValue formatNumber getFutureTime getPastTime greater greaterOrEquals guid if indexOf
	int intersection isFloat isInt item items iterationIndexes join json last lastIndexOf length
	less lessOrEquals listCallbackUrl max min mod mul multipartBody not nthIndexOf or outputs
	parameters parseDateTime rand range removeProperty replace result reverse setProperty skip
	slice sort split startOfDay startOfHour startOfMonth startsWith string sub substring
	subtractFromTime take ticks toLower toUpper trigger triggerBody triggerFormDataMultiValues
	triggerFormDataValue triggerMultipartBody triggerOutputs trim union uriComponent
	uriComponentToBinary uriComponentToString uriHost uriPath uriPathAndQuery uriPort uriQuery
	uriScheme utcNow variables workflow xml xpath`)

func TestLibrary_EveryReferenceFunctionIsKnown(t *testing.T) {
	for _, name := range referenceFunctions {
		lower := strings.ToLower(name)
		_, supported := functions[lower]
		why, refused := unavailable[lower]
		switch {
		case supported && refused:
			t.Errorf("%s is both supported and refused", name)
		case !supported && !refused:
			t.Errorf("%s is neither supported nor refused with a reason", name)
		case refused && why == "":
			t.Errorf("%s is refused without a reason", name)
		}
	}
	for lower, spec := range functions {
		found := false
		for _, name := range referenceFunctions {
			if strings.ToLower(name) == lower {
				found = true
			}
		}
		if !found {
			t.Errorf("%s is supported but not in the reference list", spec.name)
		}
	}
}

func TestEval_Library(t *testing.T) {
	tests := []struct {
		name, src string
		want      any
	}{
		// Math.
		{"add ints", "@add(2, 3)", int64(5)},
		{"add column", "@add(triggerBody()?['statecode'], 1)", int64(2)},
		{"sub ints", "@sub(2, 5)", int64(-3)},
		{"mul float", "@mul(2.5, 2)", 5.0},
		{"div ints truncates", "@div(-7, 2)", int64(-3)},
		{"mod float", "@mod(5.5, 2)", 1.5},
		{"max mixed", "@max(1, 2.5, 2)", 2.5},
		{"min array of row values", "@min(triggerBody()?['tags'][1], 0)", int64(0)},
		{"decimal keeps digits", "@string(decimal('100.10'))", "100.10"},
		{"decimal arithmetic", "@string(sub(decimal('0.3'), decimal('0.1')))", "0.2"},
		{"decimal division", "@string(div(decimal('1'), decimal('3')))", "0.3333333333333333333333333333"},
		{"decimal with int", "@string(mul(decimal('1.5'), 3))", "4.5"},
		{"decimal compares exactly", "@equals(decimal('0.3'), add(decimal('0.1'), decimal('0.2')))", true},
		{"decimal greater than float", "@greater(decimal('0.30000000000000001'), 0.3)", false},
		{"decimal with float is float", "@add(decimal('1.5'), 0.25)", 1.75},
		{"int of a whole decimal", "@int(decimal('12.000'))", int64(12)},
		{"bool of a decimal", "@bool(decimal('0.0'))", false},
		{"range", "@range(-1, 3)", []any{int64(-1), int64(0), int64(1)}},
		{"range empty", "@range(5, 0)", []any{}},

		// Collections.
		{"createArray of mixed", "@createArray(1, 'a', null, true)", []any{int64(1), "a", nil, true}},
		{"the status-is-one-of check", "@contains(createArray(1, 2), triggerOutputs()?['body/statecode'])", true},
		{"first of empty", "@first(createArray())", nil},
		{"last of text", "@last('😀')", "😀"},
		{"take more than there is", "@take(createArray(1, 2), 5)", []any{int64(1), int64(2)}},
		{"skip all", "@skip('abc', 10)", ""},
		{"join numbers", "@join(createArray(1, 2.5, true, null), '|')", "1|2.5|True|"},
		{"union keeps first-seen order", "@union(createArray(3, 1), createArray(1, 2, 3))", []any{int64(3), int64(1), int64(2)}},
		{"union of objects, last wins", "@union(json('{\"a\":1,\"b\":1}'), json('{\"b\":2}'))", map[string]any{"a": int64(1), "b": int64(2)}},
		{"intersection of objects", "@intersection(json('{\"a\":1,\"b\":1}'), json('{\"b\":1,\"c\":3}'))", map[string]any{"b": int64(1)}},
		{"sort strings ordinally", "@sort(createArray('b', 'a', 'B'))", []any{"B", "a", "b"}},
		{"sort is stable by key", "@join(sort(createArray(json('{\"k\":2,\"n\":\"x\"}'), json('{\"k\":1,\"n\":\"y\"}'), json('{\"k\":2,\"n\":\"z\"}')), 'k'), ',')", `{"k":1,"n":"y"},{"k":2,"n":"x"},{"k":2,"n":"z"}`},
		{"reverse leaves the row alone", "@reverse(triggerBody()?['tags'])[0]", true},
		{"chunk counts UTF-16 units", "@chunk('ab😀', 2)", []any{"ab", "😀"}},
		{"json number is an integer", "@json('42')", int64(42)},
		{"json of null is an empty object", "@json(null)", map[string]any{}},
		{"setProperty replaces ignoring case", "@setProperty(json('{\"Name\":\"a\"}'), 'name', 'b')", map[string]any{"name": "b"}},
		{"removeProperty of a missing property", "@removeProperty(json('{\"a\":1}'), 'b')", map[string]any{"a": int64(1)}},
		{"addProperty on the row copies it", "@length(string(addProperty(triggerBody()?['address'], 'zip', '0150')))", int64(58)},

		// Strings.
		{"lastIndexOf ignores case", "@lastIndexOf('abcABC', 'b')", int64(4)},
		{"nthIndexOf from the end", "@nthIndexOf('a-b-c', '-', -1)", int64(3)},
		{"nthIndexOf overlapping", "@nthIndexOf('aaa', 'aa', 2)", int64(1)},
		{"slice negative both", "@slice('Hello', -3, -1)", "ll"},
		{"isInt negative", "@isInt('-42')", true},
		{"isInt decimal text", "@isInt('4.2')", false},
		{"isFloat word", "@isFloat('abc')", false},
		{"isFloat trailing sign", "@isFloat('5-')", true},
		{"float with exponent", "@float('1.5e3')", 1500.0},
		{"float in French with a plain space", "@float('1 234,5', 'fr-FR')", 1234.5},
		{"float in French with its separator", "@float('1\u202f234,5', 'fr-FR')", 1234.5},
		{"float of the invariant culture", "@float('1,234.5', '')", 1234.5},

		// Encodings and URIs.
		{"base64 of UTF-8", "@base64('é')", "w6k="},
		{"base64ToString", "@base64ToString('w6k=')", "é"},
		{"decodeBase64 is base64ToString", "@decodeBase64('aGVsbG8=')", "hello"},
		{"dataUriToString percent-encoded", "@dataUriToString('data:,a%20b')", "a b"},
		{"uriComponent escapes all but unreserved", "@uriComponent('a b&c=d/é~')", "a%20b%26c%3Dd%2F%C3%A9~"},
		{"uriComponentToString leaves plus", "@uriComponentToString('a+b%20c')", "a+b c"},
		{"uriComponentToString malformed", "@uriComponentToString('100%')", "100%"},
		{"uriPort default", "@uriPort('https://contoso.com/x')", int64(443)},
		{"uriPath empty", "@uriPath('https://contoso.com')", "/"},
		{"uriQuery none", "@uriQuery('https://contoso.com/a')", ""},
		{"uriHost lower case", "@uriHost('HTTPS://Contoso.COM/a')", "contoso.com"},

		// Numbers as text.
		{"formatNumber default", "@formatNumber(1234.5, 'N')", "1,234.50"},
		{"formatNumber de-DE", "@formatNumber(1234.5, 'N1', 'de-DE')", "1.234,5"},
		{"formatNumber fr-FR group", "@formatNumber(1234567, 'N0', 'fr-FR')", "1\u202f234\u202f567"},
		{"formatNumber currency negative", "@formatNumber(-17.35, 'C')", "-$17.35"},
		{"formatNumber euro", "@formatNumber(17.35, 'C', 'es-ES')", "17,35 €"},
		{"formatNumber percent", "@formatNumber(0.256, 'P1')", "25.6%"},
		{"formatNumber percent French", "@formatNumber(0.256, 'P1', 'fr-FR')", "25,6 %"},
		{"formatNumber fixed", "@formatNumber(2.5, 'F0')", "3"},
		{"formatNumber rounds the shortest digits", "@formatNumber(1.005, 'F2')", "1.01"},
		{"formatNumber D", "@formatNumber(42, 'D5')", "00042"},
		{"formatNumber X", "@formatNumber(255, 'x')", "ff"},
		{"formatNumber E", "@formatNumber(1234.5, 'E3')", "1.235E+003"},
		{"formatNumber custom zeros", "@formatNumber(3.14159, '000.00')", "003.14"},
		{"formatNumber custom sections", "@formatNumber(-5, '0;(0);zero')", "(5)"},
		{"formatNumber custom zero section", "@formatNumber(0, '0;(0);zero')", "zero"},
		{"formatNumber custom scaling", "@formatNumber(1234567, '#,##0,K')", "1,235K"},
		{"formatNumber custom literal", "@formatNumber(5, '''n''=0')", "n=5"},
		{"formatNumber custom exponent", "@formatNumber(12345, '0.0E+0')", "1.2E+4"},
		{"formatNumber decimal", "@formatNumber(decimal('0.125'), 'F2')", "0.13"},

		// Dates and times.
		{"addSeconds", "@addSeconds('2018-03-15T00:00:00Z', 90)", "2018-03-15T00:01:30.0000000Z"},
		{"addToTime month clamps", "@addToTime('2024-01-31T10:00:00Z', 1, 'month')", "2024-02-29T10:00:00.0000000Z"},
		{"addToTime year", "@addToTime('2024-02-29', 1, 'Year', 'yyyy-MM-dd')", "2025-02-28"},
		{"addToTime week", "@addToTime('2024-02-29', 2, 'Week', 'yyyy-MM-dd')", "2024-03-14"},
		{"subtractFromTime hour", "@subtractFromTime('2024-01-01T00:30:00Z', 1, 'Hour')", "2023-12-31T23:30:00.0000000Z"},
		{"getPastTime", "@getPastTime(1, 'Month', 'yyyy-MM-dd')", "2024-06-25"},
		{"getFutureTime keeps Z", "@getFutureTime(10, 'Minute')", "2024-07-25T10:10:00.1234567Z"},
		{"startOfHour keeps no zone", "@startOfHour('2018-03-15 13:30')", "2018-03-15T13:00:00.0000000"},
		{"dayOfWeek Sunday", "@dayOfWeek('2024-07-28')", int64(0)},
		{"dayOfYear leap", "@dayOfYear('2024-12-31')", int64(366)},
		{"dateDifference with time", "@dateDifference('2024-07-25T10:00:00Z', '2024-07-25T12:30:15.5Z')", "02:30:15.5000000"},
		{"dateDifference negative", "@dateDifference('2024-07-26', '2024-07-25T12:00:00')", "-12:00:00"},
		{"time window condition", "@greater(ticks(triggerBody()?['createdon']), ticks(getPastTime(1, 'Day')))", true},
		{"time window condition as text", "@greater(triggerBody()?['createdon'], getPastTime(1, 'Hour'))", true},
		{"convertFromUtc summer time", "@convertFromUtc('2024-07-01T12:00:00Z', 'W. Europe Standard Time')", "2024-07-01T14:00:00.0000000"},
		{"convertFromUtc winter time", "@convertFromUtc('2024-01-01T12:00:00Z', 'W. Europe Standard Time')", "2024-01-01T13:00:00.0000000"},
		{"convertFromUtc to UTC keeps Z", "@convertFromUtc('2024-01-01T12:00:00Z', 'UTC')", "2024-01-01T12:00:00.0000000Z"},
		{"zone names ignore case and punctuation", "@convertFromUtc('2024-01-01T12:00:00Z', 'w europe standard time', 'HH:mm')", "13:00"},
		{"zone by IANA name", "@convertFromUtc('2024-01-01T12:00:00Z', 'Asia/Tokyo', 'HH:mm')", "21:00"},
		{"half-hour zone", "@convertFromUtc('2024-01-01T12:00:00Z', 'India Standard Time', 'HH:mm')", "17:30"},
		{"convertToUtc in summer", "@convertToUtc('2024-07-01 08:00', 'Pacific Standard Time')", "2024-07-01T15:00:00.0000000Z"},
		{"convertTimeZone zoned input is an instant", "@convertTimeZone('2024-07-01T12:00:00Z', 'Tokyo Standard Time', 'Eastern Standard Time', 'HH:mm')", "08:00"},
		{"convertTimeZone wall clock", "@convertTimeZone('2024-07-01 12:00', 'Tokyo Standard Time', 'Eastern Standard Time', 'HH:mm')", "23:00"},
		{"formatDateTime in German", "@formatDateTime('2018-03-15T13:27:36Z', 'D', 'de-DE')", "Donnerstag, 15. März 2018"},
		{"formatDateTime date separator of the culture", "@formatDateTime('2018-03-15', 'dd/MM/yyyy', 'de-DE')", "15.03.2018"},
		{"formatDateTime in Spanish", "@formatDateTime('2018-03-15', 'D', 'es-ES')", "jueves, 15 de marzo de 2018"},
		{"formatDateTime invariant", "@formatDateTime('2018-03-15T13:27:36', 'G', '')", "03/15/2018 13:27:36"},
		{"formatDateTime o stays invariant", "@formatDateTime('2018-03-15', 'o', 'fr-FR')", "2018-03-15T00:00:00.0000000"},
		{"formatDateTime r in English", "@formatDateTime('2018-03-15', 'r', 'de-DE')", "Thu, 15 Mar 2018 00:00:00 GMT"},
		{"parseDateTime German", "@parseDateTime('15.03.2018 13:05', 'de-DE')", "2018-03-15T13:05:00.0000000"},
		{"parseDateTime long US date", "@parseDateTime('Thursday, March 15, 2018 1:05 PM')", "2018-03-15T13:05:00.0000000"},
		{"parseDateTime RFC 1123", "@parseDateTime('Thu, 15 Mar 2018 13:27:36 GMT')", "2018-03-15T13:27:36.0000000Z"},
		{"parseDateTime exact with names", "@parseDateTime('15-mars-2018', 'fr-FR', 'dd-MMMM-yyyy')", "2018-03-15T00:00:00.0000000"},
		{"parseDateTime exact with zone", "@parseDateTime('2018-03-15 10:00 +02:00', 'en-US', 'yyyy-MM-dd HH:mm zzz')", "2018-03-15T08:00:00.0000000Z"},
		{"parseDateTime exact 12-hour", "@parseDateTime('3/5/2018 1:05 PM', 'en-US', 'M/d/yyyy h:mm tt')", "2018-03-05T13:05:00.0000000"},
		{"two-digit year", "@formatDateTime('3/5/49', 'yyyy')", "2049"},
		{"two-digit year before 1950", "@formatDateTime('3/5/50', 'yyyy')", "1950"},
		{"utcNow with F format", "@utcNow('ss.FFFFFFF')", "00.1234567"},
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
			if !reflect.DeepEqual(jsonValue(t, got), jsonValue(t, tt.want)) || reflect.TypeOf(got) != reflect.TypeOf(tt.want) {
				t.Errorf("Eval(%q) = %#v, want %#v", tt.src, got, tt.want)
			}
		})
	}
	if got := sampleBody()["tags"]; !reflect.DeepEqual(got, env.Body["tags"]) {
		t.Errorf("the row's array changed: %v", env.Body["tags"])
	}
	if _, ok := env.Body["address"].(map[string]any)["zip"]; ok {
		t.Error("addProperty changed the row's object")
	}
}

func TestEval_LibraryErrors(t *testing.T) {
	tests := []struct {
		name, src string
		msg       string
	}{
		{"add text", "@add(triggerBody()?['name'], 1)", "add expects numbers"},
		{"add overflow", "@add(9223372036854775807, triggerBody()?['statecode'])", "outside the range of a 64-bit integer"},
		{"mul overflow", "@mul(4611686018427387904, add(triggerBody()?['statecode'], 1))", "outside the range"},
		{"div by zero", "@div(1, sub(triggerBody()?['statecode'], 1))", "cannot divide by zero"},
		{"mod by zero float", "@mod(1.5, sub(triggerBody()?['statecode'], 1))", "cannot divide by zero"},
		{"max of text", "@max(1, triggerBody()?['name'])", "max expects numbers"},
		{"max of empty array", "@max(triggerBody()?['contacts'][0]?['none'], createArray())", "expects numbers"},
		{"decimal of a word", "@decimal(triggerBody()?['name'])", "cannot convert 'Contoso Ltd' to a decimal"},
		{"decimal out of range", "@decimal(concat('1', triggerBody()?['empty'], '00000000000000000000000000000000'))", "outside the range of a decimal"},
		{"float out of range", "@float(concat('1e999', triggerBody()?['empty']))", "outside the range of a float"},
		{"float with a bad locale at run time", "@float('1', triggerBody()?['name'])", "does not know the locale 'Contoso Ltd'"},
		{"range too long", "@range(0, add(100000, triggerBody()?['statecode']))", "between 0 and 100000"},
		{"take negative", "@take(createArray(1), sub(0, triggerBody()?['statecode']))", "zero or more"},
		{"chunk zero", "@chunk('abc', sub(triggerBody()?['statecode'], 1))", "positive integer"},
		{"join of text", "@join(triggerBody()?['name'], ',')", "expects its first parameter to be an array"},
		{"union of array and object", "@union(createArray(1), triggerBody())", "all its parameters to be arrays or all to be objects"},
		{"sort mixed", "@sort(triggerBody()?['tags'])", "cannot sort"},
		{"sort by a missing key", "@sort(triggerBody()?['contacts'], 'age')", "without the property 'age'"},
		{"addProperty existing", "@addProperty(triggerBody(), 'NAME', 1)", "already has it"},
		{"json malformed", "@json(concat('{', triggerBody()?['name']))", "cannot parse the text as JSON"},
		{"json trailing data", "@json(concat('1 2', triggerBody()?['empty']))", "more after the first value"},
		{"base64 malformed", "@base64ToString(concat('%%', triggerBody()?['empty']))", "cannot decode"},
		{"dataUri malformed", "@dataUriToString(triggerBody()?['name'])", "expects a data URI"},
		{"uriHost relative", "@uriHost(concat('/a/b', triggerBody()?['empty']))", "expects an absolute URI"},
		{"nthIndexOf zero", "@nthIndexOf('abc', 'b', sub(triggerBody()?['statecode'], 1))", "got 0"},
		{"slice of a number", "@slice(triggerBody()?['statecode'], 1)", "expects its first parameter to be a string"},
		{"rand empty range", "@rand(2, add(triggerBody()?['statecode'], 1))", "less than its maximum"},
		{"addToTime month fraction", "@addToTime('2024-01-31', 1.5, 'Month')", "interval to be an integer"},
		{"addToTime bad unit at run time", "@addToTime('2024-01-31', 1, triggerBody()?['name'])", "does not know the time unit"},
		{"addToTime past the last date", "@addToTime('9999-12-31', 1, 'Day')", "outside the range of dates"},
		{"getPastTime before year one", "@getPastTime(3000, 'Year')", "outside the range of dates"},
		{"convertFromUtc unknown zone at run time", "@convertFromUtc('2024-01-01', triggerBody()?['name'])", "does not know the time zone 'Contoso Ltd'"},
		{"convertFromUtc Local is no zone", "@convertFromUtc('2024-01-01', concat('Lo', 'cal', triggerBody()?['empty']))", "does not know the time zone"},
		{"parseDateTime no match", "@parseDateTime(triggerBody()?['name'], 'fr-FR')", "cannot parse 'Contoso Ltd' as a timestamp in the locale 'fr-FR'"},
		{"parseDateTime exact no match", "@parseDateTime(concat('2018', triggerBody()?['empty']), 'en-US', 'yyyyMMdd')", "with the format 'yyyyMMdd'"},
		{"parseDateTime wrong weekday", "@parseDateTime(concat('Friday, March 15, 2018', triggerBody()?['empty']))", "cannot parse"},
		{"parseDateTime without a year", "@parseDateTime(concat('March 15', triggerBody()?['empty']))", "cannot parse"},
		{"formatNumber of text", "@formatNumber(triggerBody()?['name'], 'N')", "expects its first parameter to be a number"},
		{"formatNumber D of a float", "@formatNumber(triggerBody()?['estimatedvalue'], 'D')", "applies to integers only"},
		{"formatNumber unknown standard", "@formatNumber(1, concat('Q', triggerBody()?['empty']))", "does not know the number format 'Q'"},
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
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("Eval(%q) error %q, want it to contain %q", tt.src, err, tt.msg)
			}
		})
	}
}

func TestCompile_WorkflowFunctionsRefuseWithTheReason(t *testing.T) {
	for lower, why := range unavailable {
		_, err := Compile("@" + lower + "('x')")
		if err == nil || !strings.Contains(err.Error(), "is not available in a dvrouter condition: "+why) {
			t.Errorf("%s: %v", lower, err)
		}
	}
}

func TestZones_EveryWindowsNameLoads(t *testing.T) {
	for win, iana := range windowsZones {
		loc, err := lookupZone(win)
		if err != nil {
			t.Errorf("%s (%s): %v", win, iana, err)
			continue
		}
		if loc.String() != iana {
			t.Errorf("%s resolved to %s, want %s", win, loc, iana)
		}
	}
	if len(windowsZones) < 130 {
		t.Errorf("only %d Windows zones", len(windowsZones))
	}
}

func TestCulture_NamesIgnoreCase(t *testing.T) {
	for _, name := range []string{"fr-fr", "FR-FR", "fr", " de-DE ", "en-us", "IS-is", ""} {
		if _, err := lookupCulture(name); err != nil {
			t.Errorf("lookupCulture(%q): %v", name, err)
		}
	}
	_, err := lookupCulture("fr-CA")
	if err == nil || !regexp.MustCompile(`locale 'fr-CA'.*carries`).MatchString(err.Error()) {
		t.Errorf("fr-CA: %v, want an error naming the carried cultures", err)
	}
}

func TestGuid_Formats(t *testing.T) {
	patterns := map[string]string{
		"":  `^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`,
		"N": `^[0-9a-f]{32}$`,
		"B": `^\{[0-9a-f-]{36}\}$`,
		"P": `^\([0-9a-f-]{36}\)$`,
		"X": `^\{0x[0-9a-f]{8},0x[0-9a-f]{4},0x[0-9a-f]{4},\{(0x[0-9a-f]{2},){7}0x[0-9a-f]{2}\}\}$`,
	}
	for f, p := range patterns {
		src := "@guid()"
		if f != "" {
			src = "@guid('" + f + "')"
		}
		e, err := Compile(src)
		if err != nil {
			t.Fatal(err)
		}
		a, _ := e.Eval(nil)
		b, _ := e.Eval(nil)
		if !regexp.MustCompile(p).MatchString(a.(string)) || a == b {
			t.Errorf("%s = %v then %v, want two different values matching %s", src, a, b, p)
		}
	}
}

func TestRand_StaysInRange(t *testing.T) {
	e, err := Compile("@rand(1, 4)")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int64]bool{}
	for range 300 {
		v, err := e.Eval(nil)
		if err != nil {
			t.Fatal(err)
		}
		n := v.(int64)
		if n < 1 || n >= 4 {
			t.Fatalf("rand(1, 4) = %d", n)
		}
		seen[n] = true
	}
	if len(seen) != 3 {
		t.Errorf("rand(1, 4) gave only %v in 300 draws", seen)
	}
}

func TestNow_FunctionsReadTheClockEachTime(t *testing.T) {
	e, err := Compile("@getFutureTime(1, 'Day', 'yyyy-MM-dd')")
	if err != nil {
		t.Fatal(err)
	}
	for _, day := range []int{1, 2} {
		now := time.Date(2024, 1, day, 0, 0, 0, 0, time.UTC)
		got, err := e.Eval(&Env{Now: func() time.Time { return now }})
		if want := now.AddDate(0, 0, 1).Format("2006-01-02"); err != nil || got != want {
			t.Errorf("on day %d: %v, %v; want %s", day, got, err, want)
		}
	}
}

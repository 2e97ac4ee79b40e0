package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"
)

func env(kv map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := kv[k]
		return v, ok
	}
}

var testEnv = env(map[string]string{
	"ERP_TOKEN":   "t0ken",
	"ERP_SECRET":  "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
	"SB_CONN":     "Endpoint=sb://x.servicebus.windows.net/;SharedAccessKeyName=k;SharedAccessKey=v",
	"NOT_A_CONN":  "hello",
	"ERP_BASEURL": "https://erp.example.com",
})

// loadErr loads src and returns its problems as FILE:LINE:COL lines, failing if it loaded.
func loadErr(t *testing.T, src string) []string {
	t.Helper()
	_, err := LoadRoutesBytes("r.yaml", []byte(src), testEnv)
	if err == nil {
		t.Fatalf("loaded, want an error:\n%s", src)
	}
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("error is %T, want *ValidationError: %v", err, err)
	}
	var out []string
	for _, p := range ve.Problems {
		out = append(out, p.String())
	}
	return out
}

// specField is a text field of c's kind settings (Spec), which this package does not know.
func specField(c Consumer, name string) string {
	v := reflect.ValueOf(c.Spec)
	if v.Kind() != reflect.Struct || !v.FieldByName(name).IsValid() {
		return fmt.Sprintf("(no field %s in %T)", name, c.Spec)
	}
	return v.FieldByName(name).String()
}

func mustLoad(t *testing.T, src string) *RouteFile {
	t.Helper()
	rf, err := LoadRoutesBytes("r.yaml", []byte(src), testEnv)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	return rf
}

const minimalConsumer = `consumers:
  - name: erp
    type: http
    url: https://erp.example.com/hook
`

func TestLoadRoutes_FullFileWithDefaults(t *testing.T) {
	rf := mustLoad(t, `consumers:
  - name: erp
    type: http
    url: https://erp.example.com/hooks/dataverse
    headers:
      Authorization: "Bearer %ERP_TOKEN%"
      X-Source: dataverse
    signingSecret: "%ERP_SECRET%"
  - name: bus
    type: servicebus
    format: cloudevent
    cloudevent: {mode: Binary, typePrefix: com.contoso.crm, source: "https://contoso.crm.dynamics.com/"}
    connection: "%SB_CONN%"
    topic: dataverse
    sessionKey: recordid
    timeout: 5s
    retry: {attempts: 2}
    breaker: {openFor: 1m, failureRatio: 0.25}
    maxConcurrency: 4
routes:
  - name: won-opportunities
    table: Opportunity
    messages: [update, Create, new_MyAction]
    stage: PostOperation
    mode: async
    filteringAttributes: [statecode, stepname]
    changed: [stepname]
    filter: "statecode eq 1"
    conditions:
      - "@equals(triggerBody()?['stepname'], 'Won')"
    select: [name, estimatedvalue]
    exclude: [emailaddress1]
    consumers: [erp, bus]
`)
	erp, bus := rf.Consumers[0], rf.Consumers[1]
	wantErp := Consumer{
		Name: "erp", Type: "http", Format: "row", Timeout: 10 * time.Second,
		Retry:          Retry{Attempts: 4, InitialDelay: time.Second, MaxDelay: 30 * time.Second},
		Breaker:        Breaker{FailureRatio: 0.5, MinRequests: 20, OpenFor: 30 * time.Second, HalfOpenRequests: 1, Window: 30 * time.Second},
		MaxConcurrency: 16,
		CloudEvent:     CloudEvent{Mode: "structured", TypePrefix: "com.microsoft.dataverse"},
		Pos:            Pos{2, 5},
	}
	// The kinds' settings are theirs (their folders test them in full); here, their text.
	wantErpSpec := `httpdest.Spec{URL:"https://erp.example.com/hooks/dataverse", Method:"POST", Headers:map[string]string{"Authorization":"Bearer t0ken", "X-Source":"dataverse"}, SigningSecret:"whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="}`
	if got := fmt.Sprintf("%#v", erp.Spec); got != wantErpSpec {
		t.Errorf("erp.Spec =\n%s\nwant\n%s", got, wantErpSpec)
	}
	wantBusSpec := `sbdest.Spec{Namespace:"", Connection:"Endpoint=sb://x.servicebus.windows.net/;SharedAccessKeyName=k;SharedAccessKey=v", Queue:"", Topic:"dataverse", SessionKey:"recordId"}`
	if got := fmt.Sprintf("%#v", bus.Spec); got != wantBusSpec {
		t.Errorf("bus.Spec =\n%s\nwant\n%s", got, wantBusSpec)
	}
	erp.Spec, bus.Spec = nil, nil
	if !reflect.DeepEqual(erp, wantErp) {
		t.Errorf("erp =\n%+v\nwant\n%+v", erp, wantErp)
	}
	wantBus := Consumer{
		Name: "bus", Type: "servicebus", Format: "cloudevent", Timeout: 5 * time.Second,
		Retry:          Retry{Attempts: 2, InitialDelay: time.Second, MaxDelay: 30 * time.Second},
		Breaker:        Breaker{FailureRatio: 0.25, MinRequests: 20, OpenFor: time.Minute, HalfOpenRequests: 1, Window: 30 * time.Second},
		MaxConcurrency: 4,
		CloudEvent:     CloudEvent{Mode: "binary", TypePrefix: "com.contoso.crm", Source: "https://contoso.crm.dynamics.com/"},
		Pos:            Pos{9, 5},
	}
	if !reflect.DeepEqual(bus, wantBus) {
		t.Errorf("bus =\n%+v\nwant\n%+v", bus, wantBus)
	}
	r := rf.Routes[0]
	want := Route{
		Name: "won-opportunities", Table: "opportunity",
		Messages: []string{"Update", "Create", "new_MyAction"}, Stage: 40, Mode: "async",
		FilteringAttributes: []string{"statecode", "stepname"}, Changed: []string{"stepname"},
		Filter: "statecode eq 1", FilterPos: Pos{28, 14},
		Conditions:   []string{"@equals(triggerBody()?['stepname'], 'Won')"},
		ConditionPos: []Pos{{30, 10}},
		Select:       []string{"name", "estimatedvalue"}, Exclude: []string{"emailaddress1"},
		Consumers: []string{"erp", "bus"}, Pos: Pos{21, 5},
	}
	if !reflect.DeepEqual(r, want) {
		t.Errorf("route =\n%+v\nwant\n%+v", r, want)
	}
	if rf.Path != "r.yaml" {
		t.Errorf("Path = %q", rf.Path)
	}
}

func TestLoadRoutes_JSONWithTheSameKeys(t *testing.T) {
	rf := mustLoad(t, `{
	"consumers": [{"name": "erp", "type": "http", "url": "https://erp.example.com/hook", "method": "put"}],
	"routes": [{
		"name": "contacts",
		"table": "contact",
		"stage": 40,
		"filter": "lastname eq 'O''Neil'",
		"consumers": ["erp"]
	}]
}`)
	if got := specField(rf.Consumers[0], "Method"); got != "PUT" {
		t.Errorf("method = %q, want PUT", got)
	}
	r := rf.Routes[0]
	if r.Stage != 40 || r.Filter != "lastname eq 'O''Neil'" {
		t.Errorf("route = %+v", r)
	}
	if r.FilterPos != (Pos{7, 14}) {
		t.Errorf("FilterPos = %+v, want 7:14 (after the quote)", r.FilterPos)
	}
}

func TestLoadRoutes_ErrorsNameFileLineAndColumn(t *testing.T) {
	cases := []struct {
		name string
		src  string
		want string // one of the problems, exactly
	}{
		{"unknown route key", minimalConsumer + `routes:
  - name: a
    tabel: contact
    consumers: [erp]
`, `r.yaml:7:5: unknown key "tabel" (did you mean "table"?)`},
		{"unknown consumer key", `consumers:
  - name: erp
    type: http
    url: https://x.example.com
    timout: 3s
`, `r.yaml:5:5: unknown key "timout" (did you mean "timeout"?)`},
		{"unknown top-level key", minimalConsumer + "route: []\n", `r.yaml:5:1: unknown key "route" (did you mean "routes"?)`},
		{"wrong type for table", minimalConsumer + `routes:
  - name: a
    table: [contact]
    consumers: [erp]
`, `r.yaml:7:12: table: want a string, got a list`},
		{"wrong type for messages", minimalConsumer + `routes:
  - name: a
    table: contact
    messages: Update
    consumers: [erp]
`, `r.yaml:8:15: messages: want a list such as [a, b], got a string`},
		{"wrong type for timeout", `consumers:
  - name: erp
    type: http
    url: https://x.example.com
    timeout: 10
`, `r.yaml:5:14: timeout: want a duration such as "10s" or "1m30s", got a number`},
		{"unknown consumer", minimalConsumer + `routes:
  - name: a
    table: contact
    consumers: [erp, crm]
`, `r.yaml:8:22: consumers: unknown consumer "crm" (defined: erp)`},
		{"duplicate route names", minimalConsumer + `routes:
  - name: a
    table: contact
    consumers: [erp]
  - name: a
    table: account
    consumers: [erp]
`, `r.yaml:9:11: name: duplicate route name "a" (first at 6:11)`},
		{"duplicate consumer names", `consumers:
  - {name: erp, type: http, url: "https://a.example.com"}
  - {name: erp, type: http, url: "https://b.example.com"}
`, `r.yaml:3:12: name: duplicate consumer name "erp" (first at 2:12)`},
		{"duplicate key", minimalConsumer + `routes:
  - name: a
    table: contact
    table: account
    consumers: [erp]
`, `r.yaml:8:5: duplicate key "table" (first at 7:5)`},
		{"missing setting", `consumers:
  - name: erp
    type: http
    url: https://x.example.com
    headers:
      Authorization: "Bearer %ERP_MISSING%"
`, `r.yaml:6:22: headers.Authorization: setting ERP_MISSING is not set`},
		{"literal signing secret", `consumers:
  - name: erp
    type: http
    url: https://x.example.com
    signingSecret: whsec_abc
`, `r.yaml:5:20: signingSecret: must name an app setting holding a Standard Webhooks signing secret, like %ERP_SIGNING_SECRET%; secrets never go in the route file`},
		{"cloudevent on a row consumer", `consumers:
  - name: erp
    type: http
    url: https://x.example.com
    cloudevent: {mode: binary}
`, `r.yaml:5:5: cloudevent: applies to format cloudevent only (this consumer's format is row)`},
		{"bad cloudevent settings", `consumers:
  - name: erp
    type: http
    format: cloudevent
    url: https://x.example.com
    cloudevent: {mode: batched, typePrefix: "dataverse", source: "/organizations/x", extra: 1}
`, `r.yaml:6:24: mode: "batched" is not a CloudEvents content mode: want structured or binary`},
		{"typePrefix not reverse-DNS", `consumers:
  - name: erp
    type: http
    format: cloudevent
    url: https://x.example.com
    cloudevent: {typePrefix: "dataverse", source: "/organizations/x"}
`, `r.yaml:6:30: typePrefix: "dataverse" is not a reverse-DNS name like com.contoso.crm`},
		{"source not absolute", `consumers:
  - name: erp
    type: http
    format: cloudevent
    url: https://x.example.com
    cloudevent: {typePrefix: "dataverse", source: "/organizations/x"}
`, `r.yaml:6:51: source: "/organizations/x" is not an absolute URI like https://contoso.crm.dynamics.com/ or urn:contoso:crm`},
		{"literal authorization header", `consumers:
  - name: erp
    type: http
    url: https://x.example.com
    headers: {Authorization: Bearer abc}
`, `r.yaml:5:30: headers.Authorization: holds a literal value; secrets never go in the route file: name an app setting, like "Bearer %ERP_TOKEN%"`},
		{"literal function key in url", `consumers:
  - name: erp
    type: http
    url: https://f.azurewebsites.net/api/hook?code=abc
`, `r.yaml:4:10: url: query parameter code holds a literal value; secrets never go in the route file: use code=%ERP_FUNCTION_KEY%`},
		{"relative url", `consumers:
  - name: erp
    type: http
    url: /hook
`, `r.yaml:4:10: url: "/hook" is not an absolute http or https URL`},
		{"servicebus key on http consumer", `consumers:
  - name: erp
    type: http
    url: https://x.example.com
    queue: q
`, `r.yaml:5:5: queue: belongs to a servicebus consumer, not an http one`},
		{"queue and topic", `consumers:
  - name: bus
    type: servicebus
    namespace: x.servicebus.windows.net
    queue: q
    topic: t
`, `r.yaml:6:5: topic: set queue or topic, not both`},
		{"connection string setting of the wrong shape", `consumers:
  - name: bus
    type: servicebus
    connection: "%NOT_A_CONN%"
    queue: q
`, `r.yaml:4:17: connection: setting NOT_A_CONN does not hold a Service Bus connection string (Endpoint=sb://...;...)`},
		{"namespace with scheme", `consumers:
  - name: bus
    type: servicebus
    namespace: sb://x.servicebus.windows.net/
    queue: q
`, `r.yaml:4:16: namespace: want the fully qualified host name only, like erp.servicebus.windows.net`},
		{"bad stage", minimalConsumer + `routes:
  - name: a
    table: contact
    stage: 30
    consumers: [erp]
`, `r.yaml:8:12: stage: want 10, 20 or 40 (prevalidation, preoperation, postoperation), got 30`},
		{"bad consumer name", `consumers:
  - name: erp api
    type: http
    url: https://x.example.com
`, `r.yaml:2:11: name: "erp api" must be 1 to 64 letters, digits or '-', starting with a letter or digit`},
		{"raw consumer with select", `consumers:
  - name: archive
    type: http
    format: raw
    url: https://x.example.com
routes:
  - name: a
    table: contact
    select: [fullname]
    consumers: [archive]
`, `r.yaml:9:5: consumer "archive" takes format raw, the original bytes, which select/exclude cannot shape (personal data would leak): use format row or cloudevent`},
		{"missing table", minimalConsumer + `routes:
  - name: a
    consumers: [erp]
`, `r.yaml:6:5: route "a": table is required ("*" for any table)`},
		{"empty consumers", minimalConsumer + `routes:
  - name: a
    table: contact
    consumers: []
`, `r.yaml:8:16: consumers: empty: a route must feed at least one consumer`},
		{"bad failure ratio", `consumers:
  - name: erp
    type: http
    url: https://x.example.com
    breaker: {failureRatio: 1.5}
`, `r.yaml:5:29: failureRatio: want a number above 0 and at most 1, got 1.5`},
		{"reserved header", `consumers:
  - name: erp
    type: http
    url: https://x.example.com
    headers: {Idempotency-Key: x}
`, `r.yaml:5:15: headers: Idempotency-Key is set by dvrouter`},
		{"yaml syntax error", "routes:\n  - name: a\n   table: x\n", `r.yaml:3:1: did not find expected '-' indicator`},
		{"second document", minimalConsumer + "---\nroutes: []\n", `r.yaml:5:1: a second YAML document (after ---): a route file holds one`},
		{"empty file", "", `r.yaml:1:1: empty file: want consumers: and routes:`},
		{"top level is a list", "- a\n", `r.yaml:1:1: route file: want a mapping, got a list`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := loadErr(t, tc.src)
			for _, g := range got {
				if g == tc.want {
					return
				}
			}
			t.Errorf("problems:\n  %s\nwant among them:\n  %s", strings.Join(got, "\n  "), tc.want)
		})
	}
}

func TestLoadRoutes_ReportsEveryProblemAtOnceInFileOrder(t *testing.T) {
	got := loadErr(t, minimalConsumer+`routes:
  - name: a
    tabel: contact
    consumers: [crm]
  - name: b
    table: account
    mode: sometimes
    consumers: [erp]
`)
	want := []string{
		`r.yaml:6:5: route "a": table is required ("*" for any table)`,
		`r.yaml:7:5: unknown key "tabel" (did you mean "table"?)`,
		`r.yaml:8:17: consumers: unknown consumer "crm" (defined: erp)`,
		`r.yaml:11:11: mode: "sometimes": want sync or async`,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("problems:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

func TestLoadRoutes_ValidationErrorKeepsThePartialFile(t *testing.T) {
	_, err := LoadRoutesBytes("r.yaml", []byte(minimalConsumer+`routes:
  - name: a
    table: contact
    filter: "x eq 1"
    consumers: [nope]
`), testEnv)
	var ve *ValidationError
	if !errors.As(err, &ve) || ve.Partial == nil || len(ve.Partial.Routes) != 1 || ve.Partial.Routes[0].Filter != "x eq 1" {
		t.Fatalf("want a ValidationError with the partial file holding route a, got %#v", err)
	}
}

func TestLoadRoutes_Warnings(t *testing.T) {
	cases := []struct {
		name, routes, want string
	}{
		{"changed needs a pre-image", `  - name: a
    table: contact
    changed: [lastname]
    consumers: [erp]
`, `r.yaml:8:5: warning: changed: needs a pre-image holding [lastname] registered on the Dataverse step; on an event without one, a listed column in the Target counts as changed`},
		{"filteringAttributes without Update", `  - name: a
    table: contact
    messages: [Create]
    filteringAttributes: [lastname]
    consumers: [erp]
`, `r.yaml:9:5: warning: filteringAttributes: apply to Update only, and this route's messages [Create] leave Update out`},
		{"unknown message name", `  - name: a
    table: contact
    messages: [Updte]
    consumers: [erp]
`, `r.yaml:8:16: warning: messages: "Updte" is not a known message (did you mean "Update"?); treated as a custom message`},
		{"condition without @", `  - name: a
    table: contact
    conditions: ["equals(1, 1)"]
    consumers: [erp]
`, `r.yaml:8:18: warning: conditions[0]: does not start with @, so it is text, not an expression (as in Power Automate)`},
		{"async before the operation", `  - name: a
    table: contact
    stage: 20
    mode: async
    consumers: [erp]
`, `r.yaml:9:5: warning: mode: async never matches at stage 20: Dataverse runs asynchronous steps only at postoperation (40)`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rf := mustLoad(t, minimalConsumer+"routes:\n"+tc.routes)
			if !contains(rf.Warnings, tc.want) {
				t.Errorf("warnings:\n  %s\nwant among them:\n  %s", strings.Join(rf.Warnings, "\n  "), tc.want)
			}
		})
	}
}

func TestLoadRoutes_WarnsAboutAnUnusedConsumer(t *testing.T) {
	rf := mustLoad(t, minimalConsumer+`  - name: spare
    type: http
    url: https://spare.example.com
routes:
  - name: a
    table: contact
    consumers: [erp]
`)
	want := `r.yaml:5:11: warning: consumer "spare" is not used by any route`
	if !contains(rf.Warnings, want) {
		t.Errorf("warnings %q, want %q", rf.Warnings, want)
	}
}

func TestLoadRoutes_CorrectsTheCaseOfKnownMessages(t *testing.T) {
	rf := mustLoad(t, minimalConsumer+`routes:
  - name: a
    table: contact
    messages: [create, UPDATE, setstatedynamicentity, new_approve, Update]
    consumers: [erp]
`)
	want := []string{"Create", "Update", "SetStateDynamicEntity", "new_approve"}
	if got := rf.Routes[0].Messages; !reflect.DeepEqual(got, want) {
		t.Errorf("messages = %q, want %q", got, want)
	}
}

func TestLoadRoutes_StageNamesAndNumbers(t *testing.T) {
	for in, want := range map[string]int{"10": 10, "prevalidation": 10, "PreOperation": 20, "20": 20, "40": 40, "postoperation": 40} {
		rf := mustLoad(t, minimalConsumer+"routes:\n  - {name: a, table: contact, consumers: [erp], stage: "+in+"}\n")
		if got := rf.Routes[0].Stage; got != want {
			t.Errorf("stage %s = %d, want %d", in, got, want)
		}
	}
}

func TestLoadRoutes_MergeKeysShareConsumerSettings(t *testing.T) {
	rf := mustLoad(t, `x-policy: &policy
  type: http
  timeout: 3s
  retry: {attempts: 2}
consumers:
  - <<: *policy
    name: a
    url: https://a.example.com
  - <<: *policy
    name: b
    url: https://b.example.com
    timeout: 4s
routes:
  - {name: r, table: "*", consumers: [a, b]}
`)
	a, b := rf.Consumers[0], rf.Consumers[1]
	if a.Type != "http" || a.Timeout != 3*time.Second || a.Retry.Attempts != 2 || specField(a, "URL") != "https://a.example.com" {
		t.Errorf("a = %+v", a)
	}
	if b.Timeout != 4*time.Second || b.Retry.Attempts != 2 {
		t.Errorf("b = %+v: its own timeout must win over the merged one", b)
	}
}

func TestLoadRoutes_ExpressionPositions(t *testing.T) {
	rf := mustLoad(t, minimalConsumer+`routes:
  - name: a
    table: contact
    filter: statecode eq 0
    conditions:
      - '@equals(1, 1)'
      - |
        @and(
          equals(1, 1))
      - >-
        @equals(2,
        2)
    consumers: [erp]
`)
	r := rf.Routes[0]
	if r.FilterPos != (Pos{8, 13}) {
		t.Errorf("plain filter at %+v, want 8:13", r.FilterPos)
	}
	want := []Pos{{10, 10}, {12, 9}, {15, 9}}
	if !reflect.DeepEqual(r.ConditionPos, want) {
		t.Errorf("condition positions %+v, want %+v", r.ConditionPos, want)
	}
	// The literal block keeps its line breaks, so an offset on its second line maps exactly.
	src := r.Conditions[1]
	off := strings.Index(src, "equals")
	if got := r.ConditionPos[1].At(src, off); got != (Pos{13, 11}) {
		t.Errorf("offset of equals maps to %+v, want 13:11", got)
	}
}

func TestPosAt(t *testing.T) {
	p := Pos{Line: 3, Col: 10}
	cases := []struct {
		src  string
		off  int
		want Pos
	}{
		{"name eq 'x'", 0, Pos{3, 10}},
		{"name eq 'x'", 5, Pos{3, 15}},
		{"a\nbc", 3, Pos{4, 11}},
		{"'Zoë' eq x", 7, Pos{3, 16}}, // ë is two bytes, one column
		{"abc", 99, Pos{3, 13}},
		{"abc", -1, Pos{3, 10}},
	}
	for _, tc := range cases {
		if got := p.At(tc.src, tc.off); got != tc.want {
			t.Errorf("At(%q, %d) = %+v, want %+v", tc.src, tc.off, got, tc.want)
		}
	}
}

func TestLoadRoutes_ReadsTheFileFromDisk(t *testing.T) {
	path := filepath.Join(t.TempDir(), "routes.yaml")
	if err := os.WriteFile(path, []byte(minimalConsumer+"routes:\n  - {name: a, table: contact, consumers: [erp]}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	rf, err := LoadRoutes(path, testEnv)
	if err != nil {
		t.Fatal(err)
	}
	if rf.Path != path || len(rf.Routes) != 1 {
		t.Errorf("got %+v", rf)
	}
	if _, err := LoadRoutes(filepath.Join(t.TempDir(), "missing.yaml"), testEnv); err == nil {
		t.Error("a missing file loaded")
	}
}

func TestLoadRoutes_HostileInputsFailCleanly(t *testing.T) {
	laughs := "a: &a [x, x, x, x, x, x, x, x, x]\n"
	prev := "a"
	for i := 0; i < 12; i++ {
		name := string(rune('b' + i))
		laughs += name + ": &" + name + " [" + strings.Repeat("*"+prev+", ", 8) + "*" + prev + "]\n"
		prev = name
	}
	cases := map[string]string{
		"deep flow nesting":  strings.Repeat("[", 100000),
		"deep block nesting": strings.Repeat("- ", 20000) + "x\n",
		"billion laughs":     laughs + "consumers: *" + prev + "\n",
		"merge bomb":         mergeBomb(),
		"binary":             "\x00\x01\x02\xff",
	}
	for name, src := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := LoadRoutesBytes("r.yaml", []byte(src), testEnv); err == nil {
				t.Error("loaded")
			}
		})
	}
}

// mergeBomb nests `<<` merges so that naive expansion would visit 2^30 mappings.
func mergeBomb() string {
	s := "m0: &m0 {k: v}\n"
	for i := 1; i <= 30; i++ {
		s += "m" + itoa(i) + ": &m" + itoa(i) + " {<<: [*m" + itoa(i-1) + ", *m" + itoa(i-1) + "]}\n"
	}
	return s + "consumers:\n  - <<: *m30\n    name: a\n"
}

func itoa(i int) string {
	if i < 10 {
		return string(rune('0' + i))
	}
	return itoa(i/10) + string(rune('0'+i%10))
}

func FuzzLoadRoutes(f *testing.F) {
	f.Add([]byte(minimalConsumer + "routes:\n  - {name: a, table: contact, consumers: [erp], filter: \"x eq 1\"}\n"))
	f.Add([]byte(`{"consumers": [{"name": "b", "type": "servicebus", "namespace": "x.servicebus.windows.net", "queue": "q"}], "routes": []}`))
	f.Add([]byte("a: &a {<<: *a}\n"))
	f.Add([]byte("consumers:\n  - <<: [{type: http}]\n    name: x\n    headers: {A: '%ERP_TOKEN%'}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		rf, err := LoadRoutesBytes("f.yaml", data, testEnv)
		if err == nil && rf == nil {
			t.Fatal("nil file without an error")
		}
		var ve *ValidationError
		if err != nil && errors.As(err, &ve) {
			if len(ve.Problems) == 0 {
				t.Fatal("ValidationError without problems")
			}
			for _, p := range ve.Problems {
				if p.Pos.Line < 1 || p.Pos.Col < 1 {
					t.Fatalf("problem without a position: %+v", p)
				}
			}
		}
	})
}

// blockScalarRoutes is a valid route file of n routes whose filter and condition are YAML
// literal blocks (`|`), the style whose expression positions need the file's lines.
func blockScalarRoutes(n int) []byte {
	var b strings.Builder
	b.WriteString("consumers:\n  - name: erp\n    type: http\n    url: https://erp.example.com/hook\nroutes:\n")
	for i := range n {
		fmt.Fprintf(&b, "  - name: r%d\n    table: account\n    consumers: [erp]\n    filter: |\n      statecode eq %d\n"+
			"    conditions:\n      - |\n        @equals(1, %d)\n", i, i, i)
	}
	return []byte(b.String())
}

// Loading is linear in the file: positions of block-scalar expressions once split the whole
// file into lines for every expression, so a large file took quadratic time at start-up.
// Allocated bytes are the deterministic measure of that work.
func TestLoadRoutes_BlockScalarPositionsCostLinearWork(t *testing.T) {
	allocated := func(n int) uint64 {
		data := blockScalarRoutes(n)
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		if _, err := LoadRoutesBytes("r.yaml", data, nil); err != nil {
			t.Fatalf("LoadRoutesBytes: %v", err)
		}
		runtime.ReadMemStats(&after)
		return after.TotalAlloc - before.TotalAlloc
	}
	small, large := allocated(250), allocated(1000)
	if ratio := float64(large) / float64(small); ratio > 8 {
		t.Errorf("4x the routes allocated %.1fx the bytes (%d vs %d), want about 4x", ratio, large, small)
	}
}

func TestLoadRoutes_BlockScalarExpressionPositions(t *testing.T) {
	data := blockScalarRoutes(3)
	rf, err := LoadRoutesBytes("r.yaml", data, nil)
	if err != nil {
		t.Fatalf("LoadRoutesBytes: %v", err)
	}
	lines := strings.Split(string(data), "\n")
	for _, r := range rf.Routes {
		for what, p := range map[string]Pos{"filter": r.FilterPos, "condition": r.ConditionPos[0]} {
			text := lines[p.Line-1][p.Col-1:]
			if !strings.HasPrefix(text, "statecode eq") && !strings.HasPrefix(text, "@equals(") {
				t.Errorf("route %s: %s at %d:%d points at %q", r.Name, what, p.Line, p.Col, text)
			}
		}
	}
}

// CI has the route file but not the secrets: without the settings, every reference counts as
// set, and the rest of the file is still checked.
func TestLoadRoutesUnresolved_ChecksAllButTheSettings(t *testing.T) {
	dir := t.TempDir()
	write := func(src string) string {
		path := filepath.Join(dir, "r.yaml")
		if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	good := write(`consumers:
  - name: erp
    type: http
    url: "%ERP_URL%"
    headers: {Authorization: "Bearer %ERP_TOKEN%"}
    signingSecret: "%ERP_SECRET%"
  - name: crm
    type: http
    url: "https://%CRM_HOST%/hooks?code=%CRM_KEY%"
  - name: bus
    type: servicebus
    connection: "%SB_CONN%"
    queue: events
  - name: bus2
    type: servicebus
    namespace: "%SB_NAMESPACE%"
    queue: events
routes:
  - name: all
    table: account
    consumers: [erp, crm, bus, bus2]
`)
	if _, err := LoadRoutesUnresolved(good); err != nil {
		t.Fatalf("LoadRoutesUnresolved: %v", err)
	}
	if _, err := LoadRoutes(good, func(string) (string, bool) { return "", false }); err == nil {
		t.Fatal("LoadRoutes without the settings: want errors naming them")
	}

	bad := write(`consumers:
  - name: erp
    type: http
    url: "https://%ERP_HOST%/hook"
    headers: {Authorization: "Bearer literal-token"}
    signingSecret: whsec_abc
routes:
  - name: all
    table: account
    stage: 30
    consumers: [erp]
`)
	_, err := LoadRoutesUnresolved(bad)
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("err = %v, want a *ValidationError", err)
	}
	var msgs []string
	for _, p := range ve.Problems {
		msgs = append(msgs, p.Msg)
	}
	got := strings.Join(msgs, "\n")
	for _, want := range []string{"headers.Authorization: holds a literal value", "signingSecret: must name an app setting", "stage: want 10, 20 or 40"} {
		if !strings.Contains(got, want) {
			t.Errorf("problems %q: want one saying %q", got, want)
		}
	}
	if strings.Contains(got, "is not set") {
		t.Errorf("problems %q: no setting should be reported as not set", got)
	}
}

package route

// This file turns a Power Automate flow on Dataverse's "When a row is added, modified or
// deleted" trigger into the equivalent route, for people migrating from flows.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/dvrouter/dvrouter/pkg/odata"
	"github.com/dvrouter/dvrouter/pkg/wdl"
)

// FlowOptions are what a flow cannot say about the route it becomes.
type FlowOptions struct {
	// Consumer is the consumer the route feeds (required): a flow's actions have no
	// counterpart, the consumer does their work.
	Consumer string
	// Name is the route's name; empty derives it from the flow's display name.
	Name string
}

// maxFlowSize bounds what ImportFlow reads; exported flow definitions are far smaller.
const maxFlowSize = 16 << 20

// flowMessages maps the trigger's change type (subscriptionRequest/message) to messages.
var flowMessages = map[int][]string{
	1: {"Create"}, 2: {"Delete"}, 3: {"Update"},
	4: {"Create", "Update"}, 5: {"Create", "Delete"}, 6: {"Update", "Delete"},
	7: {"Create", "Update", "Delete"},
}

// ImportFlow reads an exported flow definition (a package's definition.json, a solution's
// workflow JSON or its clientdata, `{"properties": {"definition": ...}}`, `{"definition": ...}`
// or the bare definition) and returns the equivalent route as YAML, a `routes:` list of one to
// paste into a route file. Notes name every part of the flow that has no equivalent; nothing is
// dropped without one.
func ImportFlow(r io.Reader, opts FlowOptions) (yamlText string, notes []string, err error) {
	im, err := ImportFlowTrigger(r, opts)
	if err != nil {
		return "", nil, err
	}
	return im.YAML, im.Notes, nil
}

// ImportedFlow is a flow turned into a route, with the trigger it was read from.
type ImportedFlow struct {
	YAML    string
	Notes   []string
	Trigger FlowTrigger
}

// FlowTrigger is the Dataverse trigger a flow was read from, as the definition names it.
type FlowTrigger struct {
	Name       string // the trigger's key in the definition
	Type       string // OpenApiConnectionWebhook, OpenApiConnectionTrigger, ApiConnectionWebhook...
	Operation  string // SubscribeWebhookTrigger
	Connection string // what named the Dataverse connector: apiId, connectionName or a reference
}

func (t FlowTrigger) String() string {
	return fmt.Sprintf("%s (type %s, operation %s on %s)", t.Name, t.Type, t.Operation, t.Connection)
}

// ImportFlowTrigger is ImportFlow, also saying which trigger it read.
func ImportFlowTrigger(r io.Reader, opts FlowOptions) (ImportedFlow, error) {
	yamlText, notes, trig, err := importFlow(r, opts)
	return ImportedFlow{YAML: yamlText, Notes: notes, Trigger: trig}, err
}

func importFlow(r io.Reader, opts FlowOptions) (yamlText string, notes []string, ft FlowTrigger, err error) {
	fail := func(err error) (string, []string, FlowTrigger, error) { return "", nil, FlowTrigger{}, err }
	if !nameRE.MatchString(opts.Consumer) {
		return fail(fmt.Errorf("import flow: consumer %q: want the name of a consumer in your route file (letters, digits, '-')", opts.Consumer))
	}
	if opts.Name != "" && !nameRE.MatchString(opts.Name) {
		return fail(fmt.Errorf("import flow: route name %q: want 1 to 64 letters, digits or '-'", opts.Name))
	}
	raw, err := io.ReadAll(io.LimitReader(r, maxFlowSize+1))
	if err != nil {
		return fail(fmt.Errorf("import flow: read: %w", err))
	}
	if len(raw) > maxFlowSize {
		return fail(fmt.Errorf("import flow: larger than %d bytes: not a flow definition", maxFlowSize))
	}
	def, displayName, refs, err := findDefinition(raw)
	if err != nil {
		return fail(err)
	}
	im := &flowImport{}
	ft, trig, err := dataverseTrigger(def, refs)
	if err != nil {
		return fail(err)
	}
	triggerName := ft.Name
	route := im.route(trig)
	if im.err != nil {
		return fail(im.err)
	}
	if acts, ok := def["actions"].(map[string]any); ok && len(acts) > 0 {
		im.note("the flow's %d actions are not imported: the consumer %q receives the event and does their work", len(acts), opts.Consumer)
	}
	if params, ok := def["parameters"].(map[string]any); ok {
		for _, k := range sortedKeys(params) {
			if k != "$connections" && k != "$authentication" {
				im.note("flow parameter %q is not imported: routes have no parameters; use an app setting (%%SETTING%%) in a consumer if it configured one", k)
			}
		}
	}

	route.name = opts.Name
	if route.name == "" {
		route.name = slug(displayName)
		if route.name == "" {
			route.name = slug(triggerName)
		}
		if route.name == "" {
			route.name = "imported-flow"
		}
	}
	route.consumer = opts.Consumer
	return route.yaml(displayName, triggerName, im.notes), im.notes, ft, nil
}

// findDefinition unwraps the shapes an exported flow comes in down to its definition.
func findDefinition(raw []byte) (def map[string]any, displayName string, refs map[string]any, err error) {
	var top map[string]any
	dec := json.NewDecoder(bytes.NewReader(bytes.TrimPrefix(raw, []byte("\xef\xbb\xbf"))))
	dec.UseNumber()
	if err := dec.Decode(&top); err != nil {
		return nil, "", nil, fmt.Errorf("import flow: not a JSON object: %w", err)
	}
	for depth := 0; depth < 4; depth++ {
		if s, ok := top["clientdata"].(string); ok { // a solution's workflow record
			var inner map[string]any
			d := json.NewDecoder(strings.NewReader(s))
			d.UseNumber()
			if err := d.Decode(&inner); err != nil {
				return nil, "", nil, fmt.Errorf("import flow: clientdata is not JSON: %w", err)
			}
			if n, ok := top["name"].(string); ok && displayName == "" {
				displayName = n
			}
			top = inner
			continue
		}
		if props, ok := top["properties"].(map[string]any); ok {
			if n, ok := props["displayName"].(string); ok && displayName == "" {
				displayName = n
			}
			if r, ok := props["connectionReferences"].(map[string]any); ok {
				refs = r
			}
			top = props
			continue
		}
		if d, ok := top["definition"].(map[string]any); ok {
			top = d
			continue
		}
		break
	}
	if _, ok := top["triggers"].(map[string]any); !ok {
		return nil, "", nil, errors.New("import flow: no flow definition found (want a definition with triggers, as in an exported package's definition.json)")
	}
	return top, displayName, refs, nil
}

// dataverseTrigger finds the "When a row is added, modified or deleted" trigger: the operation
// SubscribeWebhookTrigger of the Dataverse connector (shared_commondataserviceforapps), told by
// its inputs.host. The trigger's type is not what decides: exports write it as
// OpenApiConnectionWebhook, and other tools as OpenApiConnectionTrigger or, in the older Logic
// Apps form, ApiConnectionWebhook.
func dataverseTrigger(def map[string]any, refs map[string]any) (FlowTrigger, map[string]any, error) {
	triggers := def["triggers"].(map[string]any)
	var seen []string
	for _, name := range sortedKeys(triggers) {
		t, ok := triggers[name].(map[string]any)
		if !ok {
			continue
		}
		typ, _ := t["type"].(string)
		inputs, _ := t["inputs"].(map[string]any)
		host, _ := inputs["host"].(map[string]any)
		op, _ := host["operationId"].(string)
		if strings.EqualFold(op, "SubscribeWebhookTrigger") {
			if conn, ok := dataverseHost(host, refs); ok {
				return FlowTrigger{Name: name, Type: typ, Operation: op, Connection: conn}, t, nil
			}
		}
		seen = append(seen, fmt.Sprintf("%s (%s %s)", name, typ, op))
	}
	return FlowTrigger{}, nil, fmt.Errorf("import flow: no Dataverse \"When a row is added, modified or deleted\" trigger (operation SubscribeWebhookTrigger on the connector shared_commondataserviceforapps); the flow has: %s", strings.Join(seen, ", "))
}

// dataverseHost reports whether a trigger's host names the Dataverse connector, and by what.
func dataverseHost(host map[string]any, refs map[string]any) (string, bool) {
	const api = "shared_commondataserviceforapps"
	var names []string
	for _, k := range []string{"apiId", "connectionName", "connectionReferenceName"} {
		if s, ok := host[k].(string); ok {
			names = append(names, s)
		}
	}
	if c, ok := host["connection"].(map[string]any); ok {
		if s, ok := c["name"].(string); ok {
			names = append(names, s)
		}
		if s, ok := c["referenceName"].(string); ok {
			names = append(names, s)
		}
	}
	for _, n := range names {
		if strings.HasSuffix(n, "/"+api) || n == api || strings.HasPrefix(n, api+"_") || strings.Contains(n, "['"+api+"']") {
			return n, true
		}
		// A solution flow's connection reference may have any name: look up what it points at.
		if ref, ok := refs[n].(map[string]any); ok {
			if s, _ := ref["apiName"].(string); s == api {
				return n + " (" + api + ")", true
			}
			if a, ok := ref["api"].(map[string]any); ok {
				if s, _ := a["name"].(string); s == api {
					return n + " (" + api + ")", true
				}
			}
		}
	}
	return "", false
}

type flowImport struct {
	notes []string
	err   error
}

func (im *flowImport) note(format string, args ...any) {
	im.notes = append(im.notes, fmt.Sprintf(format, args...))
}

type importedRoute struct {
	name       string
	table      string
	messages   []string
	filtering  []string
	filter     string
	conditions []string
	consumer   string
}

var (
	tableNameRE  = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
	columnNameRE = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)
)

// routeParams are the trigger parameters that become route keys.
var routeParams = map[string]bool{
	"subscriptionRequest/message": true, "subscriptionRequest/entityname": true, "subscriptionRequest/scope": true,
	"subscriptionRequest/filteringattributes": true, "subscriptionRequest/filterexpression": true,
}

// triggerKeys are trigger properties that carry no behaviour dvrouter would need to reproduce:
// what the trigger is, its inputs (read below), and designer bookkeeping.
var triggerKeys = map[string]bool{"type": true, "kind": true, "inputs": true, "conditions": true, "metadata": true, "description": true}

func (im *flowImport) route(trig map[string]any) *importedRoute {
	r := &importedRoute{}
	for _, k := range sortedKeys(trig) {
		if !triggerKeys[k] {
			im.note("trigger setting %q has no equivalent and is not imported (%s)", k, compactJSON(trig[k]))
		}
	}
	inputs, _ := trig["inputs"].(map[string]any)
	for _, k := range sortedKeys(inputs) {
		if k != "host" && k != "parameters" && k != "authentication" {
			im.note("trigger input %q has no equivalent and is not imported (%s)", k, compactJSON(inputs[k]))
		}
	}
	params, _ := inputs["parameters"].(map[string]any)

	for _, k := range sortedKeys(params) {
		v := params[k]
		if s, ok := v.(string); ok && routeParams[k] && (strings.HasPrefix(strings.TrimSpace(s), "@") || strings.Contains(s, "@{")) {
			// A parameter the route needs, computed by the flow (from its parameters, say).
			if k == "subscriptionRequest/entityname" || k == "subscriptionRequest/message" {
				im.err = fmt.Errorf("import flow: %s is an expression (%s): the route needs its value", k, s)
			} else {
				im.note("%s is an expression (%s): not imported; write its value in the route", k, s)
			}
			continue
		}
		switch k {
		case "subscriptionRequest/message":
			n, ok := intParam(v)
			if !ok || flowMessages[n] == nil {
				im.err = fmt.Errorf("import flow: subscriptionRequest/message %s is not a change type (1 to 7)", compactJSON(v))
				continue
			}
			r.messages = flowMessages[n]
		case "subscriptionRequest/entityname":
			s, _ := v.(string)
			s = strings.ToLower(strings.TrimSpace(s))
			if !tableNameRE.MatchString(s) {
				im.err = fmt.Errorf("import flow: subscriptionRequest/entityname %s is not a table logical name", compactJSON(v))
				continue
			}
			r.table = s
		case "subscriptionRequest/scope":
			n, _ := intParam(v)
			switch n {
			case 4: // Organization: every row, as a route sees them
			case 1:
				im.note("scope 1 (User) fired only for rows the flow's owner owns; the route fires for every row. To keep that, add to the filter: _ownerid_value eq <the owner's systemuserid>")
			case 2:
				im.note("scope 2 (Business unit) fired only for rows owned in the owner's business unit; the route fires for every row. To keep that, add to the filter: _owningbusinessunit_value eq <the business unit id>")
			case 3:
				im.note("scope 3 (Parent: child business units) has no equivalent: a filter cannot follow the business unit tree. The route fires for every row; to narrow it, list the units: _owningbusinessunit_value in (<id>, <id>, ...)")
			default:
				im.note("subscriptionRequest/scope %s is not a known scope; the route fires for every row (as scope 4, Organization)", compactJSON(v))
			}
		case "subscriptionRequest/filteringattributes":
			s, _ := v.(string)
			for _, c := range strings.Split(s, ",") {
				c = strings.ToLower(strings.TrimSpace(c))
				switch {
				case c == "":
				case columnNameRE.MatchString(c):
					r.filtering = append(r.filtering, c)
				default:
					im.note("filtering attribute %q is not a column logical name: left out", c)
				}
			}
		case "subscriptionRequest/filterexpression":
			s, _ := v.(string)
			if s = strings.TrimSpace(s); s == "" {
				continue
			}
			r.filter = s
			if _, err := odata.Compile(s); err != nil {
				im.note("filter rows %q does not compile here (%v): kept as is; `dvrouter validate` points at the problem", s, err)
			}
		case "subscriptionRequest/runas":
			im.note("run as (subscriptionRequest/runas %s) has no equivalent: consumers act with their own credentials", compactJSON(v))
		case "subscriptionRequest/postponeuntil":
			im.note("delay until (subscriptionRequest/postponeuntil %s) has no equivalent: consumers get the event at once", compactJSON(v))
		default:
			im.note("trigger parameter %q (%s) has no equivalent and is not imported", k, compactJSON(v))
		}
	}
	if r.table == "" && im.err == nil {
		im.err = errors.New("import flow: the trigger has no table (subscriptionRequest/entityname)")
	}
	if r.messages == nil && im.err == nil {
		im.note("the trigger has no change type (subscriptionRequest/message): the route matches every message")
	}

	conds, _ := trig["conditions"].([]any)
	for i, c := range conds {
		m, _ := c.(map[string]any)
		expr, ok := m["expression"].(string)
		if !ok {
			im.note("trigger condition %d is not an {\"expression\": ...} object: not imported (%s)", i, compactJSON(c))
			continue
		}
		for _, k := range sortedKeys(m) {
			if k != "expression" {
				im.note("trigger condition %d: %q is not imported", i, k)
			}
		}
		r.conditions = append(r.conditions, expr)
		if _, err := wdl.Compile(expr); err != nil {
			im.note("trigger condition %q does not compile here (%v): kept as is; `dvrouter validate` points at the problem", expr, err)
		}
	}
	return r
}

func (r *importedRoute) yaml(displayName, triggerName string, notes []string) string {
	var b strings.Builder
	from := triggerName
	if displayName != "" {
		from = fmt.Sprintf("%s (trigger %s)", displayName, triggerName)
	}
	fmt.Fprintf(&b, "# Imported by dvrouter import-flow from the Power Automate flow %s.\n", oneLine(from))
	b.WriteString("# Power Automate runs a flow after the change is saved (stage 40, asynchronous): register\n")
	b.WriteString("# the Dataverse step that sends events to dvrouter the same way, or add stage and mode here.\n")
	if len(notes) > 0 {
		b.WriteString("# Not carried over (see also stderr):\n")
		for _, n := range notes {
			fmt.Fprintf(&b, "#   - %s\n", oneLine(n))
		}
	}
	b.WriteString("routes:\n")
	fmt.Fprintf(&b, "  - name: %s\n", r.name)
	fmt.Fprintf(&b, "    table: %s\n", r.table)
	if len(r.messages) > 0 {
		fmt.Fprintf(&b, "    messages: [%s]\n", strings.Join(r.messages, ", "))
	}
	if len(r.filtering) > 0 {
		fmt.Fprintf(&b, "    filteringAttributes: [%s]\n", strings.Join(r.filtering, ", "))
	}
	if r.filter != "" {
		fmt.Fprintf(&b, "    filter: %s\n", yamlString(r.filter))
	}
	if len(r.conditions) > 0 {
		b.WriteString("    conditions:\n")
		for _, c := range r.conditions {
			fmt.Fprintf(&b, "      - %s\n", yamlString(c))
		}
	}
	if r.filter != "" || len(r.conditions) > 0 {
		// The flow's trigger saw the whole row; a plugin event carries the Target and the
		// registered images only. fetch reads what the expressions need and the event lacks.
		b.WriteString("    fetch: missing # the flow saw the whole row: read the columns the event lacks from the Web API\n")
	}
	fmt.Fprintf(&b, "    consumers: [%s]\n", r.consumer)
	return b.String()
}

// yamlString quotes s for YAML. A JSON string is a valid YAML double-quoted scalar.
func yamlString(s string) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a string always encodes
	return strings.TrimSuffix(b.String(), "\n")
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

func intParam(v any) (int, bool) {
	switch n := v.(type) {
	case json.Number:
		i, err := strconv.Atoi(string(n))
		return i, err == nil
	case string:
		i, err := strconv.Atoi(strings.TrimSpace(n))
		return i, err == nil
	}
	return 0, false
}

func compactJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	if len(b) > 200 {
		return string(b[:200]) + "..."
	}
	return string(b)
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

var (
	nameRE   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9-]{0,63}$`)
	nonAlnum = regexp.MustCompile(`[^a-z0-9]+`)
)

// slug makes a route name from a flow's display name: "Sync won deals → ERP" becomes
// "sync-won-deals-erp".
func slug(s string) string {
	s = strings.Trim(nonAlnum.ReplaceAllString(strings.ToLower(s), "-"), "-")
	if len(s) > 64 {
		s = strings.TrimRight(s[:64], "-")
	}
	return s
}

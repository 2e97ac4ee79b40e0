package config

// This file loads and validates the route file. It walks yaml.v3's node tree rather than
// unmarshalling into structs, because every problem must name the line and column of the node at
// fault, and every problem in the file must be reported at once.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// maxRouteFileSize bounds what LoadRoutes reads: a route file is hand-written, and a huge one is
// a mistake, not configuration.
const maxRouteFileSize = 4 << 20

// Problem is one error or warning in the route file.
type Problem struct {
	File string
	Pos  Pos
	Msg  string
}

// String formats the problem as FILE:LINE:COL: message, the shape editors and CI logs link.
func (p Problem) String() string {
	return fmt.Sprintf("%s:%d:%d: %s", p.File, p.Pos.Line, p.Pos.Col, p.Msg)
}

// ValidationError lists every problem found in a route file, in file order.
type ValidationError struct {
	Problems []Problem
	Warnings []Problem // messages start with "warning: "
	// Partial is the file as far as it could be loaded (invalid parts left out), so that a tool
	// such as `dvrouter validate` can also compile its expressions and report everything in one
	// pass. Nil when the file could not be parsed at all. Never run with it.
	Partial *RouteFile
}

func (e *ValidationError) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// At returns the position of byte offset off inside an expression whose first character is at
// p. Line breaks inside the expression (a YAML literal block scalar, `|`) move to the next line
// at the same column, which is exact for literal blocks because YAML strips one common
// indentation from every line. Columns count characters, as editors do, not bytes.
//
// Elsewhere the result is an approximation that stays on p's line: a folded (`>`) or multi-line
// plain scalar has had its line breaks turned into spaces, and escapes inside quoted scalars
// (a doubled single quote, a backslash escape) are one character shorter in the value than in
// the file.
func (p Pos) At(src string, off int) Pos {
	if off < 0 {
		off = 0
	}
	if off > len(src) {
		off = len(src)
	}
	lineStart := strings.LastIndexByte(src[:off], '\n') + 1
	return Pos{
		Line: p.Line + strings.Count(src[:lineStart], "\n"),
		Col:  p.Col + utf8.RuneCountInString(src[lineStart:off]),
	}
}

// LoadRoutes reads the route file at path (YAML, or JSON with the same keys) and validates it.
// getenv resolves `%SETTING%` references (os.LookupEnv has the right shape). On failure the error
// is a *ValidationError listing every problem as FILE:LINE:COL: message.
func LoadRoutes(path string, getenv func(string) (string, bool)) (*RouteFile, error) {
	return loadRoutes(path, &loader{getenv: getenv})
}

// LoadRoutesUnresolved validates the route file at path as LoadRoutes does, but without the
// settings: every `%SETTING%` reference is taken as set, and what can only be checked on a
// setting's value (a connection string, a whole URL or namespace held in a setting) is not
// checked. It is for CI, which has the file but not the secrets. The file it returns holds the
// references unresolved, so it is for checking, never for delivering.
func LoadRoutesUnresolved(path string) (*RouteFile, error) {
	return loadRoutes(path, &loader{noResolve: true})
}

func loadRoutes(path string, l *loader) (*RouteFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read route file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxRouteFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read route file %s: %w", path, err)
	}
	if len(data) > maxRouteFileSize {
		return nil, &ValidationError{Problems: []Problem{{File: path, Pos: Pos{1, 1},
			Msg: fmt.Sprintf("file is larger than %d bytes; a route file is hand-written configuration", maxRouteFileSize)}}}
	}
	return l.load(path, data)
}

// LoadRoutesBytes is LoadRoutes for a file already read; name is used in messages and as Path.
func LoadRoutesBytes(name string, data []byte, getenv func(string) (string, bool)) (*RouteFile, error) {
	return (&loader{getenv: getenv}).load(name, data)
}

func (l *loader) load(name string, data []byte) (*RouteFile, error) {
	l.file, l.src, l.seen = name, data, map[Problem]bool{}
	if l.getenv == nil {
		l.getenv = func(string) (string, bool) { return "", false }
	}
	root, ok := l.parse(data)
	var rf *RouteFile
	if ok {
		rf = l.routeFile(root)
	}
	sortProblems(l.errs)
	sortProblems(l.warns)
	if len(l.errs) > 0 {
		return nil, &ValidationError{Problems: l.errs, Warnings: l.warns, Partial: rf}
	}
	for _, w := range l.warns {
		rf.Warnings = append(rf.Warnings, w.String())
	}
	return rf, nil
}

func sortProblems(ps []Problem) {
	sort.SliceStable(ps, func(i, j int) bool {
		if ps[i].Pos.Line != ps[j].Pos.Line {
			return ps[i].Pos.Line < ps[j].Pos.Line
		}
		return ps[i].Pos.Col < ps[j].Pos.Col
	})
}

type loader struct {
	file   string
	src    []byte
	getenv func(string) (string, bool)
	// noResolve takes every %SETTING% as set (LoadRoutesUnresolved).
	noResolve bool
	errs      []Problem
	warns     []Problem
	// seen drops repeats: a YAML anchor used by several consumers would otherwise report the
	// same problem at the same place once per use.
	seen map[Problem]bool
	// budget bounds the work that `<<` merge keys can cause (they can nest exponentially).
	budget int
	// lines holds the byte offset of each line's start, built when first needed.
	lines []int
	// dataverse is DVROUTER_DATAVERSE_ENVIRONMENTS as ParseDataverseEnvironments read it, when a
	// consumer first asked (dataverseRead).
	dataverse     map[string]string
	dataverseErr  error
	dataverseRead bool
}

func (l *loader) report(list *[]Problem, n *yaml.Node, format string, args ...any) {
	p := Problem{File: l.file, Pos: nodePos(n), Msg: fmt.Sprintf(format, args...)}
	if l.seen[p] {
		return
	}
	l.seen[p] = true
	*list = append(*list, p)
}

func (l *loader) errorf(n *yaml.Node, format string, args ...any) {
	l.report(&l.errs, n, format, args...)
}

// warnf records a warning. Its message starts with "warning: ", as compilers write them, so a
// warning line can be told from an error line wherever it ends up.
func (l *loader) warnf(n *yaml.Node, format string, args ...any) {
	l.report(&l.warns, n, "warning: "+format, args...)
}

func nodePos(n *yaml.Node) Pos {
	if n == nil || n.Line == 0 {
		return Pos{1, 1}
	}
	return Pos{Line: n.Line, Col: n.Column}
}

var yamlLineErr = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// parse reads exactly one YAML document. yaml.v3 bounds nesting depth and alias expansion itself;
// the recover is a last guard so that no input, however odd, stops the program with a panic.
func (l *loader) parse(data []byte) (root *yaml.Node, ok bool) {
	defer func() {
		if r := recover(); r != nil {
			l.errs = append(l.errs, Problem{File: l.file, Pos: Pos{1, 1}, Msg: fmt.Sprintf("cannot parse: %v", r)})
			root, ok = nil, false
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			l.errs = append(l.errs, Problem{File: l.file, Pos: Pos{1, 1}, Msg: "empty file: want consumers: and routes:"})
		} else {
			l.yamlError(err)
		}
		return nil, false
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case errors.Is(err, io.EOF):
	case err != nil:
		l.yamlError(err)
		return nil, false
	default:
		l.errorf(&extra, "a second YAML document (after ---): a route file holds one")
		return nil, false
	}
	if len(doc.Content) == 0 {
		l.errs = append(l.errs, Problem{File: l.file, Pos: Pos{1, 1}, Msg: "empty file: want consumers: and routes:"})
		return nil, false
	}
	return doc.Content[0], true
}

func (l *loader) yamlError(err error) {
	var te *yaml.TypeError
	msgs := []string{err.Error()}
	if errors.As(err, &te) {
		msgs = te.Errors
	}
	for _, m := range msgs {
		p := Problem{File: l.file, Pos: Pos{1, 1}, Msg: strings.TrimPrefix(m, "yaml: ")}
		if sub := yamlLineErr.FindStringSubmatch(m); sub != nil {
			if n, err := strconv.Atoi(sub[1]); err == nil && n > 0 {
				p.Pos.Line = l.problemLine(n, m)
			}
			p.Msg = sub[2]
		}
		l.errs = append(l.errs, p)
	}
}

// problemLine finds the line a syntax error is on. yaml.v3 reports the line where the enclosing
// construct starts (a whole list, say), which can be far above the mistake; the shortest prefix of
// the file that fails with the same message ends on the line at fault. Failing is monotone in
// practice (a longer prefix keeps the mistake), so a binary search finds it in a few parses.
func (l *loader) problemLine(reported int, msg string) int {
	var ends []int // ends[k] is the byte length of the first k+1 lines
	for i, b := range l.src {
		if b == '\n' {
			ends = append(ends, i+1)
		}
	}
	if len(ends) == 0 || ends[len(ends)-1] != len(l.src) {
		ends = append(ends, len(l.src))
	}
	fails := func(k int) bool {
		var n yaml.Node
		err := yaml.Unmarshal(l.src[:ends[k]], &n)
		return err != nil && err.Error() == msg
	}
	lo, hi := reported-1, len(ends)-1
	if lo < 0 || lo > hi || !fails(hi) {
		return reported
	}
	for lo < hi {
		mid := (lo + hi) / 2
		if fails(mid) {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo + 1
}

// ---- the file ----

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9-]{0,63}$`)

func (l *loader) routeFile(root *yaml.Node) *RouteFile {
	rf := &RouteFile{Path: l.file}
	fs, ok := l.fields(root, "route file")
	if !ok {
		return rf
	}
	// Top-level keys starting with x- are free, as in Compose files: a place for YAML anchors
	// that consumers and routes share.
	var top []field
	for _, f := range fs {
		if !strings.HasPrefix(f.key.Value, "x-") {
			top = append(top, f)
		}
	}
	l.checkKeys(top, []string{"consumers", "routes", "lookups"}, nil)
	var consumersF, routesF *field
	for i := range fs {
		switch fs[i].key.Value {
		case "consumers":
			consumersF = &fs[i]
		case "routes":
			routesF = &fs[i]
		case "lookups":
			rf.Lookups = l.lookups(fs[i])
		}
	}

	consumers := map[string]*Consumer{}
	consumerNode := map[string]*yaml.Node{}
	if consumersF != nil {
		list := deref(consumersF.val)
		if list.Kind != yaml.SequenceNode {
			l.errorf(list, "consumers: want a list of consumers, got %s", describe(list))
		} else {
			for i, n := range list.Content {
				// A consumer with errors other than its name still counts as defined, so that
				// routes naming it do not report it as unknown too.
				c, named := l.consumer(n, i)
				if !named {
					continue
				}
				if first, dup := consumerNode[c.Name]; dup {
					l.errorf(l.nameNode(n), "name: duplicate consumer name %q (first at %d:%d)", c.Name, first.Line, first.Column)
					continue
				}
				consumerNode[c.Name] = l.nameNode(n)
				rf.Consumers = append(rf.Consumers, c)
			}
		}
	}
	for i := range rf.Consumers {
		consumers[rf.Consumers[i].Name] = &rf.Consumers[i]
	}

	used := map[string]bool{}
	if routesF == nil {
		l.warnf(root, "no routes: every event matches nothing")
	} else {
		list := deref(routesF.val)
		if list.Kind != yaml.SequenceNode {
			l.errorf(list, "routes: want a list of routes, got %s", describe(list))
		} else {
			if len(list.Content) == 0 {
				l.warnf(list, "routes: empty: every event matches nothing")
			}
			routeNode := map[string]*yaml.Node{}
			for i, n := range list.Content {
				r, named := l.route(n, i, consumers, used)
				if !named {
					continue
				}
				if first, dup := routeNode[r.Name]; dup {
					l.errorf(l.nameNode(n), "name: duplicate route name %q (first at %d:%d)", r.Name, first.Line, first.Column)
					continue
				}
				routeNode[r.Name] = l.nameNode(n)
				rf.Routes = append(rf.Routes, r)
			}
		}
	}
	for _, c := range rf.Consumers {
		if !used[c.Name] {
			l.warnf(consumerNode[c.Name], "consumer %q is not used by any route", c.Name)
		}
	}
	return rf
}

// nameNode is the `name:` value of a mapping, or the mapping itself, for positions.
func (l *loader) nameNode(n *yaml.Node) *yaml.Node {
	n = deref(n)
	if n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == "name" {
				return deref(n.Content[i+1])
			}
		}
	}
	return n
}

// ---- routes ----

var routeKeys = []string{"name", "table", "messages", "stage", "mode", "filteringAttributes", "changed",
	"filter", "conditions", "select", "exclude", "fetch", "consumers", "source", "reconcile"}

// KnownMessages are the Dataverse messages whose names the loader corrects to their canonical
// case. Other messages are accepted too: a name with an underscore is a custom action or custom
// API (publisher prefix, `new_MyAction`); any other name gets a warning, as it may be a typo.
var KnownMessages = []string{"Create", "Update", "Delete", "Associate", "Disassociate", "SetState",
	"SetStateDynamicEntity", "Assign", "Merge", "GrantAccess", "ModifyAccess", "RevokeAccess", "Upsert",
	"Retrieve", "RetrieveMultiple", "Win", "Lose", "QualifyLead", "Send", "Close"}

var (
	messageRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]{0,99}$`)
	tableRE   = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]{0,99}$`)
	columnRE  = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,99}$`)
)

// route loads the i-th route; the boolean says whether it has a name (see consumer).
func (l *loader) route(n *yaml.Node, i int, consumers map[string]*Consumer, used map[string]bool) (Route, bool) {
	r := Route{Pos: nodePos(deref(n))}
	fs, ok := l.fields(n, fmt.Sprintf("routes[%d]", i))
	if !ok {
		return r, false
	}
	l.checkKeys(fs, routeKeys, nil)
	have := map[string]*yaml.Node{}
	for _, f := range fs {
		have[f.key.Value] = f.key
		switch f.key.Value {
		case "name":
			if s, ok := l.str(f); ok {
				if !nameRE.MatchString(s) {
					l.errorf(deref(f.val), "name: %q must be 1 to 64 letters, digits or '-', starting with a letter or digit", s)
				}
				r.Name = s
			}
		case "table":
			if s, ok := l.str(f); ok {
				if s != "*" && !tableRE.MatchString(s) {
					l.errorf(deref(f.val), "table: %q is not a table logical name (or \"*\" for any table)", s)
				}
				r.Table = strings.ToLower(s)
			}
		case "messages":
			r.Messages = l.messages(f)
		case "stage":
			r.Stage = l.stage(f)
		case "mode":
			if s, ok := l.str(f); ok {
				switch strings.ToLower(s) {
				case "sync", "async":
					r.Mode = strings.ToLower(s)
				default:
					l.errorf(deref(f.val), "mode: %q: want sync or async", s)
				}
			}
		case "filteringAttributes":
			r.FilteringAttributes = l.columns(f)
		case "changed":
			r.Changed = l.columns(f)
		case "select":
			r.Select = l.columns(f)
			if r.Select != nil && len(r.Select) == 0 {
				l.errorf(deref(f.val), "select: empty: leave it out to send every column")
			}
		case "exclude":
			r.Exclude = l.columns(f)
		case "fetch":
			if v := deref(f.val); v != nil && v.Kind == yaml.ScalarNode {
				if v.Value != "missing" {
					l.errorf(v, "fetch: %q: want missing (the columns the route reads that the event lacks) or a list of columns", v.Value)
				}
				r.FetchMissing = true
				break
			}
			r.Fetch = l.columns(f)
			if r.Fetch != nil && len(r.Fetch) == 0 {
				l.errorf(deref(f.val), "fetch: empty: leave it out, or say missing")
			}
		case "filter":
			if s, ok := l.str(f); ok {
				r.Filter = s
				r.FilterPos = l.exprPos(deref(f.val))
				if strings.TrimSpace(s) == "" {
					l.errorf(deref(f.val), "filter: empty: leave it out to match every row")
				}
			}
		case "conditions":
			ss, nodes, _ := l.strs(f)
			for j, s := range ss {
				if strings.TrimSpace(s) == "" {
					l.errorf(nodes[j], "conditions: an empty condition")
					continue
				}
				if !strings.HasPrefix(strings.TrimSpace(s), "@") {
					l.warnf(nodes[j], "conditions[%d]: does not start with @, so it is text, not an expression (as in Power Automate)", j)
				}
				r.Conditions = append(r.Conditions, s)
				r.ConditionPos = append(r.ConditionPos, l.exprPos(nodes[j]))
			}
		case "source", "reconcile":
			l.routeSource(f, &r) // routes_changes.go
		case "consumers":
			ss, nodes, ok := l.strs(f)
			if ok && len(ss) == 0 {
				l.errorf(deref(f.val), "consumers: empty: a route must feed at least one consumer")
			}
			for j, s := range ss {
				used[s] = true
				if contains(r.Consumers, s) {
					continue
				}
				if _, def := consumers[s]; !def {
					names := make([]string, 0, len(consumers))
					for k := range consumers {
						names = append(names, k)
					}
					sort.Strings(names)
					if sg := suggest(s, names); sg != "" {
						l.errorf(nodes[j], "consumers: unknown consumer %q (did you mean %q?)", s, sg)
					} else {
						l.errorf(nodes[j], "consumers: unknown consumer %q (defined: %s)", s, strings.Join(names, ", "))
					}
				}
				r.Consumers = append(r.Consumers, s)
			}
		}
	}
	where := deref(n)
	label := fmt.Sprintf("routes[%d]", i)
	if r.Name != "" {
		label = fmt.Sprintf("route %q", r.Name)
	}
	for _, req := range []string{"name", "table", "consumers"} {
		if have[req] == nil {
			hint := ""
			if req == "table" {
				hint = ` ("*" for any table)`
			}
			l.errorf(where, "%s: %s is required%s", label, req, hint)
		}
	}
	if len(r.Select) > 0 || len(r.Exclude) > 0 {
		for _, name := range r.Consumers {
			if c := consumers[name]; c != nil && c.Format == "raw" {
				key := have["select"]
				if key == nil {
					key = have["exclude"]
				}
				l.errorf(key, "consumer %q takes format raw, the original bytes, which select/exclude cannot shape (personal data would leak): use format row or cloudevent", name)
			}
		}
	}
	for _, c := range r.Select {
		if contains(r.Exclude, c) {
			l.warnf(have["select"], "select: %s is also in exclude; exclude wins", c)
		}
	}
	if (r.FetchMissing || len(r.Fetch) > 0) && len(r.Messages) > 0 && !slices.ContainsFunc(r.Messages, func(m string) bool { return m != "Delete" }) {
		l.warnf(have["fetch"], "fetch: a deleted row cannot be read, and this route's messages are [%s]", strings.Join(r.Messages, ", "))
	}
	update := len(r.Messages) == 0 || contains(r.Messages, "Update")
	if len(r.FilteringAttributes) > 0 && !update {
		l.warnf(have["filteringAttributes"], "filteringAttributes: apply to Update only, and this route's messages [%s] leave Update out", strings.Join(r.Messages, ", "))
	}
	if len(r.Changed) > 0 {
		if !update {
			l.warnf(have["changed"], "changed: applies to Update only, and this route's messages [%s] leave Update out", strings.Join(r.Messages, ", "))
		} else {
			l.warnf(have["changed"], "changed: needs a pre-image holding [%s] registered on the Dataverse step; on an event without one, a listed column in the Target counts as changed", strings.Join(r.Changed, ", "))
		}
	}
	if r.Mode == "async" && (r.Stage == 10 || r.Stage == 20) {
		l.warnf(have["mode"], "mode: async never matches at stage %d: Dataverse runs asynchronous steps only at postoperation (40)", r.Stage)
	}
	l.checkSource(&r, have, consumers) // routes_changes.go
	return r, r.Name != ""
}

func (l *loader) messages(f field) []string {
	if v := deref(f.val); v.Kind == yaml.SequenceNode && len(v.Content) == 0 {
		l.errorf(deref(f.val), "messages: empty: leave it out to match every message")
		return nil
	}
	ss, nodes, _ := l.strs(f)
	var out []string
	for j, s := range ss {
		name := s
		known := false
		for _, k := range KnownMessages {
			if strings.EqualFold(k, s) {
				name, known = k, true
				break
			}
		}
		switch {
		case !messageRE.MatchString(s):
			l.errorf(nodes[j], "messages: %q is not a message name", s)
			continue
		case known, strings.Contains(s, "_"):
		default:
			if sg := suggest(s, KnownMessages); sg != "" {
				l.warnf(nodes[j], "messages: %q is not a known message (did you mean %q?); treated as a custom message", s, sg)
			} else {
				l.warnf(nodes[j], "messages: %q is not a known message; treated as a custom message", s)
			}
		}
		if !contains(out, name) {
			out = append(out, name)
		}
	}
	return out
}

func (l *loader) stage(f field) int {
	v := deref(f.val)
	if v.Kind == yaml.ScalarNode {
		switch strings.ToLower(v.Value) {
		case "10", "prevalidation":
			return 10
		case "20", "preoperation":
			return 20
		case "40", "postoperation":
			return 40
		}
	}
	l.errorf(v, "stage: want 10, 20 or 40 (prevalidation, preoperation, postoperation), got %s", describeValue(v))
	return 0
}

// columns reads a list of column logical names, lower-cased as Dataverse spells them.
func (l *loader) columns(f field) []string {
	ss, nodes, ok := l.strs(f)
	if !ok && ss == nil {
		return nil
	}
	out := make([]string, 0, len(ss))
	for j, s := range ss {
		if !columnRE.MatchString(s) {
			l.errorf(nodes[j], "%s: %q is not a column logical name", f.key.Value, s)
			continue
		}
		s = strings.ToLower(s)
		if !contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

package webapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"unicode/utf8"

	"github.com/dvrouter/dvrouter/pkg/dataverse"
)

// decodeRow reads a Web API entity into a Row, numbers kept exact (json.Number), the OData
// bookkeeping (@odata.context, @odata.etag) left out.
//
// A row read with $select is one flat object of strings, numbers, booleans and nulls. That
// common shape is read here in one pass, each string without escapes a substring of the body;
// encoding/json, reflecting into a map, took half of a re-read's CPU (BenchmarkEnrichment).
// Anything else (a nested value, an escape, a doubtful number) goes to encoding/json, whose
// answer is the same and whose errors are the errors.
func decodeRow(body []byte) (dataverse.Row, error) {
	if row, ok := flatRow(body); ok {
		return row, nil
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var row dataverse.Row
	if err := dec.Decode(&row); err != nil {
		return nil, err
	}
	if row == nil {
		return nil, errors.New("the answer is not a JSON object")
	}
	for k := range row {
		if strings.HasPrefix(k, "@odata.") {
			delete(row, k)
		}
	}
	return row, nil
}

// flatRow is decodeRow's fast path; false means "not this simple shape", never an error.
func flatRow(body []byte) (dataverse.Row, bool) {
	s := string(body) // one copy; keys and values are substrings of it
	if !utf8.ValidString(s) {
		return nil, false // encoding/json replaces what is not UTF-8
	}
	i := skipSpace(s, 0)
	if i >= len(s) || s[i] != '{' {
		return nil, false
	}
	// Room for the columns (at least one ':' each; a count of single bytes is the fast kind)
	// and for the few the event adds when the row is merged into it.
	row := make(dataverse.Row, strings.Count(s, ":")+8)
	i = skipSpace(s, i+1)
	if i < len(s) && s[i] == '}' {
		return row, skipSpace(s, i+1) == len(s)
	}
	for {
		key, j, ok := plainString(s, i)
		if !ok {
			return nil, false
		}
		i = skipSpace(s, j)
		if i >= len(s) || s[i] != ':' {
			return nil, false
		}
		i = skipSpace(s, i+1)
		if i >= len(s) {
			return nil, false
		}
		var v any
		switch c := s[i]; {
		case c == '"':
			str, j, ok := plainString(s, i)
			if !ok {
				return nil, false
			}
			v, i = str, j
		case c == '-' || '0' <= c && c <= '9':
			j, ok := number(s, i)
			if !ok {
				return nil, false
			}
			v, i = json.Number(s[i:j]), j
		case strings.HasPrefix(s[i:], "true"):
			v, i = true, i+4
		case strings.HasPrefix(s[i:], "false"):
			v, i = false, i+5
		case strings.HasPrefix(s[i:], "null"):
			v, i = nil, i+4
		default:
			return nil, false // an object or array: encoding/json
		}
		if !strings.HasPrefix(key, "@odata.") {
			n := len(row)
			if row[key] = v; len(row) == n {
				return nil, false // a repeated key: encoding/json's rule (the last wins) applies
			}
		}
		i = skipSpace(s, i)
		if i >= len(s) {
			return nil, false
		}
		switch s[i] {
		case ',':
			i = skipSpace(s, i+1)
		case '}':
			return row, skipSpace(s, i+1) == len(s)
		default:
			return nil, false
		}
	}
}

// plainString reads the string at s[i]: a substring of s when it has no escapes (the usual
// case), else unescaped by encoding/json (an @odata.etag always has them: W/\"81052965\").
func plainString(s string, i int) (string, int, bool) {
	if i >= len(s) || s[i] != '"' {
		return "", 0, false
	}
	end := strings.IndexByte(s[i+1:], '"')
	if end < 0 {
		return "", 0, false
	}
	j := i + 1 + end
	if strings.IndexByte(s[i+1:j], '\\') < 0 {
		for k := i + 1; k < j; k++ {
			if s[k] < 0x20 {
				return "", 0, false
			}
		}
		return s[i+1 : j], j + 1, true
	}
	// Escapes: find the closing quote, one not escaped, and let encoding/json unescape.
	for j = i + 1; j < len(s); j++ {
		switch s[j] {
		case '\\':
			j++
		case '"':
			var out string
			if json.Unmarshal([]byte(s[i:j+1]), &out) != nil {
				return "", 0, false
			}
			return out, j + 1, true
		}
	}
	return "", 0, false
}

func skipSpace(s string, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\n' || s[i] == '\r' || s[i] == '\t') {
		i++
	}
	return i
}

// number reads a JSON number at s[i] (RFC 8259: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?)
// and returns where it ends.
func number(s string, i int) (int, bool) {
	digits := func(j int) int {
		for j < len(s) && '0' <= s[j] && s[j] <= '9' {
			j++
		}
		return j
	}
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && '1' <= s[i] && s[i] <= '9':
		i = digits(i)
	default:
		return 0, false
	}
	if i < len(s) && s[i] == '.' {
		j := digits(i + 1)
		if j == i+1 {
			return 0, false
		}
		i = j
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		j := digits(i)
		if j == i {
			return 0, false
		}
		i = j
	}
	return i, true
}

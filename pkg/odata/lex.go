package odata

import (
	"fmt"
	"strings"
)

type tokKind uint8

const (
	tEOF tokKind = iota
	tIdent
	tString
	tNumber
	tGUID
	tDateTime
	tDate
	tLParen
	tRParen
	tComma
)

type token struct {
	kind tokKind
	off  int    // byte offset of the token's first character
	text string // identifier, unescaped string, or literal text
}

func (t token) describe() string {
	switch t.kind {
	case tEOF:
		return "end of expression"
	case tIdent:
		return fmt.Sprintf("%q", t.text)
	case tString:
		return "string literal"
	case tNumber:
		return "number " + t.text
	case tGUID:
		return "GUID " + t.text
	case tDateTime, tDate:
		return "date " + t.text
	case tLParen:
		return `"("`
	case tRParen:
		return `")"`
	case tComma:
		return `","`
	}
	return "token"
}

// lexer splits a filter into tokens. Literals that start like numbers (GUIDs, dates, date-times)
// are recognised by shape before numbers, because OData writes them unquoted.
type lexer struct {
	src string
	pos int
}

func (l *lexer) next() (token, error) {
	s := l.src
	for l.pos < len(s) && isSpace(s[l.pos]) {
		l.pos++
	}
	start := l.pos
	if start >= len(s) {
		return token{kind: tEOF, off: start}, nil
	}
	c := s[start]
	switch {
	case c == '(':
		l.pos++
		return token{kind: tLParen, off: start}, nil
	case c == ')':
		l.pos++
		return token{kind: tRParen, off: start}, nil
	case c == ',':
		l.pos++
		return token{kind: tComma, off: start}, nil
	case c == '\'':
		return l.str()
	case c == '/':
		return token{}, &Error{Offset: start, Msg: "navigation properties (a/b) are not supported; filter on the lookup column _x_value instead"}
	case c == '@' || c == '$':
		return token{}, &Error{Offset: start, Msg: "parameter aliases and $-variables are not supported"}
	case c == '"':
		return token{}, &Error{Offset: start, Msg: "strings are written in single quotes: 'text'"}
	}
	if isHex(c) && guidAt(s, start) {
		l.pos = start + 36
		return token{kind: tGUID, off: start, text: s[start:l.pos]}, nil
	}
	if at := guidMismatch(s, start); at >= 0 {
		return token{}, &Error{Offset: at, Msg: "malformed GUID: want 8-4-4-4-12 hexadecimal digits, like 01234567-89ab-cdef-0123-456789abcdef"}
	}
	// A sign may lead a number: the ABNF's decimalValue and friends allow "+" as well as "-".
	if isDigit(c) || ((c == '-' || c == '+') && start+1 < len(s) && isDigit(s[start+1])) {
		return l.numberLike()
	}
	if isIdentStart(c) {
		l.pos++
		for l.pos < len(s) && (isIdentPart(s[l.pos]) || s[l.pos] == '.') {
			l.pos++
		}
		return token{kind: tIdent, off: start, text: s[start:l.pos]}, nil
	}
	return token{}, &Error{Offset: start, Msg: fmt.Sprintf("unexpected character %q", rune(c))}
}

func (l *lexer) str() (token, error) {
	s := l.src
	start := l.pos
	i := start + 1
	var b strings.Builder
	plain := true // no '' escape seen: the value is a substring of the source, no copy needed
	for i < len(s) {
		if s[i] == '\'' {
			if i+1 < len(s) && s[i+1] == '\'' {
				if plain {
					plain = false
					b.WriteString(s[start+1 : i])
				}
				b.WriteByte('\'')
				i += 2
				continue
			}
			l.pos = i + 1
			if plain {
				return token{kind: tString, off: start, text: s[start+1 : i]}, nil
			}
			return token{kind: tString, off: start, text: b.String()}, nil
		}
		if !plain {
			b.WriteByte(s[i])
		}
		i++
	}
	return token{}, &Error{Offset: start, Msg: "unterminated string literal (a quote inside a string is written '')"}
}

// numberLike reads a date-time, a date or a number.
func (l *lexer) numberLike() (token, error) {
	s := l.src
	start := l.pos
	if isDigit(s[start]) {
		if n := dateTimeLen(s[start:]); n > 0 {
			l.pos = start + n
			text := s[start:l.pos]
			if _, _, ok := parseDateTime(text); !ok {
				return token{}, &Error{Offset: start, Msg: "invalid date-time " + text}
			}
			kind := tDateTime
			if n == 10 {
				kind = tDate
			}
			if l.pos < len(s) && isIdentPart(s[l.pos]) {
				return token{}, &Error{Offset: start, Msg: "malformed date-time literal"}
			}
			return token{kind: kind, off: start, text: text}, nil
		}
	}
	i := start
	if s[i] == '-' || s[i] == '+' {
		i++
	}
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	if i < len(s) && s[i] == '.' {
		i++
		if i >= len(s) || !isDigit(s[i]) {
			return token{}, &Error{Offset: start, Msg: "malformed number: digits expected after '.'"}
		}
		for i < len(s) && isDigit(s[i]) {
			i++
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		j := i + 1
		if j < len(s) && (s[j] == '+' || s[j] == '-') {
			j++
		}
		if j < len(s) && isDigit(s[j]) {
			for j < len(s) && isDigit(s[j]) {
				j++
			}
			i = j
		}
	}
	if i < len(s) && (isIdentPart(s[i]) || s[i] == '.' || s[i] == ':') {
		// The offset is the first character that does not belong, as the OASIS test cases
		// place a literal's failure.
		return token{}, &Error{Offset: i, Msg: fmt.Sprintf("malformed literal %q (type suffixes such as 1.5M are OData v3 and not accepted)", s[start:min(len(s), i+1)])}
	}
	l.pos = i
	text := s[start:i]
	if text[0] == '+' {
		text = text[1:] // +42 is 42
	}
	return token{kind: tNumber, off: start, text: text}, nil
}

// dateTimeLen returns the length of the date or date-time literal at the start of s, judged by
// shape only (YYYY-MM-DD, optionally followed by THH:MM[:SS[.fff]][Z|±HH:MM]), or 0.
func dateTimeLen(s string) int {
	if len(s) < 10 || !digits(s[0:4]) || s[4] != '-' || !digits(s[5:7]) || s[7] != '-' || !digits(s[8:10]) {
		return 0
	}
	if len(s) == 10 || (s[10] != 'T' && s[10] != 't') {
		return 10
	}
	i := 11
	if len(s) < i+5 || !digits(s[i:i+2]) || s[i+2] != ':' || !digits(s[i+3:i+5]) {
		return 10 // the lexer then reports the stray "T..."
	}
	i += 5
	if i+3 <= len(s) && s[i] == ':' && digits(s[i+1:i+3]) {
		i += 3
		if i+1 < len(s) && s[i] == '.' && isDigit(s[i+1]) {
			i++
			for i < len(s) && isDigit(s[i]) {
				i++
			}
		}
	}
	if i < len(s) {
		switch s[i] {
		case 'Z', 'z':
			i++
		case '+', '-':
			if i+6 <= len(s) && digits(s[i+1:i+3]) && s[i+3] == ':' && digits(s[i+4:i+6]) {
				i += 6
			}
		}
	}
	return i
}

func guidAt(s string, i int) bool {
	if len(s)-i < 36 {
		return false
	}
	for j := 0; j < 36; j++ {
		c := s[i+j]
		switch j {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !isHex(c) {
				return false
			}
		}
	}
	return i+36 == len(s) || !isIdentPart(s[i+36])
}

// guidMismatch returns the offset of the first character that breaks the GUID shape when the
// text at i starts like a GUID (eight hex digits and a dash) but is not one, else -1.
func guidMismatch(s string, i int) int {
	if len(s)-i < 9 || s[i+8] != '-' {
		return -1
	}
	for j := 0; j < 8; j++ {
		if !isHex(s[i+j]) {
			return -1
		}
	}
	for j := 9; j < 36; j++ {
		if i+j >= len(s) {
			return len(s)
		}
		c := s[i+j]
		switch j {
		case 13, 18, 23:
			if c != '-' {
				return i + j
			}
		default:
			if !isHex(c) {
				return i + j
			}
		}
	}
	return i + 36 // a GUID followed by a letter or digit
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return len(s) > 0
}

func isSpace(c byte) bool      { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }
func isDigit(c byte) bool      { return c >= '0' && c <= '9' }
func isHex(c byte) bool        { return isDigit(c) || (c|0x20 >= 'a' && c|0x20 <= 'f') }
func isIdentStart(c byte) bool { return c == '_' || (c|0x20 >= 'a' && c|0x20 <= 'z') }
func isIdentPart(c byte) bool  { return isIdentStart(c) || isDigit(c) }

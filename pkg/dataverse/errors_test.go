package dataverse

import (
	"errors"
	"strings"
	"testing"
)

func TestDecode_SyntaxErrorsCarryTheOffset(t *testing.T) {
	tests := []struct {
		name   string
		body   string
		offset int64
	}{
		{"unterminated object", `{"MessageName":"Create"`, 23},
		{"trailing comma in object", `{"MessageName":"Create",}`, 24},
		{"missing colon", `{"MessageName" "Create"}`, 15},
		{"bad literal", `{"IsInTransaction":tru}`, 22},
		{"bad number", `{"Depth":01}`, 10},
		{"number without digits after point", `{"Depth":1.}`, 11},
		{"bad escape", `{"MessageName":"a\qb"}`, 17},
		{"bad unicode escape", `{"MessageName":"\u12G4"}`, 16},
		{"control character in string", "{\"MessageName\":\"a\nb\"}", 17},
		{"unterminated string", `{"MessageName":"abc`, 19},
		{"garbage after the object", `{"MessageName":"Create"} x`, 25},
		{"two objects", `{"a":1}{"b":2}`, 7},
		{"offset counts the BOM", "\xEF\xBB\xBF{\"a\":}", 8},
		{"error deep inside an attribute", ctxWith(`{"key":"a","value":[1,2,,3]}`, ""), int64(strings.Index(ctxWith(`{"key":"a","value":[1,2,,3]}`, ""), ",,") + 1)},
		{"broken array at top level", `[1,2`, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode([]byte(tt.body))
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("err = %v, want a *SyntaxError", err)
			}
			if se.Offset != tt.offset {
				t.Errorf("offset = %d, want %d (%v)", se.Offset, tt.offset, se)
			}
			if !IsSyntax(err) || IsShape(err) || IsNotJSON(err) {
				t.Errorf("classification wrong for %v", err)
			}
		})
	}
}

func TestDecode_ShapeErrorsNameTheField(t *testing.T) {
	tests := []struct {
		name  string
		body  string
		field string
	}{
		{"empty object", `{}`, "MessageName"},
		{"missing table", `{"MessageName":"Create"}`, "PrimaryEntityName"},
		{"null message", `{"MessageName":null,"PrimaryEntityName":"account"}`, "MessageName"},
		{"message not a string", `{"MessageName":5,"PrimaryEntityName":"account"}`, "MessageName"},
		{"stage not a number", `{"MessageName":"Create","PrimaryEntityName":"account","Stage":"40"}`, "Stage"},
		{"stage not whole", `{"MessageName":"Create","PrimaryEntityName":"account","Stage":40.5}`, "Stage"},
		{"mode out of range", `{"MessageName":"Create","PrimaryEntityName":"account","Mode":7}`, "Mode"},
		{"input parameters an object", `{"MessageName":"Create","PrimaryEntityName":"account","InputParameters":{}}`, "InputParameters"},
		{"target a string", `{"MessageName":"Create","PrimaryEntityName":"account","InputParameters":[{"key":"Target","value":"x"}]}`, "InputParameters.Target"},
		{"created on not a date", `{"MessageName":"Create","PrimaryEntityName":"account","OperationCreatedOn":"yesterday"}`, "OperationCreatedOn"},
		{"attributes not an array", ctxWithRaw(`"Attributes":{}`), "Attributes"},
		{"image not an entity", `{"MessageName":"Update","PrimaryEntityName":"account","PostEntityImages":[{"key":"a","value":[1]}]}`, "PostEntityImages"},
		{"a JSON array", `[{"MessageName":"Create"}]`, ""},
		{"a JSON string", `"hello"`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode([]byte(tt.body))
			var se *ShapeError
			if !errors.As(err, &se) {
				t.Fatalf("err = %v, want a *ShapeError", err)
			}
			if se.Field != tt.field {
				t.Errorf("field = %q, want %q (%v)", se.Field, tt.field, se)
			}
			if !IsShape(err) || IsSyntax(err) || IsNotJSON(err) {
				t.Errorf("classification wrong for %v", err)
			}
		})
	}
}

func ctxWithRaw(entityMembers string) string {
	return `{"MessageName":"Create","PrimaryEntityName":"contact","InputParameters":[{"key":"Target","value":` +
		`{"__type":"Entity` + ns + `,` + entityMembers + `,"LogicalName":"contact"}}]}`
}

func TestDecode_SyntaxErrorWinsOverShapeError(t *testing.T) {
	// The first problem met is a wrong type, but the body is also broken further on: that is
	// what the sender must fix first, and it is a 400, not a 422.
	_, err := Decode([]byte(`{"MessageName":5,"PrimaryEntityName":"account","x":[}`))
	if !IsSyntax(err) {
		t.Fatalf("err = %v, want a *SyntaxError", err)
	}
}

func TestDecode_NotJSON(t *testing.T) {
	tests := []struct {
		name string
		body []byte
		says string
	}{
		{"empty", nil, "empty"},
		{"whitespace only", []byte(" \r\n\t"), "empty"},
		{"text XML", []byte(`<?xml version="1.0"?><RemoteExecutionContext/>`), "XML"},
		{"binary XML", []byte{0x40, 0x16, 'R', 'e', 'm', 'o', 't', 'e', 0x09, 0x01, 0x61}, "binary XML"},
		{"binary XML prefix element", []byte{0x56, 0x02, 0x0b, 0x01, 's', 0x04}, "binary XML"},
		{"UTF-16 BOM", []byte{0xFF, 0xFE, '{', 0}, "UTF-16"},
		{"plain text", []byte("Hello, world"), "starts with 'H'"},
		{"random bytes", []byte{0x9c, 0x00, 0x13}, `starts with '\x9c'`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode(tt.body)
			if !errors.Is(err, ErrNotJSON) || !IsNotJSON(err) {
				t.Fatalf("err = %v, want one wrapping ErrNotJSON", err)
			}
			if IsSyntax(err) || IsShape(err) {
				t.Errorf("classification wrong for %v", err)
			}
			if !strings.Contains(err.Error(), tt.says) {
				t.Errorf("err = %q, want it to say %q", err, tt.says)
			}
		})
	}
}

func TestDecode_DeepNestingIsRefused(t *testing.T) {
	for _, tt := range []struct {
		name string
		body string
	}{
		{"arrays in an unknown key", `{"x":` + strings.Repeat("[", 100000) + strings.Repeat("]", 100000) + `}`},
		{"objects in an attribute", ctxWith(`{"key":"a","value":`+strings.Repeat(`{"a":`, 100)+`1`+strings.Repeat(`}`, 100)+`}`, "")},
		{"unterminated", strings.Repeat("[", 1<<20)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode([]byte(tt.body))
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("err = %v, want a *SyntaxError", err)
			}
			if !strings.Contains(se.Msg, "nesting") {
				t.Errorf("message %q does not say why", se.Msg)
			}
		})
	}
}

func TestDecode_NestingAtTheLimitIsAccepted(t *testing.T) {
	// The context is level 1; the unknown member's arrays fill the rest up to MaxDepth.
	n := MaxDepth - 1
	body := `{"MessageName":"Create","PrimaryEntityName":"account","x":` + strings.Repeat("[", n) + strings.Repeat("]", n) + `}`
	if _, err := Decode([]byte(body)); err != nil {
		t.Fatalf("depth %d refused: %v", MaxDepth, err)
	}
}

func TestErrorMessagesAreOneLine(t *testing.T) {
	for _, body := range []string{``, `{`, `{}`, `<x/>`, "{\"a\":\"\x01\"}"} {
		_, err := Decode([]byte(body))
		if err == nil || strings.ContainsAny(err.Error(), "\n\r") {
			t.Errorf("Decode(%q) error %q: want a one-line error", body, err)
		}
	}
}

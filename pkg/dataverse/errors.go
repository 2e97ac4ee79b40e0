package dataverse

import (
	"errors"
	"fmt"
)

// Decode reports three kinds of failure, so a caller can answer each with its own status
// (400, 422, and a clear refusal for bodies that are not JSON at all). Tell them apart with
// errors.As (*SyntaxError, *ShapeError) and errors.Is (ErrNotJSON), or with IsSyntax, IsShape
// and IsNotJSON.

// ErrNotJSON is wrapped by every error for a body that is not JSON at all: empty, text XML,
// .NET binary XML (a Service Bus endpoint with messageformat 1), or arbitrary bytes.
var ErrNotJSON = errors.New("body is not JSON")

// SyntaxError is a body that is not well-formed in its format (JSON, text XML or .NET binary
// XML), or nests deeper than MaxDepth.
type SyntaxError struct {
	// Format names the format: "" for JSON (Decode, DecodeWith), "XML" or ".NET binary XML".
	Format string
	// Offset is the byte offset of the problem in the body as received (a BOM counts).
	Offset int64
	Msg    string
}

func (e *SyntaxError) Error() string {
	format := e.Format
	if format == "" {
		format = "JSON"
	}
	return fmt.Sprintf("malformed %s at byte %d: %s", format, e.Offset, e.Msg)
}

// ShapeError is well-formed JSON that is not a RemoteExecutionContext: a required field is
// missing, or a field has the wrong type.
type ShapeError struct {
	// Field names the field, as a dotted path from the top of the context
	// (for example "MessageName" or "InputParameters.Target.Attributes").
	Field string
	Msg   string
}

func (e *ShapeError) Error() string {
	if e.Field == "" {
		return "not a RemoteExecutionContext: " + e.Msg
	}
	return fmt.Sprintf("not a RemoteExecutionContext: %s: %s", e.Field, e.Msg)
}

// notJSONError says what the body looks like instead of JSON.
type notJSONError struct{ what string }

func (e *notJSONError) Error() string { return ErrNotJSON.Error() + ": " + e.what }
func (e *notJSONError) Unwrap() error { return ErrNotJSON }

// IsSyntax reports whether err is, or wraps, a *SyntaxError.
func IsSyntax(err error) bool {
	var se *SyntaxError
	return errors.As(err, &se)
}

// IsShape reports whether err is, or wraps, a *ShapeError.
func IsShape(err error) bool {
	var se *ShapeError
	return errors.As(err, &se)
}

// IsNotJSON reports whether err says the body is not JSON at all.
func IsNotJSON(err error) bool { return errors.Is(err, ErrNotJSON) }

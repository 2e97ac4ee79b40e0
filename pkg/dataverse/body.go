package dataverse

import (
	"fmt"
	"mime"
	"strings"
	"sync"
)

var binReaders = sync.Pool{New: func() any { return new(binReader) }}

// Format is one of the three message formats a Dataverse Service Bus endpoint can send
// (its messageformat: 1 binary XML, 2 Json, 3 XML). All three carry the same
// RemoteExecutionContext, as DataContract serializers write it.
type Format uint8

const (
	FormatUnknown Format = iota
	FormatJSON           // application/json: DataContractJsonSerializer
	FormatXML            // application/xml: DataContractSerializer, text XML
	FormatBinary         // application/msbin1: DataContractSerializer on a binary XML writer [MC-NBFX]
)

// String gives the format's content type.
func (f Format) String() string {
	switch f {
	case FormatJSON:
		return "application/json"
	case FormatXML:
		return "application/xml"
	case FormatBinary:
		return "application/msbin1"
	}
	return "unknown"
}

// ParseFormat reads a content type (parameters allowed) or a short name: json, xml, msbin1
// (binary too). It reports false for anything else, an empty string included.
func ParseFormat(contentType string) (Format, bool) {
	ct := strings.ToLower(strings.TrimSpace(contentType))
	if mt, _, err := mime.ParseMediaType(ct); err == nil {
		ct = mt
	}
	switch ct {
	case "json", "application/json", "text/json":
		return FormatJSON, true
	case "xml", "application/xml", "text/xml":
		return FormatXML, true
	case "msbin1", "binary", "application/msbin1", "application/soap+msbin1":
		return FormatBinary, true
	}
	return FormatUnknown, false
}

// Sniff tells the format from the body's first bytes: '<' (after a BOM or whitespace) is text
// XML, an element record of binary XML (0x40 to 0x77, [MC-NBFX] 2.2.1) is msbin1, anything else
// is taken for JSON, whose decoder then says what the body is instead.
func Sniff(body []byte) Format {
	b := body
	if len(b) >= 3 && b[0] == 0xEF && b[1] == 0xBB && b[2] == 0xBF {
		b = b[3:]
	}
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t' || b[0] == '\r' || b[0] == '\n') {
		b = b[1:]
	}
	switch {
	case len(b) == 0:
		return FormatJSON
	case b[0] == '<':
		return FormatXML
	case len(body) > 0 && (body[0] == 0x02 || (body[0] >= 0x40 && body[0] <= 0x77)) && hasControl(string(body[:min(len(body), 64)])):
		// A binary body starts right away with an element (or comment) record; a text one that
		// happens to start with '@' or a letter has no control bytes in its first line.
		return FormatBinary
	}
	return FormatJSON
}

// DecodeBody decodes a Service Bus message body in whichever of the three formats it is in: the
// one contentType names (the message's ContentType; see ParseFormat), else the one Sniff finds.
// XML and binary XML are transcoded to the JSON form and decoded by DecodeWith, so the three
// formats give the same Event for the same context. Event.Raw is then that JSON (the context as
// message format Json would carry it), so that consumers of the raw format, the failure store and
// replay always see JSON; the body as received is not kept in the event.
//
// Errors are those of DecodeWith; a malformed XML or binary body gives a *SyntaxError whose
// Format names the format and whose Offset is the byte offset in the body as received.
func DecodeBody(raw []byte, contentType string, opts DecodeOptions) (ev *Event, err error) {
	f, ok := ParseFormat(contentType)
	if !ok {
		f = Sniff(raw)
	}
	return DecodeFormat(raw, f, opts)
}

// DecodeFormat decodes a body in format f (FormatUnknown: sniffed). See DecodeBody.
func DecodeFormat(raw []byte, f Format, opts DecodeOptions) (ev *Event, err error) {
	if f == FormatUnknown {
		f = Sniff(raw)
	}
	if f == FormatJSON {
		return DecodeWith(raw, opts)
	}
	defer func() {
		if r := recover(); r != nil {
			ev, err = nil, fmt.Errorf("decode %s: internal error: %v", f, r)
		}
	}()
	return decodeXMLForm(raw, f, opts)
}

// maxExpansion bounds the JSON a body may transcode to, as a multiple of its size: real bodies
// give less JSON than binary XML (about 1.2 times) and far less than text XML.
const maxExpansion = 8

func decodeXMLForm(raw []byte, f Format, opts DecodeOptions) (*Event, error) {
	var js []byte
	var err error
	limit := maxExpansion*len(raw) + 4096
	if f == FormatBinary {
		if len(raw) == 0 {
			return nil, &SyntaxError{Format: formatBinary, Msg: "the body is empty"}
		}
		r := binReaders.Get().(*binReader)
		r.reset(raw)
		// The JSON of a binary body is a little smaller than the body.
		js, err = transcode(r, formatBinary, limit, len(raw))
		r.reset(nil)
		binReaders.Put(r)
	} else {
		if len(raw) == 0 {
			return nil, &SyntaxError{Format: formatXML, Msg: "the body is empty"}
		}
		js, err = transcode(newTextReader(raw), formatXML, limit, len(raw)/2)
	}
	if err != nil {
		return nil, err
	}
	ev, err := decode(js, opts)
	if err != nil {
		if IsSyntax(err) {
			// The transcoder writes well-formed JSON within MaxDepth; this is a bug, said plainly.
			return nil, fmt.Errorf("decode %s: transcoded JSON refused: %w", f, err)
		}
		return nil, err
	}
	return ev, nil
}

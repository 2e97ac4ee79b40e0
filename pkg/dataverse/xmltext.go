package dataverse

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"strconv"
	"strings"
)

// textReader reads text XML (application/xml: what DataContractSerializer writes, Dataverse's
// message format 3) with encoding/xml, which checks well-formedness, matching tags and character
// references; the namespace scope is kept here to resolve xsi:type values, which encoding/xml
// leaves as written.
type textReader struct {
	d     *xml.Decoder
	base  int // bytes removed before the decoder's input (a BOM)
	depth int
	ns    nsScope
}

const formatXML = "XML"

func newTextReader(b []byte) *textReader {
	base := 0
	if bytes.HasPrefix(b, []byte("\xEF\xBB\xBF")) {
		b, base = b[3:], 3
	}
	d := xml.NewDecoder(bytes.NewReader(b))
	d.Strict = true
	// Only UTF-8 (and its ASCII subset) is read: a declaration naming another encoding is refused
	// with a clear error rather than decoded wrongly.
	d.CharsetReader = func(label string, r io.Reader) (io.Reader, error) {
		if strings.EqualFold(label, "utf-8") || strings.EqualFold(label, "us-ascii") {
			return r, nil
		}
		return nil, errors.New("encoding " + strconv.Quote(label) + " is not supported (UTF-8 only)")
	}
	return &textReader{d: d, base: base}
}

func (r *textReader) errAt(off int64, msg string) error {
	return &SyntaxError{Format: formatXML, Offset: int64(r.base) + off, Msg: msg}
}

func (r *textReader) next(n *xnode) error {
	for {
		off := r.d.InputOffset()
		tok, err := r.d.Token()
		if err == io.EOF {
			if r.depth > 0 {
				return r.errAt(r.d.InputOffset(), "unexpected end of input")
			}
			*n = xnode{kind: xEOF, off: int(off)}
			return nil
		}
		if err != nil {
			msg := err.Error()
			var se *xml.SyntaxError
			if errors.As(err, &se) {
				msg = se.Msg
			}
			return r.errAt(r.d.InputOffset(), msg)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if r.depth >= maxXMLDepth {
				return r.errAt(off, "elements nested deeper than "+strconv.Itoa(maxXMLDepth)+" levels")
			}
			r.depth++
			*n = xnode{kind: xStart, name: t.Name.Local, off: int(off) + r.base}
			r.ns.open()
			for _, a := range t.Attr {
				switch {
				case a.Name.Space == "xmlns":
					r.ns.declare(a.Name.Local, a.Value)
				case a.Name.Space == "" && a.Name.Local == "xmlns":
					r.ns.declare("", a.Value)
				}
			}
			for _, a := range t.Attr {
				if a.Name.Space != nsXSI {
					continue
				}
				switch a.Name.Local {
				case "type":
					n.typ, n.typNS = r.ns.resolveQName(strings.TrimSpace(a.Value))
				case "nil":
					v := strings.TrimSpace(a.Value)
					n.isNil = v == "true" || v == "1"
				}
			}
			return nil
		case xml.EndElement:
			r.depth--
			r.ns.close()
			*n = xnode{kind: xEnd, off: int(off) + r.base}
			return nil
		case xml.CharData:
			if r.depth == 0 {
				if len(bytes.TrimSpace(t)) > 0 {
					return r.errAt(off, "text outside the root element")
				}
				continue
			}
			*n = xnode{kind: xText, off: int(off) + r.base, text: xtext{k: tStr, s: string(t)}}
			return nil
		}
		// Comments, processing instructions (the XML declaration) and directives say nothing
		// about the context.
	}
}

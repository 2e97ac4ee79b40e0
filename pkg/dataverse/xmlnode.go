package dataverse

// The XML forms of a RemoteExecutionContext (text XML, application/xml, and .NET Binary XML,
// application/msbin1) are read by two small readers that yield the same stream of nodes, which
// transcode.go turns into the JSON form the decoder reads.

// xkind is what a node is.
type xkind uint8

const (
	xStart xkind = iota + 1
	xEnd
	xText
	xEOF
)

// xnode is one node of the stream: an element start (with what its xsi attributes say), an
// element end, or a piece of text content.
type xnode struct {
	kind xkind
	// name is the element's local name (xStart).
	name string
	// typ and typNS are the xsi:type of the element, its local name and namespace URI, when it
	// has one (xStart).
	typ, typNS string
	// isNil says the element carries xsi:nil="true" (xStart).
	isNil bool
	// closed says the element start is also its end (xStart): the reader saw it hold one text
	// record, now in text (hasText), or nothing. Binary XML says so in one record, and most
	// elements are such leaves; reporting them as one node saves two.
	closed, hasText bool
	text            xtext // xText
	// off is the byte offset of the node in the body, for errors.
	off int
}

// tkind is what a piece of text holds. Text XML gives strings only; binary XML records also
// carry typed values, kept as they are until the declared type says how to write them.
type tkind uint8

const (
	tStr      tkind = iota
	tBool           // i: 0 or 1
	tInt            // i
	tUint           // u
	tFloat          // f, from a 4-byte float (formatted at float precision)
	tDouble         // f
	tDecimal        // raw: the 16-byte DECIMAL
	tDateTime       // i: the 8-byte value, ticks and kind
	tUUID           // raw: 16 bytes in .NET Guid byte order
	tUniqueID       // raw: the same, written as "urn:uuid:..."
	tTimeSpan       // i: ticks
	tBytes          // s: the bytes
)

type xtext struct {
	k   tkind
	s   string
	i   int64
	u   uint64
	f   float64
	raw [16]byte
}

// xsource is a reader of one XML form.
type xsource interface {
	// next reads the next node into n. At the end of the body it gives xEOF; a body that is not
	// well-formed gives a *SyntaxError naming the format and the byte offset.
	next(n *xnode) error
}

// Namespaces the readers and the transcoder need to recognize.
const (
	nsXSI           = "http://www.w3.org/2001/XMLSchema-instance"
	nsXSD           = "http://www.w3.org/2001/XMLSchema"
	nsSerialization = "http://schemas.microsoft.com/2003/10/Serialization/"
	nsArrays        = "http://schemas.microsoft.com/2003/10/Serialization/Arrays"
	nsContracts     = "http://schemas.microsoft.com/xrm/2011/Contracts"
	nsDataContract  = "http://schemas.datacontract.org/2004/07/"
)

// nsScope maps prefixes to namespace URIs for the open elements. Each declaration is tagged
// with the depth of the element that made it, so that opening and closing an element that
// declares nothing (most do not) costs a counter.
type nsScope struct {
	decls []nsDecl
	depth int
}

type nsDecl struct {
	prefix, uri string
	depth       int
}

func (s *nsScope) open() { s.depth++ }

func (s *nsScope) declare(prefix, uri string) {
	s.decls = append(s.decls, nsDecl{prefix, uri, s.depth})
}

func (s *nsScope) close() {
	for len(s.decls) > 0 && s.decls[len(s.decls)-1].depth >= s.depth {
		s.decls = s.decls[:len(s.decls)-1]
	}
	if s.depth > 0 {
		s.depth--
	}
}

// lookup finds the URI of prefix, innermost declaration first; "xml" is bound by definition.
func (s *nsScope) lookup(prefix string) (string, bool) {
	for i := len(s.decls) - 1; i >= 0; i-- {
		if s.decls[i].prefix == prefix {
			return s.decls[i].uri, true
		}
	}
	if prefix == "xml" {
		return "http://www.w3.org/XML/1998/namespace", true
	}
	return "", prefix == ""
}

// resolveQName splits an xsi:type value "b:guid" and resolves its prefix.
func (s *nsScope) resolveQName(q string) (local, uri string) {
	prefix := ""
	for i := 0; i < len(q); i++ {
		if q[i] == ':' {
			prefix, q = q[:i], q[i+1:]
			break
		}
	}
	uri, _ = s.lookup(prefix)
	return q, uri
}

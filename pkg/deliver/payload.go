package deliver

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/dvrouter/dvrouter/pkg/dataverse"
)

// Payload formats (config.Consumer.Format) and their content types.
const (
	FormatRaw        = "raw"
	FormatRow        = "row"
	FormatCloudEvent = "cloudevent"

	contentTypeJSON       = "application/json"
	contentTypeCloudEvent = "application/cloudevents+json"
)

// encode renders ev in a consumer's format, shaped by the route's select and exclude.
//
//   - raw: ev.Raw as received, byte for byte, less a leading UTF-8 byte-order mark: RFC 8259
//     (section 8.1) forbids one in JSON sent over a network, and receivers' parsers (JSON.parse
//     behind the Standard Webhooks library's verify(), for one) refuse it. select and exclude
//     cannot apply to bytes dvrouter does not rewrite; the configuration refuses them.
//   - row: the normalized event, its row, images and changedColumns shaped (see shape).
//   - cloudevent: CloudEvents 1.0 structured JSON around the shaped normalized event: id the
//     event id, source "/organizations/<organizationId>" (a URI-reference that stays the same
//     when the organization is renamed), type "dataverse.<table>.<message>" in lower case,
//     subject the record id, time operationCreatedOn.
func encode(ev *dataverse.Event, format string, sel, excl []string) (body []byte, contentType string, err error) {
	switch format {
	case FormatRaw:
		return bytes.TrimPrefix(ev.Raw, utf8BOM), contentTypeJSON, nil
	case FormatRow, "":
		body, err = encodeExact(appendEvent, shape(ev, sel, excl))
		if err != nil {
			return nil, "", fmt.Errorf("encode payload: %w", err)
		}
		return body, contentTypeJSON, nil
	case FormatCloudEvent:
		body, err = encodeExact(appendCloudEvent, shape(ev, sel, excl))
		if err != nil {
			return nil, "", fmt.Errorf("encode payload: %w", err)
		}
		return body, contentTypeCloudEvent, nil
	}
	return nil, "", fmt.Errorf("unknown format %q", format)
}

var utf8BOM = []byte("\xEF\xBB\xBF")

// scratch holds encoding buffers between events. A payload is encoded into one, then copied
// out at its exact size: that allocates about a third less than a buffer sized by guess, and
// skips clearing the guess, which the copy does not need.
var scratch = sync.Pool{New: func() any { return new([]byte) }}

// maxScratch is the largest buffer kept between events: a rare huge payload's buffer is let go.
const maxScratch = 256 << 10

// encodeExact returns what appendTo writes for ev, in a slice of its own of just that size.
func encodeExact(appendTo func([]byte, *dataverse.Event) ([]byte, error), ev *dataverse.Event) ([]byte, error) {
	buf := scratch.Get().(*[]byte)
	defer scratch.Put(buf)
	b, err := appendTo((*buf)[:0], ev)
	if err != nil {
		return nil, err
	}
	if cap(b) <= maxScratch {
		*buf = b[:0]
	}
	return bytes.Clone(b), nil
}

// marshalStd is encoding/json without HTML escaping: consumers should get "<" as "<", as
// Dataverse sent it.
func marshalStd(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte{'\n'}), nil
}

// appendCloudEvent appends ev wrapped in a CloudEvents 1.0 structured-mode envelope.
func appendCloudEvent(b []byte, ev *dataverse.Event) ([]byte, error) {
	org := ev.OrganizationID
	if org == "" {
		org = ev.OrganizationName
	}
	b = append(b, `{"specversion":"1.0","id":`...)
	b = appendString(b, ev.ID)
	b = append(b, `,"source":`...)
	b = appendString(b, "/organizations/"+url.PathEscape(org))
	b = append(b, `,"type":`...)
	b = appendString(b, strings.ToLower("dataverse."+ev.Table+"."+ev.Message))
	if ev.RecordID != "" {
		b = append(b, `,"subject":`...)
		b = appendString(b, ev.RecordID)
	}
	// CloudEvents requires RFC 3339 for time; leave it out rather than send something else.
	if _, err := time.Parse(time.RFC3339Nano, ev.OperationCreatedOn); err == nil {
		b = append(b, `,"time":`...)
		b = appendString(b, ev.OperationCreatedOn)
	}
	b = append(b, `,"datacontenttype":"application/json","data":`...)
	b, err := appendEvent(b, ev)
	if err != nil {
		return nil, err
	}
	return append(b, '}'), nil
}

// shape returns ev with its row, pre-image, post-image and changedColumns limited to the
// columns a route sends: with a select list only those columns, never an excluded one (exclude
// wins). A column takes its annotations with it: selecting or excluding `parentcustomerid`
// covers `_parentcustomerid_value` and every `...@OData...`/`...@Microsoft.Dynamics.CRM...` key
// of either. Names compare case-insensitively. ev itself is not changed.
func shape(ev *dataverse.Event, sel, excl []string) *dataverse.Event {
	if len(sel) == 0 && len(excl) == 0 {
		return ev
	}
	s := newColumnSet(sel, excl)
	out := *ev
	out.Row = s.row(ev.Row)
	out.PreImage = s.row(ev.PreImage)
	out.PostImage = s.row(ev.PostImage)
	if ev.ChangedColumns != nil {
		out.ChangedColumns = make([]string, 0, len(ev.ChangedColumns))
		for _, c := range ev.ChangedColumns {
			if s.keeps(c) {
				out.ChangedColumns = append(out.ChangedColumns, c)
			}
		}
	}
	return &out
}

type columnSet struct {
	sel, excl map[string]bool
}

func newColumnSet(sel, excl []string) columnSet {
	columns := func(names []string) map[string]bool {
		if len(names) == 0 {
			return nil
		}
		m := make(map[string]bool, len(names))
		for _, n := range names {
			m[column(n)] = true
		}
		return m
	}
	return columnSet{sel: columns(sel), excl: columns(excl)}
}

func (s columnSet) row(r dataverse.Row) dataverse.Row {
	if r == nil {
		return nil
	}
	out := make(dataverse.Row, len(r))
	for k, v := range r {
		if s.keeps(k) {
			out[k] = v
		}
	}
	return out
}

// keeps reports whether the key (a column, a lookup's `_x_value`, or an annotation of either) is sent.
func (s columnSet) keeps(key string) bool {
	col := column(key)
	return !s.excl[col] && (s.sel == nil || s.sel[col])
}

// column is the column a row key belongs to, in lower case: `x`, `_x_value` and
// `_x_value@Some.Annotation` all belong to `x`.
func column(key string) string {
	base, _, _ := strings.Cut(strings.ToLower(key), "@")
	if inner, ok := strings.CutPrefix(base, "_"); ok {
		if inner, ok = strings.CutSuffix(inner, "_value"); ok && inner != "" {
			return inner
		}
	}
	return base
}

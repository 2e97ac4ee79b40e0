package deliver

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"sync"

	"github.com/dvrouter/dvrouter/pkg/config"
	"github.com/dvrouter/dvrouter/pkg/dataverse"
	"github.com/dvrouter/dvrouter/pkg/deliver/dest"
)

// Payload formats (config.Consumer.Format) and their content types.
const (
	FormatRaw        = "raw"
	FormatRow        = "row"
	FormatCloudEvent = "cloudevent"

	contentTypeJSON       = "application/json"
	contentTypeCloudEvent = "application/cloudevents+json"
)

// encode renders ev in consumer c's format, shaped by the route's select and exclude.
//
//   - raw: ev.Raw as received, byte for byte, less a leading UTF-8 byte-order mark: RFC 8259
//     (section 8.1) forbids one in JSON sent over a network, and receivers' parsers (JSON.parse
//     behind the Standard Webhooks library's verify(), for one) refuse it. select and exclude
//     cannot apply to bytes dvrouter does not rewrite; the configuration refuses them.
//   - row: the normalized event, its row, images and changedColumns shaped (see shape).
//   - cloudevent: a CloudEvents 1.0 event whose data is the shaped normalized event (see
//     cloudEvent for its attributes): in structured mode the whole event as JSON
//     (application/cloudevents+json), in binary mode the data alone (application/json) with
//     the attributes beside it, for the destination to put in headers or properties.
func encode(ev *dataverse.Event, c *config.Consumer, sel, excl []string) (p payload) {
	switch c.Format {
	case FormatRaw:
		p.body, p.contentType = bytes.TrimPrefix(ev.Raw, utf8BOM), contentTypeJSON
	case FormatRow, "":
		p.body, p.err = encodeExact(appendEvent, shape(ev, sel, excl))
		p.contentType = contentTypeJSON
	case FormatCloudEvent:
		ce := cloudEvent(ev, &c.CloudEvent)
		p.ce = &ce
		if ce.Binary {
			p.body, p.err = encodeExact(appendEvent, shape(ev, sel, excl))
			p.contentType = contentTypeJSON
		} else {
			p.body, p.err = encodeExact(func(b []byte, ev *dataverse.Event) ([]byte, error) {
				return appendCloudEvent(b, &ce, ev)
			}, shape(ev, sel, excl))
			p.contentType = contentTypeCloudEvent
		}
	default:
		p.err = fmt.Errorf("unknown format %q", c.Format)
	}
	if p.err != nil {
		p.err = fmt.Errorf("encode payload: %w", p.err)
		p.body = nil
	}
	return p
}

// Body is what consumer c receives for ev through a route with select sel and exclude excl: the
// bytes and content type that delivery sends, from the same encoder. For a cloudevent consumer
// in binary mode the attributes travel beside the body (headers or properties) and are not in
// it. `dvrouter inspect --consumer` prints it.
func Body(ev *dataverse.Event, c *config.Consumer, sel, excl []string) (body []byte, contentType string, err error) {
	p := encode(ev, c, sel, excl)
	return p.body, p.contentType, p.err
}

// cloudEvent is ev's CloudEvents context for a consumer with options o:
//   - id: the event id (the same for every copy of one Dataverse event);
//   - source: o.Source when set; else the environment as an absolute URI,
//     https://<org host>/ when the webhook said the host (x-ms-dynamics-organization), else
//     urn:dataverse:org:<organization id>;
//   - type: <prefix>.<table>.<message> in lower case, the prefix reverse-DNS as CloudEvents 1.0
//     asks (default com.microsoft.dataverse: com.microsoft.dataverse.contact.update);
//   - subject: the record id; time: OperationCreatedOn to the millisecond.
func cloudEvent(ev *dataverse.Event, o *config.CloudEvent) dest.CloudEvent {
	prefix := o.TypePrefix
	if prefix == "" {
		prefix = config.DefaultCloudEventTypePrefix
	}
	ce := dest.CloudEvent{
		ID:      ev.ID,
		Source:  o.Source,
		Type:    prefix + "." + strings.ToLower(ev.Table+"."+ev.Message),
		Subject: ev.RecordID,
		Time:    ev.OperationCreatedAt,
		Binary:  o.Mode == "binary",
		Reread:  ev.Reread,
	}
	if ce.Source == "" {
		switch {
		case ev.OrganizationHost != "":
			ce.Source = "https://" + ev.OrganizationHost + "/"
		case ev.OrganizationID != "":
			ce.Source = "urn:dataverse:org:" + url.PathEscape(strings.ToLower(ev.OrganizationID))
		default:
			// A context always names its organization; this keeps source a valid URI if not.
			ce.Source = "urn:dataverse:org:" + url.PathEscape(ev.OrganizationName)
		}
	}
	return ce
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

// appendCloudEvent appends ev as the data of a CloudEvents 1.0 structured-mode JSON event with
// context ce.
func appendCloudEvent(b []byte, ce *dest.CloudEvent, ev *dataverse.Event) ([]byte, error) {
	b = append(b, `{"specversion":"1.0","id":`...)
	b = appendString(b, ce.ID)
	b = append(b, `,"source":`...)
	b = appendString(b, ce.Source)
	b = append(b, `,"type":`...)
	b = appendString(b, ce.Type)
	if ce.Subject != "" {
		b = append(b, `,"subject":`...)
		b = appendString(b, ce.Subject)
	}
	if !ce.Time.IsZero() {
		b = append(b, `,"time":`...)
		b = appendString(b, ce.TimeText())
	}
	if ce.Reread {
		b = append(b, `,"`+dest.CloudEventRereadExtension+`":true`...)
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
// WithoutExcluded is ev less the columns excl names, in its row, images and changedColumns: a
// kept failure shown to support staff never shows the personal data its route does not send.
func WithoutExcluded(ev *dataverse.Event, excl []string) *dataverse.Event {
	return shape(ev, nil, excl)
}

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

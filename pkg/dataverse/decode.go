package dataverse

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"
)

// DecodeOptions carries what the transport knows about a body that the body itself does not say.
type DecodeOptions struct {
	// SizeExceeded is set when the webhook request carried x-ms-dynamics-msg-size-exceeded (or
	// the Service Bus message its size-limit property): Dataverse removed ParentContext,
	// InputParameters and both image collections from a body over 256 KB (192 KB on Service Bus).
	SizeExceeded bool
	// OrganizationHost is the environment's host name as the webhook's x-ms-dynamics-organization
	// header gives it. It becomes Event.OrganizationHost when it is a plausible host name
	// (lower-cased); anything else is ignored, as the header is not authenticated.
	OrganizationHost string
	// Lookups names, per table, columns that are lookups though nothing in the body says so
	// (the route file's `lookups:`): a Target that clears one gets "_x_value": null. See
	// clearLookups.
	Lookups Lookups
}

// Decode decodes a RemoteExecutionContext, as Dataverse POSTs it to a webhook or puts it on a
// Service Bus queue (message format Json), into the normalized Event. See DecodeWith.
func Decode(raw []byte) (*Event, error) {
	return DecodeWith(raw, DecodeOptions{})
}

// DecodeWith is Decode with what the transport knows.
//
// Ownership: raw passes to the event. Event.Raw is raw itself, and every string in the event
// that had no escapes on the wire shares raw's memory (that is what makes decoding cheap), so the
// caller must never modify raw afterwards; a buffer that is reused (a pooled request buffer, for
// example) must be copied before it is decoded. Rows also share values with the images (a party
// list, for example): treat the whole event as read-only.
//
// Errors: *SyntaxError for malformed JSON (with the byte offset), *ShapeError for JSON that is
// not a RemoteExecutionContext, an error wrapping ErrNotJSON for anything else (XML, binary
// XML, an empty body). No input makes it panic.
//
// SizeExceeded is set from opts, and also when the body has no InputParameters at all (an
// inference: Dataverse always sends the key, possibly empty, except when it strips it for size).
func DecodeWith(raw []byte, opts DecodeOptions) (ev *Event, err error) {
	// The scanner is written not to panic; this guard keeps a bug from taking the server down.
	// FuzzDecode calls decode directly, so the fuzzer still sees any panic.
	defer func() {
		if r := recover(); r != nil {
			ev, err = nil, fmt.Errorf("decode: internal error: %v", r)
		}
	}()
	return decode(raw, opts)
}

var decoders = sync.Pool{New: func() any { return new(decoder) }}

func decode(raw []byte, opts DecodeOptions) (*Event, error) {
	// The body seen as a string, without a copy (see DecodeWith on ownership): every unescaped
	// string in the event is a slice of it.
	s, base := unsafe.String(unsafe.SliceData(raw), len(raw)), 0
	if strings.HasPrefix(s, "\xEF\xBB\xBF") {
		s, base = s[3:], 3
	}
	if err := sniffFormat(s); err != nil {
		return nil, err
	}

	d := decoders.Get().(*decoder)
	d.start(s, base)
	c := context{lookups: opts.Lookups, box: &d.boxes}
	err := d.top(&c)
	if err == nil && d.shape != nil {
		err = d.shape
	}
	if err == nil {
		err = c.check()
	}
	var ev *Event
	if err == nil {
		// Built before the decoder is let go: the Target's columns are still on its stacks.
		ev = c.event()
	}
	d.done()
	decoders.Put(d)
	if err != nil {
		return nil, err
	}
	ev.Raw = raw
	ev.SizeExceeded = opts.SizeExceeded || !c.hasInputs
	ev.OrganizationHost = OrganizationHost(opts.OrganizationHost)
	return ev, nil
}

// OrganizationHost returns h lower-cased when it is a DNS host name (letters, digits and '-' in
// dot-separated labels, at least two of them, 253 characters at most), else "". Dataverse's
// x-ms-dynamics-organization header carries the environment's host, contoso.crm.dynamics.com;
// a value that is not a host name is dropped rather than passed on into a URI.
func OrganizationHost(h string) string {
	if h == "" || len(h) > 253 {
		return ""
	}
	labels, label := 1, 0
	for i := 0; i < len(h); i++ {
		switch c := h[i]; {
		case c == '.':
			if label == 0 || h[i-1] == '-' {
				return ""
			}
			labels, label = labels+1, 0
			continue
		case c == '-':
			if label == 0 {
				return ""
			}
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9', 'A' <= c && c <= 'Z':
		default:
			return ""
		}
		if label++; label > 63 {
			return ""
		}
	}
	if label == 0 || labels < 2 || h[len(h)-1] == '-' {
		return ""
	}
	return strings.ToLower(h)
}

// sniffFormat refuses, with a reason, bodies that are not JSON at all.
func sniffFormat(s string) error {
	t := strings.TrimLeft(s, " \t\r\n")
	if t == "" {
		return &notJSONError{"the body is empty"}
	}
	switch c := t[0]; {
	case c == '{' || c == '[' || c == '"' || c == '-' || (c >= '0' && c <= '9') ||
		c == 't' || c == 'f' || c == 'n':
		return nil
	case c == '<':
		return &notJSONError{"it looks like XML; set the service endpoint's message format to Json (2)"}
	case c >= 0x40 && c <= 0x56 && hasControl(t):
		// .NET binary XML (application/msbin1) opens with an element record, 0x40 to 0x56.
		return &notJSONError{"it looks like .NET binary XML (application/msbin1); set the service endpoint's message format to Json (2)"}
	case c == 0xFE || c == 0xFF:
		return &notJSONError{"it starts with a UTF-16 byte-order mark; JSON bodies must be UTF-8"}
	default:
		return &notJSONError{"it starts with " + quoteByte(c)}
	}
}

// hasControl reports whether the first bytes hold a control character, which text never does and
// binary XML does (record lengths, dictionary ids).
func hasControl(s string) bool {
	for i := 0; i < len(s) && i < 64; i++ {
		if c := s[i]; c < 0x20 && c != '\t' && c != '\n' && c != '\r' {
			return true
		}
	}
	return false
}

// context is what the decoder keeps of a RemoteExecutionContext.
type context struct {
	message, table, recordID                   string
	orgID, orgName, correlationID, operationID string
	userID, initiatingUserID, businessUnitID   string
	requestID                                  *string
	stage, depth, mode                         int
	hasMode                                    bool
	createdMS                                  int64
	created                                    string
	stepID                                     string
	hasInputs                                  bool
	target, moniker, state, status, assignee   val
	relationship, related, updateContent       val
	outputID                                   string
	pre, post                                  Row
	preCount, postCount                        int
	lookups                                    Lookups // DecodeOptions.Lookups
	box                                        *boxes  // the decoder's, for the event's rows
}

// inputsKept are the InputParameters the event is built from; the others are skipped unread.
const inputsKept = "Target|EntityMoniker|State|Status|Assignee|Relationship|RelatedEntities|UpdateContent"

func (d *decoder) top(c *context) error {
	ch, err := d.peek()
	if err != nil {
		return err
	}
	if ch != '{' {
		// Valid JSON of another type is a shape problem; broken JSON is a syntax one.
		if err := d.skip(); err != nil {
			return err
		}
		if err := d.trailing(); err != nil {
			return err
		}
		d.shapeErr("", "the body is "+describe(ch)+", not an object")
		return nil
	}
	if err := d.open(); err != nil {
		return err
	}
	for first := true; ; first = false {
		more, err := d.next(first, '}')
		if err != nil {
			return err
		}
		if !more {
			break
		}
		k, err := d.key()
		if err != nil {
			return err
		}
		switch k {
		case "MessageName":
			c.message, err = d.topString(k)
		case "PrimaryEntityName":
			c.table, err = d.topString(k)
		case "PrimaryEntityId":
			c.recordID, err = d.topString(k)
		case "OrganizationId":
			c.orgID, err = d.topString(k)
		case "OrganizationName":
			c.orgName, err = d.topString(k)
		case "CorrelationId":
			c.correlationID, err = d.topString(k)
		case "OperationId":
			c.operationID, err = d.topString(k)
		case "UserId":
			c.userID, err = d.topString(k)
		case "InitiatingUserId":
			c.initiatingUserID, err = d.topString(k)
		case "BusinessUnitId":
			c.businessUnitID, err = d.topString(k)
		case "RequestId":
			var ch byte
			if ch, err = d.peek(); err == nil && ch == '"' {
				var id string
				id, err = d.str()
				c.requestID = &id
			} else if err == nil {
				_, err = d.topString(k)
			}
		case "Stage":
			c.stage, _, err = d.topInt(k)
		case "Depth":
			c.depth, _, err = d.topInt(k)
		case "Mode":
			c.mode, c.hasMode, err = d.topInt(k)
		case "OperationCreatedOn":
			err = d.created(c)
		case "OwningExtension":
			var v val
			if v, err = d.value(hintRef); err == nil {
				switch v.k {
				case kRef, kEntity:
					c.stepID = v.s
				case kNull:
				default:
					d.shapeErr(k, "want an EntityReference")
				}
			}
		case "InputParameters":
			err = d.inputs(c)
		case "OutputParameters":
			err = d.outputs(c)
		case "PreEntityImages":
			c.pre, c.preCount, err = d.images(k)
		case "PostEntityImages":
			c.post, c.postCount, err = d.images(k)
		default:
			// ParentContext, SharedVariables and whatever new fields the platform adds.
			err = d.skip()
		}
		if err != nil {
			return err
		}
	}
	return d.trailing()
}

func (d *decoder) trailing() error {
	d.ws()
	if d.i < len(d.s) {
		return d.unexpected("after the top-level value")
	}
	return nil
}

// topString reads a string or null field of the context.
func (d *decoder) topString(field string) (string, error) {
	return d.optString(field)
}

// topInt reads a whole-number field of the context; null counts as absent.
func (d *decoder) topInt(field string) (int, bool, error) {
	c, err := d.peek()
	if err != nil {
		return 0, false, err
	}
	if c == 'n' {
		_, err := d.literal()
		return 0, false, err
	}
	if c != '-' && (c < '0' || c > '9') {
		d.shapeErr(field, "want a number, got "+describe(c))
		return 0, false, d.skip()
	}
	text, err := d.number()
	if err != nil {
		return 0, false, err
	}
	n, perr := strconv.Atoi(text)
	if perr != nil {
		d.shapeErr(field, "want a whole number, got "+strconv.Quote(text))
		return 0, false, nil
	}
	return n, true, nil
}

func (d *decoder) created(c *context) error {
	ch, err := d.peek()
	if err != nil {
		return err
	}
	switch ch {
	case 'n':
		_, err := d.literal()
		return err
	case '"':
	default:
		d.shapeErr("OperationCreatedOn", "want a /Date(...)/ string, got "+describe(ch))
		return d.skip()
	}
	text, err := d.str()
	if err != nil {
		return err
	}
	ms, ok := dateText(text)
	iso := ""
	if ok {
		iso, ok = d.date(ms)
	}
	if !ok {
		d.shapeErr("OperationCreatedOn", "want a /Date(...)/ string, got "+strconv.Quote(text))
		return nil
	}
	c.createdMS, c.created = ms, iso
	return nil
}

// keyValues opens a key/value collection. It returns false, having consumed the value, when the
// value is null or of the wrong type (recorded as a shape problem).
func (d *decoder) keyValues(field string) (bool, error) {
	c, err := d.peek()
	if err != nil {
		return false, err
	}
	if c == '[' {
		return true, d.open()
	}
	if c != 'n' {
		d.shapeErr(field, "want an array of {\"key\", \"value\"}, got "+describe(c))
	}
	return false, d.skip()
}

func (d *decoder) inputs(c *context) error {
	ok, err := d.keyValues("InputParameters")
	if !ok || err != nil {
		return err
	}
	c.hasInputs = true
	for first := true; ; first = false {
		more, err := d.next(first, ']')
		if err != nil || !more {
			return err
		}
		k, v, ok, err := d.pair("InputParameters", hintPending, inputsKept)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		switch k {
		case "Target":
			if v.k != kEntity && v.k != kRef && v.k != kNull {
				d.shapeErr("InputParameters.Target", "want an Entity or an EntityReference")
			}
			c.target = v
		case "EntityMoniker":
			c.moniker = v
		case "State":
			c.state = v
		case "Status":
			c.status = v
		case "Assignee":
			c.assignee = v
		case "Relationship":
			c.relationship = v
		case "RelatedEntities":
			c.related = v
		case "UpdateContent":
			c.updateContent = v
		}
	}
}

func (d *decoder) outputs(c *context) error {
	ok, err := d.keyValues("OutputParameters")
	if !ok || err != nil {
		return err
	}
	for first := true; ; first = false {
		more, err := d.next(first, ']')
		if err != nil || !more {
			return err
		}
		_, v, ok, err := d.pair("OutputParameters", hintNone, "id")
		if err != nil {
			return err
		}
		if ok && v.k == kString {
			c.outputID = v.s
		}
	}
}

// images reads PreEntityImages or PostEntityImages and merges the named images into one row.
func (d *decoder) images(field string) (Row, int, error) {
	ok, err := d.keyValues(field)
	if !ok || err != nil {
		return nil, 0, err
	}
	var merged Row
	count := 0
	for first := true; ; first = false {
		more, err := d.next(first, ']')
		if err != nil {
			return nil, 0, err
		}
		if !more {
			return merged, count, nil
		}
		_, v, ok, err := d.pair(field, hintEntity, "")
		if err != nil {
			return nil, 0, err
		}
		if !ok || v.k == kNull {
			continue
		}
		if v.k != kEntity {
			d.shapeErr(field, "want an Entity as the image")
			continue
		}
		count++
		if merged == nil {
			merged = v.row(&d.boxes)
			continue
		}
		if count == 2 {
			// The first image's row may not be shared with the merge.
			m := make(Row, len(merged)+len(v.row(&d.boxes)))
			for k, x := range merged {
				m[k] = x
			}
			merged = m
		}
		for k, x := range v.row(&d.boxes) {
			merged[k] = x
		}
	}
}

// check refuses a context without the fields every event must have.
func (c *context) check() error {
	switch {
	case c.message == "":
		return &ShapeError{Field: "MessageName", Msg: "missing"}
	case c.table == "":
		return &ShapeError{Field: "PrimaryEntityName", Msg: "missing"}
	case c.hasMode && c.mode != 0 && c.mode != 1:
		return &ShapeError{Field: "Mode", Msg: "want 0 (synchronous) or 1 (asynchronous), got " + strconv.Itoa(c.mode)}
	}
	return nil
}

// event builds the normalized event.
func (c *context) event() *Event {
	ev := &Event{
		Message:            c.message,
		Table:              c.table,
		RecordID:           c.recordID,
		Stage:              c.stage,
		Depth:              c.depth,
		OrganizationID:     c.orgID,
		OrganizationName:   c.orgName,
		CorrelationID:      c.correlationID,
		OperationID:        c.operationID,
		RequestID:          c.requestID,
		UserID:             c.userID,
		InitiatingUserID:   c.initiatingUserID,
		BusinessUnitID:     c.businessUnitID,
		OperationCreatedOn: c.created,
		PreImage:           c.pre,
		PostImage:          c.post,
		HasPreImage:        c.preCount > 0,
	}
	if c.hasMode {
		ev.Mode = "sync"
		if c.mode == 1 {
			ev.Mode = "async"
		}
	}
	if c.created != "" {
		ev.OperationCreatedAt = time.UnixMilli(c.createdMS).UTC()
	}
	ev.ID = c.eventID()
	c.buildRow(ev)
	if c.relationship.k == kRelationship {
		ev.Relationship = c.relationship.s
	} else if c.relationship.k == kObject {
		ev.Relationship, _ = c.relationship.row(c.box)["SchemaName"].(string)
	}
	ev.RelatedRecords = related(&c.related)
	return ev
}

func related(v *val) []RecordRef {
	var out []RecordRef
	add := func(e *val) {
		if e.k == kRef || e.k == kEntity {
			out = append(out, RecordRef{Table: e.s2, ID: e.s})
		}
	}
	// RelatedEntities is an EntityReferenceCollection: a bare array of EntityReference objects.
	if v.k == kArray {
		elems := v.elems()
		for i := range elems {
			add(&elems[i])
		}
	}
	return out
}

// Columns Dataverse stamps on every Update: they say nothing about what the user changed.
var stamped = [...]string{"modifiedon", "modifiedby", "modifiedonbehalfby"}

// activityTables are the standard activity tables, whose primary id column is "activityid".
// A custom activity is recognized from its row (an "activityid" column holding the record id).
var activityTables = map[string]bool{
	"activitypointer": true, "appointment": true, "email": true, "fax": true, "letter": true,
	"phonecall": true, "task": true, "recurringappointmentmaster": true,
	"serviceappointment": true, "socialactivity": true, "campaignactivity": true,
	"campaignresponse": true, "bulkoperation": true, "opportunityclose": true,
	"orderclose": true, "quoteclose": true, "incidentresolution": true, "untrackedemail": true,
	"msdyn_ocliveworkitem": true, "msdyn_ocsession": true, "chat": true,
}

// buildRow assembles row and changedColumns.
//
// row is, in order of precedence: the values this message sets (Target columns; for SetState
// statecode/statuscode from State/Status; for Assign _ownerid_value from Assignee; for Merge the
// UpdateContent columns), over the post-images, or over the pre-image when there is no post-image
// (the pre-image plus what changed is the record after the change, and a Delete has only a
// pre-image); then the primary id column if absent, then SdkMessage.
func (c *context) buildRow(ev *Event) {
	// The columns the message sets. inputs decodes with hintPending, so an Entity there is
	// pending: its columns go into row directly, with no row of its own built first.
	var set *pending
	table, id := "", ""
	switch c.target.k {
	case kEntity:
		set, _ = c.target.x.(*pending)
		table, id = c.target.s2, c.target.s
	case kRef:
		table, id = c.target.s2, c.target.s
	}
	if c.target.k != kEntity && c.updateContent.k == kEntity {
		set, _ = c.updateContent.x.(*pending)
	}
	if c.target.k == kNull && c.moniker.k == kRef {
		table, id = c.moniker.s2, c.moniker.s
	}
	if table == "" {
		table = c.table
	}
	if isZeroID(id) {
		switch {
		case c.outputID != "":
			id = c.outputID // Create: the new record's id is an output
		case !isZeroID(c.recordID):
			id = c.recordID
		}
	}

	under, fromPre := c.post, false
	if under == nil && c.pre != nil {
		under, fromPre = c.pre, true
	}

	size := len(under) + 8 // the id column, SdkMessage, ItemInternalId, RunAsSystemUserId, what SetState or Assign add
	if set != nil {
		size += rowSize(set.attrs, set.fmts)
	}
	// One table sized for everything the row gets: a clone of the image would be sized for the
	// image alone and grow (a rehash and more allocations) as the message's columns and the
	// keys added below go in. Measured: 2 allocations fewer per event than maps.Clone.
	row := make(Row, size)
	maps.Copy(row, under)
	if set != nil {
		if fromPre {
			// The pre-image's text for a column the message changes must not sit next to
			// the new value.
			for i := range set.attrs {
				delete(row, formattedKey(webKey(&set.attrs[i])))
			}
		}
		fill(c.box, row, set.attrs, set.fmts)
		clearLookups(row, set.attrs, c.pre, c.lookups[table])
	}
	if c.moniker.k == kRef { // SetState, SetStateDynamicEntity
		setWrapped(c.box, row, "statecode", &c.state)
		setWrapped(c.box, row, "statuscode", &c.status)
	}
	if c.assignee.k == kRef { // Assign
		delete(row, formattedKey("_ownerid_value"))
		place(c.box, row, "ownerid", &c.assignee)
	}

	idCol := idColumn(table, id, row)
	idv, hasID := row[idCol]
	if !hasID && id != "" {
		idv = c.box.str(id) // boxed once, for both keys
		row[idCol] = idv
	}
	row["SdkMessage"] = c.box.str(c.message)
	// The keys Power Automate's Dataverse trigger adds to the row it hands a flow: the record id
	// again, and the user whose security context the operation ran in (the context's UserId).
	if id != "" {
		if s, ok := idv.(string); !ok || !strings.EqualFold(s, id) {
			idv = c.box.str(id)
		}
		row["ItemInternalId"] = idv
	}
	if c.userID != "" {
		row["RunAsSystemUserId"] = c.box.str(c.userID)
	}
	ev.Row = row

	if c.message == "Update" && set != nil && c.target.k == kEntity {
		ev.ChangedColumns = changedColumns(set.attrs, idCol)
	}
}

// clearLookups gives a lookup the message clears its Web API shape, "_x_value": null. The
// Target says only "x": null, with no type, so x is taken for a lookup when that is known: the
// image under the row (or the pre-image) shows x as a lookup, x is a lookup column every table
// has (modifiedonbehalfby, ownerid, ...; see knownLookups), or hinted (the table's columns in
// DecodeOptions.Lookups) says so. Otherwise the null stays as "x": null, which is what a cleared
// column of any other type looks like. Without this the row would carry a null "x" the Web API
// never returns, next to the old reference.
func clearLookups(row Row, attrs []attr, pre Row, hinted []string) {
	var buf [128]byte
	for i := range attrs {
		a := &attrs[i]
		if a.v.k != kNull {
			continue
		}
		// The lookup by a []byte conversion does not allocate; most nulls are no lookups.
		short := append(append(append(buf[:0], '_'), a.key...), "_value"...)
		if _, ok := row[string(short)]; !ok {
			if _, ok := pre[string(short)]; !ok && !isKnownLookup(a.key) && !slices.Contains(hinted, a.key) {
				continue
			}
		}
		long := lookupKey(a.key)
		row[long[:len(short)]] = nil
		delete(row, long)
		delete(row, formattedKey(long[:len(short)]))
		delete(row, formattedKey(a.key))
		if k, ok := knownLookups[a.key]; ok {
			delete(row, k.annotation)
		}
		delete(row, a.key)
	}
}

// webKey is the key a column takes in a row: "_x_value" for a lookup, else its logical name.
func webKey(a *attr) string {
	if a.v.k == kRef {
		return lookupKey(a.key)[:len(a.key)+len("__value")]
	}
	return a.key
}

func setWrapped(bx *boxes, row Row, col string, v *val) {
	switch v.k {
	case kWrapped, kNumber:
		delete(row, formattedKey(col))
		row[col] = v.any(bx)
	}
}

// idColumn names the primary id column: "<table>id", except "activityid" for the standard
// activity tables and for a row whose "activityid" holds the record id (a custom activity).
func idColumn(table, id string, row Row) string {
	if activityTables[table] {
		return "activityid"
	}
	if s, ok := row["activityid"].(string); ok && id != "" && strings.EqualFold(s, id) {
		return "activityid"
	}
	return table + "id"
}

// changedColumns lists the Target's columns by logical name, sorted, less the columns Dataverse
// stamps on every update and the primary id column (which cannot change).
func changedColumns(attrs []attr, idCol string) []string {
	cols := make([]string, 0, len(attrs))
	for i := range attrs {
		k := attrs[i].key
		if k == idCol || slices.Contains(stamped[:], k) {
			continue
		}
		cols = append(cols, k)
	}
	slices.Sort(cols)
	return slices.Compact(cols)
}

func isZeroID(id string) bool {
	return id == "" || id == "00000000-0000-0000-0000-000000000000"
}

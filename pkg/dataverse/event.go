// Package dataverse holds the Dataverse event model: it decodes a RemoteExecutionContext, as
// Dataverse writes it to a webhook or a Service Bus queue, into the normalized Event that every
// later stage (routing, delivery, the failure store) works with.
package dataverse

import "time"

// Row is a table row in Dataverse Web API shape: columns by logical name, lookups as
// `_x_value` plus `_x_value@Microsoft.Dynamics.CRM.lookuplogicalname`, choices as integers,
// multi-select choices as a comma-separated string of integers, money as a number, dates as
// ISO 8601 UTC strings, formatted values as `x@OData.Community.Display.V1.FormattedValue`.
//
// Values are nil (a cleared column), bool, string, json.Number (kept exact, never a float64),
// []any of Row (an EntityCollection), or Row.
type Row = map[string]any

// RecordRef names one record: its table (logical name) and id.
type RecordRef struct {
	Table string `json:"table"`
	ID    string `json:"id"`
}

// Event is the normalized event. Its JSON field names are part of dvrouter's contract: the `row`
// payload format sends it, `dvrouter inspect` prints it.
type Event struct {
	ID                 string   `json:"id"`
	Message            string   `json:"message"`
	Table              string   `json:"table"`
	RecordID           string   `json:"recordId"`
	Stage              int      `json:"stage"`
	Mode               string   `json:"mode"` // "sync" or "async"
	Depth              int      `json:"depth"`
	OrganizationID     string   `json:"organizationId"`
	OrganizationName   string   `json:"organizationName"`
	CorrelationID      string   `json:"correlationId"`
	OperationID        string   `json:"operationId"`
	RequestID          *string  `json:"requestId"`
	UserID             string   `json:"userId"`
	InitiatingUserID   string   `json:"initiatingUserId"`
	BusinessUnitID     string   `json:"businessUnitId"`
	OperationCreatedOn string   `json:"operationCreatedOn"`
	ChangedColumns     []string `json:"changedColumns"`
	SizeExceeded       bool     `json:"sizeExceeded"`
	// Reread says the row was completed from the Dataverse Web API before matching (a
	// size-exceeded event, or a route's fetch): its columns are the row as it was read then,
	// not only what the event carried.
	Reread         bool        `json:"reread,omitempty"`
	Relationship   string      `json:"relationship,omitempty"`
	RelatedRecords []RecordRef `json:"relatedRecords,omitempty"`
	Row            Row         `json:"row"`
	PreImage       Row         `json:"preImage"`
	PostImage      Row         `json:"postImage"`

	// OperationCreatedAt is OperationCreatedOn to the millisecond the context carries (the JSON
	// field keeps the Web API's whole seconds); zero when the context has no time.
	OperationCreatedAt time.Time `json:"-"`
	// OrganizationHost is the environment's host name (contoso.crm.dynamics.com) when the
	// transport said it (the webhook's x-ms-dynamics-organization header); empty otherwise.
	OrganizationHost string `json:"-"`

	// HasPreImage says whether the step registered a pre-image, so a `changed` condition can
	// tell "no old value known" from "old value was null".
	HasPreImage bool `json:"-"`
	// Raw is the body exactly as received (after nothing: the BOM too), for the `raw` payload
	// format, the queue and the failure store.
	Raw []byte `json:"-"`
}

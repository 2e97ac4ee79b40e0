package webapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/dvrouter/dvrouter/pkg/dataverse"
)

// tableInfo is what the Web API needs to know of a table to read its rows, read once per
// environment from its definition.
type tableInfo struct {
	entitySet string          // accounts
	primaryID string          // accountid
	lookups   map[string]bool // lookup columns by logical name (Lookup, Customer, Owner)
}

// tableCall lets concurrent first reads of one table share one metadata request.
type tableCall struct {
	done chan struct{}
	info *tableInfo
	err  error
}

// Table describes a table as the Web API names it.
type Table struct {
	LogicalName        string
	EntitySetName      string
	PrimaryIDAttribute string
	// Lookups are the table's lookup columns (Lookup, Customer and Owner), by logical name.
	Lookups []string
}

// Table returns the definition of the table with this logical name, read from EntityDefinitions
// the first time and kept for the life of the process. A failed read is not kept: the next call
// tries again.
func (e *Environment) Table(ctx context.Context, logicalName string) (Table, error) {
	info, err := e.table(ctx, logicalName)
	if err != nil {
		return Table{}, err
	}
	t := Table{LogicalName: logicalName, EntitySetName: info.entitySet, PrimaryIDAttribute: info.primaryID}
	for c := range info.lookups {
		t.Lookups = append(t.Lookups, c)
	}
	slices.Sort(t.Lookups)
	return t, nil
}

// EntitySetName returns the table's entity set name (account: accounts).
func (e *Environment) EntitySetName(ctx context.Context, logicalName string) (string, error) {
	info, err := e.table(ctx, logicalName)
	if err != nil {
		return "", err
	}
	return info.entitySet, nil
}

func (e *Environment) table(ctx context.Context, logicalName string) (*tableInfo, error) {
	logicalName = strings.ToLower(logicalName)
	e.mu.Lock()
	if t := e.tables[logicalName]; t != nil {
		e.mu.Unlock()
		return t, nil
	}
	call := e.tableCalls[logicalName]
	if call == nil {
		call = &tableCall{done: make(chan struct{})}
		e.tableCalls[logicalName] = call
		e.mu.Unlock()
		call.info, call.err = e.readTable(ctx, logicalName)
		e.mu.Lock()
		if call.err == nil {
			e.tables[logicalName] = call.info
		}
		delete(e.tableCalls, logicalName)
		e.mu.Unlock()
		close(call.done)
	} else {
		e.mu.Unlock()
		select {
		case <-call.done:
		case <-ctx.Done():
			return nil, fmt.Errorf("dataverse %s: table %s: %w", e.url, logicalName, ctx.Err())
		}
	}
	return call.info, call.err
}

// readTable reads the table's entity set name and primary key, then its lookup columns (the
// LookupAttributeMetadata cast of its Attributes, which holds Lookup, Customer and Owner
// columns): a lookup is selected as _x_value, not by its logical name.
func (e *Environment) readTable(ctx context.Context, logicalName string) (*tableInfo, error) {
	if !validName(logicalName) {
		return nil, &Error{Env: e.url, Table: logicalName, Message: "not a table logical name"}
	}
	var defs struct {
		Value []struct {
			EntitySetName      string `json:"EntitySetName"`
			PrimaryIDAttribute string `json:"PrimaryIdAttribute"`
		} `json:"value"`
	}
	q := "EntityDefinitions?$filter=" + url.QueryEscape("LogicalName eq '"+logicalName+"'") + "&$select=EntitySetName,PrimaryIdAttribute"
	if err := e.getJSON(ctx, q, logicalName, "", &defs); err != nil {
		return nil, err
	}
	if len(defs.Value) == 0 || defs.Value[0].EntitySetName == "" {
		return nil, &Error{Env: e.url, Method: http.MethodGet, Table: logicalName, Status: http.StatusNotFound,
			Message: "no such table in EntityDefinitions"}
	}
	info := &tableInfo{entitySet: defs.Value[0].EntitySetName, primaryID: defs.Value[0].PrimaryIDAttribute, lookups: map[string]bool{}}
	var attrs struct {
		Value []struct {
			LogicalName string `json:"LogicalName"`
		} `json:"value"`
	}
	q = "EntityDefinitions(LogicalName='" + logicalName + "')/Attributes/Microsoft.Dynamics.CRM.LookupAttributeMetadata?$select=LogicalName"
	if err := e.getJSON(ctx, q, logicalName, "", &attrs); err != nil {
		return nil, err
	}
	for _, a := range attrs.Value {
		info.lookups[strings.ToLower(a.LogicalName)] = true
	}
	return info, nil
}

func (e *Environment) getJSON(ctx context.Context, path, table, id string, into any) error {
	req, err := e.NewRequest(ctx, http.MethodGet, path, nil)
	if err != nil {
		return err
	}
	resp, err := e.Do(req)
	if err != nil {
		return nameRequest(err, table, id)
	}
	if resp.StatusCode/100 != 2 {
		return ResponseError(e, http.MethodGet, table, id, resp)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(io.LimitReader(resp.Body, 32<<20)).Decode(into); err != nil {
		return &Error{Env: e.url, Method: http.MethodGet, Table: table, ID: id, Status: resp.StatusCode,
			Message: "cannot read the answer: " + err.Error()}
	}
	return nil
}

// nameRequest fills the table and id into an *Error that Do returned without them.
func nameRequest(err error, table, id string) error {
	var we *Error
	if errors.As(err, &we) && we.Table == "" {
		c := *we
		c.Table, c.ID = table, id
		if c.Method == "" {
			c.Method = http.MethodGet
		}
		return &c
	}
	return fmt.Errorf("%w (reading %s %s)", err, table, id)
}

// GetRow reads the columns of one row (logical names; lookups by their logical name or as
// _x_value) in the Web API shape the event's row has: lookups as _x_value with their
// lookuplogicalname, associatednavigationproperty and formatted value annotations, choices as
// numbers, formatted values as x@OData.Community.Display.V1.FormattedValue, numbers as
// json.Number. The OData bookkeeping (@odata.context, @odata.etag) is left out. A column the
// row has no value for comes back as null.
func (e *Environment) GetRow(ctx context.Context, table, id string, columns []string) (dataverse.Row, error) {
	info, err := e.table(ctx, table)
	if err != nil {
		return nil, err
	}
	if !validID(id) {
		return nil, &Error{Env: e.url, Method: http.MethodGet, Table: table, ID: id, Message: "not a record id (a GUID)"}
	}
	sel := make([]string, 0, len(columns))
	for _, c := range columns {
		c = strings.ToLower(c)
		if strings.HasPrefix(c, "_") && strings.HasSuffix(c, "_value") && len(c) > len("__value") {
			c = c[1 : len(c)-len("_value")]
		}
		if !validName(c) {
			return nil, &Error{Env: e.url, Method: http.MethodGet, Table: table, ID: id, Message: fmt.Sprintf("%q is not a column logical name", c)}
		}
		if info.lookups[c] {
			c = "_" + c + "_value"
		}
		if !slices.Contains(sel, c) {
			sel = append(sel, c)
		}
	}
	path := info.entitySet + "(" + id + ")"
	if len(sel) > 0 {
		path += "?$select=" + strings.Join(sel, ",")
	}
	req, err := e.NewRequest(ctx, http.MethodGet, path, nil)
	if err != nil {
		return nil, err
	}
	// Every annotation: formatted values and the lookups' table and navigation property, as the
	// event's row carries them ("Formatted values", Retrieve a table row using the Web API).
	req.Header.Set("Prefer", `odata.include-annotations="*"`)
	resp, err := e.Do(req)
	if err != nil {
		return nil, nameRequest(err, table, id)
	}
	if resp.StatusCode/100 != 2 {
		return nil, ResponseError(e, http.MethodGet, table, id, resp)
	}
	defer resp.Body.Close()
	body, err := readBody(resp)
	if err != nil {
		return nil, &Error{Env: e.url, Method: http.MethodGet, Table: table, ID: id, Status: resp.StatusCode,
			Message: "cannot read the answer: " + err.Error()}
	}
	row, err := decodeRow(body)
	if err != nil {
		return nil, &Error{Env: e.url, Method: http.MethodGet, Table: table, ID: id, Status: resp.StatusCode,
			Message: "cannot read the row: " + err.Error()}
	}
	for _, c := range sel {
		if _, ok := row[c]; !ok {
			row[c] = nil
		}
	}
	return row, nil
}

// validName accepts a logical name: lower-case letters, digits and underscores. It keeps what
// goes into a URL or an OData string literal harmless.
func validName(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

func validID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
	}
	return true
}

// ReadRow reads columns of the event's row from the environment the event comes from (by its
// organization id, unique name or host).
func (c *Client) ReadRow(ctx context.Context, ev *dataverse.Event, columns []string) (dataverse.Row, error) {
	env := c.Environment(ev.OrganizationID, ev.OrganizationName, ev.OrganizationHost)
	if env == nil {
		return nil, fmt.Errorf("no Dataverse environment is configured for organization %s (%s%s): add it to DVROUTER_DATAVERSE_ENVIRONMENTS",
			ev.OrganizationID, ev.OrganizationName, hostNote(ev.OrganizationHost))
	}
	return env.GetRow(ctx, ev.Table, ev.RecordID, columns)
}

func hostNote(h string) string {
	if h == "" {
		return ""
	}
	return ", " + h
}

// readBody reads an answer of at most 32 MiB, in one allocation when its length is known.
func readBody(resp *http.Response) ([]byte, error) {
	const limit = 32 << 20
	if n := resp.ContentLength; n > 0 && n <= limit {
		buf := make([]byte, n)
		_, err := io.ReadFull(resp.Body, buf)
		return buf, err
	}
	return io.ReadAll(io.LimitReader(resp.Body, limit))
}

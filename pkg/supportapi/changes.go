package supportapi

import (
	"context"
	"net/http"
	"net/url"
	"time"
)

// ChangesPath is change tracking's status endpoint; ChangesResetPath forgets a table's token.
const (
	ChangesPath      = "/api/changes"
	ChangesResetPath = "/api/changes/reset"
)

// ChangesStatus is the answer of GET /api/changes: every table read by change tracking.
type ChangesStatus struct {
	Environment string        `json:"environment"` // empty when change tracking is off
	Schedule    string        `json:"schedule"`
	StaleAfter  string        `json:"staleAfter"`
	Tables      []ChangeTable `json:"tables"`
}

// ChangeTable is where change tracking of one table stands.
type ChangeTable struct {
	Table   string   `json:"table"`
	Columns []string `json:"columns"` // nil: every column
	// TokenAt is when the stored delta token was received (the last read that reached its end).
	TokenAt time.Time `json:"tokenAt,omitzero"`
	// LastRunAt is when a page was last stored.
	LastRunAt time.Time `json:"lastRunAt,omitzero"`
	// Pending: a read stopped between two pages; PagesRead pages of it are delivered.
	Pending     bool      `json:"pending"`
	PagesRead   int64     `json:"pagesRead"`
	FullReads   int64     `json:"fullReads"`
	FullReadWhy string    `json:"fullReadWhy,omitempty"`
	Changed     int64     `json:"changed"`
	Deleted     int64     `json:"deleted"`
	Stale       bool      `json:"stale"`
	Configured  bool      `json:"configured"`
	ReadingBy   string    `json:"readingBy,omitempty"` // the instance holding the lease now
	ResetBy     string    `json:"resetBy,omitempty"`
	ResetAt     time.Time `json:"resetAt,omitzero"`
}

// ChangesResetRequest is the body of POST /api/changes/reset.
type ChangesResetRequest struct {
	Table string `json:"table"`
}

// ChangesResetResult says the table's next read is a full read, and who asked.
type ChangesResetResult struct {
	Table   string    `json:"table"`
	ResetBy string    `json:"resetBy"`
	ResetAt time.Time `json:"resetAt"`
}

// ChangesStatus is GET /api/changes.
func (c *Client) ChangesStatus(ctx context.Context) (ChangesStatus, error) {
	var out ChangesStatus
	err := c.Do(ctx, http.MethodGet, ChangesPath, url.Values{}, nil, &out)
	return out, err
}

// ResetChanges is POST /api/changes/reset (operator role).
func (c *Client) ResetChanges(ctx context.Context, table string) (ChangesResetResult, error) {
	var out ChangesResetResult
	err := c.Do(ctx, http.MethodPost, ChangesResetPath, url.Values{}, ChangesResetRequest{Table: table}, &out)
	return out, err
}

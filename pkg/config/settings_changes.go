package config

import (
	"strconv"
	"strings"
	"time"
)

// Change tracking's settings (pkg/changes: the second source of events).
const (
	// EnvChangesEnvironment is the Dataverse environment the routes with source: changes read
	// (https://contoso.crm4.dynamics.com); unset turns change tracking off.
	EnvChangesEnvironment = "DVROUTER_CHANGES_ENVIRONMENT"
	// EnvChangesClientID is the user-assigned managed identity that reads it (an application
	// user in the environment); unset: DefaultAzureCredential.
	EnvChangesClientID = "DVROUTER_CHANGES_CLIENT_ID"
	// EnvChangesSchedule is the ChangeTracking timer's NCRONTAB schedule; functions/ChangeTracking
	// names it as %DVROUTER_CHANGES_SCHEDULE%, so the host needs it set even when change
	// tracking is off.
	EnvChangesSchedule = "DVROUTER_CHANGES_SCHEDULE"
	// EnvChangesStaleAfter is how long a table may go without a complete read before status
	// (and the alert) call it stale; default three times the schedule's usual 5 minutes.
	EnvChangesStaleAfter = "DVROUTER_CHANGES_STALE_AFTER"
	EnvChangesTable      = "DVROUTER_CHANGES_TABLE"     // tokens and leases, default ChangeTracking
	EnvChangesPageSize   = "DVROUTER_CHANGES_PAGE_SIZE" // odata.maxpagesize, default 1000, at most 5000
	EnvChangesParallel   = "DVROUTER_CHANGES_PARALLEL"  // events of a page dispatched at once, default 8
)

// Changes are change tracking's settings.
type Changes struct {
	Environment string // the environment URL; empty: change tracking is off
	ClientID    string
	Schedule    string
	StaleAfter  time.Duration
	Table       string
	PageSize    int
	Parallel    int
}

// Configured reports whether change tracking is on.
func (c Changes) Configured() bool { return c.Environment != "" }

// loadChanges reads change tracking's settings; bad reports a problem with one.
func loadChanges(getenv func(string) string, s *Settings, bad func(name, format string, args ...any)) Changes {
	c := Changes{
		Environment: strings.TrimRight(strings.TrimSpace(getenv(EnvChangesEnvironment)), "/"),
		ClientID:    strings.TrimSpace(getenv(EnvChangesClientID)),
		Schedule:    orDefault(getenv(EnvChangesSchedule), "0 */5 * * * *"),
		StaleAfter:  15 * time.Minute,
		Table:       orDefault(getenv(EnvChangesTable), "ChangeTracking"),
		PageSize:    1000,
		Parallel:    8,
	}
	if c.Environment != "" && !strings.HasPrefix(c.Environment, "https://") && !strings.HasPrefix(c.Environment, "http://127.0.0.1") {
		bad(EnvChangesEnvironment, "%q must be the environment's https URL, such as https://contoso.crm4.dynamics.com", c.Environment)
	}
	if n := len(strings.Fields(c.Schedule)); n != 6 {
		bad(EnvChangesSchedule, "%q must be an NCRONTAB expression of six fields (seconds first), such as \"0 */5 * * * *\"", c.Schedule)
	}
	if v := strings.TrimSpace(getenv(EnvChangesStaleAfter)); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < time.Minute || d > 7*24*time.Hour {
			bad(EnvChangesStaleAfter, "%q must be a duration from 1m to 168h", v)
		}
		c.StaleAfter = d
	}
	if !tableNameRE.MatchString(c.Table) {
		bad(EnvChangesTable, "%q must be 3 to 63 letters and digits, starting with a letter", c.Table)
	} else {
		for _, other := range []string{s.Tables.Table, s.BreakerTable, s.JournalTable} {
			if strings.EqualFold(c.Table, other) {
				bad(EnvChangesTable, "%q is the failure, breaker or journal table: change tracking needs a table of its own", c.Table)
			}
		}
	}
	for _, n := range []struct {
		name     string
		into     *int
		min, max int
	}{{EnvChangesPageSize, &c.PageSize, 1, 5000}, {EnvChangesParallel, &c.Parallel, 1, 64}} {
		if v := strings.TrimSpace(getenv(n.name)); v != "" {
			x, err := strconv.Atoi(v)
			if err != nil || x < n.min || x > n.max {
				bad(n.name, "%q must be a whole number from %d to %d", v, n.min, n.max)
			}
			*n.into = x
		}
	}
	if c.Configured() && !s.Tables.Configured() {
		bad(EnvChangesEnvironment, "change tracking keeps its tokens in Table Storage: set %s or %s too", EnvTables, EnvTablesURI)
	}
	return c
}

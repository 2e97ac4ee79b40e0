// Package config holds dvrouter's configuration: the app settings read from the environment
// (Settings) and the route file (RouteFile). Both are read and validated once, at start-up, into
// typed values; nothing below main reads the environment.
package config

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Settings are the app settings, as Azure Functions passes them (environment variables).
type Settings struct {
	Addr           string // listen address: 127.0.0.1:$FUNCTIONS_CUSTOMHANDLER_PORT, else $PORT, else 7071
	RoutesPath     string // DVROUTER_ROUTES
	MaxBody        int64  // DVROUTER_MAX_BODY, bytes; default 1 MiB
	WebhookKeys    []string
	AllowedOrgs    map[string]bool // lower-case organization ids; empty allows every organization
	Queue          string          // DVROUTER_QUEUE, default dataverse-events
	ServiceBus     ServiceBus      // set means queued mode
	Tables         Tables          // the failure store; unset means failures cannot be kept
	DeliveryBudget time.Duration   // DVROUTER_DELIVERY_BUDGET, default 20s
	// BodyReadTimeout bounds how long a request body may take to arrive (not a setting: 30s).
	BodyReadTimeout time.Duration
	AdminKeys       []AdminKey // DVROUTER_ADMIN_KEYS
	LogLevel        string     // DVROUTER_LOG_LEVEL, default info
	// AppServiceAuth says App Service authentication (Entra ID) is in front of the app, so
	// the x-ms-client-principal headers come from the platform and name the signed-in user.
	// Without it those headers are whatever the caller sent, and they are ignored.
	AppServiceAuth bool // DVROUTER_APPSERVICE_AUTH
	// FailureRetention is how long a failure is kept after its event's time; 0 keeps forever.
	FailureRetention time.Duration // DVROUTER_FAILURE_RETENTION, default 30 days
	// ResolvedRetention is the same for replayed and discarded failures; it defaults to
	// FailureRetention and may only be shorter.
	ResolvedRetention time.Duration // DVROUTER_RESOLVED_RETENTION
	// BreakerTable holds the consumers' circuit breakers, shared by every instance, in the
	// failure store's account (DVROUTER_BREAKER_TABLE, default ConsumerBreakers); unused
	// without Tables.
	BreakerTable string
	// BreakerSync is how often each instance merges its breaker counts into BreakerTable and
	// reads the others' (DVROUTER_BREAKER_SYNC, default 1s).
	BreakerSync time.Duration
	// MetricsInterval is how often the per-consumer metrics line is logged
	// (DVROUTER_METRICS_INTERVAL, default 1m).
	MetricsInterval time.Duration
	// Journal keeps every delivery outcome in JournalTable, on the failure store's account
	// (DVROUTER_JOURNAL, default true; it needs Tables).
	Journal      bool
	JournalTable string // DVROUTER_JOURNAL_TABLE, default DeliveryJournal
	// JournalRetention is how long journal entries are kept; 0 keeps forever
	// (DVROUTER_JOURNAL_RETENTION, default 30 days). The retention timer purges them.
	JournalRetention time.Duration
	// Dataverse is how dvrouter reads rows back from the Dataverse Web API (size-exceeded events,
	// routes with fetch); unset means it does not.
	Dataverse Dataverse
	// Changes are change tracking's settings (settings_changes.go).
	Changes Changes
	// UnderFunctionsHost is true when the Functions host started us (it sets
	// FUNCTIONS_CUSTOMHANDLER_PORT); the host then checks function keys itself.
	UnderFunctionsHost bool
}

// ServiceBus is the connection to the ingress queue, as the Functions Service Bus extension
// names it (ServiceBusConnection): a connection string, or a namespace with managed identity.
type ServiceBus struct {
	ConnectionString string // ServiceBusConnection
	Namespace        string // ServiceBusConnection__fullyQualifiedNamespace
	ClientID         string // ServiceBusConnection__clientId (user-assigned identity)
}

// Configured reports whether a Service Bus connection is set, which selects queued mode.
func (s ServiceBus) Configured() bool { return s.ConnectionString != "" || s.Namespace != "" }

// Tables is the connection to Table Storage for the failure store.
type Tables struct {
	ConnectionString string // DVROUTER_TABLES
	ServiceURI       string // DVROUTER_TABLES__tableServiceUri
	ClientID         string // DVROUTER_TABLES__clientId
	Table            string // DVROUTER_FAILURES_TABLE, default DeliveryFailures
}

// Dataverse is the Web API access: which environment each organization's events come from, and
// the identity that reads them.
type Dataverse struct {
	// Environments maps what names an organization in an event (its organization id, its unique
	// name or its host name, lower case) to its environment URL, https://contoso.crm4.dynamics.com
	// (DVROUTER_DATAVERSE_ENVIRONMENTS, key=URL pairs separated by ';'; a URL alone is known by
	// its host).
	Environments map[string]string
	ClientID     string // DVROUTER_DATAVERSE_CLIENT_ID: a user-assigned managed identity
	// Concurrency is the most Web API requests in flight per environment and instance
	// (DVROUTER_DATAVERSE_CONCURRENCY, default 8).
	Concurrency int
}

// Configured reports whether any environment is set.
func (d Dataverse) Configured() bool { return len(d.Environments) > 0 }

// Configured reports whether a failure store is set.
func (t Tables) Configured() bool { return t.ConnectionString != "" || t.ServiceURI != "" }

// AdminKey is one named key for the failures API and what its holder may do.
type AdminKey struct {
	Name string
	Key  string
	Role Role // RoleReader for name:reader=key; RoleOperator (or empty, meaning the same) otherwise
}

// Role is what a caller of the failures API may do.
type Role string

const (
	// RoleReader may list and show failures and ask who they are.
	RoleReader Role = "reader"
	// RoleOperator may also replay and discard.
	RoleOperator Role = "operator"
)

// Mode is "queued" when a Service Bus connection is configured, else "direct".
func (s *Settings) Mode() string {
	if s.ServiceBus.Configured() {
		return "queued"
	}
	return "direct"
}

// WebhookKeyValid reports whether key matches one of the webhook keys, comparing in constant
// time and checking every key, so the answer's timing says nothing about which key is close.
func (s *Settings) WebhookKeyValid(key string) bool {
	ok := 0
	for _, k := range s.WebhookKeys {
		ok |= subtle.ConstantTimeCompare([]byte(k), []byte(key))
	}
	return ok == 1
}

// AdminKeyName returns the name of the admin key that matches key, compared in constant time.
func (s *Settings) AdminKeyName(key string) (string, bool) {
	k, ok := s.AdminKeyFor(key)
	return k.Name, ok
}

// AdminKeyFor returns the admin key that matches key. Every key is compared, in constant time,
// so the answer's timing says nothing about which key is close.
func (s *Settings) AdminKeyFor(key string) (AdminKey, bool) {
	var found AdminKey
	ok := false
	for _, k := range s.AdminKeys {
		if subtle.ConstantTimeCompare([]byte(k.Key), []byte(key)) == 1 {
			found, ok = k, true
		}
	}
	return found, ok
}

// Names of the settings, in one place so the README, the sample settings and the Bicep
// template can be checked against them.
const (
	EnvCustomHandlerPort = "FUNCTIONS_CUSTOMHANDLER_PORT"
	EnvPort              = "PORT"
	EnvRoutes            = "DVROUTER_ROUTES"
	EnvMaxBody           = "DVROUTER_MAX_BODY"
	EnvWebhookKeys       = "DVROUTER_WEBHOOK_KEYS"
	EnvAllowedOrgs       = "DVROUTER_ALLOWED_ORGS"
	EnvQueue             = "DVROUTER_QUEUE"
	EnvServiceBus        = "ServiceBusConnection"
	EnvServiceBusNS      = "ServiceBusConnection__fullyQualifiedNamespace"
	EnvServiceBusClient  = "ServiceBusConnection__clientId"
	EnvTables            = "DVROUTER_TABLES"
	EnvTablesURI         = "DVROUTER_TABLES__tableServiceUri"
	EnvTablesClient      = "DVROUTER_TABLES__clientId"
	EnvFailuresTable     = "DVROUTER_FAILURES_TABLE"
	EnvDeliveryBudget    = "DVROUTER_DELIVERY_BUDGET"
	EnvAdminKeys         = "DVROUTER_ADMIN_KEYS"
	EnvLogLevel          = "DVROUTER_LOG_LEVEL"
	EnvAppServiceAuth    = "DVROUTER_APPSERVICE_AUTH"
	EnvFailureRetention  = "DVROUTER_FAILURE_RETENTION"
	EnvResolvedRetention = "DVROUTER_RESOLVED_RETENTION"
	EnvBreakerTable      = "DVROUTER_BREAKER_TABLE"
	EnvBreakerSync       = "DVROUTER_BREAKER_SYNC"
	EnvMetricsInterval   = "DVROUTER_METRICS_INTERVAL"
	EnvJournal           = "DVROUTER_JOURNAL"
	EnvJournalTable      = "DVROUTER_JOURNAL_TABLE"
	EnvJournalRetention  = "DVROUTER_JOURNAL_RETENTION"
	EnvDataverseEnvs     = "DVROUTER_DATAVERSE_ENVIRONMENTS"
	EnvDataverseClient   = "DVROUTER_DATAVERSE_CLIENT_ID"
	EnvDataverseConc     = "DVROUTER_DATAVERSE_CONCURRENCY"
)

// DefaultFailureRetention is how long failures are kept when DVROUTER_FAILURE_RETENTION is unset.
const DefaultFailureRetention = 30 * 24 * time.Hour

// DevelopmentStorage is what `UseDevelopmentStorage=true` means (the Functions convention, which
// aztables does not expand itself): Azurite's table endpoint on its default port, with the
// emulator's fixed, publicly documented account name and key. It is not a secret and reaches
// nothing but a local emulator.
const DevelopmentStorage = "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;" +
	"AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;" +
	"TableEndpoint=http://127.0.0.1:10002/devstoreaccount1;"

// LoadSettings reads the settings through getenv and validates them. Every problem is
// reported, each naming its setting.
func LoadSettings(getenv func(string) string) (*Settings, error) {
	var errs []error
	getenv = refuseUnresolved(getenv, &errs)
	s := &Settings{
		RoutesPath: strings.TrimSpace(getenv(EnvRoutes)),
		Queue:      orDefault(getenv(EnvQueue), "dataverse-events"),
		LogLevel:   strings.ToLower(orDefault(getenv(EnvLogLevel), "info")),
		ServiceBus: ServiceBus{
			ConnectionString: strings.TrimSpace(getenv(EnvServiceBus)),
			Namespace:        strings.TrimSpace(getenv(EnvServiceBusNS)),
			ClientID:         strings.TrimSpace(getenv(EnvServiceBusClient)),
		},
		Tables: Tables{
			ConnectionString: strings.TrimSpace(getenv(EnvTables)),
			ServiceURI:       strings.TrimSpace(getenv(EnvTablesURI)),
			ClientID:         strings.TrimSpace(getenv(EnvTablesClient)),
			Table:            orDefault(getenv(EnvFailuresTable), "DeliveryFailures"),
		},
		BreakerTable: orDefault(getenv(EnvBreakerTable), "ConsumerBreakers"),
		JournalTable: orDefault(getenv(EnvJournalTable), "DeliveryJournal"),
	}
	bad := func(name, format string, args ...any) {
		errs = append(errs, fmt.Errorf("setting %s: "+format, append([]any{name}, args...)...))
	}

	addr, underHost, err := ListenAddr(getenv)
	if err != nil {
		errs = append(errs, err)
	}
	s.Addr, s.UnderFunctionsHost = addr, underHost

	s.MaxBody = 1 << 20
	if v := strings.TrimSpace(getenv(EnvMaxBody)); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1024 || n > 64<<20 {
			bad(EnvMaxBody, "%q must be a byte count from 1024 to 67108864", v)
		}
		s.MaxBody = n
	}

	s.BodyReadTimeout = 30 * time.Second
	s.DeliveryBudget = 20 * time.Second
	if v := strings.TrimSpace(getenv(EnvDeliveryBudget)); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 || d > 55*time.Second {
			// Dataverse waits 60 s for a webhook; the budget must leave room to answer.
			bad(EnvDeliveryBudget, "%q must be a duration above 0 and at most 55s", v)
		}
		s.DeliveryBudget = d
	}

	s.BreakerSync = time.Second
	if v := strings.TrimSpace(getenv(EnvBreakerSync)); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 50*time.Millisecond || d > time.Minute {
			bad(EnvBreakerSync, "%q must be a duration from 50ms to 1m", v)
		}
		s.BreakerSync = d
	}
	if !tableNameRE.MatchString(s.BreakerTable) {
		bad(EnvBreakerTable, "%q must be 3 to 63 letters and digits, starting with a letter", s.BreakerTable)
	} else if strings.EqualFold(s.BreakerTable, s.Tables.Table) {
		bad(EnvBreakerTable, "%q is the failure table (%s): the breakers need a table of their own", s.BreakerTable, EnvFailuresTable)
	}

	s.MetricsInterval = time.Minute
	if v := strings.TrimSpace(getenv(EnvMetricsInterval)); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 100*time.Millisecond || d > time.Hour {
			bad(EnvMetricsInterval, "%q must be a duration from 100ms to 1h", v)
		}
		s.MetricsInterval = d
	}

	for _, k := range splitList(getenv(EnvWebhookKeys)) {
		if len(k) < 16 {
			bad(EnvWebhookKeys, "a key is shorter than 16 characters")
			continue
		}
		s.WebhookKeys = append(s.WebhookKeys, k)
	}

	s.AllowedOrgs = map[string]bool{}
	for _, o := range splitList(getenv(EnvAllowedOrgs)) {
		if !isGUID(o) {
			bad(EnvAllowedOrgs, "%q is not an organization id (a GUID)", o)
			continue
		}
		s.AllowedOrgs[strings.ToLower(o)] = true
	}

	seen := map[string]bool{}
	for _, pair := range splitList(getenv(EnvAdminKeys)) {
		name, key, ok := strings.Cut(pair, "=")
		name, key = strings.TrimSpace(name), strings.TrimSpace(key)
		name, roleText, hasRole := strings.Cut(name, ":")
		name, role := strings.TrimSpace(name), Role(strings.TrimSpace(roleText))
		switch {
		case !ok || name == "":
			bad(EnvAdminKeys, "each entry must be name=key (operator) or name:reader=key")
		case hasRole && role != RoleReader && role != RoleOperator:
			bad(EnvAdminKeys, "the key named %q has role %q; roles are reader and operator", name, role)
		case len(key) < 16:
			bad(EnvAdminKeys, "the key named %q is shorter than 16 characters", name)
		case seen[name]:
			bad(EnvAdminKeys, "the name %q is used by two keys; the name is what the audit trail records", name)
		default:
			if !hasRole {
				role = RoleOperator
			}
			seen[name] = true
			s.AdminKeys = append(s.AdminKeys, AdminKey{Name: name, Key: key, Role: role})
		}
	}

	if v := strings.TrimSpace(getenv(EnvAppServiceAuth)); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			bad(EnvAppServiceAuth, "%q must be true or false", v)
		}
		s.AppServiceAuth = b
	}

	s.FailureRetention = DefaultFailureRetention
	if v := strings.TrimSpace(getenv(EnvFailureRetention)); v != "" {
		d, err := ParseRetention(v)
		if err != nil {
			bad(EnvFailureRetention, "%v", err)
		}
		s.FailureRetention = d
	}
	s.ResolvedRetention = s.FailureRetention
	if v := strings.TrimSpace(getenv(EnvResolvedRetention)); v != "" {
		d, err := ParseRetention(v)
		switch {
		case err != nil:
			bad(EnvResolvedRetention, "%v", err)
		case d == 0 && s.FailureRetention != 0:
			bad(EnvResolvedRetention, "0 (keep forever) would keep resolved failures longer than %s keeps pending ones; leave it unset to use the same", EnvFailureRetention)
		case s.FailureRetention != 0 && d > s.FailureRetention:
			bad(EnvResolvedRetention, "%q is longer than %s (%s); resolved failures are never kept longer than pending ones", v, EnvFailureRetention, s.FailureRetention)
		default:
			s.ResolvedRetention = d
		}
	}

	s.Journal = true
	if v := strings.TrimSpace(getenv(EnvJournal)); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			bad(EnvJournal, "%q must be true or false", v)
		}
		s.Journal = b
	}
	if !tableNameRE.MatchString(s.JournalTable) {
		bad(EnvJournalTable, "%q must be 3 to 63 letters and digits, starting with a letter", s.JournalTable)
	} else if strings.EqualFold(s.JournalTable, s.Tables.Table) || strings.EqualFold(s.JournalTable, s.BreakerTable) {
		bad(EnvJournalTable, "%q is the failure or breaker table: the journal needs a table of its own", s.JournalTable)
	}
	s.JournalRetention = DefaultFailureRetention
	if v := strings.TrimSpace(getenv(EnvJournalRetention)); v != "" {
		d, err := ParseRetention(v)
		if err != nil {
			bad(EnvJournalRetention, "%v", err)
		}
		s.JournalRetention = d
	}

	s.Dataverse = loadDataverse(getenv, bad)

	if strings.EqualFold(s.Tables.ConnectionString, "UseDevelopmentStorage=true") {
		s.Tables.ConnectionString = DevelopmentStorage
	}
	s.Changes = loadChanges(getenv, s, bad)
	if s.ServiceBus.ConnectionString != "" && s.ServiceBus.Namespace != "" {
		bad(EnvServiceBus, "set either %s or %s, not both", EnvServiceBus, EnvServiceBusNS)
	}
	if s.Tables.ConnectionString != "" && s.Tables.ServiceURI != "" {
		bad(EnvTables, "set either %s or %s, not both", EnvTables, EnvTablesURI)
	}
	if s.Tables.ServiceURI != "" && !strings.HasPrefix(s.Tables.ServiceURI, "https://") && !strings.HasPrefix(s.Tables.ServiceURI, "http://127.0.0.1") {
		// Only the scheme and host are echoed: a query string could carry a SAS token.
		shown, _, _ := strings.Cut(s.Tables.ServiceURI, "?")
		bad(EnvTablesURI, "%q must be an https URL", shown)
	}
	switch s.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		bad(EnvLogLevel, "%q must be debug, info, warn or error", s.LogLevel)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return s, nil
}

// loadDataverse reads the Web API settings: the environments (ParseDataverseEnvironments), the
// identity and the concurrency. They are read here once; the route file's dataverse consumers
// and the Web API client are built from what this returns.
func loadDataverse(getenv func(string) string, bad func(name, format string, args ...any)) Dataverse {
	d := Dataverse{Environments: map[string]string{}, ClientID: strings.TrimSpace(getenv(EnvDataverseClient)), Concurrency: 8}
	envs, err := ParseDataverseEnvironments(getenv(EnvDataverseEnvs))
	if err != nil {
		bad(EnvDataverseEnvs, "%v", err)
	}
	d.Environments = envs
	if v := strings.TrimSpace(getenv(EnvDataverseConc)); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 52 {
			// 52 is Dataverse's own limit of concurrent requests per user.
			bad(EnvDataverseConc, "%q must be a number from 1 to 52", v)
		}
		d.Concurrency = n
	}
	if d.ClientID != "" && !isGUID(d.ClientID) {
		bad(EnvDataverseClient, "%q is not a client id (a GUID)", d.ClientID)
	}
	return d
}

// ParseDataverseEnvironments reads the value of DVROUTER_DATAVERSE_ENVIRONMENTS: key=URL pairs
// separated by ';' (or ','), where key is an organization id, an organization's unique name or a
// host name, compared ignoring case, and URL is https://host (contoso=https://contoso.crm4.dynamics.com);
// a URL without a key is known by its host. The error names every bad entry; the map holds the
// good ones.
func ParseDataverseEnvironments(setting string) (map[string]string, error) {
	out := map[string]string{}
	var errs []error
	for _, part := range strings.FieldsFunc(setting, func(r rune) bool { return r == ';' || r == ',' }) {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		key, raw, ok := strings.Cut(part, "=")
		if !ok {
			key, raw = "", part
		}
		key, raw = strings.ToLower(strings.TrimSpace(key)), strings.TrimSpace(raw)
		u, err := environmentURL(raw)
		if err != nil {
			errs = append(errs, fmt.Errorf("entry %q: %w", part, err))
			continue
		}
		if key == "" {
			key = strings.TrimPrefix(strings.TrimPrefix(u, "https://"), "http://")
		}
		if prev, dup := out[key]; dup && prev != u {
			errs = append(errs, fmt.Errorf("entry %q: %q names two environments (%s and %s)", part, key, prev, u))
			continue
		}
		out[key] = u
	}
	return out, errors.Join(errs...)
}

// environmentURL checks one environment URL: https://host and nothing more (http only to
// loopback, for local stand-ins), returned as scheme://host in lower case.
func environmentURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("%q is not a URL such as https://contoso.crm4.dynamics.com", raw)
	}
	host := u.Hostname()
	if u.Scheme != "https" && !(u.Scheme == "http" && (host == "127.0.0.1" || host == "localhost" || host == "::1")) {
		return "", fmt.Errorf("%q must be an https URL", raw)
	}
	if strings.Trim(u.Path, "/") != "" || u.RawQuery != "" {
		return "", fmt.Errorf("%q must be the environment URL alone, without a path or query", raw)
	}
	return u.Scheme + "://" + strings.ToLower(u.Host), nil
}

// ListenAddr is the address to listen on: 127.0.0.1 and the port the Functions host gives
// (FUNCTIONS_CUSTOMHANDLER_PORT, which also says the host started us), else $PORT, else 7071.
// serve needs it before the other settings, which may wait on Key Vault.
func ListenAddr(getenv func(string) string) (addr string, underHost bool, err error) {
	port := strings.TrimSpace(getenv(EnvCustomHandlerPort))
	underHost = port != ""
	if port == "" {
		port = orDefault(getenv(EnvPort), "7071")
	}
	if n, perr := strconv.Atoi(port); perr != nil || n < 0 || n > 65535 {
		err = fmt.Errorf("setting %s: %q is not a port number", EnvPort, port)
	}
	return "127.0.0.1:" + port, underHost, err
}

// ParseRetention reads a retention period: whole days ("30d"), a Go duration of at least an
// hour ("36h"), or "0" to keep forever.
func ParseRetention(v string) (time.Duration, error) {
	v = strings.TrimSpace(v)
	if v == "0" {
		return 0, nil
	}
	var d time.Duration
	if days, ok := strings.CutSuffix(v, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n < 1 || n > 36500 {
			return 0, fmt.Errorf("%q must be a number of days from 1d to 36500d, a duration such as 36h, or 0 to keep forever", v)
		}
		d = time.Duration(n) * 24 * time.Hour
	} else {
		var err error
		d, err = time.ParseDuration(v)
		if err != nil || d < time.Hour {
			return 0, fmt.Errorf("%q must be a number of days such as 30d, a duration of at least 1h such as 36h, or 0 to keep forever", v)
		}
	}
	return d, nil
}

// tableNameRE is Table Storage's rule for table names: 3 to 63 alphanumeric characters, not
// starting with a digit (https://learn.microsoft.com/rest/api/storageservices/understanding-the-table-service-data-model#table-names).
var tableNameRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9]{2,62}$`)

// refuseUnresolved wraps getenv so that a Key Vault reference App Service could not resolve
// (it then passes the reference text itself) is reported instead of being used as a value:
// such text would otherwise pass as a 16-character key.
func refuseUnresolved(getenv func(string) string, errs *[]error) func(string) string {
	return func(name string) string {
		v := getenv(name)
		if IsUnresolvedReference(v) {
			*errs = append(*errs, fmt.Errorf("setting %s: the Key Vault reference was not resolved; check the secret exists and the app's identity may read it", name))
			return ""
		}
		return v
	}
}

// IsUnresolvedReference reports whether v is a Key Vault reference left as text.
func IsUnresolvedReference(v string) bool {
	return strings.HasPrefix(strings.TrimSpace(v), "@Microsoft.KeyVault(")
}

func orDefault(v, def string) string {
	if v = strings.TrimSpace(v); v != "" {
		return v
	}
	return def
}

func splitList(v string) []string {
	var out []string
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func isGUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, c := range s {
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

package config

import "time"

// Pos is a position in the route file, for errors that point at the line and column.
type Pos struct {
	Line int `json:"line"`
	Col  int `json:"col"`
}

// RouteFile is the route file (YAML or JSON) after loading and validation: every default filled
// in, every `%SETTING%` reference resolved, every consumer a route names defined.
type RouteFile struct {
	Path      string
	Consumers []Consumer
	Routes    []Route
	// Lookups names, per table (logical name), the columns the file says are lookups: the
	// decoder then writes a cleared one as the Web API does, "_x_value": null, though the
	// context's null carries no type (see pkg/dataverse, "keys of row"). Nil when none.
	Lookups  map[string][]string
	Warnings []string // "FILE:LINE:COL: message" lines that do not stop start-up
}

// Consumer is one downstream consumer and its delivery policy.
type Consumer struct {
	Name           string        // unique; letters, digits, '-'
	Type           string        // a registered kind: "http", "servicebus", ...
	Format         string        // "row" (default), "raw" or "cloudevent"
	Timeout        time.Duration // per attempt; default 10s
	Retry          Retry
	Breaker        Breaker
	MaxConcurrency int        // default 16
	CloudEvent     CloudEvent // format cloudevent: how the envelope is written

	// Spec is the settings of the consumer's kind, as that kind's Decode read them (an
	// httpdest.Spec for an http consumer, ...); the kind's publisher reads it back.
	Spec any

	Pos Pos
}

// CloudEvent is how a `cloudevent` consumer's events are written (CloudEvents 1.0).
type CloudEvent struct {
	// Mode is "structured" (default: the whole event in the body, application/cloudevents+json)
	// or "binary" (the body is the data; attributes travel as ce-* HTTP headers, or as
	// cloudEvents:* AMQP application properties on Service Bus).
	Mode string
	// TypePrefix is the reverse-DNS prefix of `type`: <prefix>.<table>.<message>; default
	// DefaultCloudEventTypePrefix.
	TypePrefix string
	// Source, when set, is the `source` of every event (an absolute URI); empty: the
	// environment, https://<org host>/ or urn:dataverse:org:<organization id>.
	Source string
}

// DefaultCloudEventTypePrefix is the reverse-DNS prefix of a CloudEvent's type unless a consumer
// sets its own (CloudEvents 1.0, `type`: "SHOULD be prefixed with a reverse-DNS name").
const DefaultCloudEventTypePrefix = "com.microsoft.dataverse"

// Retry is a consumer's retry policy: exponential backoff with full jitter.
type Retry struct {
	Attempts     int           // total attempts, first included; default 4
	InitialDelay time.Duration // default 1s
	MaxDelay     time.Duration // default 30s
}

// Breaker is a consumer's circuit breaker policy.
// It counts whole deliveries (after their retries), not attempts, over a rolling Window.
type Breaker struct {
	FailureRatio     float64       // default 0.5
	MinRequests      uint32        // deliveries in the window before the ratio counts; default 20
	OpenFor          time.Duration // default 30s
	HalfOpenRequests uint32        // default 1
	Window           time.Duration // rolling window the ratio is measured over; default 30s
}

// Route is one route as written in the file; package route compiles it.
type Route struct {
	Name                string
	Table               string   // logical name or "*"
	Messages            []string // empty means any
	Stage               int      // 0 means any; else 10, 20 or 40
	Mode                string   // "" means any; else "sync" or "async"
	FilteringAttributes []string
	Changed             []string
	Filter              string
	FilterPos           Pos // where the filter string starts, for errors inside it
	Conditions          []string
	ConditionPos        []Pos
	Select              []string
	Exclude             []string
	// FetchMissing (`fetch: missing`) reads from the Dataverse Web API the columns the route's
	// expressions read that the event lacks; Fetch (`fetch: [a, b]`) names the columns to read
	// when the event lacks them. Either way, one read per event serves every route.
	FetchMissing bool
	Fetch        []string
	Consumers    []string
	Pos          Pos
}

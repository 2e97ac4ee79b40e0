package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/dvrouter/dvrouter/pkg/config"
	"github.com/dvrouter/dvrouter/pkg/dataverse"
	"github.com/dvrouter/dvrouter/pkg/deliver"
	"github.com/dvrouter/dvrouter/pkg/dispatch"
	"github.com/dvrouter/dvrouter/pkg/route"
)

// inspectMaxBody bounds what inspect reads: far above any body Dataverse sends (256 KB), low
// enough that a wrong file cannot exhaust memory.
const inspectMaxBody = 64 << 20

// runInspect is `dvrouter inspect [--size-exceeded] [--content-type T] [--routes FILE [--consumer
// NAME]] [--pretty] FILE|-`:
// it prints the normalized event of one payload, in any of Dataverse's three message formats
// (JSON, text XML, .NET binary XML; named by --content-type, else told from the first bytes), as
// a single JSON object. The same context prints the same event whatever its format. With
// --routes, the route file's `lookups:` hints are applied as serve applies them; the file is
// loaded as `match` loads it (%SETTING% references from the environment). With --consumer, it
// prints instead the body that consumer receives for the event, byte for byte (deliver.Body).
// --pretty indents the JSON. Exit status: 0
// printed, 1 the input is not a valid event (one-line reason on stderr) or the route file is
// invalid (its problems on stderr), 2 usage.
func runInspect(args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	fs := flag.NewFlagSet("inspect", flag.ContinueOnError)
	fs.SetOutput(stderr)
	sizeExceeded := fs.Bool("size-exceeded", false,
		"mark the event as sent with x-ms-dynamics-msg-size-exceeded")
	contentType := fs.String("content-type", "",
		"the payload's format: json, xml or msbin1, or a MIME type (application/json, application/xml, application/msbin1); default: told from its first bytes")
	// No default from DVROUTER_ROUTES: inspect shows what the payload says unless asked for more.
	routes := fs.String("routes", "", "a route file whose lookups: hints to apply, as serve does")
	consumer := fs.String("consumer", "",
		"print the body this consumer of the --routes file receives for the event (after the matched route's select and exclude, in the consumer's format) instead of the normalized event")
	pretty := fs.Bool("pretty", false, "indent the JSON for reading (with --consumer, no longer byte for byte what is sent)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: dvrouter inspect [--size-exceeded] [--content-type json|xml|msbin1] [--routes FILE [--consumer NAME]] [--pretty] FILE|-")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return 2
	}
	name := fs.Arg(0)
	format := dataverse.FormatUnknown
	if *contentType != "" {
		f, ok := dataverse.ParseFormat(*contentType)
		if !ok {
			fmt.Fprintf(stderr, "dvrouter inspect: --content-type %q: want json, xml or msbin1 (or application/json, application/xml, application/msbin1)\n", *contentType)
			return 2
		}
		format = f
	}

	if *consumer != "" && *routes == "" {
		fmt.Fprintln(stderr, "dvrouter inspect: --consumer needs --routes: the route file defines the consumer and the routes that feed it")
		return 2
	}

	opts := dataverse.DecodeOptions{SizeExceeded: *sizeExceeded}
	var rf *config.RouteFile
	var set *route.Set
	if *routes != "" {
		var problems []config.Problem
		var err error
		rf, set, problems, err = loadRoutesForTool(*routes, getenv)
		if err != nil {
			fmt.Fprintf(stderr, "dvrouter inspect: %v\n", err)
			return 1
		}
		if problems != nil {
			for _, p := range problems {
				fmt.Fprintln(stderr, p.String())
			}
			return 1
		}
		opts.Lookups = rf.Lookups
	}

	raw, err := readPayload(name, stdin)
	if err != nil {
		fmt.Fprintf(stderr, "dvrouter inspect: %v\n", err)
		return 1
	}

	ev, err := dataverse.DecodeFormat(raw, format, opts)
	if err != nil {
		fmt.Fprintf(stderr, "dvrouter inspect: %s: %s\n", name, oneLine(err.Error()))
		return 1
	}
	var out []byte
	if *consumer != "" {
		body, err := consumerBody(ev, rf, set, *consumer)
		if err != nil {
			fmt.Fprintf(stderr, "dvrouter inspect: %s: %v\n", name, err)
			return 1
		}
		// Byte for byte what is sent, so no newline is added; --pretty is for reading.
		out = body
		if *pretty {
			var ind bytes.Buffer
			if json.Indent(&ind, body, "", "  ") == nil {
				out = append(ind.Bytes(), '\n')
			}
		}
	} else {
		// The event is printed as json.Marshal would, but without escaping <, > and & (the
		// output is for people and for jq, not for HTML).
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if *pretty {
			enc.SetIndent("", "  ")
		}
		if err := enc.Encode(ev); err != nil {
			fmt.Fprintf(stderr, "dvrouter inspect: %s: encode: %v\n", name, err)
			return 1
		}
		out = buf.Bytes()
	}
	if _, err := stdout.Write(out); err != nil {
		fmt.Fprintf(stderr, "dvrouter inspect: write: %v\n", err)
		return 1
	}
	return 0
}

// consumerBody is the body the named consumer receives for ev: the routes ev matches become
// deliveries as serve makes them (dispatch.Targets: one per consumer, shaped by the first
// matched route that feeds it), encoded by the delivery's own encoder.
func consumerBody(ev *dataverse.Event, rf *config.RouteFile, set *route.Set, name string) ([]byte, error) {
	var c *config.Consumer
	for i := range rf.Consumers {
		if rf.Consumers[i].Name == name {
			c = &rf.Consumers[i]
		}
	}
	if c == nil {
		names := make([]string, len(rf.Consumers))
		for i, c := range rf.Consumers {
			names[i] = c.Name
		}
		return nil, fmt.Errorf("--consumer %q: no such consumer in %s (defined: %s)", name, rf.Path, strings.Join(names, ", "))
	}
	for _, t := range dispatch.Targets(set.Match(ev)) {
		if t.Consumer == name {
			body, _, err := deliver.Body(ev, c, t.Select, t.Exclude)
			return body, err
		}
	}
	var feeding []string
	for _, r := range set.Routes() {
		if slices.Contains(r.Consumers, name) {
			feeding = append(feeding, r.Name)
		}
	}
	if len(feeding) == 0 {
		return nil, fmt.Errorf("consumer %q receives nothing: no route feeds it", name)
	}
	return nil, fmt.Errorf("consumer %q receives nothing for this event: it matches none of the routes that feed it (%s); `dvrouter match` says why", name, strings.Join(feeding, ", "))
}

// oneLine keeps a reason on one line whatever the error text holds.
func oneLine(s string) string {
	return strings.NewReplacer("\r\n", " ", "\n", " ", "\r", " ").Replace(s)
}

// readPayload reads an event payload from the file name, or from stdin when name is "-",
// refusing anything over inspectMaxBody.
func readPayload(name string, stdin io.Reader) ([]byte, error) {
	in := stdin
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		in = f
	}
	raw, err := io.ReadAll(io.LimitReader(in, inspectMaxBody+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if len(raw) > inspectMaxBody {
		return nil, fmt.Errorf("%s: larger than %d bytes", name, inspectMaxBody)
	}
	return raw, nil
}

package main

// The route file's commands: validate, match and import-flow.

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"

	"github.com/dvrouter/dvrouter/pkg/config"
	"github.com/dvrouter/dvrouter/pkg/dataverse"
	"github.com/dvrouter/dvrouter/pkg/route"
)

// parseInterspersed parses flags wherever they appear among the arguments (the flag package
// stops at the first argument that is not a flag), and returns the other arguments.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var rest []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return rest, nil
		}
		rest = append(rest, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// loadRoutesForTool loads and compiles the route file, as start-up does. On failure it returns
// every problem, errors and warnings, in file order: the loader's and, for the parts that did
// load, the expression compiler's.
func loadRoutesForTool(path string, getenv func(string) string) (*config.RouteFile, *route.Set, []config.Problem, error) {
	return checkRoutes(path, func(path string) (*config.RouteFile, error) { return config.LoadRoutes(path, lookup(getenv)) })
}

// checkRoutes is loadRoutesForTool with the loader given (validate --no-resolve loads without
// the settings).
func checkRoutes(path string, load func(string) (*config.RouteFile, error)) (*config.RouteFile, *route.Set, []config.Problem, error) {
	rf, err := load(path)
	if err != nil {
		var ve *config.ValidationError
		if !errors.As(err, &ve) {
			return nil, nil, nil, err
		}
		problems := append(append([]config.Problem{}, ve.Problems...), ve.Warnings...)
		if ve.Partial != nil {
			if _, err := route.Compile(ve.Partial, route.Options{}); err != nil && errors.As(err, &ve) {
				problems = append(problems, ve.Problems...)
			}
		}
		sortByPosition(problems)
		return nil, nil, problems, nil
	}
	set, err := route.Compile(rf, route.Options{})
	if err != nil {
		var ve *config.ValidationError
		if !errors.As(err, &ve) {
			return nil, nil, nil, err
		}
		return nil, nil, ve.Problems, nil
	}
	return rf, set, nil, nil
}

func sortByPosition(ps []config.Problem) {
	sort.SliceStable(ps, func(i, j int) bool {
		if ps[i].Pos.Line != ps[j].Pos.Line {
			return ps[i].Pos.Line < ps[j].Pos.Line
		}
		return ps[i].Pos.Col < ps[j].Pos.Col
	})
}

// routesFlag registers --routes, defaulting to DVROUTER_ROUTES.
func routesFlag(fs *flag.FlagSet, getenv func(string) string) *string {
	return fs.String("routes", getenv(config.EnvRoutes), "the route file (default: $DVROUTER_ROUTES)")
}

// runValidate is `dvrouter validate [--no-resolve] --routes FILE`: exit 0 when the file is valid
// (warnings on stderr), 1 when it is not (every problem as FILE:LINE:COL: message on stderr), 2
// usage. `%SETTING%` references are resolved from the environment, as at start-up; with
// --no-resolve (CI, which has no secrets) they are taken as set and everything else is checked.
func runValidate(args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := routesFlag(fs, getenv)
	noResolve := fs.Bool("no-resolve", false,
		"do not read the settings that %SETTING% references name: take them as set, check all else (for CI without the secrets)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: dvrouter validate [--no-resolve] --routes FILE")
		fs.PrintDefaults()
	}
	rest, err := parseInterspersed(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if len(rest) > 0 || *path == "" {
		fs.Usage()
		return 2
	}
	load := func(path string) (*config.RouteFile, error) { return config.LoadRoutes(path, lookup(getenv)) }
	if *noResolve {
		load = config.LoadRoutesUnresolved
	}
	rf, set, problems, err := checkRoutes(*path, load)
	if err != nil {
		fmt.Fprintf(stderr, "dvrouter validate: %v\n", err)
		return 1
	}
	if problems != nil {
		errs := 0
		for _, p := range problems {
			fmt.Fprintln(stderr, p.String())
			if !isWarning(p) {
				errs++
			}
		}
		fmt.Fprintf(stderr, "%s: %d %s\n", *path, errs, plural(errs, "error", "errors"))
		return 1
	}
	for _, w := range rf.Warnings {
		fmt.Fprintln(stderr, w)
	}
	for _, w := range set.Warnings() {
		fmt.Fprintln(stderr, w.String())
	}
	fmt.Fprintf(stdout, "%s: valid: %d %s, %d %s\n", *path, len(rf.Consumers), plural(len(rf.Consumers), "consumer", "consumers"),
		set.Len(), plural(set.Len(), "route", "routes"))
	return 0
}

func isWarning(p config.Problem) bool {
	return len(p.Msg) >= len("warning: ") && p.Msg[:len("warning: ")] == "warning: "
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// matchOutput is what `dvrouter match` prints.
type matchOutput struct {
	Matched []string         `json:"matched"`
	Routes  []route.Decision `json:"routes"`
}

// runMatch is `dvrouter match --routes FILE EVENT|-`: it prints which routes the event matches
// and, for each route, why or why not. Exit 0 printed (whether or not anything matched), 1 the
// route file or the event is invalid, 2 usage.
func runMatch(args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	fs := flag.NewFlagSet("match", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := routesFlag(fs, getenv)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: dvrouter match --routes FILE EVENT|-")
		fs.PrintDefaults()
	}
	rest, err := parseInterspersed(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if len(rest) != 1 || *path == "" {
		fs.Usage()
		return 2
	}
	rf, set, problems, err := loadRoutesForTool(*path, getenv)
	if err != nil {
		fmt.Fprintf(stderr, "dvrouter match: %v\n", err)
		return 1
	}
	if problems != nil {
		for _, p := range problems {
			fmt.Fprintln(stderr, p.String())
		}
		return 1
	}

	name := rest[0]
	raw, err := readPayload(name, stdin)
	if err != nil {
		fmt.Fprintf(stderr, "dvrouter match: %v\n", err)
		return 1
	}
	// Any of the three Service Bus message formats, told from the first bytes, as inspect does.
	ev, err := dataverse.DecodeBody(raw, "", dataverse.DecodeOptions{Lookups: rf.Lookups})
	if err != nil {
		fmt.Fprintf(stderr, "dvrouter match: %s: %s\n", name, oneLine(err.Error()))
		return 1
	}

	out := matchOutput{Matched: []string{}, Routes: set.Explain(ev)}
	for _, d := range out.Routes {
		if d.Matched {
			out.Matched = append(out.Matched, d.Name)
		}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(out); err != nil {
		fmt.Fprintf(stderr, "dvrouter match: encode: %v\n", err)
		return 1
	}
	if _, err := stdout.Write(buf.Bytes()); err != nil {
		fmt.Fprintf(stderr, "dvrouter match: write: %v\n", err)
		return 1
	}
	return 0
}

// runImportFlow is `dvrouter import-flow --consumer NAME [--name ROUTE] FLOW.json|-`: it prints
// the route equivalent to a Power Automate flow's Dataverse trigger, with the trigger it read
// and what has no equivalent as notes on stderr (and as comments in the YAML). Exit 0 printed, 1 the file is
// not such a flow, 2 usage.
func runImportFlow(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("import-flow", flag.ContinueOnError)
	fs.SetOutput(stderr)
	consumer := fs.String("consumer", "", "the consumer the route feeds, as named in your route file (required)")
	name := fs.String("name", "", "the route's name (default: from the flow's display name)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: dvrouter import-flow --consumer NAME [--name ROUTE] FLOW.json|-")
		fs.PrintDefaults()
	}
	rest, err := parseInterspersed(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if len(rest) != 1 {
		fs.Usage()
		return 2
	}
	if *consumer == "" {
		fmt.Fprintln(stderr, "dvrouter import-flow: --consumer is required: name the consumer (from your route file) that takes over the flow's actions")
		return 2
	}
	var in io.Reader = os.Stdin
	if rest[0] != "-" {
		f, err := os.Open(rest[0])
		if err != nil {
			fmt.Fprintf(stderr, "dvrouter import-flow: %v\n", err)
			return 1
		}
		defer f.Close()
		in = f
	}
	im, err := route.ImportFlowTrigger(in, route.FlowOptions{Consumer: *consumer, Name: *name})
	if err != nil {
		fmt.Fprintf(stderr, "dvrouter %v\n", err)
		return 1
	}
	fmt.Fprintf(stderr, "read trigger %s\n", im.Trigger)
	for _, n := range im.Notes {
		fmt.Fprintf(stderr, "note: %s\n", n)
	}
	if _, err := io.WriteString(stdout, im.YAML); err != nil {
		fmt.Fprintf(stderr, "dvrouter import-flow: write: %v\n", err)
		return 1
	}
	return 0
}

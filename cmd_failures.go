package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/dvrouter/dvrouter/pkg/supportapi"
)

const failuresUsage = `Usage:
  dvrouter failures list [--consumer NAME] [--status S] [--kind K] [--table T]
                         [--event ID] [--record TABLE/ID] [--correlation ID]
                         [--from TIME] [--to TIME] [--top N] [--all] [--continuation TOKEN]
  dvrouter failures show ID
  dvrouter failures replay ID
  dvrouter failures replay --consumer NAME | --from TIME | --to TIME | --all
                           [--kind K] [--table T] [--max N] [--dry-run]
  dvrouter failures discard ID --reason TEXT

  status: pending, replaying, replayed, discarded    kind: delivery, breaker-open, paused, poison, reread
  TIME is RFC 3339, e.g. 2024-05-01T09:30:00Z, or a date in UTC, e.g. 2024-05-01 (from
  inclusive, to exclusive, on the event's time; a date as --to takes in that whole day)

Every command also takes:
  --endpoint URL   dvrouter's address (default $DVROUTER_ENDPOINT, else http://127.0.0.1:7071)
  --key KEY        admin key (default $DVROUTER_ADMIN_KEY)
  --token TOKEN    Entra ID access token, when App Service authentication is in front
                   (default $DVROUTER_TOKEN; e.g. az account get-access-token --resource api://...)
  --json           print JSON, for scripts

Exit status: 0 done, 1 a request or a replay failed, 2 wrong usage.
`

const (
	defaultEndpoint = "http://127.0.0.1:7071"
	// replayChunk is how many failures one bulk replay request handles: small enough that the
	// progress line moves and no request nears the front end's time limit.
	replayChunk = 50
	// defaultReplayMax is the API's default max for a bulk replay.
	defaultReplayMax = 1000
	// errorColumn is how much of a failure's last error a list shows.
	errorColumn = 60
)

// runFailures is `dvrouter failures ...`: the support tool for kept failures, over the
// failures API.
func runFailures(args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, failuresUsage)
		return 2
	}
	sub, args := args[0], args[1:]
	c := &failuresCmd{stdout: stdout, stderr: stderr}
	fs := flag.NewFlagSet("dvrouter failures "+sub, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	endpoint := fs.String("endpoint", orEnv(getenv, "DVROUTER_ENDPOINT", defaultEndpoint), "")
	key := fs.String("key", getenv("DVROUTER_ADMIN_KEY"), "")
	token := fs.String("token", getenv("DVROUTER_TOKEN"), "")
	fs.BoolVar(&c.json, "json", false, "")

	var run func(pos []string) int
	switch sub {
	case "list":
		f := filterFlags(fs)
		event := fs.String("event", "", "")
		record := fs.String("record", "", "")
		correlation := fs.String("correlation", "", "")
		top := fs.Int("top", 0, "")
		all := fs.Bool("all", false, "")
		cont := fs.String("continuation", "", "")
		run = func(pos []string) int {
			if len(pos) != 0 {
				return c.usage("list takes no arguments, only flags")
			}
			q := f.query()
			q.Event, q.Correlation = *event, *correlation
			if *record != "" {
				table, id, ok := strings.Cut(*record, "/")
				if !ok || strings.TrimSpace(table) == "" || strings.TrimSpace(id) == "" {
					return c.usage("--record is TABLE/ID, e.g. contact/5f2c...")
				}
				if q.Table != "" && q.Table != table {
					return c.usage(fmt.Sprintf("--record names table %q but --table is %q; give one", table, q.Table))
				}
				q.Table, q.Record = table, id
			}
			return c.list(q, *top, *all, *cont)
		}
	case "show":
		run = func(pos []string) int {
			if len(pos) != 1 {
				return c.usage("show needs one failure ID")
			}
			return c.show(pos[0])
		}
	case "replay":
		f := filterFlags(fs)
		limit := fs.Int("max", 0, "")
		dryRun := fs.Bool("dry-run", false, "")
		all := fs.Bool("all", false, "")
		run = func(pos []string) int {
			switch {
			case len(pos) > 1:
				return c.usage("replay takes one failure ID, or filter flags")
			case len(pos) == 1:
				if f.any() || *limit != 0 || *dryRun || *all {
					return c.usage("replay ID takes no filter flags; leave the ID out to replay by filter")
				}
				return c.replayOne(pos[0])
			case *limit < 0:
				return c.usage("--max must be positive")
			}
			req := f.bulk(*all)
			if err := req.Narrow(); err != nil {
				return c.usage("replay needs a failure ID, or a filter such as --consumer NAME or --from TIME (or --all for every consumer's failures of all time)")
			}
			return c.replayMany(req, *limit, *dryRun)
		}
	case "discard":
		reason := fs.String("reason", "", "")
		run = func(pos []string) int {
			switch {
			case len(pos) != 1:
				return c.usage("discard needs one failure ID")
			case strings.TrimSpace(*reason) == "":
				return c.usage(`discard needs --reason "why it is given up"`)
			}
			return c.discard(pos[0], *reason)
		}
	case "help", "-h", "--help":
		fmt.Fprint(stdout, failuresUsage)
		return 0
	default:
		return c.usage(fmt.Sprintf("unknown failures command %q", sub))
	}

	pos, err := parseInterspersed(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, failuresUsage)
		return 0
	}
	if err != nil {
		return c.usage(err.Error())
	}
	client, err := supportapi.NewClient(*endpoint, *key, *token)
	if err != nil {
		return c.usage("--" + err.Error())
	}
	c.api = client
	return run(pos)
}

// failuresCmd is one run of `dvrouter failures`.
type failuresCmd struct {
	api    *supportapi.Client
	stdout io.Writer
	stderr io.Writer
	json   bool
}

func (c *failuresCmd) usage(msg string) int {
	fmt.Fprintf(c.stderr, "dvrouter failures: %s\n\n%s", msg, failuresUsage)
	return 2
}

// fail prints an error the way people and scripts read it, and gives the exit status.
func (c *failuresCmd) fail(err error) int {
	var apiErr *supportapi.APIError
	if errors.As(err, &apiErr) && apiErr.Status == http.StatusUnauthorized {
		err = fmt.Errorf("%w (pass --key or set DVROUTER_ADMIN_KEY; behind App Service authentication, --token)", err)
	}
	fmt.Fprintf(c.stderr, "error: %s\n", errorText(err))
	return 1
}

// filterOpts are the filter flags list and replay share.
type filterOpts struct {
	consumer, status, kind, table, from, to *string
}

func filterFlags(fs *flag.FlagSet) filterOpts {
	return filterOpts{
		consumer: fs.String("consumer", "", ""),
		status:   fs.String("status", "", ""),
		kind:     fs.String("kind", "", ""),
		table:    fs.String("table", "", ""),
		from:     fs.String("from", "", ""),
		to:       fs.String("to", "", ""),
	}
}

func (f filterOpts) any() bool {
	return *f.consumer != "" || *f.status != "" || *f.kind != "" || *f.table != "" || *f.from != "" || *f.to != ""
}

// bulk is the bulk replay request the filter flags ask for; all is --all.
func (f filterOpts) bulk(all bool) supportapi.BulkReplayRequest {
	return supportapi.BulkReplayRequest{Consumer: *f.consumer, Status: *f.status, Kind: *f.kind, Table: *f.table, From: *f.from, To: *f.to, All: all}
}

func (f filterOpts) query() supportapi.ListQuery {
	return supportapi.ListQuery{Consumer: *f.consumer, Status: *f.status, Kind: *f.kind, Table: *f.table, From: *f.from, To: *f.to}
}

func (c *failuresCmd) list(q supportapi.ListQuery, top int, all bool, cont string) int {
	q.Top = top
	var items []supportapi.Failure
	var tw *tabwriter.Writer
	if !c.json {
		tw = tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "EVENT TIME (UTC)\tID\tCONSUMER\tKIND\tSTATUS\tATTEMPTS\tTABLE\tMESSAGE\tLAST ERROR")
	}
	shown := 0
	for {
		q.Continuation = cont
		page, err := c.api.List(context.Background(), q)
		if err != nil {
			return c.fail(err)
		}
		if c.json && !all {
			c.printJSON(page)
			return 0
		}
		if c.json {
			items = append(items, page.Items...)
		} else {
			for _, it := range page.Items {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", listTime(it.OccurredAt), it.ID,
					dashIfEmpty(it.Consumer), it.Kind, it.Status, it.Attempts, dashIfEmpty(it.Table), dashIfEmpty(it.Message), lastError(it))
			}
			shown += len(page.Items)
		}
		cont = page.Continuation
		if !all || cont == "" {
			break
		}
	}
	if c.json {
		if items == nil {
			items = []supportapi.Failure{}
		}
		c.printJSON(supportapi.FailureList{Items: items})
		return 0
	}
	if shown == 0 {
		fmt.Fprintln(c.stdout, "no failures match")
		return 0
	}
	_ = tw.Flush()
	if cont != "" {
		fmt.Fprintf(c.stderr, "more failures match: add --all, or --continuation %s\n", cont)
	}
	return 0
}

func (c *failuresCmd) show(id string) int {
	f, err := c.api.Show(context.Background(), id)
	if err != nil {
		return c.fail(err)
	}
	if c.json {
		c.printJSON(f)
		return 0
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	field := func(name, v string) {
		if v != "" {
			fmt.Fprintf(tw, "%s:\t%s\n", name, safeText(v, false))
		}
	}
	field("id", f.ID)
	field("status", f.Status)
	field("kind", f.Kind)
	field("consumer", f.Consumer)
	field("route", f.Route)
	field("event id", f.EventID)
	field("table", f.Table)
	field("message", f.Message)
	field("record id", f.RecordID)
	field("correlation id", f.CorrelationID)
	field("message id", f.MessageID)
	field("attempts", strconv.Itoa(f.Attempts))
	field("event time", showTime(f.OccurredAt))
	field("first failed", showTime(f.FirstFailedAt))
	field("last failed", showTime(f.LastFailedAt))
	if f.LastStatusCode != 0 {
		field("last status", strconv.Itoa(f.LastStatusCode))
	}
	field("last error", f.LastError)
	if f.Status == supportapi.StatusReplaying {
		field("claimed", actedBy(f.ClaimedBy, f.ClaimedAt))
	}
	field("reason", f.Reason)
	if f.UpdatedBy != "" || !f.UpdatedAt.IsZero() {
		field("updated", actedBy(f.UpdatedBy, f.UpdatedAt))
	}
	_ = tw.Flush()
	if len(f.History) > 0 {
		fmt.Fprintln(c.stdout, "\nhistory:")
		htw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
		for _, h := range f.History {
			fmt.Fprintf(htw, "  %s\t%s\t%s\t%s\t%s\n", showTime(h.At), safeText(h.Action, false), safeText(h.Status, false),
				dashIfEmpty(h.By), clip(safeText(h.Detail, false), 100))
		}
		_ = htw.Flush()
	}
	if len(f.Tries) > 0 {
		fmt.Fprintln(c.stdout, "\nattempts (UTC):")
		atw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
		for i, a := range f.Tries {
			fmt.Fprintf(atw, "  %d\t%s\t%s\t%s\t%s\n", i+1, a.At.UTC().Format("2006-01-02 15:04:05.000"), statusText(a.StatusCode),
				a.Duration.Round(100_000), dashIfEmpty(clip(strings.Join(strings.Fields(safeText(a.Error, false)), " "), 100)))
		}
		_ = atw.Flush()
	}

	fmt.Fprintf(c.stdout, "\npayload (%d bytes as received", f.PayloadSize)
	if f.Kind != supportapi.KindPoison && f.PayloadError == "" {
		fmt.Fprint(c.stdout, ", shown as the normalized event")
	}
	fmt.Fprintln(c.stdout, "):")
	if f.PayloadError != "" {
		fmt.Fprintf(c.stdout, "(%s)\n", safeText(f.PayloadError, false))
	}
	if f.PayloadNote != "" {
		fmt.Fprintf(c.stdout, "(%s)\n", safeText(f.PayloadNote, false))
	}
	fmt.Fprintln(c.stdout, payloadText(f.Payload, f.PayloadEncoding))
	return 0
}

// payloadText is a payload for reading: JSON indented, text as it is (control characters
// other than line breaks and tabs shown escaped, so stored bytes cannot drive the terminal).
func payloadText(p json.RawMessage, encoding string) string {
	var s string
	if err := json.Unmarshal(p, &s); err != nil {
		var out bytes.Buffer
		if json.Indent(&out, p, "", "  ") != nil {
			return safeText(string(p), true)
		}
		return out.String()
	}
	if encoding == "base64" {
		return "(not UTF-8 text; base64)\n" + s
	}
	var out bytes.Buffer
	if json.Indent(&out, []byte(s), "", "  ") == nil {
		return out.String()
	}
	return safeText(s, true)
}

func (c *failuresCmd) replayOne(id string) int {
	res, err := c.api.Replay(context.Background(), id)
	if err != nil {
		return c.fail(err)
	}
	if c.json {
		c.printJSON(res)
	} else if res.Result == "delivered" {
		fmt.Fprintf(c.stdout, "delivered %s\n", res.ID)
		if d := res.Dispatch; d != nil {
			fmt.Fprintf(c.stdout, "routed: routes %s; delivered to %s; failed %s (recorded as new failures)\n",
				namesOrNone(d.Matched), namesOrNone(d.Delivered), namesOrNone(d.Failed))
		}
	} else {
		fmt.Fprintf(c.stdout, "failed %s: %s\n", res.ID, safeText(res.Error, false))
	}
	if res.Result != "delivered" {
		return 1
	}
	return 0
}

// replayMany replays by filter in chunks: a dry run first counts what matches (so the progress
// line has a total), then each request replays the next chunk, continuing where the previous
// one stopped, so a failure that fails again is not met twice in one run.
func (c *failuresCmd) replayMany(body supportapi.BulkReplayRequest, limit int, dryRun bool) int {
	body.DryRun = true
	if limit > 0 {
		body.Max = &limit
	}
	count, err := c.api.ReplayMany(context.Background(), body)
	if err != nil {
		return c.fail(err)
	}
	if dryRun {
		if c.json {
			c.printJSON(count)
			return 0
		}
		more := ""
		if count.Continuation != "" {
			more = " (more match beyond --max)"
		}
		fmt.Fprintf(c.stdout, "dry run: %d failures would be replayed%s; nothing was sent\n", count.Matched, more)
		return 0
	}
	total := count.Matched
	if total == 0 {
		if c.json {
			c.printJSON(count)
		} else {
			fmt.Fprintln(c.stdout, "no pending failures match")
		}
		return 0
	}

	// The count is for the progress line only: failures recorded meanwhile can change what
	// matches, so the run goes on until the server has nothing more or the limit is reached.
	if limit == 0 {
		limit = defaultReplayMax
	}
	progress := newProgress(c.stderr)
	var sum supportapi.BulkReplayResult
	body.DryRun = false
	cont := ""
	for sum.Matched < limit {
		chunkMax := min(replayChunk, limit-sum.Matched)
		body.Max, body.Continuation = &chunkMax, cont
		chunk, err := c.api.ReplayMany(context.Background(), body)
		if err != nil {
			progress.done()
			c.printBulk(sum)
			return c.fail(err)
		}
		sum.Matched += chunk.Matched
		sum.Delivered += chunk.Delivered
		sum.Failed += chunk.Failed
		sum.Skipped += chunk.Skipped
		for _, e := range chunk.Errors {
			if len(sum.Errors) < 20 {
				sum.Errors = append(sum.Errors, e)
			}
		}
		done := sum.Delivered + sum.Failed + sum.Skipped
		total = max(total, done)
		progress.show(fmt.Sprintf("replaying  %d/%d  delivered %d  failed %d  skipped %d",
			done, total, sum.Delivered, sum.Failed, sum.Skipped))
		if chunk.StoppedEarly {
			sum.StoppedEarly, sum.Reason = true, chunk.Reason
			break
		}
		cont = chunk.Continuation
		if cont == "" || chunk.Matched == 0 {
			break
		}
	}
	progress.done()
	c.printBulk(sum)
	if sum.Failed > 0 || sum.StoppedEarly {
		return 1
	}
	return 0
}

func (c *failuresCmd) printBulk(sum supportapi.BulkReplayResult) {
	if c.json {
		c.printJSON(sum)
		return
	}
	fmt.Fprintf(c.stdout, "matched %d  delivered %d  failed %d  skipped %d\n", sum.Matched, sum.Delivered, sum.Failed, sum.Skipped)
	for _, e := range sum.Errors {
		fmt.Fprintf(c.stdout, "  %s: %s\n", e.ID, clip(safeText(e.Error, false), 200))
	}
	if sum.StoppedEarly {
		fmt.Fprintf(c.stdout, "stopped early: %s\n", safeText(sum.Reason, false))
	}
}

func (c *failuresCmd) discard(id, reason string) int {
	f, err := c.api.Discard(context.Background(), id, reason)
	if err != nil {
		return c.fail(err)
	}
	if c.json {
		c.printJSON(f)
		return 0
	}
	fmt.Fprintf(c.stdout, "discarded %s (%s)\n", f.ID, actedBy(f.UpdatedBy, f.UpdatedAt))
	return 0
}

// printJSON prints an answer as the API sent it (the CLI decodes into the API's own types, so
// nothing is lost), indented.
func (c *failuresCmd) printJSON(v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		fmt.Fprintf(c.stderr, "error: %v\n", err)
		return
	}
	_, _ = c.stdout.Write(append(b, '\n'))
}

// progress keeps one status line up to date: rewritten in place on a terminal, one line per
// update otherwise (a log or a pipe).
type progress struct {
	w    io.Writer
	tty  bool
	used bool
}

func newProgress(w io.Writer) *progress {
	p := &progress{w: w}
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			p.tty = true
		}
	}
	return p
}

func (p *progress) show(line string) {
	p.used = true
	if p.tty {
		fmt.Fprintf(p.w, "\r\033[K%s", line)
		return
	}
	fmt.Fprintln(p.w, line)
}

func (p *progress) done() {
	if p.tty && p.used {
		fmt.Fprintln(p.w)
	}
}

func errorText(err error) string {
	return safeText(err.Error(), false)
}

func orEnv(getenv func(string) string, name, def string) string {
	if v := strings.TrimSpace(getenv(name)); v != "" {
		return v
	}
	return def
}

// safeText strips what could drive a terminal from text that came from elsewhere (consumer
// error bodies, payloads): control characters become spaces, keeping line breaks and tabs only
// when keepLines is set.
func safeText(s string, keepLines bool) string {
	return strings.Map(func(r rune) rune {
		switch {
		case keepLines && (r == '\n' || r == '\t'):
			return r
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == utf8.RuneError:
			return ' '
		}
		return r
	}, s)
}

func clip(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n-1]) + "…"
}

func lastError(f supportapi.Failure) string {
	e := strings.Join(strings.Fields(safeText(f.LastError, false)), " ")
	if f.LastStatusCode != 0 && !strings.Contains(e, strconv.Itoa(f.LastStatusCode)) {
		e = fmt.Sprintf("HTTP %d: %s", f.LastStatusCode, e)
	}
	if e == "" {
		return "-"
	}
	return clip(e, errorColumn)
}

func listTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05")
}

func showTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

func actedBy(who string, at time.Time) string {
	s := showTime(at)
	if who != "" {
		s = strings.TrimSpace(s + " by " + who)
	}
	return s
}

func dashIfEmpty(s string) string {
	if s == "" {
		return "-"
	}
	return safeText(s, false)
}

func namesOrNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

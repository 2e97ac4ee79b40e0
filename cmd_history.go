package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/dvrouter/dvrouter/pkg/journal"
	"github.com/dvrouter/dvrouter/pkg/supportapi"
)

const historyUsage = `Usage:
  dvrouter history --event ID
  dvrouter history --record TABLE/ID
  dvrouter history --correlation ID
  dvrouter history --consumer NAME --since TIME [--until TIME]
  (--since and --until also narrow the other lookups; --top N, default 200, at most 1000)

  TIME is a date (2024-07-25, UTC; as --until, the end of that day) or RFC 3339
  (2024-07-25T09:30:00Z). Outcomes are listed newest first, each with its attempts.

Takes --endpoint, --key, --token and --json as dvrouter failures does.

Exit status: 0 done, 1 the request failed, 2 wrong usage.
`

// runHistory is dvrouter history: the delivery journal's lookups, over the support API.
func runHistory(args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	c := &failuresCmd{stdout: stdout, stderr: stderr}
	usage := func(msg string) int {
		fmt.Fprintf(stderr, "dvrouter history: %s\n\n%s", msg, historyUsage)
		return 2
	}
	fs := flag.NewFlagSet("dvrouter history", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	endpoint := fs.String("endpoint", orEnv(getenv, "DVROUTER_ENDPOINT", defaultEndpoint), "")
	key := fs.String("key", getenv("DVROUTER_ADMIN_KEY"), "")
	token := fs.String("token", getenv("DVROUTER_TOKEN"), "")
	fs.BoolVar(&c.json, "json", false, "")
	var q supportapi.HistoryQuery
	record := fs.String("record", "", "")
	fs.StringVar(&q.Event, "event", "", "")
	fs.StringVar(&q.Correlation, "correlation", "", "")
	fs.StringVar(&q.Consumer, "consumer", "", "")
	fs.StringVar(&q.Since, "since", "", "")
	fs.StringVar(&q.Until, "until", "", "")
	fs.IntVar(&q.Top, "top", 0, "")
	pos, err := parseInterspersed(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, historyUsage)
		return 0
	}
	if err != nil {
		return usage(err.Error())
	}
	if len(pos) != 0 {
		return usage("history takes no arguments, only flags")
	}
	if *record != "" {
		table, id, ok := strings.Cut(*record, "/")
		if !ok || table == "" || id == "" {
			return usage("--record is TABLE/ID, e.g. account/5f2c...")
		}
		q.Table, q.Record = table, id
	}
	n := 0
	for _, s := range []string{q.Event, *record, q.Correlation, q.Consumer} {
		if s != "" {
			n++
		}
	}
	if n != 1 {
		return usage("give one of --event, --record, --correlation, --consumer")
	}
	if q.Consumer != "" && q.Since == "" {
		return usage("--consumer needs --since")
	}
	client, err := supportapi.NewClient(*endpoint, *key, *token)
	if err != nil {
		return usage("--" + err.Error())
	}
	h, err := client.History(context.Background(), q)
	if err != nil {
		return c.fail(err)
	}
	if c.json {
		c.printJSON(h)
		return 0
	}
	if len(h.Items) == 0 {
		fmt.Fprintln(stdout, "nothing in the journal matches")
		return 0
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME (UTC)\tEVENT\tTABLE\tRECORD\tMESSAGE\tROUTE\tCONSUMER\tOUTCOME\tATTEMPTS\tSTATUS\tDURATION\tERROR")
	for _, e := range h.Items {
		status := statusText(e.StatusCode)
		errText := strings.Join(strings.Fields(safeText(e.Error, false)), " ")
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", e.At.UTC().Format("2006-01-02 15:04:05.000"),
			e.EventID, dashIfEmpty(e.Table), dashIfEmpty(e.RecordID), dashIfEmpty(historyMessage(e)), dashIfEmpty(e.Route),
			e.Consumer, e.Outcome, max(e.AttemptCount, len(e.Attempts)), status, e.Duration.Round(100_000), dashIfEmpty(clip(errText, errorColumn)))
		for _, a := range e.Attempts {
			fmt.Fprintf(tw, "  attempt %s\t\t\t\t\t\t\t\t\t%s\t%s\t%s\n", a.At.UTC().Format("15:04:05.000"), statusText(a.StatusCode),
				a.Duration.Round(100_000), dashIfEmpty(clip(strings.Join(strings.Fields(safeText(a.Error, false)), " "), errorColumn)))
		}
	}
	_ = tw.Flush()
	if len(h.Items) == max(q.Top, 200) {
		fmt.Fprintln(stderr, "the answer is cut at --top; narrow with --since/--until or raise --top (at most 1000)")
	}
	return 0
}

// historyMessage is the entry's message, with the source when change tracking delivered it
// ("Upsert (changes)"), so support staff see which path a delivery took.
func historyMessage(e journal.Entry) string {
	if e.Source == "" {
		return e.Message
	}
	return e.Message + " (" + e.Source + ")"
}

// statusText is an HTTP status for a table, "-" when there was none.
func statusText(code int) string {
	if code == 0 {
		return "-"
	}
	return strconv.Itoa(code)
}

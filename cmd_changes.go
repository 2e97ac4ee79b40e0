package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/dvrouter/dvrouter/pkg/supportapi"
)

const changesUsage = `Usage:
  dvrouter changes status              every table read by change tracking: last token, pending pages
  dvrouter changes reset --table NAME  forget the table's token: its next read is a full read (operator role)

Takes --endpoint, --key, --token and --json as dvrouter failures does.

Exit status: 0 done, 1 the request failed, 2 wrong usage.
`

// runChanges is dvrouter changes: change tracking's status and reset, over the support API.
func runChanges(args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	c := &failuresCmd{stdout: stdout, stderr: stderr}
	usage := func(msg string) int {
		fmt.Fprintf(stderr, "dvrouter changes: %s\n\n%s", msg, changesUsage)
		return 2
	}
	fs := flag.NewFlagSet("dvrouter changes", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	endpoint := fs.String("endpoint", orEnv(getenv, "DVROUTER_ENDPOINT", defaultEndpoint), "")
	key := fs.String("key", getenv("DVROUTER_ADMIN_KEY"), "")
	token := fs.String("token", getenv("DVROUTER_TOKEN"), "")
	table := fs.String("table", "", "")
	fs.BoolVar(&c.json, "json", false, "")
	pos, err := parseInterspersed(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, changesUsage)
		return 0
	}
	if err != nil {
		return usage(err.Error())
	}
	if len(pos) != 1 {
		return usage("say status or reset")
	}
	client, err := supportapi.NewClient(*endpoint, *key, *token)
	if err != nil {
		return usage("--" + err.Error())
	}
	ctx := context.Background()
	switch pos[0] {
	case "status":
		if *table != "" {
			return usage("status takes no --table")
		}
		st, err := client.ChangesStatus(ctx)
		if err != nil {
			return c.fail(err)
		}
		if c.json {
			c.printJSON(st)
			return 0
		}
		fmt.Fprintf(stdout, "environment %s, schedule %q, stale after %s\n", dashIfEmpty(st.Environment), st.Schedule, st.StaleAfter)
		if len(st.Tables) == 0 {
			fmt.Fprintln(stdout, "no table is read by change tracking")
			return 0
		}
		tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "TABLE\tLAST TOKEN (UTC)\tLAST PAGE (UTC)\tPENDING PAGES\tCHANGED\tDELETED\tFULL READS\tSTATE\tREADING BY")
		for _, t := range st.Tables {
			pending := "-"
			if t.Pending {
				pending = fmt.Sprintf("yes, %d read", t.PagesRead)
			}
			state := "ok"
			switch {
			case !t.Configured:
				state = "no route reads it"
			case t.Stale:
				state = "STALE"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%d\t%s\t%s\n", t.Table, stamp(t.TokenAt), stamp(t.LastRunAt), pending,
				t.Changed, t.Deleted, t.FullReads, state, dashIfEmpty(t.ReadingBy))
		}
		_ = tw.Flush()
		return 0
	case "reset":
		if strings.TrimSpace(*table) == "" {
			return usage("reset needs --table NAME")
		}
		res, err := client.ResetChanges(ctx, *table)
		if err != nil {
			return c.fail(err)
		}
		if c.json {
			c.printJSON(res)
			return 0
		}
		fmt.Fprintf(stdout, "%s: token forgotten by %s; the next run reads the whole table again (consumers get every row, with the ids they had)\n", res.Table, res.ResetBy)
		return 0
	}
	return usage(fmt.Sprintf("unknown subcommand %q: say status or reset", pos[0]))
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05")
}

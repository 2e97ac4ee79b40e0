package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/dvrouter/dvrouter/pkg/supportapi"
)

const consumersUsage = `Usage:
  dvrouter consumers [list]                  every consumer: its breaker, and its pause
  dvrouter consumers pause NAME [--reason TEXT]   hold its deliveries (kept as failures of kind
                                             paused, nothing sent) until it is resumed
  dvrouter consumers resume NAME             deliver to it again; then replay what was held:
                                             dvrouter failures replay --consumer NAME --kind paused
  dvrouter consumers reset NAME              close its circuit breaker, on every instance
  dvrouter consumers test NAME               send it a test event (message dvrouter.Test, header
                                             X-Dvrouter-Test: true) and show how it went

pause, resume, reset and test need the operator role. Takes --endpoint, --key, --token and
--json as dvrouter failures does.

Exit status: 0 done, 1 the request failed (or the test event was not delivered), 2 wrong usage.
`

// runConsumers is dvrouter consumers: the consumers' breakers and the operator's actions on
// one, over the support API.
func runConsumers(args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	sub := "list"
	if len(args) > 0 {
		sub, args = args[0], args[1:]
	}
	c := &failuresCmd{stdout: stdout, stderr: stderr}
	usage := func(msg string) int {
		fmt.Fprintf(stderr, "dvrouter consumers: %s\n\n%s", msg, consumersUsage)
		return 2
	}
	switch sub {
	case "list", "pause", "resume", "reset", "test":
	case "help", "-h", "--help":
		fmt.Fprint(stdout, consumersUsage)
		return 0
	default:
		return usage(fmt.Sprintf("unknown consumers command %q", sub))
	}
	fs := flag.NewFlagSet("dvrouter consumers "+sub, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	endpoint := fs.String("endpoint", orEnv(getenv, "DVROUTER_ENDPOINT", defaultEndpoint), "")
	key := fs.String("key", getenv("DVROUTER_ADMIN_KEY"), "")
	token := fs.String("token", getenv("DVROUTER_TOKEN"), "")
	fs.BoolVar(&c.json, "json", false, "")
	var reason *string
	if sub == "pause" {
		reason = fs.String("reason", "", "")
	}
	pos, err := parseInterspersed(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, consumersUsage)
		return 0
	}
	if err != nil {
		return usage(err.Error())
	}
	switch {
	case sub == "list" && len(pos) != 0:
		return usage("list takes no arguments")
	case sub != "list" && len(pos) != 1:
		return usage(sub + " needs one consumer NAME")
	}
	client, err := supportapi.NewClient(*endpoint, *key, *token)
	if err != nil {
		return usage("--" + err.Error())
	}
	c.api = client
	ctx := context.Background()
	var out supportapi.ConsumerAction
	switch sub {
	case "list":
		return c.listConsumers()
	case "pause":
		out, err = client.Pause(ctx, pos[0], *reason)
	case "resume":
		out, err = client.Resume(ctx, pos[0])
	case "reset":
		out, err = client.ResetBreaker(ctx, pos[0])
	case "test":
		return c.testConsumer(pos[0])
	}
	if err != nil {
		return c.fail(err)
	}
	if c.json {
		c.printJSON(out)
		return 0
	}
	name := out.Consumer.Consumer
	switch {
	case out.Action == supportapi.ActionPaused && out.Changed:
		fmt.Fprintf(stdout, "%s paused: its deliveries are kept as failures of kind paused, nothing is sent (every instance within one breaker sync)\n", name)
	case out.Action == supportapi.ActionPaused:
		p := out.Consumer.Paused
		fmt.Fprintf(stdout, "%s was already paused %s\n", name, actedBy(p.By, p.At))
	case out.Action == supportapi.ActionResumed && out.Changed:
		fmt.Fprintf(stdout, "%s resumed; to send what was held: dvrouter failures replay --consumer %s --kind paused\n", name, name)
	case out.Action == supportapi.ActionResumed:
		fmt.Fprintf(stdout, "%s was not paused\n", name)
	case out.Changed:
		fmt.Fprintf(stdout, "%s's breaker reset: closed (was %s)\n", name, out.Was)
	default:
		fmt.Fprintf(stdout, "%s's breaker was already closed; its counts are cleared\n", name)
	}
	return 0
}

func (c *failuresCmd) listConsumers() int {
	list, err := c.api.Consumers(context.Background())
	if err != nil {
		return c.fail(err)
	}
	if c.json {
		c.printJSON(list)
		return 0
	}
	if len(list.Items) == 0 {
		fmt.Fprintln(c.stdout, "no consumers configured")
		return 0
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "CONSUMER\tBREAKER\tSHARED\tSUCCESSES\tFAILURES\tOPENED\tPAUSED")
	for _, it := range list.Items {
		paused := "-"
		if p := it.Paused; p != nil {
			paused = actedBy(p.By, p.At)
			if p.Reason != "" {
				paused += ": " + safeText(p.Reason, false)
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%v\t%d\t%d\t%d\t%s\n", it.Consumer, it.State, it.Shared, it.Successes, it.Failures, it.Opened, paused)
	}
	_ = tw.Flush()
	return 0
}

func (c *failuresCmd) testConsumer(name string) int {
	res, err := c.api.SendTest(context.Background(), name)
	if err != nil {
		return c.fail(err)
	}
	if c.json {
		c.printJSON(res)
	} else if res.Delivered {
		fmt.Fprintf(c.stdout, "test event %s delivered to %s in %.0f ms (%d attempt(s))\n", res.EventID, res.Consumer, res.DurationMs, res.Attempts)
	} else {
		status := ""
		if res.StatusCode != 0 {
			status = fmt.Sprintf(" (HTTP %d)", res.StatusCode)
		}
		fmt.Fprintf(c.stdout, "test event %s NOT delivered to %s after %.0f ms%s: %s\n", res.EventID, res.Consumer, res.DurationMs, status, safeText(res.Error, false))
	}
	if !res.Delivered {
		return 1
	}
	return 0
}

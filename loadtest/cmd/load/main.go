// Command load is the load run of `make bench`: it starts Azurite, three loopback HTTP
// consumers (one failing 10% of requests with 500) and `dvrouter serve` in direct mode with
// 20 routes, then posts the project's payloads (each with its own ids) at increasing rates,
// open loop on a fixed schedule, and last as fast as a fixed number of senders can. Each step
// runs twice, side by side: once straight to a consumer (the baseline: what the generator,
// loopback HTTP and a consumer cost by themselves) and once through dvrouter. It prints a
// markdown table of events/s, latency percentiles, the latency dvrouter adds, and its peak RSS.
//
//	go build -o dvrouter . && go run ./loadtest/cmd/load -dvrouter ./dvrouter
package main

import (
	"context"
	_ "embed"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/dvrouter/dvrouter/internal/testenv"
	"github.com/dvrouter/dvrouter/loadtest"
)

//go:embed routes.yaml
var routesYAML []byte

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "load: %v\n", err)
		os.Exit(1)
	}
}

type options struct {
	bin      string
	rates    []float64 // 0 is the closed-loop "max" step
	step     time.Duration
	warmup   time.Duration
	workers  int
	inflight int
	healthy  float64 // rate of a last step with no consumer failing; 0 skips it
	dir      string
}

func parseFlags(args []string) (options, error) {
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	var o options
	var rates string
	fs.StringVar(&o.bin, "dvrouter", "", "the dvrouter binary to run (required)")
	fs.StringVar(&rates, "rates", "100,200,400,800,max", "events per second of each step; max: as fast as -workers senders go")
	fs.DurationVar(&o.step, "step", 10*time.Second, "how long each step sends")
	fs.DurationVar(&o.warmup, "warmup", 3*time.Second, "unmeasured sending before the first step")
	fs.IntVar(&o.workers, "workers", 32, "senders of the max step")
	fs.IntVar(&o.inflight, "inflight", 512, "requests in flight at most in a fixed-rate step")
	fs.Float64Var(&o.healthy, "healthy-rate", 400, "rate of a last step with every consumer healthy, which separates dvrouter's own latency from the failing consumer's retries (0: none)")
	fs.StringVar(&o.dir, "dir", "", "folder for the routes file and dvrouter's log (default: a new temporary folder)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if o.bin == "" {
		return o, fmt.Errorf("-dvrouter is required")
	}
	for _, r := range strings.Split(rates, ",") {
		r = strings.TrimSpace(r)
		if r == "max" {
			o.rates = append(o.rates, 0)
			continue
		}
		v, err := strconv.ParseFloat(r, 64)
		if err != nil || v <= 0 {
			return o, fmt.Errorf("-rates: %q is neither a rate above 0 nor max", r)
		}
		o.rates = append(o.rates, v)
	}
	return o, nil
}

// row is one step's figures, through dvrouter and straight to a consumer.
type row struct {
	rate       float64
	healthy    bool // no consumer failing
	dvrouter   loadtest.StepResult
	baseline   loadtest.StepResult
	peakRSS    int64
	cpu        time.Duration // dvrouter's CPU time during the dvrouter step
	deliveries int64         // requests the consumers received during the dvrouter step
}

func run(args []string, out io.Writer) error {
	o, err := parseFlags(args)
	if err != nil {
		return err
	}
	root := testenv.RepoRoot()
	if root == "" {
		return fmt.Errorf("run from inside the dvrouter module")
	}
	if o.dir == "" {
		if o.dir, err = os.MkdirTemp("", "dvrouter-load-"); err != nil {
			return err
		}
	} else if err := os.MkdirAll(o.dir, 0o755); err != nil {
		return err
	}
	templates, err := loadtest.LoadTemplates(filepath.Join(root, "testdata", "events"))
	if err != nil {
		return err
	}

	az, err := testenv.LaunchAzurite()
	if err != nil {
		return err
	}
	defer az.Stop()
	consumers := map[string]*loadtest.Consumer{}
	for _, name := range []string{"erp", "crm", "audit"} {
		c, err := loadtest.StartConsumer(name)
		if err != nil {
			return err
		}
		defer c.Close()
		consumers[name] = c
	}
	consumers["audit"].SetFault(&loadtest.Fault{Status: 500, Ratio: 0.10})

	routes := filepath.Join(o.dir, "routes.yaml")
	if err := os.WriteFile(routes, routesYAML, 0o644); err != nil {
		return err
	}
	port, err := testenv.FreePort()
	if err != nil {
		return err
	}
	router := &loadtest.Router{
		Bin:  o.bin,
		Port: port,
		Log:  filepath.Join(o.dir, "dvrouter.log"),
		Env: []string{
			"DVROUTER_ROUTES=" + routes,
			"DVROUTER_TABLES=" + az.ConnectionString(),
			"DVROUTER_FAILURES_TABLE=LoadRun",
			"DVROUTER_LOG_LEVEL=info",
			"LOAD_ERP_URL=" + consumers["erp"].URL,
			"LOAD_CRM_URL=" + consumers["crm"].URL,
			"LOAD_AUDIT_URL=" + consumers["audit"].URL,
		},
	}
	if err := router.Start(time.Minute); err != nil {
		return err
	}
	defer router.Stop(30 * time.Second)

	ctx := context.Background()
	next := loadtest.Mix(templates, fmt.Sprintf("load-%d", time.Now().UnixNano()))
	conns := max(o.inflight, o.workers)
	viaRouter := loadtest.NewClient(router.URL()+"/api/dataverse/webhook", conns)
	direct := loadtest.NewClient(consumers["erp"].URL, conns)
	seq := 0
	step := func(c *loadtest.Client, rate float64, d time.Duration) loadtest.StepResult {
		s := loadtest.Step{Rate: rate, Duration: d, MaxInFlight: o.inflight, Workers: o.workers}
		res := c.RunStep(ctx, s, seq, next)
		seq += res.Sent + 1
		return res
	}

	fmt.Fprintf(os.Stderr, "load: dvrouter pid %d on %s, %d templates, routes %s, log %s\n",
		router.PID(), router.URL(), len(templates), routes, router.Log)
	if o.warmup > 0 {
		step(direct, 100, o.warmup)
		step(viaRouter, 100, o.warmup)
	}
	var rows []row
	plan := make([]row, 0, len(o.rates)+1)
	for _, rate := range o.rates {
		plan = append(plan, row{rate: rate})
	}
	if o.healthy > 0 {
		plan = append(plan, row{rate: o.healthy, healthy: true})
	}
	for _, r := range plan {
		rate := r.rate
		if r.healthy {
			consumers["audit"].SetFault(nil)
		}
		r.baseline = step(direct, rate, o.step)
		before := requests(consumers)
		cpuBefore, err := router.CPUTime()
		if err != nil {
			return err
		}
		r.dvrouter = step(viaRouter, rate, o.step)
		r.deliveries = requests(consumers) - before
		cpuAfter, err := router.CPUTime()
		if err != nil {
			return err
		}
		r.cpu = cpuAfter - cpuBefore
		if r.peakRSS, err = router.PeakRSS(); err != nil {
			return err
		}
		rows = append(rows, r)
		fmt.Fprintf(os.Stderr, "load: %s: dvrouter %.0f events/s p99 %s ms, longest gap between answers %s at +%s; baseline %.0f events/s p99 %s ms, longest gap %s\n",
			r.label(), r.dvrouter.Throughput(), ms(r.dvrouter.Percentile(99)), ms(r.dvrouter.LongestGap), r.dvrouter.LongestGapAt.Round(time.Millisecond),
			r.baseline.Throughput(), ms(r.baseline.Percentile(99)), ms(r.baseline.LongestGap))
	}
	printTable(out, o, rows)
	return nil
}

func requests(cs map[string]*loadtest.Consumer) int64 {
	var n int64
	for _, c := range cs {
		n += c.Requests()
	}
	return n
}

func printTable(w io.Writer, o options, rows []row) {
	fmt.Fprintf(w, "Load run: %d cores, GOMAXPROCS %d (generator and consumers), %s per step, open loop at fixed rates, then %d senders as fast as they go.\n\n",
		runtime.NumCPU(), runtime.GOMAXPROCS(0), o.step, o.workers)
	fmt.Fprintln(w, "| step | through dvrouter: events/s | baseline: events/s | ratio | dvrouter p50 / p95 / p99 (ms) | baseline p50 / p95 / p99 (ms) | added p50 / p95 / p99 (ms) | consumer requests / event | dvrouter CPU / event (µs) | not accepted | dvrouter peak RSS |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range rows {
		d, b := r.dvrouter, r.baseline
		ratio := 0.0
		if b.Throughput() > 0 {
			ratio = d.Throughput() / b.Throughput()
		}
		perEvent, cpuPerEvent := 0.0, 0.0
		if d.Sent > 0 {
			perEvent = float64(r.deliveries) / float64(d.Sent)
			cpuPerEvent = float64(r.cpu.Microseconds()) / float64(d.Sent)
		}
		fmt.Fprintf(w, "| %s | %.0f | %.0f | %.2f | %s | %s | %s | %.2f | %.0f | %d of %d | %.1f MiB |\n",
			r.label(), d.Throughput(), b.Throughput(), ratio,
			triple(d.Percentile(50), d.Percentile(95), d.Percentile(99)),
			triple(b.Percentile(50), b.Percentile(95), b.Percentile(99)),
			triple(d.Percentile(50)-b.Percentile(50), d.Percentile(95)-b.Percentile(95), d.Percentile(99)-b.Percentile(99)),
			perEvent, cpuPerEvent, d.Sent-d.Accepted, d.Sent, float64(r.peakRSS)/(1<<20))
	}
}

func (r row) label() string {
	s := "max"
	if r.rate > 0 {
		s = fmt.Sprintf("%.0f/s", r.rate)
	}
	if r.healthy {
		s += ", no consumer failing"
	}
	return s
}

func triple(a, b, c time.Duration) string { return ms(a) + " / " + ms(b) + " / " + ms(c) }

func ms(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 2, 64)
}

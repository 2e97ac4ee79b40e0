#!/usr/bin/env bash
# `make bench`: the Go benchmarks, each beside its baseline in one run, then the load run
# (loadtest/cmd/load) against `dvrouter serve` as a separate process. Prints markdown tables;
# docs/performance.md carries the figures of one such run. Everything it writes goes to
# .run/bench/.
#
#   BENCH_COUNT=5   runs of each benchmark (the tables show the median)
#   LOAD_STEP=10s   length of each load step
#   LOAD_RATES=100,200,400,800,max
#   SKIP_LOAD=1     benchmarks only
set -euo pipefail
cd "$(dirname "$0")/.."
export GOFLAGS=${GOFLAGS:--buildvcs=false}
COUNT=${BENCH_COUNT:-5}
OUT=.run/bench
mkdir -p "$OUT"

echo "## Machine"
echo
echo "- cores: $(nproc); CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
echo "- $(go version)"
echo "- load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
if [ -r /proc/pressure/cpu ]; then
  # How much other work competes for the CPUs: the figures are only as steady as this is low.
  echo "- CPU pressure at start: $(head -1 /proc/pressure/cpu | tr ' ' '\n' | grep avg60 | cut -d= -f2)% of the last minute (some task waiting for a CPU)"
fi
echo

# bench PACKAGE REGEXP [extra go test flags...]: runs and keeps the raw output. A package
# that fails is reported and the others still run; the script then exits non-zero.
failed=()
bench() {
  local pkg=$1 re=$2; shift 2
  local file="$OUT/$(echo "${pkg#./}" | tr -c 'a-zA-Z0-9\n' '_').txt"
  echo "go test -p 1 -run '^\$' -bench '$re' -benchmem -count $COUNT $* $pkg" >&2
  if ! go test -p 1 -run '^$' -bench "$re" -benchmem -count "$COUNT" "$@" "$pkg" >"$file" 2>&1; then
    failed+=("$pkg")
  fi
  cat "$file" >&2
  cat "$file" >>"$OUT/all.txt"
}

: >"$OUT/all.txt"
bench ./pkg/dataverse 'Decode$|DecodeStdlibMap$|DecodeBinary$|BinaryVsJSON|Enrichment'
bench ./pkg/route 'Match50Routes$'
bench ./handlers 'WebhookDirect$|BareForward$'
bench ./pkg/deliver 'DeliverHTTP$|BarePost$'
# Azurite is a node process: a fixed count of inserts keeps the two sides comparable.
bench ./pkg/failures 'RecordFailure$|RawTableInsert$' -benchtime 2000x
# The console's first page with 10,000 failures in Azurite (about 0.1 s an op, plus seeding).
bench ./test/console 'FirstPage' -benchtime 100x

echo "## Benchmarks (median of $COUNT runs)"
echo
awk -v count="$COUNT" '
  /^Benchmark/ {
    name = $1; sub(/-[0-9]+$/, "", name)
    for (i = 2; i <= NF; i++) {
      if ($(i+1) == "ns/op") ns[name] = ns[name] " " $i
      if ($(i+1) == "B/op") bytes[name] = $i
      if ($(i+1) == "allocs/op") allocs[name] = $i
    }
  }
  function median(list,   n, a, i, j, t) {
    n = split(list, a, " ")
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
  }
  function row(what, b, base, target,   m, mb, r) {
    if (!(b in ns) || !(base in ns)) { printf "| %s | %s: missing | %s | | | |\n", what, b, base; return }
    m = median(ns[b]); mb = median(ns[base]); r = mb / m
    printf "| %s | %s: %.1f µs/op, %d allocs/op | %s: %.1f µs/op, %d allocs/op | %.2f | %s |\n", \
      what, b, m / 1000, allocs[b], base, mb / 1000, allocs[base], r, target
  }
  END {
    print "| what | benchmark | baseline | throughput ratio (baseline time / benchmark time) | target |"
    print "|---|---|---|---|---|"
    row("decode and normalize a ~5 KB event", "BenchmarkDecode", "BenchmarkDecodeStdlibMap", ">= 4")
    row("direct webhook, one route, one `row` consumer, posted over loopback HTTP", "BenchmarkWebhookDirect/loopback", "BenchmarkBareForward/loopback", ">= 0.70")
    row("the same, handler called in process (no ingress connection)", "BenchmarkWebhookDirect/inprocess", "BenchmarkBareForward/inprocess", "")
    row("one delivery to an HTTP consumer", "BenchmarkDeliverHTTP", "BenchmarkBarePost", "")
    row("record a failure in Table Storage (Azurite)", "BenchmarkRecordFailure", "BenchmarkRawTableInsert", ">= 0.80")
    if ("BenchmarkMatch50Routes" in ns)
      printf "| match 50 routes (filter + condition each) | BenchmarkMatch50Routes: %.1f µs/op, %d allocs/op | (BenchmarkDecode above) | | |\n", median(ns["BenchmarkMatch50Routes"]) / 1000, allocs["BenchmarkMatch50Routes"]
    for (v = 1; v <= 2; v++) {
      page = v == 1 ? "unfiltered" : "consumer+status"
      c = "BenchmarkConsoleFirstPage/" page; l = "BenchmarkStoreListFirstPage/" page
      if ((c in ns) && (l in ns))
        printf "| the console'"'"'s first page (%s), 10,000 failures in Azurite | %s: %.1f ms/op | %s: %.1f ms/op | %.2f | < 300 ms |\n", \
          page, c, median(ns[c]) / 1e6, l, median(ns[l]) / 1e6, median(ns[l]) / median(ns[c])
    }
    d = "BenchmarkWebhookDirect/inprocess"; f = "BenchmarkBareForward/inprocess"
    if ((d in allocs) && (f in allocs))
      printf "\nAllocations per event on the direct webhook path (%s): %d allocs, %d bytes; the bare forwarder with the same consumer: %d allocs, %d bytes.\n", d, allocs[d], bytes[d], allocs[f], bytes[f]
  }' "$OUT/all.txt" | tee "$OUT/benchmarks.md"
echo

if [ "${SKIP_LOAD:-}" != 1 ]; then
  echo "## Load run"
  echo
  go build -o "$OUT/dvrouter" .
  rates=${LOAD_RATES:-100,200,400,800,max}
  echo "go run ./loadtest/cmd/load -dvrouter $OUT/dvrouter -rates $rates -step ${LOAD_STEP:-10s} -dir $OUT/load" >&2
  go run ./loadtest/cmd/load -dvrouter "$OUT/dvrouter" -rates "$rates" -step "${LOAD_STEP:-10s}" -dir "$OUT/load" |
    tee "$OUT/load.md"
fi

if [ ${#failed[@]} -gt 0 ]; then
  echo "benchmarks failed in: ${failed[*]}" >&2
  exit 1
fi

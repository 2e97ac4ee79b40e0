#!/usr/bin/env bash
# `make cost`: CPU and allocations per request of the direct webhook path against the bare
# forwarder (handlers: BenchmarkWebhookDirect, BenchmarkBareForward), loopback and in process.
# The test binary is built once; each benchmark then runs in a process of its own for a fixed
# number of requests, so the process's user+system CPU time (getrusage of the child) is the cost
# of exactly those requests plus start-up. A 1-request run of the same benchmark in the same
# round measures start-up (test binary, consumer server, route compile), which is subtracted.
# The sides alternate (direct, bare, direct, bare...) in ROUNDS rounds; the report gives each
# round's ratio and their median. docs/performance.md says why this, not ns/op, is compared.
#
#   ROUNDS=5   rounds
#   N=10000    requests per measured run
set -euo pipefail
cd "$(dirname "$0")/.."
export GOFLAGS=${GOFLAGS:--buildvcs=false}
OUT=.run/cost
mkdir -p "$OUT"
go test -c -o "$OUT/handlers.test" ./handlers
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
ROUNDS=${ROUNDS:-5} N=${N:-10000} BIN="$PWD/$OUT/handlers.test" python3 - <<'PY' | tee "$OUT/cost.md"
import os, re, statistics, subprocess

rounds, n, binary = int(os.environ["ROUNDS"]), int(os.environ["N"]), os.environ["BIN"]
cases = [(path, side) for path in ("inprocess", "loopback") for side in ("WebhookDirect", "BareForward")]

def run(side, path, iters):
    """CPU seconds (user+system) of one test-binary process, and its allocs/op."""
    p = subprocess.Popen([binary, "-test.run=^$", f"-test.bench=^Benchmark{side}$/^{path}$",
                          "-test.benchmem", f"-test.benchtime={iters}x", "-test.count=1"],
                         cwd="handlers", stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = p.stdout.read()
    _, status, ru = os.wait4(p.pid, 0)
    if status != 0:
        raise SystemExit(f"{side}/{path} failed:\n{out}")
    m = re.search(r"(\d+) allocs/op", out)
    return ru.ru_utime + ru.ru_stime, int(m.group(1)) if m else None

cpu = {c: [] for c in cases}
allocs = {}
for r in range(rounds):
    for path, side in cases:
        setup, _ = run(side, path, 1)
        total, a = run(side, path, n)
        cpu[(path, side)].append((total - setup) / n * 1e6)
        allocs[(path, side)] = a

print(f"\n{n} requests per run, {rounds} rounds, setup (a 1-request run) subtracted\n")
print("| path | round | WebhookDirect µs CPU/req | BareForward µs CPU/req | ratio |")
print("|---|---|---|---|---|")
for path in ("inprocess", "loopback"):
    ratios = []
    for r in range(rounds):
        d, b = cpu[(path, "WebhookDirect")][r], cpu[(path, "BareForward")][r]
        ratios.append(d / b)
        print(f"| {path} | {r+1} | {d:.1f} | {b:.1f} | {d/b:.2f} |")
    md, mb = statistics.median(cpu[(path, "WebhookDirect")]), statistics.median(cpu[(path, "BareForward")])
    print(f"| {path} | median | {md:.1f} | {mb:.1f} | **{statistics.median(ratios):.2f}** |")
print()
print("| path | WebhookDirect allocs/req | BareForward allocs/req | ratio |")
print("|---|---|---|---|")
for path in ("inprocess", "loopback"):
    d, b = allocs[(path, "WebhookDirect")], allocs[(path, "BareForward")]
    print(f"| {path} | {d} | {b} | {d/b:.2f} |")
PY

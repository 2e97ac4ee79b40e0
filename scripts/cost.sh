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
# BenchmarkWebhookDirectDeployed is the direct path as deployed: the delivery journal on and the
# breaker shared, both in Table Storage. The Azurite they write to is started here, outside the
# measured processes (DVROUTER_BENCH_TABLES), so that the emulator's CPU, Azure's in production,
# is not counted as dvrouter's; it is reported on its own line.
#
#   ROUNDS=5   rounds
#   N=10000    requests per measured run
#   N_DEPLOYED=2000  requests per measured run of the deployed variant (Azurite takes about 1.5 ms
#              of CPU per journal entry, so its runs are the slow ones)
#   BASE=path  an older build's handlers test binary (go test -c ./handlers): its direct sides run
#              in the same rounds, as "before"
set -euo pipefail
cd "$(dirname "$0")/.."
export GOFLAGS=${GOFLAGS:--buildvcs=false}
OUT=.run/cost
mkdir -p "$OUT"
go test -c -o "$OUT/handlers.test" ./handlers

# Azurite for the deployed variant, in memory, with an account of this run's own (a random key:
# it opens nothing but this emulator).
AZURITE=node_modules/.bin/azurite-table
[ -x "$AZURITE" ] || { echo "$AZURITE not found: run npm ci first (make tools)" >&2; exit 1; }
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
key=$(head -c 32 /dev/urandom | base64 -w0)
AZURITE_ACCOUNTS="costbench:$key" "$AZURITE" --disableTelemetry --silent --inMemoryPersistence \
	--tableHost 127.0.0.1 --tablePort "$port" --skipApiVersionCheck --loose >"$OUT/azurite.log" 2>&1 &
azurite_pid=$!
trap 'kill "$azurite_pid" 2>/dev/null || true' EXIT
for _ in $(seq 300); do
	grep -q "successfully started" "$OUT/azurite.log" && break
	kill -0 "$azurite_pid" 2>/dev/null || { cat "$OUT/azurite.log" >&2; exit 1; }
	sleep 0.1
done
grep -q "successfully started" "$OUT/azurite.log" || { echo "azurite did not start" >&2; exit 1; }
export DVROUTER_BENCH_TABLES="DefaultEndpointsProtocol=http;AccountName=costbench;AccountKey=$key;TableEndpoint=http://127.0.0.1:$port/costbench;"

echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
ROUNDS=${ROUNDS:-5} N=${N:-10000} N_DEPLOYED=${N_DEPLOYED:-2000} BIN="$PWD/$OUT/handlers.test" BASE=${BASE:+$(realpath "$BASE")} \
	AZURITE_PID=$azurite_pid python3 - <<'PY' | tee "$OUT/cost.md"
import os, re, statistics, subprocess

rounds, binary = int(os.environ["ROUNDS"]), os.environ["BIN"]
requests = {"WebhookDirectDeployed": int(os.environ["N_DEPLOYED"])}
n_other = int(os.environ["N"])
base = os.environ.get("BASE", "")
azurite_pid = int(os.environ["AZURITE_PID"])
paths = ("inprocess", "loopback")
# (column, test binary, benchmark); with BASE, an older build's direct sides run in the same
# rounds, so a change is compared with what it changed under the same load.
sides = [("WebhookDirect", binary, "WebhookDirect"), ("Deployed", binary, "WebhookDirectDeployed")]
if base:
    sides += [("before: WebhookDirect", base, "WebhookDirect"), ("before: Deployed", base, "WebhookDirectDeployed")]
sides.append(("BareForward", binary, "BareForward"))
clock = os.sysconf("SC_CLK_TCK")

def azurite_cpu():
    """Azurite's user+system CPU seconds so far."""
    with open(f"/proc/{azurite_pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / clock

def run(binary, bench, path, iters):
    """CPU seconds (user+system) of one test-binary process, and its allocs/op."""
    p = subprocess.Popen([binary, "-test.run=^$", f"-test.bench=^Benchmark{bench}$/^{path}$",
                          "-test.benchmem", f"-test.benchtime={iters}x", "-test.count=1"],
                         cwd="handlers", stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = p.stdout.read()
    _, status, ru = os.wait4(p.pid, 0)
    if status != 0:
        raise SystemExit(f"{bench}/{path} failed:\n{out}")
    m = re.search(r"(\d+) allocs/op", out)
    return ru.ru_utime + ru.ru_stime, int(m.group(1)) if m else None

cpu = {(path, col): [] for path in paths for col, _, _ in sides}
allocs = {}
azurite = {(path, col): [] for path in paths for col, _, bench in sides if bench == "WebhookDirectDeployed"}
for r in range(rounds):
    for path in paths:
        for col, binary, bench in sides:
            n = requests.get(bench, n_other)
            setup, _ = run(binary, bench, path, 1)
            before = azurite_cpu()
            total, a = run(binary, bench, path, n)
            if (path, col) in azurite:
                azurite[(path, col)].append((azurite_cpu() - before) / n * 1e6)
            cpu[(path, col)].append((total - setup) / n * 1e6)
            allocs[(path, col)] = a

direct = [col for col, _, _ in sides if col != "BareForward"]
print(f"\n{n_other} requests per run ({requests['WebhookDirectDeployed']} deployed), {rounds} rounds, setup (a 1-request run) subtracted; µs of CPU per")
print("request, and each direct side's ratio to BareForward in the same round. Deployed: the")
print("journal on and the breaker shared, in an Azurite whose own CPU is not counted.\n")
print("| path | round | " + " | ".join(col for col, _, _ in sides) + " | " + " | ".join(f"{col} ratio" for col in direct) + " |")
print("|---|---|" + "---|" * (len(sides) + len(direct)))
for path in paths:
    ratios = {col: [] for col in direct}
    for r in range(rounds):
        bare = cpu[(path, "BareForward")][r]
        for col in direct:
            ratios[col].append(cpu[(path, col)][r] / bare)
        print(f"| {path} | {r+1} | " + " | ".join(f"{cpu[(path, col)][r]:.1f}" for col, _, _ in sides) + " | " +
              " | ".join(f"{ratios[col][r]:.2f}" for col in direct) + " |")
    print(f"| {path} | median | " + " | ".join(f"{statistics.median(cpu[(path, col)]):.1f}" for col, _, _ in sides) + " | " +
          " | ".join(f"**{statistics.median(ratios[col]):.2f}**" for col in direct) + " |")
print()
print("| path | " + " | ".join(f"{col} allocs/req" for col, _, _ in sides) + " | " + " | ".join(f"{col} ratio" for col in direct) + " |")
print("|---|" + "---|" * (len(sides) + len(direct)))
for path in paths:
    bare = allocs[(path, "BareForward")]
    print(f"| {path} | " + " | ".join(str(allocs[(path, col)]) for col, _, _ in sides) + " | " +
          " | ".join(f"{allocs[(path, col)] / bare:.2f}" for col in direct) + " |")
print()
for (path, col), v in azurite.items():
    print(f"Azurite (not counted above), {col}, {path}: {statistics.median(v):.0f} µs CPU per request (median)")
PY

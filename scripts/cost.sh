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
# breaker shared, both in Table Storage. What they write to is started here, outside the
# measured processes (DVROUTER_BENCH_TABLES), so that the store's CPU, Azure's in production, is
# not counted as dvrouter's; it is reported on its own lines. By default that is Azurite behind
# the Table stand-in (internal/testenv/cmd/tablesink): the journal's transactions are answered
# by the stand-in, as the service answers them, and everything else (the breaker's entities,
# the tables' creation) goes on to Azurite, which spends milliseconds of CPU on each journal
# entry on the same cores and would otherwise slow the measured process down by its load alone.
#
#   TABLES=standin  the deployed variant writes through the stand-in (default)
#   TABLES=azurite  it writes to Azurite directly, as before the stand-in
#   TABLES=both     both, as two columns of the same rounds ("Deployed", "Deployed/azurite")
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
TABLES=${TABLES:-standin}
case "$TABLES" in standin | azurite | both) ;; *) echo "TABLES=$TABLES: want standin, azurite or both" >&2; exit 2 ;; esac
go test -c -o "$OUT/handlers.test" ./handlers

# wait_for LOG PATTERN PID TRIES: until LOG has a line matching PATTERN, checking every 0.1 s
# that PID still runs (its log is shown when it stopped); fails when TRIES checks found none.
wait_for() {
	for _ in $(seq "$4"); do
		grep -q "$2" "$1" && return 0
		kill -0 "$3" 2>/dev/null || { cat "$1" >&2; return 1; }
		sleep 0.1
	done
	grep -q "$2" "$1"
}

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
wait_for "$OUT/azurite.log" "successfully started" "$azurite_pid" 300 || { echo "azurite did not start" >&2; exit 1; }
azurite_conn="DefaultEndpointsProtocol=http;AccountName=costbench;AccountKey=$key;TableEndpoint=http://127.0.0.1:$port/costbench;"

# The stand-in in front of it, its first line "listening http://127.0.0.1:<port>".
go build -o "$OUT/tablesink" ./internal/testenv/cmd/tablesink
"$OUT/tablesink" -listen 127.0.0.1:0 -upstream "http://127.0.0.1:$port" >"$OUT/tablesink.log" 2>&1 </dev/null &
sink_pid=$!
trap 'kill "$azurite_pid" "$sink_pid" 2>/dev/null || true' EXIT
wait_for "$OUT/tablesink.log" "^listening " "$sink_pid" 100 || { echo "the table stand-in did not start" >&2; exit 1; }
sink_url=$(sed -n 's/^listening //p' "$OUT/tablesink.log")
[ -n "$sink_url" ] || { echo "the table stand-in did not start" >&2; exit 1; }
sink_conn="DefaultEndpointsProtocol=http;AccountName=costbench;AccountKey=$key;TableEndpoint=$sink_url/costbench;"

echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
ROUNDS=${ROUNDS:-5} N=${N:-10000} N_DEPLOYED=${N_DEPLOYED:-2000} BIN="$PWD/$OUT/handlers.test" BASE=${BASE:+$(realpath "$BASE")} \
	AZURITE_PID=$azurite_pid SINK_PID=$sink_pid AZURITE_CONN="$azurite_conn" SINK_CONN="$sink_conn" TABLES="$TABLES" \
	python3 - <<'PY' | tee "$OUT/cost.md"
import os, re, statistics, subprocess

rounds, binary = int(os.environ["ROUNDS"]), os.environ["BIN"]
requests = {"WebhookDirectDeployed": int(os.environ["N_DEPLOYED"])}
n_other = int(os.environ["N"])
base = os.environ.get("BASE", "")
stores = {"azurite": int(os.environ["AZURITE_PID"]), "stand-in": int(os.environ["SINK_PID"])}
conns = {"standin": os.environ["SINK_CONN"], "azurite": os.environ["AZURITE_CONN"]}
tables = os.environ["TABLES"]
paths = ("inprocess", "loopback")
# (column, test binary, benchmark, the deployed variant's tables); with BASE, an older build's
# direct sides run in the same rounds, so a change is compared with what it changed under the
# same load.
deployed = {"standin": [("Deployed", "standin")], "azurite": [("Deployed", "azurite")],
            "both": [("Deployed", "standin"), ("Deployed/azurite", "azurite")]}[tables]
sides = [("WebhookDirect", binary, "WebhookDirect", None)]
sides += [(col, binary, "WebhookDirectDeployed", t) for col, t in deployed]
if base:
    sides += [("before: WebhookDirect", base, "WebhookDirect", None)]
    sides += [("before: " + col, base, "WebhookDirectDeployed", t) for col, t in deployed]
sides.append(("BareForward", binary, "BareForward", None))
clock = os.sysconf("SC_CLK_TCK")

def store_cpu():
    """Each store process's user+system CPU seconds so far."""
    out = {}
    for name, pid in stores.items():
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        out[name] = (int(fields[11]) + int(fields[12])) / clock
    return out

def run(binary, bench, path, iters, conn):
    """CPU seconds (user+system) of one test-binary process, and its allocs/op."""
    env = dict(os.environ)
    if conn:
        env["DVROUTER_BENCH_TABLES"] = conn
    p = subprocess.Popen([binary, "-test.run=^$", f"-test.bench=^Benchmark{bench}$/^{path}$",
                          "-test.benchmem", f"-test.benchtime={iters}x", "-test.count=1"],
                         cwd="handlers", env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = p.stdout.read()
    _, status, ru = os.wait4(p.pid, 0)
    if status != 0:
        raise SystemExit(f"{bench}/{path} failed:\n{out}")
    m = re.search(r"(\d+) allocs/op", out)
    return ru.ru_utime + ru.ru_stime, int(m.group(1)) if m else None

cpu = {(path, col): [] for path in paths for col, _, _, _ in sides}
allocs = {}
store_use = {(path, col, name): [] for path in paths for col, _, _, t in sides if t for name in stores}
for r in range(rounds):
    for path in paths:
        for col, binary, bench, t in sides:
            n = requests.get(bench, n_other)
            conn = conns[t] if t else None
            setup, _ = run(binary, bench, path, 1, conn)
            before = store_cpu()
            total, a = run(binary, bench, path, n, conn)
            if t:
                after = store_cpu()
                for name in stores:
                    store_use[(path, col, name)].append((after[name] - before[name]) / n * 1e6)
            cpu[(path, col)].append((total - setup) / n * 1e6)
            allocs[(path, col)] = a

sides = [(col, binary, bench) for col, binary, bench, _ in sides]
direct = [col for col, _, _ in sides if col != "BareForward"]
print(f"\n{n_other} requests per run ({requests['WebhookDirectDeployed']} deployed), {rounds} rounds, setup (a 1-request run) subtracted; µs of CPU per")
print("request, and each direct side's ratio to BareForward in the same round. Deployed: the")
print("journal on and the breaker shared, in tables whose own CPU is not counted (TABLES=" + tables + "):")
print("Deployed/azurite writes to Azurite; Deployed " + ("too" if tables == "azurite" else "through the stand-in, in front of Azurite") + ".\n")
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
for (path, col, name), v in store_use.items():
    print(f"{name} (not counted above), {col}, {path}: {statistics.median(v):.0f} µs CPU per request (median)")
PY

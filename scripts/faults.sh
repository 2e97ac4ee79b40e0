#!/usr/bin/env bash
# `make faults`: the full fault suite (loadtest/faults_test.go), 10,000 events in direct mode
# and 10,000 in queued mode, with consumer faults and the failure store stopped and restarted in
# both modes, and dvrouter killed with SIGKILL mid-run in queued mode. It prints the accounting
# of each mode and ends with `lost: 0`, or fails. `make test` runs the same suite with 600
# events per mode.
#
#   DVROUTER_FAULTS_N=10000     events per mode
#   DVROUTER_FAULTS_RATE=...    events per second (default N/60)
set -euo pipefail
cd "$(dirname "$0")/.."
export GOFLAGS=${GOFLAGS:--buildvcs=false}
export DVROUTER_FAULTS_N=${DVROUTER_FAULTS_N:-10000}
mkdir -p .run
go build -o .run/dvrouter-faults .
DVROUTER_BIN=$PWD/.run/dvrouter-faults go test -count=1 -run '^TestFaults$' -v -timeout 60m ./loadtest/ \
  | tee .run/faults.log | grep -E '^(=== RUN| *--- |PASS|FAIL|ok)|faults_test.go'

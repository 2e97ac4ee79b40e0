#!/usr/bin/env bash
# Runs dvrouter locally on its embedded defaults: Azurite for Table Storage (data kept in
# .run/azurite), the example consumer on 127.0.0.1:7072, and `dvrouter serve` on $PORT with
# examples/routes.yaml. Ctrl-C stops all three.
set -euo pipefail
cd "$(dirname "$0")/.."
PORT=${PORT:-7071}
mkdir -p .run/azurite
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT INT TERM

if ! (exec 3<>/dev/tcp/127.0.0.1/10002) 2>/dev/null; then
  node_modules/.bin/azurite-table --tableHost 127.0.0.1 --tablePort 10002 --location .run/azurite \
    --disableTelemetry --skipApiVersionCheck --loose >.run/azurite.log 2>&1 &
  pids+=($!)
  echo "azurite:  table storage on 127.0.0.1:10002 (log: .run/azurite.log)"
fi
if ! (exec 3<>/dev/tcp/127.0.0.1/7072) 2>/dev/null; then
  go build -o .run/consumer ./examples/consumer
  .run/consumer -addr 127.0.0.1:7072 &
  pids+=($!)
  echo $! >.run/consumer.pid
  echo "consumer: example consumer on http://127.0.0.1:7072/events (pid $!, also in .run/consumer.pid; kill it to see failures kept)"
fi

export PORT
export DVROUTER_ROUTES=${DVROUTER_ROUTES:-examples/routes.yaml}
export DVROUTER_TABLES=${DVROUTER_TABLES:-UseDevelopmentStorage=true}
# A local-only admin key for the failures API; never use it outside this machine.
export DVROUTER_ADMIN_KEYS=${DVROUTER_ADMIN_KEYS:-local=local-admin-key-change-me}
export DVROUTER_DELIVERY_BUDGET=${DVROUTER_DELIVERY_BUDGET:-10s}
echo "dvrouter: http://127.0.0.1:$PORT (health: /api/health, webhook: POST /api/dataverse/webhook)"
if [ "$DVROUTER_ADMIN_KEYS" = local=local-admin-key-change-me ]; then
  echo "console:  http://127.0.0.1:$PORT/api/console/ (sign in with the local admin key: local-admin-key-change-me)"
else
  echo "console:  http://127.0.0.1:$PORT/api/console/ (sign in with a key from DVROUTER_ADMIN_KEYS)"
fi
./dvrouter serve &
pids+=($!)
wait "${pids[-1]}"

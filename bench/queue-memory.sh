#!/usr/bin/env bash
# The gateway's memory idle and with a large delivery queue (issue #15).
#
#   bash bench/queue-memory.sh [queued_deliveries]      # default 1,000,000
#
# The example deployment (clients' rate limits lifted), a fresh embedded
# store, no registry running: every delivery stays queued (pending, backing
# off; the breakers open). The queue is filled through intake itself, at full
# speed, by wrk in rounds of ROUND seconds: each birth notification queues
# one delivery per route (four). After each round: queued deliveries and the
# gateway's RSS. Then the gateway idles IDLE s with the full queue (its
# workers still claim what falls due) and RSS is read again.
# Targets: idle RSS < 64 MiB; RSS with the full queue < 256 MiB, and no
# growth with the queue (exit 1 when missed).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib/common.sh
TARGET=${1:-1000000}
ROUND=${ROUND:-30}
IDLE=${IDLE:-30}
MAX_IDLE_MIB=${MAX_IDLE_MIB:-64}
MAX_QUEUED_MIB=${MAX_QUEUED_MIB:-256}
PORT=18080
WORK=${WORK_DIR:-$(mktemp -d)}
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null; rm -rf "$WORK"' EXIT

ensure_wrk
cargo build --release --quiet -p registry-gateway --bin registry-gateway
gateway_config "$WORK/gateway.toml"
echo "machine: $(machine); load average before: $(load_avg)"
"$BIN_DIR/registry-gateway" serve --config "$WORK/gateway.toml" \
  --listen "127.0.0.1:$PORT" --data-dir "$WORK/data" >"$WORK/gateway.log" 2>&1 &
GATEWAY=$!
wait_ready "http://127.0.0.1:$PORT/readyz" $GATEWAY
sleep 5
IDLE_RSS=$(rss_mib $GATEWAY)
echo "idle RSS: $IDLE_RSS MiB"

queued() {
  curl -sf -H 'Authorization: Bearer demo-admin-token' "http://127.0.0.1:$PORT/v1/admin/deliveries" \
    | python3 -c 'import json,sys;print(sum(c["count"] for c in json.load(sys.stdin)["deliveries"] if c["status"]=="pending"))'
}

printf "%12s %10s %10s %12s\n" queued "RSS MiB" "peak MiB" "records/s"
ROUNDS=0
while :; do
  QUEUED=$(queued)
  printf "%12s %10s %10s %12s\n" "$QUEUED" "$(rss_mib $GATEWAY)" "$(rss_mib $GATEWAY VmHWM)" "${RPS:--}"
  echo "$QUEUED $(rss_mib $GATEWAY)" >>"$WORK/samples"
  [ "$QUEUED" -ge "$TARGET" ] && break
  ROUNDS=$((ROUNDS + 1))
  wrk_script "$WORK/fill.lua" "FILL$ROUNDS"
  wrk -t1 -c64 -d"${ROUND}s" --latency -s "$WORK/fill.lua" "http://127.0.0.1:$PORT/v1/sources/canonical/records" >"$WORK/wrk.txt"
  RPS=$(wrk_fields "$WORK/wrk.txt" | cut -d' ' -f1)
  BAD=$(wrk_fields "$WORK/wrk.txt" | cut -d' ' -f4)
  [ "$BAD" = 0 ] || { echo "FAIL: $BAD answers were not 2xx"; exit 1; }
done
sleep "$IDLE"
FULL_RSS=$(rss_mib $GATEWAY)
PEAK=$(rss_mib $GATEWAY VmHWM)
echo "after ${IDLE} s idle with $(queued) queued deliveries: RSS $FULL_RSS MiB, peak $PEAK MiB"
echo "store: $(du -sh "$WORK/data" | cut -f1); load average after: $(load_avg)"
FAIL=0
python3 -c "import sys; sys.exit(0 if $IDLE_RSS < $MAX_IDLE_MIB else 1)" \
  || { echo "target missed: idle RSS $IDLE_RSS MiB >= $MAX_IDLE_MIB"; FAIL=1; }
python3 -c "import sys; sys.exit(0 if $PEAK < $MAX_QUEUED_MIB else 1)" \
  || { echo "target missed: peak RSS $PEAK MiB >= $MAX_QUEUED_MIB"; FAIL=1; }
exit $FAIL

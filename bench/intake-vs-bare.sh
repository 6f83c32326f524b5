#!/usr/bin/env bash
# Durable intake against a bare HTTP server, same load, same cores (issue #15).
#
#   bash bench/intake-vs-bare.sh [duration_seconds] [connections]
#
# The reference, bench/bare-server, is axum on tokio like the gateway; it
# parses the JSON body into a serde_json::Value and answers 202. The gateway
# runs the example deployment (deploy/gateway.example.toml; clients' rate
# limits lifted) with a fresh embedded SQLite store in a temporary folder and
# no registry running, so its deliveries only back off. All get the same wrk
# script: POST the example birth notification, another source_record_id each
# request. Each server runs alone, pinned to SERVER_CPUS, wrk to LOAD_CPUS.
#
# 1. Saturation: wrk for DURATION s at CONNECTIONS connections: requests/s,
#    p50, p99 of both, the ratio (target: gateway >= MIN_RATIO x bare).
# 2. Fixed rate: RATE requests/s for RATE_DURATION s, open loop (bench/lib):
#    p99 of both (target: gateway p99 < MAX_P99_MS).
# The same two runs against `bare-server --durable` (each body also committed
# as one SQLite row, WAL, synchronous=FULL, grouped commits): the least a
# durable intake can do; its ratio is printed beside the target's, no target.
# 3. The gateway's RSS idle, after the runs, and its peak (VmHWM).
# 4. Unless STORE_FLOOR=0: the criterion bench benches/intake.rs on the same
#    core, `submit/concurrent-256` (intake without HTTP) and
#    `store/accept-concurrent-256/as-intake` (the store alone committing what
#    intake commits): records/s and their ratio to the bare server, the
#    ceiling this store puts on durable intake.
# Exits 1 when a target is missed or a response was not 2xx.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib/common.sh
DURATION=${1:-20}
CONNECTIONS=${2:-64}
RATE=${RATE:-1000}
RATE_DURATION=${RATE_DURATION:-20}
RATE_CONNECTIONS=${RATE_CONNECTIONS:-32}
WARMUP=${WARMUP:-3}
SERVER_CPUS=${SERVER_CPUS:-1}
LOAD_CPUS=${LOAD_CPUS:-0}
MIN_RATIO=${MIN_RATIO:-0.5}
MAX_P99_MS=${MAX_P99_MS:-20}
STORE_FLOOR=${STORE_FLOOR:-1}
PORT=18080
BARE_PORT=18090
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null; rm -rf "$WORK"' EXIT

ensure_wrk
cargo build --release --quiet -p registry-gateway --bin registry-gateway
cargo build --release --quiet -p bare-server
[ "$STORE_FLOOR" = 0 ] || cargo bench --locked --quiet --bench intake --no-run
gateway_config "$WORK/gateway.toml"
wrk_script "$WORK/warm.lua" WARM
wrk_script "$WORK/load.lua" LOAD
wrk_script "$WORK/rate.lua" RATE "$RATE"
URL_PATH=/v1/sources/canonical/records
echo "machine: $(machine); load average before: $(load_avg)"

# run_wrk NAME PORT: warm-up, saturation, fixed rate; results in $WORK/NAME-*.txt
run_wrk() {
  local name=$1 port=$2 url="http://127.0.0.1:$2$URL_PATH"
  taskset -c "$LOAD_CPUS" wrk -t1 -c"$CONNECTIONS" -d"${WARMUP}s" -s "$WORK/warm.lua" "$url" >/dev/null
  echo "$(load_avg)" >"$WORK/$name-load.txt"
  taskset -c "$LOAD_CPUS" wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$WORK/load.lua" "$url" \
    >"$WORK/$name-sat.txt"
  taskset -c "$LOAD_CPUS" wrk -t1 -c"$RATE_CONNECTIONS" -d"${RATE_DURATION}s" --latency -s "$WORK/rate.lua" "$url" \
    >"$WORK/$name-rate.txt"
}

taskset -c "$SERVER_CPUS" "$BIN_DIR/bare-server" "127.0.0.1:$BARE_PORT" &
BARE=$!
wait_ready "http://127.0.0.1:$BARE_PORT/readyz" $BARE
run_wrk bare $BARE_PORT
kill $BARE; wait $BARE 2>/dev/null || true

mkdir "$WORK/durable"
taskset -c "$SERVER_CPUS" "$BIN_DIR/bare-server" "127.0.0.1:$BARE_PORT" --durable "$WORK/durable" &
BARE=$!
wait_ready "http://127.0.0.1:$BARE_PORT/readyz" $BARE
run_wrk durable $BARE_PORT
kill $BARE; wait $BARE 2>/dev/null || true

taskset -c "$SERVER_CPUS" "$BIN_DIR/registry-gateway" serve --config "$WORK/gateway.toml" \
  --listen "127.0.0.1:$PORT" --data-dir "$WORK/data" >"$WORK/gateway.log" 2>&1 &
GATEWAY=$!
wait_ready "http://127.0.0.1:$PORT/readyz" $GATEWAY
sleep 2
IDLE_RSS=$(rss_mib $GATEWAY)
run_wrk gateway $PORT
RSS=$(rss_mib $GATEWAY)
PEAK_RSS=$(rss_mib $GATEWAY VmHWM)

read -r B_RPS B_P50 B_P99 B_BAD B_N B_ERR < <(wrk_fields "$WORK/bare-sat.txt")
read -r D_RPS D_P50 D_P99 D_BAD D_N D_ERR < <(wrk_fields "$WORK/durable-sat.txt")
read -r DR_RPS DR_P50 DR_P99 DR_BAD DR_N DR_ERR < <(wrk_fields "$WORK/durable-rate.txt")
read -r G_RPS G_P50 G_P99 G_BAD G_N G_ERR < <(wrk_fields "$WORK/gateway-sat.txt")
read -r BR_RPS BR_P50 BR_P99 BR_BAD BR_N BR_ERR < <(wrk_fields "$WORK/bare-rate.txt")
read -r GR_RPS GR_P50 GR_P99 GR_BAD GR_N GR_ERR < <(wrk_fields "$WORK/gateway-rate.txt")
RECORDS=$(python3 -c "import sqlite3,sys;print(sqlite3.connect('file:$WORK/data/gateway.db?mode=ro',uri=True).execute('select count(*) from records').fetchone()[0])")
if [ "$STORE_FLOOR" != 0 ]; then
  kill $GATEWAY; wait $GATEWAY 2>/dev/null || true
  taskset -c "$SERVER_CPUS" cargo bench --locked --quiet --bench intake -- --warm-up-time 2 \
    --measurement-time 10 'submit/concurrent-256|store/accept-concurrent-256/as-intake' >"$WORK/floor.txt" 2>&1
fi

echo
echo "saturation, ${DURATION} s, $CONNECTIONS connections (wrk on cpu $LOAD_CPUS, server on cpu $SERVER_CPUS):"
printf "  %-8s %9s req/s  p50 %7s ms  p99 %7s ms  (load average before: %s)\n" \
  bare "$B_RPS" "$B_P50" "$B_P99" "$(cat "$WORK/bare-load.txt")" \
  durable "$D_RPS" "$D_P50" "$D_P99" "$(cat "$WORK/durable-load.txt")" \
  gateway "$G_RPS" "$G_P50" "$G_P99" "$(cat "$WORK/gateway-load.txt")"
RATIO=$(python3 -c "print(f'{$G_RPS / $B_RPS:.2f}')")
echo "  ratio gateway / bare: ${RATIO}x (target >= ${MIN_RATIO}x)"
echo "  ratio gateway / durable bare: $(python3 -c "print(f'{$G_RPS / $D_RPS:.2f}')")x; durable bare / bare: $(python3 -c "print(f'{$D_RPS / $B_RPS:.2f}')")x"
echo "fixed rate, $RATE requests/s for ${RATE_DURATION} s, $RATE_CONNECTIONS connections:"
printf "  %-8s %9s req/s  p50 %7s ms  p99 %7s ms\n" \
  bare "$BR_RPS" "$BR_P50" "$BR_P99" durable "$DR_RPS" "$DR_P50" "$DR_P99" gateway "$GR_RPS" "$GR_P50" "$GR_P99"
echo "  gateway p99 ${GR_P99} ms (target < ${MAX_P99_MS} ms)"
echo "gateway RSS: idle $IDLE_RSS MiB, after the runs $RSS MiB, peak $PEAK_RSS MiB; $RECORDS records stored"
if [ "$STORE_FLOOR" != 0 ]; then
  python3 - "$WORK/floor.txt" "$B_RPS" <<'PY'
import re, sys
text, bare = open(sys.argv[1]).read(), float(sys.argv[2])
scale = {"elem/s": 1, "Kelem/s": 1e3, "Melem/s": 1e6}
print(f"without HTTP, criterion on the server's core (benches/intake.rs), against bare {bare:.0f} req/s:")
for name, what in (("submit/concurrent-256", "intake, no HTTP"),
                   ("store/accept-concurrent-256/as-intake", "the store alone")):
    m = re.search(re.escape(name) + r"\s+time:.*?\n\s+thrpt:\s+\[\S+ \S+ (\S+) (\S+)", text)
    if not m:
        print(f"  {name}: no figure (see the bench's output)"); continue
    rate = float(m.group(1)) * scale[m.group(2)]
    print(f"  {what:16} {rate:9.0f} records/s  {rate / bare:.2f}x bare  ({name})")
PY
fi
echo "load average after: $(load_avg)"

FAIL=0
for bad in "$B_BAD" "$D_BAD" "$G_BAD" "$BR_BAD" "$DR_BAD" "$GR_BAD" "$B_ERR" "$D_ERR" "$G_ERR" "$BR_ERR" "$DR_ERR" "$GR_ERR"; do
  [ "$bad" = 0 ] || { echo "FAIL: a run had non-2xx answers or socket errors:"; grep -h "Non-2xx\|Socket errors" "$WORK"/*-sat.txt "$WORK"/*-rate.txt; FAIL=1; break; }
done
python3 -c "import sys; sys.exit(0 if $GR_RPS >= 0.95 * $RATE else 1)" \
  || { echo "FAIL: the fixed-rate run reached only $GR_RPS of $RATE requests/s"; FAIL=1; }
python3 -c "import sys; sys.exit(0 if $RATIO >= $MIN_RATIO else 1)" || { echo "target missed: ratio"; FAIL=1; }
python3 -c "import sys; sys.exit(0 if $GR_P99 < $MAX_P99_MS else 1)" || { echo "target missed: p99 at $RATE/s"; FAIL=1; }
exit $FAIL

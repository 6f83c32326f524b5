#!/usr/bin/env bash
# Where intake's time goes: perf on the release gateway while wrk saturates it
# (the setup of intake-vs-bare.sh: example deployment, fresh store, no
# registry running), then a flame graph (inferno, `cargo install inferno`).
#
#   bash bench/profile-intake.sh OUT.svg [seconds]
#
# Also prints the 25 hottest functions (self time); FOLDED=FILE keeps the
# folded stacks (inferno-collapse-perf) for a closer look.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib/common.sh
OUT=$(realpath -m "$1")
SECONDS_=${2:-10}
SERVER_CPUS=${SERVER_CPUS:-1}
LOAD_CPUS=${LOAD_CPUS:-0}
PORT=18080
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null; rm -rf "$WORK"' EXIT
command -v inferno-flamegraph >/dev/null || { echo "needs inferno: cargo install inferno" >&2; exit 1; }
ensure_wrk
cargo build --release --quiet -p registry-gateway --bin registry-gateway
gateway_config "$WORK/gateway.toml"
wrk_script "$WORK/load.lua" PROFILE
taskset -c "$SERVER_CPUS" "$BIN_DIR/registry-gateway" serve --config "$WORK/gateway.toml" \
  --listen "127.0.0.1:$PORT" --data-dir "$WORK/data" >"$WORK/gateway.log" 2>&1 &
GATEWAY=$!
wait_ready "http://127.0.0.1:$PORT/readyz" $GATEWAY
URL="http://127.0.0.1:$PORT/v1/sources/canonical/records"
taskset -c "$LOAD_CPUS" wrk -t1 -c64 -d$((SECONDS_ + 4))s -s "$WORK/load.lua" "$URL" >"$WORK/wrk.txt" &
WRK=$!
sleep 2
perf record -F 499 --call-graph dwarf,16384 -p "$GATEWAY" -o "$WORK/perf.data" -- sleep "$SECONDS_" 2>/dev/null
wait $WRK
grep "Requests/sec" "$WORK/wrk.txt"
perf script -i "$WORK/perf.data" 2>/dev/null | inferno-collapse-perf >"$WORK/folded"
inferno-flamegraph --minwidth 2 --title "intake under wrk ($(grep Requests/sec "$WORK/wrk.txt" | xargs))" <"$WORK/folded" >"$OUT"
perf report -i "$WORK/perf.data" --no-children --percent-limit 0.7 --stdio 2>/dev/null \
  | grep -E '^ +[0-9.]+%' | head -25
[ -z "${FOLDED:-}" ] || cp "$WORK/folded" "$FOLDED"
echo "flame graph: $OUT"

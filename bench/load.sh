#!/usr/bin/env bash
# Load benchmark on loopback: wrk pushes birth notifications at intake while
# the gateway delivers them to the mock registries (no limits on either side).
# Reports intake throughput and latency (wrk), and accepted-to-delivered
# throughput and latency (from the store: each receipt's delivered_at minus
# the record's received_at).
#
# While wrk runs, the queued deliveries (pending or awaiting, as the admin
# API counts them) are sampled every second and printed. The run fails (exit
# 1) when delivery does not keep up: the backlog grows over the second half
# of the run by more than 5% of intake's records/s, or the records delivered
# while wrk ran fall short of intake's rate by more than 5%.
#
#   bash bench/load.sh [duration_seconds] [connections]
#
# IN_FLIGHT (default 128) is each registry's cap on requests in flight. On
# one machine a send waits for the CPU behind intake and the mocks (~75 ms
# at 64 connections), so a worker delivers about IN_FLIGHT / 75 ms per
# registry: at 32 the cap, not the gateway, held delivery under intake
# (docs/perf/README.md, "Delivery under load").
#
# PROFILE=OUT.svg also records the gateway and the mocks with perf in the
# middle of the run and writes one flame graph of both (inferno: `cargo
# install inferno`); FOLDED=FILE keeps the folded stacks.
#
# Needs wrk (apt-get install wrk; installed here if missing and possible).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-20}
CONNECTIONS=${2:-64}
IN_FLIGHT=${IN_FLIGHT:-128}
PORT=18080
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null; rm -rf "$WORK"' EXIT

source bench/lib/common.sh
ensure_wrk
cargo build --release --quiet -p registry-gateway --bin registry-gateway
cargo build --release --quiet -p registry-mocks
BIN=$BIN_DIR/registry-gateway

# The example config without limits (clients' lifted by gateway_config;
# destinations': no rate, IN_FLIGHT in flight), birth routes to the three
# unlimited registries (the Examplia mock enforces its own published 5/s).
gateway_config "$WORK/gateway.toml"
python3 - "$WORK/gateway.toml" "$IN_FLIGHT" <<'PY'
import re, sys, pathlib
path = pathlib.Path(sys.argv[1])
text = path.read_text()
text = re.sub(r'(?m)^limits = \{ rate_per_second = [\d.]+, burst = \d+, max_in_flight = \d+ \}\n', f'limits = {{ max_in_flight = {sys.argv[2]} }}\n', text)
text = re.sub(r'(?ms)^\[destinations\.examplia-crvs\.limits\].*?(?=^# --- routes)', '', text)
text = re.sub(r'(?m)^\[\[routes\]\]\nrecord_type = "birth-notification"\ndestination = "examplia-crvs"\n', '', text)
path.write_text(text)
PY

"$BIN_DIR/registry-mocks" --only opencrvs,opencrvs-v1,fhir-r4 >"$WORK/mocks.log" 2>&1 &
MOCKS=$!
sleep 1
RUST_LOG=warn $BIN serve --config "$WORK/gateway.toml" --listen 127.0.0.1:$PORT --data-dir "$WORK/data" >"$WORK/gateway.log" 2>&1 &
GATEWAY=$!
wait_ready http://127.0.0.1:$PORT/readyz $GATEWAY

# Every request is another child (its own source_record_id): one child's
# records are delivered one after another, by design.
wrk_script "$WORK/post.lua" LOAD

# Queued deliveries (pending or awaiting), as the admin API counts them.
queued() {
  curl -sf -m 5 -H 'Authorization: Bearer demo-admin-token' http://127.0.0.1:$PORT/v1/admin/deliveries \
    | python3 -c 'import json,sys;print(sum(c["count"] for c in json.load(sys.stdin)["deliveries"] if c["status"] in ("pending","awaiting")))'
}
# Once a second until wrk is done: "<unix time> <queued>".
sample_backlog() {
  while [ ! -e "$WORK/stop-sampling" ]; do
    echo "$(date +%s.%N) $(queued || echo -)" >>"$WORK/backlog.txt"
    sleep 1
  done
}

echo "load average before the run: $(load_avg)"
START=$(date +%s.%N)
sample_backlog &
SAMPLER=$!
PERFS=()
if [ -n "${PROFILE:-}" ]; then
  command -v inferno-flamegraph >/dev/null || { echo "PROFILE needs inferno: cargo install inferno" >&2; exit 1; }
  # One recording per process, so the flame graph has a root for each.
  for who in gateway mocks; do
    pid=$GATEWAY; [ $who = gateway ] || pid=$MOCKS
    ( sleep 2; perf record -F 499 --call-graph dwarf,16384 -p "$pid" -o "$WORK/$who.perf" \
        -- sleep $((DURATION > 6 ? DURATION - 4 : 2)) >/dev/null 2>&1 ) &
    PERFS+=($!)
  done
fi
wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$WORK/post.lua" \
  http://127.0.0.1:$PORT/v1/sources/canonical/records | tee "$WORK/wrk.txt"
WRK_END=$(date +%s.%N)
touch "$WORK/stop-sampling"
wait $SAMPLER
[ -z "${PROFILE:-}" ] || wait "${PERFS[@]}"

echo "waiting for every delivery to settle ..."
while [ "$(queued)" != 0 ]; do sleep 0.5; done
END=$(date +%s.%N)

VERDICT=0
python3 - "$WORK/data/gateway.db" "$START" "$WRK_END" "$END" "$WORK/backlog.txt" "$WORK/wrk.txt" <<'PY' || VERDICT=$?
import json, re, sqlite3, sys
from datetime import datetime
db = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
start, wrk_end, end = map(float, sys.argv[2:5])
rows = db.execute("""SELECT r.received_at, d.receipt, d.status FROM deliveries d
                     JOIN records r ON r.id = d.record_id""").fetchall()
records = db.execute("SELECT count(*) FROM records").fetchone()[0]
routes = db.execute("SELECT count(DISTINCT route) FROM deliveries").fetchone()[0] or 1
parse = lambda t: datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp()
lat, statuses, during = [], {}, 0
for received, receipt, status in rows:
    statuses[status] = statuses.get(status, 0) + 1
    if status == "delivered":
        at = parse(json.loads(receipt)["delivered_at"])
        lat.append(at - parse(received))
        during += at <= wrk_end
lat.sort()
q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] * 1000
wall, ran = end - start, wrk_end - start
print(f"\nrecords accepted: {records}; deliveries: {statuses}")
print(f"accepted-to-delivered: {len(lat)} deliveries in {wall:.1f} s = {len(lat)/wall:.0f} deliveries/s ({records/wall:.0f} records/s, {routes} routes each)")
print(f"accepted-to-delivered latency: p50 {q(0.50):.0f} ms, p99 {q(0.99):.0f} ms, max {lat[-1]*1000:.0f} ms")

# The backlog while wrk ran; its trend is the slope (least squares) over the
# second half, once the first claims and connections are made.
samples = []
for line in open(sys.argv[5]):
    t, n = line.split()
    if n != "-":
        samples.append((float(t) - start, int(n)))
print("queued deliveries while wrk ran (second: count): " + ", ".join(f"{t:.0f}: {n}" for t, n in samples))
half = [(t, n) for t, n in samples if t >= ran / 2]
slope = 0.0
if len(half) >= 2:
    mt = sum(t for t, _ in half) / len(half)
    mn = sum(n for _, n in half) / len(half)
    var = sum((t - mt) ** 2 for t, _ in half)
    slope = sum((t - mt) * (n - mn) for t, n in half) / var if var else 0.0
intake = float(re.search(r"Requests/sec:\s+([\d.]+)", open(sys.argv[6]).read()).group(1))
delivered = during / routes / ran
print(f"intake {intake:.0f} records/s; delivered while wrk ran {delivered:.0f} records/s "
      f"({during} deliveries in {ran:.1f} s, {delivered / intake:.2f}x intake); "
      f"backlog trend over the second half {slope / routes:+.0f} records/s; drained {end - wrk_end:.1f} s after wrk")
if slope / routes > 0.05 * intake or delivered < 0.95 * intake:
    print("DELIVERY DOES NOT KEEP UP with intake (the backlog grows, or fewer than 95% of intake's records/s delivered)")
    sys.exit(1)
print("delivery keeps up with intake (no growing backlog)")
PY
if [ -n "${PROFILE:-}" ]; then
  OUT=$(realpath -m "$PROFILE")
  for who in gateway mocks; do
    perf script -i "$WORK/$who.perf" 2>/dev/null | inferno-collapse-perf | sed "s/^/$who;/"
  done >"$WORK/folded"
  inferno-flamegraph --minwidth 2 --title "gateway and mocks under load.sh $DURATION s, $CONNECTIONS connections" \
    <"$WORK/folded" >"$OUT"
  for who in gateway mocks; do
    echo "$who, hottest functions (self time):"
    perf report -i "$WORK/$who.perf" --no-children --percent-limit 1.5 --stdio 2>/dev/null \
      | grep -E '^ +[0-9.]+%' | head -15
  done
  awk '{ n = $NF; t += n; split($1, f, ";"); s[f[1]] += n }
       END { for (w in s) printf "%s %.0f%% of the samples\n", w, 100 * s[w] / t }' "$WORK/folded"
  [ -z "${FOLDED:-}" ] || cp "$WORK/folded" "$FOLDED"
  echo "flame graph: $OUT"
fi
echo "registries' in-flight cap: $IN_FLIGHT; machine: $(machine); load average now: $(load_avg)"
exit $VERDICT

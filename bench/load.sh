#!/usr/bin/env bash
# Load benchmark on loopback: wrk pushes birth notifications at intake while
# the gateway delivers them to the mock registries (no limits on either side).
# Reports intake throughput and latency (wrk), and accepted-to-delivered
# throughput and latency (from the store: each receipt's delivered_at minus
# the record's received_at).
#
#   bash bench/load.sh [duration_seconds] [connections]
#
# Needs wrk (apt-get install wrk; installed here if missing and possible).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-20}
CONNECTIONS=${2:-64}
PORT=18080
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null; rm -rf "$WORK"' EXIT

source bench/lib/common.sh
ensure_wrk
cargo build --release --quiet -p registry-gateway --bin registry-gateway
cargo build --release --quiet -p registry-mocks
BIN=$BIN_DIR/registry-gateway

# The example config without limits (clients' lifted by gateway_config;
# destinations': no rate, 32 in flight), birth routes to the three unlimited
# registries (the Examplia mock enforces its own published 5/s).
gateway_config "$WORK/gateway.toml"
python3 - "$WORK/gateway.toml" <<'PY'
import re, sys, pathlib
path = pathlib.Path(sys.argv[1])
text = path.read_text()
text = re.sub(r'(?m)^limits = \{ rate_per_second = [\d.]+, burst = \d+, max_in_flight = \d+ \}\n', 'limits = { max_in_flight = 32 }\n', text)
text = re.sub(r'(?ms)^\[destinations\.examplia-crvs\.limits\].*?(?=^# --- routes)', '', text)
text = re.sub(r'(?m)^\[\[routes\]\]\nrecord_type = "birth-notification"\ndestination = "examplia-crvs"\n', '', text)
path.write_text(text)
PY

"$BIN_DIR/registry-mocks" --only opencrvs,opencrvs-v1,fhir-r4 >"$WORK/mocks.log" 2>&1 &
sleep 1
RUST_LOG=warn $BIN serve --config "$WORK/gateway.toml" --listen 127.0.0.1:$PORT --data-dir "$WORK/data" >"$WORK/gateway.log" 2>&1 &
wait_ready http://127.0.0.1:$PORT/readyz

# Every request is another child (its own source_record_id): one child's
# records are delivered one after another, by design.
wrk_script "$WORK/post.lua" LOAD

START=$(date +%s.%N)
wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$WORK/post.lua" \
  http://127.0.0.1:$PORT/v1/sources/canonical/records | tee "$WORK/wrk.txt"

echo "waiting for every delivery to settle ..."
while :; do
  PENDING=$(curl -sf -H 'Authorization: Bearer demo-admin-token' http://127.0.0.1:$PORT/v1/admin/deliveries \
    | python3 -c 'import json,sys;print(sum(c["count"] for c in json.load(sys.stdin)["deliveries"] if c["status"]=="pending"))')
  [ "$PENDING" = 0 ] && break
  sleep 0.5
done
END=$(date +%s.%N)

python3 - "$WORK/data/gateway.db" "$START" "$END" <<'PY'
import json, sqlite3, sys
from datetime import datetime
db = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
start, end = float(sys.argv[2]), float(sys.argv[3])
rows = db.execute("""SELECT r.received_at, d.receipt, d.status FROM deliveries d
                     JOIN records r ON r.id = d.record_id""").fetchall()
records = db.execute("SELECT count(*) FROM records").fetchone()[0]
parse = lambda t: datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp()
lat, statuses = [], {}
for received, receipt, status in rows:
    statuses[status] = statuses.get(status, 0) + 1
    if status == "delivered":
        lat.append(parse(json.loads(receipt)["delivered_at"]) - parse(received))
lat.sort()
q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] * 1000
wall = end - start
print(f"\nrecords accepted: {records}; deliveries: {statuses}")
print(f"accepted-to-delivered: {len(lat)} deliveries in {wall:.1f} s = {len(lat)/wall:.0f} deliveries/s ({records/wall:.0f} records/s, 3 routes each)")
print(f"accepted-to-delivered latency: p50 {q(0.50):.0f} ms, p99 {q(0.99):.0f} ms, max {lat[-1]*1000:.0f} ms")
PY
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"

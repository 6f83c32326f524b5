#!/usr/bin/env bash
# Times the canonical -> OpenCRVS 2.x translation over the same N records
# (default 100,000) in one run, each on one core (taskset -c 0): the gateway's
# bulk command (`registry-gateway translate --jsonl --threads 1`: parse,
# schema validation, policy, mapping, encoder) and the same mapping written in
# jq (bench/opencrvs.jq), also run by jaq when it is on PATH (install it with
# `cargo install jaq --locked`; not done here: it takes minutes to build). The
# faster of jq and jaq is the reference. Checks that both give the same
# declarations, prints the ratio, and exits 1 under MIN_RATIO (default 10).
# Usage: bash bench/jq-compare.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-100000}
min_ratio=${MIN_RATIO:-10}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cargo build --release --quiet --locked --bin registry-gateway
# Code lists as JSON for jq.
python3 - "$work/codelists.json" <<'PY'
import json, pathlib, sys, tomllib
lists = {p.stem: tomllib.loads(p.read_text()) for p in pathlib.Path("mappings/codelists").glob("opencrvs-*.toml")}
# Places resolve through the registry's location list (deploy/locations), not
# code lists: give jq the same code -> location id tables (active entries).
locations = json.load(open("deploy/locations/examplia-opencrvs.json"))
def by_system(system):
    return {"codes": {
        i["value"]: e["resource"]["id"]
        for e in locations["entry"] if e["resource"].get("status") == "active"
        for i in e["resource"].get("identifier", []) if i.get("system") == system}}
lists["opencrvs-health-facility"] = by_system("urn:examplia:master-facility-list")
lists["opencrvs-admin-area"] = by_system("urn:examplia:pcode")
json.dump(lists, open(sys.argv[1], "w"))
PY
# N records: the example, varied in the fields the mapping reads.
python3 - "$n" "$work/records.jsonl" "$work/jq-input.jsonl" <<'PY'
import json, sys
n, out, jq_out = int(sys.argv[1]), open(sys.argv[2], "w"), open(sys.argv[3], "w")
base = json.load(open("schemas/examples/birth-notification.json"))
for i in range(n):
    r = json.loads(json.dumps(base))
    r["record_version"] = 1 + i % 3
    r["child"]["sex"] = ["female", "male"][i % 2]
    r["birth_weight"] = {"value": 2500 + i % 2000, "unit": "g"}
    line = json.dumps(r, ensure_ascii=False)
    out.write(line + "\n")
    jq_out.write(json.dumps({"record": r, "key": f"k{i}"}, ensure_ascii=False) + "\n")
PY
load=$(cut -d" " -f1-3 /proc/loadavg)
cpu="$(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores"
time_it() { local t0 t1; t0=$(date +%s.%N); "$@"; t1=$(date +%s.%N); echo "$t1 - $t0" | bc -l; }
gw=$(time_it sh -c "taskset -c 0 target/release/registry-gateway translate --config deploy/gateway.example.toml \
  --source canonical --route birth-notification-to-opencrvs --jsonl --threads 1 \
  < '$work/records.jsonl' > '$work/gateway.jsonl'")
jqt=$(time_it sh -c "taskset -c 0 jq -c --argjson cl \"\$(cat '$work/codelists.json')\" -f bench/opencrvs.jq \
  < '$work/jq-input.jsonl' > '$work/jq.jsonl'")
ref=$jqt; ref_name="jq $(jq --version)"
if command -v jaq >/dev/null; then
  jaqt=$(time_it sh -c "taskset -c 0 jaq -c --argjson cl \"\$(cat '$work/codelists.json')\" -f bench/opencrvs.jq \
    < '$work/jq-input.jsonl' > '$work/jaq.jsonl'")
  if (( $(echo "$jaqt < $jqt" | bc -l) )); then ref=$jaqt; ref_name="jaq $(jaq --version)"; fi
else
  jaqt=""
fi
outputs="gateway jq"; [ -n "$jaqt" ] && outputs="$outputs jaq"
for f in $outputs; do
  lines=$(wc -l < "$work/$f.jsonl")
  [ "$lines" = "$n" ] || { echo "$f: $lines outputs for $n records" >&2; exit 1; }
done
# Same declaration content (transactionId differs by design: the gateway derives it).
for f in $outputs; do
  [ "$f" = gateway ] && continue
  python3 - "$work/gateway.jsonl" "$work/$f.jsonl" "$f" <<'PY'
import json, sys
a = [json.loads(l) for _, l in zip(range(1000), open(sys.argv[1]))]
b = [json.loads(l) for _, l in zip(range(1000), open(sys.argv[2]))]
bad = sum(1 for x, y in zip(a, b) if x["declaration"] != y["declaration"] or x["createdAtLocation"] != y["createdAtLocation"])
print(f"{sys.argv[3]}: first 1000 outputs, {1000 - bad} declarations identical to the gateway's, {bad} different")
sys.exit(1 if bad else 0)
PY
done
rate() { echo "$n / $1" | bc -l; }
printf 'machine: %s; load average before: %s\n' "$cpu" "$load"
printf 'gateway: %d records in %.2f s = %.0f records/s on one core\n' "$n" "$gw" "$(rate "$gw")"
printf 'jq:      %d records in %.2f s = %.0f records/s on one core\n' "$n" "$jqt" "$(rate "$jqt")"
[ -n "$jaqt" ] && printf 'jaq:     %d records in %.2f s = %.0f records/s on one core\n' "$n" "$jaqt" "$(rate "$jaqt")"
ratio=$(echo "$ref / $gw" | bc -l)
printf 'ratio:   the gateway translates %.1fx as fast as %s (the faster reference)\n' "$ratio" "$ref_name"
if (( $(echo "$ratio < $min_ratio" | bc -l) )); then
  echo "below the target ratio $min_ratio" >&2
  exit 1
fi

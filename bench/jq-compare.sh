#!/usr/bin/env bash
# Times the canonical -> OpenCRVS 2.x mapping over the same N records (default
# 100,000) twice in one run: the gateway (mapping file + encoder, one core) and
# the same mapping written in jq (bench/opencrvs.jq), and prints the ratio.
# Usage: bash bench/jq-compare.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-100000}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cargo build --release --quiet --example map_jsonl
# Code lists as JSON for jq.
python3 - "$work/codelists.json" <<'PY'
import json, pathlib, sys, tomllib
lists = {p.stem: tomllib.loads(p.read_text()) for p in pathlib.Path("mappings/codelists").glob("opencrvs-*.toml")}
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
cpu="$(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores"
t0=$(date +%s.%N)
taskset -c 0 target/release/examples/map_jsonl deploy/gateway.example.toml birth-notification-to-opencrvs \
  < "$work/records.jsonl" > "$work/gateway.jsonl"
t1=$(date +%s.%N)
taskset -c 0 jq -c --argjson cl "$(cat "$work/codelists.json")" -f bench/opencrvs.jq \
  < "$work/jq-input.jsonl" > "$work/jq.jsonl"
t2=$(date +%s.%N)
gw=$(echo "$t1 - $t0" | bc -l); jqt=$(echo "$t2 - $t1" | bc -l)
lines_gw=$(wc -l < "$work/gateway.jsonl"); lines_jq=$(wc -l < "$work/jq.jsonl")
[ "$lines_gw" = "$n" ] && [ "$lines_jq" = "$n" ] || { echo "outputs incomplete: $lines_gw / $lines_jq of $n" >&2; exit 1; }
# Same declaration content (transactionId differs by design: the gateway derives it).
python3 - "$work/gateway.jsonl" "$work/jq.jsonl" <<'PY'
import json, sys
a = [json.loads(l) for _, l in zip(range(1000), open(sys.argv[1]))]
b = [json.loads(l) for _, l in zip(range(1000), open(sys.argv[2]))]
bad = sum(1 for x, y in zip(a, b) if x["declaration"] != y["declaration"] or x["createdAtLocation"] != y["createdAtLocation"])
print(f"first 1000 outputs: {1000 - bad} identical declarations, {bad} different")
sys.exit(1 if bad else 0)
PY
printf 'machine: %s\n' "$cpu"
printf 'gateway: %d records in %.2f s = %.0f records/s on one core\n' "$n" "$gw" "$(echo "$n / $gw" | bc -l)"
printf 'jq:      %d records in %.2f s = %.0f records/s on one core\n' "$n" "$jqt" "$(echo "$n / $jqt" | bc -l)"
printf 'ratio:   the gateway maps %.1fx as fast as jq\n' "$(echo "$jqt / $gw" | bc -l)"

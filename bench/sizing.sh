#!/usr/bin/env bash
# Sizing figures for docs/operations.md: the release gateway on the example
# config (deploy/gateway.example.toml, unchanged: its client and registry
# limits hold), the mock registries beside it, on loopback.
#   1. idle: 20 s after /readyz, nothing sent (the reference);
#   2. load: both demo agencies push birth notifications at 40 records/s each
#      (under their 50/s limit) for DURATION seconds, every record a new child,
#      while the gateway delivers to the five mocks at the registries' pace.
# Samples the gateway's VmRSS and CPU time every second from /proc; prints
# mean CPU (% of one core), peak RSS (VmHWM) and each phase against idle.
#
#   bash bench/sizing.sh [duration_seconds]     (binaries from target/release
#   or $CARGO_TARGET_DIR/release; build them first:
#   cargo build --release --locked -p registry-gateway -p registry-mocks --bins)
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-60}
BIN_DIR=${CARGO_TARGET_DIR:-target}/release
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null; rm -rf "$WORK"' EXIT

"$BIN_DIR/registry-mocks" >"$WORK/mocks.log" 2>&1 &
sleep 1
RUST_LOG=warn "$BIN_DIR/registry-gateway" serve --config deploy/gateway.example.toml \
  --data-dir "$WORK/data" >"$WORK/gateway.log" 2>&1 &
GW=$!
for _ in $(seq 100); do curl -sf http://127.0.0.1:8080/readyz >/dev/null && break; sleep 0.2; done
curl -sf http://127.0.0.1:8080/readyz >/dev/null

python3 - "$GW" "$DURATION" <<'PY'
import http.client, json, os, sys, threading, time
pid, duration = int(sys.argv[1]), int(sys.argv[2])
tick = os.sysconf("SC_CLK_TCK")

def cpu_seconds():
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / tick

def status(name):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(name + ":"):
            return int(line.split()[1]) / 1024  # MiB

def sample(seconds):
    rss, start_cpu, start = [], cpu_seconds(), time.monotonic()
    while time.monotonic() - start < seconds:
        time.sleep(1)
        rss.append(status("VmRSS"))
    cpu = (cpu_seconds() - start_cpu) / (time.monotonic() - start) * 100
    return cpu, sum(rss) / len(rss), max(rss)

idle_cpu, idle_rss, _ = sample(20)
idle_hwm = status("VmHWM")

base = json.load(open("schemas/examples/birth-notification.json"))
answers, lock, stop = {}, threading.Lock(), threading.Event()

def agency(token, tag, rate):
    conn = http.client.HTTPConnection("127.0.0.1", 8080, timeout=30)
    n, next_at = 0, time.monotonic()
    while not stop.is_set():
        n += 1
        record = dict(base, source_record_id=f"urn:uuid:sizing-{tag}-{n}")
        conn.request("POST", "/v1/sources/canonical/records", json.dumps(record),
                     {"Authorization": f"Bearer {token}", "Content-Type": "application/json",
                      "Idempotency-Key": f"sizing-{tag}-{n}"})
        code = conn.getresponse()
        code.read()
        with lock:
            answers[code.status] = answers.get(code.status, 0) + 1
        next_at += 1 / rate
        time.sleep(max(0, next_at - time.monotonic()))

threads = [threading.Thread(target=agency, args=(t, tag, 40)) for t, tag in
           [("demo-agency-token", "a"), ("demo-agency-2-token", "b")]]
for t in threads:
    t.start()
load_cpu, load_rss, load_peak = sample(duration)
stop.set()
for t in threads:
    t.join()
hwm = status("VmHWM")
conn = http.client.HTTPConnection("127.0.0.1", 8080)
conn.request("GET", "/v1/admin/deliveries", headers={"Authorization": "Bearer demo-admin-token"})
deliveries = json.loads(conn.getresponse().read())["deliveries"]
by_status = {}
for c in deliveries:
    by_status[c["status"]] = by_status.get(c["status"], 0) + c["count"]
print(f"idle ({20} s):  CPU {idle_cpu:.1f} % of one core, RSS {idle_rss:.1f} MiB (VmHWM {idle_hwm:.1f} MiB)")
print(f"load ({duration} s): CPU {load_cpu:.1f} % of one core, RSS mean {load_rss:.1f} MiB, peak sample {load_peak:.1f} MiB, VmHWM {hwm:.1f} MiB")
print(f"load / idle: RSS x{load_rss / idle_rss:.2f}, VmHWM x{hwm / idle_hwm:.2f}")
print(f"answers: {answers}; deliveries by status at the end: {by_status}")
PY
sqlite3 "$WORK/data/gateway.db" 'PRAGMA wal_checkpoint(TRUNCATE)' >/dev/null 2>&1 || true
echo "store: $(du -sk "$WORK/data" | cut -f1) KiB in $WORK/data ($(sqlite3 "$WORK/data/gateway.db" 'SELECT count(*) FROM records') records, $(sqlite3 "$WORK/data/gateway.db" 'SELECT count(*) FROM deliveries') deliveries)"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(free -g | awk '/Mem:/{print $2}') GiB; $(date -u +%F)"

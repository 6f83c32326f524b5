# Shared by the intake benchmarks (sourced, not run): building, the gateway's
# benchmark config, the wrk script, waiting for a port, reading RSS.

# Where cargo puts binaries (CARGO_TARGET_DIR when set, as in a worktree).
BIN_DIR="${CARGO_TARGET_DIR:-target}/release"

ensure_wrk() {
  command -v wrk >/dev/null && return
  (apt-get install -y -qq wrk >/dev/null 2>&1 || sudo apt-get install -y -qq wrk >/dev/null 2>&1) \
    || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }
}

# gateway_config OUT: the example deployment with absolute mapping and policy
# folders and the clients' limits lifted (a benchmark measures the gateway's
# cost, not its 50/s per-client limit). Destinations and routes are as
# shipped: with no registry running, every delivery only backs off.
gateway_config() {
  python3 - "$1" <<'PY'
import re, sys, pathlib
text = pathlib.Path("deploy/gateway.example.toml").read_text()
for folder in ("mappings", "policies"):
    text = text.replace(f'"../{folder}"', '"%s"' % pathlib.Path(folder).resolve())
text = text.replace('file = "locations/', 'file = "%s/' % pathlib.Path("deploy/locations").resolve())
unlimited = "{ rate_per_second = 1000000, burst = 100000, max_concurrent = 100000 }"
text = re.sub(r'(?m)^client_limits = .*$', f'client_limits = {unlimited}', text)
text = re.sub(r'(?m)^(limits = \{ rate_per_second = 50, burst = 100 \})$', f'limits = {unlimited}', text)
pathlib.Path(sys.argv[1]).write_text(text)
PY
}

# wrk_script OUT TAG [RATE]: POSTs the example birth notification, each
# request another child (source_record_id TAG-<thread>-<n>), so neither
# idempotency nor a subject's ordering short-cuts anything. With RATE
# (requests/s for each wrk thread), requests leave on a fixed schedule
# (open loop: a late answer does not push the next request back).
wrk_script() {
  local out=$1 tag=$2 rate=${3:-0}
  local body
  body=$(python3 -c 'import json;r=json.load(open("schemas/examples/birth-notification.json"));r["source_record_id"]="@ID@";print(json.dumps(r))')
  cat >"$out" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer demo-agency-token"
local template = [[$body]]
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("thread_no", threads)
end
local n = 0
request = function()
  n = n + 1
  local body = template:gsub("@ID@", "$tag-" .. thread_no .. "-" .. n)
  return wrk.format(nil, nil, nil, body)
end
local rate = $rate
if rate > 0 then
  local ffi = require("ffi")
  ffi.cdef[[ typedef struct { long tv_sec; long tv_usec; } bench_timeval; int gettimeofday(bench_timeval *tv, void *tz); ]]
  local tv = ffi.new("bench_timeval")
  local function now_ms()
    ffi.C.gettimeofday(tv, nil)
    return tonumber(tv.tv_sec) * 1000 + tonumber(tv.tv_usec) / 1000
  end
  local start, slots = nil, 0
  -- Called before each request: wait until this thread's next slot.
  delay = function()
    local now = now_ms()
    start = start or now
    slots = slots + 1
    local due = start + slots * 1000 / rate
    return math.max(0, math.floor(due - now))
  end
end
LUA
}

# wait_ready URL [PID]: up to 30 s, and not past the death of PID.
wait_ready() {
  for _ in $(seq 150); do
    curl -sf "$1" >/dev/null && return
    [ -z "${2:-}" ] || kill -0 "$2" 2>/dev/null || break
    sleep 0.2
  done
  echo "no answer from $1" >&2; exit 1
}

# rss_mib PID [field]: VmRSS (or VmHWM, the peak) in MiB.
rss_mib() {
  awk -v f="${2:-VmRSS}:" '$1 == f { printf "%.1f", $2 / 1024 }' "/proc/$1/status"
}

# wrk_field FILE: requests/s, p50 ms, p99 ms, non-2xx count, requests, as one line.
wrk_fields() {
  python3 - "$1" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
def ms(label):
    m = re.search(rf"^\s*{label}%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
    value, unit = float(m.group(1)), m.group(2)
    return value * {"us": 0.001, "ms": 1, "s": 1000}[unit]
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
total = int(re.search(r"(\d+) requests in", text).group(1))
bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
errors = re.search(r"Socket errors:.*", text)
print(f"{rps:.0f} {ms(50):.2f} {ms(99):.2f} {int(bad.group(1)) if bad else 0} {total} {'1' if errors else '0'}")
PY
}

load_avg() { cut -d' ' -f1-3 /proc/loadavg; }
machine() { echo "$(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"; }

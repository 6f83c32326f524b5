#!/usr/bin/env bash
# Which shared limiter holds a rate better with several instances asking at
# once: the store's one-row UPDATE or an advisory lock around read-decide-write.
# Each runs CLIENTS connections (the instances) hammering one destination at
# RATE/s with BURST for SECONDS; the report gives admissions and the busiest
# 1 s window (limit: RATE + BURST) and pgbench's transactions per second.
# Needs pgbench and PostgreSQL at $PG (default the test database).
set -euo pipefail
cd "$(dirname "$0")"
PG=${PG:-postgres://postgres@127.0.0.1:5432/test}
CLIENTS=${CLIENTS:-3} SECONDS_=${SECONDS_:-5} RATE=${RATE:-200} BURST=${BURST:-10}
T=$((1000000 / RATE))
psql -q "$PG" -f setup.sql
for how in row advisory; do
  echo "== $how: $CLIENTS clients, ${SECONDS_} s, rate $RATE/s, burst $BURST"
  pgbench -n -c "$CLIENTS" -j "$CLIENTS" -T "$SECONDS_" -D t="$T" -D burst="$BURST" -f "$how.sql" "$PG" \
    | grep -E "^(tps|number of transactions actually|latency average)"
done
psql -q "$PG" -f report.sql
psql -q "$PG" -c "DROP SCHEMA rg_bench_limits CASCADE"

#!/usr/bin/env bash
# What the subject index costs PostgreSQL per accepted record (issue #15):
# the schema before migrations/postgres/0002 (deliveries_by_subject: one
# entry per delivery) against the shipped one (records_by_subject: one per
# record). Each schema is preloaded with PRELOAD records (4 deliveries each),
# then pgbench runs accept.sql on CLIENTS connections for SECONDS, the two
# schemas alternating ROUNDS times after a CHECKPOINT each (so full-page
# images are counted as in production). Reports transactions/s and WAL bytes
# per record (pg_current_wal_lsn before and after: independent of what else
# the machine runs). Needs pgbench and PostgreSQL at $PG (default the test
# database); leaves nothing behind.
set -euo pipefail
cd "$(dirname "$0")"
PG=${PG:-postgres://postgres@127.0.0.1:5432/test}
export PGOPTIONS="-c client_min_messages=warning"
PRELOAD=${PRELOAD:-200000} CLIENTS=${CLIENTS:-4} SECONDS_=${SECONDS_:-10} ROUNDS=${ROUNDS:-2}
MIG=../../migrations/postgres
trap 'psql -q "$PG" -c "DROP SCHEMA IF EXISTS rg_bench_subject_old CASCADE; DROP SCHEMA IF EXISTS rg_bench_subject_new CASCADE" 2>/dev/null' EXIT
setup() { # schema, migrations...
  local schema=$1; shift
  psql -q "$PG" -c "DROP SCHEMA IF EXISTS $schema CASCADE; CREATE SCHEMA $schema"
  for m in "$@"; do PGOPTIONS="$PGOPTIONS -c search_path=$schema" psql -q -v ON_ERROR_STOP=1 "$PG" -f "$m"; done
  PGOPTIONS="$PGOPTIONS -c search_path=$schema" psql -q -v ON_ERROR_STOP=1 "$PG" <<SQL
INSERT INTO records (id, client_id, source, record_type, received_at, request_sha256, canonical, subject)
SELECT 'pre-' || g, 'bench', 'canonical', 'birth-notification', now()::text, sha256(g::text::bytea),
       convert_to(repeat(md5(g::text), 44), 'UTF8'), md5(g::text)
  FROM generate_series(1, $PRELOAD) g;
INSERT INTO deliveries (record_id, route, destination, status, next_attempt_ms, subject)
SELECT 'pre-' || g, v.route, v.route, 'delivered', 0, md5(g::text)
  FROM generate_series(1, $PRELOAD) g,
       (VALUES ('bn-opencrvs'), ('bn-opencrvs-v1'), ('bn-fhir-r4'), ('bn-examplia')) v(route);
ANALYZE records; ANALYZE deliveries;
SQL
}
setup rg_bench_subject_old "$MIG/0001_init.sql"
setup rg_bench_subject_new "$MIG/0001_init.sql" "$MIG/0002_subject_index_on_records.sql"
lsn() { psql -qtA "$PG" -c "SELECT pg_current_wal_lsn()"; }
echo "PostgreSQL $(psql -qtA "$PG" -c 'SHOW server_version'), $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores; preload $PRELOAD records, $CLIENTS clients, ${SECONDS_} s per run"
for round in $(seq "$ROUNDS"); do
  for schema in rg_bench_subject_old rg_bench_subject_new; do
    psql -q "$PG" -c CHECKPOINT
    before=$(lsn)
    n_before=$(psql -qtA "$PG" -c "SELECT count(*) FROM $schema.records")
    tps=$(PGOPTIONS="$PGOPTIONS -c search_path=$schema" pgbench -n -c "$CLIENTS" -j 2 -T "$SECONDS_" -f accept.sql "$PG" \
      | sed -n 's/^tps = \([0-9.]*\).*/\1/p')
    after=$(lsn)
    n=$(( $(psql -qtA "$PG" -c "SELECT count(*) FROM $schema.records") - n_before ))
    wal=$(psql -qtA "$PG" -c "SELECT pg_wal_lsn_diff('$after', '$before')")
    printf '%-22s round %s: %8.0f records/s, %6.0f WAL bytes per record (%s records)\n' \
      "${schema#rg_bench_subject_}" "$round" "$tps" "$(echo "$wal / $n" | bc -l)" "$n"
  done
done

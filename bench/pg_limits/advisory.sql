-- The alternative: an advisory lock per destination held while the instance
-- reads the state, decides, and writes it back (three round trips).
BEGIN;
SELECT pg_advisory_xact_lock(hashtext('rg_bench_limits/advisory'));
SELECT tat_us, (extract(epoch FROM clock_timestamp()) * 1000000)::bigint AS now_us
  FROM rg_bench_limits.pace_cells WHERE destination = 'advisory' \gset
\set next greatest(:tat_us, :now_us) + :t
\if :next - :now_us <= :t * :burst
UPDATE rg_bench_limits.pace_cells SET tat_us = :next WHERE destination = 'advisory';
INSERT INTO rg_bench_limits.admitted (how, at) VALUES ('advisory', clock_timestamp());
\endif
COMMIT;

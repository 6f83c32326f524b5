-- Two ways to share one GCRA schedule between instances, side by side.
DROP SCHEMA IF EXISTS rg_bench_limits CASCADE;
CREATE SCHEMA rg_bench_limits;
SET search_path = rg_bench_limits;
CREATE TABLE pace_cells (destination TEXT PRIMARY KEY, tat_us BIGINT NOT NULL);
INSERT INTO pace_cells VALUES ('row', 0), ('advisory', 0);
CREATE TABLE admitted (how TEXT NOT NULL, at TIMESTAMPTZ NOT NULL);

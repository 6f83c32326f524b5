-- The store's way (src/store/postgres/limits.rs): one conditional UPDATE on
-- the destination's row, on the database's clock. :t = period in µs, :burst.
WITH now AS (SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint AS us),
     taken AS (UPDATE rg_bench_limits.pace_cells SET tat_us = GREATEST(tat_us, now.us) + :t
                 FROM now
                WHERE destination = 'row'
                  AND GREATEST(tat_us, now.us) + :t - now.us <= :t * :burst
            RETURNING 1)
INSERT INTO rg_bench_limits.admitted (how, at) SELECT 'row', clock_timestamp() FROM taken;

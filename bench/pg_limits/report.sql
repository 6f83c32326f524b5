-- Per way: admitted in total, over how long, and the most in any 1 s window.
SET search_path = rg_bench_limits;
SELECT how,
       count(*) AS admitted,
       round(extract(epoch FROM max(at) - min(at))::numeric, 2) AS span_s,
       (SELECT max(n) FROM (SELECT count(*) AS n FROM admitted b
                              JOIN admitted a2 ON a2.how = b.how
                                              AND a2.at >= b.at AND a2.at < b.at + interval '1 second'
                             WHERE b.how = a.how GROUP BY b.at) w) AS busiest_second
  FROM admitted a GROUP BY how ORDER BY how;

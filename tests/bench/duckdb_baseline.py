"""The peer baseline for the benchmark: DuckDB on the same Parquet files with 2 threads.

Two queries:
  aggregates  only the per-unit and per-variant aggregates: event counts and sums per unit
              (one pass over events, no attribution) and units per experiment and variant;
  attributed  the same numbers abreport computes: allocation with first exposure and
              multi-variant exclusion, events counted from the first exposure to the end of the
              report date, then per-variant mean and variance of each metric. Written as fast
              as we could honestly make it: events are read once and aggregated per unit and
              segment (the stretches between a unit's distinct first exposures over its
              experiments) before one join, instead of joining every event to every
              experiment of its unit (17.4 s -> 11.4 s on the 1M-unit benchmark; every number
              equal to 5e-14 relative).

Usage: duckdb_baseline.py DATA_DIR REPORT_DATE aggregates|attributed
"""
import sys
import time

import duckdb

data, report_date, mode = sys.argv[1], sys.argv[2], sys.argv[3]
started = time.perf_counter()
con = duckdb.connect()
con.execute("SET threads = 2")
AGGREGATES = f"""
    WITH per_unit AS (
        SELECT unit_id,
               count(*) FILTER (WHERE event = 'purchase') AS purchases,
               sum(value) FILTER (WHERE event = 'purchase' AND isfinite(value)) AS revenue,
               count(*) FILTER (WHERE event = 'page_view') AS page_views,
               count(*) FILTER (WHERE event = 'error') AS errors
        FROM read_parquet('{data}/events/*/*.parquet')
        GROUP BY unit_id
    ),
    per_variant AS (
        SELECT experiment_id, variant, count(DISTINCT unit_id) AS units
        FROM read_parquet('{data}/exposures/*/*.parquet')
        GROUP BY experiment_id, variant
    )
    SELECT (SELECT count(*) FROM per_unit), (SELECT sum(purchases) FROM per_unit), experiment_id, variant, units
    FROM per_variant ORDER BY experiment_id, variant
"""
ATTRIBUTED = f"""
    WITH exposures AS (
        SELECT experiment_id, unit_id, min(ts) AS first_ts, count(DISTINCT variant) AS n_variants,
               any_value(variant) AS variant
        FROM read_parquet('{data}/exposures/*/*.parquet')
        GROUP BY experiment_id, unit_id
    ),
    allocated AS (SELECT * FROM exposures WHERE n_variants = 1),
    -- each unit's distinct first exposures over its experiments, in time order (the cut points)
    cuts AS (
        SELECT unit_id, list(DISTINCT first_ts ORDER BY first_ts) AS cuts
        FROM allocated GROUP BY unit_id
    ),
    -- events aggregated per unit and segment (segment k: from the k-th cut to the next), once
    segments AS (
        SELECT e.unit_id,
               len(list_filter(c.cuts, lambda x: x <= e.ts)) AS segment,
               count(*) FILTER (WHERE e.event = 'purchase') AS purchases,
               sum(e.value) FILTER (WHERE e.event = 'purchase' AND isfinite(e.value)) AS revenue,
               count(*) FILTER (WHERE e.event = 'page_view') AS page_views,
               count(*) FILTER (WHERE e.event = 'error') AS errors
        FROM read_parquet('{data}/events/*/*.parquet') e
        JOIN cuts c ON c.unit_id = e.unit_id
        WHERE e.event IN ('purchase', 'page_view', 'error')
          AND e.ts >= c.cuts[1] AND e.ts < DATE '{report_date}' + INTERVAL 1 DAY
        GROUP BY ALL
    ),
    -- an experiment counts the segments from its own first exposure on
    counted AS (
        SELECT a.experiment_id, a.unit_id,
               sum(s.purchases) AS purchases, coalesce(sum(s.revenue), 0) AS revenue,
               sum(s.page_views) AS page_views, sum(s.errors) AS errors
        FROM allocated a
        JOIN cuts c USING (unit_id)
        JOIN segments s ON s.unit_id = a.unit_id AND s.segment >= list_position(c.cuts, a.first_ts)
        GROUP BY a.experiment_id, a.unit_id
    ),
    units AS (
        SELECT a.experiment_id, a.variant,
               CASE WHEN coalesce(c.purchases, 0) > 0 THEN 1.0 ELSE 0.0 END AS conversion,
               coalesce(c.revenue, 0) AS revenue,
               coalesce(c.purchases, 0) AS orders,
               coalesce(c.page_views, 0) AS page_views,
               CASE WHEN coalesce(c.errors, 0) > 0 THEN 1.0 ELSE 0.0 END AS error_rate
        FROM allocated a LEFT JOIN counted c USING (experiment_id, unit_id)
    )
    SELECT experiment_id, variant, count(*) AS units,
           avg(conversion), var_samp(conversion), avg(revenue), var_samp(revenue),
           sum(revenue) / sum(orders), covar_samp(revenue, orders), var_samp(orders),
           avg(page_views), var_samp(page_views), avg(error_rate), var_samp(error_rate)
    FROM units GROUP BY experiment_id, variant ORDER BY experiment_id, variant
"""
rows = con.execute(AGGREGATES if mode == "aggregates" else ATTRIBUTED).fetchall()
elapsed = time.perf_counter() - started
print(f"duckdb {duckdb.__version__} ({mode}): {len(rows)} rows in {elapsed:.3f} s", file=sys.stderr)
for row in rows[:2]:
    print(row[:5], file=sys.stderr)

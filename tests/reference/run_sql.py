"""Runs SQL queries in DuckDB and writes each result as one Parquet file: how the engine tests
(tests/it/engines.rs) execute what `abreport sql --dialect duckdb` prints, and the per-unit
queries, on a real engine. (Spark runs the Spark dialect through `abreport run --engine spark`
itself: tests/it/spark_engine.rs.)

    python run_sql.py --engine duckdb --sql QUERY.sql --out RESULT.parquet
    python run_sql.py --engine duckdb --batch RUNS.json    # [{"sql": ..., "out": ...}, ...]

A batch runs in one session. The session's time zone is UTC, as the pipeline's engines set it:
the queries compare timestamps as integer microseconds.
"""

import argparse
import json
import os


class DuckDb:
    def __init__(self):
        import duckdb

        self.con = duckdb.connect()
        self.con.execute("SET TimeZone = 'UTC'")
        self.con.execute("SET threads = 2")

    def run(self, query, out):
        path = out.replace("'", "''")
        self.con.execute(f"COPY ({query}) TO '{path}' (FORMAT parquet)")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--engine", choices=["duckdb"], default="duckdb")
    parser.add_argument("--sql")
    parser.add_argument("--out")
    parser.add_argument("--batch")
    args = parser.parse_args()
    if args.batch:
        with open(args.batch, encoding="utf-8") as f:
            runs = [(r["sql"], r["out"]) for r in json.load(f)]
    elif args.sql and args.out:
        runs = [(args.sql, args.out)]
    else:
        parser.error("give --sql and --out, or --batch")
    engine = DuckDb()
    for sql, out in runs:
        with open(sql, encoding="utf-8") as f:
            query = f.read().strip().rstrip(";")
        os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
        try:
            engine.run(query, out)
        except Exception as e:
            raise SystemExit(f"{sql}: {e}")


if __name__ == "__main__":
    main()

"""Runs SQL queries and writes each result as one Parquet file: how the engine tests
(tests/it/engines.rs) execute what `abreport sql` prints, and the per-unit queries, on a real
engine.

    python run_sql.py --engine duckdb|spark --sql QUERY.sql --out RESULT.parquet
    python run_sql.py --engine duckdb|spark --batch RUNS.json    # [{"sql": ..., "out": ...}, ...]

A batch runs in one session (Spark takes seconds to start). The session's time zone is UTC, as
the pipeline's engines set it: the queries compare timestamps as integer microseconds, and
Spark's `unix_micros` of a TIMESTAMP_NTZ reads it in the session zone. Spark runs in local mode
and its results are collected as Arrow and written here, so both engines hand over one file.
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


class Spark:
    def __init__(self):
        from pyspark.sql import SparkSession

        self.spark = (
            SparkSession.builder.master("local[2]")
            .appName("abreport engine tests")
            .config("spark.sql.session.timeZone", "UTC")
            .config("spark.driver.extraJavaOptions", "-Duser.timezone=UTC")
            .config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false")
            .config("spark.sql.shuffle.partitions", "2")
            .getOrCreate()
        )
        self.spark.sparkContext.setLogLevel("ERROR")

    def run(self, query, out):
        import pyarrow.parquet as pq

        pq.write_table(self.spark.sql(query).toArrow(), out)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--engine", choices=["duckdb", "spark"], default="duckdb")
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
    engine = DuckDb() if args.engine == "duckdb" else Spark()
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

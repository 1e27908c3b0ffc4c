"""Runs one SQL query in DuckDB and writes its result as Parquet: how the engine tests
(tests/it/engines.rs) execute what `abreport sql --dialect duckdb` prints, and the per-unit
queries, on a real engine.

    python run_sql.py --sql QUERY.sql --out RESULT.parquet

The session's time zone is set to UTC first, as the pipeline's engines do (the query itself
compares timestamps as integer microseconds and does not depend on it).
"""

import argparse
import os

import duckdb


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--sql", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    with open(args.sql, encoding="utf-8") as f:
        query = f.read().strip().rstrip(";")
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET threads = 2")
    out = args.out.replace("'", "''")
    con.execute(f"COPY ({query}) TO '{out}' (FORMAT parquet)")


if __name__ == "__main__":
    main()

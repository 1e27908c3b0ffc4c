#!/usr/bin/env bash
# Benchmark: a full `abreport run` (release build) on 1M units / ~20M events over 7 days and
# 5 experiments (string unit ids, zstd Parquet, 4 files per day), beside DuckDB computing only
# the per-unit and per-variant aggregates on the same files with 2 threads.
# Prints the median wall time and peak RSS of each, and the ratio.
#
#   tests/bench/run.sh                 # defaults: UNITS=1000000 RUNS=5
#   UNITS=200000 RUNS=3 tests/bench/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

units=${UNITS:-1000000}
runs=${RUNS:-5}
date=2026-11-20
data=target/bench-data-$units

cargo build --release --quiet
if [ ! -f "$data/.complete" ]; then
  rm -rf "$data"
  target/release/abreport generate --out "$data" --units "$units" --days 7 --files-per-day 4 \
    --experiments 5 --effect 0.02 --page-views-per-day 8 --end-date "$date" --seed 42
  touch "$data/.complete"
fi

venv=target/bench-venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check duckdb==2.0.1
fi

measure() { # label, command...: one line "seconds peak_kib" per run
  local label=$1; shift
  for _ in $(seq "$runs"); do
    /usr/bin/time -f "%e %M" -o target/bench-time.txt "$@" > /dev/null 2> target/bench-stderr.txt \
      || { cat target/bench-stderr.txt; exit 1; }
    cat target/bench-time.txt
  done | sort -n > "target/bench-$label.txt"
}

median() { sed -n "$(( (runs + 1) / 2 ))p" "$1"; }

# Warm the page cache once, so both tools read from memory.
cat "$data"/exposures/*/*.parquet "$data"/events/*/*.parquet > /dev/null

measure abreport target/release/abreport run --job "$data/job.toml" --date "$date" --out target/bench-out --no-deliver
measure duckdb "$venv/bin/python" tests/bench/duckdb_baseline.py "$data" "$date"

read -r a_s a_kib < <(median target/bench-abreport.txt)
read -r d_s d_kib < <(median target/bench-duckdb.txt)
peak_a=$(sort -k2 -n target/bench-abreport.txt | tail -1 | cut -d' ' -f2)
peak_d=$(sort -k2 -n target/bench-duckdb.txt | tail -1 | cut -d' ' -f2)
events=$(target/release/abreport run --job "$data/job.toml" --date "$date" --out target/bench-out --no-deliver | head -1)
echo "dataset: $units units, $(du -sh "$data" | cut -f1) on disk; $events"
echo "machine: $(nproc) cores, $(uname -m)"
printf 'abreport run: median %.2f s over %d runs, peak RSS %d MiB\n' "$a_s" "$runs" $((peak_a / 1024))
printf 'duckdb (2 threads, aggregates only): median %.2f s, peak RSS %d MiB\n' "$d_s" $((peak_d / 1024))
awk -v a="$a_s" -v d="$d_s" 'BEGIN { printf "ratio abreport/duckdb: %.2f (below 1 means abreport is faster)\n", a / d }'

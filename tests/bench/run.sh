#!/usr/bin/env bash
# Benchmark: a full `abreport run` (release build: read, attribute, test, decide, render,
# encode and write every export) on 1M units / ~20M events over 7 days and 5 experiments
# (string unit ids, zstd Parquet, 4 files per day, rows in time order), beside DuckDB on the
# same files with 2 threads computing (a) only per-unit and per-variant aggregates and (b) the
# same attributed per-variant numbers abreport computes.
# Beside them, the daily incremental run: `abreport run` for the same date going on from the
# checkpoint of the day before (written once by a full run of that date, and restored before
# each timed run), which reads the last day's partitions (and the old event partitions its
# new units' CUPED lookback needs) instead of the whole window. The full run is `--full`; both
# write the next checkpoint, as a scheduled run does.
# Beside them, the decode floor: `abreport scan` lists the same window and reads and decodes the
# same columns of the same files with the same reader and concurrency, without folding them; the
# full run's ratio to it is what the fold, the statistics and the exports cost.
# Prints the median wall time and peak RSS of each, and the ratios. The contenders take turns
# (one run of each per round), so that the host's drifting load weighs on all of them alike.
# With SPARK=1 it adds `abreport run --engine spark`: the same run computed by a Spark Connect
# server in local[2] mode on this machine (tests/servers/spark_connect.sh, pyspark from PyPI,
# Java 17), on the same files, per-unit exports written by Spark. It shows the engine's
# overhead on one machine, not a cluster's speed; its peak RSS is abreport's plus the JVM's.
#
#   tests/bench/run.sh                 # defaults: UNITS=1000000 RUNS=5
#   UNITS=200000 RUNS=3 tests/bench/run.sh
#   SPARK=1 tests/bench/run.sh        # one Spark run by default (SPARK_RUNS=N for more): it takes minutes
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
if [ ! -f "$venv/.installed-duckdb-2.0.1" ]; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check duckdb==2.0.1
  touch "$venv/.installed-duckdb-2.0.1"
fi

once() { # label, command...: appends one run's "seconds peak_kib" to target/bench-<label>.txt
  local label=$1; shift
  if [ -n "${SETUP:-}" ]; then eval "$SETUP"; fi
  /usr/bin/time -f "%e %M" -o target/bench-time.txt "$@" > /dev/null 2> target/bench-stderr.txt \
    || { cat target/bench-stderr.txt; exit 1; }
  cat target/bench-time.txt >> "target/bench-$label.txt"
}

measure() { # label, command...: $runs runs in a row, sorted
  local label=$1; shift
  : > "target/bench-$label.txt"
  for _ in $(seq "$runs"); do once "$label" "$@"; done
  sort -n -o "target/bench-$label.txt" "target/bench-$label.txt"
}

median() { sed -n "$(( (runs + 1) / 2 ))p" "$1"; }

# Warm the page cache once, so both tools read from memory.
cat "$data"/data/exposures/*/*.parquet "$data"/data/events/*/*.parquet > /dev/null

labels="abreport abreport-incremental decode-floor duckdb-aggregates duckdb-attributed"
if [ "${SPARK:-0}" = 1 ]; then
  # Spark from the test venv's pyspark (tests/run.sh installs it), started once, stopped on exit.
  if [ ! -x target/test-venv/bin/python ] || ! target/test-venv/bin/python -c 'import pyspark' 2>/dev/null; then
    python3 -m venv target/test-venv
    target/test-venv/bin/pip install --quiet --disable-pip-version-check -r tests/reference/requirements.txt
  fi
  trap 'tests/servers/spark_connect.sh stop' EXIT
  # 4 GiB for the JVM: with the tests' 1 GiB it spills to disk, which measures the setting.
  spark_remote=$(SPARK_DRIVER_MEMORY=4g tests/servers/spark_connect.sh start)
  # A run on Spark may take longer than the job's 60 s SLA on one machine: the benchmark times it.
  sed 's/^sla_seconds = .*/sla_seconds = 3600/' "$data/job.toml" > "$data/job-spark.toml"
  spark_job=(target/release/abreport run --job "$data/job-spark.toml" --date "$date" --out target/bench-out-spark
    --no-deliver --engine spark --spark-remote "$spark_remote" --spark-output "$PWD/target/bench-spark-units")
  runs=${SPARK_RUNS:-1} measure spark "${spark_job[@]}"
  # The same SQL (DuckDB's dialect) in DuckDB: what a warehouse user's scheduled query costs here.
  target/release/abreport sql --job "$data/job.toml" --date "$date" --dialect duckdb > target/bench-sql.sql
  runs=${SPARK_RUNS:-1} measure duckdb-sql "$venv/bin/python" tests/reference/run_sql.py --engine duckdb \
    --sql target/bench-sql.sql --out target/bench-sql.parquet
  spark_pid=$(cat target/spark-connect/pids/*.pid)
  spark_jvm_kib=$(awk '/VmHWM/ { print $2 }' "/proc/$spark_pid/status")
  labels="$labels spark duckdb-sql"
fi

# The timed runs get an SLA of an hour: past ~5M units a full run outgrows the job's 60 s on 2
# cores, and the benchmark times it rather than stopping it.
sed 's/^sla_seconds = .*/sla_seconds = 3600/' "$data/job.toml" > "$data/job-bench.toml"
# The checkpoint of the day before, made once by a full run of that date.
previous=$(date -d "$date - 1 day" +%F)
incr_out=target/bench-out-incremental
checkpoint=$incr_out/ledger/.checkpoints/generated/state.abrckpt
rm -rf "$incr_out"
target/release/abreport run --job "$data/job-bench.toml" --date "$previous" --out "$incr_out" --no-deliver --full > /dev/null
cp "$checkpoint" target/bench-checkpoint-previous.abrckpt
# Round after round, each round one run of every contender, so that a shared host's load,
# which drifts over minutes, weighs on all of them alike.
timed="abreport decode-floor abreport-incremental duckdb-aggregates duckdb-attributed"
for label in $timed; do : > "target/bench-$label.txt"; done
for _ in $(seq "$runs"); do
  once abreport target/release/abreport run --job "$data/job-bench.toml" --date "$date" --out target/bench-out --no-deliver --full
  once decode-floor target/release/abreport scan --job "$data/job-bench.toml" --date "$date"
  SETUP="cp target/bench-checkpoint-previous.abrckpt $checkpoint" once abreport-incremental \
    target/release/abreport run --job "$data/job-bench.toml" --date "$date" --out "$incr_out" --no-deliver
  once duckdb-aggregates "$venv/bin/python" tests/bench/duckdb_baseline.py "$data/data" "$date" aggregates
  once duckdb-attributed "$venv/bin/python" tests/bench/duckdb_baseline.py "$data/data" "$date" attributed
done
for label in $timed; do sort -n -o "target/bench-$label.txt" "target/bench-$label.txt"; done
grep -h '"stage":"checkpoint' "$incr_out"/exp-1/run.log.jsonl > target/bench-incremental-log.txt || true

summary=$(target/release/abreport run --job "$data/job-bench.toml" --date "$date" --out target/bench-out --no-deliver --full | head -1)
echo "dataset: $units units, $(du -sh "$data/data" | cut -f1) of Parquet; $summary"
echo "machine: $(nproc) cores, $(uname -m), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
read -r a_s _ < <(median target/bench-abreport.txt)
for label in $labels; do
  n=$runs
  case $label in spark | duckdb-sql) n=${SPARK_RUNS:-1} ;; esac
  read -r s _ < <(runs=$n median "target/bench-$label.txt")
  peak=$(sort -k2 -n "target/bench-$label.txt" | tail -1 | cut -d' ' -f2)
  [ "$label" = spark ] && peak=$((peak + spark_jvm_kib))
  awk -v l="$label" -v s="$s" -v p="$peak" -v a="$a_s" -v n="$n" \
    'BEGIN { printf "%-20s median %6.2f s over %d runs, peak RSS %5d MiB, abreport/this %.2f\n", l, s, n, p / 1024, a / s }'
done
read -r floor_s _ < <(median target/bench-decode-floor.txt)
awk -v a="$a_s" -v f="$floor_s" 'BEGIN { printf "full run / decode floor: %.2f\n", a / f }'
ckpt_bytes=$(stat -c %s target/bench-checkpoint-previous.abrckpt)
echo "checkpoint: $((ckpt_bytes / 1048576)) MiB; the last incremental run's stages (seconds):"
python3 -c '
import json, sys
record = json.load(open(sys.argv[1]))
print("  " + ", ".join("%s %.2f" % (s["stage"], s["seconds"]) for s in record["stages"]))
' "$incr_out/ledger/generated/$date.json"
sed 's/^/  /' target/bench-incremental-log.txt | cut -c1-400

#!/usr/bin/env bash
# A real Spark Connect server on loopback for the tests, from the pyspark package of the test
# venv (its jars, with Spark Connect's, and sbin/spark-daemon.sh; Java 17 runs it). pyspark 4.2
# ships no start-connect-server.sh, so this does what that script does: spark-daemon.sh submits
# the server's class, daemonized, with a pid file. tests/run.sh starts one before `cargo test`
# and stops it on exit, so every test process shares it: Spark takes seconds to start.
#
#   tests/servers/spark_connect.sh start   prints the server's `sc://127.0.0.1:<port>` URL
#   tests/servers/spark_connect.sh stop
#
# SPARK_DRIVER_MEMORY (default 1g) sizes its one JVM. Its logs, pid file and warehouse live under
# target/spark-connect/. The session time zone is
# UTC, as abreport's day boundaries are. Shuffles get 4 partitions, as suits local[2] and the
# tests' small data (Spark's default, 200, made each query of the engine tests ~60% slower).
set -euo pipefail
cd "$(dirname "$0")/../.."

venv=${ABREPORT_TEST_VENV:-target/test-venv}
state=$PWD/target/spark-connect
start_timeout_seconds=120

SPARK_HOME=$("$venv/bin/python" -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))')
export SPARK_HOME
export SPARK_LOG_DIR=$state/logs SPARK_PID_DIR=$state/pids SPARK_IDENT_STRING=abreport-tests
server_class=org.apache.spark.sql.connect.service.SparkConnectServer
stop_server() {
  "$SPARK_HOME/sbin/spark-daemon.sh" stop "$server_class" 1 >/dev/null 2>&1 || true
}

case "${1:-}" in
  start)
    if ! command -v java >/dev/null; then
      echo "tests/servers/spark_connect.sh: installing Java 17 (Debian's openjdk-17-jre-headless)" >&2
      apt-get update -qq >&2 && apt-get install -y -qq openjdk-17-jre-headless >&2
    fi
    # a server left by an interrupted run holds the pid file; stop it first
    stop_server
    rm -rf "$SPARK_LOG_DIR"
    mkdir -p "$SPARK_LOG_DIR" "$SPARK_PID_DIR" "$state/work"
    port=$("$venv/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    # from its own folder, so that nothing Spark writes beside it lands in the repository
    (cd "$state/work" && "$SPARK_HOME/sbin/spark-daemon.sh" submit "$server_class" 1 \
      --name "Spark Connect server" --master 'local[2]' --driver-memory "${SPARK_DRIVER_MEMORY:-1g}" \
      --conf spark.connect.grpc.binding.address=127.0.0.1 \
      --conf "spark.connect.grpc.binding.port=$port" \
      --conf spark.ui.enabled=false \
      --conf spark.sql.session.timeZone=UTC \
      --conf spark.sql.shuffle.partitions=4 \
      --conf "spark.sql.warehouse.dir=$state/work/warehouse" \
      --conf "spark.driver.extraJavaOptions=-Duser.timezone=UTC" >"$SPARK_LOG_DIR/start.log" 2>&1)
    for _ in $(seq "$start_timeout_seconds"); do
      if grep -qs 'Spark Connect server started' "$SPARK_LOG_DIR"/*.out; then
        echo "sc://127.0.0.1:$port"
        exit 0
      fi
      if ! grep -qs . "$SPARK_PID_DIR"/*.pid || ! kill -0 "$(cat "$SPARK_PID_DIR"/*.pid)" 2>/dev/null; then
        break
      fi
      sleep 1
    done
    echo "tests/servers/spark_connect.sh: the Spark Connect server did not start within ${start_timeout_seconds} s; its log:" >&2
    tail -n 40 "$SPARK_LOG_DIR"/*.out "$SPARK_LOG_DIR/start.log" >&2 || true
    stop_server
    exit 1
    ;;
  stop)
    stop_server
    ;;
  *)
    echo "usage: $0 start|stop" >&2
    exit 2
    ;;
esac

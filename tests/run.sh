#!/usr/bin/env bash
# The test command: installs what the tests need (Python reference packages, test servers and
# pyspark in a virtualenv under target/, Azurite with npm under target/), starts a Spark Connect
# server, then runs every test. Works on a fresh clone; re-runs reuse the installs.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=target/test-venv
requirements=tests/reference/requirements.txt
stamp="$venv/.installed-$(sha256sum "$requirements" | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "tests/run.sh: installing the reference packages into $venv"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
  touch "$stamp"
fi
export ABREPORT_TEST_PYTHON="$PWD/$venv/bin/python"

# Azurite, the Azure Blob Storage emulator the az:// tests start on loopback (tests/servers/).
azurite_version=3.35.0
npm_dir=target/test-npm
if [ ! -f "$npm_dir/.installed-azurite-$azurite_version" ]; then
  echo "tests/run.sh: installing azurite $azurite_version into $npm_dir"
  rm -rf "$npm_dir"
  mkdir -p "$npm_dir"
  npm install --prefix "$npm_dir" --no-audit --no-fund --loglevel=error "azurite@$azurite_version"
  touch "$npm_dir/.installed-azurite-$azurite_version"
fi
export ABREPORT_TEST_AZURITE="$PWD/$npm_dir/node_modules/.bin/azurite-blob"

# A Spark Connect server on loopback (Spark from the venv's pyspark, in local mode), started once
# so that every test process shares it, and stopped however the tests end.
trap 'tests/servers/spark_connect.sh stop' EXIT
spark_started=$(date +%s)
ABREPORT_TEST_SPARK_REMOTE=$(tests/servers/spark_connect.sh start)
export ABREPORT_TEST_SPARK_REMOTE
echo "tests/run.sh: Spark Connect server at $ABREPORT_TEST_SPARK_REMOTE (up in $(($(date +%s) - spark_started)) s)"

cargo test --all-targets "$@"

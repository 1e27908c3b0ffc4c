#!/usr/bin/env bash
# The test command: installs what the tests need (Python reference packages, test servers and
# pyspark in a virtualenv under target/, Azurite and playwright-core with npm under target/,
# Debian's chromium when missing), starts a Spark Connect server, then runs every test. Works on
# a fresh clone; re-runs reuse the installs.
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

# npm_package NAME VERSION PREFIX: NAME@VERSION installed under PREFIX, once (a stamp says so).
npm_package() {
  local name=$1 version=$2 prefix=$3
  if [ ! -f "$prefix/.installed-$name-$version" ]; then
    echo "tests/run.sh: installing $name $version into $prefix"
    rm -rf "$prefix"
    mkdir -p "$prefix"
    npm install --prefix "$prefix" --no-audit --no-fund --loglevel=error "$name@$version"
    touch "$prefix/.installed-$name-$version"
  fi
}

# Azurite, the Azure Blob Storage emulator the az:// tests start on loopback (tests/servers/).
npm_dir=target/test-npm
npm_package azurite 3.35.0 "$npm_dir"
export ABREPORT_TEST_AZURITE="$PWD/$npm_dir/node_modules/.bin/azurite-blob"

# Headless Chromium for tests/it/browser.rs: Debian's package, installed when missing (as root,
# or through sudo when it is there), driven by playwright-core (in its own prefix under
# target/test-npm, pinned) through tests/browser/check.mjs.
if [ ! -x /usr/bin/chromium ]; then
  echo "tests/run.sh: installing Debian's chromium"
  if [ "$(id -u)" -eq 0 ]; then
    as_root=()
  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    as_root=(sudo)
  else
    echo "tests/run.sh: /usr/bin/chromium is missing and cannot be installed (not root, no sudo): run 'apt-get install -y chromium' as root" >&2
    exit 1
  fi
  "${as_root[@]}" apt-get update -qq
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=600 chromium
fi
npm_package playwright-core 1.65.2 "$npm_dir/playwright"
export ABREPORT_TEST_PLAYWRIGHT="$PWD/$npm_dir/playwright/node_modules/playwright-core"

# A Spark Connect server on loopback (Spark from the venv's pyspark, in local mode), started once
# so that every test process shares it, and stopped however the tests end.
trap 'tests/servers/spark_connect.sh stop' EXIT
spark_started=$(date +%s)
ABREPORT_TEST_SPARK_REMOTE=$(tests/servers/spark_connect.sh start)
export ABREPORT_TEST_SPARK_REMOTE
echo "tests/run.sh: Spark Connect server at $ABREPORT_TEST_SPARK_REMOTE (up in $(($(date +%s) - spark_started)) s)"

cargo test --all-targets "$@"

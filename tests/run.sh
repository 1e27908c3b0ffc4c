#!/usr/bin/env bash
# The test command: installs what the tests need (Python reference packages in a virtualenv
# under target/), then runs every test. Works on a fresh clone; re-runs reuse the venv.
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

cargo test --all-targets "$@"

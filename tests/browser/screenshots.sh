#!/usr/bin/env bash
# Screenshots of the demo's four reports, whole pages, as headless Chromium shows them at a
# phone's width and a laptop's: docs/screenshots/<experiment>-390.png and -1280.png.
# Builds abreport, runs `abreport demo` in a temporary folder, then tests/browser/check.mjs
# (which also prints what it found wrong on each page). Needs /usr/bin/chromium and
# playwright-core: tests/run.sh installs both.
set -euo pipefail
cd "$(dirname "$0")/../.."

export ABREPORT_TEST_PLAYWRIGHT="${ABREPORT_TEST_PLAYWRIGHT:-$PWD/target/test-npm/playwright/node_modules/playwright-core}"
if [ ! -f "$ABREPORT_TEST_PLAYWRIGHT/index.mjs" ]; then
  echo "screenshots.sh: no playwright-core at $ABREPORT_TEST_PLAYWRIGHT: run tests/run.sh once (it installs it)" >&2
  exit 1
fi

cargo build --quiet
demo=$(mktemp -d)
trap 'rm -rf "$demo"' EXIT
target/debug/abreport demo --out "$demo" >/dev/null

mkdir -p docs/screenshots
args=()
for experiment in checkout-redesign new-recommendations search-ranking-v2 pricing-page; do
  for width in 390 1280; do
    args+=(--page "$demo/reports/$experiment/report.html" --width "$width"
      --screenshot "docs/screenshots/$experiment-$width.png")
  done
done
node tests/browser/check.mjs "${args[@]}" > "$demo/checked.json"
node -e '
  for (const page of JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"))) {
    const problems = page.overflowing.length + page.console.length + page.page_errors.length + page.requests.length;
    console.log(`${page.screenshot}: ${problems === 0 ? "ok" : problems + " problems (see tests/it/browser.rs)"}`);
  }' "$demo/checked.json"

#!/usr/bin/env bash
# `npm run test:pressure [-- RUNS]`: the whole suite (npm test's runner) RUNS times in a row (default 3)
# while stress-ng keeps every core busy at normal priority, as a loaded cluster node would be. The hog
# runs as another job would: its own session (setsid), so its own autogroup. Not part of `npm test`.
# Prints each run's summary and ends with the total "N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
bash scripts/deps.sh test
npm run --silent build # the device tests run bin/lunlink.js from dist/
if ! command -v stress-ng >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends stress-ng >/dev/null
fi
# Bounded even if this script is killed without its trap: HOG_LIMIT_S per run.
HOG_LIMIT_S=1800
setsid stress-ng --cpu "$(nproc)" --timeout "$((runs * HOG_LIMIT_S))s" --quiet &
hog=$!
trap 'kill -TERM -- "-$hog" 2>/dev/null || true' EXIT
passed=0 failed=0
for i in $(seq 1 "$runs"); do
  log=$(mktemp /var/tmp/lunlink-pressure.XXXXXX)
  node scripts/test.mjs >"$log" 2>&1 || true
  grep '^not ok' "$log" || true
  line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1 || echo "0 passed, 1 failed")
  echo "run $i of $runs under stress-ng --cpu $(nproc) (load $(cut -d' ' -f1-3 /proc/loadavg)): $line"
  read -r p _ f _ <<<"$line"
  passed=$((passed + p)) failed=$((failed + f))
  if [ "$f" -eq 0 ]; then rm -f "$log"; else echo "  full output of run $i: $log"; fi
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]

#!/usr/bin/env bash
# Runs every addon entry point (test/native/exercise.mjs) under valgrind memcheck; exits non-zero on
# any error in lunlink's code. Run after each change to addon/ (`npm run valgrind`).
# Twice: in the host's namespace (TUN open/close, MTU, up/down only: no address, no traffic), then
# inside a throwaway network namespace (llt-vg-*, deleted on exit) where the TUN gets an address from
# 198.18.0.0/15 and carries traffic, so the reader thread runs under valgrind too.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { apt-get update -qq && apt-get install -y -qq valgrind >/dev/null; }
npm run --silent build
vg=(valgrind --error-exitcode=9 --leak-check=no --suppressions=test/native/node.supp node --expose-gc test/native/exercise.mjs)
"${vg[@]}"
ns="llt-vg-$$"
ip netns add "$ns"
trap 'for p in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done; ip netns del "$ns" 2>/dev/null || true' EXIT
ip -n "$ns" link set lo up
ip netns exec "$ns" env LUNLINK_EXERCISE_NETNS=1 "${vg[@]}"

#!/usr/bin/env bash
# AddressSanitizer + UndefinedBehaviorSanitizer run of the native addon (`npm run asan`), beside
# scripts/valgrind.sh. Builds addon/ with -fsanitize=address,undefined in a throwaway directory (the
# normal build/Release is untouched), points lib/io at it (LUNLINK_ADDON) and runs, with gcc's libasan
# preloaded into node (node itself is not instrumented; detect_leaks=0 because node's own allocations
# at exit are not ours):
#   1. test/native/exercise.mjs (every addon entry point),
#   2. the unit tests that touch the addon,
#   3. the device tests that touch the addon (serialized on /var/tmp/lunlink-device.lock).
# Any ASan or UBSan report aborts the process, so a clean run is exit status 0.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
gyp="${npm_config_node_gyp:-$(npm root -g)/npm/node_modules/node-gyp/bin/node-gyp.js}"
nodedir="$(npm config get nodedir)"
libasan="$(gcc -print-file-name=libasan.so)"
[ -e "$libasan" ] || { echo "asan.sh: gcc's libasan.so not found" >&2; exit 2; }

work="$(mktemp -d /var/tmp/lunlink-asan.XXXXXX)"
trap '[ -n "${ASAN_KEEP:-}" ] || rm -rf "$work"' EXIT
cp -r addon binding.gyp package.json "$work/"
ln -s "$root/node_modules" "$work/node_modules"
sanitize="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -g"
(
  cd "$work"
  args=(rebuild)
  [ -n "$nodedir" ] && [ "$nodedir" != "undefined" ] && [ "$nodedir" != "null" ] && args+=("--nodedir=$nodedir")
  CXXFLAGS="$sanitize" LDFLAGS="-fsanitize=address,undefined" node "$gyp" "${args[@]}" >"$work/build.log" 2>&1 \
    || { cat "$work/build.log" >&2; exit 1; }
)
export LUNLINK_ADDON="$work/build/Release/lunlink.node"
[ "$(nm -D "$LUNLINK_ADDON" | grep -c __asan_init)" -gt 0 ] || { echo "asan.sh: the addon was not built with ASan" >&2; exit 1; }
npm run --silent build

export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:halt_on_error=1:detect_stack_use_after_return=0"
export UBSAN_OPTIONS="halt_on_error=1:abort_on_error=1:print_stacktrace=1"
asan() { LD_PRELOAD="$libasan" "$@"; }
# Tools the test helpers run inherit the preload too; pgrep (procps) hangs under it, so it runs clean.
mkdir -p "$work/bin"
printf '#!/bin/sh\nunset LD_PRELOAD\nexec %s "$@"\n' "$(command -v pgrep)" >"$work/bin/pgrep"
chmod +x "$work/bin/pgrep"
export PATH="$work/bin:$PATH"

echo "== exercise.mjs (host namespace, then with TUN traffic inside a throwaway one, as valgrind.sh)"
lock=/var/tmp/lunlink-device.lock  # the exercise opens TUN devices: serialized like the device tests
asan flock "$lock" node --expose-gc test/native/exercise.mjs
ns="llt-asan-$$"
ip netns add "$ns"
trap 'for p in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done; ip netns del "$ns" 2>/dev/null || true; [ -n "${ASAN_KEEP:-}" ] || rm -rf "$work"' EXIT
ip -n "$ns" link set lo up
flock "$lock" ip netns exec "$ns" env LUNLINK_EXERCISE_NETNS=1 LD_PRELOAD="$libasan" node --expose-gc test/native/exercise.mjs
echo "== unit tests touching the addon"
asan npx ava --config ava.config.js test/unit/volume-file.test.ts test/unit/volume-ownership.test.ts test/unit/link-seal.test.ts \
  test/unit/deadlines.test.ts test/unit/volume-engine.test.ts test/unit/udp-path.test.ts test/unit/record-cipher-compat.test.ts \
  test/unit/service-notify.test.ts test/unit/udp-held.test.ts test/unit/poll-standby.test.ts test/unit/tun-offload.test.ts
echo "== device tests touching the addon"
asan flock "$lock" npx ava --config ava.device.config.js test/device/loop.test.ts test/device/faults.test.ts \
  test/device/volume-stall-ownership.test.ts test/device/tun.test.ts test/device/addon-tun-slots.test.ts test/device/tun-offload.test.ts
echo "asan.sh: clean"

#!/usr/bin/env bash
# Prebuilt addon binaries for the npm package (`npm pack` / `npm publish` run it as prepack): N-API,
# so one binary per platform serves every Node.js >= 20 (lib/io/native.ts loads it through
# node-gyp-build when there is no local build/Release). Builds in a scratch copy, so the working
# tree's build/Release is untouched, and writes prebuilds/linux-<arch>/lunlink.napi.glibc.node:
#   linux-x64    native g++ (required: the script fails without it)
#   linux-arm64  cross g++ from Debian's g++-aarch64-linux-gnu, when installed (skipped with a note
#                otherwise). LUNLINK_PREBUILD_ARM64=require (the default under `npm publish`) makes
#                its absence an error; =skip skips it (the install test packs x64 only, to stay short).
# The binaries are never committed: they are rebuilt from the exact sources that go into the tarball.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
gyp="${npm_config_node_gyp:-$(npm root -g)/npm/node_modules/node-gyp/bin/node-gyp.js}"
nodedir="$(npm config get nodedir)"
[ -n "$nodedir" ] && [ "$nodedir" != "undefined" ] && [ "$nodedir" != "null" ] && export npm_config_nodedir="$nodedir"
target="node@$(node -p process.versions.node)"

work="$(mktemp -d /var/tmp/lunlink-prebuild.XXXXXX)"
trap 'rm -rf "$work"' EXIT
cp -r addon binding.gyp package.json "$work/"
ln -s "$root/node_modules" "$work/node_modules"
rm -rf prebuilds

# prebuild ARCH [CROSS-PREFIX]: one prebuildify run (node-gyp rebuild in the scratch copy, strip, rename).
prebuild() {
  local arch="$1" cross="${2:-}"
  # Linked as the source build is (libstdc++ shared): the binary needs glibc >= 2.33 and GCC 12's
  # libstdc++ (GLIBCXX_3.4.30), as built on Debian 12. A static libstdc++ was tried and needs
  # glibc >= 2.36 (arc4random, _dl_find_object), which excludes more systems. Where the binary
  # does not load, the install script builds from source (node-gyp-build tests it first).
  local env=()
  [ -n "$cross" ] && env=(CC="${cross}gcc" CXX="${cross}g++" LINK="${cross}g++" AR="${cross}ar")
  (cd "$work" && env "${env[@]}" node "$root/node_modules/prebuildify/bin.js" --napi --strip --strip-bin "${cross}strip" \
    --tag-libc --arch "$arch" --target "$target" --node-gyp "$gyp" --out "$work" >"$work/build-$arch.log" 2>&1) \
    || { cat "$work/build-$arch.log" >&2; echo "prebuild.sh: the linux-$arch build failed" >&2; exit 1; }
  rm -rf "$work/build"
}

arm64="${LUNLINK_PREBUILD_ARM64:-}"
[ -z "$arm64" ] && [ "${npm_command:-}" = publish ] && arm64=require
prebuild x64
if [ "$arm64" = skip ]; then
  echo "prebuild.sh: LUNLINK_PREBUILD_ARM64=skip: linux-x64 only" >&2
elif command -v aarch64-linux-gnu-g++ >/dev/null; then
  prebuild arm64 aarch64-linux-gnu-
elif [ "$arm64" = require ]; then
  echo "prebuild.sh: aarch64-linux-gnu-g++ missing (apt-get install g++-aarch64-linux-gnu)" >&2
  exit 1
else
  echo "prebuild.sh: no aarch64-linux-gnu-g++: the package ships linux-x64 only (arm64 installs build from source)" >&2
fi
cp -r "$work/prebuilds" prebuilds
for f in prebuilds/*/*.node; do
  echo "prebuild.sh: $f ($(stat -c %s "$f") bytes, needs $(readelf -V "$f" | grep -o 'GLIBC_[0-9.]*\|GLIBCXX_[0-9.]*' | sort -uV | awk -F_ '{m[$1]=$0} END {print m["GLIBC"] ", " m["GLIBCXX"]}'))"
done

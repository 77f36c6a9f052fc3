#!/usr/bin/env bash
# The edge on a box short of memory: each LIMIT (MiB) becomes a memory cgroup's limit, as on a
# board with that much free or a systemd MemoryMax, and in it
#   1. `edge bench` on OLD.bundle: how many convolutions ran by Winograd's algorithm (the log's
#      warning names those left to tract), the latency, the peak, or the kill;
#   2. `edge run` on a synthetic source with OLD.bundle, then NEW.bundle put at the model path and
#      SIGHUP: was NEW swapped in, refused (its trial killed), or did the loop die.
# The cgroup's peak counts page cache too (the bundles just copied), so it is above the process's.
# Needs root and a writable cgroup: CGROUP_PARENT (default: this shell's memory cgroup, v1 or v2).
# Usage: bench/swap/memory.sh OLD.bundle NEW.bundle LIMIT...   (after a release build; EDGE=path
# to time another binary)
set -euo pipefail
cd "$(dirname "$0")/../.."
old=${1:?usage: bench/swap/memory.sh OLD.bundle NEW.bundle LIMIT_MIB...}
new=${2:?usage: bench/swap/memory.sh OLD.bundle NEW.bundle LIMIT_MIB...}
shift 2
edge=$(realpath "${EDGE:-target/release/edge}")
if grep -q '^0::' /proc/self/cgroup && [ -f "/sys/fs/cgroup$(sed -n 's/^0:://p' /proc/self/cgroup)/memory.max" ]; then
  parent=${CGROUP_PARENT:-/sys/fs/cgroup$(sed -n 's/^0:://p' /proc/self/cgroup)}
  limit=memory.max; peak=memory.peak
else
  parent=${CGROUP_PARENT:-/sys/fs/cgroup/memory$(sed -n 's/^[0-9]*:memory://p' /proc/self/cgroup)}
  limit=memory.limit_in_bytes; peak=memory.max_usage_in_bytes
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores; $edge"
# A fresh cgroup limited to $1 MiB, in $group.
new_cgroup() {
  group="$parent/flowercam-bench-$$-$RANDOM"
  mkdir "$group"
  echo $(($1 * 1024 * 1024)) >"$group/$limit"
}
# Runs "$@" in $group: the same process (exec), so that `$!` is the edge's own.
in_cgroup='echo $$ >"$0/cgroup.procs"; exec "$@"'
for mib in "$@"; do
  rc=0
  new_cgroup "$mib"
  bash -c "$in_cgroup" "$group" "$edge" bench --model "$old" --runs 10 >"$work/bench" 2>"$work/bench.log" || rc=$?
  winograd=$(grep -o '[0-9]* of the graph.s 3x3 convolutions stay' "$work/bench.log" | cut -d' ' -f1 || true)
  echo "limit $mib MiB, bench: rc $rc; convolutions left to tract: ${winograd:-0};" \
    "$(grep -o 'median [0-9.]*' "$work/bench" || echo 'no latency');" \
    "$(grep -o 'peak memory [0-9]* MiB' "$work/bench" || echo 'no peak') (cgroup $(( $(cat "$group/$peak") >> 20 )) MiB)"
  rmdir "$group"

  cp "$old" "$work/model.bundle"
  new_cgroup "$mib"
  bash -c "$in_cgroup" "$group" "$edge" run --model "$work/model.bundle" --source synthetic --status-every 3600 \
    >"$work/lines" 2>"$work/run.log" &
  pid=$!
  sleep 8
  cp "$new" "$work/model.tmp" && mv "$work/model.tmp" "$work/model.bundle"
  kill -HUP $pid 2>/dev/null || true
  sleep 15
  if kill -0 $pid 2>/dev/null; then state=running; kill $pid; else state=dead; fi
  wait $pid 2>/dev/null || true
  if grep -q 'passed its checks; swapping it in' "$work/run.log"; then swap=swapped
  elif grep -q 'refused, the running one stays' "$work/run.log"; then swap="refused ($(grep -o 'its trial was killed by signal [0-9]*' "$work/run.log" | head -1 || echo see log))"
  else swap=none; fi
  echo "limit $mib MiB, swap: $swap; loop $state after it; $(grep -c '^{' "$work/lines") answers; cgroup peak $(( $(cat "$group/$peak") >> 20 )) MiB"
  sleep 1
  rmdir "$group" 2>/dev/null || true
done

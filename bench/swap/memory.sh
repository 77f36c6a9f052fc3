#!/usr/bin/env bash
# The edge on a box short of memory: each LIMIT (MiB) becomes a memory cgroup's limit, as on a
# board with that much free or a systemd MemoryMax, and in it
#   1. `edge bench` on OLD.bundle: how many convolutions the log says were left to tract (the
#      rest run by Winograd's algorithm), the latency, the peak, or the kill;
#   2. `edge run` on a synthetic source with OLD.bundle, then NEW.bundle put at the model path and
#      SIGHUP: was NEW swapped in, refused (its trial killed), or did the loop die.
# Swap space is turned off in the cgroup where the kernel allows it (warned where it does not):
# with swap the limit would page instead of kill. The cgroup's peak counts the page cache its
# processes read first (the bundles), so it is above their own peak.
# Needs root. cgroup v2: a child of CGROUP_PARENT (default /sys/fs/cgroup), with the memory
# controller delegated to it; v1: of the memory hierarchy's CGROUP_PARENT (default this shell's).
# Usage: bench/swap/memory.sh OLD.bundle NEW.bundle LIMIT...   (after a release build; EDGE=path
# to measure another binary)
set -euo pipefail
old=$(realpath "${1:?usage: bench/swap/memory.sh OLD.bundle NEW.bundle LIMIT_MIB...}")
new=$(realpath "${2:?usage: bench/swap/memory.sh OLD.bundle NEW.bundle LIMIT_MIB...}")
shift 2
edge=$(realpath "${EDGE:-$(dirname "$0")/../../target/release/edge}")
if [ "$(stat -fc %T /sys/fs/cgroup)" = cgroup2fs ]; then
  parent=${CGROUP_PARENT:-/sys/fs/cgroup}
  echo +memory >"$parent/cgroup.subtree_control" 2>/dev/null || true
  grep -qw memory "$parent/cgroup.subtree_control" || { echo "$parent does not delegate the memory controller" >&2; exit 1; }
  limit=memory.max; peak=memory.peak; noswap=memory.swap.max
else
  parent=${CGROUP_PARENT:-/sys/fs/cgroup/memory$(sed -n 's/^[0-9]*:[^:]*\bmemory\b[^:]*://p' /proc/self/cgroup)}
  limit=memory.limit_in_bytes; peak=memory.max_usage_in_bytes; noswap=memory.memsw.limit_in_bytes
fi
work=$(mktemp -d)
pid=
group=
# Kills what runs in $group (the edge and any trial child), waits for it to empty, removes it.
stop_group() {
  [ -n "$group" ] && [ -d "$group" ] || return 0
  for _ in $(seq 50); do
    procs=$(cat "$group/cgroup.procs")
    [ -z "$procs" ] && break
    kill -9 $procs 2>/dev/null || true
    sleep 0.1
  done
  rmdir "$group" || echo "cannot remove $group" >&2
  group=
}
trap 'stop_group; rm -rf "$work"' EXIT
trap 'exit 130' INT TERM
# A fresh cgroup limited to $1 MiB, without swap, in $group.
new_group() {
  group="$parent/flowercam-bench-$$-$RANDOM"
  mkdir "$group"
  echo $(($1 * 1024 * 1024)) >"$group/$limit"
  # v1 caps memory and swap together (no swap: the same figure); v2 caps swap alone.
  local no_swap=0
  [ "$noswap" = memory.memsw.limit_in_bytes ] && no_swap=$(($1 * 1024 * 1024))
  echo "$no_swap" >"$group/$noswap" 2>/dev/null || [ "$(awk '/SwapTotal/{print $2}' /proc/meminfo)" = 0 ] ||
    echo "warning: swap is on and this cgroup cannot turn it off: the limit pages instead of killing" >&2
}
group_peak() {
  if [ -f "$group/$peak" ]; then echo "$(($(cat "$group/$peak") >> 20)) MiB"; else echo "n/a (no $peak)"; fi
}
# Runs "$@" in $group: the same process (exec), so that `$!` is the edge's own.
in_group='echo $$ >"$0/cgroup.procs"; exec "$@"'
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores; $edge"
for mib in "$@"; do
  new_group "$mib"
  rc=0
  bash -c "$in_group" "$group" "$edge" bench --model "$old" --runs 10 >"$work/bench" 2>"$work/bench.log" || rc=$?
  left=$(grep -o '[0-9]* of the graph.s 3x3 convolutions stay' "$work/bench.log" | cut -d' ' -f1 || true)
  echo "limit $mib MiB, bench: exit $rc; convolutions left to tract: ${left:-0};" \
    "$(grep -o 'median [0-9.]*' "$work/bench" || echo 'no latency');" \
    "$(grep -o 'peak memory [0-9]* MiB' "$work/bench" || echo 'no peak') (cgroup $(group_peak))"
  stop_group

  cp "$old" "$work/model.bundle"
  new_group "$mib"
  bash -c "$in_group" "$group" "$edge" run --model "$work/model.bundle" --source synthetic --status-every 3600 \
    >"$work/lines" 2>"$work/run.log" &
  pid=$!
  sleep 8
  cp "$new" "$work/model.tmp" && mv "$work/model.tmp" "$work/model.bundle"
  kill -HUP $pid 2>/dev/null || true
  # The outcome, or a dead loop, within the trial's deadline and the load after it.
  for _ in $(seq 150); do
    grep -qE 'passed its checks; swapping it in|refused, the running one stays' "$work/run.log" && break
    kill -0 $pid 2>/dev/null || break
    sleep 1
  done
  sleep 3
  state=running
  kill -0 $pid 2>/dev/null || state=dead
  kill $pid 2>/dev/null || true
  status=0
  wait $pid 2>/dev/null || status=$?
  [ "$state" = dead ] && state="dead (exit $status)"
  if grep -q 'passed its checks; swapping it in' "$work/run.log"; then swap=swapped
  elif grep -q 'refused, the running one stays' "$work/run.log"; then
    swap="refused ($(grep -o 'its trial was killed by signal [0-9]*' "$work/run.log" | head -1 || echo 'see the log'))"
  else swap=none; fi
  echo "limit $mib MiB, swap: $swap; loop $state after it; $(grep -c '^{' "$work/lines") answers; cgroup peak $(group_peak)"
  stop_group
done

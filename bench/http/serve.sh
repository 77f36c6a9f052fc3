#!/usr/bin/env bash
# What serving costs the live loop (issue 10's targets), on this machine:
#  1. fps with 3 clients on /stream.mjpg against fps with none, in alternating phases
#     (none, three, none, three; PHASE seconds each) so drift hits both alike;
#  2. RSS over a soak of SOAK seconds with one client on the stream, sampled every 30 s.
# Usage: bench/http/serve.sh MODEL.bundle [PHASE=60] [SOAK=600]   (after a release build)
# Prints a table; the figures in BENCHMARKS.md come from it.
set -euo pipefail
cd "$(dirname "$0")/../.."
model=${1:?usage: bench/http/serve.sh MODEL.bundle [PHASE] [SOAK]}
phase=${2:-60}
soak=${3:-600}
port=18090
edge=target/release/edge
"$edge" run --model "$model" --source synthetic --fps 30 --quiet --status-every 3600 --http "127.0.0.1:$port" 2>/dev/null &
pid=$!
trap 'kill $pid 2>/dev/null; kill $(jobs -p) 2>/dev/null || true' EXIT
classified() { curl -sf "127.0.0.1:$port/api/status" | python3 -c 'import json,sys; print(json.load(sys.stdin)["classified"])'; }
until curl -sf "127.0.0.1:$port/healthz" >/dev/null; do sleep 0.5; done
sleep 10  # warm-up
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores"
echo "phase clients seconds frames fps"
for round in 1 2; do
  for clients in 0 3; do
    watchers=()
    for _ in $(seq "$clients"); do curl -s "127.0.0.1:$port/stream.mjpg" >/dev/null & watchers+=($!); done
    sleep 2
    a=$(classified); start=$(date +%s.%N)
    sleep "$phase"
    b=$(classified); end=$(date +%s.%N)
    for w in "${watchers[@]}"; do kill "$w" 2>/dev/null || true; done
    python3 -c "print('$round $clients', round($end-$start,1), $b-$a, round(($b-$a)/($end-$start),3))"
  done
done
echo "soak: seconds rss_kib (one client on the stream)"
curl -s "127.0.0.1:$port/stream.mjpg" >/dev/null &
for t in $(seq 0 30 "$soak"); do
  echo "$t $(awk '/VmRSS/ {print $2}' /proc/$pid/status)"
  [ "$t" -lt "$soak" ] && sleep 30
done

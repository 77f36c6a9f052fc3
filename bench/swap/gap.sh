#!/usr/bin/env bash
# What a live model swap costs the loop (issue 11's target: the longest gap between two answers
# during a swap under 2 inference times). Runs `edge run` on an unpaced synthetic source (the
# loop runs flat out, one answer per inference), uploads NEW.bundle over HTTP, waits for the swap,
# then uploads OLD again, ROUNDS times; from the JSON lines it prints the median inference time,
# the longest gap between consecutive answers away from any swap, and the longest gap in the
# window from each upload until 2 s after its answer came back.
# Usage: bench/swap/gap.sh OLD.bundle NEW.bundle [ROUNDS=3]   (after a release build)
set -euo pipefail
cd "$(dirname "$0")/../.."
old=${1:?usage: bench/swap/gap.sh OLD.bundle NEW.bundle [ROUNDS]}
new=${2:?usage: bench/swap/gap.sh OLD.bundle NEW.bundle [ROUNDS]}
rounds=${3:-3}
port=18091
token=bench
work=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; rm -rf "$work"' EXIT
cp "$old" "$work/model.bundle"
target/release/edge run --model "$work/model.bundle" --source synthetic --smoothing 1 --status-every 3600 \
    --http "127.0.0.1:$port" --http-token "$token" >"$work/lines.jsonl" 2>"$work/log" &
pid=$!
until curl -sf -H "Authorization: Bearer $token" "127.0.0.1:$port/healthz" >/dev/null; do sleep 0.5; done
sleep 5
: >"$work/windows"
for _ in $(seq "$rounds"); do
  for bundle in "$new" "$old"; do
    start=$(date +%s%3N)
    curl -sf -H "Authorization: Bearer $token" --data-binary @"$bundle" "127.0.0.1:$port/api/model" >/dev/null
    echo "$start $(( $(date +%s%3N) + 2000 ))" >>"$work/windows"
    sleep 5
  done
done
kill $pid; wait $pid 2>/dev/null || true
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores; $(grep -c . "$work/windows") swaps"
python3 - "$work/lines.jsonl" "$work/windows" <<'PY'
import json, statistics, sys
lines = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
windows = [tuple(map(int, l.split())) for l in open(sys.argv[2])]
done = [r["timestamp_ms"] + r["latency_ms"] for r in lines]
gaps = [(b, b - a) for a, b in zip(done, done[1:])]
inside = lambda t: any(s <= t <= e for s, e in windows)
swap_gaps = [g for t, g in gaps if inside(t)]
other_gaps = [g for t, g in gaps if not inside(t)]
inference = statistics.median(r["inference_ms"] for r in lines)
print(f"answers {len(lines)}; median inference {inference:.1f} ms")
print(f"longest gap between answers, no swap under way: {max(other_gaps):.1f} ms ({max(other_gaps) / inference:.2f} inference times)")
print(f"longest gap during the swaps: {max(swap_gaps):.1f} ms ({max(swap_gaps) / inference:.2f} inference times)")
PY

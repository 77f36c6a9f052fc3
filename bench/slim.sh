#!/usr/bin/env bash
# The slim trunks' points of the accuracy-latency curve: for each KEEP@SIZE, `trainer slim`
# (distilled on the task's own photos), then `trainer train` on the slim trunk (README defaults),
# and the full trunk at each size beside them; then bench/inference_bench.py times every bundle in
# tract (`edge bench`) and onnxruntime, alternating, and scores it on the field set.
# A slim trunk or a bundle that is already there is kept (delete it to redo it).
# usage: bench/slim.sh [KEEP@SIZE ...]   (default: 0.5@224 0.5@112 0.25@224 0.25@112)
#   env: FLOWERCAM_DATA, FLOWERCAM_BACKBONE, FLOWERCAM_FIELD (../shared/...), OUT (target/bench-slim),
#        CLASSES (daffodil,coltsfoot), THREADS (1,2), ROUNDS (3)
set -euo pipefail
cd "$(dirname "$0")/.."
data=${FLOWERCAM_DATA:-../shared/data/flowers17}
backbone=${FLOWERCAM_BACKBONE:-../shared/weights/vgg16_imagenet_trunk.onnx}
field=${FLOWERCAM_FIELD:-../shared/data/field}
out=${OUT:-target/bench-slim}
classes=${CLASSES:-daffodil,coltsfoot}
trainer=target/release/trainer
points=("${@:-0.5@224 0.5@112 0.25@224 0.25@112}")
mkdir -p "$out/trunks" "$out/runs" "$out/models" "$out/results"
bundles=()
train() { # NAME BACKBONE SIZE
  if ! "$trainer" inspect "$out/models/$1.bundle" >/dev/null 2>&1; then
    "$trainer" train --data "$data" --classes "$classes" --backbone "$2" --input-size "$3" \
      --out "$out/runs/$1" --export-to "$out/models/$1" --cache-dir "$out/cache"
  fi
  bundles+=("$out/models/$1.bundle")
}
sizes=()
for point in ${points[*]}; do
  keep=${point%@*} size=${point#*@}
  [[ " ${sizes[*]} " == *" $size "* ]] || sizes+=("$size")
  trunk=$out/trunks/keep${keep}_$size.onnx
  if [ ! -f "$trunk" ]; then
    /usr/bin/time -f "slim keep $keep at $size: %e s" "$trainer" slim --backbone "$backbone" --keep "$keep" \
      --data "$data" --classes "$classes" --input-size "$size" --cache-dir "$out/cache" --out "$trunk"
  fi
  train "slim${keep}_$size" "$trunk" "$size"
done
for size in "${sizes[@]}"; do
  train "full_$size" "$backbone" "$size"
done
python=$(scripts/venv.sh)
"$python" -m pip install -q --disable-pip-version-check onnxruntime numpy matplotlib
"$python" bench/inference_bench.py "${bundles[@]}" --threads "${THREADS:-1,2}" --rounds "${ROUNDS:-3}" \
  --field "$field" --out "$out/results"

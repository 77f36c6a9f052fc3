#!/usr/bin/env bash
# The slim trunks' points of the accuracy-latency curve: for each KEEP@SIZE, `trainer slim`
# (distilled on the task's own photos, or on every photo of the data with DISTILL_ON=all), then
# `trainer train` on the slim trunk (README defaults), and the full trunk at each size beside them;
# with INT8=1 each run is also exported in int8. Then bench/inference_bench.py times every bundle in
# tract (`edge bench`) and onnxruntime, alternating, and scores it on the field set (or by its
# cross-validation where the field set does not hold its classes).
# A slim trunk or a bundle that is already there is kept (delete it to redo it).
# usage: bench/slim.sh [KEEP@SIZE ...]   (default: 0.5@224 0.5@112 0.25@224 0.25@112)
#   env: FLOWERCAM_DATA, FLOWERCAM_BACKBONE, FLOWERCAM_FIELD (../shared/...), OUT (target/bench-slim),
#        CLASSES (daffodil,coltsfoot; all: every class of the data, bundles named all_*),
#        THREADS (1,2), ROUNDS (3), EPOCHS (6), INT8 (0), BENCH (1; 0: only make the bundles),
#        DISTILL_ON (task: the CLASSES' photos; all: every class folder of the data, no labels used)
# KEEP is one fraction or five, one per VGG16 block (`trainer slim --keep`): 0.5,0.5,1,1,1@160.
# A trunk distilled for other than 6 epochs is named with its EPOCHS (keep0.5_160_all_e12.onnx),
# so that changing EPOCHS makes a new trunk instead of reusing the 6-epoch one.
set -euo pipefail
cd "$(dirname "$0")/.."
data=${FLOWERCAM_DATA:-../shared/data/flowers17}
backbone=${FLOWERCAM_BACKBONE:-../shared/weights/vgg16_imagenet_trunk.onnx}
field=${FLOWERCAM_FIELD:-../shared/data/field}
out=${OUT:-target/bench-slim}
classes=${CLASSES:-daffodil,coltsfoot}
trainer=target/release/trainer
points=("${@:-0.5@224 0.5@112 0.25@224 0.25@112}")
if [ "$classes" = all ]; then class_args=() task=all_; else class_args=(--classes "$classes") task=; fi
distill_on=${DISTILL_ON:-task}
case $distill_on in
  task) distill_classes=("${class_args[@]}") suffix= ;;
  all) distill_classes=() suffix=_all ;;
  *) echo "DISTILL_ON must be task or all, not $distill_on" >&2; exit 2 ;;
esac
[ "$classes" = all ] && suffix=_all # a task of every class distils on every photo either way
mkdir -p "$out/trunks" "$out/runs" "$out/models" "$out/results"
bundles=()
train() { # NAME BACKBONE SIZE
  local name=$task$1
  if ! "$trainer" inspect "$out/models/$name.bundle" >/dev/null 2>&1; then
    "$trainer" train --data "$data" "${class_args[@]}" --backbone "$2" --input-size "$3" \
      --out "$out/runs/$name" --export-to "$out/models/$name" --cache-dir "$out/cache"
  fi
  bundles+=("$out/models/$name.bundle")
  if [ "${INT8:-0}" = 1 ]; then
    if ! "$trainer" inspect "$out/models/${name}_int8.bundle" >/dev/null 2>&1; then
      "$trainer" export --run "$out/runs/$name" --out "$out/models/${name}_int8" --precision int8
    fi
    bundles+=("$out/models/${name}_int8.bundle")
  fi
}
sizes=()
for point in ${points[*]}; do
  keep=${point%@*} size=${point#*@}
  [[ " ${sizes[*]} " == *" $size "* ]] || sizes+=("$size")
  epochs=${EPOCHS:-6}
  [ "$epochs" = 6 ] && tag=$suffix || tag=${suffix}_e$epochs
  name=keep${keep}_$size$tag
  trunk=$out/trunks/$name.onnx
  if [ ! -f "$trunk" ]; then
    /usr/bin/time -f "slim keep $keep at $size, distilled on $distill_on: %e s" "$trainer" slim \
      --backbone "$backbone" --keep "$keep" --data "$data" "${distill_classes[@]}" --input-size "$size" \
      --epochs "$epochs" --cache-dir "$out/cache" --out "$trunk"
  fi
  train "slim${keep}_$size$tag" "$trunk" "$size"
done
for size in "${sizes[@]}"; do
  train "full_$size" "$backbone" "$size"
done
[ "${BENCH:-1}" = 1 ] || exit 0
python=$(scripts/venv.sh)
"$python" -m pip install -q --disable-pip-version-check onnxruntime numpy matplotlib
"$python" bench/inference_bench.py "${bundles[@]}" --threads "${THREADS:-1,2}" --rounds "${ROUNDS:-3}" \
  --field "$field" --out "$out/results"

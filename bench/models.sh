#!/usr/bin/env bash
# Trains (or reuses) the models the inference benchmark measures: daffodil/coltsfoot and all 17
# flowers at input sizes 224, 160, 128 and 112, each exported in f32 and int8.
# Run folders go to $OUT/runs/, bundles to $OUT/models/ (OUT default: the repository root; NAME,
# NAME_int8; NAME has _SIZE unless 224).
# A run whose best.bin exists is not retrained; a bundle `trainer inspect` accepts is kept.
# An int8 export its parity gate refuses (exit 3) is reported and skipped: that is a result.
# usage: bench/models.sh [SIZES...]     (env: FLOWERCAM_DATA, FLOWERCAM_BACKBONE; TASKS, default
#                                       "daffodil_coltsfoot flowers17")
set -euo pipefail
cd "$(dirname "$0")/.."
data=${FLOWERCAM_DATA:-../shared/data/flowers17}
backbone=${FLOWERCAM_BACKBONE:-../shared/weights/vgg16_imagenet_trunk.onnx}
trainer=target/release/trainer
out_root=${OUT:-.}
sizes=("${@:-224 160 128 112}")
for task in ${TASKS:-daffodil_coltsfoot flowers17}; do
  classes=(); [ "$task" = daffodil_coltsfoot ] && classes=(--classes daffodil,coltsfoot)
  for size in ${sizes[*]}; do
    name=$task; [ "$size" = 224 ] || name=${task}_$size
    if [ ! -f "$out_root/runs/$name/best.bin" ]; then
      "$trainer" train --data "$data" --backbone "$backbone" "${classes[@]}" --input-size "$size" --out "$out_root/runs/$name" --no-export
    fi
    for precision in f32 int8; do
      out=$out_root/models/$name; [ "$precision" = f32 ] || out=${out}_int8
      "$trainer" inspect "$out.bundle" >/dev/null 2>&1 && continue
      status=0
      "$trainer" export --run "$out_root/runs/$name" --out "$out" --precision "$precision" || status=$?
      if [ "$status" = 3 ] && [ "$precision" = int8 ]; then
        echo "bench/models.sh: $out refused by the int8 parity gate (see above)" >&2
      elif [ "$status" != 0 ]; then
        exit "$status"
      fi
    done
  done
done

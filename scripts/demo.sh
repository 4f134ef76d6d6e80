#!/usr/bin/env bash
# The main job: build, then run the end-to-end demo on generated default data:
# fashion-seg (Fashion-MNIST items composed into 128 px scenes) → train FP32 FCN-8s/ResNet-18, then
# fine-tune W1A2 from it (and W2A2 with DEMO_W2A2=1; the BFCN recipe) from the shipped configs →
# evaluate → export + bit-conv inference. About 20 min on 2 quiet cores.
# An interrupted demo continues where it stopped (training resumes from runs/<name>/last.h5).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$(nproc)" --target bfcn  # only what the demo runs (bfcn pulls bfcn-bench)
build/bfcn --version

BFCN=build/bfcn
DATA=data/fashion-seg
if [ ! -f "$DATA/dataset.json" ]; then
  echo "== generating $DATA"
  "$BFCN" data make fashion-seg --out "$DATA"
fi

train_run() {  # train_run <variant>: trains configs/fashion_seg_fcn8s_r18_<variant>.json
  local cfg="configs/fashion_seg_fcn8s_r18_$1.json" out="runs/fashion_seg_$1"
  echo "== training $cfg → $out"
  if [ -f "$out/last.h5" ]; then
    "$BFCN" train --resume "$out"
  else
    "$BFCN" train --config "$cfg" --out "$out"
  fi
}

# The quantized configs start from runs/fashion_seg_fp32/best.h5 (their init_from).
variants="fp32 w1a2"
if [ "${DEMO_W2A2:-0}" = "1" ]; then variants="fp32 w1a2 w2a2"; fi
for v in $variants; do
  train_run "$v"
  echo "== evaluating runs/fashion_seg_$v/best.h5"
  "$BFCN" eval --checkpoint "runs/fashion_seg_$v/best.h5" --json "runs/fashion_seg_$v/eval.json"
done

RUN=runs/fashion_seg_w1a2
if "$BFCN" --help 2>&1 | grep -q "export" && "$BFCN" --help 2>&1 | grep -q "infer"; then
  echo "== export + bit-conv inference"
  "$BFCN" export --checkpoint "$RUN/best.h5" --out "$RUN/model.bfcn"
  mkdir -p "$RUN/samples" "$RUN/pred"
  head -n 8 "$DATA/ImageSets/Segmentation/val.txt" | while read -r id; do
    cp "$DATA/JPEGImages/$id.jpg" "$RUN/samples/"
  done
  "$BFCN" infer --model "$RUN/model.bfcn" --input "$RUN/samples" --out "$RUN/pred" --color \
    --threads 2 | tail -n 3
fi

for v in $variants; do
  miou=$(sed -n 's/.*"miou": *\([0-9.eE+-]*\).*/\1/p' "runs/fashion_seg_$v/eval.json" | head -n 1)
  echo "final val mIoU ($v): $miou   (curves: runs/fashion_seg_$v/curves.png)"
done

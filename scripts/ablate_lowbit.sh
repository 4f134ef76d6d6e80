#!/usr/bin/env bash
# The low-bit recipe ablation of docs/accuracy.md, reproducible: one FP32 parent trained long
# (PARENT_ITERS), then every quantized row fine-tuned from it with the same seed and budget
# (FT_ITERS of batch 8, validated on the full val split at the end), each element of the recipe
# added alone to the paper's W1A2 recipe, then the combinations. Finished rows are skipped, so an
# interrupted run continues. Prints the table (markdown) at the end and writes $OUT/table.md.
#
#   scripts/ablate_lowbit.sh                       # everything (about 1 h on 2 quiet cores)
#   ROWS="w2a2_paper w1a2_paper" scripts/ablate_lowbit.sh   # a subset
#
# Env: BFCN (binary, default build/bfcn), DATA (data/fashion-seg, made if missing), OUT
# (runs/ablation), PARENT_ITERS (3000), PARENT_DESC (the parent row's text in the table), FT_ITERS (400),
# THREADS (2), SEED (1).
set -euo pipefail
cd "$(dirname "$0")/.."
BFCN=${BFCN:-build/bfcn}
DATA=${DATA:-data/fashion-seg}
OUT=${OUT:-runs/ablation}
PARENT_ITERS=${PARENT_ITERS:-3000}
FT_ITERS=${FT_ITERS:-400}
THREADS=${THREADS:-2}
SEED=${SEED:-1}
mkdir -p "$OUT"
[[ -x $BFCN ]] || { echo "ablate_lowbit: $BFCN not found (build it: cmake --build build --target bfcn)" >&2; exit 1; }
[[ -d $DATA ]] || "$BFCN" data make fashion-seg --out "$DATA"

COMMON=(--set "data.root=$DATA" --set "train.threads=$THREADS" --set "train.seed=$SEED")
PARENT=$OUT/fp32/best.h5

# name | config | init (parent or another row's best) | extra --set (space separated key=value)
ROW_SPECS=(
  "w2a2_paper|w2a2_paper|parent|"
  "w1a2_paper|w1a2_paper|parent|"
  "w1a2_fp_residual|w1a2_paper|parent|model.quant.residual=fp"
  "w1a2_fp32_downsample|w1a2_paper|parent|model.quant.downsample=fp32"
  "w1a2_learned_clip|w1a2_paper|parent|model.quant.act_clip=learned train.calibrate_batches=20"
  "w1a2_bn_reestimate|w1a2_paper|parent|train.calibrate_batches=20 train.bn_recalib_end_batches=20"
  "w1a2_distill|w1a2_paper|parent|train.teacher=PARENT"
  "w2a2_recipe|w2a2|parent|"
  "w2a2_recipe_distill|w2a2|parent|train.teacher=PARENT"
  "w1a2_recipe|w1a2|parent|"
  "w1a2_recipe_staged|w1a2|w2a2_recipe|"
  "w1a2_recipe_staged_distill|w1a2|w2a2_recipe|train.teacher=PARENT"
)
ROWS=${ROWS:-$(for s in "${ROW_SPECS[@]}"; do printf '%s ' "${s%%|*}"; done)}

done_marker() { echo "$OUT/$1/.done"; }

train_parent() {
  [[ -f $(done_marker fp32) ]] && return 0
  echo "ablate_lowbit: FP32 parent, $PARENT_ITERS iterations → $OUT/fp32 (log $OUT/fp32.log)"
  local t0=$SECONDS
  "$BFCN" train --config configs/fashion_seg_fcn8s_r18_fp32.json --out "$OUT/fp32" "${COMMON[@]}" \
    --set "train.iterations=$PARENT_ITERS" --set train.eval_interval=500 \
    --set train.checkpoint_interval=250 >>"$OUT/fp32.log" 2>&1
  echo $((SECONDS - t0)) >"$(done_marker fp32)"
}

run_row() {
  local spec=$1 name cfg init extra
  IFS='|' read -r name cfg init extra <<<"$spec"
  [[ -f $(done_marker "$name") ]] && return 0
  local init_ckpt=$PARENT
  [[ $init != parent ]] && { run_row "$(spec_of "$init")"; init_ckpt=$OUT/$init/best.h5; }
  local sets=()
  for kv in $extra; do sets+=(--set "${kv//PARENT/$PARENT}"); done
  echo "ablate_lowbit: $name (configs/fashion_seg_fcn8s_r18_$cfg.json from $init_ckpt ${extra//PARENT/$PARENT})"
  local t0=$SECONDS
  "$BFCN" train --config "configs/fashion_seg_fcn8s_r18_$cfg.json" --init-from "$init_ckpt" \
    --out "$OUT/$name" "${COMMON[@]}" --set "train.iterations=$FT_ITERS" \
    --set train.eval_interval=0 --set "train.checkpoint_interval=$FT_ITERS" \
    --set train.eval_at_start=true "${sets[@]}" >>"$OUT/$name.log" 2>&1
  echo $((SECONDS - t0)) >"$(done_marker "$name")"
}

spec_of() {
  for s in "${ROW_SPECS[@]}"; do [[ ${s%%|*} == "$1" ]] && { echo "$s"; return; }; done
  echo "ablate_lowbit: unknown row '$1' (rows: ${ROW_SPECS[*]%%|*})" >&2
  exit 1
}

# The last "validation at N" line of a run's log: "mIoU 0.3 ..." → 30.00.
final_miou() { grep 'validation at' "$OUT/$1.log" | tail -1 | awk '{printf "%.2f", 100 * $5}'; }
# The parent's mIoU: the best validation of its log (the fine-tunes start from its best.h5).
best_miou() { grep 'validation at' "$OUT/$1.log" | awk '$5 > b { b = $5 } END { printf "%.2f", 100 * b }'; }
start_miou() { grep 'validation at 0:' "$OUT/$1.log" | head -1 | awk '{printf "%.2f", 100 * $5}'; }

train_parent
for r in $ROWS; do run_row "$(spec_of "$r")"; done

fp=$(best_miou fp32)
{
  echo "| row | config | init | extra | step-0 mIoU | final mIoU | drop vs FP32 | train s |"
  echo "|---|---|---|---|---|---|---|---|"
  echo "| fp32 | fp32 | scratch | ${PARENT_DESC:-${PARENT_ITERS} its} (best val) | – | $fp | 0 | $(cat "$(done_marker fp32)") |"
  for r in $ROWS; do
    IFS='|' read -r name cfg init extra <<<"$(spec_of "$r")"
    m=$(final_miou "$name")
    printf '| %s | %s | %s | %s | %s | %s | %+.2f | %s |\n' "$name" "$cfg" "$init" \
      "${extra:-–}" "$(start_miou "$name")" "$m" "$(awk -v a="$m" -v b="$fp" 'BEGIN { print a - b }')" \
      "$(cat "$(done_marker "$name")")"
  done
} | tee "$OUT/table.md"

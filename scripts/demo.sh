#!/usr/bin/env bash
# OFFLINE PIPELINE CHECK — downloads nothing; its accuracies mean nothing.
#
# Generates a tiny random-weight CLIP and a small Caltech101-shaped dataset of coloured JPEGs, then runs
# the real scripts on them: MaPLe and CoCoOp base-to-new (train on base, test on new, seeds 1 and 2),
# CoOp few-shot, zero-shot CLIP; then parse_test_res.py and the base-to-new table. It shows that
# installation, data reading, training, checkpoints, evaluation and results all work on this machine.
#
# Usage: bash scripts/demo.sh        (work files in <repo>/.demo, or $DEMO_DIR)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="${DEMO_DIR:-$ROOT/.demo}"
export PYTHON="${PYTHON:-python}"
export DATA="$WORK/data" OUTPUT="$WORK/output"
mkdir -p "$WORK/logs"
rm -rf "$OUTPUT"

echo "=== vlprompt offline pipeline check: tiny random CLIP + generated data (the numbers are not meaningful) ==="
"$PYTHON" -m vlprompt.testing.demo_assets "$WORK"

# The tiny model: 32 px images, 2 epochs, no loader workers. These options make a variant of each config;
# VARIANT names its folder (<CFG>+tiny-demo) instead of one derived from the options.
export VARIANT=tiny-demo
TINY=(MODEL.BACKBONE.NAME "$WORK/tiny-clip.pt" INPUT.SIZE "(32, 32)" DATALOADER.NUM_WORKERS 0
      OPTIM.MAX_EPOCH 2 TRAIN.PRINT_FREQ 1000 DATALOADER.TEST.BATCH_SIZE 50)

job() {  # job NAME SCRIPT ARGS...: run a script quietly, show its result line or its failure
    local name=$1; shift
    local log="$WORK/logs/$name.log"
    if ! bash "$@" > "$log" 2>&1; then
        echo "FAILED: bash $* (log: $log)"; tail -n 30 "$log"; exit 1
    fi
    local acc; acc=$(grep -o '\* accuracy: [0-9.]*%' "$log" | tail -n 1 || true)
    printf '  %-34s %s\n' "$name" "${acc:-done}"
}

echo "--- base-to-new on caltech101 (MaPLe, CoCoOp), seeds 1 and 2"
for seed in 1 2; do
    job "maple train base, seed $seed" "$ROOT/scripts/maple/base2new_train.sh" caltech101 "$seed" "${TINY[@]}"
    job "maple test new, seed $seed" "$ROOT/scripts/maple/base2new_test.sh" caltech101 "$seed" "${TINY[@]}"
    job "cocoop train base, seed $seed" "$ROOT/scripts/cocoop/base2new_train.sh" caltech101 "$seed" "${TINY[@]}"
    job "cocoop test new, seed $seed" "$ROOT/scripts/cocoop/base2new_test.sh" caltech101 "$seed" "${TINY[@]}"
done
echo "--- a finished job is skipped"
bash "$ROOT/scripts/maple/base2new_train.sh" caltech101 1 "${TINY[@]}" | sed 's/^/  /'
echo "--- CoOp few-shot (4 shots, seed 1) and zero-shot CLIP"
SEEDS=1 job "coop 4 shots" "$ROOT/scripts/coop/main.sh" caltech101 vit_b16_ep50 end 4 4 False "${TINY[@]}"
job "zero-shot clip" "$ROOT/scripts/zsclip/zeroshot.sh" caltech101 vit_b16 "${TINY[@]}"

echo "--- parse_test_res.py (the originals' parser interface)"
TAIL=caltech101/shots_16/MaPLe/vit_b16_c2_ep5_batch4_2ctx+tiny-demo
"$PYTHON" "$ROOT/parse_test_res.py" "$OUTPUT/base2new/train_base/$TAIL" | sed 's/^/  /'
"$PYTHON" "$ROOT/parse_test_res.py" "$OUTPUT/base2new/test_new/$TAIL" --test-log | sed 's/^/  /'

echo "--- the base-to-new tables (from result.json files)"
"$PYTHON" -m vlprompt results base2new "$OUTPUT"
echo "--- the few-shot table (accuracy against shots, next to zero-shot CLIP)"
"$PYTHON" -m vlprompt results fewshot "$OUTPUT"

echo "=== pipeline check passed. Outputs: $OUTPUT. The accuracies come from a random tiny CLIP on coloured squares."
echo "    For real runs: export DATA=/path/to/datasets, then e.g. bash scripts/maple/base2new_train.sh caltech101 1"

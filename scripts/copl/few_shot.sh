#!/usr/bin/env bash
# CoPL few-shot: train on all classes of DATASET with SHOTS shots per class (1, 2, 4, 8 or 16) and test
# on its test set, seeds 1 2 3 (SEEDS="..." to change). Output: $OUTPUT/DATASET/CoPL/<CFG>_<SHOTS>shots/seed<S>,
# the layout of xd_train.sh, so the 16-shot ImageNet run is also the cross-dataset source model.
# Usage: DATA=/path/to/datasets bash scripts/copl/few_shot.sh DATASET SHOTS [KEY VALUE ...]
source "$(dirname "${BASH_SOURCE[0]}")/../_protocols.sh"
[ $# -ge 2 ] || usage "DATASET SHOTS [KEY VALUE ...]"
DATASET=$1 SHOTS=$2; shift 2
require_data
failed=()
for SEED in ${SEEDS:-1 2 3}; do
    xd_train "${TRAINER:-CoPL}" "${CFG:-vit_b16_c4_ep10_batch1_ctxv1}" "$DATASET" "$SEED" "$@" || failed+=("seed$SEED")
done
[ ${#failed[@]} -eq 0 ] || die "runs failed: ${failed[*]} (re-run this command to resume them)"

#!/usr/bin/env bash
# CoCoOp cross-dataset / domain generalization: evaluate the ImageNet model on DATASET (all its classes).
# Usage: DATA=/path/to/datasets bash scripts/cocoop/xd_test.sh DATASET SEED [KEY VALUE ...]
source "$(dirname "${BASH_SOURCE[0]}")/../_protocols.sh"
[ $# -ge 2 ] || usage "DATASET SEED [KEY VALUE ...]"
xd_test "${TRAINER:-CoCoOp}" "${CFG:-vit_b16_c4_ep10_batch1_ctxv1}" "$@"

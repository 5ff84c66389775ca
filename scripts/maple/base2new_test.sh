#!/usr/bin/env bash
# MaPLe base-to-new: evaluate the base-trained model on the new classes, at the epoch it was trained to.
# Usage: DATA=/path/to/datasets bash scripts/maple/base2new_test.sh DATASET SEED [KEY VALUE ...]
source "$(dirname "${BASH_SOURCE[0]}")/../_protocols.sh"
[ $# -ge 2 ] || usage "DATASET SEED [KEY VALUE ...]"
base2new_test "${TRAINER:-MaPLe}" "${CFG:-vit_b16_c2_ep5_batch4_2ctx}" "$@"

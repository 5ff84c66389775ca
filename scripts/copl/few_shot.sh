#!/usr/bin/env bash
# CoPL few-shot: train on all classes of DATASET with SHOTS shots per class (1, 2, 4, 8 or 16) and test
# on its test set, seeds 1 2 3 (SEEDS="..." to change). Output: $OUTPUT/DATASET/CoPL/<CFG>_<SHOTS>shots/seed<S>,
# the layout of xd_train.sh, so the 16-shot ImageNet run is also the cross-dataset source model.
# Usage: DATA=/path/to/datasets bash scripts/copl/few_shot.sh DATASET SHOTS [KEY VALUE ...]
source "$(dirname "${BASH_SOURCE[0]}")/../_protocols.sh"
script_job few_shot copl "$@"

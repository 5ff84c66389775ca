#!/usr/bin/env bash
# KgCoOp few-shot (the official scripts/xd_train.sh: SHOTS 4, all classes): train on DATASET with SHOTS shots
# per class and test on its test set, seeds 1 2 3 (SEEDS="..." to change).
# Output: $OUTPUT/DATASET/KgCoOp/<CFG>_<SHOTS>shots/seed<S> (the layout of xd_train.sh).
# Usage: DATA=/path/to/datasets bash scripts/kgcoop/few_shot.sh DATASET SHOTS [KEY VALUE ...]
source "$(dirname "${BASH_SOURCE[0]}")/../_protocols.sh"
script_job few_shot kgcoop "$@"

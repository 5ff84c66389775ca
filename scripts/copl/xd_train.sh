#!/usr/bin/env bash
# CoPL cross-dataset / domain generalization: train on all classes of the source dataset (16 shots),
# ImageNet unless SOURCE_DATASET says otherwise (xd_test.sh reads the same variable).
# Usage: DATA=/path/to/datasets bash scripts/copl/xd_train.sh SEED [KEY VALUE ...]
source "$(dirname "${BASH_SOURCE[0]}")/../_protocols.sh"
script_job xd_train_source copl "$@"

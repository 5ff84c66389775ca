#!/usr/bin/env bash
# CoPL cross-dataset / domain generalization: evaluate the ImageNet model (SOURCE_DATASET) on DATASET,
# all its classes. Pass the same TRAINER.COPL.* options as to xd_train.sh.
# Usage: DATA=/path/to/datasets bash scripts/copl/xd_test.sh DATASET SEED [KEY VALUE ...]
source "$(dirname "${BASH_SOURCE[0]}")/../_protocols.sh"
script_job xd_test copl "$@"

#!/usr/bin/env bash
# MaPLe cross-dataset / domain generalization: train on all classes of DATASET (imagenet), 16 shots.
# Usage: DATA=/path/to/datasets bash scripts/maple/xd_train.sh DATASET SEED [KEY VALUE ...]   (e.g. imagenet 1)
source "$(dirname "${BASH_SOURCE[0]}")/../_protocols.sh"
script_job xd_train maple "$@"

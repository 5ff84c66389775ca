#!/usr/bin/env bash
# ProGrad cross-dataset / domain generalization: train on all 1000 ImageNet classes (16 shots).
# Usage: DATA=/path/to/datasets bash scripts/prograd/xd_train.sh SEED [KEY VALUE ...]
source "$(dirname "${BASH_SOURCE[0]}")/../_protocols.sh"
script_job xd_train_source prograd "$@"

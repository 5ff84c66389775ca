#!/usr/bin/env bash
# CoCoOp cross-dataset / domain generalization: evaluate the ImageNet model on DATASET (all its classes).
# Usage: DATA=/path/to/datasets bash scripts/cocoop/xd_test.sh DATASET SEED [KEY VALUE ...]
source "$(dirname "${BASH_SOURCE[0]}")/../_protocols.sh"
script_job xd_test cocoop "$@"

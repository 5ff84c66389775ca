#!/usr/bin/env bash
# DePT over MaPLe cross-dataset / domain generalization: evaluate the ImageNet-trained model on all classes of DATASET
# (fused with the probe on the ImageNet variants, whose classes it was trained on; similarity alone elsewhere).
# Output: $OUTPUT/evaluation/maple_dept/ExtrasLinearProbeMaPLe/DATASET/shots16/<CFG>/seed<S>.
# Usage: DATA=/path/to/datasets bash scripts/maple_dept/xd_test.sh DATASET SEED [KEY VALUE ...]
source "$(dirname "${BASH_SOURCE[0]}")/../_protocols.sh"
script_job xd_test maple_dept "$@"

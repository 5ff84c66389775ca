#!/usr/bin/env bash
# DePT over KgCoOp cross-dataset / domain generalization: train on all classes of DATASET (imagenet), 16 shots.
# Output: $OUTPUT/imagenet/kgcoop_dept/ExtrasLinearProbeKgCoOp/imagenet/shots16/<CFG>/seed<S> (DePT's runner's tail).
# Usage: DATA=/path/to/datasets bash scripts/kgcoop_dept/xd_train.sh DATASET SEED [KEY VALUE ...]   (e.g. imagenet 1)
source "$(dirname "${BASH_SOURCE[0]}")/../_protocols.sh"
script_job xd_train kgcoop_dept "$@"

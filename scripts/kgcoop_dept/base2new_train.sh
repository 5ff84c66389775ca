#!/usr/bin/env bash
# DePT over KgCoOp (ExtrasLinearProbeKgCoOp) base-to-new: train on the base classes (16 shots); the run's final test is the
# base accuracy, as DePT's runner reads it. Output: DePT's runner tree,
# $OUTPUT/base2new/kgcoop_dept/train_base/ExtrasLinearProbeKgCoOp/DATASET/shots16/<CFG>/seed<S>
# (python parallel_runner.py --cfg kgcoop_dept runs every dataset and seed: vlprompt run base2new kgcoop_dept).
# Usage: DATA=/path/to/datasets bash scripts/kgcoop_dept/base2new_train.sh DATASET SEED [KEY VALUE ...]
source "$(dirname "${BASH_SOURCE[0]}")/../_protocols.sh"
script_job base2new_train kgcoop_dept "$@"

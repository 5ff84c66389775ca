#!/usr/bin/env bash
# CoPL base-to-new: train on the base classes (16 shots); the run's final test is the base accuracy.
# Usage: DATA=/path/to/datasets bash scripts/copl/base2new_train.sh DATASET SEED [KEY VALUE ...]
#   e.g. a variant: bash scripts/copl/base2new_train.sh caltech101 1 TRAINER.COPL.SCORE general
source "$(dirname "${BASH_SOURCE[0]}")/../_protocols.sh"
[ $# -ge 2 ] || usage "DATASET SEED [KEY VALUE ...]"
base2new_train "${TRAINER:-CoPL}" "${CFG:-vit_b16_c4_ep10_batch1_ctxv1}" "$@"

#!/usr/bin/env bash
# CoPL base-to-new: train on the base classes (16 shots); the run's final test is the base accuracy.
# Usage: DATA=/path/to/datasets bash scripts/copl/base2new_train.sh DATASET SEED [KEY VALUE ...]
#   e.g. a variant: bash scripts/copl/base2new_train.sh caltech101 1 TRAINER.COPL.SCORE general
source "$(dirname "${BASH_SOURCE[0]}")/../_protocols.sh"
script_job base2new_train copl "$@"

#!/usr/bin/env bash
# CoPL base-to-new: evaluate the base-trained model on the new classes (the epoch it was trained to).
# Usage: DATA=/path/to/datasets bash scripts/copl/base2new_test.sh DATASET SEED [KEY VALUE ...]
# Pass the same TRAINER.COPL.* options as to base2new_train.sh: they decide the model's shape.
source "$(dirname "${BASH_SOURCE[0]}")/../_protocols.sh"
script_job base2new_test copl "$@"

#!/usr/bin/env bash
# CoCoOp base-to-new: evaluate the base-trained model on the new classes (the epoch it was trained to).
# Usage: DATA=/path/to/datasets bash scripts/cocoop/base2new_test.sh DATASET SEED [KEY VALUE ...]
source "$(dirname "${BASH_SOURCE[0]}")/../_protocols.sh"
script_job base2new_test cocoop "$@"

#!/usr/bin/env bash
# KgCoOp base-to-new: evaluate the base-class model of base2new_train.sh on the new classes of DATASET.
# Usage: DATA=/path/to/datasets bash scripts/kgcoop/base2new_test.sh DATASET SEED [KEY VALUE ...]
source "$(dirname "${BASH_SOURCE[0]}")/../_protocols.sh"
script_job base2new_test kgcoop "$@"

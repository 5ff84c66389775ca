#!/usr/bin/env bash
# Deep vision prompting (VPT) base-to-new: evaluate the base-trained model on the new classes, at the epoch it was trained to.
# Usage: DATA=/path/to/datasets bash scripts/vpt/base2new_test.sh DATASET SEED [KEY VALUE ...]
source "$(dirname "${BASH_SOURCE[0]}")/../_protocols.sh"
script_job base2new_test vpt "$@"

#!/usr/bin/env bash
# PromptSRC base-to-new: evaluate the base-trained model on the new classes, at the epoch it was trained to.
# Usage: DATA=/path/to/datasets bash scripts/promptsrc/base2new_test.sh DATASET SEED [KEY VALUE ...]
source "$(dirname "${BASH_SOURCE[0]}")/../_protocols.sh"
script_job base2new_test promptsrc "$@"

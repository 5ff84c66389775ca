#!/usr/bin/env bash
# PromptSRC base-to-new: train on the base classes (16 shots, 20 epochs, GPA); the run's final test is the base accuracy.
# A finished run is skipped, an interrupted one resumes from its last epoch.
# Usage: DATA=/path/to/datasets bash scripts/promptsrc/base2new_train.sh DATASET SEED [KEY VALUE ...]
source "$(dirname "${BASH_SOURCE[0]}")/../_protocols.sh"
script_job base2new_train promptsrc "$@"

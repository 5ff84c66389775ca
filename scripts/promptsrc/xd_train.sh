#!/usr/bin/env bash
# PromptSRC cross-dataset / domain generalization: train on all classes of DATASET (imagenet), 16 shots, with
# the cross-dataset config (the official script names vit_b16_c2_ep5_..., a file that does not exist; the config is ep20).
# Usage: DATA=/path/to/datasets bash scripts/promptsrc/xd_train.sh DATASET SEED [KEY VALUE ...]   (e.g. imagenet 1)
source "$(dirname "${BASH_SOURCE[0]}")/../_protocols.sh"
script_job xd_train promptsrc "$@"

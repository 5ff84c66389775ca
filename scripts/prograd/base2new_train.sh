#!/usr/bin/env bash
# ProGrad base-to-new: train on the base classes of DATASET (16 shots, config vit_b16_ep100_ctxv1: the
# ViT-B/16 setting the papers compare in; the official scripts/base2new_train_prograd.sh is CFG=rn50_ep100 SHOTS=4).
# Usage: DATA=/path/to/datasets bash scripts/prograd/base2new_train.sh DATASET SEED [KEY VALUE ...]
source "$(dirname "${BASH_SOURCE[0]}")/../_protocols.sh"
script_job base2new_train prograd "$@"

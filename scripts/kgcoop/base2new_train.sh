#!/usr/bin/env bash
# KgCoOp base-to-new: train on the base classes of DATASET (16 shots, config vit_b16_ep100_ctxv1 with
# W 8.0, as the official scripts/base2new_train.sh DATASET 8.0); its final test is the base accuracy.
# Output: $OUTPUT/base2new/train_base/DATASET/shots_16/KgCoOp/<CFG>/seed<SEED> (the official tree has
# shots_16_<W>; here W is part of the config, and another W is a variant: TRAINER.COOP.W 2.0 -> <CFG>+TRAINER.COOP.W=2.0).
# Usage: DATA=/path/to/datasets bash scripts/kgcoop/base2new_train.sh DATASET SEED [KEY VALUE ...]
source "$(dirname "${BASH_SOURCE[0]}")/../_protocols.sh"
script_job base2new_train kgcoop "$@"

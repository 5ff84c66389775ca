#!/usr/bin/env bash
# CoCoOp base-to-new: train on the base classes (16 shots); the run's final test is the base accuracy.
# Usage: DATA=/path/to/datasets bash scripts/cocoop/base2new_train.sh DATASET SEED [KEY VALUE ...]
# CoOp under this protocol: TRAINER=CoOp CFG=vit_b16_ctxv1 (ImageNet: vit_b16_ep50_ctxv1) bash ...
source "$(dirname "${BASH_SOURCE[0]}")/../_protocols.sh"
script_job base2new_train cocoop "$@"

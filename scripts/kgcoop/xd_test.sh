#!/usr/bin/env bash
# KgCoOp cross-dataset / domain generalization: evaluate the ImageNet model on DATASET (all its classes;
# imagenetv2, imagenet_sketch, imagenet_a, imagenet_r for domain generalization).
# Usage: DATA=/path/to/datasets bash scripts/kgcoop/xd_test.sh DATASET SEED [KEY VALUE ...]
source "$(dirname "${BASH_SOURCE[0]}")/../_protocols.sh"
script_job xd_test kgcoop "$@"

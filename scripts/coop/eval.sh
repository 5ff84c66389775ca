#!/usr/bin/env bash
# CoOp robustness evaluation: the ImageNet models (nctx16, unified context, class token at the end, trained
# by main.sh with config CFG and SHOTS shots, default 16) evaluated on DATASET (e.g. imagenetv2,
# imagenet_sketch, imagenet_a, imagenet_r), seeds 1 2 3. The epoch is the one the models were trained to.
# Usage: DATA=/path/to/datasets bash scripts/coop/eval.sh DATASET CFG [KEY VALUE ...]
#   e.g. bash scripts/coop/eval.sh imagenet_a rn50_ep50
source "$(dirname "${BASH_SOURCE[0]}")/../_protocols.sh"
script_job coop_eval coop "$@"

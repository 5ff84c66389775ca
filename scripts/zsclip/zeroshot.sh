#!/usr/bin/env bash
# Zero-shot CLIP with the dataset's hand-crafted prompt (TRAINER=ZeroshotCLIP2 for the ensemble).
# Usage: DATA=/path/to/datasets bash scripts/zsclip/zeroshot.sh DATASET CFG [KEY VALUE ...]
#   CFG: rn50, rn101, vit_b32 or vit_b16 (a CoOp config: backbone and input pipeline)
source "$(dirname "${BASH_SOURCE[0]}")/../_protocols.sh"
script_job zeroshot zsclip "$@"

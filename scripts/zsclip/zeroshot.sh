#!/usr/bin/env bash
# Zero-shot CLIP with the dataset's hand-crafted prompt (TRAINER=ZeroshotCLIP2 for the ensemble).
# Usage: DATA=/path/to/datasets bash scripts/zsclip/zeroshot.sh DATASET CFG [KEY VALUE ...]
#   CFG: rn50, rn101, vit_b32 or vit_b16 (a CoOp config: backbone and input pipeline)
source "$(dirname "${BASH_SOURCE[0]}")/../_protocols.sh"
[ $# -ge 2 ] || usage "DATASET CFG [KEY VALUE ...]"
DATASET=$1 CFG=$2; shift 2
TRAINER=${TRAINER:-ZeroshotCLIP}
require_data
resolve_configs CoOp "$CFG" "$DATASET"
variant_of "$@"
DIR="$OUTPUT/$TRAINER/$CFG$VARIANT_SUFFIX/$DATASET"
train_py --root "$DATA" --trainer "$TRAINER" \
    --dataset-config-file "$DATASET_CFG_FILE" --config-file "$TRAINER_CFG_FILE" \
    --output-dir "$DIR" --eval-only "$@"

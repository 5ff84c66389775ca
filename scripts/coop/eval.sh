#!/usr/bin/env bash
# CoOp robustness evaluation: the 16-shot ImageNet models (nctx16, unified context, class token at the
# end, trained by main.sh with config CFG) evaluated on DATASET (e.g. imagenetv2, imagenet_sketch,
# imagenet_a, imagenet_r), seeds 1 2 3. The epoch is the one the models were trained to.
# Usage: DATA=/path/to/datasets bash scripts/coop/eval.sh DATASET CFG [KEY VALUE ...]
#   e.g. bash scripts/coop/eval.sh imagenet_a rn50_ep50
source "$(dirname "${BASH_SOURCE[0]}")/../_protocols.sh"
[ $# -ge 2 ] || usage "DATASET CFG [KEY VALUE ...]"
DATASET=$1 CFG=$2; shift 2
TRAINER=CoOp
require_data
resolve_configs $TRAINER "$CFG" "$DATASET"
variant_of "$@"
failed=()
for SEED in ${SEEDS:-1 2 3}; do
    MODEL_DIR="$OUTPUT/imagenet/$TRAINER/${CFG}_16shots/nctx16_cscFalse_ctpend$VARIANT_SUFFIX/seed$SEED"
    DIR="$OUTPUT/evaluation/$TRAINER/${CFG}_16shots/nctx16_cscFalse_ctpend$VARIANT_SUFFIX/$DATASET/seed$SEED"
    EPOCH=$(trained_epoch "$MODEL_DIR")
    train_py --root "$DATA" --seed "$SEED" --trainer $TRAINER \
        --dataset-config-file "$DATASET_CFG_FILE" --config-file "$TRAINER_CFG_FILE" \
        --output-dir "$DIR" --model-dir "$MODEL_DIR" --load-epoch "$EPOCH" --eval-only \
        TRAINER.COOP.N_CTX 16 TRAINER.COOP.CSC False TRAINER.COOP.CLASS_TOKEN_POSITION end "$@" || failed+=("seed$SEED")
done
[ ${#failed[@]} -eq 0 ] || die "runs failed: ${failed[*]}"

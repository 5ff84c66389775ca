#!/usr/bin/env bash
# CoOp few-shot training and test, seeds 1 2 3 (SEEDS="..." to change).
# Usage: DATA=/path/to/datasets bash scripts/coop/main.sh DATASET CFG CTP NCTX SHOTS CSC [KEY VALUE ...]
#   e.g. bash scripts/coop/main.sh caltech101 rn50_ep50 end 16 1 False
# Protocol (COOP.md): 1 shot *_ep50, 2 and 4 shots *_ep100, 8 and 16 shots the 200-epoch configs;
# ImageNet uses *_ep50 for every shot count.
source "$(dirname "${BASH_SOURCE[0]}")/../_protocols.sh"
[ $# -ge 6 ] || usage "DATASET CFG CTP NCTX SHOTS CSC [KEY VALUE ...]"
DATASET=$1 CFG=$2 CTP=$3 NCTX=$4 SHOTS=$5 CSC=$6; shift 6
TRAINER=CoOp
require_data
resolve_configs $TRAINER "$CFG" "$DATASET"
variant_of "$@"
failed=()
for SEED in ${SEEDS:-1 2 3}; do
    DIR="$OUTPUT/$DATASET/$TRAINER/${CFG}_${SHOTS}shots/nctx${NCTX}_csc${CSC}_ctp${CTP}$VARIANT_SUFFIX/seed$SEED"
    train_py --root "$DATA" --seed "$SEED" --trainer $TRAINER \
        --dataset-config-file "$DATASET_CFG_FILE" --config-file "$TRAINER_CFG_FILE" \
        --output-dir "$DIR" TRAINER.COOP.N_CTX "$NCTX" TRAINER.COOP.CSC "$CSC" \
        TRAINER.COOP.CLASS_TOKEN_POSITION "$CTP" DATASET.NUM_SHOTS "$SHOTS" "$@" || failed+=("seed$SEED")
done
[ ${#failed[@]} -eq 0 ] || die "runs failed: ${failed[*]} (re-run this command to resume them)"

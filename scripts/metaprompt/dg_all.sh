#!/usr/bin/env bash
# MetaPrompt domain generalization, the whole protocol for one dataset: every domain held out in turn,
# seeds $SEEDS (default "1 2 3"), SHOTS images per class per source domain. Finished runs are skipped.
# Usage: DATA=/path/to/datasets bash scripts/metaprompt/dg_all.sh DATASET SHOTS [KEY VALUE ...]
source "$(dirname "${BASH_SOURCE[0]}")/../_dg.sh"
[ $# -ge 2 ] || usage "DATASET SHOTS [KEY VALUE ...]"
dataset=$1 shots=$2
shift 2
domains=$(dg_domains "$dataset")
for target in $domains; do
    for seed in ${SEEDS:-1 2 3}; do
        dg_train "${TRAINER:-MetaPrompt}" "${CFG:-vit_b16_c4_ep6_batch32_4+4ctx_dg}" "$dataset" "$target" "$seed" "$shots" "$@"
    done
done

#!/usr/bin/env bash
# MetaPrompt domain generalization: hold out TARGET_DOMAIN, train on the other domains of DATASET (pacs,
# vlcs, office_home, domainnet) with SHOTS images per class per domain (the paper: 1 or 5), test on
# TARGET_DOMAIN.
# Usage: DATA=/path/to/datasets bash scripts/metaprompt/dg.sh DATASET TARGET_DOMAIN SEED SHOTS [KEY VALUE ...]
# The official code's name and config: TRAINER=Meta_DG CFG=vit_b16 bash ...
source "$(dirname "${BASH_SOURCE[0]}")/../_dg.sh"
[ $# -ge 4 ] || usage "DATASET TARGET_DOMAIN SEED SHOTS [KEY VALUE ...]"
dg_train "${TRAINER:-MetaPrompt}" "${CFG:-vit_b16_c4_ep6_batch32_4+4ctx_dg}" "$@"

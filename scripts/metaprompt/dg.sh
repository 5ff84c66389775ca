#!/usr/bin/env bash
# MetaPrompt domain generalization: hold out TARGET_DOMAIN, train on the other domains of DATASET (pacs,
# vlcs, office_home, domainnet) with SHOTS images per class per domain (the paper: 1 or 5), test on
# TARGET_DOMAIN.
# Usage: DATA=/path/to/datasets bash scripts/metaprompt/dg.sh DATASET TARGET_DOMAIN SEED SHOTS [KEY VALUE ...]
# The official code's name and config: TRAINER=Meta_DG CFG=vit_b16 bash ...
source "$(dirname "${BASH_SOURCE[0]}")/../_protocols.sh"
script_job dg_train metaprompt "$@"

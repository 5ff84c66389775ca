#!/usr/bin/env bash
# MetaPrompt domain generalization, the whole protocol for one dataset: every domain held out in turn,
# seeds $SEEDS (default "1 2 3"), SHOTS images per class per source domain. Finished runs are skipped.
# Usage: DATA=/path/to/datasets bash scripts/metaprompt/dg_all.sh DATASET SHOTS [KEY VALUE ...]
source "$(dirname "${BASH_SOURCE[0]}")/../_protocols.sh"
script_job dg_all metaprompt "$@"

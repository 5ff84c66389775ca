#!/usr/bin/env bash
# CoOp few-shot training and test, seeds 1 2 3 (SEEDS="..." to change).
# Usage: DATA=/path/to/datasets bash scripts/coop/main.sh DATASET CFG CTP NCTX SHOTS CSC [KEY VALUE ...]
#   e.g. bash scripts/coop/main.sh caltech101 rn50_ep50 end 16 1 False
# Protocol (COOP.md): 1 shot *_ep50, 2 and 4 shots *_ep100, 8 and 16 shots the 200-epoch configs;
# ImageNet uses *_ep50 for every shot count.
source "$(dirname "${BASH_SOURCE[0]}")/../_protocols.sh"
script_job coop_main coop "$@"

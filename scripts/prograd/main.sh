#!/usr/bin/env bash
# ProGrad few-shot (the official scripts/prograd.sh, CoOp's main.sh with TRAINER=ProGrad): train and test, seeds
# 1 2 3 (SEEDS="..." to change). Output: $OUTPUT/DATASET/ProGrad/<CFG>_<SHOTS>shots/nctx<NCTX>_csc<CSC>_ctp<CTP>/seed<S>.
# Configs as CoOp's: 1 shot rn50_ep50, 2 and 4 shots rn50_ep100, 8 and 16 shots rn50; ImageNet rn50_ep50. The
# official README: 8 and 16 shots on oxford_flowers, dtd and eurosat with LOSS.LAMBDA 0.8.
# Usage: DATA=/path/to/datasets bash scripts/prograd/main.sh DATASET CFG CTP NCTX SHOTS CSC [KEY VALUE ...]
#   e.g. bash scripts/prograd/main.sh caltech101 rn50_ep50 end 16 1 False
source "$(dirname "${BASH_SOURCE[0]}")/../_protocols.sh"
script_job coop_main prograd "$@"

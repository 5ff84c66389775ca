#!/usr/bin/env bash
# PromptSRC: evaluate released few-shot weights of one dataset and shot count, seeds 1 2 3, on its test set
# (output/few_shot/DATASET/PromptSRC/<CFG>_<SHOTS>shots/seed<S>).
# WEIGHTSPATH: the unzipped folder of that dataset, holding <SHOTS>shot/seed<S>/VLPromptLearner/model.pth.tar-N.
# Usage: DATA=/path/to/datasets bash scripts/promptsrc/reproduce_few_shot.sh DATASET SHOTS WEIGHTSPATH [KEY VALUE ...]
source "$(dirname "${BASH_SOURCE[0]}")/../_protocols.sh"
script_job reproduce_few_shot promptsrc "$@"

#!/usr/bin/env bash
# PromptSRC few-shot: train on all classes of DATASET with SHOTS shots per class (1, 2, 4, 8 or 16) and test on its
# test set, seeds 1 2 3 (SEEDS="..." to change), with the few-shot config: GPA mean 30 / std 30, and 45 / 5 on
# stanford_cars, oxford_flowers, fgvc_aircraft, dtd and eurosat, as the config's own comment prescribes.
# Output: $OUTPUT/DATASET/PromptSRC/<CFG>_<SHOTS>shots/seed<S>.
# Usage: DATA=/path/to/datasets bash scripts/promptsrc/few_shot.sh DATASET SHOTS [KEY VALUE ...]
source "$(dirname "${BASH_SOURCE[0]}")/../_protocols.sh"
script_job few_shot promptsrc "$@"

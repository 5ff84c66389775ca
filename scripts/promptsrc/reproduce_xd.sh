#!/usr/bin/env bash
# PromptSRC: evaluate released ImageNet weights of one seed on all classes of DATASET (cross-dataset / domain
# generalization; output/evaluation/..., where xd_test.sh writes).
# WEIGHTSPATH: the unzipped ImageNet folder, holding seed<SEED>/VLPromptLearner/model.pth.tar-N.
# Usage: DATA=/path/to/datasets bash scripts/promptsrc/reproduce_xd.sh DATASET SEED WEIGHTSPATH [KEY VALUE ...]
source "$(dirname "${BASH_SOURCE[0]}")/../_protocols.sh"
script_job reproduce_xd promptsrc "$@"

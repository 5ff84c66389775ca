#!/usr/bin/env bash
# PromptSRC: evaluate released base-to-new weights of one dataset and seed on its base classes
# (output/base2new/test_base/...) and new classes (output/base2new/test_new/...).
# WEIGHTSPATH: the unzipped folder of that dataset, holding base/seed<SEED>/VLPromptLearner/model.pth.tar-N.
# Usage: DATA=/path/to/datasets bash scripts/promptsrc/reproduce_base2novel_setting.sh DATASET SEED WEIGHTSPATH [KEY VALUE ...]
source "$(dirname "${BASH_SOURCE[0]}")/../_protocols.sh"
script_job reproduce_base2new promptsrc "$@"

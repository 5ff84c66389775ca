#!/usr/bin/env bash
# PromptSRC cross-dataset / domain generalization: evaluate the ImageNet-trained model (xd_train.sh) on all classes
# of DATASET, at the epoch it was trained to. SOURCE_DATASET=... if it was not trained on imagenet.
# Usage: DATA=/path/to/datasets bash scripts/promptsrc/xd_test.sh DATASET SEED [KEY VALUE ...]
source "$(dirname "${BASH_SOURCE[0]}")/../_protocols.sh"
script_job xd_test promptsrc "$@"

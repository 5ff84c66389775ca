#!/usr/bin/env bash
# MetaPrompt base-to-new: train on the base classes (16 shots); the run's final test is the base accuracy.
# Usage: DATA=/path/to/datasets bash scripts/metaprompt/base2new_train.sh DATASET SEED [KEY VALUE ...]
# The official code's name and config: TRAINER=Meta_B2N CFG=vit_b16 bash ...
source "$(dirname "${BASH_SOURCE[0]}")/../_protocols.sh"
script_job base2new_train metaprompt "$@"

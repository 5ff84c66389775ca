#!/usr/bin/env bash
# MaPLe: evaluate released base-to-new weights of one dataset and seed on its base classes
# (output/released/base2new/test_base/...) and new classes (output/released/base2new/test_new/...),
# a tree of its own, apart from your own training runs.
# WEIGHTSPATH: the unzipped folder of that dataset, holding base/seed<SEED>/<Name>/model.pth.tar-N.
# Usage: DATA=/path/to/datasets bash scripts/maple/reproduce.sh DATASET SEED WEIGHTSPATH [KEY VALUE ...]
source "$(dirname "${BASH_SOURCE[0]}")/../_protocols.sh"
script_job reproduce_base2new maple "$@"

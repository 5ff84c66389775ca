#!/usr/bin/env bash
# Independent V-L prompting (IVLP): evaluate released ImageNet weights of one seed on all classes of DATASET (cross-dataset /
# domain generalization; output/released/evaluation/..., a tree of its own, laid out as xd_test.sh's).
# WEIGHTSPATH: the unzipped ImageNet folder, holding seed<SEED>/<Name>/model.pth.tar-N.
# Usage: DATA=/path/to/datasets bash scripts/independent-vlp/reproduce_xd.sh DATASET SEED WEIGHTSPATH [KEY VALUE ...]
source "$(dirname "${BASH_SOURCE[0]}")/../_protocols.sh"
script_job reproduce_xd independent-vlp "$@"

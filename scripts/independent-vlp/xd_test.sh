#!/usr/bin/env bash
# Independent V-L prompting (IVLP) cross-dataset / domain generalization: evaluate the ImageNet-trained model (xd_train.sh) on all
# classes of DATASET, at the epoch it was trained to. SOURCE_DATASET=... if it was not trained on imagenet.
# Usage: DATA=/path/to/datasets bash scripts/independent-vlp/xd_test.sh DATASET SEED [KEY VALUE ...]
source "$(dirname "${BASH_SOURCE[0]}")/../_protocols.sh"
[ $# -ge 2 ] || usage "DATASET SEED [KEY VALUE ...]"
xd_test "${TRAINER:-IVLP}" "${CFG:-vit_b16_c2_ep5_batch4_2+2ctx}" "$@"

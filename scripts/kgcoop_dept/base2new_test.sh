#!/usr/bin/env bash
# DePT over KgCoOp base-to-new: evaluate the base-trained model on the new classes (similarity logits alone), at the
# epoch it was trained to (DePT's runner: --load-epoch -1). Output: $OUTPUT/base2new/kgcoop_dept/test_new/...
# Usage: DATA=/path/to/datasets bash scripts/kgcoop_dept/base2new_test.sh DATASET SEED [KEY VALUE ...]
source "$(dirname "${BASH_SOURCE[0]}")/../_protocols.sh"
script_job base2new_test kgcoop_dept "$@"

"""Train or evaluate a prompt-learning method: the same command line as CoOp's and MaPLe's train.py.

    python train.py --root $DATA --seed 1 --trainer CoOp \
        --dataset-config-file configs/datasets/caltech101.yaml \
        --config-file configs/trainers/CoOp/vit_b16_ep50.yaml \
        --output-dir output/caltech101/seed1 DATASET.NUM_SHOTS 16

A shim over the library's entry point (vlprompt.entry.main); every module of this codebase's trainers/ and
datasets/ is imported from its file, so whatever is registered there is available.
"""
import os
import sys

from vlprompt.entry import main as _main
from vlprompt.errors import run_main

CODEBASE = os.path.dirname(os.path.abspath(__file__))


def main(argv=None, way_out=None):
    return _main(argv, codebase=CODEBASE, way_out=way_out)


if __name__ == "__main__":
    sys.exit(run_main(main))

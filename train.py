"""Train or evaluate a prompt-learning method: the same command line as CoOp's and MaPLe's train.py.

    python train.py --root $DATA --seed 1 --trainer CoOp \
        --dataset-config-file configs/datasets/caltech101.yaml \
        --config-file configs/trainers/CoOp/vit_b16_ep50.yaml \
        --output-dir output/caltech101/seed1 DATASET.NUM_SHOTS 16

Every module in trainers/ and datasets/ is imported, so whatever is registered there is available
and its config keys are known (no central list to keep in sync).
"""
import argparse
import glob
import importlib
import os
import sys
import time

REPO_ROOT = os.path.dirname(os.path.abspath(__file__))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

import torch  # noqa: E402

from vlprompt.config import extend_cfg, merge_from_file_checked, merge_from_list_checked  # noqa: E402
from vlprompt.engine import (build_trainer, close_logger, collect_env_info, get_cfg_default,  # noqa: E402
                             set_random_seed, setup_logger)


def import_plugins(root=REPO_ROOT, packages=("trainers", "datasets")):
    """Import every module of the repository's trainers/ and datasets/ packages (registers them)."""
    for package in packages:
        for path in sorted(glob.glob(os.path.join(root, package, "*.py"))):
            name = os.path.splitext(os.path.basename(path))[0]
            if not name.startswith("_"):
                importlib.import_module(f"{package}.{name}")


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", type=str, default="", help="path to dataset")
    parser.add_argument("--output-dir", type=str, default="", help="output directory")
    parser.add_argument("--resume", type=str, default="", help="checkpoint directory (from which the training resumes)")
    parser.add_argument("--seed", type=int, default=-1, help="only positive value enables a fixed seed")
    parser.add_argument("--source-domains", type=str, nargs="+", help="source domains for DA/DG")
    parser.add_argument("--target-domains", type=str, nargs="+", help="target domains for DA/DG")
    parser.add_argument("--transforms", type=str, nargs="+", help="data augmentation methods")
    parser.add_argument("--config-file", type=str, default="", help="path to config file")
    parser.add_argument("--dataset-config-file", type=str, default="", help="path to config file for dataset setup")
    parser.add_argument("--trainer", type=str, default="", help="name of trainer")
    parser.add_argument("--backbone", type=str, default="", help="name of CNN backbone")
    parser.add_argument("--head", type=str, default="", help="name of head")
    parser.add_argument("--eval-only", action="store_true", help="evaluation only")
    parser.add_argument("--model-dir", type=str, default="", help="load model from this directory for eval-only mode")
    parser.add_argument("--load-epoch", type=int, help="load model weights at this epoch for evaluation")
    parser.add_argument("--no-train", action="store_true", help="do not call trainer.train()")
    parser.add_argument("opts", default=None, nargs=argparse.REMAINDER, help="modify config options using the command-line")
    return parser


def reset_cfg(cfg, args):
    if args.root:
        cfg.DATASET.ROOT = args.root
    if args.output_dir:
        cfg.OUTPUT_DIR = args.output_dir
    if args.resume:
        cfg.RESUME = args.resume
    # The originals test `if args.seed:`, which silently ignores --seed 0.
    if args.seed >= 0:
        cfg.SEED = args.seed
    if args.source_domains:
        cfg.DATASET.SOURCE_DOMAINS = args.source_domains
    if args.target_domains:
        cfg.DATASET.TARGET_DOMAINS = args.target_domains
    if args.transforms:
        cfg.INPUT.TRANSFORMS = args.transforms
    if args.trainer:
        cfg.TRAINER.NAME = args.trainer
    if args.backbone:
        cfg.MODEL.BACKBONE.NAME = args.backbone
    if args.head:
        cfg.MODEL.HEAD.NAME = args.head


def setup_cfg(args):
    cfg = extend_cfg(get_cfg_default())
    if args.dataset_config_file:
        merge_from_file_checked(cfg, args.dataset_config_file)
    if args.config_file:
        merge_from_file_checked(cfg, args.config_file)
    reset_cfg(cfg, args)
    merge_from_list_checked(cfg, args.opts)
    cfg.freeze()
    return cfg


def print_args(args, cfg):
    print("***************")
    print("** Arguments **")
    print("***************")
    for key in sorted(args.__dict__):
        print(f"{key}: {args.__dict__[key]}")
    print("************")
    print("** Config **")
    print("************")
    print(cfg)


def main(argv=None):
    start_time = time.time()
    args = build_parser().parse_args(argv)
    import_plugins()
    cfg = setup_cfg(args)
    if cfg.SEED >= 0:
        print(f"Setting fixed seed: {cfg.SEED}")
        set_random_seed(cfg.SEED)
    setup_logger(cfg.OUTPUT_DIR)
    try:
        if torch.cuda.is_available() and cfg.USE_CUDA:
            torch.backends.cudnn.benchmark = True
        print_args(args, cfg)
        print("Collecting env info ...")
        print(f"** System info **\n{collect_env_info()}\n")

        trainer = build_trainer(cfg)
        trainer.run_info = {
            "config_file": args.config_file, "dataset_config_file": args.dataset_config_file,
            "eval_only": args.eval_only, "model_dir": args.model_dir or None, "load_epoch": args.load_epoch,
            "start_time": start_time,
        }
        if args.eval_only:
            trainer.load_model(args.model_dir, epoch=args.load_epoch)
            trainer.test()
            return trainer
        if not args.no_train:
            trainer.train()
        return trainer
    finally:
        close_logger()


if __name__ == "__main__":
    main()

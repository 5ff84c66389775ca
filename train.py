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

from vlprompt import __version__  # noqa: E402
from vlprompt.clip_loader import file_sha256, weights_sha256  # noqa: E402
from vlprompt.config import extend_cfg, merge_from_file_checked, merge_from_list_checked  # noqa: E402
from vlprompt.engine import (TRAINER_REGISTRY, build_trainer, close_logger, collect_env_info,  # noqa: E402
                             get_cfg_default, set_random_seed, setup_logger)
from vlprompt.engine.builtin.registry import check_availability  # noqa: E402
from vlprompt.errors import ConfigValueError, MissingFileError, RunDirectoryError, run_main  # noqa: E402
from vlprompt.run_dir import claim_run_directory, is_finished  # noqa: E402
from vlprompt.run_identity import build_identity, model_mismatch, read_identity  # noqa: E402
from vlprompt.validation import RUN_WARNINGS, validate_run  # noqa: E402


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
    parser.add_argument("--skip-finished", action="store_true",
                        help="exit at once if the output dir holds a finished run of this identity (the scripts use it)")
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


def resolve_load_epoch(model_dir, load_epoch, trainer_cls):
    """--load-epoch as given, or for a negative one (DePT's runner passes -1) the latest epoch saved in model_dir."""
    if load_epoch is None or load_epoch >= 0 or not model_dir:
        return load_epoch
    from vlprompt.resume import checkpoint_epochs

    name = getattr(trainer_cls, "CHECKPOINT_NAME", None)
    folders = [os.path.join(model_dir, name)] if name else glob.glob(os.path.join(glob.escape(model_dir), "*"))
    epochs = set().union(*(checkpoint_epochs(f) for f in folders)) if folders else set()
    if not epochs:
        raise MissingFileError(f"--load-epoch {load_epoch} loads the latest checkpoint, but {model_dir} holds no "
                               f"{name or '<name>'}/model.pth.tar-N")
    return max(epochs)


def model_checkpoints(model_dir, load_epoch, trainer_cls):
    """{relative path: SHA-256} of the checkpoint files an evaluation loads from model_dir."""
    model_file = "model-best.pth.tar" if load_epoch is None else f"model.pth.tar-{load_epoch}"
    names = [trainer_cls.CHECKPOINT_NAME] if getattr(trainer_cls, "CHECKPOINT_NAME", None) else []
    found = sorted(glob.glob(os.path.join(glob.escape(model_dir), "*", model_file)))
    files = [p for p in found if os.path.basename(os.path.dirname(p)) in names] or found
    if not files:
        from vlprompt.trainer import PromptTrainer

        name = names[0] if names else "<name>"
        raise MissingFileError(PromptTrainer._missing_checkpoint_message(
            model_dir, name, os.path.join(model_dir, name, model_file)))
    return {os.path.relpath(p, model_dir): file_sha256(p) for p in files}


def run_identity(cfg, args, trainer_cls):
    """The identity of this run (vlprompt.run_identity); for an evaluation, checked against the training
    identity of the model it loads."""
    model = None
    if args.eval_only and args.model_dir:
        if not os.path.isdir(args.model_dir):
            raise MissingFileError(f"No model directory {args.model_dir} (from --model-dir)")
        trained = read_identity(args.model_dir)
        model = {"dir": os.path.abspath(args.model_dir), "load_epoch": args.load_epoch,
                 "files": model_checkpoints(args.model_dir, args.load_epoch, trainer_cls),
                 "trained_fingerprint": trained.get("fingerprint") if trained else None}
    identity = build_identity(cfg, "eval" if args.eval_only else "train", args.opts, args.config_file,
                              args.dataset_config_file, clip_sha256=weights_sha256(cfg.MODEL.BACKBONE.NAME),
                              model=model, version=__version__)
    if model and trained:
        mismatch = model_mismatch(trained, identity)
        if mismatch:
            raise RunDirectoryError(
                f"The model in {args.model_dir} was trained with other settings than this evaluation asks for: "
                + "; ".join(f"{m}" for m in mismatch) + ". Pass the same config file and KEY VALUE options as "
                "its training run (the scripts do)")
    return identity


def main(argv=None):
    start_time = time.time()
    RUN_WARNINGS.clear()
    args = build_parser().parse_args(argv)
    import_plugins()
    cfg = setup_cfg(args)
    try:
        check_availability(cfg.TRAINER.NAME, TRAINER_REGISTRY.registered_names())
    except ValueError as e:
        raise ConfigValueError(f"Trainer (--trainer / TRAINER.NAME): {e}") from None
    trainer_cls = TRAINER_REGISTRY.get(cfg.TRAINER.NAME)
    validate_run(cfg, trainer_cls, eval_only=args.eval_only, model_dir=args.model_dir, seed_arg=args.seed)
    if args.eval_only:
        args.load_epoch = resolve_load_epoch(args.model_dir, args.load_epoch, trainer_cls)
    identity = run_identity(cfg, args, trainer_cls)
    lock, existing = claim_run_directory(cfg.OUTPUT_DIR, identity)
    try:
        if args.skip_finished and existing and is_finished(cfg.OUTPUT_DIR):  # existing: the same identity
            print(f"The results exist at {cfg.OUTPUT_DIR} (so skip this job)")
            return 0
        if cfg.SEED >= 0:
            print(f"Setting fixed seed: {cfg.SEED}")
            set_random_seed(cfg.SEED)
        else:
            print("No fixed seed (--seed -1): this run cannot be repeated exactly; result.json records seed null")
        setup_logger(cfg.OUTPUT_DIR)
        try:
            if torch.cuda.is_available() and cfg.USE_CUDA:
                torch.backends.cudnn.benchmark = True
            print_args(args, cfg)
            print("Collecting env info ...")
            print(f"** System info **\n{collect_env_info()}\n")
            print(f"Run identity: {identity['fingerprint']} (recorded in {os.path.join(cfg.OUTPUT_DIR, 'identity.json')})")

            trainer = build_trainer(cfg)
            trainer.run_info = {
                "config_file": args.config_file, "dataset_config_file": args.dataset_config_file,
                "eval_only": args.eval_only, "model_dir": args.model_dir or None, "load_epoch": args.load_epoch,
                "start_time": start_time, "identity": identity,
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
    finally:
        lock.release()


if __name__ == "__main__":
    sys.exit(run_main(main))

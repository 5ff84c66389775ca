"""One run, as data: what train.py's command line says, as a `RunSpec`.

The protocols build RunSpecs, the launchers and the scripts hand them to `vlprompt.entry.execute`, and
`RunSpec.argv()` writes the equivalent train.py command line (for logs, DRY_RUN and the scripts' records):
nothing is turned into strings to be parsed again in the same process. `parse_argv` reads a train.py
command line (the originals' flags) into a RunSpec.

This module imports neither torch nor CLIP.
"""
import argparse
import dataclasses

# In a test's load_epoch: the epoch its training run saved, not known when the plan is made
# (vlprompt.protocols.resolve_spec fills it in just before the run).
TRAINED_EPOCH = "{trained_epoch}"


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """The arguments of one train.py run (the originals' flags, same meaning)."""
    trainer: str = ""
    config_file: str = ""
    dataset_config_file: str = ""
    output_dir: str = ""
    root: str = ""
    seed: int = -1                       # -1: unseeded (the originals' default)
    opts: tuple = ()                     # KEY VALUE config options, as strings
    eval_only: bool = False
    model_dir: str = ""
    load_epoch: object = None            # int, None (model-best) or TRAINED_EPOCH
    resume: str = ""
    source_domains: tuple = ()
    target_domains: tuple = ()
    transforms: tuple = ()
    backbone: str = ""
    head: str = ""
    no_train: bool = False
    skip_finished: bool = False

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)

    def argv(self):
        """The train.py command line of this run, in the order the scripts always wrote it."""
        argv = ["--skip-finished"] if self.skip_finished else []
        if self.root:
            argv += ["--root", self.root]
        if self.seed is not None and self.seed != -1:
            argv += ["--seed", str(self.seed)]
        for flag, value in (("--trainer", self.trainer), ("--dataset-config-file", self.dataset_config_file),
                            ("--config-file", self.config_file)):
            if value:
                argv += [flag, value]
        for flag, values in (("--source-domains", self.source_domains), ("--target-domains", self.target_domains),
                             ("--transforms", self.transforms)):
            if values:
                argv += [flag, *values]
        for flag, value in (("--backbone", self.backbone), ("--head", self.head), ("--resume", self.resume)):
            if value:
                argv += [flag, value]
        if self.output_dir:
            argv += ["--output-dir", self.output_dir]
        if self.model_dir:
            argv += ["--model-dir", self.model_dir]
        if self.load_epoch is not None:
            argv += ["--load-epoch", str(self.load_epoch)]
        if self.eval_only:
            argv.append("--eval-only")
        if self.no_train:
            argv.append("--no-train")
        return argv + [str(o) for o in self.opts]


class Run:
    """One run of a plan: a name unique in the plan (e.g. "caltech101-seed1-train"), its RunSpec, and the names
    of the runs of earlier stages it needs (a test needs its training run). `Run(name, argv, output_dir)` also
    takes a train.py command line."""

    def __init__(self, name, spec, output_dir=None, after=()):
        if not isinstance(spec, RunSpec):
            spec = parse_argv(spec)
        if output_dir is not None:
            spec = spec.replace(output_dir=str(output_dir))
        self.name, self.spec, self.after = name, spec, list(after)

    @property
    def output_dir(self):
        return self.spec.output_dir

    @property
    def argv(self):
        return self.spec.argv()

    def __repr__(self):
        return f"Run({self.name!r}, {self.spec!r}, after={self.after!r})"

    def __eq__(self, other):
        return isinstance(other, Run) and (self.name, self.spec, self.after) == (other.name, other.spec, other.after)

    __hash__ = None


def build_parser(description="Train or evaluate a prompt-learning method (CoOp's and MaPLe's train.py)"):
    parser = argparse.ArgumentParser(description=description)
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


def parse_argv(argv):
    """A train.py command line as a RunSpec (argparse's own errors exit 2, as train.py's do)."""
    args = build_parser().parse_args([str(a) for a in argv])
    return RunSpec(trainer=args.trainer, config_file=args.config_file, dataset_config_file=args.dataset_config_file,
                   output_dir=args.output_dir, root=args.root, seed=args.seed, opts=tuple(args.opts or ()),
                   eval_only=args.eval_only, model_dir=args.model_dir, load_epoch=args.load_epoch, resume=args.resume,
                   source_domains=tuple(args.source_domains or ()), target_domains=tuple(args.target_domains or ()),
                   transforms=tuple(args.transforms or ()), backbone=args.backbone, head=args.head,
                   no_train=args.no_train, skip_finished=args.skip_finished)

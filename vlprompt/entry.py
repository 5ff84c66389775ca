"""Training or evaluating one run: the library's one entry point.

    import vlprompt
    result = vlprompt.train("CoOp", "vit_b16_ep50", "caltech101", root="/data", output_dir="out/coop/seed1",
                            seed=1, opts={"DATASET.NUM_SHOTS": 16})
    result.metrics["accuracy"], result.output_dir, result.identity["fingerprint"]
    evaluated = vlprompt.evaluate("CoOp", "vit_b16_ep50", "caltech101", model_dir="out/coop/seed1",
                                  load_epoch=50, root="/data", output_dir="out/coop_new/seed1", seed=1,
                                  opts={"DATASET.NUM_SHOTS": 16, "DATASET.SUBSAMPLE_CLASSES": "new"})

    vlprompt.main(["--root", "/data", "--trainer", "CoOp", ...])   # train.py's command line

`execute(spec)` runs one `RunSpec` (vlprompt.run_spec): it resolves the config, checks every value, records
the run's identity, claims the output directory (vlprompt.run_dir), then trains and/or evaluates with the
registered trainer and returns a `RunResult`. train.py, the scripts, `vlprompt run`'s local workers and the
Slurm jobs all call it. The trainers and datasets of a codebase (vlprompt's own, or a Dassl codebase's) are
imported from their files (vlprompt.plugins.load_codebase), never by editing sys.path.
"""
import dataclasses
import glob
import json
import os
import time

from .errors import ConfigValueError, MissingFileError, RunDirectoryError, UserError
from .run_spec import RunSpec, parse_argv

DEFAULT_WAY_OUT = "With train.py choose another --output-dir"


@dataclasses.dataclass
class RunResult:
    """What a run left: its directory, its identity, its result.json (None if it tested nothing) and the
    trainer it built (None for a skipped run), for a notebook to look into."""
    output_dir: str
    identity: dict
    skipped: bool = False
    result: dict = None
    trainer: object = None

    @property
    def metrics(self):
        return (self.result or {}).get("metrics")


# --------------------------------------------------------------------------------------- the config
def _resolve(path, kind, codebase, trainer=None):
    """A config given by path, or by name: configs/trainers/<trainer>/<name>.yaml or configs/datasets/<name>.yaml
    of the codebase."""
    if not path or os.path.isfile(path) or path.endswith((".yaml", ".yml")):
        return path
    relative = os.path.join("configs", "trainers", trainer, f"{path}.yaml") if kind == "trainer" else \
        os.path.join("configs", "datasets", f"{path}.yaml")
    found = os.path.join(codebase, relative) if codebase else relative
    if not os.path.isfile(found):
        raise MissingFileError(f"No {kind} config {path!r}: expected {found}")
    return found


def setup_cfg(spec):
    """Dassl's defaults and every registered trainer's and dataset's keys, then the dataset YAML, the method
    YAML, the flags and the KEY VALUE options, checked key by key (unknown keys name the closest one)."""
    from .config import extend_cfg
    from .engine import get_cfg_default
    from .engine.config_io import merge_from_file_checked, merge_from_list_checked

    cfg = extend_cfg(get_cfg_default())
    if spec.dataset_config_file:
        merge_from_file_checked(cfg, spec.dataset_config_file)
    if spec.config_file:
        merge_from_file_checked(cfg, spec.config_file)
    _apply_flags(cfg, spec)
    merge_from_list_checked(cfg, list(spec.opts))
    cfg.freeze()
    return cfg


def _apply_flags(cfg, spec):
    """The flags' config keys, as the originals' reset_cfg sets them."""
    if spec.root:
        cfg.DATASET.ROOT = spec.root
    if spec.output_dir:
        cfg.OUTPUT_DIR = spec.output_dir
    if spec.resume:
        cfg.RESUME = spec.resume
    if spec.seed is not None and spec.seed >= 0:  # the originals test `if args.seed:`, which ignores --seed 0
        cfg.SEED = spec.seed
    if spec.source_domains:
        cfg.DATASET.SOURCE_DOMAINS = list(spec.source_domains)
    if spec.target_domains:
        cfg.DATASET.TARGET_DOMAINS = list(spec.target_domains)
    if spec.transforms:
        cfg.INPUT.TRANSFORMS = list(spec.transforms)
    if spec.trainer:
        cfg.TRAINER.NAME = spec.trainer
    if spec.backbone:
        cfg.MODEL.BACKBONE.NAME = spec.backbone
    if spec.head:
        cfg.MODEL.HEAD.NAME = spec.head


def _registered(registry, name, what):
    from .engine.names import check_availability

    try:
        check_availability(name, registry.registered_names())
    except ValueError as e:
        raise ConfigValueError(f"{what}: {e}") from None
    return registry.get(name)


def print_args(spec, cfg):
    print("***************")
    print("** Arguments **")
    print("***************")
    shown = {field.name: getattr(spec, field.name) for field in dataclasses.fields(spec)}
    shown = {k: (list(v) if v else None) if isinstance(v, tuple) and k != "opts" else v for k, v in shown.items()}
    shown["opts"] = list(spec.opts)
    for key in sorted(shown):
        print(f"{key}: {shown[key]}")
    print("************")
    print("** Config **")
    print("************")
    print(cfg)


# ------------------------------------------------------------------------------------------ identity
def resolve_load_epoch(model_dir, load_epoch, trainer_cls):
    """--load-epoch as given, or for a negative one (DePT's runner passes -1) the latest epoch saved in model_dir."""
    if load_epoch is None or load_epoch >= 0 or not model_dir:
        return load_epoch
    from .resume import checkpoint_epochs

    name = getattr(trainer_cls, "CHECKPOINT_NAME", None)
    folders = [os.path.join(model_dir, name)] if name else glob.glob(os.path.join(glob.escape(model_dir), "*"))
    epochs = set().union(*(checkpoint_epochs(f) for f in folders)) if folders else set()
    if not epochs:
        raise MissingFileError(f"--load-epoch {load_epoch} loads the latest checkpoint, but {model_dir} holds no "
                               f"{name or '<name>'}/model.pth.tar-N")
    return max(epochs)


def model_checkpoints(model_dir, load_epoch, trainer_cls):
    """{relative path: SHA-256} of the checkpoint files an evaluation loads from model_dir."""
    from .clip_loader import file_sha256

    model_file = "model-best.pth.tar" if load_epoch is None else f"model.pth.tar-{load_epoch}"
    names = [trainer_cls.CHECKPOINT_NAME] if getattr(trainer_cls, "CHECKPOINT_NAME", None) else []
    found = sorted(glob.glob(os.path.join(glob.escape(model_dir), "*", model_file)))
    files = [p for p in found if os.path.basename(os.path.dirname(p)) in names] or found
    if not files:
        from .trainer import PromptTrainer

        name = names[0] if names else "<name>"
        raise MissingFileError(PromptTrainer._missing_checkpoint_message(
            model_dir, name, os.path.join(model_dir, name, model_file)))
    return {os.path.relpath(p, model_dir): file_sha256(p) for p in files}


def run_device(cfg):
    """The device type a run computes on (the engine's rule: CUDA when there is one and USE_CUDA)."""
    import torch

    return "cuda" if torch.cuda.is_available() and cfg.USE_CUDA else "cpu"


def run_identity(cfg, spec, trainer_cls, codebase):
    """The identity of this run (vlprompt.run_identity); for an evaluation, checked against the training
    identity of the model it loads; with --resume, the source's identity checked against it."""
    import torch

    from .version import __version__
    from .clip_loader import weights_sha256
    from .config import config_scope
    from .engine import ENGINE
    from .run_dir import recorded_identity
    from .run_identity import build_identity, model_mismatch, recorded_environment, trained_summary

    scope = config_scope()
    device = run_device(cfg)
    precision = trainer_cls.run_precision(cfg, device, verbose=False).name \
        if hasattr(trainer_cls, "run_precision") else None
    model = trained = None
    if spec.eval_only and spec.model_dir:
        if not os.path.isdir(spec.model_dir):
            raise MissingFileError(f"No model directory {spec.model_dir} (from --model-dir)")
        trained = recorded_identity(spec.model_dir, scope)
        model = {"dir": os.path.abspath(spec.model_dir), "load_epoch": spec.load_epoch,
                 "files": model_checkpoints(spec.model_dir, spec.load_epoch, trainer_cls),
                 "trained": trained_summary(trained)}
    recorded = recorded_environment(ENGINE, {"vlprompt": __version__, "torch": torch.__version__}, codebase)
    identity = build_identity(cfg, "eval" if spec.eval_only else "train", spec.opts, spec.config_file,
                              spec.dataset_config_file, clip_sha256=weights_sha256(cfg.MODEL.BACKBONE.NAME),
                              model=model, version=__version__, precision=precision, device=device, scope=scope,
                              recorded=recorded, revision=getattr(trainer_cls, "RESULTS_REVISION", 0))
    if model and trained:
        mismatch = model_mismatch(trained, identity)
        if mismatch:
            raise RunDirectoryError(
                f"The model in {spec.model_dir} was trained with other settings than this evaluation asks for: "
                + "; ".join(mismatch) + ". Pass the same config file and KEY VALUE options as its training run "
                "(the scripts do)")
    if cfg.RESUME and os.path.realpath(cfg.RESUME) != os.path.realpath(cfg.OUTPUT_DIR):
        check_resume_source(cfg.RESUME, identity, scope)
    return identity


def check_resume_source(source, identity, scope):
    """--resume SRC continues SRC's model in this run's directory: SRC must hold this very run (same
    identity), or the result would carry this command's settings for another run's model."""
    from .run_dir import recorded_identity
    from .run_identity import differences

    if not os.path.isdir(source):
        raise MissingFileError(f"No directory {source} (from --resume)")
    recorded = recorded_identity(source, scope)
    if recorded is None:
        raise RunDirectoryError(f"--resume {source} holds no run identity (identity.json), so it cannot be told to be "
                                "this run: resume from a run directory that vlprompt wrote with these settings")
    if recorded.get("fingerprint") != identity["fingerprint"]:
        raise RunDirectoryError(f"--resume {source} holds another run: " + "; ".join(differences(recorded, identity))
                                + ". Resume only a run with the same settings")


# ---------------------------------------------------------------------------------------- running
def execute(spec, codebase=None, way_out=None):
    """Run one RunSpec: check, claim the output directory, train and/or evaluate. Returns a RunResult (with
    skipped=True when --skip-finished found the same run finished). User errors raise a UserError subclass
    before any work; codebase: the folder whose trainers/ and datasets/ (and configs/, for config names) are
    used (default: vlprompt.plugins.find_codebase)."""
    from .plugins import find_codebase, load_codebase

    start_time = time.time()
    if codebase is None:
        codebase = find_codebase("trainers", what="a codebase with trainers/ and datasets/")
    load_codebase(codebase)
    spec = spec.replace(config_file=_resolve(spec.config_file, "trainer", codebase, spec.trainer),
                        dataset_config_file=_resolve(spec.dataset_config_file, "dataset", codebase))

    from .engine import (DATASET_REGISTRY, TRAINER_REGISTRY, build_trainer, close_logger, collect_env_info,
                         set_random_seed, setup_logger)
    from .run_dir import claim_run_directory, is_finished, record_identity
    from .config import config_scope
    from .validation import RUN_WARNINGS, validate_run

    RUN_WARNINGS.clear()
    cfg = setup_cfg(spec)
    trainer_cls = _registered(TRAINER_REGISTRY, cfg.TRAINER.NAME, "Trainer (--trainer / TRAINER.NAME)")
    dataset_cls = _registered(DATASET_REGISTRY, cfg.DATASET.NAME, "Dataset (DATASET.NAME, from --dataset-config-file)")
    validate_run(cfg, trainer_cls, eval_only=spec.eval_only, model_dir=spec.model_dir, seed_arg=spec.seed,
                 dataset_cls=dataset_cls)
    if spec.eval_only:
        spec = spec.replace(load_epoch=resolve_load_epoch(spec.model_dir, spec.load_epoch, trainer_cls))
    identity = run_identity(cfg, spec, trainer_cls, codebase)
    lock, existing = claim_run_directory(cfg.OUTPUT_DIR, identity, scope=config_scope(),
                                         way_out=way_out or DEFAULT_WAY_OUT)
    try:
        if spec.skip_finished and existing and is_finished(cfg.OUTPUT_DIR):  # existing: the same identity
            print(f"The results exist at {cfg.OUTPUT_DIR} (so skip this job)")
            return RunResult(cfg.OUTPUT_DIR, identity, skipped=True, result=_read_result(cfg.OUTPUT_DIR))
        record_identity(cfg.OUTPUT_DIR, identity, existing)
        if cfg.SEED >= 0:
            print(f"Setting fixed seed: {cfg.SEED}")
            set_random_seed(cfg.SEED)
        else:
            print("No fixed seed (--seed -1): this run cannot be repeated exactly; result.json records seed null")
        setup_logger(cfg.OUTPUT_DIR)
        try:
            import torch

            if torch.cuda.is_available() and cfg.USE_CUDA:
                torch.backends.cudnn.benchmark = True
            print_args(spec, cfg)
            print("Collecting env info ...")
            print(f"** System info **\n{collect_env_info()}\n")
            print(f"Run identity: {identity['fingerprint']} (recorded in {os.path.join(cfg.OUTPUT_DIR, 'identity.json')})")
            trainer = build_trainer(cfg)
            trainer.run_info = {
                "config_file": spec.config_file, "dataset_config_file": spec.dataset_config_file,
                "eval_only": spec.eval_only, "model_dir": spec.model_dir or None, "load_epoch": spec.load_epoch,
                "start_time": start_time, "identity": identity,
            }
            if spec.eval_only:
                trainer.load_model(spec.model_dir, epoch=spec.load_epoch)
                trainer.test()
            elif not spec.no_train:
                trainer.train()
            return RunResult(cfg.OUTPUT_DIR, identity, result=_read_result(cfg.OUTPUT_DIR, identity), trainer=trainer)
        finally:
            close_logger()
    finally:
        lock.release()


def _read_result(output_dir, identity=None):
    """result.json of the run (of this identity, when given), or None."""
    try:
        with open(os.path.join(output_dir, "result.json")) as f:
            result = json.load(f)
    except (OSError, ValueError):
        return None
    if identity is not None and (result.get("identity") or {}).get("fingerprint") != identity["fingerprint"]:
        return None
    return result


def main(argv=None, codebase=None, way_out=None):
    """train.py: parse its command line (argv, default sys.argv[1:]) and execute the run."""
    import sys

    return execute(parse_argv(sys.argv[1:] if argv is None else argv), codebase=codebase, way_out=way_out)


def train(trainer, config, dataset, *, root, output_dir, seed=1, opts=None, codebase=None, skip_finished=False,
          **flags):
    """Train one run and test its final model; returns its RunResult. config and dataset: names (the YAML
    files of the codebase's configs/trainers/<trainer>/ and configs/datasets/) or paths; opts: {KEY: value}
    config options; flags: the other RunSpec fields (target_domains, resume, backbone...)."""
    spec = RunSpec(trainer=trainer, config_file=config, dataset_config_file=dataset, output_dir=str(output_dir),
                   root=str(root), seed=seed, opts=_opts(opts), skip_finished=skip_finished, **flags)
    return execute(spec, codebase=codebase)


def evaluate(trainer, config, dataset, *, model_dir, root, output_dir, load_epoch=None, seed=1, opts=None,
             codebase=None, **flags):
    """Evaluate the model trained in model_dir (at load_epoch, default model-best) on a dataset; returns the
    RunResult. Arguments as train()'s."""
    spec = RunSpec(trainer=trainer, config_file=config, dataset_config_file=dataset, output_dir=str(output_dir),
                   root=str(root), seed=seed, opts=_opts(opts), eval_only=True, model_dir=str(model_dir),
                   load_epoch=load_epoch, **flags)
    return execute(spec, codebase=codebase)


def _opts(opts):
    if opts is None:
        return ()
    if isinstance(opts, dict):
        return tuple(str(item) for pair in opts.items() for item in pair)
    if len(opts) % 2:
        raise ConfigValueError(f"opts must be KEY VALUE pairs; got an odd number: {list(opts)}")
    return tuple(str(o) for o in opts)


__all__ = ["RunResult", "RunSpec", "execute", "main", "train", "evaluate", "UserError"]

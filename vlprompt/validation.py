"""Config values checked before any work: one line naming the key, the value and what is allowed.

`validate_run` covers what every run shares (seed, shots, batch sizes, epochs, learning rate, the
evaluation's model, the context lengths of every method); a trainer adds its own checks in a
`validate_config(cfg)` classmethod. Checks that need the data (shots against the size of the largest
class, split files, CSV labels) are made by the readers as they load it, also before training.
"""
from .errors import ConfigValueError

# A method's context lengths: key -> the depth key that may switch that modality off (then 0 is allowed).
# Warnings about the current run (e.g. fewer images than K), also written to its result.json; train.py
# clears the list when a run starts.
RUN_WARNINGS = []

CONTEXT_LENGTH_KEYS = {"N_CTX": None, "N_PRO": None, "N_CTX_TEXT": "PROMPT_DEPTH_TEXT",
                       "N_CTX_VISION": "PROMPT_DEPTH_VISION"}


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _require(ok, key, value, allowed):
    if not ok:
        raise ConfigValueError(f"{key} {value!r} is not allowed: expected {allowed}")


def validate_run(cfg, trainer_cls, eval_only=False, model_dir="", seed_arg=-1, config_node=None):
    _require(_is_int(seed_arg) and seed_arg >= -1, "--seed", seed_arg,
             "a seed >= 0, or -1 (the default) for an unseeded run")
    _require(_is_int(cfg.SEED) and cfg.SEED >= -1, "SEED", cfg.SEED, "a seed >= 0, or -1 for an unseeded run")
    shots = cfg.DATASET.NUM_SHOTS
    _require(_is_int(shots) and (shots >= 1 or shots == -1), "DATASET.NUM_SHOTS", shots,
             "K >= 1 images per class, or -1 for all images")
    for key in ("TRAIN_X", "TEST"):
        size = cfg.DATALOADER[key].BATCH_SIZE
        _require(_is_int(size) and size >= 1, f"DATALOADER.{key}.BATCH_SIZE", size, "an integer >= 1")
    if not eval_only:
        _require(_is_int(cfg.OPTIM.MAX_EPOCH) and cfg.OPTIM.MAX_EPOCH >= 1, "OPTIM.MAX_EPOCH", cfg.OPTIM.MAX_EPOCH,
                 "an integer >= 1")
        _require(isinstance(cfg.OPTIM.LR, (int, float)) and cfg.OPTIM.LR > 0, "OPTIM.LR", cfg.OPTIM.LR,
                 "a learning rate > 0")
    trainable = getattr(trainer_cls, "HAS_TRAINABLE_PROMPTS", True)
    if eval_only and not model_dir and trainable:
        raise ConfigValueError(
            f"--eval-only needs --model-dir for {cfg.TRAINER.NAME}: without trained prompts it would evaluate "
            "their random initialisation. Give the run directory of a trained model (and --load-epoch N)")
    node_name = config_node or getattr(trainer_cls, "CONFIG_NODE", None)
    if node_name and node_name in cfg.TRAINER:
        validate_context_lengths(cfg.TRAINER[node_name], f"TRAINER.{node_name}")
    extra = getattr(trainer_cls, "validate_config", None)
    if extra is not None:
        extra(cfg)


def validate_context_lengths(node, prefix):
    for key, depth_key in CONTEXT_LENGTH_KEYS.items():
        if key not in node:
            continue
        value = node[key]
        switched_off = depth_key is not None and node.get(depth_key, None) == 0
        if switched_off:
            _require(_is_int(value) and value >= 0, f"{prefix}.{key}", value,
                     f"an integer >= 0 ({prefix}.{depth_key} is 0)")
        else:
            _require(_is_int(value) and value >= 1, f"{prefix}.{key}", value,
                     "at least 1 learnable context token" + (f" (or 0 with {prefix}.{depth_key} 0)" if depth_key else ""))


def check_shots_against_classes(num_shots, counts, classnames=None):
    """Say which classes have fewer than K training images. They use all they have: the original code's
    rule (Dassl's generate_fewshot_dataset), kept so that every seed selects the originals' images; a K
    above every class is a run on all training images, and the warning says so. counts: {label: n}."""
    if num_shots < 1 or not counts:
        return
    name = (lambda label: classnames.get(label, label)) if isinstance(classnames, dict) else (lambda label: label)
    largest_label = max(counts, key=lambda label: counts[label])
    largest = counts[largest_label]
    if num_shots > largest:
        warning = (f"DATASET.NUM_SHOTS {num_shots} is more than any class has (the largest class, "
                   f"{name(largest_label)!r}, has {largest} training images): every class uses all its images, so "
                   f"this is not a {num_shots}-shot run")
        print(f"WARNING: {warning}")
        RUN_WARNINGS.append(warning)
        return
    small = sorted((n, str(name(label))) for label, n in counts.items() if n < num_shots)
    if small:
        shown = ", ".join(f"{c!r}: {n}" for n, c in small[:3]) + (" ..." if len(small) > 3 else "")
        note = (f"{len(small)} of {len(counts)} classes have fewer than {num_shots} training images ({shown}); "
                "they use all they have, as the original code does")
        print(f"Note: {note}")

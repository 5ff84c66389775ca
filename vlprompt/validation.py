"""Config values checked before any work: one line naming the key, the value and what is allowed.

`validate_run` runs before a run's identity is written and its directory claimed. It covers
- every number of the config: finite (no inf/nan anywhere);
- the ranged keys every run shares (RANGES: seed, shots, batch sizes, workers, epochs, learning rate,
  weight decay, momentum) and the context lengths of every method;
- every enumerated key: the engine's (vlprompt.engine.choices), vlprompt's (CHOICES), and each trainer's
  (its CONFIG_CHOICES);
- the trainer's own checks (a `validate_config(cfg)` classmethod) and the dataset's (the DG readers' domain
  choice, their `validate_config`).
Checks that need the data (shots against the size of the largest class, split files, CSV labels) are made
by the readers as they load it, also before training.
"""
import math

from .errors import ConfigValueError

# Warnings about the current run (e.g. fewer images than K), also written to its result.json; train.py
# clears the list when a run starts.
RUN_WARNINGS = []

# A method's context lengths: key -> the depth key that may switch that modality off (then 0 is allowed).
CONTEXT_LENGTH_KEYS = {"N_CTX": None, "N_PRO": None, "N_CTX_TEXT": "PROMPT_DEPTH_TEXT",
                       "N_CTX_VISION": "PROMPT_DEPTH_VISION"}

MAX_SEED = 2**32 - 1  # numpy's seeds (Dassl's set_random_seed seeds numpy too)


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _three_numbers(value):
    return isinstance(value, (list, tuple)) and len(value) == 3 and all(_is_number(v) for v in value)


def _require(ok, key, value, allowed):
    if not ok:
        raise ConfigValueError(f"{key} {value!r} is not allowed: expected {allowed}")


def _choice_text(allowed):
    return f"one of {', '.join(map(str, allowed))}"


# key -> (test, what is allowed). `train` marks the keys only a training run uses.
RANGES = {
    "SEED": (lambda v: _is_int(v) and -1 <= v <= MAX_SEED, f"a seed from 0 to {MAX_SEED}, or -1 for an unseeded run"),
    "DATASET.NUM_SHOTS": (lambda v: _is_int(v) and (v >= 1 or v == -1), "K >= 1 images per class, or -1 for all images"),
    "DATALOADER.TRAIN_X.BATCH_SIZE": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "DATALOADER.TEST.BATCH_SIZE": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "DATALOADER.NUM_WORKERS": (lambda v: _is_int(v) and v >= 0, "an integer >= 0 (0: load in the main process)"),
    "INPUT.SIZE": (lambda v: isinstance(v, (list, tuple)) and len(v) == 2 and all(_is_int(s) and s >= 1 for s in v),
                   "(height, width), two integers >= 1, e.g. (224, 224)"),
    "INPUT.PIXEL_MEAN": (lambda v: _three_numbers(v), "three numbers, one per RGB channel"),
    "INPUT.PIXEL_STD": (lambda v: _three_numbers(v) and all(s > 0 for s in v), "three numbers > 0, one per RGB channel"),
}
TRAIN_RANGES = {
    "OPTIM.MAX_EPOCH": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "OPTIM.LR": (lambda v: _is_number(v) and v > 0, "a learning rate > 0"),
    "OPTIM.WEIGHT_DECAY": (lambda v: _is_number(v) and v >= 0, "a weight decay >= 0"),
    "OPTIM.MOMENTUM": (lambda v: _is_number(v) and v >= 0, "a momentum >= 0"),
    "OPTIM.ADAM_BETA1": (lambda v: _is_number(v) and 0 <= v < 1, "a number in [0, 1)"),
    "OPTIM.ADAM_BETA2": (lambda v: _is_number(v) and 0 <= v < 1, "a number in [0, 1)"),
    "OPTIM.RMSPROP_ALPHA": (lambda v: _is_number(v) and 0 <= v <= 1, "a number in [0, 1]"),
}


SUBSAMPLE_CHOICES = ("all", "base", "new")  # DATASET.SUBSAMPLE_CLASSES (vlprompt.data.subsample)


def choices():
    """Every enumerated key a run's config holds -> its allowed values (engine's and vlprompt's)."""
    from .engine.choices import ENGINE_CHOICES

    return {**ENGINE_CHOICES, "DATASET.SUBSAMPLE_CLASSES": SUBSAMPLE_CHOICES,
            "TEST.IMAGE_CACHE_DECODER": ("pil", "torchvision")}


def _lookup(cfg, key):
    node = cfg
    for part in key.split("."):
        if not hasattr(node, "get") or part not in node:
            return _MISSING
        node = node[part]
    return node


_MISSING = object()


def check_finite(node, prefix=""):
    """No inf or nan anywhere in the config (yacs reads "1e999" as inf)."""
    for key, value in node.items():
        name = f"{prefix}{key}"
        if hasattr(value, "items"):
            check_finite(value, name + ".")
            continue
        for item in value if isinstance(value, (list, tuple)) else (value,):
            if isinstance(item, float) and not math.isfinite(item):
                raise ConfigValueError(f"{name} {value!r} is not allowed: expected a finite number")


def check_choice(key, value, allowed):
    for item in value if isinstance(value, (list, tuple)) else (value,):
        _require(item in allowed, key, item if isinstance(value, (list, tuple)) else value, _choice_text(allowed))


def validate_run(cfg, trainer_cls, eval_only=False, model_dir="", seed_arg=-1, config_node=None, dataset_cls=None):
    _require(_is_int(seed_arg) and -1 <= seed_arg <= MAX_SEED, "--seed", seed_arg,
             f"a seed from 0 to {MAX_SEED}, or -1 (the default) for an unseeded run")
    check_finite(cfg)
    for key, (test, allowed) in {**RANGES, **({} if eval_only else TRAIN_RANGES)}.items():
        value = _lookup(cfg, key)
        if value is not _MISSING:
            _require(test(value), key, value, allowed)
    for key, allowed in choices().items():
        value = _lookup(cfg, key)
        if value is not _MISSING:
            check_choice(key, value, allowed)
    trainable = getattr(trainer_cls, "HAS_TRAINABLE_PROMPTS", True)
    if eval_only and not model_dir and trainable:
        raise ConfigValueError(
            f"--eval-only needs --model-dir for {cfg.TRAINER.NAME}: without trained prompts it would evaluate "
            "their random initialisation. Give the run directory of a trained model (and --load-epoch N)")
    node_name = config_node or getattr(trainer_cls, "CONFIG_NODE", None)
    if node_name and node_name in cfg.TRAINER:
        validate_context_lengths(cfg.TRAINER[node_name], f"TRAINER.{node_name}")
        validate_text_context(cfg.TRAINER[node_name], f"TRAINER.{node_name}")
        defaults = getattr(trainer_cls, "CONFIG_DEFAULTS", {})
        for key, allowed in getattr(trainer_cls, "CONFIG_CHOICES", {}).items():
            check_choice(f"TRAINER.{node_name}.{key}", cfg.TRAINER[node_name].get(key, defaults.get(key)), allowed)
    for cls in (trainer_cls, dataset_cls):
        extra = getattr(cls, "validate_config", None)
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


TEXT_CONTEXT = 77  # CLIP's text encoder reads 77 tokens: SOT, the context, the class name, ".", EOT
MAX_TEXT_CONTEXT = TEXT_CONTEXT - 4  # room for SOT, one class-name token, "." and EOT


def validate_text_context(node, prefix):
    """A text context (CTX_INIT's tokens, N_CTX / N_CTX_TEXT learned tokens) that leaves room in CLIP's 77
    tokens for the class name; longer, the class prompts could not be tokenized."""
    ctx_init = node.get("CTX_INIT", "")
    if isinstance(ctx_init, str) and ctx_init.strip():
        from .clip_loader import bpe_length

        length = bpe_length(ctx_init.replace("_", " "))
        shown = ctx_init if len(ctx_init) <= 40 else ctx_init[:37] + "..."
        _require(length <= MAX_TEXT_CONTEXT, f"{prefix}.CTX_INIT", shown,
                 f"a phrase of at most {MAX_TEXT_CONTEXT} BPE tokens (CLIP reads {TEXT_CONTEXT}, with SOT, a class "
                 f"name, '.' and EOT); it has {length}")
    for key in ("N_CTX", "N_CTX_TEXT"):
        value = node.get(key, None)
        if _is_int(value):
            _require(value <= MAX_TEXT_CONTEXT, f"{prefix}.{key}", value,
                     f"at most {MAX_TEXT_CONTEXT} context tokens (CLIP reads {TEXT_CONTEXT}, with SOT, a class name, "
                     "'.' and EOT)")


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

"""What makes a run that run: its identity, recorded in `<run dir>/identity.json` and in `result.json`.

An identity (format 2) holds
- what was asked: the trainer, dataset and method config names, seed, shots, subsample, the KEY VALUE options
  as given and the fully resolved config (`config_values`);
- what changes the numbers (`settings`): the resolved config's keys that this run's computation reads and
  that differ from their defaults -- the shared keys, the run's own trainer's keys and its own dataset's
  keys, never another method's or dataset's (ConfigScope) -- plus the CLIP weights' SHA-256, the precision
  and device type the run really computed with (PREC fp16 on a CPU computes in fp32) and, for an
  evaluation, the SHA-256 of every checkpoint file it loads;
- what is only recorded (`recorded`): engine, vlprompt/torch/Python versions, the codebase's commit and
  whether it was dirty, the host.

Its `fingerprint` hashes the second group. Because a key at its default is not in `settings`, a release
that adds an option whose default keeps the earlier behaviour leaves every earlier run the same run: the
key is absent from the old identity and at its default in the new one. A release that changes a default or
what a computation does must say so: it raises the method's RESULTS_REVISION (one method) or FINGERPRINT_SALT
(every run) where the change alters results.

Skip, resume, re-test and aggregate happen only between runs with the same fingerprint; `differences`
lists what differs (key: old -> new) for the error messages and the tables. Format-1 identities (which
hashed every registered method's keys) are still read: `upgrade` recomputes them as format 2.

This module imports neither torch nor CLIP: the scripts call `python -m vlprompt.run_identity variant
KEY VALUE ...` to name a variant's directory, and the tables read identities without torch.
"""
import fnmatch
import hashlib
import json
import os
import re
import socket
import subprocess
import sys

IDENTITY_FILE = "identity.json"
IDENTITY_FORMAT = 2
FINGERPRINT_SALT = ""  # changed by a release whose computation changes the numbers of unchanged settings

# Keys that do not change what a run computes: where things are, how often it prints or saves, and
# switches that only change speed (each checked to give the same numbers: CUDA graphs, prompt batching,
# the evaluation batch size and the preprocessed test-image cache with the PIL decoder: its
# TEST.IMAGE_CACHE_DECODER torchvision is not bit-identical and so does count).
BOOKKEEPING_KEYS = (
    "OUTPUT_DIR", "RESUME", "DATASET.ROOT", "USE_CUDA", "VERBOSE", "TRAIN.PRINT_FREQ", "TRAIN.CHECKPOINT_FREQ",
    "TRAIN.CUDA_GRAPHS", "TEST.PER_CLASS_RESULT", "TEST.COMPUTE_CMAT", "TEST.IMAGE_CACHE", "TEST.IMAGE_CACHE_DIR",
    "DATALOADER.TEST.BATCH_SIZE",
    "TRAINER.*.PROMPT_BATCH",
)
# ...and, for an evaluation only, keys that matter to training alone: loader workers draw the training
# augmentations' random numbers, while evaluation transforms are deterministic.
EVAL_BOOKKEEPING_KEYS = ("DATALOADER.NUM_WORKERS",)

# What an evaluation may set differently from the training run of the model it loads: the data it is
# evaluated on and how, and the precision it computes in (recorded as the evaluation's own). Everything else
# (trainer, method keys, backbone, optimisation, seed) must match.
EVALUATION_KEYS = ("DATASET.*", "TEST.*", "DATALOADER.TEST.*", "DATALOADER.NUM_WORKERS", "TRAINER.*.PREC")

# What a table row or column is (the data), as opposed to the model and how it is evaluated.
DATA_KEYS = ("SEED", "DATASET.*")


def _matches(key, patterns):
    return any(fnmatch.fnmatchcase(key, pattern) for pattern in patterns)


def is_bookkeeping(key, kind="train"):
    return _matches(key, BOOKKEEPING_KEYS) or (kind == "eval" and _matches(key, EVAL_BOOKKEEPING_KEYS))


def flatten(node, prefix=""):
    """{"A.B.C": value} for a (yacs) config, with tuples as lists so that it matches its JSON form."""
    flat = {}
    for key, value in node.items():
        name = f"{prefix}{key}"
        if hasattr(value, "items"):
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = _plain(value)
    return flat


def _plain(value):
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _digest(obj):
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]


def config_name(path):
    return os.path.splitext(os.path.basename(path))[0] if path else None


def overrides_as_pairs(opts):
    opts = list(opts or [])
    return [(str(opts[i]), str(opts[i + 1])) for i in range(0, len(opts) - 1, 2)]


# ------------------------------------------------------------------------------------ config scope
class ConfigScope:
    """Which config keys a run's numbers can depend on, and their defaults.

    defaults: {key: default value} of the full config (the engine's defaults plus every registered
    trainer's and dataset's keys). owners: {("trainer" | "dataset", registered name): keys it adds}, for the
    classes that declare their keys (`add_config`). A run reads the shared keys (owned by no class), its
    trainer's and its dataset's; under TRAINER only its trainer's (and TRAINER.NAME). A trainer that does
    not declare its keys (a codebase's own Dassl trainer) may read any TRAINER key, so all of them count.
    Without a scope (None), every key that is not bookkeeping counts and no default is known.
    """

    def __init__(self, defaults, owners):
        self.defaults = dict(defaults)
        self.owners = {k: frozenset(v) for k, v in owners.items()}

    def owned_by_others(self, key, mine):
        return any(key in keys for owner, keys in self.owners.items() if owner not in mine)

    def reads(self, key, trainer, dataset):
        mine = {("trainer", trainer), ("dataset", dataset)}
        if any(key in self.owners.get(owner, ()) for owner in mine):
            return True
        if key.startswith("TRAINER.") and key != "TRAINER.NAME":
            return ("trainer", trainer) not in self.owners  # an undeclared trainer may read any
        return not self.owned_by_others(key, mine)

    def is_default(self, key, value):
        return key in self.defaults and self.defaults[key] == value


def settings_of(values, kind, scope=None):
    """The result-relevant part of a flat config: keys the run reads (scope), not bookkeeping, not at their
    default."""
    trainer, dataset = values.get("TRAINER.NAME"), values.get("DATASET.NAME")
    chosen = {}
    for key, value in values.items():
        if is_bookkeeping(key, kind):
            continue
        if scope is not None and (not scope.reads(key, trainer, dataset) or scope.is_default(key, value)):
            continue
        chosen[key] = value
    return chosen


# ---------------------------------------------------------------------------------------- identity
def build_identity(cfg, kind, opts=(), config_file="", dataset_config_file="", clip_sha256=None, model=None,
                   version=None, precision=None, device=None, scope=None, recorded=None, revision=0):
    """The identity of a run with resolved config `cfg`. kind: "train" or "eval"; model (eval): what is
    loaded, {"dir", "load_epoch", "files": {relative path: sha256}, "trained": a summary of its training
    identity (trained_summary) or None}; precision, device: what the run really computes with (e.g. "fp32",
    "cpu"); scope: a ConfigScope (vlprompt.config.config_scope()); recorded: what is recorded but not
    fingerprinted (recorded_environment()); revision: the trainer's RESULTS_REVISION (a release that changes
    what one method computes from the same settings raises it, so its earlier runs become other runs)."""
    values = flatten(cfg)
    seed = values.get("SEED")
    identity = {
        "format": IDENTITY_FORMAT,
        "kind": kind,
        "trainer": values.get("TRAINER.NAME"),
        "dataset": values.get("DATASET.NAME"),
        "dataset_config": config_name(dataset_config_file) or values.get("DATASET.NAME"),
        "config": config_name(config_file),
        "seed": seed if isinstance(seed, int) and seed >= 0 else None,
        "shots": values.get("DATASET.NUM_SHOTS"),
        "subsample": values.get("DATASET.SUBSAMPLE_CLASSES", "all"),
        "clip_sha256": clip_sha256,
        "precision": precision,
        "device": device,
        "revision": revision,
        "model": model,
        "overrides": [item for pair in overrides_as_pairs(opts) for item in pair],
        "settings": settings_of(values, kind, scope),
        "config_values": values,
        "vlprompt_version": version,
        "recorded": recorded or {},
    }
    identity["fingerprint"] = fingerprint(identity)
    return identity


def _model_part(identity):
    model = identity.get("model")
    return {"files": model.get("files"), "load_epoch": model.get("load_epoch")} if model else None


def _result_relevant(identity):
    relevant = {"kind": identity["kind"], "settings": identity["settings"], "clip_sha256": identity.get("clip_sha256"),
                "precision": identity.get("precision"), "device": identity.get("device"),
                "model": _model_part(identity), "salt": FINGERPRINT_SALT}
    if identity.get("revision"):  # only where a method raised it: earlier fingerprints stay as they were
        relevant["revision"] = identity["revision"]
    return relevant


def fingerprint(identity):
    return _digest(_result_relevant(identity))


def model_variant(identity):
    """What defines a trained model apart from its seed and data: its settings without SEED/DATASET.*/TEST.*,
    the CLIP weights, and the precision and device it was trained with."""
    settings = {k: v for k, v in identity["settings"].items() if not _matches(k, DATA_KEYS + ("TEST.*",))}
    relevant = {"settings": settings, "clip_sha256": identity.get("clip_sha256"),
                "precision": identity.get("precision"), "device": identity.get("device"), "salt": FINGERPRINT_SALT}
    if identity.get("revision"):
        relevant["revision"] = identity["revision"]
    return _digest(relevant)


def trained_summary(identity):
    """What an evaluation records of the training run of the model it loads (tables group by it)."""
    if not identity:
        return None
    return {"fingerprint": identity.get("fingerprint"), "model_variant": model_variant(identity),
            "trainer": identity.get("trainer"), "config": identity.get("config"),
            "dataset": identity.get("dataset"), "dataset_config": identity.get("dataset_config"),
            "seed": identity.get("seed"), "shots": identity.get("shots"), "subsample": identity.get("subsample")}


def trained_model(identity):
    """The training summary an evaluation carries (format 1 recorded only its fingerprint), or None."""
    model = identity.get("model") or {}
    trained = model.get("trained")
    if isinstance(trained, dict):
        return trained
    if model.get("trained_fingerprint"):
        return {"fingerprint": model["trained_fingerprint"]}
    return None


def variant_fingerprint(identity):
    """What a table groups by: the model (for an evaluation, the model it loads, as its training identity
    defines it), how it is evaluated (TEST.* settings, precision and device) and the CLIP weights -- not the
    seed, not the data. A training run's final test and an evaluation of that model share it."""
    trained = trained_model(identity) if identity.get("kind") == "eval" else None
    model = trained.get("model_variant") if trained and trained.get("model_variant") else model_variant(identity)
    evaluation = {k: v for k, v in identity["settings"].items() if _matches(k, ("TEST.*",))}
    return _digest({"model": model, "evaluation": evaluation, "clip_sha256": identity.get("clip_sha256"),
                    "precision": identity.get("precision"), "device": identity.get("device")})


def _short(value):
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _shown(identity, key):
    """The value of `key` in an identity, for messages: its setting, else what its config held (its default)."""
    if key in identity["settings"]:
        return _short(identity["settings"][key])
    values = identity.get("config_values") or {}
    return f"{_short(values[key])} (default)" if key in values else "<default>"


def differences(old, new, ignore=()):
    """["KEY: old -> new", ...] between two identities' result-relevant parts."""
    lines = []
    a, b = _result_relevant(old), _result_relevant(new)
    for key in sorted(set(a["settings"]) | set(b["settings"])):
        if _matches(key, ignore):
            continue
        if a["settings"].get(key, _ABSENT) != b["settings"].get(key, _ABSENT):
            lines.append(f"{key}: {_shown(old, key)} -> {_shown(new, key)}")
    if a["clip_sha256"] != b["clip_sha256"]:
        lines.append(f"CLIP weights (SHA-256): {str(a['clip_sha256'])[:12]} -> {str(b['clip_sha256'])[:12]}")
    for what in ("precision", "device"):
        if a[what] != b[what]:
            lines.append(f"{what} computed in: {a[what] or 'unknown'} -> {b[what] or 'unknown'}")
    if a.get("revision", 0) != b.get("revision", 0):
        lines.append(f"the method's computation (its RESULTS_REVISION): {a.get('revision', 0)} -> {b.get('revision', 0)}")
    if a["kind"] != b["kind"]:
        lines.append(f"kind of run: {a['kind']} -> {b['kind']}")
    if a["model"] != b["model"]:
        lines.append(f"evaluated model: {_describe_model(old.get('model'))} -> {_describe_model(new.get('model'))}")
    return lines


_ABSENT = object()


def _describe_model(model):
    if not model:
        return "none"
    files = model.get("files") or {}
    shas = ",".join(sorted(v[:12] for v in files.values()))
    return f"{model.get('dir')} epoch {model.get('load_epoch')} (checkpoint SHA-256 {shas})"


def model_mismatch(trained, evaluating):
    """What differs between the training identity of a loaded model and the evaluation's own config, apart
    from what an evaluation may change (EVALUATION_KEYS) and how it computes."""
    strip = {"kind": None, "model": None, "precision": None, "device": None}
    return differences(dict(trained, **strip), dict(evaluating, **strip), ignore=EVALUATION_KEYS)


def same_run(old, new):
    return old.get("fingerprint") == new.get("fingerprint")


# ------------------------------------------------------------------------------------ older formats
def upgrade(identity, scope=None, result=None):
    """A format-1 identity recomputed as format 2 (its settings from its recorded config, the precision and
    device from its result.json where the run finished); a format-2 identity unchanged. Without a scope the
    settings keep every non-bookkeeping key (no default is known)."""
    if not isinstance(identity, dict) or identity.get("format", 1) >= IDENTITY_FORMAT:
        return identity
    upgraded = dict(identity, format=IDENTITY_FORMAT)
    upgraded["settings"] = settings_of(identity.get("config_values") or {}, identity.get("kind"), scope)
    precision = (result or {}).get("precision") or {}
    device = (result or {}).get("device")
    upgraded["precision"] = precision.get("used")
    upgraded["device"] = None if device is None else ("cpu" if device == "cpu" else "cuda")
    model = identity.get("model")
    if model and "trained_fingerprint" in model and "trained" not in model:
        upgraded["model"] = dict(model, trained={"fingerprint": model["trained_fingerprint"]})
    upgraded["recorded"] = {"vlprompt": identity.get("vlprompt_version"), "upgraded_from_format": identity.get("format", 1)}
    upgraded["fingerprint"] = fingerprint(upgraded)
    upgraded["original_fingerprint"] = identity.get("fingerprint")
    return upgraded


def read_identity(directory):
    path = os.path.join(directory, IDENTITY_FILE)
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


# ---------------------------------------------------------------------------------- recorded only
def codebase_commit(path):
    """(commit, dirty) of the git checkout holding `path`, or (None, None) outside one."""
    def git(*args):
        return subprocess.run(["git", "-C", path, *args], capture_output=True, text=True, timeout=10)

    try:
        head = git("rev-parse", "HEAD")
        if head.returncode != 0:
            return None, None
        status = git("status", "--porcelain", "--untracked-files=no")
        return head.stdout.strip(), bool(status.stdout.strip()) if status.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None, None


def recorded_environment(engine, versions, codebase):
    """What a run records without fingerprinting it: engine, versions ({"vlprompt", "torch", ...}), the
    codebase's commit and whether it was dirty, the host."""
    commit, dirty = codebase_commit(codebase) if codebase else (None, None)
    return {"engine": engine, **versions, "python": sys.version.split()[0], "codebase": codebase,
            "commit": commit, "dirty": dirty, "host": socket.gethostname()}


# ------------------------------------------------------------------------------------------ variants
_UNSAFE = re.compile(r"[^A-Za-z0-9._=,+-]")


def variant_name(opts):
    """The directory suffix of a variant: the result-relevant KEY VALUE options as given, e.g.
    `+OPTIM.LR=0.01+TRAINER.COPL.SCORE=general`; "" without any. Long names end in a hash."""
    pairs = [(k, v) for k, v in overrides_as_pairs(opts) if not is_bookkeeping(k)]
    if not pairs:
        return ""
    name = "".join(f"+{k}={_UNSAFE.sub('_', v)}" for k, v in pairs)
    if len(name) > 120:
        name = name[:100] + "~" + hashlib.sha256(name.encode()).hexdigest()[:10]
    return name


def _main(argv):
    if len(argv) >= 1 and argv[0] == "variant":
        opts = argv[1:]
        if len(opts) % 2:
            sys.stderr.write(f"error: options must be KEY VALUE pairs; got an odd number: {' '.join(opts)}\n")
            return 2
        print(variant_name(opts))
        return 0
    sys.stderr.write("usage: python -m vlprompt.run_identity variant [KEY VALUE ...]\n")
    return 2


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))

"""What makes a run that run: its identity, recorded in `<run dir>/identity.json` and in `result.json`.

An identity is the fully resolved config (after the YAML files and the KEY VALUE options), the trainer,
the dataset and method config names, seed, shots, subsample, the CLIP weights' SHA-256, for an
evaluation the SHA-256 of every checkpoint file it loads, the KEY VALUE options as given, and the
vlprompt version. Its `fingerprint` hashes the parts that change results: everything above except
bookkeeping keys (paths, print/checkpoint frequency, device and speed switches: `BOOKKEEPING_KEYS`), the
config file names and the version (a release that changes results says so in its notes).

Skip, resume, re-test and aggregate happen only between runs with the same fingerprint; `differences`
lists what differs (key: old -> new) for the error messages and the tables.

This module imports neither torch nor CLIP: the scripts call `python -m vlprompt.run_identity variant
KEY VALUE ...` to name a variant's directory.
"""
import fnmatch
import hashlib
import json
import os
import re
import sys

IDENTITY_FILE = "identity.json"
IDENTITY_FORMAT = 1

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

# What an evaluation may set differently from the training run of the model it loads: the data it is
# evaluated on and how. Everything else (trainer, method keys, backbone, optimisation, seed) must match.
EVALUATION_KEYS = ("DATASET.*", "TEST.*", "DATALOADER.TEST.*")


def is_bookkeeping(key):
    return any(fnmatch.fnmatchcase(key, pattern) for pattern in BOOKKEEPING_KEYS)


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


def build_identity(cfg, kind, opts=(), config_file="", dataset_config_file="", clip_sha256=None, model=None,
                   version=None):
    """The identity of a run with resolved config `cfg`. kind: "train" or "eval"; model (eval): what is
    loaded, {"dir", "load_epoch", "files": {relative path: sha256}, "trained": its training identity or None}."""
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
        "model": model,
        "overrides": [item for pair in overrides_as_pairs(opts) for item in pair],
        "config_values": values,
        "vlprompt_version": version,
    }
    identity["fingerprint"] = fingerprint(identity)
    return identity


def _result_relevant(identity):
    values = {k: v for k, v in identity["config_values"].items() if not is_bookkeeping(k)}
    model = identity.get("model")
    model_part = None
    if model:
        model_part = {"files": model.get("files"), "load_epoch": model.get("load_epoch")}
    return {"kind": identity["kind"], "config": values, "clip_sha256": identity.get("clip_sha256"), "model": model_part}


def fingerprint(identity):
    return _digest(_result_relevant(identity))


def variant_fingerprint(identity, ignore=("SEED", "DATASET.*")):
    """Fingerprint of what a table groups by: the result-relevant parts without the seed and the data."""
    relevant = _result_relevant(identity)
    relevant["config"] = {k: v for k, v in relevant["config"].items()
                          if not any(fnmatch.fnmatchcase(k, p) for p in ignore)}
    relevant["model"] = None
    relevant["kind"] = None
    return _digest(relevant)


def _short(value):
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def differences(old, new, ignore=()):
    """["KEY: old -> new", ...] between two identities' result-relevant parts."""
    lines = []
    a, b = _result_relevant(old), _result_relevant(new)
    for key in sorted(set(a["config"]) | set(b["config"])):
        if any(fnmatch.fnmatchcase(key, p) for p in ignore):
            continue
        va, vb = a["config"].get(key, "<unset>"), b["config"].get(key, "<unset>")
        if va != vb:
            lines.append(f"{key}: {_short(va)} -> {_short(vb)}")
    if a["clip_sha256"] != b["clip_sha256"]:
        lines.append(f"CLIP weights (SHA-256): {str(a['clip_sha256'])[:12]} -> {str(b['clip_sha256'])[:12]}")
    if a["kind"] != b["kind"]:
        lines.append(f"kind of run: {a['kind']} -> {b['kind']}")
    if a["model"] != b["model"]:
        lines.append(f"evaluated model: {_describe_model(old.get('model'))} -> {_describe_model(new.get('model'))}")
    return lines


def _describe_model(model):
    if not model:
        return "none"
    files = model.get("files") or {}
    shas = ",".join(sorted(v[:12] for v in files.values()))
    return f"{model.get('dir')} epoch {model.get('load_epoch')} (checkpoint SHA-256 {shas})"


def model_mismatch(trained, evaluating):
    """What differs between the training identity of a loaded model and the evaluation's own config, apart
    from what an evaluation may change (EVALUATION_KEYS)."""
    return differences(dict(trained, kind=None, model=None), dict(evaluating, kind=None, model=None),
                       ignore=EVALUATION_KEYS)


def read_identity(directory):
    path = os.path.join(directory, IDENTITY_FILE)
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


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

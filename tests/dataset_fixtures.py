"""Helpers shared by the dataset tests: build a reader from a generated tree, and re-statements of the
original algorithms (Dassl's few-shot sampling, CoOp's base/new split) written here independently of
vlprompt's implementation, so the tests compare two statements."""
import math
import random
from collections import OrderedDict

from vlprompt.config import build_config
from vlprompt.engine import DATASET_REGISTRY


def config(root, name, shots=0, seed=1, subsample="all", **opts):
    overrides = {"DATASET.ROOT": str(root), "DATASET.NAME": name, "DATASET.NUM_SHOTS": shots, "SEED": seed,
                 "DATASET.SUBSAMPLE_CLASSES": subsample}
    overrides.update(opts)
    return build_config(overrides=overrides)


def read(spec_or_root, name=None, shots=0, seed=1, subsample="all", rng_seed="same", **opts):
    """Build the registered reader as train.py does: Python's random seeded with SEED first."""
    if name is None:  # a FakeDataset
        spec = spec_or_root
        root, name = spec.root, spec.name
        opts = {**spec.opts, **opts}
    else:
        root = spec_or_root
    random.seed(seed if rng_seed == "same" else rng_seed)
    return DATASET_REGISTRY.get(name)(config(root, name, shots, seed, subsample, **opts))


def tuples(items):
    return None if items is None else [(d.impath, d.label, d.classname) for d in items]


def dassl_fewshot(items, k):
    """Dassl's generate_fewshot_dataset, re-stated: per label in first-appearance order, random.sample(k)
    from Python's global random (all items if fewer than k)."""
    by_label = OrderedDict()
    for item in items:
        by_label.setdefault(item[1], []).append(item)
    picked = []
    for group in by_label.values():
        picked.extend(random.sample(group, k) if len(group) >= k else group)
    return picked


def coop_subsample(lists, subsample):
    """CoOp's subsample_classes, re-stated: sorted labels of the first list, first ceil(n/2) are base."""
    if subsample == "all":
        return lists
    labels = sorted({item[1] for item in lists[0]})
    m = math.ceil(len(labels) / 2)
    selected = labels[:m] if subsample == "base" else labels[m:]
    new_label = {y: i for i, y in enumerate(selected)}
    return [None if part is None else [(p, new_label[y], c) for p, y, c in part if y in new_label] for part in lists]

"""What a generator returns (FakeDataset), the generator registry, and the split helpers the generators
share."""
import json
import os
import random
from dataclasses import dataclass, field

from .images import class_colour, write_jpeg


@dataclass
class FakeDataset:
    """What a generated dataset must read as.

    expected: {"train"/"val"/"test": [(absolute image path, label, class name), ...]} in the reader's
    order (split-file order, or the reader's listing order), for DATASET.NUM_SHOTS 0 and all classes.
    For test-only datasets train == test == the data and val is None.
    """

    name: str
    root: str
    dataset_dir: str
    classnames: list
    expected: dict
    test_only: bool = False
    split_file: str = ""  # absolute path of the split JSON the generator wrote ("" if none)
    opts: dict = field(default_factory=dict)  # extra config keys the reader needs ("DATASET.CUSTOM.DIR": ...)
    image_dir: str = ""  # the folder split paths are relative to
    listed_images: bool = False  # images come from a list (split/annotation file), not a folder listing
    raw: dict = field(default_factory=dict)  # the annotation lists in file order ("trainval", "test", "images")


GENERATORS = {}


def register_generator(name):
    def wrap(fn):
        GENERATORS[name] = fn
        return fn

    return wrap


def make_dataset(name, root, **kwargs):
    if name not in GENERATORS:
        raise KeyError(f"No fake-data generator for {name!r}; register one with "
                       "vlprompt.testing.fake_data.register_generator")
    return GENERATORS[name](str(root), **kwargs)


def make_all(root, names=None):
    """Every registered generator (or `names`) under one data root; {name: FakeDataset}."""
    return {name: make_dataset(name, root) for name in (names or GENERATORS)}


class _Painter:
    """Writes one JPEG per call, coloured by class, with distinct noise per image."""

    def __init__(self, n_classes, seed=0):
        self.n_classes = n_classes
        self.seed = seed
        self.count = 0

    def __call__(self, path, class_index):
        self.count += 1
        return write_jpeg(path, class_colour(class_index, self.n_classes), seed=self.seed * 100003 + self.count)


def _rel_split(rng, files, p_trn=0.5, p_val=0.2):
    files = list(files)
    rng.shuffle(files)
    n_trn, n_val = round(len(files) * p_trn), round(len(files) * p_val)
    return files[:n_trn], files[n_trn:n_trn + n_val], files[n_trn + n_val:]


def _trainval_test_split(files, names, trainval_per_class, rng):
    """A split as CoOp made SUN397's and UCF101's: per class, the first files are train+val (shuffled,
    20% val), the rest test. files[label] lists relative paths."""
    split = {"train": [], "val": [], "test": []}
    for label, name in enumerate(names):
        trainval = files[label][:trainval_per_class]
        rng.shuffle(trainval)
        n_val = round(len(trainval) * 0.2)
        split["val"].extend([f, label, name] for f in trainval[:n_val])
        split["train"].extend([f, label, name] for f in trainval[n_val:])
        split["test"].extend([f, label, name] for f in files[label][trainval_per_class:])
    return split


def _write_split(dataset_dir, filename, split, image_dir):
    """Write a CoOp split JSON ({key: [[relative path, label, name], ...]}); expected absolute lists."""
    path = os.path.join(dataset_dir, filename)
    with open(path, "w") as f:
        json.dump(split, f, indent=4)
    expected = {k: [(os.path.join(image_dir, rel), label, name) for rel, label, name in v] for k, v in split.items()}
    return path, expected


def _spec(name, root, dataset_dir, classnames, expected, **kw):
    kw.setdefault("listed_images", bool(kw.get("split_file")))
    return FakeDataset(name=name, root=root, dataset_dir=dataset_dir, classnames=list(classnames), expected=expected,
                       **kw)


def _split_from_groups(groups, seed, p_trn=0.5, p_val=0.2):
    """The generator's own "official" split: groups = [(label, name, [relative paths])]."""
    rng = random.Random(seed)
    split = {"train": [], "val": [], "test": []}
    for label, name, files in groups:
        for key, part in zip(("train", "val", "test"), _rel_split(rng, files, p_trn, p_val)):
            split[key].extend([f, label, name] for f in part)
    return split

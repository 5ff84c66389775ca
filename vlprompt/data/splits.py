"""Split files (CoOp's split_zhou_*.json) and the routines that make a split when none is given.

Format: {"train": [...], "val": [...], "test": [...]}, each item [relative image path, label, class name],
paths relative to the dataset's image folder. Fallback splits use Python's global `random` exactly as
CoOp does (seeded by SEED when one is set); folder listings are sorted first so that the result does
not depend on the file system's listing order (the original shuffles the raw os.listdir order).
"""
import json
import os
import random
from collections import defaultdict

from vlprompt.engine import Datum
from vlprompt.fileio import write_json_atomic


class SplitFileError(ValueError):
    pass


def read_split(filepath, path_prefix):
    """Lists of Datum (train, val, test) from a split JSON; image paths are joined to path_prefix."""
    print(f"Reading split from {filepath}")
    try:
        with open(filepath) as f:
            split = json.load(f)
    except json.JSONDecodeError as e:
        raise SplitFileError(f"Split file {filepath} is not valid JSON ({e}); delete it to regenerate it, "
                             "or download the official one again") from None
    missing = [k for k in ("train", "val", "test") if k not in split]
    if missing:
        raise SplitFileError(f"Split file {filepath} lacks the keys {missing} (expected train, val and test)")

    def convert(items, key):
        out = []
        for i, entry in enumerate(items):
            if not (isinstance(entry, (list, tuple)) and len(entry) == 3):
                raise SplitFileError(f"Split file {filepath}: {key}[{i}] is {entry!r}, expected [image path, label, class name]")
            impath, label, classname = entry
            out.append(Datum(impath=os.path.join(path_prefix, impath), label=int(label), classname=classname))
        return out

    return convert(split["train"], "train"), convert(split["val"], "val"), convert(split["test"], "test")


def save_split(train, val, test, filepath, path_prefix):
    def extract(items):
        out = []
        for item in items:
            impath = os.path.relpath(item.impath, path_prefix)
            out.append((impath.lstrip("/"), item.label, item.classname))
        return out

    write_json_atomic({"train": extract(train), "val": extract(val), "test": extract(test)}, filepath)
    print(f"Saved split to {filepath}")


def split_trainval(trainval, p_val=0.2):
    """Per label (first-appearance order): shuffle, first round(p_val * n) to val, the rest to train."""
    print(f"Splitting trainval into {1 - p_val:.0%} train and {p_val:.0%} val")
    tracker = defaultdict(list)
    for idx, item in enumerate(trainval):
        tracker[item.label].append(idx)
    train, val = [], []
    for label, idxs in tracker.items():
        n_val = round(len(idxs) * p_val)
        if n_val <= 0:
            raise ValueError(f"Class {label} has {len(idxs)} images: too few to hold out {p_val:.0%} for validation")
        random.shuffle(idxs)
        for n, idx in enumerate(idxs):
            (val if n < n_val else train).append(trainval[idx])
    return train, val


def list_images(folder):
    return sorted(f for f in os.listdir(folder) if not f.startswith("."))


def read_and_split_data(image_dir, p_trn=0.5, p_val=0.2, ignored=(), new_cnames=None):
    """One folder per class (sorted; `ignored` skipped, `new_cnames` renaming): per class shuffle, then
    round(n * p_trn) train, round(n * p_val) val, the rest test (CoOp's DTD routine)."""
    categories = sorted(c for c in list_images(image_dir) if c not in ignored and os.path.isdir(os.path.join(image_dir, c)))
    p_tst = 1 - p_trn - p_val
    print(f"Splitting into {p_trn:.0%} train, {p_val:.0%} val, and {p_tst:.0%} test")
    train, val, test = [], [], []
    for label, category in enumerate(categories):
        category_dir = os.path.join(image_dir, category)
        images = [os.path.join(category_dir, im) for im in list_images(category_dir)]
        random.shuffle(images)
        n_total = len(images)
        n_train = round(n_total * p_trn)
        n_val = round(n_total * p_val)
        n_test = n_total - n_train - n_val
        if not (n_train > 0 and n_val > 0 and n_test > 0):
            raise ValueError(f"Class folder {category_dir} has {n_total} images: too few for a train/val/test split")
        name = new_cnames.get(category, category) if new_cnames else category
        train.extend(Datum(impath=im, label=label, classname=name) for im in images[:n_train])
        val.extend(Datum(impath=im, label=label, classname=name) for im in images[n_train:n_train + n_val])
        test.extend(Datum(impath=im, label=label, classname=name) for im in images[n_train + n_val:])
    return train, val, test

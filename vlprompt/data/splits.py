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

from .errors import DatasetFormatError, DatasetLayoutError, MissingImagesError

SPLIT_KEYS = ("train", "val", "test")


class SplitFileError(DatasetFormatError):
    """A split JSON that cannot be used (invalid JSON, missing keys, malformed items)."""


def make_datums(entries, source):
    """Datum objects for (absolute image path, label, class name) entries.

    Every path is checked first, so a missing image gives one error naming it (and how many others are
    missing) and `source`, the file that listed it, instead of Dassl's bare AssertionError.
    """
    entries = list(entries)
    missing = [impath for impath, _, _ in entries if not os.path.isfile(impath)]
    if missing:
        raise MissingImagesError(missing, len(entries), source)
    return [Datum(impath=impath, label=label, classname=classname) for impath, label, classname in entries]


def read_split(filepath, path_prefix):
    """Lists of Datum (train, val, test) from a split JSON; image paths are joined to path_prefix."""
    print(f"Reading split from {filepath}")
    if not os.path.isfile(filepath):
        raise DatasetLayoutError(f"Split file not found: {filepath}", path=filepath)
    try:
        with open(filepath) as f:
            split = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise SplitFileError(f"Split file {filepath} is not valid JSON ({e}); delete it to regenerate it, "
                             "or download the official one again", path=filepath) from None
    if not isinstance(split, dict) or any(k not in split for k in SPLIT_KEYS):
        found = sorted(split) if isinstance(split, dict) else type(split).__name__
        raise SplitFileError(f"Split file {filepath} must hold the keys train, val and test (found {found})",
                             path=filepath)

    entries, seen_names, seen_labels = {}, {}, {}
    for key in SPLIT_KEYS:
        entries[key] = []
        for i, entry in enumerate(split[key]):
            if not (isinstance(entry, (list, tuple)) and len(entry) == 3):
                raise SplitFileError(f"Split file {filepath}: {key}[{i}] is {entry!r}, expected "
                                     "[image path, label, class name]", path=filepath)
            impath, label, classname = entry
            try:
                label = int(label)
            except (TypeError, ValueError):
                raise SplitFileError(f"Split file {filepath}: {key}[{i}] has the label {label!r}, expected an "
                                     "integer", path=filepath) from None
            entries[key].append((os.path.join(path_prefix, impath), label, classname))
            _check_label_and_name(filepath, f"{key}[{i}]", label, classname, seen_names, seen_labels)
    # One check over all three lists, so every missing image is counted in a single error.
    datums = iter(make_datums([e for key in SPLIT_KEYS for e in entries[key]], filepath))
    return tuple([next(datums) for _ in entries[key]] for key in SPLIT_KEYS)


def _check_label_and_name(filepath, where, label, classname, seen_names, seen_labels):
    """Each label has one class name and each class name one label, across train, val and test."""
    first_name = seen_names.setdefault(label, (classname, where))
    if first_name[0] != classname:
        raise SplitFileError(f"Split file {filepath}: {where} gives label {label} the class name {classname!r}, but "
                             f"{first_name[1]} names it {first_name[0]!r}: fix or regenerate the split file",
                             path=filepath)
    first_label = seen_labels.setdefault(classname, (label, where))
    if first_label[0] != label:
        raise SplitFileError(f"Split file {filepath}: {where} gives class {classname!r} the label {label}, but "
                             f"{first_label[1]} gives it {first_label[0]}: fix or regenerate the split file",
                             path=filepath)


def save_split(train, val, test, filepath, path_prefix):
    def extract(items):
        out = []
        for item in items:
            impath = os.path.relpath(item.impath, path_prefix)
            out.append((impath.lstrip("/"), item.label, item.classname))
        return out

    write_json_atomic({"train": extract(train), "val": extract(val), "test": extract(test)}, filepath)
    print(f"Saved split to {filepath}")


def split_trainval(trainval, p_val=0.2, rng=random):
    """Per label (first-appearance order): shuffle, first round(p_val * n) to val, the rest to train."""
    print(f"Splitting trainval into {1 - p_val:.0%} train and {p_val:.0%} val")
    tracker = defaultdict(list)
    for idx, item in enumerate(trainval):
        tracker[item.label].append(idx)
    train, val = [], []
    for label, idxs in tracker.items():
        n_val = round(len(idxs) * p_val)
        if n_val <= 0:
            raise DatasetFormatError(f"Class {label} ({trainval[idxs[0]].classname!r}) has {len(idxs)} images: "
                                     f"too few to hold out {p_val:.0%} for validation")
        rng.shuffle(idxs)
        for n, idx in enumerate(idxs):
            (val if n < n_val else train).append(trainval[idx])
    return train, val


def list_images(folder):
    """Sorted non-hidden file names in `folder`."""
    return sorted(f for f in os.listdir(folder) if not f.startswith(".") and os.path.isfile(os.path.join(folder, f)))


def list_class_folders(folder, ignored=()):
    """Sorted non-hidden sub-folder names of `folder`, without those in `ignored`."""
    return sorted(f for f in os.listdir(folder)
                  if not f.startswith(".") and f not in ignored and os.path.isdir(os.path.join(folder, f)))


def split_per_class(groups, p_trn=0.5, p_val=0.2, rng=random):
    """(train, val, test) entries from (label, class name, image paths) groups, in the given order: per
    group shuffle, round(n * p_trn) train, round(n * p_val) val, the rest test."""
    train, val, test = [], [], []
    for label, classname, images in groups:
        images = list(images)
        rng.shuffle(images)
        n_total = len(images)
        n_train = round(n_total * p_trn)
        n_val = round(n_total * p_val)
        n_test = n_total - n_train - n_val
        if not (n_train > 0 and n_val > 0 and n_test > 0):
            raise DatasetFormatError(f"Class {classname!r} has {n_total} images: too few for a "
                                     f"{p_trn:.0%}/{p_val:.0%}/{1 - p_trn - p_val:.0%} train/val/test split")
        train.extend((im, label, classname) for im in images[:n_train])
        val.extend((im, label, classname) for im in images[n_train:n_train + n_val])
        test.extend((im, label, classname) for im in images[n_train + n_val:])
    return train, val, test


def read_and_split_data(image_dir, p_trn=0.5, p_val=0.2, ignored=(), new_cnames=None, rng=random):
    """One folder per class (sorted; `ignored` skipped, `new_cnames` renaming): per class shuffle, then
    round(n * p_trn) train, round(n * p_val) val, the rest test (CoOp's DTD routine)."""
    if not os.path.isdir(image_dir):
        raise DatasetLayoutError(f"Image folder not found: {image_dir}", path=image_dir)
    categories = list_class_folders(image_dir, ignored)
    print(f"Splitting into {p_trn:.0%} train, {p_val:.0%} val, and {1 - p_trn - p_val:.0%} test")
    groups = []
    for label, category in enumerate(categories):
        category_dir = os.path.join(image_dir, category)
        name = new_cnames.get(category, category) if new_cnames else category
        groups.append((label, name, [os.path.join(category_dir, im) for im in list_images(category_dir)]))
    train, val, test = split_per_class(groups, p_trn, p_val, rng)
    return tuple(make_datums(part, image_dir) for part in (train, val, test))

"""Few-shot subsets and their cache, `<dataset>/split_fewshot/shot_{K}-seed_{S}.pkl`.

Selection is Dassl's `generate_fewshot_dataset`: K per label for train, min(K, 4) for val, from
Python's global `random` (seeded with SEED by train.py), so a seed picks the same images as CoOp.

The cache keeps the originals' format — a pickle of {"train": [Datum], "val": [Datum]} with absolute
image paths and Datum pickled as `dassl.data.datasets.base_dataset.Datum` — so caches written by the
CoOp/MaPLe code load here (with or without Dassl installed) and ours load there. Ours add a
"vlprompt" entry describing what the cache was made from. A cache is used only if it fits the data at
hand, otherwise it is rebuilt:
- ours: same dataset folder, same source lists (a fingerprint of the ordered train/val items);
- the originals' (no description): every cached item is one of the current train/val items, which
  fails when the data root moved (absolute paths) or the split or class names changed.
Writes are atomic, so concurrent runs building the same cache leave one valid file.
"""
import contextlib
import hashlib
import io
import os
import pickle
from collections import Counter

from vlprompt.engine import Datum
from vlprompt.fileio import atomic_write, remove_stale_temp_files
from vlprompt.validation import check_shots_against_classes

CACHE_FORMAT = 1
_DASSL_DATUM = ("dassl.data.datasets.base_dataset", "Datum")
_OUR_DATUM = (Datum.__module__, Datum.__qualname__)


class _DatumPickler(pickle._Pickler):
    """Pickles the built-in engine's Datum under Dassl's class path (Dassl's own Datum needs nothing)."""

    def save_global(self, obj, name=None):
        if obj is Datum and _OUR_DATUM != _DASSL_DATUM:
            self.write(pickle.GLOBAL + f"{_DASSL_DATUM[0]}\n{_DASSL_DATUM[1]}\n".encode())
            self.memoize(obj)
            return
        super().save_global(obj, name)


class _DatumUnpickler(pickle.Unpickler):
    """Loads Datum objects (Dassl's class path or ours) into this engine's Datum; nothing else."""

    def find_class(self, module, name):
        if (module, name) in (_DASSL_DATUM, _OUR_DATUM, ("vlprompt.engine.builtin.datasets", "Datum")):
            return Datum
        raise pickle.UnpicklingError(f"unexpected object {module}.{name} in a few-shot cache")


def dump_datums(obj, path):
    """Atomically pickle a structure of Datum lists in the originals' format."""
    buffer = io.BytesIO()
    _DatumPickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(obj)
    with atomic_write(path, "wb") as f:
        f.write(buffer.getvalue())


def load_datums(path):
    with open(path, "rb") as f:
        return _DatumUnpickler(f).load()


def _key_function(dataset_dir):
    """item -> (path relative to dataset_dir, label, class name); string slicing where it can (ImageNet
    has 1.28M items), os.path.relpath otherwise."""
    dataset_dir = os.path.abspath(dataset_dir)
    prefix = dataset_dir + os.sep

    def key(item):
        impath = item.impath
        rel = impath[len(prefix):] if impath.startswith(prefix) else os.path.relpath(impath, dataset_dir)
        return (rel, int(item.label), item.classname)

    return key


def _item_key(item, dataset_dir):
    return _key_function(dataset_dir)(item)


def source_fingerprint(dataset_dir, *lists):
    """SHA-1 of the ordered (relative path, label, class name) items of each list."""
    key = _key_function(dataset_dir)
    digest = hashlib.sha1()
    for items in lists:
        digest.update(b"\x00list")
        for item in items:
            digest.update(repr(key(item)).encode())
    return digest.hexdigest()


def _describe(dataset_dir, num_shots, seed, fingerprint):
    return {"format": CACHE_FORMAT, "dataset_dir": os.path.abspath(dataset_dir), "num_shots": num_shots,
            "seed": seed, "source_fingerprint": fingerprint}


def _cached_subset_fits(cached, sources, dataset_dir, shots):
    """Every cached item is one of the source's items (same absolute folder, label and class name), and
    each label has min(K, its number of items) of them, as a K-shot selection of this source would."""
    prefix = os.path.abspath(dataset_dir) + os.sep
    key = _key_function(dataset_dir)
    for items, source, k in zip(cached, sources, shots):
        allowed = {key(item) for item in source}
        for item in items:
            if not isinstance(item, Datum) or not item.impath.startswith(prefix):
                return False
            if key(item) not in allowed:
                return False
        if k is not None:
            available, picked = Counter(item.label for item in source), Counter(item.label for item in items)
            if any(picked[label] != min(k, n) for label, n in available.items()) or set(picked) - set(available):
                return False
    return True


def load_cache_if_valid(path, dataset_dir, keys, sources, fingerprint, shots=None, num_shots=None, seed=None):
    """The cached lists for `keys` if the cache at `path` fits `sources` (and, for ours, records the
    requested `num_shots` and `seed`); else None (with the reason). The originals' caches record nothing:
    they must hold min(K, n) items of each label (`shots`), which a renamed file of another K fails."""
    if not os.path.exists(path):
        return None
    try:
        data = load_datums(path)
        cached = [list(data[k]) for k in keys]
    except Exception as e:
        print(f"Ignoring unreadable few-shot cache {path} ({type(e).__name__}: {e}); rebuilding it")
        return None
    meta = data.get("vlprompt") if isinstance(data, dict) else None
    if meta is not None:
        if meta.get("format") != CACHE_FORMAT or meta.get("dataset_dir") != os.path.abspath(dataset_dir) \
                or meta.get("source_fingerprint") != fingerprint:
            print(f"Few-shot cache {path} was made from other data (data root, split file or class names "
                  "differ); rebuilding it")
            return None
        if (num_shots, seed) != (None, None) and (meta.get("num_shots"), meta.get("seed")) != (num_shots, seed):
            print(f"Few-shot cache {path} holds {meta.get('num_shots')} shots of seed {meta.get('seed')}, not "
                  f"{num_shots} shots of seed {seed} (a renamed or copied file?); rebuilding it")
            return None
        return cached
    if not _cached_subset_fits(cached, sources, dataset_dir, shots or [None] * len(sources)):
        print(f"Few-shot cache {path} (made by another codebase) does not match this data root or split; "
              "rebuilding it")
        return None
    return cached


def fewshot_subsets(dataset, num_shots, seed, cache_dir, train, val=None, cache_name=None, sample=None):
    """(train, val) reduced to `num_shots` per class (val: min(K, 4)), through the cache in cache_dir.

    With val=None only train is sampled and cached (ImageNet). num_shots < 1 returns the inputs.
    `sample(items, k)` replaces Dassl's per-label sampling (the DG readers sample per domain), and
    `cache_name` the file name shot_{K}-seed_{S}.pkl.
    """
    if num_shots < 1:
        return train, val
    counts = Counter(item.label for item in train)
    check_shots_against_classes(num_shots, counts, {item.label: item.classname for item in train} if sample is None
                                else None)
    keys = ["train"] if val is None else ["train", "val"]
    sources = [train] if val is None else [train, val]
    dataset_dir = os.path.dirname(os.path.abspath(cache_dir))
    fingerprint = source_fingerprint(dataset_dir, *sources)
    path = os.path.join(cache_dir, cache_name or f"shot_{num_shots}-seed_{seed}.pkl")
    if os.path.isdir(cache_dir):  # what killed writers left next to the caches (even when this one is valid)
        remove_stale_temp_files(cache_dir)
    # An originals' cache must hold min(K, n) items per label; with another sampler that rule differs.
    shots = None if sample is not None else [num_shots] if val is None else [num_shots, min(num_shots, 4)]
    if sample is None:
        def sample(items, k):
            return dataset.generate_fewshot_dataset(items, num_shots=k)

    cached = load_cache_if_valid(path, dataset_dir, keys, sources, fingerprint, shots, num_shots, seed)
    if cached is not None:
        print(f"Loading preprocessed few-shot data from {path}")  # the originals' line
        # Draw the picks all the same, so that Python's `random` continues as after a fresh selection: code
        # that draws from it later (MetaPrompt's class split) trains the same model with or without a cache.
        # Silently: the draw's own "Creating a K-shot dataset" would read as a cache miss.
        with contextlib.redirect_stdout(io.StringIO()):
            sample(train, num_shots)
            if val is not None:
                sample(val, min(num_shots, 4))
        sizes = f"{len(cached[0])} train" + ("" if val is None else f", {len(cached[1])} val")
        print(f"Loaded a {num_shots}-shot dataset from the cache ({sizes} images)")
        return (cached[0], None) if val is None else (cached[0], cached[1])

    train = sample(train, num_shots)
    if val is not None:
        val = sample(val, min(num_shots, 4))
    data = {"train": train} if val is None else {"train": train, "val": val}
    data["vlprompt"] = _describe(dataset_dir, num_shots, seed, fingerprint)
    try:
        print(f"Saving preprocessed few-shot data to {path}")
        dump_datums(data, path)
    except OSError as e:  # e.g. a read-only data root: the subset is still the right one
        print(f"Note: could not write the few-shot cache {path} ({e}); continuing without it")
    return train, val

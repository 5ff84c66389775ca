"""Dataset indexes (a reader's train/val/test lists) kept for the next run of a long-lived process.

A protocol's worker runs many runs on the same datasets. Reading a split again means parsing its JSON
(ImageNet: preprocessed.pkl, 1.33M items) and checking that every image exists (a stat per image, which
on a network file system is the slow part). Where reuse is on (`enable()`: the local launcher's workers,
the Slurm array tasks and the scripts that run several seeds turn it on), a reader's `read_splits()`
result is kept:

- keyed by the reader class, its dataset folder and the config's DATASET node except NUM_SHOTS and
  SUBSAMPLE_CLASSES (those are applied afterwards, by `select`, on every run);
- valid while every direct entry of the dataset folder (but split_fewshot/, whose caches are validated
  on their own) keeps its size and mtime: a new or rewritten split file, a regenerated preprocessed.pkl,
  or an entry added or removed there makes the next run read again;
- only when the read drew no random numbers: a split made from the raw files (which draws from Python's
  `random`, as the original does) is read again next time, so every run consumes the draws it would
  consume in a fresh process and the results stay those of one process per run;
- each run gets its own lists (Datum objects, which nothing modifies, are shared); the last few
  datasets are kept (MAX_KEPT).
"""
import collections
import os

MAX_KEPT = 4
_KEPT = collections.OrderedDict()
_ENABLED = False


def enable(on=True):
    """Keep indexes across runs in this process (off by default: a single run has nothing to reuse)."""
    global _ENABLED
    _ENABLED = on
    if not on:
        _KEPT.clear()


FEWSHOT_FOLDER = "split_fewshot"  # the few-shot caches: validated on their own, written by runs


def _folder_signature(folder):
    entries = []
    try:
        with os.scandir(folder) as it:
            for entry in it:
                if entry.name == FEWSHOT_FOLDER:
                    continue
                try:
                    st = entry.stat()
                except OSError:
                    continue
                entries.append((entry.name, st.st_size, st.st_mtime_ns))
    except OSError:
        return None
    return tuple(sorted(entries))


def _dataset_key(reader, cfg):
    node = cfg.DATASET
    values = tuple(sorted((k, repr(v)) for k, v in node.items() if k not in ("NUM_SHOTS", "SUBSAMPLE_CLASSES")))
    cls = type(reader)
    return (cls.__module__, cls.__qualname__, os.path.abspath(reader.dataset_dir), values)


def _copies(lists):
    return tuple(None if items is None else list(items) for items in lists)


def read_splits(reader, cfg):
    """reader.read_splits(), or the lists a previous run of this process read from the same, unchanged files."""
    if not _ENABLED:
        return reader.read_splits()
    key = _dataset_key(reader, cfg)
    signature = _folder_signature(reader.dataset_dir)
    kept = _KEPT.get(key)
    if kept is not None and signature is not None and kept[0] == signature:
        _KEPT.move_to_end(key)
        print(f"Reusing the index of {type(reader).__name__} read by an earlier run of this process "
              f"({reader.dataset_dir} unchanged)")
        return _copies(kept[1])
    from ..resume import capture_rng_state, same_rng_state  # (torch: only where reuse is on)

    before = capture_rng_state()
    lists = reader.read_splits()
    if signature is not None and same_rng_state(before, capture_rng_state()):
        _KEPT[key] = (_folder_signature(reader.dataset_dir), _copies(lists))
        _KEPT.move_to_end(key)
        while len(_KEPT) > MAX_KEPT:
            _KEPT.popitem(last=False)
    else:
        _KEPT.pop(key, None)
    return lists

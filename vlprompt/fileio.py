"""Atomic writes and checkpoint loading shared by the engine, the datasets and the results tools.

Every file vlprompt writes (checkpoints, caches, split files, result.json) goes through `atomic_write`:
the content lands in a temporary file in the same directory and is renamed over the target, so a
crash or a concurrent writer never leaves a truncated file behind.
"""
import contextlib
import json
import os
import pickle
import tempfile

import torch


@contextlib.contextmanager
def atomic_write(path, mode="wb"):
    """Open a temporary file next to `path`; on success it replaces `path` in one rename."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


def write_json_atomic(obj, path, indent=4):
    with atomic_write(path, "w") as f:
        json.dump(obj, f, indent=indent, separators=(",", ": "))


def torch_save_atomic(obj, path):
    with atomic_write(path, "wb") as f:
        torch.save(obj, f)


def pickle_dump_atomic(obj, path, pickler_cls=pickle.Pickler):
    with atomic_write(path, "wb") as f:
        pickler_cls(f, protocol=pickle.HIGHEST_PROTOCOL).dump(obj)


def load_torch_file(path, map_location="cpu"):
    """torch.load that accepts both plain tensor checkpoints and Dassl-era checkpoints.

    Dassl's checkpoints (and the released CoOp/MaPLe weights) pickle an LR-scheduler object, which
    torch>=2.6 refuses to unpickle by default (weights_only=True). Our own checkpoints contain only
    tensors and plain containers and load in the safe mode; for the others we fall back to full
    unpickling, as Dassl itself does, and say so.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No checkpoint file at {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:
        print(f"Note: {path} contains pickled Python objects (e.g. a Dassl LR scheduler); "
              "loading it with weights_only=False. Only load checkpoints from sources you trust.")
        try:
            return torch.load(path, map_location=map_location, weights_only=False)
        except UnicodeDecodeError:
            return torch.load(path, map_location=map_location, weights_only=False, encoding="latin1")

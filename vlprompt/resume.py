"""Exact resume: the random state a checkpoint carries, the kill points that test it, and finding the
latest complete checkpoint.

A run killed at any moment and started again must end bit-identical to an uninterrupted one. Every
checkpoint therefore holds, next to the model/optimizer/scheduler states, the Python, NumPy and torch
(CPU and CUDA) random states at the moment it was written, the GradScaler and the best validation result.
The data loaders draw their shuffling and worker seeds from torch's global generator when an epoch
starts, so restoring it restores the sampler too.

Checkpoint files are written atomically and before the `checkpoint` pointer, so the latest complete
epoch is the highest `model.pth.tar-N` on disk, whatever the pointer says when a run was killed between
the two writes.
"""
import os
import random
import re
import signal
import sys

import numpy as np
import torch

KILL_ENV = "VLPROMPT_KILL_AT"
_CHECKPOINT_FILE = re.compile(r"^model\.pth\.tar-(\d+)$")


def kill_point(name):
    """Test hook: SIGKILL this process at the named point when VLPROMPT_KILL_AT=name (deterministic crash
    points for the resume tests; e.g. train-batch-2-1, checkpoint-written-2, final-test)."""
    if os.environ.get(KILL_ENV) == name:
        sys.stdout.flush()
        os.kill(os.getpid(), signal.SIGKILL)


def capture_rng_state():
    np_state = np.random.get_state()
    state = {
        "python": random.getstate(),
        # NumPy's state as a tensor and plain numbers, so the checkpoint loads in torch's safe mode.
        "numpy": {"kind": np_state[0], "key": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def same_rng_state(a, b):
    """Whether two capture_rng_state() results hold the same state (nothing drew in between)."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same_rng_state(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(map(same_rng_state, a, b))
    return a == b


def restore_rng_state(state):
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state((n["kind"], n["key"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def checkpoint_epochs(folder):
    """The epochs N of the `model.pth.tar-N` files in folder."""
    if not os.path.isdir(folder):
        return set()
    return {int(m.group(1)) for m in map(_CHECKPOINT_FILE.match, os.listdir(folder)) if m}

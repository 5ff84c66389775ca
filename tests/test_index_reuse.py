"""Dataset indexes reused across the runs of one process (vlprompt.data.index_reuse): every run gets the
lists, and leaves the random state, of a fresh process; a changed dataset folder is read again; a split
made from the raw files (random draws) is never reused."""
import json
import os
import random

import numpy as np
import pytest
import torch

from dataset_fixtures import read, tuples
from vlprompt.data import index_reuse
from vlprompt.testing.fake_data import make_dataset


@pytest.fixture
def reuse():
    index_reuse.enable()
    yield
    index_reuse.enable(False)


@pytest.fixture
def counted(capsys):
    """Reads one dataset, returning "reused" or "read" (what the reader printed) into a list."""
    calls = []

    def read_and_count(*args, **kwargs):
        capsys.readouterr()
        dataset = read(*args, **kwargs)
        calls.append("reused" if "Reusing the index of" in capsys.readouterr().out else "read")
        return dataset

    read_and_count.calls = calls
    return read_and_count


def state():
    return random.getstate(), np.random.get_state()[1].copy(), torch.random.get_rng_state()


def lists(dataset):
    return tuples(dataset.train_x), tuples(dataset.val), tuples(dataset.test)


@pytest.mark.parametrize("name", ["Caltech101", "ImageNet", "PACSFS"])
def test_reused_index_gives_the_lists_and_random_state_of_a_fresh_read(name, tmp_path, counted, reuse):
    if name == "PACSFS":  # leave-one-domain-out: the domains are part of the key
        from vlprompt.testing.fake_dg_data import make_pacs

        make_pacs(str(tmp_path / "data"))
        source = (str(tmp_path / "data"), "PACSFS")
        runs = [dict(shots=2, seed=1, DATASET__TARGET_DOMAINS=["sketch"]),
                dict(shots=1, seed=2, DATASET__TARGET_DOMAINS=["sketch"]),
                dict(shots=2, seed=1, DATASET__TARGET_DOMAINS=["photo"])]
        expected_calls = ["read", "reused", "read"]
    else:
        source = (make_dataset(name, tmp_path / "data"),)
        runs = [dict(shots=2, seed=1, subsample="base"), dict(shots=2, seed=2, subsample="new"), dict(shots=1, seed=1)]
        expected_calls = ["read", "reused", "reused"]
    runs = [{k.replace("__", "."): v for k, v in run.items()} for run in runs]
    got = []
    for run in runs:
        dataset = counted(*source, **run)
        got.append((lists(dataset), state()))
    assert counted.calls == expected_calls
    index_reuse.enable(False)
    for run, (expected_lists, expected_state) in zip(runs, got):
        fresh = read(*source, **run)
        assert lists(fresh) == expected_lists
        now = state()
        assert now[0] == expected_state[0] and np.array_equal(now[1], expected_state[1])
        assert torch.equal(now[2], expected_state[2])


def test_a_changed_split_file_is_read_again(tmp_path, counted, reuse):
    spec = make_dataset("Caltech101", tmp_path / "data")
    first = counted(spec, shots=0)
    with open(spec.split_file) as f:
        split = json.load(f)
    removed = split["test"].pop()
    with open(spec.split_file, "w") as f:
        json.dump(split, f)
    os.utime(spec.split_file, ns=(1, 1))  # the same size could hide a change; the mtime does not
    second = counted(spec, shots=0)
    assert counted.calls == ["read", "read"]
    assert len(second.test) == len(first.test) - 1
    assert not any(d.impath.endswith("/" + removed[0]) for d in second.test)
    third = counted(spec, shots=0)
    assert counted.calls[-1] == "reused" and lists(third) == lists(second)


def test_a_split_made_with_random_draws_is_not_reused(tmp_path, counted, reuse):
    """Without the split file the reader makes one (Python's random, as CoOp) and saves it: that read is not
    kept; the next run reads the saved file (no draws), which is kept."""
    spec = make_dataset("Caltech101", tmp_path / "data", with_split=False)
    first = counted(spec, shots=1, seed=3)
    assert counted.calls == ["read"] and not index_reuse._KEPT
    second = counted(spec, shots=1, seed=3)
    third = counted(spec, shots=1, seed=3)
    assert counted.calls == ["read", "read", "reused"]
    assert lists(first) == lists(second) == lists(third)


def test_reuse_is_off_by_default(tmp_path, counted):
    spec = make_dataset("Caltech101", tmp_path / "data")
    counted(spec, shots=1)
    counted(spec, shots=1)
    assert counted.calls == ["read", "read"] and not index_reuse._KEPT

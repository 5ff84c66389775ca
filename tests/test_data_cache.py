"""Few-shot caches and ImageNet's preprocessed.pkl cannot poison a run: atomic writes, detection of a cache
made for another data root / split / class list, the originals' pickles (Dassl's Datum, absolute paths)
loading when they fit, and loading without Dassl installed."""
import contextlib
import os
import pickle
import pickletools
import random
import shutil
import multiprocessing
import sys
import types

import pytest

import vlprompt.data.fewshot as fewshot
from dataset_fixtures import coop_subsample, dassl_fewshot, read, tuples
from vlprompt.engine import ENGINE
from vlprompt.testing.fake_data import make_dataset
from helpers import REPO_ROOT


class DasslDatum:
    """Dassl's Datum as pickled by the original code: a plain class with these four attributes."""

    def __init__(self, impath, label, classname, domain=0):
        self._impath, self._label, self._domain, self._classname = impath, label, domain, classname


@contextlib.contextmanager
def fake_dassl_module():
    """Make `dassl.data.datasets.base_dataset.Datum` importable for pickling/unpickling, then remove it."""
    names = ["dassl", "dassl.data", "dassl.data.datasets", "dassl.data.datasets.base_dataset"]
    saved = {n: sys.modules.get(n) for n in names}
    module = types.ModuleType("dassl.data.datasets.base_dataset")
    DasslDatum.__module__, DasslDatum.__qualname__ = module.__name__, "Datum"
    module.Datum = DasslDatum
    for n in names[:-1]:
        sys.modules[n] = types.ModuleType(n)
    sys.modules[names[-1]] = module
    try:
        yield
    finally:
        for n, m in saved.items():
            if m is None:
                sys.modules.pop(n, None)
            else:
                sys.modules[n] = m


def write_original_cache(path, lists):
    """A cache as CoOp writes it: pickle.dump({"train": [Datum], "val": [Datum]}) with Dassl's Datum."""
    with fake_dassl_module():
        data = {key: [DasslDatum(p, y, c) for p, y, c in items] for key, items in lists.items()}
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            pickle.dump(data, f, protocol=pickle.HIGHEST_PROTOCOL)


def last_k_per_label(items, k):
    """A valid K-shot selection no seed is likely to make: the last k items of each label."""
    out = []
    for label in dict.fromkeys(y for _, y, _ in items):
        out += [it for it in items if it[1] == label][-k:]
    return out


def cache_path(spec, k, seed):
    return os.path.join(spec.dataset_dir, "split_fewshot", f"shot_{k}-seed_{seed}.pkl")


def test_originals_cache_loads_when_it_fits_the_data_root(tmp_path):
    spec = make_dataset("Caltech101", tmp_path / "data")
    picks = {"train": last_k_per_label(spec.expected["train"], 2), "val": last_k_per_label(spec.expected["val"], 2)}
    path = cache_path(spec, 2, 1)
    write_original_cache(path, picks)
    before = open(path, "rb").read()
    ds = read(spec, shots=2, seed=1)
    assert tuples(ds.train_x) == picks["train"] and tuples(ds.val) == picks["val"]
    assert open(path, "rb").read() == before  # used as is, not rebuilt
    base = read(spec, shots=2, seed=1, subsample="base")
    assert tuples(base.train_x) == coop_subsample([picks["train"]], "base")[0]
    if ENGINE == "builtin":
        assert "dassl" not in sys.modules  # loaded without Dassl


def test_originals_cache_is_rebuilt_after_the_data_root_moved(tmp_path):
    old = make_dataset("Caltech101", tmp_path / "old")
    write_original_cache(cache_path(old, 2, 1), {"train": last_k_per_label(old.expected["train"], 2),
                                                 "val": last_k_per_label(old.expected["val"], 2)})
    new_root = str(tmp_path / "new")
    shutil.move(old.root, new_root)  # the cache still names the old absolute paths
    expected = [(p.replace(old.root, new_root, 1), y, c) for p, y, c in old.expected["train"]]
    ds = read(new_root, "Caltech101", shots=2, seed=1)
    random.seed(1)
    assert tuples(ds.train_x) == dassl_fewshot(expected, 2)
    assert all(d.impath.startswith(new_root + os.sep) for d in ds.train_x + ds.val)
    rebuilt = fewshot.load_datums(os.path.join(new_root, "caltech-101", "split_fewshot", "shot_2-seed_1.pkl"))
    assert rebuilt["vlprompt"]["dataset_dir"] == os.path.join(new_root, "caltech-101")


@pytest.mark.parametrize("change", ["fewer shots", "other class names", "unknown image"])
def test_originals_cache_that_does_not_fit_is_rebuilt(change, tmp_path, capsys):
    spec = make_dataset("Caltech101", tmp_path / "data")
    train = last_k_per_label(spec.expected["train"], 2)
    val = last_k_per_label(spec.expected["val"], 2)
    if change == "fewer shots":
        train = last_k_per_label(spec.expected["train"], 1)
    elif change == "other class names":
        train = [(p, y, c.upper()) for p, y, c in train]
    else:
        train[0] = (os.path.join(spec.image_dir, "ant", "image_9999.jpg"), train[0][1], train[0][2])
    write_original_cache(cache_path(spec, 2, 1), {"train": train, "val": val})
    ds = read(spec, shots=2, seed=1)
    random.seed(1)
    assert tuples(ds.train_x) == dassl_fewshot(spec.expected["train"], 2)
    assert "does not match this data root or split; rebuilding it" in capsys.readouterr().out


def test_our_cache_is_rebuilt_for_another_split_file(tmp_path, capsys):
    spec = make_dataset("DescribableTextures", tmp_path / "data")
    read(spec, shots=2, seed=1)
    # Another split file: a test image moves to train (same class list, same cache name).
    import json
    with open(spec.split_file) as f:
        split = json.load(f)
    split["train"].append(split["test"].pop(0))
    with open(spec.split_file, "w") as f:
        json.dump(split, f)
    ds = read(spec, shots=2, seed=1, rng_seed=1)
    new_train = spec.expected["train"] + [spec.expected["test"][0]]
    random.seed(1)
    assert tuples(ds.train_x) == dassl_fewshot(new_train, 2)
    assert "was made from other data" in capsys.readouterr().out


@pytest.mark.skipif(os.environ.get("VLPROMPT_ENGINE") == "dassl", reason="on the real Dassl the cache pickles Dassl's own Datum, which the original reads as it always did; this checks the built-in engine's stand-in")
def test_our_cache_is_read_by_the_original_code(tmp_path):
    """Our file pickles Datum under Dassl's class path and holds only plain data besides."""
    spec = make_dataset("Caltech101", tmp_path / "data")
    ds = read(spec, shots=2, seed=1)
    raw = open(cache_path(spec, 2, 1), "rb").read()
    globals_used = [arg for op, arg, _ in pickletools.genops(raw) if op.name == "GLOBAL"]
    assert globals_used == ["dassl.data.datasets.base_dataset Datum"]
    assert not any(op.name == "STACK_GLOBAL" for op, _, _ in pickletools.genops(raw))
    with fake_dassl_module():
        data = pickle.loads(raw)  # what the original's pickle.load does
        assert [(d._impath, d._label, d._classname) for d in data["train"]] == tuples(ds.train_x)
        assert isinstance(data["train"][0], sys.modules["dassl.data.datasets.base_dataset"].Datum)


def test_unreadable_cache_is_rebuilt(tmp_path, capsys):
    spec = make_dataset("Caltech101", tmp_path / "data")
    path = cache_path(spec, 2, 1)
    os.makedirs(os.path.dirname(path))
    with open(path, "wb") as f:
        f.write(b"\x80\x05truncated")
    ds = read(spec, shots=2, seed=1)
    random.seed(1)
    assert tuples(ds.train_x) == dassl_fewshot(spec.expected["train"], 2)
    assert "Ignoring unreadable few-shot cache" in capsys.readouterr().out
    assert fewshot.load_datums(path)["vlprompt"]["num_shots"] == 2


def _half_then_wait_atomic_write(barrier, queue):
    """atomic_write whose file receives half of the data, then waits until both writers are there."""
    real_atomic_write = fewshot.atomic_write

    @contextlib.contextmanager
    def slow_atomic_write(target, mode="wb"):
        with real_atomic_write(target, mode) as f:
            class HalfThenWait:
                def write(self, data):
                    f.write(data[:len(data) // 2])
                    barrier.wait()  # both writers are mid-file now
                    queue.put(("visible mid-write", os.path.exists(target)))
                    barrier.wait()
                    f.write(data[len(data) // 2:])
            yield HalfThenWait()

    return slow_atomic_write


def _build_cache_slowly(spec, barrier, queue):
    """A writer process (module-level, so that it runs under the 'spawn' start method)."""
    from vlprompt.plugins import load_codebase

    load_codebase(REPO_ROOT)  # a spawned process has not run conftest.py: register the readers
    fewshot.atomic_write = _half_then_wait_atomic_write(barrier, queue)
    with contextlib.redirect_stdout(open(os.devnull, "w")):
        queue.put(("train", tuples(read(spec, shots=2, seed=1).train_x)))


def test_two_concurrent_writers_leave_one_valid_file(tmp_path):
    """Two processes build the same cache; both are stopped half-way through writing it. The cache path
    must not exist then (nothing partial is ever visible), and afterwards it holds one valid cache.
    The writers are spawned, not forked: forking a process that initialised CUDA (on a GPU machine, after
    the GPU tests) crashes the children."""
    spec = make_dataset("Caltech101", tmp_path / "data")
    path = cache_path(spec, 2, 1)
    ctx = multiprocessing.get_context("spawn")
    barrier, queue = ctx.Barrier(2, timeout=120), ctx.Queue()
    workers = [ctx.Process(target=_build_cache_slowly, args=(spec, barrier, queue)) for _ in range(2)]
    for w in workers:
        w.start()
    messages = [queue.get(timeout=180) for _ in range(4)]
    for w in workers:
        w.join(60)
    assert [w.exitcode for w in workers] == [0, 0]
    assert sorted(v for k, v in messages if k == "visible mid-write") == [False, False]
    picks = [v for k, v in messages if k == "train"]
    assert os.listdir(os.path.dirname(path)) == [os.path.basename(path)]  # no temporary files left
    loaded = fewshot.load_datums(path)
    random.seed(1)
    assert [(d.impath, d.label, d.classname) for d in loaded["train"]] == picks[0] == picks[1] == dassl_fewshot(
        spec.expected["train"], 2)


def test_read_only_data_root_still_gives_the_right_subset(tmp_path, capsys, monkeypatch):
    spec = make_dataset("Caltech101", tmp_path / "data")

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(fewshot, "dump_datums", refuse)
    ds = read(spec, shots=2, seed=4)
    random.seed(4)
    assert tuples(ds.train_x) == dassl_fewshot(spec.expected["train"], 2)
    assert "could not write the few-shot cache" in capsys.readouterr().out


# -- ImageNet's preprocessed.pkl -------------------------------------------------------------------------

def preprocessed(spec):
    return os.path.join(spec.dataset_dir, "preprocessed.pkl")


def test_imagenet_preprocessed_is_written_then_used(tmp_path, monkeypatch):
    spec = make_dataset("ImageNet", tmp_path / "data")
    read(spec)
    data = fewshot.load_datums(preprocessed(spec))
    assert set(data) == {"train", "test", "vlprompt"}
    assert tuples(data["train"]) == spec.expected["train"] and tuples(data["test"]) == spec.expected["test"]

    import vlprompt.data.imagenet as imagenet_data
    import datasets.imagenet as imagenet_reader

    def no_listing(*args, **kwargs):
        raise AssertionError("the image folders were listed again")

    monkeypatch.setattr(imagenet_reader, "folder_items", no_listing)
    ds = read(spec)
    assert tuples(ds.train_x) == spec.expected["train"] and ds.val is ds.test
    assert imagenet_data.PREPROCESSED_FORMAT == data["vlprompt"]["format"]


def test_imagenet_originals_preprocessed_is_used_in_its_order(tmp_path):
    """The original lists images in os.listdir order; its file is used as is (so are its few-shot picks)."""
    spec = make_dataset("ImageNet", tmp_path / "data")
    shuffled = {"train": list(reversed(spec.expected["train"])), "test": list(reversed(spec.expected["test"]))}
    write_original_cache(preprocessed(spec), shuffled)
    ds = read(spec, shots=2, seed=1)
    random.seed(1)
    assert tuples(ds.train_x) == dassl_fewshot(shuffled["train"], 2)
    assert tuples(ds.test) == shuffled["test"]
    cache = fewshot.load_datums(cache_path(spec, 2, 1))
    assert set(cache) == {"train", "vlprompt"}  # ImageNet's few-shot cache holds no val


@pytest.mark.parametrize("change", ["moved root", "renamed class", "new class folder"])
def test_imagenet_preprocessed_is_rebuilt_when_it_does_not_fit(change, tmp_path, capsys):
    spec = make_dataset("ImageNet", tmp_path / "data")
    read(spec)
    root = spec.root
    if change == "moved root":
        root = str(tmp_path / "moved")
        shutil.move(spec.root, root)
    elif change == "renamed class":
        path = os.path.join(spec.dataset_dir, "classnames.txt")
        text = open(path).read().replace("n01440764 tench", "n01440764 tinca tinca")
        open(path, "w").write(text)
    else:
        for split in ("train", "val"):
            folder = os.path.join(spec.dataset_dir, "images", split, "n02988304")
            shutil.copytree(os.path.join(spec.dataset_dir, "images", split, "n01440764"), folder)
    ds = read(root, "ImageNet")
    out = capsys.readouterr().out
    assert "rebuilding it" in out
    assert all(d.impath.startswith(root + os.sep) for d in ds.train_x + ds.test)
    if change == "renamed class":
        assert ds.classnames[0] == "tinca tinca"
    if change == "new class folder":
        assert "CD player" in ds.classnames and ds.num_classes == 7


def test_read_only_data_root_without_split_file(tmp_path, capsys, monkeypatch):
    import vlprompt.data.benchmark as benchmark

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(benchmark, "save_split", refuse)
    monkeypatch.setattr(fewshot, "dump_datums", refuse)
    spec = make_dataset("DescribableTextures", tmp_path / "data", with_split=False)
    first = read(spec, shots=2, seed=8)
    second = read(spec, shots=2, seed=8)
    assert tuples(first.train_x) == tuples(second.train_x) and tuples(first.test) == tuples(second.test)
    out = capsys.readouterr().out
    assert "could not save the generated split" in out and "could not write the few-shot cache" in out
    assert os.listdir(spec.dataset_dir) == ["images"]

"""Every registered dataset reads its generated tree exactly: class names, label order, the train/val/test
lists, base/new subsampling, and few-shot picks equal to a re-statement of Dassl's algorithm.

Parametrised over DATASET_REGISTRY (timm style): a dataset is tested the day it is registered. The
missing-folder checks need nothing but the registration; the others need a generator in
vlprompt.testing.fake_data (a dataset of this repository without one fails; others are skipped, named).
"""
import os
import random

import pytest

from dataset_fixtures import config, coop_subsample, dassl_fewshot, read, tuples
from vlprompt.data import DatasetLayoutError, MissingImagesError
from vlprompt.data.catalog import CATALOG
from vlprompt.engine import DATASET_REGISTRY
from vlprompt.testing.fake_data import GENERATORS, make_dataset

# On the real Dassl the registry also holds Dassl's own readers (CIFAR10, PACS, ...): not ours to test.
REGISTERED = sorted(n for n in DATASET_REGISTRY.registered_names()
                    if not DATASET_REGISTRY.get(n).__module__.startswith("dassl."))
# The readers this repository's standard-dataset work is responsible for: each must have a generator.
OWN = set(CATALOG) | {"CustomDataset"}
GENERATED = [n for n in REGISTERED if n in GENERATORS or n in OWN]
TRAINABLE = [n for n in GENERATED if not getattr(DATASET_REGISTRY.get(n), "test_only", False)]
TEST_ONLY = [n for n in GENERATED if getattr(DATASET_REGISTRY.get(n), "test_only", False)]


def generated(name, tmp_path, **kwargs):
    return make_dataset(name, tmp_path / "data", **kwargs)


@pytest.mark.parametrize("name", REGISTERED)
def test_registered_dataset_has_a_generator(name):
    if name in GENERATORS:
        return
    if name in OWN:
        pytest.fail(f"{name} has no fake-data generator in vlprompt.testing.fake_data")
    pytest.skip(f"{name}: no generator in vlprompt.testing.fake_data.GENERATORS (register one with "
                "register_generator to run the generic reader tests on it; it has its own tests)")


def test_every_standard_dataset_is_registered_under_its_original_name():
    assert set(CATALOG) | {"CustomDataset"} <= set(REGISTERED)
    for name, info in CATALOG.items():
        assert DATASET_REGISTRY.get(name).dataset_dir == info.folder  # the catalog and the reader agree


@pytest.mark.parametrize("name", GENERATED)
def test_reads_generated_tree_exactly(name, tmp_path):
    spec = generated(name, tmp_path)
    ds = read(spec)
    assert ds.classnames == spec.classnames
    assert ds.num_classes == len(spec.classnames)
    assert ds.lab2cname == dict(enumerate(spec.classnames))
    assert tuples(ds.train_x) == spec.expected["train"]
    assert tuples(ds.val) == spec.expected["val"]
    assert tuples(ds.test) == spec.expected["test"]
    if spec.test_only:
        assert ds.train_x is ds.test and ds.val is None
    if name == "ImageNet":  # the official val set is both val and test
        assert ds.val is ds.test


@pytest.mark.parametrize("subsample", ["base", "new"])
@pytest.mark.parametrize("name", GENERATED)
def test_base_new_subsampling(name, subsample, tmp_path):
    spec = generated(name, tmp_path)
    ds = read(spec, subsample=subsample)
    if spec.test_only:  # ignored: every class is evaluated
        assert ds.classnames == spec.classnames
        return
    m = -(-len(spec.classnames) // 2)
    assert ds.classnames == (spec.classnames[:m] if subsample == "base" else spec.classnames[m:])
    want = coop_subsample([spec.expected[k] for k in ("train", "val", "test")], subsample)
    assert [tuples(ds.train_x), tuples(ds.val), tuples(ds.test)] == want


@pytest.mark.parametrize("name", TRAINABLE)
def test_fewshot_picks_match_dassl(name, tmp_path):
    spec = generated(name, tmp_path)
    for seed, k in ((1, 2), (2, 3), (3, 100)):
        ds = read(spec, shots=k, seed=seed)
        random.seed(seed)
        want_train = dassl_fewshot(spec.expected["train"], k)
        assert tuples(ds.train_x) == want_train, f"seed {seed}, {k} shots"
        if name == "ImageNet":  # no few-shot val: val is the test set
            assert tuples(ds.val) == spec.expected["test"] and ds.val is ds.test
        else:
            assert tuples(ds.val) == dassl_fewshot(spec.expected["val"], min(k, 4))
        assert tuples(ds.test) == spec.expected["test"]
        assert os.path.isfile(os.path.join(spec.dataset_dir, "split_fewshot", f"shot_{k}-seed_{seed}.pkl"))

        # The cache, not the RNG, decides on the second read; subsampling happens after it.
        again = read(spec, shots=k, seed=seed, rng_seed=12345)
        assert tuples(again.train_x) == want_train
        base = read(spec, shots=k, seed=seed, subsample="base", rng_seed=999)
        assert tuples(base.train_x) == coop_subsample([want_train], "base")[0]
    assert sorted(os.listdir(os.path.join(spec.dataset_dir, "split_fewshot"))) == [
        "shot_100-seed_3.pkl", "shot_2-seed_1.pkl", "shot_3-seed_2.pkl"]


@pytest.mark.parametrize("name", TEST_ONLY)
def test_test_only_datasets_ignore_shots_and_subsampling(name, tmp_path, capsys):
    spec = generated(name, tmp_path)
    assert spec.test_only
    ds = read(spec, shots=16, subsample="new")
    assert tuples(ds.test) == spec.expected["test"] and ds.train_x is ds.test and ds.val is None
    assert ds.classnames == spec.classnames
    assert "test-only" in capsys.readouterr().out
    assert not os.path.exists(os.path.join(spec.dataset_dir, "split_fewshot"))


@pytest.mark.parametrize("name", REGISTERED)
def test_missing_dataset_folder_is_named_with_layout(name, tmp_path):
    root = tmp_path / "empty_root"
    root.mkdir()
    opts = {"DATASET.CUSTOM.DIR": "my_data"} if name == "CustomDataset" else {}
    cls = DATASET_REGISTRY.get(name)
    with pytest.raises(DatasetLayoutError) as err:
        cls(config(root, name, **opts))
    message = str(err.value)
    assert str(root) + os.sep in message
    if name in OWN:  # ours also carry the missing path
        assert err.value.path and err.value.path.startswith(str(root) + os.sep) and err.value.path in message
    if getattr(cls, "layout", ""):
        assert "Expected layout" in message and cls.layout.strip().splitlines()[0] in message


@pytest.mark.parametrize("name", REGISTERED)
def test_missing_data_root_is_named(name, tmp_path):
    missing = tmp_path / "no_such_root"
    opts = {"DATASET.CUSTOM.DIR": "my_data"} if name == "CustomDataset" else {}
    with pytest.raises(DatasetLayoutError, match="Data root not found: " + str(missing)):
        DATASET_REGISTRY.get(name)(config(missing, name, **opts))


@pytest.mark.parametrize("name", GENERATED)
def test_missing_listed_image_gives_one_error_naming_it(name, tmp_path):
    spec = generated(name, tmp_path)
    if not spec.listed_images:
        pytest.skip("images come from a folder listing: nothing can be missing")
    victims = [spec.expected["test"][0][0], spec.expected["train"][-1][0]]
    for path in victims:
        os.remove(path)
    with pytest.raises(MissingImagesError) as err:
        read(spec)
    message = str(err.value)
    assert victims[0] in message or victims[1] in message
    assert "2 of " in message and "Expected layout" in message
    assert sorted(err.value.missing) == sorted(victims)


@pytest.mark.parametrize("name", sorted(CATALOG))
def test_reader_layout_names_every_catalog_path(name):
    """The layout shown in errors mentions every file the catalog says the dataset needs."""
    layout = DATASET_REGISTRY.get(name).layout
    for entry in CATALOG[name].entries:
        assert entry.path.split("/")[-1] in layout, f"{entry.path} missing from {name}'s layout text"


def test_corrupt_image_is_named_when_loaded(tmp_path):
    """A file the reader lists but PIL cannot decode fails the loader with an error naming the file."""
    from dataset_fixtures import config
    from vlprompt.engine import DatasetWrapper

    spec = generated("EuroSAT", tmp_path)
    corrupt = spec.expected["test"][2][0]
    with open(corrupt, "wb") as f:
        f.write(b"\xff\xd8 not really a JPEG")
    ds = read(spec)
    wrapper = DatasetWrapper(config(spec.root, "EuroSAT"), ds.test)
    wrapper[0]  # a good image loads
    with pytest.raises(OSError) as err:
        wrapper[2]
    assert corrupt in str(err.value)


@pytest.mark.parametrize("name, size", [("Caltech101", {"images_per_class": 30}), ("FGVCAircraft",
                                                                                   {"per_split": (8, 6, 1)})])
def test_fewshot_val_has_at_most_four_per_class(name, size, tmp_path):
    spec = generated(name, tmp_path, **size)
    ds = read(spec, shots=5, seed=2)
    random.seed(2)
    assert tuples(ds.train_x) == dassl_fewshot(spec.expected["train"], 5)
    assert tuples(ds.val) == dassl_fewshot(spec.expected["val"], 4)
    assert len(ds.val) == 4 * len(spec.classnames)

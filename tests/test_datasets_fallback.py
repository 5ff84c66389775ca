"""Without CoOp's split file, each reader builds the split from the raw files with the original's RNG calls,
in the original's order, writes the split JSON, and reads it back identically. The expected splits are
re-stated here (per-class 50/20/30 of the sorted class folders; per-label 80/20 of trainval; Flowers'
labels in first-appearance order), on Python's global random seeded as train.py seeds it."""
import json
import os
import random
from collections import OrderedDict

import pytest

from dataset_fixtures import dassl_fewshot, read, tuples
from vlprompt.data import DatasetLayoutError
from vlprompt.data.errors import DatasetFormatError
from vlprompt.testing.fake_data import make_dataset

FOLDER_DATASETS = {  # name -> (ignored folders, renamed folders)
    "Caltech101": (("BACKGROUND_Google", "Faces_easy"),
                   {"airplanes": "airplane", "Faces": "face", "Leopards": "leopard", "Motorbikes": "motorbike"}),
    "Food101": ((), {}),
    "DescribableTextures": ((), {}),
    "EuroSAT": ((), {"AnnualCrop": "Annual Crop Land", "HerbaceousVegetation": "Herbaceous Vegetation Land",
                     "Highway": "Highway or Road", "Industrial": "Industrial Buildings", "Pasture": "Pasture Land",
                     "PermanentCrop": "Permanent Crop Land", "Residential": "Residential Buildings",
                     "SeaLake": "Sea or Lake"}),
}
TRAINVAL_DATASETS = ["OxfordPets", "StanfordCars", "SUN397", "UCF101"]
ALL = sorted(FOLDER_DATASETS) + TRAINVAL_DATASETS + ["OxfordFlowers"]


def per_class_split(groups):
    """groups: [(label, name, [paths])] in order -> 50/20/30 per group after random.shuffle."""
    train, val, test = [], [], []
    for label, name, paths in groups:
        paths = list(paths)
        random.shuffle(paths)
        n_train, n_val = round(len(paths) * 0.5), round(len(paths) * 0.2)
        train += [(p, label, name) for p in paths[:n_train]]
        val += [(p, label, name) for p in paths[n_train:n_train + n_val]]
        test += [(p, label, name) for p in paths[n_train + n_val:]]
    return train, val, test


def trainval_split(trainval):
    """Per label in first-appearance order: shuffle the indices, first round(0.2 n) to val."""
    by_label = OrderedDict()
    for i, item in enumerate(trainval):
        by_label.setdefault(item[1], []).append(i)
    train, val = [], []
    for idxs in by_label.values():
        n_val = round(len(idxs) * 0.2)
        random.shuffle(idxs)
        for n, i in enumerate(idxs):
            (val if n < n_val else train).append(trainval[i])
    return train, val


def expected_fallback(spec):
    if spec.name in FOLDER_DATASETS:
        ignored, renamed = FOLDER_DATASETS[spec.name]
        image_dir = spec.image_dir
        folders = sorted(f for f in os.listdir(image_dir) if f not in ignored)
        groups = [(label, renamed.get(f, f), [os.path.join(image_dir, f, im) for im in sorted(os.listdir(
            os.path.join(image_dir, f)))]) for label, f in enumerate(folders)]
        return per_class_split(groups)
    if spec.name == "OxfordFlowers":
        groups = OrderedDict()
        for path, label, name in spec.raw["images"]:
            groups.setdefault((label, name), []).append(path)
        return per_class_split([(label, name, paths) for (label, name), paths in groups.items()])
    train, val = trainval_split(spec.raw["trainval"])
    return train, val, spec.raw["test"]


@pytest.mark.parametrize("name", ALL)
def test_split_generated_like_the_original_then_saved_and_reread(name, tmp_path):
    spec = make_dataset(name, tmp_path / "data", with_split=False)
    split_path = os.path.join(spec.dataset_dir, f"split_zhou_{name}.json")
    assert not os.path.exists(split_path)
    ds = read(spec, seed=7)
    random.seed(7)
    want = expected_fallback(spec)
    assert [tuples(ds.train_x), tuples(ds.val), tuples(ds.test)] == list(want)
    assert ds.classnames == spec.classnames

    with open(split_path) as f:  # CoOp's format: [relative path, label, class name], 4-space indent
        saved = json.load(f)
    assert saved == {key: [[os.path.relpath(p, spec.image_dir), y, c] for p, y, c in part]
                     for key, part in zip(("train", "val", "test"), want)}
    assert open(split_path).read().startswith('{\n    "train": [\n        [\n')

    again = read(spec, seed=99)  # now from the file, whatever the seed
    assert [tuples(again.train_x), tuples(again.val), tuples(again.test)] == list(want)


@pytest.mark.parametrize("name", ["Caltech101", "OxfordPets", "OxfordFlowers"])
def test_generated_split_then_fewshot_share_one_rng_stream(name, tmp_path):
    """train.py seeds once; the split generation consumes the stream before the few-shot sampling."""
    spec = make_dataset(name, tmp_path / "data", with_split=False)
    ds = read(spec, shots=2, seed=3)
    random.seed(3)
    train, val, _ = expected_fallback(spec)
    assert tuples(ds.train_x) == dassl_fewshot(train, 2)
    assert tuples(ds.val) == dassl_fewshot(val, 2)


@pytest.mark.parametrize("name, missing", [
    ("OxfordPets", "annotations/trainval.txt"),
    ("StanfordCars", "devkit/cars_meta.mat"),
    ("OxfordFlowers", "cat_to_name.json"),
    ("SUN397", "ClassName.txt"),
    ("UCF101", "ucfTrainTestlist/classInd.txt"),
])
def test_missing_annotation_without_split_file_names_both(name, missing, tmp_path):
    spec = make_dataset(name, tmp_path / "data", with_split=False)
    os.remove(os.path.join(spec.dataset_dir, missing))
    with pytest.raises(DatasetLayoutError) as err:
        read(spec)
    message = str(err.value)
    assert err.value.path == os.path.join(spec.dataset_dir, missing)
    assert os.path.join(spec.dataset_dir, missing) in message
    assert f"split file {os.path.join(spec.dataset_dir, f'split_zhou_{name}.json')} is absent" in message
    assert "drive.google.com" in message and "Expected layout" in message


def test_malformed_annotation_line_names_the_file(tmp_path):
    spec = make_dataset("OxfordPets", tmp_path / "data", with_split=False)
    path = os.path.join(spec.dataset_dir, "annotations", "test.txt")
    with open(path, "a") as f:
        f.write("Bengal_99 one 1 1\n")
    with pytest.raises(DatasetFormatError, match="test.txt: expected lines 'imname classid species breedid'"):
        read(spec)


def test_aircraft_unknown_variant_names_the_file(tmp_path):
    spec = make_dataset("FGVCAircraft", tmp_path / "data")
    with open(os.path.join(spec.dataset_dir, "images_variant_val.txt"), "a") as f:
        f.write("1234567 Boeing 797\n")
    with pytest.raises(DatasetFormatError, match="images_variant_val.txt: line '1234567 Boeing 797': variant "
                       "'Boeing 797' is not in variants.txt"):
        read(spec)


def test_invalid_split_json_names_the_file(tmp_path):
    spec = make_dataset("DescribableTextures", tmp_path / "data")
    with open(spec.split_file, "w") as f:
        f.write('{"train": [')
    with pytest.raises(DatasetFormatError, match="is not valid JSON") as err:
        read(spec)
    assert spec.split_file in str(err.value)


def test_imagenet_classnames_must_cover_every_folder(tmp_path):
    spec = make_dataset("ImageNet", tmp_path / "data")
    os.makedirs(os.path.join(spec.dataset_dir, "images", "train", "n09999999"))
    with pytest.raises(DatasetFormatError, match="classnames.txt has no line for the folder n09999999"):
        read(spec)

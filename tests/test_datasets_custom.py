"""Users' own data (CustomDataset): image folders with or without train/val/test, CSV files, the few-shot and
base/new options, and the errors for a malformed tree or CSV."""
import os
import random
import shutil

import pytest

from dataset_fixtures import coop_subsample, dassl_fewshot, read, tuples
from vlprompt.config import build_config, merge_from_list_checked
from vlprompt.data import DatasetFormatError, DatasetLayoutError
from vlprompt.testing.fake_data import CUSTOM_CLASSES, make_dataset


def split_restated(groups, p_trn, p_val, split_seed=0):
    """Per class (label order): shuffle with random.Random(split_seed), then p_trn / p_val / rest."""
    rng = random.Random(split_seed)
    train, val, test = [], [], []
    for label, name, paths in groups:
        paths = list(paths)
        rng.shuffle(paths)
        a, b = round(len(paths) * p_trn), round(len(paths) * p_val)
        train += [(p, label, name) for p in paths[:a]]
        val += [(p, label, name) for p in paths[a:a + b]]
        test += [(p, label, name) for p in paths[a + b:]]
    return [train, val, test]


def test_config_keys_and_command_line():
    cfg = build_config()
    assert cfg.DATASET.CUSTOM.DIR == "" and cfg.DATASET.CUSTOM.CSV == "" and cfg.DATASET.CUSTOM.P_VAL == 0.2
    merge_from_list_checked(cfg, ["DATASET.CUSTOM.DIR", "my_data", "DATASET.CUSTOM.P_TRAIN", "0.6"])
    assert cfg.DATASET.CUSTOM.DIR == "my_data" and cfg.DATASET.CUSTOM.P_TRAIN == 0.6


def test_image_folders_with_splits_shots_and_base_new(tmp_path):
    spec = make_dataset("CustomDataset", tmp_path)
    ds = read(spec, shots=2, seed=5, subsample="new")
    random.seed(5)
    train = dassl_fewshot(spec.expected["train"], 2)
    val = dassl_fewshot(spec.expected["val"], 2)
    assert [tuples(ds.train_x), tuples(ds.val), tuples(ds.test)] == coop_subsample(
        [train, val, spec.expected["test"]], "new")
    assert ds.classnames == ["washer", "wing_nut"]
    assert os.path.isfile(os.path.join(spec.dataset_dir, "split_fewshot", "shot_2-seed_5.pkl"))


def test_csv_per_split_with_header_and_classnames(tmp_path):
    spec = make_dataset("CustomDataset", tmp_path, layout="csv")
    ds = read(spec)
    assert [tuples(ds.train_x), tuples(ds.val), tuples(ds.test)] == [spec.expected[k] for k in ("train", "val", "test")]
    assert ds.classnames == ["bolt", "nut", "screw", "washer", "wing nut"]


def test_class_folders_only_are_split_the_same_way_for_every_seed(tmp_path):
    spec = make_dataset("CustomDataset", tmp_path, layout="pool")
    groups = [(label, c, [os.path.join(spec.dataset_dir, c, f) for f in sorted(os.listdir(
        os.path.join(spec.dataset_dir, c)))]) for label, c in enumerate(CUSTOM_CLASSES)]
    want = split_restated(groups, 0.5, 0.2)
    for seed in (1, 2):
        ds = read(spec, seed=seed)
        assert [tuples(ds.train_x), tuples(ds.val), tuples(ds.test)] == want  # .JPG included, SEED irrelevant
    other = read(spec, **{"DATASET.CUSTOM.SPLIT_SEED": 3, "DATASET.CUSTOM.P_TRAIN": 0.6})
    assert tuples(other.test) == split_restated(groups, 0.6, 0.2, split_seed=3)[2]


def test_train_and_test_folders_hold_out_val_from_train(tmp_path):
    spec = make_dataset("CustomDataset", tmp_path, per_split=(5, 2, 3))
    shutil.rmtree(os.path.join(spec.dataset_dir, "val"))
    ds = read(spec)
    rng = random.Random(0)
    train, val = [], []
    for label in range(len(CUSTOM_CLASSES)):  # CoOp's split_trainval with the split generator
        items = [it for it in spec.expected["train"] if it[1] == label]
        rng.shuffle(items)
        val += items[:1]
        train += items[1:]
    assert tuples(ds.train_x) == train and tuples(ds.val) == val and tuples(ds.test) == spec.expected["test"]


def test_train_and_val_folders_use_val_as_test(tmp_path, capsys):
    spec = make_dataset("CustomDataset", tmp_path)
    shutil.rmtree(os.path.join(spec.dataset_dir, "test"))
    ds = read(spec)
    assert tuples(ds.test) == spec.expected["val"] and ds.val is ds.test
    assert "the val split is used as the test set" in capsys.readouterr().out


def test_single_csv_with_class_names_as_labels(tmp_path):
    folder = tmp_path / "catalogue"
    rows = []
    for cls in ("zebra", "ant", "moose"):
        for j in range(5):
            path = folder / "img" / f"{cls}{j}.jpg"
            from vlprompt.testing.fake_data import write_jpeg
            write_jpeg(str(path), (10, 20, 30), seed=j)
            rows.append(f"img/{cls}{j}.jpg,{cls}")
    (folder / "all.csv").write_text("\n".join(rows) + "\n")
    ds = read(str(tmp_path), "CustomDataset", **{"DATASET.CUSTOM.DIR": "catalogue", "DATASET.CUSTOM.CSV": "all.csv"})
    assert ds.classnames == ["ant", "moose", "zebra"]  # labels follow the sorted names
    groups = [(label, c, [str(folder / "img" / f"{c}{j}.jpg") for j in range(5)])
              for label, c in enumerate(["ant", "moose", "zebra"])]
    assert [tuples(ds.train_x), tuples(ds.val), tuples(ds.test)] == split_restated(groups, 0.5, 0.2)


@pytest.mark.parametrize("problem, error, match", [
    ("no dir", DatasetLayoutError, "DATASET.CUSTOM.DIR is empty"),
    ("label gap", DatasetFormatError, r"labels of the training data must be 0..N-1; missing \[1\]"),
    ("bad row", DatasetFormatError, r"train.csv, line 3: expected 'path,label\[,classname\]'"),
    ("two names", DatasetFormatError, "label 0 is named 'bolt' here but 'nut' elsewhere"),
    ("missing image", DatasetLayoutError, "1 of 20 images listed in"),
    ("unknown class folder", DatasetFormatError, "has no counterpart in"),
    ("a name among integers", DatasetFormatError,
     r"train.csv, line 3: the label 'seven' is a class name, but .*train.csv, line 2 has the integer label 0: use "
     r"integers \(0..N-1\) or class names throughout"),
    ("label out of range", DatasetFormatError, r"test.csv, line 2: label 9 does not occur in the training data"),
])
def test_errors_name_the_problem(problem, error, match, tmp_path):
    layout = "splits" if problem == "unknown class folder" else "csv"
    spec = make_dataset("CustomDataset", tmp_path, layout=layout)
    opts = {}
    train_csv = os.path.join(spec.dataset_dir, "train.csv")
    lines = open(train_csv).read().splitlines() if layout == "csv" else []
    if problem == "no dir":
        opts["DATASET.CUSTOM.DIR"] = ""
    elif problem == "label gap":
        lines = [line for line in lines if ",1," not in line]
    elif problem == "bad row":
        lines[2] = "images/x.jpg"
    elif problem == "two names":
        lines[1] = lines[1].rsplit(",", 1)[0] + ",nut"
    elif problem == "a name among integers":
        path, _, name = lines[2].split(",")
        lines[2] = f"{path},seven,{name}"
    elif problem == "label out of range":
        test_csv = os.path.join(spec.dataset_dir, "test.csv")
        test_lines = open(test_csv).read().splitlines()
        path, _, name = test_lines[1].split(",")
        test_lines[1] = f"{path},9,{name}"
        open(test_csv, "w").write("\n".join(test_lines) + "\n")
    elif problem == "missing image":
        os.remove(spec.expected["train"][3][0])
    else:
        os.makedirs(os.path.join(spec.dataset_dir, "test", "hammer"))
    if lines:
        open(train_csv, "w").write("\n".join(lines) + "\n")
    with pytest.raises(error, match=match):
        read(spec, **opts)

"""The originals' public static helpers on vlprompt's readers, which the original repositories' other
readers call (`OxfordPets.read_split / save_split / subsample_classes / split_trainval`,
`DTD.read_and_split_data`), behave as the reference describes (reference §B.7.2-B.7.4)."""
import json
import math
import random

import pytest

from datasets.dtd import DescribableTextures as DTD
from datasets.oxford_pets import OxfordPets
from vlprompt.engine import Datum


def image_tree(root, counts):
    """<root>/<folder>/img_<i>.jpg for {folder: number of images}."""
    for folder, n in counts.items():
        (root / folder).mkdir(parents=True)
        for i in range(n):
            (root / folder / f"img_{i:02d}.jpg").write_bytes(b"\xff\xd8\xff\xd9")
    return str(root)


def test_read_and_split_data_splits_each_class_50_20_30_with_ignored_folders_and_new_names(tmp_path):
    image_dir = image_tree(tmp_path / "images", {"b_class": 10, "a_class": 10, "BACKGROUND": 4, "c_class": 20})
    random.seed(1)
    train, val, test = DTD.read_and_split_data(image_dir, ignored=["BACKGROUND"], new_cnames={"c_class": "see"})
    names = {d.label: d.classname for d in train + val + test}
    assert names == {0: "a_class", 1: "b_class", 2: "see"}  # sorted folders, ignored skipped, then renamed
    for label, n in ((0, 10), (1, 10), (2, 20)):
        parts = [[d.impath for d in split if d.label == label] for split in (train, val, test)]
        assert [len(p) for p in parts] == [round(n * 0.5), round(n * 0.2), n - round(n * 0.5) - round(n * 0.2)]
        assert len(set(sum(parts, []))) == n  # a partition of the class's images
    assert all(isinstance(d, Datum) and d.domain == 0 for d in train + val + test)
    random.seed(1)
    again = DTD.read_and_split_data(image_dir, ignored=["BACKGROUND"], new_cnames={"c_class": "see"})
    assert [d.impath for d in again[0]] == [d.impath for d in train]  # Python's global random decides
    train, val, test = DTD.read_and_split_data(image_dir, p_trn=0.6, p_val=0.1, ignored=["BACKGROUND"])
    assert len([d for d in train if d.label == 2]) == 12 and len([d for d in val if d.label == 2]) == 2


def test_save_split_and_read_split_round_trip_in_the_originals_json_format(tmp_path):
    image_dir = image_tree(tmp_path / "images", {"cat": 3, "dog": 3})
    items = [Datum(impath=f"{image_dir}/{c}/img_{i:02d}.jpg", label=y, classname=c)
             for y, c in enumerate(["cat", "dog"]) for i in range(3)]
    path = str(tmp_path / "split.json")
    OxfordPets.save_split(items[:2], items[2:3], items[3:], path, image_dir)
    text = open(path).read()
    split = json.loads(text)
    assert sorted(split) == ["test", "train", "val"] and '\n    "train": [' in text  # 4-space indent
    assert split["train"] == [["cat/img_00.jpg", 0, "cat"], ["cat/img_01.jpg", 0, "cat"]]  # relative, no leading /
    train, val, test = OxfordPets.read_split(path, image_dir)
    for got, want in zip((train, val, test), (items[:2], items[2:3], items[3:])):
        assert [(d.impath, d.label, d.classname, d.domain) for d in got] == [
            (d.impath, d.label, d.classname, 0) for d in want]


def test_subsample_classes_keeps_ceil_half_base_and_relabels(tmp_path):
    image = tmp_path / "x.jpg"
    image.write_bytes(b"")

    def datums(labels):
        return [Datum(impath=str(image), label=y, domain=1, classname=f"c{y}") for i, y in enumerate(labels)]

    train, test = datums([4, 0, 2, 1, 3]), datums([0, 1, 2, 3, 4, 4])
    assert OxfordPets.subsample_classes(train, test, subsample="all") == (train, test)
    base_train, base_test = OxfordPets.subsample_classes(train, test, subsample="base")
    m = math.ceil(5 / 2)
    assert sorted(d.classname for d in base_train) == ["c0", "c1", "c2"] and m == 3
    assert [(d.label, d.classname, d.domain) for d in base_test] == [(0, "c0", 0), (1, "c1", 0), (2, "c2", 0)]
    new_train, new_test = OxfordPets.subsample_classes(train, test, subsample="new")
    assert [(d.label, d.classname) for d in new_train] == [(1, "c4"), (0, "c3")]  # labels 3, 4 -> 0, 1
    assert [d.label for d in new_test] == [0, 1, 1]
    with pytest.raises(ValueError, match="SUBSAMPLE_CLASSES"):
        OxfordPets.subsample_classes(train, subsample="novel")


def test_split_trainval_holds_out_a_fifth_per_class(tmp_path):
    image_tree(tmp_path, {"0": 10, "1": 10})
    items = [Datum(impath=str(tmp_path / str(y) / f"img_{i:02d}.jpg"), label=y, classname=f"c{y}") for y in (0, 1) for i in range(10)]
    random.seed(0)
    train, val = OxfordPets.split_trainval(items)
    assert [sum(d.label == y for d in val) for y in (0, 1)] == [2, 2] and len(train) == 16
    assert {d.impath for d in train} | {d.impath for d in val} == {d.impath for d in items}

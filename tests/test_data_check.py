"""The data checker (`vlprompt data check`): found / missing with the exact path and its source, counts
against the published sizes, unreadable images, exit status; and the `vlprompt` command itself."""
import json
import os
import runpy
import sys

import pytest

from vlprompt.cli import main
from vlprompt.data.catalog import CATALOG
from vlprompt.data.check import check, check_dataset
from vlprompt.testing.fake_data import make_dataset

# Reference §B.7.5 (CoOp paper) and the variants' own releases, restated: (classes, train, val, test).
PUBLISHED = {
    "ImageNet": (1000, 1281167, None, 50000), "Caltech101": (100, 4128, 1649, 2465),
    "OxfordPets": (37, 2944, 736, 3669), "StanfordCars": (196, 6509, 1635, 8041),
    "OxfordFlowers": (102, 4093, 1633, 2463), "Food101": (101, 50500, 20200, 30300),
    "FGVCAircraft": (100, 3334, 3333, 3333), "SUN397": (397, 15880, 3970, 19850),
    "DescribableTextures": (47, 2820, 1128, 1692), "EuroSAT": (10, 13500, 5400, 8100),
    "UCF101": (101, 7639, 1898, 3783), "ImageNetV2": (1000, None, None, 10000),
    "ImageNetSketch": (1000, None, None, 50889), "ImageNetA": (200, None, None, 7500),
    "ImageNetR": (200, None, None, 30000),
}
BASE_NEW = {"ImageNet": (500, 500), "Caltech101": (50, 50), "OxfordPets": (19, 18), "StanfordCars": (98, 98),
            "OxfordFlowers": (51, 51), "Food101": (51, 50), "FGVCAircraft": (50, 50), "SUN397": (199, 198),
            "DescribableTextures": (24, 23), "EuroSAT": (5, 5), "UCF101": (51, 50)}


def test_catalog_holds_the_published_sizes():
    assert list(CATALOG) == list(PUBLISHED)
    for name, (classes, *sizes) in PUBLISHED.items():
        info = CATALOG[name]
        assert (info.classes, *info.sizes) == (classes, *sizes), name
        if name in BASE_NEW:
            assert (info.base, info.new) == BASE_NEW[name]


@pytest.mark.parametrize("name", ["Caltech101", "ImageNet", "OxfordPets", "ImageNetA"])
def test_counts_of_a_present_dataset(name, tmp_path):
    spec = make_dataset(name, tmp_path)
    report = check_dataset(name, str(tmp_path))
    assert report.usable and report.status == "warning"  # tiny trees differ from the published sizes
    want = {k: (None if v is None else len(v)) for k, v in spec.expected.items()}
    if spec.test_only:
        want["train"] = None
    if name == "ImageNet":
        want["val"] = None  # val is the test set
    assert report.counts == want
    assert report.classes == len(spec.classnames)
    assert report.images_checked == len({p for part in spec.expected.values() if part for p, _, _ in part})
    assert report.published["test"] == PUBLISHED[name][3]
    assert f"test has {want['test']:,} images; published: {PUBLISHED[name][3]:,}" in report.notes
    if not spec.test_only:
        m = -(-len(spec.classnames) // 2)
        assert report.base_new == (m, len(spec.classnames) - m)


def test_checker_writes_nothing(tmp_path):
    spec = make_dataset("Caltech101", tmp_path, with_split=False)
    report = check_dataset("Caltech101", str(tmp_path))
    assert report.usable and any("a split will be generated" in n and "drive.google.com" in n for n in report.notes)
    assert sorted(os.listdir(spec.dataset_dir)) == ["101_ObjectCategories"]  # no split file, no split_fewshot/
    imagenet = make_dataset("ImageNet", tmp_path)
    assert check_dataset("ImageNet", str(tmp_path)).usable
    assert not os.path.exists(os.path.join(imagenet.dataset_dir, "preprocessed.pkl"))


def test_missing_split_and_annotation_are_named_with_their_source(tmp_path):
    spec = make_dataset("OxfordPets", tmp_path, with_split=False)
    os.remove(os.path.join(spec.dataset_dir, "annotations", "test.txt"))
    report = check_dataset("OxfordPets", str(tmp_path))
    assert report.status == "missing" and not report.usable
    missing = dict(report.missing)
    assert set(missing) == {os.path.join(spec.dataset_dir, "split_zhou_OxfordPets.json"),
                            os.path.join(spec.dataset_dir, "annotations", "test.txt")}
    assert "https://drive.google.com/file/d/1501r8Ber4nNKvmlFVQZ8SeUHTcdTTEqs/view" in \
        missing[os.path.join(spec.dataset_dir, "split_zhou_OxfordPets.json")]
    assert "annotations.tar.gz (https://www.robots.ox.ac.uk/~vgg/data/pets/data/annotations.tar.gz)" in \
        missing[os.path.join(spec.dataset_dir, "annotations", "test.txt")]


def test_missing_image_and_unreadable_image(tmp_path):
    spec = make_dataset("Food101", tmp_path)
    victim = spec.expected["val"][0][0]
    os.remove(victim)
    report = check_dataset("Food101", str(tmp_path))
    assert report.status == "missing" and report.missing[0][0] == victim
    assert "1 of 40 images listed in" in report.error

    spec = make_dataset("DescribableTextures", tmp_path)
    corrupt = spec.expected["test"][1][0]
    with open(corrupt, "wb") as f:
        f.write(b"not a jpeg")
    truncated = spec.expected["train"][0][0]
    data = open(truncated, "rb").read()
    open(truncated, "wb").write(data[:-80])  # header intact, scan data cut
    report = check_dataset("DescribableTextures", str(tmp_path))
    assert report.status == "error"
    assert [p for p, _ in report.unreadable] == [corrupt]  # a header check does not decode
    report = check_dataset("DescribableTextures", str(tmp_path), images="decode")
    assert sorted(p for p, _ in report.unreadable) == sorted([corrupt, truncated])


def test_exit_status_and_summary(tmp_path, capsys):
    make_dataset("Caltech101", tmp_path)
    make_dataset("EuroSAT", tmp_path)
    root = str(tmp_path)
    assert main(["data", "check", "--root", root, "Caltech101", "EuroSAT"]) == 0
    out = capsys.readouterr().out
    assert "Caltech101           warning" in out and "classes: 10 (base 5 / new 5)   (published 100)" in out
    assert "images train/val/test: 40 / 20 / 20   (published 4,128 / 1,649 / 2,465)" in out
    assert "2 of 2 usable" in out

    # Without names: the absent datasets are reported, and only the present ones decide the status.
    assert main(["data", "check", "--root", root, "--images", "skip"]) == 0
    out = capsys.readouterr().out
    assert "Food101              NOT FOUND" in out and os.path.join(root, "food-101", "images") in out
    assert "2 of 15 usable" in out
    # A requested dataset that is absent is an error.
    assert main(["data", "check", "--root", root, "Caltech101", "Food101"]) == 1
    capsys.readouterr()
    assert main(["data", "check", "--root", root, "OxfordPet"]) == 2  # a user error: one line, exit 2
    assert 'Did you mean "OxfordPets"' in capsys.readouterr().err
    # Nothing present at all is an error too.
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["data", "check", "--root", str(empty)]) == 1


def test_json_report_and_custom_dataset(tmp_path, capsys):
    spec = make_dataset("CustomDataset", tmp_path)
    assert main(["data", "check", "--root", str(tmp_path), "CustomDataset", "--json",
                 "--opts", "DATASET.CUSTOM.DIR", spec.opts["DATASET.CUSTOM.DIR"]]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is True
    (custom,) = report["datasets"]
    assert custom["counts"] == {"train": 20, "val": 10, "test": 15} and custom["classes"] == 5


def test_check_function_returns_reports(tmp_path):
    make_dataset("UCF101", tmp_path)
    lines = []
    reports, ok = check(str(tmp_path), ["UCF101"], out=lines.append)
    assert ok and reports[0].counts == {"train": 20, "val": 5, "test": 15}
    assert "Apply_Eye_Makeup" not in "\n".join(lines)  # reader output is not mixed into the report


def test_python_dash_m_vlprompt(monkeypatch, capsys):
    """`python -m vlprompt` runs the console entry point (setup.py: vlprompt=vlprompt.cli:main); run here
    through runpy, as `-m` does, to spare a second interpreter start."""
    monkeypatch.setattr(sys, "argv", ["vlprompt", "data", "list"])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_module("vlprompt", run_name="__main__")
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "OxfordPets           oxford_pets/                37     19/18   2,944 / 736 / 3,669" in out
    assert "ImageNetA            imagenet-adversarial/      200 test only   - / - / 7,500" in out

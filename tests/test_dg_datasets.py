"""The few-shot DG readers (PACSFS, VLCSFS, OfficeHomeFS, DomainNetFS) on generated trees in Dassl's layouts:
which images each split holds, labels, class names and domain ids, the held-out domain's test set, the
K-shot-per-class-per-domain picks against an independent re-statement of the sampling, the cache, and
the ways of choosing the target domain."""
import os
import random

import pytest

from vlprompt.config import build_config
from vlprompt.data import DatasetLayoutError
from vlprompt.engine import DATASET_REGISTRY
from vlprompt.testing.fake_dg_data import MAKERS, PACS_ERROR_PATH, make_vlcs

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Facts of MetaPrompt's protocol (reference §1.6), stated here independently of the readers.
PROTOCOL = {
    "pacs": {"name": "PACSFS", "domains": ["art_painting", "cartoon", "photo", "sketch"],
             "val": ("crossval",), "test": ("train", "crossval")},
    "vlcs": {"name": "VLCSFS", "domains": ["caltech", "labelme", "pascal", "sun"],
             "val": ("crossval",), "test": ("test",)},
    "office_home": {"name": "OfficeHomeFS", "domains": ["art", "clipart", "product", "real_world"],
                    "val": ("val",), "test": ("train", "val")},
    "domainnet": {"name": "DomainNetFS", "domains": ["clipart", "infograph", "painting", "quickdraw", "real", "sketch"],
                  "val": ("test",), "test": ("test",)},
}


@pytest.fixture(scope="module")
def dg_data(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("dg"))
    return root, {key: make(root) for key, make in MAKERS.items()}


def build(root, key, shots=-1, seed=1, target=None, sources=None, **opts):
    options = ["DATASET.ROOT", root, "DATASET.NUM_SHOTS", shots, "SEED", seed]
    if target is not None:
        options += ["DATASET.TARGET_DOMAINS", repr(list(target))]
    if sources is not None:
        options += ["DATASET.SOURCE_DOMAINS", repr(list(sources))]
    for k, v in opts.items():
        options += [k.replace("__", "."), v]
    cfg = build_config(os.path.join(REPO_ROOT, "configs", "datasets", f"{key}.yaml"), opts=[str(o) for o in options])
    random.seed(seed)  # train.py seeds Python's random before the dataset is built
    return DATASET_REGISTRY.get(cfg.DATASET.NAME)(cfg)


def as_tuples(items):
    return [(d.impath, d.label, d.classname, d.domain) for d in items]


def per_domain(fake, domains, splits):
    """[[(path, label, class name, domain id)] for each domain], domain id = position in `domains`."""
    return [[(path, label, cname, i) for path, label, cname in fake.items(domain, *splits)]
            for i, domain in enumerate(domains)]


def with_domains(fake, domains, splits):
    return [item for items in per_domain(fake, domains, splits) for item in items]


@pytest.mark.parametrize("key", list(PROTOCOL))
def test_full_splits_layout_labels_and_test_domain(dg_data, key):
    root, fakes = dg_data
    fake, facts = fakes[key], PROTOCOL[key]
    assert fake.name == facts["name"] and fake.domains == facts["domains"]
    target = facts["domains"][1]
    sources = [d for d in facts["domains"] if d != target]
    ds = build(root, key, target=[target])
    assert ds.source_domains == sources and ds.target_domains == [target]
    assert as_tuples(ds.train_x) == with_domains(fake, sources, ("train",))
    assert as_tuples(ds.val) == with_domains(fake, sources, facts["val"])
    assert as_tuples(ds.test) == with_domains(fake, [target], facts["test"])
    assert ds.classnames == fake.classnames and ds.num_classes == len(fake.classnames)
    assert {d.domain for d in ds.train_x} == set(range(len(sources)))
    assert all(os.path.isfile(d.impath) for d in ds.train_x + ds.val + ds.test)


def test_exact_counts_and_names(dg_data):
    """Counts and names written out by hand for the default generated trees."""
    root, _ = dg_data
    pacs = build(root, "pacs", target=["sketch"])  # 3 classes; per domain and class: 3 train, 1 crossval, 1 test
    assert (len(pacs.train_x), len(pacs.val), len(pacs.test)) == (27, 9, 12)
    assert pacs.classnames == ["dog", "elephant", "giraffe"]
    sketch = build(root, "pacs", target=["photo"])  # the unreadable sketch image is listed but skipped
    assert len([d for d in sketch.train_x if d.domain == 2]) == 9
    assert not any(d.impath.endswith(PACS_ERROR_PATH) for d in sketch.train_x)
    with open(os.path.join(root, "pacs", "splits", "sketch_train_kfold.txt")) as f:
        assert any(line.startswith(PACS_ERROR_PATH + " ") for line in f)
    vlcs = build(root, "vlcs", target=["sun"])  # 5 classes; 2 train, 1 crossval, 1 test
    assert (len(vlcs.train_x), len(vlcs.val), len(vlcs.test)) == (30, 15, 5)
    assert vlcs.classnames == ["bird", "car", "chair", "dog", "person"]
    office = build(root, "office_home", target=["art"])  # folders TV, Alarm_Clock, ToothBrush; 2 train, 1 val
    assert (len(office.train_x), len(office.val), len(office.test)) == (18, 9, 9)
    assert office.classnames == ["alarm_clock", "tv", "toothbrush"]  # case-sensitive folder sort, lower-cased
    domainnet = build(root, "domainnet", target=["quickdraw"])  # 3 classes; 2 train, 1 test
    assert (len(domainnet.train_x), len(domainnet.val), len(domainnet.test)) == (30, 15, 3)
    assert domainnet.classnames == ["aircraft_carrier", "airplane", "alarm_clock"]
    assert domainnet.source_domains == ["clipart", "infograph", "painting", "real", "sketch"]


def reference_fewshot(per_domain_items, num_shots):
    """MetaPrompt's sampling re-stated: per domain, per label in first-appearance order, random.sample."""
    picked = []
    for items in per_domain_items:
        by_label = {}
        for item in items:
            by_label.setdefault(item[1], []).append(item)
        for group in by_label.values():
            picked.extend(random.sample(group, num_shots) if len(group) >= num_shots else group)
    return picked


@pytest.mark.parametrize("key,shots", [("pacs", 2), ("vlcs", 1), ("office_home", 1), ("domainnet", 1)])
def test_fewshot_picks_per_class_per_domain_and_cache(dg_data, key, shots, capsys):
    root, fakes = dg_data
    fake, facts = fakes[key], PROTOCOL[key]
    target = facts["domains"][0]
    sources = facts["domains"][1:]
    seed = 7
    ds = build(root, key, shots=shots, seed=seed, target=[target])
    random.seed(seed)
    train = reference_fewshot(per_domain(fake, sources, ("train",)), shots)
    val = reference_fewshot(per_domain(fake, sources, facts["val"]), min(shots, 4))
    assert as_tuples(ds.train_x) == train
    assert as_tuples(ds.val) == val
    counts = {}
    for d in ds.train_x:
        counts[(d.domain, d.label)] = counts.get((d.domain, d.label), 0) + 1
    assert set(counts.values()) == {shots} and len(counts) == len(sources) * len(fake.classnames)
    assert as_tuples(ds.test) == with_domains(fake, [target], facts["test"])  # never reduced

    cache = os.path.join(fake.dataset_dir, "split_fewshot", f"0_shot_{shots}-seed_{seed}.pkl")  # the original's name
    assert os.path.isfile(cache)
    capsys.readouterr()
    random.seed(12345)  # the cache, not the RNG, decides now
    again = DATASET_REGISTRY.get(facts["name"])(build_config(
        os.path.join(REPO_ROOT, "configs", "datasets", f"{key}.yaml"),
        opts=["DATASET.ROOT", root, "DATASET.NUM_SHOTS", str(shots), "SEED", str(seed), "DATASET.ID", "0"]))
    assert "Loading preprocessed few-shot data from " + cache in capsys.readouterr().out
    assert as_tuples(again.train_x) == train and as_tuples(again.val) == val


def test_target_by_id_sources_given_and_errors(dg_data):
    root, fakes = dg_data
    by_id = build(root, "pacs", DATASET__ID=2)
    by_name = build(root, "pacs", target=["photo"])
    assert by_id.target_domains == ["photo"] and as_tuples(by_id.test) == as_tuples(by_name.test)
    assert as_tuples(by_id.train_x) == as_tuples(by_name.train_x)
    assert build(root, "pacs", target=["photo"], DATASET__ID=2).target_domains == ["photo"]  # agreeing: fine

    subset = build(root, "pacs", shots=1, target=["photo"], sources=["sketch", "art_painting"])
    assert subset.source_domains == ["sketch", "art_painting"]
    first = [d for d in subset.train_x if d.domain == 0]
    assert first and all("/sketch/" in d.impath for d in first)  # domain ids follow the given order
    assert os.path.isfile(os.path.join(fakes["pacs"].dataset_dir, "split_fewshot",
                                       "sketch+art_painting_to_photo_shot_1-seed_1.pkl"))

    # DATASET.ID decides, as in the MetaPrompt code (its YAMLs carry lists that disagree with the ID)
    overridden = build(root, "pacs", target=["photo"], sources=["sketch"], DATASET__ID=1)
    assert (overridden.source_domains, overridden.target_domains) == (["art_painting", "photo", "sketch"], ["cartoon"])
    with pytest.raises(ValueError, match="DATASET.ID 4 is not allowed: expected the index of PACSFS's target domain, "
                                         "0=art_painting 1=cartoon 2=photo 3=sketch"):
        build(root, "pacs", DATASET__ID=4)
    with pytest.raises(ValueError, match="--target-domains"):
        build(root, "pacs")
    with pytest.raises(ValueError, match="clipart is not a domain of PACSFS: expected some of art_painting cartoon"):
        build(root, "pacs", target=["clipart"])
    with pytest.raises(ValueError, match="both a source and a target"):
        build(root, "pacs", target=["photo"], sources=["photo", "sketch"])
    with pytest.raises(ValueError, match="SUBSAMPLE_CLASSES"):
        build(root, "pacs", target=["photo"], DATASET__SUBSAMPLE_CLASSES="base")


def test_missing_data_names_the_path_and_layout(tmp_path):
    with pytest.raises(DatasetLayoutError) as err:
        build(str(tmp_path), "office_home", target=["art"])
    message = str(err.value)
    assert os.path.join(str(tmp_path), "office_home_dg") in message and "real_world/" in message

    other = tmp_path / "copy"
    fake = make_vlcs(str(other), dirname="vlcs")  # the MetaPrompt code's folder name is accepted too
    assert len(build(str(other), "vlcs", target=["sun"]).test) == len(fake.items("sun", "test"))
    os.rename(os.path.join(fake.dataset_dir, "PASCAL", "crossval"), os.path.join(fake.dataset_dir, "PASCAL", "cv"))
    with pytest.raises(DatasetLayoutError, match=r"PASCAL/crossval"):
        build(str(other), "vlcs", target=["sun"])
    domainnet = MAKERS["domainnet"](str(other))
    os.remove(os.path.join(domainnet.dataset_dir, "splits", "real_test.txt"))
    with pytest.raises(DatasetLayoutError, match=r"splits/real_test\.txt"):
        build(str(other), "domainnet", target=["real"])


def test_val_keeps_min_k_4_shots(tmp_path):
    """K = 5: 5 training images per class per source domain, but min(K, 4) = 4 validation images."""
    fake = MAKERS["domainnet"](str(tmp_path), classes=("bee", "zebra"), counts=(("train", 6), ("test", 6)))
    ds = build(str(tmp_path), "domainnet", shots=5, seed=3, target=["real"])
    sources = [d for d in PROTOCOL["domainnet"]["domains"] if d != "real"]
    random.seed(3)
    assert as_tuples(ds.train_x) == reference_fewshot(per_domain(fake, sources, ("train",)), 5)
    assert as_tuples(ds.val) == reference_fewshot(per_domain(fake, sources, ("test",)), 4)
    assert len(ds.train_x) == 5 * 2 * 5 and len(ds.val) == 4 * 2 * 5 and len(ds.test) == 6 * 2


def test_data_checker_reads_every_domain(dg_data):
    """`vlprompt data check --root $DATA PACSFS` goes through the reader's read_full: all four domains."""
    from vlprompt.data.check import check_dataset

    root, fakes = dg_data
    report = check_dataset("PACSFS", root)
    every = fakes["pacs"].domains
    assert report.status == "ok"
    assert report.counts == {"train": len(with_domains(fakes["pacs"], every, ("train",))),
                             "val": len(with_domains(fakes["pacs"], every, ("crossval",))),
                             "test": len(with_domains(fakes["pacs"], every, ("train", "crossval")))}
    assert report.images_checked == report.counts["train"] + report.counts["val"]  # test = train + crossval

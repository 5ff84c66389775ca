"""Every YAML under configs/ loads and builds what it configures, and every registered dataset reader
reads generated data: parametrised over the files and DATASET_REGISTRY, so a new config or reader is
tested the day it is added.

- configs/trainers/<TRAINER>/*.yaml: build_config loads it, every key it sets arrives in the config
  unchanged, and trainer <TRAINER> builds from it on the tiny CLIP (INPUT.SIZE (32, 32); the tiny
  ResNet CLIP for RN configs) on generated data (PACS for a domain-split trainer, else Caltech101).
- configs/datasets/**/*.yaml: build_config loads it and its reader reads the generated dataset.
- DATASET_REGISTRY (the datasets/*.py plugins, DG readers and CustomDataset included): each reader reads
  its generated tree, with the class names the generator states.
"""
import glob
import os
import random

import pytest
from yacs.config import CfgNode

from helpers import REPO_ROOT
from vlprompt.config import build_config
from vlprompt.engine import DATASET_REGISTRY, build_trainer
from vlprompt.plugins import is_codebase_module
from vlprompt.testing.fake_data import GENERATORS, make_dataset
from vlprompt.testing.fake_dg_data import MAKERS as DG_MAKERS

CONFIGS = os.path.join(REPO_ROOT, "configs")
TRAINER_CONFIGS = sorted(os.path.relpath(p, CONFIGS) for p in glob.glob(os.path.join(CONFIGS, "trainers", "*", "*.yaml")))
DATASET_CONFIGS = sorted(os.path.relpath(p, CONFIGS)
                         for p in glob.glob(os.path.join(CONFIGS, "datasets", "**", "*.yaml"), recursive=True))
READERS = sorted(n for n in DATASET_REGISTRY.registered_names()
                 if is_codebase_module(DATASET_REGISTRY.get(n).__module__, REPO_ROOT, "datasets"))
# Keys the tests set for the tiny CLIP and the generated data, whatever the file says.
OVERRIDDEN = {"MODEL.BACKBONE.NAME", "INPUT.SIZE", "DATALOADER.NUM_WORKERS", "USE_CUDA", "DATASET.ROOT",
              "DATASET.NUM_SHOTS", "DATASET.SUBSAMPLE_CLASSES", "DATASET.SOURCE_DOMAINS", "DATASET.TARGET_DOMAINS",
              "OUTPUT_DIR", "TRAINER.NAME"}


def flatten(node, prefix=""):
    for key, value in node.items():
        if isinstance(value, dict):
            yield from flatten(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def lookup(cfg, key):
    for part in key.split("."):
        cfg = cfg[part]
    return cfg


def assert_file_keys_arrived(cfg, path):
    """Every key the YAML sets has its (yacs-decoded) value in the built config."""
    with open(path) as f:
        written = CfgNode.load_cfg(f)
    keys = [(k, v) for k, v in flatten(written) if k not in OVERRIDDEN]
    assert keys or set(k for k, _ in flatten(written)) <= OVERRIDDEN
    for key, value in keys:
        got = lookup(cfg, key)
        if isinstance(value, str) and isinstance(got, float):  # YAML reads 1e-5 as a string; yacs casts it
            value = float(value)
        assert (list(got) if isinstance(got, tuple) else got) == (list(value) if isinstance(value, tuple) else value), key


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """generated(reader name) -> (data root, what the generator says the reader must produce), made once."""
    made = {}
    dg = {}

    def _get(name):
        if name in made:
            return made[name]
        if name in GENERATORS:
            root = tmp_path_factory.mktemp(name)
            spec = make_dataset(name, root)
            made[name] = (str(root), {"classnames": spec.classnames, "opts": dict(spec.opts),
                                      "domains": None})
            return made[name]
        if not dg:
            root = str(tmp_path_factory.mktemp("dg"))
            for make in DG_MAKERS.values():
                fake = make(root)
                dg[fake.name] = (root, {"classnames": fake.classnames, "opts": {}, "domains": fake.domains})
        made[name] = dg[name]
        return made[name]

    return _get


def reader_opts(name, info):
    opts = ["DATASET.NUM_SHOTS", "-1"]
    for key, value in info["opts"].items():
        opts += [key, str(value)]
    if info["domains"]:  # leave-one-domain-out: hold out the last domain
        opts += ["DATASET.TARGET_DOMAINS", repr([info["domains"][-1]])]
    return opts


def read(cfg):
    random.seed(1)
    return DATASET_REGISTRY.get(cfg.DATASET.NAME)(cfg)


def test_every_plugin_reader_has_generated_data():
    """A reader with no generator would not be tested below: each must have one."""
    dg_names = {"PACSFS", "VLCSFS", "OfficeHomeFS", "DomainNetFS"}
    assert dg_names <= set(READERS) and "CustomDataset" in READERS
    assert [n for n in READERS if n not in GENERATORS and n not in dg_names] == []


@pytest.mark.parametrize("name", READERS)
def test_every_registered_reader_reads_its_generated_data(name, generated):
    root, info = generated(name)
    cfg = build_config(opts=["DATASET.NAME", name, "DATASET.ROOT", root, *reader_opts(name, info)])
    dataset = read(cfg)
    assert dataset.classnames == info["classnames"]
    assert dataset.num_classes == len(info["classnames"])
    assert len(dataset.train_x) > 0 and len(dataset.test) > 0
    assert {d.label for d in dataset.test} <= set(range(dataset.num_classes))
    assert all(os.path.isfile(d.impath) for d in dataset.train_x[:5] + dataset.test[:5])
    if info["domains"]:  # the test set is the one held-out domain, the training set the others
        assert len({d.domain for d in dataset.test}) == 1
        assert len({d.domain for d in dataset.train_x}) == len(info["domains"]) - 1


@pytest.mark.parametrize("path", DATASET_CONFIGS)
def test_every_dataset_config_loads_and_its_reader_reads_generated_data(path, generated):
    cfg = build_config(os.path.join(CONFIGS, path))
    name = cfg.DATASET.NAME
    assert name in READERS, f"{path}: DATASET.NAME {name!r} is not a registered reader"
    root, info = generated(name)
    cfg = build_config(os.path.join(CONFIGS, path), opts=["DATASET.ROOT", root, *reader_opts(name, info)])
    assert_file_keys_arrived(cfg, os.path.join(CONFIGS, path))
    dataset = read(cfg)
    assert dataset.classnames == info["classnames"] and len(dataset.test) > 0


def uses_domain_split(trainer_name, cfg):
    return trainer_name == "Meta_DG" or ("META" in cfg.TRAINER and cfg.TRAINER.META.get("SPLIT") == "domain")


@pytest.mark.parametrize("path", TRAINER_CONFIGS)
def test_every_trainer_config_loads_and_builds_its_trainer(path, generated, tiny_clip_path, tiny_rn_clip_path, tmp_path):
    trainer_name = path.split(os.sep)[1]
    file_cfg = build_config(config_file=os.path.join(CONFIGS, path))
    resnet = file_cfg.MODEL.BACKBONE.NAME.upper().startswith("RN")
    if uses_domain_split(trainer_name, file_cfg):
        dataset, (root, info) = "pacs.yaml", generated("PACSFS")
        data = ["DATASET.NUM_SHOTS", "1", "DATASET.TARGET_DOMAINS", repr([info["domains"][-1]])]
    else:
        dataset, (root, _) = "caltech101.yaml", generated("Caltech101")
        data = ["DATASET.NUM_SHOTS", "1"]
    cfg = build_config(os.path.join(CONFIGS, "datasets", dataset), os.path.join(CONFIGS, path), opts=[
        "TRAINER.NAME", trainer_name, "DATASET.ROOT", root, "OUTPUT_DIR", str(tmp_path),
        "MODEL.BACKBONE.NAME", str(tiny_rn_clip_path if resnet else tiny_clip_path), "INPUT.SIZE", "(32, 32)",
        "DATALOADER.NUM_WORKERS", "0", "USE_CUDA", "False", *data])
    assert_file_keys_arrived(cfg, os.path.join(CONFIGS, path))
    cfg.freeze()
    trainer = build_trainer(cfg)
    assert type(trainer).__name__ == trainer_name
    assert trainer.max_epoch == file_cfg.OPTIM.MAX_EPOCH and trainer.num_classes > 0
    node = type(trainer).CONFIG_NODE
    if node:  # the method's keys from the file are what the trainer reads
        assert trainer.method_cfg == cfg.TRAINER[node]

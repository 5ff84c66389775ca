"""The built-in engine behaves as Dassl does: config defaults and key errors, registries, LR schedules,
few-shot sampling, data loading, checkpoints and resume, and the printed lines parsers depend on."""
import importlib.util
import io
import os
import random
import re
from contextlib import redirect_stdout

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from vlprompt.config import build_config
from vlprompt.engine import (ENGINE, TRAINER_REGISTRY, Datum, DatasetBase, TrainerX, build_data_loader,
                             build_lr_scheduler, build_optimizer, build_trainer, build_transform, get_cfg_default)
from vlprompt.engine.config_io import ConfigKeyError
from vlprompt.engine.builtin.evaluation import Classification, macro_f1_score
from vlprompt.engine.builtin.registry import Registry
from vlprompt.engine.builtin.utils import close_logger, setup_logger
from vlprompt.fileio import load_torch_file

from helpers import REPO_ROOT


def config_path(*parts):
    return os.path.join(REPO_ROOT, "configs", *parts)


# ------------------------------------------------------------------------------------------- config
def test_default_config_has_dassls_keys_and_values():
    cfg = get_cfg_default()
    expected = {
        "OUTPUT_DIR": "./output", "SEED": -1, "USE_CUDA": True, "INPUT.SIZE": (224, 224),
        "INPUT.INTERPOLATION": "bilinear", "INPUT.PIXEL_MEAN": [0.485, 0.456, 0.406], "INPUT.RRCROP_SCALE": (0.08, 1.0),
        "DATASET.NUM_SHOTS": -1, "DATALOADER.NUM_WORKERS": 4, "DATALOADER.TRAIN_X.SAMPLER": "RandomSampler",
        "DATALOADER.TRAIN_X.BATCH_SIZE": 32, "DATALOADER.TEST.SAMPLER": "SequentialSampler",
        "DATALOADER.TEST.BATCH_SIZE": 32, "DATALOADER.TRAIN_U.SAME_AS_X": True, "OPTIM.NAME": "adam",
        "OPTIM.LR": 0.0003, "OPTIM.WEIGHT_DECAY": 5e-4, "OPTIM.MOMENTUM": 0.9, "OPTIM.SGD_DAMPNING": 0,
        "OPTIM.LR_SCHEDULER": "single_step", "OPTIM.STEPSIZE": (-1,), "OPTIM.MAX_EPOCH": 10,
        "OPTIM.WARMUP_EPOCH": -1, "OPTIM.WARMUP_TYPE": "linear", "OPTIM.WARMUP_CONS_LR": 1e-5,
        "OPTIM.WARMUP_RECOUNT": True, "TRAIN.CHECKPOINT_FREQ": 0, "TRAIN.PRINT_FREQ": 10,
        "TEST.EVALUATOR": "Classification", "TEST.FINAL_MODEL": "last_step", "TEST.SPLIT": "test",
        "MODEL.BACKBONE.NAME": "", "TRAINER.NAME": "",
    }
    for key, value in expected.items():
        node = cfg
        for part in key.split("."):
            node = node[part]
        assert node == value, key
    cfg.OPTIM.LR = 1.0
    assert get_cfg_default().OPTIM.LR == 0.0003  # a fresh copy every call


def typed_keys(node, prefix=""):
    """{"A.B": [type name, value]} of a config, lists for tuples (as the recorded file holds them)."""
    out = {}
    for key, value in node.items():
        if hasattr(value, "items"):
            out.update(typed_keys(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = [type(value).__name__, list(value) if isinstance(value, (list, tuple)) else value]
    return out


def test_default_config_has_every_key_of_dassls_with_its_default_and_type():
    """The config dump has Dassl's keys, its DA/DG/SSL trainers' included (tests/data/dassl_default_config.json,
    recorded from the real Dassl as its "source" says); with Dassl installed, the dumps are the same text."""
    import json

    with open(os.path.join(REPO_ROOT, "tests", "data", "dassl_default_config.json")) as f:
        recorded = json.load(f)["keys"]
    from vlprompt.engine.builtin.config import get_cfg_default as builtin_default

    assert typed_keys(builtin_default()) == recorded
    if ENGINE == "dassl":
        assert str(builtin_default()) == str(get_cfg_default())


def test_unknown_key_in_a_config_file_names_the_file_and_the_closest_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("TRAINER:\n  COOP:\n    NCTX: 4\n")
    with pytest.raises(ConfigKeyError) as err:
        build_config(config_file=str(bad))
    assert "TRAINER.COOP.NCTX" in str(err.value) and str(bad) in str(err.value)
    assert "Did you mean 'TRAINER.COOP.N_CTX'?" in str(err.value)


def test_unknown_command_line_key_suggests_the_closest():
    with pytest.raises(ConfigKeyError, match=r"Did you mean 'OPTIM.MAX_EPOCH'\?"):
        build_config(opts=["OPTIM.MAX_EPOCHS", "3"])


def test_command_line_values_are_parsed_like_yacs():
    cfg = build_config(opts=["TRAINER.COOP.CSC", "True", "TRAINER.COOP.N_CTX", "4", "INPUT.SIZE", "(32, 32)",
                             "DATASET.SUBSAMPLE_CLASSES", "base"])
    assert cfg.TRAINER.COOP.CSC is True and cfg.TRAINER.COOP.N_CTX == 4
    assert tuple(cfg.INPUT.SIZE) == (32, 32) and cfg.DATASET.SUBSAMPLE_CLASSES == "base"


def test_every_registered_trainer_contributes_its_defaults():
    cfg = build_config()
    assert cfg.TRAINER.COOP.N_CTX == 16 and cfg.TRAINER.COOP.CLASS_TOKEN_POSITION == "end"
    assert cfg.TRAINER.COCOOP.N_CTX == 16 and cfg.TRAINER.COCOOP.PREC == "fp16"
    assert cfg.DATASET.SUBSAMPLE_CLASSES == "all"


# ----------------------------------------------------------------------------------------- registry
def test_registry_rejects_duplicates_and_suggests_names():
    reg = Registry("THING")

    @reg.register()
    class Alpha:
        pass

    with pytest.raises(KeyError, match="already registered"):
        reg.register(Alpha)
    with pytest.raises(KeyError, match="Did you mean 'Alpha'"):
        reg.get("Alpah")


@pytest.mark.skipif(os.environ.get("VLPROMPT_ENGINE") == "dassl", reason="the message is the built-in registry's; Dassl's registry words its own")
def test_build_trainer_with_a_misspelled_name_suggests_the_right_one():
    cfg = build_config(overrides={"TRAINER.NAME": "CoCoop"})
    with pytest.raises(ValueError, match='Did you mean "CoCoOp"'):
        build_trainer(cfg)


def test_an_empty_name_is_refused_without_a_guess():
    from vlprompt.engine.names import check_availability

    for empty in ("", None, "  "):
        with pytest.raises(ValueError) as err:
            check_availability(empty, ["MaPLe", "CoOp"])
        assert str(err.value) == "none given. The requested one is expected to belong to ['CoOp', 'MaPLe']."
    with pytest.raises(ValueError) as err:
        check_availability("Mapl", ["MaPLe", "CoOp"])
    assert str(err.value) == ('"Mapl" is not registered. The requested one is expected to belong to '
                              "['CoOp', 'MaPLe']. Did you mean \"MaPLe\"?")


# --------------------------------------------------------------------------------------- schedules
def per_epoch_lrs(lr, max_epoch, warmup_type="constant", warmup_epoch=1):
    cfg = get_cfg_default().OPTIM
    cfg.NAME, cfg.LR, cfg.MAX_EPOCH, cfg.LR_SCHEDULER = "sgd", lr, max_epoch, "cosine"
    cfg.WARMUP_EPOCH, cfg.WARMUP_TYPE = warmup_epoch, warmup_type
    param = nn.Parameter(torch.zeros(1))
    optim = build_optimizer([param], cfg)
    sched = build_lr_scheduler(optim, cfg)
    lrs = []
    for _ in range(max_epoch):
        lrs.append(optim.param_groups[0]["lr"])
        optim.step()
        sched.step()  # the trainers step once per epoch, at its last batch
    return lrs


@pytest.mark.parametrize("lr,epochs,warmup_type,warmup_epoch,expected", [
    (0.0035, 5, "constant", 1, [1e-5, 0.0035, 0.00316578, 0.00229078, 0.00120922]),  # MaPLe base2new
    (0.0026, 2, "constant", 1, [1e-5, 0.0026]),  # MaPLe cross-dataset
    (0.002, 10, "constant", 1, [1e-5, 0.002, 0.00195106, 0.00180902, 0.00158779, 0.00130902, 0.001,
                                0.000690983, 0.000412215, 0.000190983]),  # CoCoOp
    (0.0035, 5, "linear", 2, [1e-5, 0.00175, 0.0035, 0.00316578, 0.00229078]),
])
def test_lr_schedule_matches_dassls_per_epoch_rates(lr, epochs, warmup_type, warmup_epoch, expected):
    assert per_epoch_lrs(lr, epochs, warmup_type, warmup_epoch) == pytest.approx(expected, rel=1e-5)


def test_coop_50_epoch_schedule():
    lrs = per_epoch_lrs(0.002, 50)
    assert lrs[0] == 1e-5 and lrs[1] == pytest.approx(0.002) and lrs[49] == pytest.approx(7.8853e-06, rel=1e-4)


@pytest.mark.skipif(ENGINE != "builtin", reason="a property of vlprompt's built-in engine: Dassl's warmup "
                                                 "scheduler pickles its successor scheduler object")
def test_scheduler_state_is_plain_data_and_restores_the_schedule(tmp_path):
    cfg = get_cfg_default().OPTIM
    cfg.NAME, cfg.LR, cfg.MAX_EPOCH, cfg.LR_SCHEDULER, cfg.WARMUP_EPOCH, cfg.WARMUP_TYPE = "sgd", 0.002, 10, "cosine", 1, "constant"
    param = nn.Parameter(torch.zeros(1))
    optim = build_optimizer([param], cfg)
    sched = build_lr_scheduler(optim, cfg)
    for _ in range(4):
        optim.step()
        sched.step()
    torch.save(sched.state_dict(), tmp_path / "s.pt")
    state = torch.load(tmp_path / "s.pt", weights_only=True)  # no pickled objects
    optim2 = build_optimizer([nn.Parameter(torch.zeros(1))], cfg)
    sched2 = build_lr_scheduler(optim2, cfg)
    sched2.load_state_dict(state)
    optim2.param_groups[0]["lr"] = optim.param_groups[0]["lr"]
    for _ in range(3):
        optim.step(), sched.step(), optim2.step(), sched2.step()
        assert optim2.param_groups[0]["lr"] == pytest.approx(optim.param_groups[0]["lr"])


# ---------------------------------------------------------------------------------------- few-shot
class FakeItem:
    def __init__(self, label, idx):
        self.label, self.idx, self.domain = label, idx, 0


def dassl_fewshot_restated(items, k, repeat=False):
    """Dassl's algorithm, restated: per label in first-appearance order, random.sample(k) from the
    global RNG, or every item when there are fewer (random.choices with replacement if repeat)."""
    order, groups = [], {}
    for item in items:
        if item.label not in groups:
            order.append(item.label)
            groups[item.label] = []
        groups[item.label].append(item)
    picked = []
    for label in order:
        group = groups[label]
        if len(group) >= k:
            picked += random.sample(group, k)
        else:
            picked += random.choices(group, k=k) if repeat else group
    return picked


def uneven_items():
    rng = random.Random(123)
    sizes = {7: 30, 2: 16, 0: 3, 5: 17, 1: 1, 9: 40}  # classes with fewer and more than 16 items
    items = [FakeItem(label, i) for label, n in sizes.items() for i in range(n)]
    rng.shuffle(items)  # labels appear in a non-sorted, interleaved order
    return items


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_fewshot_selection_equals_dasslss_algorithm(seed):
    train, val = uneven_items(), uneven_items()[:60]
    random.seed(seed)
    got_train = DatasetBase.generate_fewshot_dataset(DatasetBase.__new__(DatasetBase), train, num_shots=16)
    got_val = DatasetBase.generate_fewshot_dataset(DatasetBase.__new__(DatasetBase), val, num_shots=4)
    random.seed(seed)
    want_train = dassl_fewshot_restated(train, 16)
    want_val = dassl_fewshot_restated(val, 4)
    assert [i.idx for i in got_train] == [i.idx for i in want_train]
    assert [(i.label, i.idx) for i in got_val] == [(i.label, i.idx) for i in want_val]
    counts = {label: sum(1 for i in got_train if i.label == label) for label in {i.label for i in train}}
    assert counts == {7: 16, 2: 16, 0: 3, 5: 16, 1: 1, 9: 16}


def test_fewshot_repeat_draws_with_replacement_and_no_shots_returns_input():
    items = uneven_items()
    base = DatasetBase.__new__(DatasetBase)
    random.seed(0)
    got = base.generate_fewshot_dataset(items, num_shots=8, repeat=True)
    random.seed(0)
    assert [i.idx for i in got] == [i.idx for i in dassl_fewshot_restated(items, 8, repeat=True)]
    assert base.generate_fewshot_dataset(items, num_shots=-1) is items


# -------------------------------------------------------------------------------------------- data
def datums(root, n):
    from vlprompt.testing.fake_data import write_jpeg

    return [Datum(write_jpeg(os.path.join(root, f"{i}.jpg"), (10 * i, 0, 0)), label=i % 3, classname=f"c{i % 3}")
            for i in range(n)]


def test_drop_last_only_when_the_set_holds_a_full_batch(tmp_path):
    cfg = build_config(config_file=config_path("trainers", "CoOp", "vit_b16_ep50.yaml"),
                       opts=["INPUT.SIZE", "(16, 16)", "DATALOADER.NUM_WORKERS", "0"])
    data = datums(tmp_path, 10)
    tfm = build_transform(cfg, is_train=True)
    big = build_data_loader(cfg, "RandomSampler", data, batch_size=4, tfm=tfm, is_train=True)
    small = build_data_loader(cfg, "RandomSampler", data, batch_size=32, tfm=tfm, is_train=True)
    test = build_data_loader(cfg, "SequentialSampler", data, batch_size=4, tfm=tfm, is_train=False)
    assert big.drop_last and len(big) == 2
    assert not small.drop_last and len(small) == 1  # a 10-image few-shot set still trains
    assert not test.drop_last and len(test) == 3
    assert isinstance(big.sampler, torch.utils.data.RandomSampler)
    assert isinstance(test.sampler, torch.utils.data.SequentialSampler)
    batch = next(iter(test))
    assert set(batch) == {"label", "domain", "impath", "index", "img"}
    assert batch["img"].shape == (4, 3, 16, 16) and batch["label"].tolist() == [0, 1, 2, 0]


def test_transforms_follow_dasslss_pipelines():
    import torchvision.transforms as T

    cfg = build_config(config_file=config_path("trainers", "CoOp", "vit_b16_ep50.yaml"))
    train = build_transform(cfg, is_train=True).transforms
    test = build_transform(cfg, is_train=False).transforms
    assert [type(t) for t in train] == [T.RandomResizedCrop, T.RandomHorizontalFlip, T.ToTensor, T.Normalize]
    assert train[0].size == (224, 224) and train[0].scale == (0.08, 1.0)
    assert train[0].interpolation == T.InterpolationMode.BICUBIC
    assert [type(t) for t in test] == [T.Resize, T.CenterCrop, T.ToTensor, T.Normalize]
    assert test[0].size == 224 and test[1].size == (224, 224)  # shorter edge, then centre crop
    assert list(test[3].mean) == [0.48145466, 0.4578275, 0.40821073]
    plain = build_config(opts=["INPUT.TRANSFORMS", "['random_flip', 'normalize']"])
    assert type(build_transform(plain, is_train=True).transforms[0]) is T.Resize  # no crop: resize first


# --------------------------------------------------------------------------------------- evaluator
def test_evaluator_prints_dasslss_result_block():
    cfg = get_cfg_default()
    evaluator = Classification(cfg, lab2cname={0: "a", 1: "b", 2: "c"})
    torch.manual_seed(0)
    labels = torch.arange(1234) % 3
    logits = F.one_hot(labels, 3).float()
    logits[:234] = torch.tensor([0.0, 0.0, 1.0])  # 234 predicted as class 2
    evaluator.process(logits[:1000], labels[:1000])
    evaluator.process(logits[1000:], labels[1000:])
    out = io.StringIO()
    with redirect_stdout(out):
        results = evaluator.evaluate()
    correct = int((logits.argmax(1) == labels).sum())
    acc = 100 * correct / 1234
    assert out.getvalue() == (
        f"=> result\n* total: 1,234\n* correct: {correct:,}\n* accuracy: {acc:.1f}%\n"
        f"* error: {100 - acc:.1f}%\n* macro_f1: {results['macro_f1']:.1f}%\n")
    assert list(results) == ["accuracy", "error_rate", "macro_f1"] and results["accuracy"] == pytest.approx(acc)


def test_macro_f1_by_hand():
    y_true = [0, 0, 0, 1, 1, 2]
    y_pred = [0, 0, 1, 1, 2, 2]
    # class 0: p=1, r=2/3 -> 0.8; class 1: p=1/2, r=1/2 -> 0.5; class 2: p=1/2, r=1 -> 2/3
    assert macro_f1_score(y_true, y_pred) == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    assert macro_f1_score([0, 1], [2, 2]) == 0.0  # labels never predicted score 0; 2 is not in y_true
    sklearn = pytest.importorskip("sklearn.metrics")
    rng = random.Random(0)
    t = [rng.randrange(7) for _ in range(300)]
    p = [rng.randrange(8) for _ in range(300)]
    import numpy as np
    assert macro_f1_score(t, p) == pytest.approx(sklearn.f1_score(t, p, average="macro", labels=np.unique(t)))


# ------------------------------------------------------------------- trainer lifecycle, checkpoints
class ToyLinear(TrainerX):
    """A linear classifier on raw pixels: exercises the engine without CLIP."""

    def build_model(self):
        size = self.cfg.INPUT.SIZE
        self.model = nn.Linear(3 * size[0] * size[1], self.num_classes).to(self.device)
        self.optim = build_optimizer(self.model, self.cfg.OPTIM)
        self.sched = build_lr_scheduler(self.optim, self.cfg.OPTIM)
        self.register_model("model", self.model, self.optim, self.sched)
        self.epochs_run = []

    def forward_backward(self, batch):
        x, y, _ = self.parse_batch_train(batch)
        loss = F.cross_entropy(self.model(x.flatten(1)), y)
        self.model_backward_and_update(loss)
        if self.batch_idx + 1 == self.num_batches:
            self.update_lr()
        self.epochs_run.append(self.epoch)
        return {"loss": loss.item()}

    def model_inference(self, x):
        return self.model(x.flatten(1))


if "ToyLinear" not in TRAINER_REGISTRY.registered_names():
    TRAINER_REGISTRY.register(ToyLinear)


def toy_cfg(data_root, out, epochs=3, **extra):
    opts = ["TRAINER.NAME", "ToyLinear", "DATASET.ROOT", data_root, "OUTPUT_DIR", str(out), "INPUT.SIZE", "(8, 8)",
            "DATALOADER.NUM_WORKERS", "0", "OPTIM.MAX_EPOCH", str(epochs), "DATALOADER.TRAIN_X.BATCH_SIZE", "8",
            "TRAIN.PRINT_FREQ", "2"]
    for key, value in extra.items():
        opts += [key.replace("__", "."), str(value)]
    cfg = build_config(config_path("datasets", "caltech101.yaml"), config_path("trainers", "CoOp", "vit_b16_ep50.yaml"), opts)
    cfg.freeze()
    return cfg


def run_logged(cfg, action):
    setup_logger(cfg.OUTPUT_DIR)
    try:
        trainer = build_trainer(cfg)
        action(trainer)
        return trainer
    finally:
        close_logger()


def test_checkpoints_have_dasslss_layout_and_a_finished_run_goes_straight_to_test(tmp_path, caltech_root):
    out = tmp_path / "run"
    cfg = toy_cfg(caltech_root, out)
    first = run_logged(cfg, lambda t: t.train())
    assert sorted(os.listdir(out / "model")) == ["checkpoint", "model.pth.tar-3"]  # only the last epoch
    assert (out / "model" / "checkpoint").read_text() == "model.pth.tar-3\n"
    # The built-in engine's scheduler state is plain data; Dassl's pickles its successor scheduler.
    path = out / "model" / "model.pth.tar-3"
    ckpt = torch.load(path, weights_only=True) if ENGINE == "builtin" else load_torch_file(str(path))
    assert set(ckpt) == {"state_dict", "epoch", "optimizer", "scheduler", "val_result"}
    assert ckpt["epoch"] == 3 and ckpt["val_result"] is None
    assert set(ckpt["state_dict"]) == {"weight", "bias"}
    assert sorted(set(first.epochs_run)) == [0, 1, 2]

    log = (out / "log.txt").read_text()
    line = r"epoch \[\d+/3\] batch \[\d+/\d+\] time \d+\.\d{3} \(\d+\.\d{3}\) data \d+\.\d{3} \(\d+\.\d{3}\) " \
           r"loss \d+\.\d{4} \(\d+\.\d{4}\) lr \d\.\d{4}e[-+]\d{2} eta \d+:\d{2}:\d{2}"
    assert re.search(line, log)
    assert "Finish training\nDeploy the last-epoch model\nEvaluate on the *test* set" in log

    second = run_logged(cfg, lambda t: t.train())  # re-run into the finished dir
    assert second.epochs_run == []  # no training: resumed at MAX_EPOCH
    new_log = (out / "log.txt").read_text()
    assert "Found checkpoint at" in new_log and "Previous epoch: 3" in new_log and "* accuracy:" in new_log
    rotated = [f for f in os.listdir(out) if f.startswith("log.txt-")]
    assert len(rotated) == 1 and (out / rotated[0]).read_text() == log  # the first log is kept, renamed


def test_checkpoint_freq_keeps_periodic_checkpoints(tmp_path, caltech_root):
    out = tmp_path / "run"
    run_logged(toy_cfg(caltech_root, out, epochs=4, TRAIN__CHECKPOINT_FREQ=2), lambda t: t.train())
    assert sorted(os.listdir(out / "model")) == ["checkpoint", "model.pth.tar-2", "model.pth.tar-4"]


def test_setup_logger_keeps_the_latest_run_in_log_txt(tmp_path):
    for text in ("first run", "second run", "third run"):
        setup_logger(str(tmp_path))
        print(text)
        close_logger()
    def body(path):  # each log starts with the time it was started (the parsers' order; file times are not)
        start, rest = path.read_text().split("\n", 1)
        assert re.fullmatch(r"\*\* vlprompt log started \d{4}(-\d\d){5}", start)
        return rest

    assert body(tmp_path / "log.txt") == "third run\n"
    older = sorted(f for f in os.listdir(tmp_path) if f.startswith("log.txt-"))
    assert len(older) == 2 and {body(tmp_path / f) for f in older} == {"first run\n", "second run\n"}


def test_yaml_merges_into_nodes_a_codebase_added_as_plain_yacs_nodes(tmp_path):
    """An original train.py's extend_cfg adds `cfg.TRAINER.COOP = yacs.config.CfgNode()`; yacs' own merge
    would refuse to merge a YAML into a node of another class ("Type mismatch")."""
    from yacs.config import CfgNode as YacsNode

    from vlprompt.engine import get_cfg_default

    cfg = get_cfg_default()
    cfg.TRAINER.COOP = YacsNode()
    cfg.TRAINER.COOP.N_CTX = 16
    cfg.TRAINER.COOP.CTX_INIT = ""
    (tmp_path / "coop.yaml").write_text("TRAINER:\n  COOP:\n    N_CTX: 4\n    CTX_INIT: 'a photo of a'\nOPTIM:\n  LR: 0.5\n")
    cfg.merge_from_file(str(tmp_path / "coop.yaml"))
    assert (cfg.TRAINER.COOP.N_CTX, cfg.TRAINER.COOP.CTX_INIT, cfg.OPTIM.LR) == (4, "a photo of a", 0.5)
    (tmp_path / "bad.yaml").write_text("TRAINER:\n  COOP:\n    N_CTX: 'four'\n")
    with pytest.raises(ValueError, match=r"TRAINER.COOP.N_CTX 'four' \(in .*bad.yaml\) is not allowed: expected an "
                                         "integer"):
        cfg.merge_from_file(str(tmp_path / "bad.yaml"))


@pytest.mark.skipif(importlib.util.find_spec("dassl") is not None,
                    reason="the real Dassl is installed here: auto picks it wherever this runs")
def test_a_dassl_checkout_folder_in_the_current_directory_is_not_taken_for_dassl(tmp_path):
    """A Dassl.pytorch clone named dassl/ next to where you run (its package is dassl/dassl/) imports as an
    empty namespace package; the default engine choice (auto) must not take it for an installed Dassl."""
    import subprocess
    import sys

    (tmp_path / "dassl" / "dassl").mkdir(parents=True)
    (tmp_path / "dassl" / "dassl" / "__init__.py").write_text("raise RuntimeError('not installed')\n")
    env = {k: v for k, v in os.environ.items() if k != "VLPROMPT_ENGINE"}
    env["PYTHONPATH"] = REPO_ROOT
    proc = subprocess.run([sys.executable, "-c", "import vlprompt.engine as e; print(e.ENGINE)"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "builtin", proc.stderr

"""Checkpoints of every optimizer x LR schedule that Dassl's config can ask for (OPTIM.NAME x
OPTIM.LR_SCHEDULER x warmup none/constant/linear: the same set the built-in engine builds,
vlprompt.engine.choices) load and resume on both engines, through vlprompt's safe loader
(vlprompt.fileio.load_torch_file), which still refuses anything that is not an optimizer or LR scheduler of
torch or Dassl.

With a warmup schedule Dassl pickles the successor schedule and the optimizer object into the scheduler
state (Adam, AdamW, RMSprop, SGD, Dassl's own RAdam). In CI (built-in engine) that format is written by
tests/optim_roundtrip.py --as-dassl; where Dassl is installed the real Dassl writes it and each engine loads
what the other saved (subprocesses, since one process has one engine).
"""
import importlib.util
import json
import os
import subprocess
import sys

import pytest
import torch

import optim_roundtrip
from helpers import REPO_ROOT
from vlprompt.errors import CheckpointError
from vlprompt.fileio import load_torch_file

HAS_DASSL = importlib.util.find_spec("dassl") is not None
TESTS = os.path.dirname(os.path.abspath(__file__))


def test_every_optimizer_and_schedule_is_a_combination_dassl_can_build():
    assert len(optim_roundtrip.COMBOS) == 6 * 3 * 3
    assert {c[0] for c in optim_roundtrip.COMBOS} == {"adam", "amsgrad", "sgd", "rmsprop", "radam", "adamw"}


@pytest.mark.parametrize("as_dassl", [False, True], ids=["engine-format", "dassl-format"])
def test_every_optimizer_and_schedule_resumes_from_its_checkpoint(tmp_path, as_dassl):
    optim_roundtrip.save(str(tmp_path), as_dassl=as_dassl)
    expected = json.loads((tmp_path / "expected.json").read_text())["runs"]
    report = optim_roundtrip.load(str(tmp_path))
    for combo in optim_roundtrip.COMBOS:
        key = optim_roundtrip.name(combo)
        assert report[key]["epoch"] == optim_roundtrip.SAVED_AT
        assert report[key]["lrs"] == expected[key]["lrs"], key  # the schedule goes on where it stopped
        assert report[key]["weight"] == expected[key]["weight"], key  # the optimizer's state was restored
    if as_dassl:  # Dassl's format pickles the optimizer: Adam's and Dassl's RAdam's load too
        held = {k: r["held_optimizer"] for k, r in report.items() if k.endswith("-cosine-constant")}
        assert held == {"adam-cosine-constant": "Adam", "amsgrad-cosine-constant": "Adam",
                        "sgd-cosine-constant": "SGD", "rmsprop-cosine-constant": "RMSprop",
                        "adamw-cosine-constant": "AdamW",
                        # Dassl's class where Dassl is imported, else torch's base class holding its state
                        "radam-cosine-constant": "RAdam" if "dassl.optim.radam" in sys.modules else "Optimizer"}
        assert all(r["held_optimizer"] is None for k, r in report.items() if k.endswith("-none"))


class _OwnOptimizer(torch.optim.SGD):
    """An optimizer class of a codebase's own: code, not one of torch's or Dassl's."""


def test_anything_but_torchs_and_dassls_optimizers_and_schedules_is_still_refused(tmp_path):
    param = torch.nn.Parameter(torch.ones(2))
    own = _OwnOptimizer([param], lr=0.1)
    torch.save({"scheduler": {"successor": torch.optim.lr_scheduler.CosineAnnealingLR(own, 5)}}, tmp_path / "own.pth")
    with pytest.raises(CheckpointError, match=r"contains Python objects that loading would have to execute "
                                              r"\(.*_OwnOptimizer"):
        load_torch_file(str(tmp_path / "own.pth"))
    sgd = torch.optim.SGD([param], lr=0.1)
    # LambdaLR is torch's, but its lambda is a function of the file's choosing: refused
    torch.save({"scheduler": torch.optim.lr_scheduler.LambdaLR(sgd, lr_lambda=abs)}, tmp_path / "lambda.pth")
    with pytest.raises(CheckpointError, match=r"loading would have to execute \(builtins.abs"):
        load_torch_file(str(tmp_path / "lambda.pth"))


# ---------------------------------------------------------------------------------------- across engines
def roundtrip(engine, *commands):
    """Run optim_roundtrip's commands (save DIR / load DIR ...) in one process on `engine`: {folder: report}."""
    env = dict(os.environ, VLPROMPT_ENGINE=engine, PYTHONPATH=os.pathsep.join([REPO_ROOT, TESTS]))
    proc = subprocess.run([sys.executable, os.path.join(TESTS, "optim_roundtrip.py"), *map(str, commands)],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    reports = [json.loads(line[len("REPORT "):]) for line in proc.stdout.splitlines() if line.startswith("REPORT ")]
    assert all(r["engine"] == engine for r in reports)
    return {r["folder"]: r["runs"] for r in reports}


@pytest.mark.skipif(not HAS_DASSL, reason="Dassl is not installed (CI): the real Dassl's checkpoints are "
                                          "emulated by test_every_optimizer_and_schedule_resumes_from_its_checkpoint")
def test_checkpoints_saved_on_either_engine_resume_on_both(tmp_path):
    by, bi = str(tmp_path / "dassl"), str(tmp_path / "builtin")
    os.makedirs(by)
    os.makedirs(bi)
    roundtrip("builtin", "save", bi)
    loaded = {"dassl": roundtrip("dassl", "save", by, "load", by, "load", bi),
              "builtin": roundtrip("builtin", "load", by, "load", bi)}
    for saved_by, folder in (("dassl", by), ("builtin", bi)):
        with open(os.path.join(folder, "expected.json")) as f:
            expected = json.load(f)["runs"]
        for loaded_by in ("dassl", "builtin"):
            report = loaded[loaded_by][folder]
            for combo in optim_roundtrip.COMBOS:
                key = optim_roundtrip.name(combo)
                assert report[key]["lrs"] == expected[key]["lrs"], (saved_by, loaded_by, key)
                # Dassl's RAdam is its own; the built-in engine builds torch's: the same schedule, other steps
                if combo[0] != "radam" or saved_by == loaded_by:
                    assert report[key]["weight"] == expected[key]["weight"], (saved_by, loaded_by, key)
            if saved_by == "dassl":
                held = report["radam-cosine-linear"]["held_optimizer"]
                assert held == ("RAdam" if loaded_by == "dassl" else "Optimizer")
                assert report["adam-single_step-constant"]["held_optimizer"] == "Adam"

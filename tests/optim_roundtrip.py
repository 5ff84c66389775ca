"""Save and resume every optimizer x LR schedule that Dassl's config can ask for, on the engine this process
runs (VLPROMPT_ENGINE): tests/test_dropin_checkpoints.py calls it in this process and, to cross engines, as

    python tests/optim_roundtrip.py save DIR [load DIR ...]   # save: checkpoints through the engine's
        save_checkpoint, and what the uninterrupted run does next; load: each checkpoint through the engine's
        load_checkpoint, resumed and continued (prints one JSON report line per folder)

A run is a small linear model trained 3 of 6 epochs, its scheduler stepped once per epoch as the trainers do;
the checkpoint has Dassl's keys (state_dict, epoch, optimizer, scheduler, val_result). With a warmup
schedule, Dassl's scheduler state pickles the successor schedule and with it the optimizer object.
--as-dassl writes that format from the built-in engine (where Dassl is not installed): the scheduler state
as Dassl's LRScheduler.state_dict gives it, and the RAdam optimizer under Dassl's class name.
"""
import importlib
import json
import os
import pickle
import sys

import torch

from vlprompt.engine import ENGINE, build_lr_scheduler, build_optimizer, get_cfg_default
from vlprompt.engine.choices import LR_SCHEDULERS, OPTIMIZERS
from vlprompt.trainer import load_scheduler_state

WARMUPS = ("none", "constant", "linear")
COMBOS = [(o, s, w) for o in OPTIMIZERS for s in LR_SCHEDULERS for w in WARMUPS]
SAVED_AT, EPOCHS = 3, 6


def name(combo):
    return "-".join(combo)


def build(combo):
    optimizer, scheduler, warmup = combo
    cfg = get_cfg_default()
    cfg.OPTIM.NAME, cfg.OPTIM.LR_SCHEDULER, cfg.OPTIM.LR, cfg.OPTIM.MAX_EPOCH = optimizer, scheduler, 0.1, EPOCHS
    cfg.OPTIM.STEPSIZE = (2, 4) if scheduler == "multi_step" else (2,)
    if warmup != "none":
        cfg.OPTIM.WARMUP_EPOCH, cfg.OPTIM.WARMUP_TYPE = 1, warmup
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    optim = build_optimizer(model, cfg.OPTIM)
    return model, optim, build_lr_scheduler(optim, cfg.OPTIM)


def run_epoch(model, optim, sched, epoch):
    x = torch.linspace(-1, 1, 12).reshape(4, 3) * (epoch + 1)
    loss = (model(x) - 1).pow(2).mean()
    optim.zero_grad()
    loss.backward()
    optim.step()
    sched.step()
    return optim.param_groups[0]["lr"]


def engine_utils():
    return importlib.import_module("dassl.utils" if ENGINE == "dassl" else "vlprompt.engine.builtin.utils")


class _DasslNames(pickle._Pickler):
    """Pickles torch's RAdam under the class path of Dassl's own RAdam (the one Dassl's config builds)."""

    def save_global(self, obj, name=None):
        if obj is torch.optim.RAdam:
            self.write(pickle.GLOBAL + b"dassl.optim.radam\nRAdam\n")
            self.memoize(obj)
            return
        super().save_global(obj, name)


def _dassl_pickle_module():
    import types

    module = types.ModuleType("dassl_names_pickle")
    module.Pickler, module.Unpickler = _DasslNames, pickle.Unpickler
    return module


def dassl_scheduler_state(sched):
    """What Dassl's warmup scheduler saves: LRScheduler.state_dict, the successor object included."""
    return torch.optim.lr_scheduler.LRScheduler.state_dict(sched)


def save(directory, as_dassl=False):
    expected = {}
    for combo in COMBOS:
        model, optim, sched = build(combo)
        for epoch in range(SAVED_AT):
            run_epoch(model, optim, sched, epoch)
        state = {"state_dict": model.state_dict(), "epoch": SAVED_AT, "optimizer": optim.state_dict(),
                 "scheduler": dassl_scheduler_state(sched) if as_dassl else sched.state_dict(), "val_result": None}
        folder = os.path.join(directory, name(combo))
        if as_dassl:
            os.makedirs(folder)
            torch.save(state, os.path.join(folder, f"model.pth.tar-{SAVED_AT}"), pickle_module=_dassl_pickle_module())
        else:
            engine_utils().save_checkpoint(state, folder)
        lrs = [run_epoch(model, optim, sched, epoch) for epoch in range(SAVED_AT, EPOCHS)]
        expected[name(combo)] = {"lrs": lrs, "weight": model.weight.detach().flatten().tolist()}
    with open(os.path.join(directory, "expected.json"), "w") as f:
        json.dump({"engine": ENGINE, "as_dassl": as_dassl, "runs": expected}, f)


def load(directory):
    """{combo: {"lrs": ..., "weight": ..., "optimizer": class name the scheduler state held}} after resuming."""
    report = {}
    for combo in COMBOS:
        checkpoint = engine_utils().load_checkpoint(os.path.join(directory, name(combo), f"model.pth.tar-{SAVED_AT}"))
        model, optim, sched = build(combo)
        model.load_state_dict(checkpoint["state_dict"])
        optim.load_state_dict(checkpoint["optimizer"])
        held = (checkpoint["scheduler"].get("successor") if isinstance(checkpoint["scheduler"], dict) else None)
        held = getattr(held, "optimizer", None)
        load_scheduler_state(sched, checkpoint["scheduler"])
        lrs = [run_epoch(model, optim, sched, epoch) for epoch in range(SAVED_AT, EPOCHS)]
        report[name(combo)] = {"lrs": lrs, "weight": model.weight.detach().flatten().tolist(),
                               "held_optimizer": None if held is None else type(held).__qualname__,
                               "epoch": checkpoint["epoch"]}
    return report


if __name__ == "__main__":
    args = sys.argv[1:]
    for command, folder in zip(args[::2], args[1::2]):
        if command == "save":
            save(folder)
        else:
            print("REPORT " + json.dumps({"engine": ENGINE, "folder": folder, "runs": load(folder)}))

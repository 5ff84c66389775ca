"""Resuming with a Dassl warmup scheduler (the real Dassl's, which CI does not have: a stand-in with the
same state_dict): the loaded successor schedule must drive the live optimizer, not the pickled copy of it
that the checkpoint holds (vlprompt.trainer.load_scheduler_state)."""
import torch

from vlprompt.engine.builtin.optim import ConstantWarmupScheduler
from vlprompt.fileio import load_torch_file
from vlprompt.trainer import load_scheduler_state


class WarmupLike(ConstantWarmupScheduler):
    """The built-in engine's warmup scheduler with Dassl's state_dict and load_state_dict (LRScheduler's own:
    the successor object is pickled as it is, bound to the optimizer it was built with)."""

    state_dict = torch.optim.lr_scheduler.LRScheduler.state_dict
    load_state_dict = torch.optim.lr_scheduler.LRScheduler.load_state_dict


def build(lr=0.1):
    param = torch.nn.Parameter(torch.ones(2))
    optim = torch.optim.SGD([param], lr=lr, momentum=0.9)
    sched = WarmupLike(optim, torch.optim.lr_scheduler.CosineAnnealingLR(optim, 6), 1, 1e-5)
    return param, optim, sched


def lrs_after(optim, sched, steps):
    seen = []
    for _ in range(steps):
        optim.step()
        sched.step()
        seen.append(optim.param_groups[0]["lr"])
    return seen


def test_a_resumed_warmup_schedule_drives_the_live_optimizer(tmp_path):
    param, optim, sched = build()
    param.sum().backward()
    lrs_after(optim, sched, 3)
    torch.save({"optimizer": optim.state_dict(), "scheduler": sched.state_dict()}, tmp_path / "ckpt")
    expected = lrs_after(optim, sched, 3)  # the uninterrupted run

    for fixed in (False, True):
        checkpoint = load_torch_file(str(tmp_path / "ckpt"))  # a pickled successor, bound to a copy of the optimizer
        param, optim, sched = build()
        param.sum().backward()
        optim.load_state_dict(checkpoint["optimizer"])
        if fixed:
            load_scheduler_state(sched, checkpoint["scheduler"])
        else:
            sched.load_state_dict(checkpoint["scheduler"])  # what Dassl's own resume does
        resumed = lrs_after(optim, sched, 3)
        assert (resumed == expected) is fixed, (fixed, resumed, expected)

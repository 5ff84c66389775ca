"""Import-time fixes for the real Dassl (last released 2022) on current PyTorch.

1. Dassl's warmup schedulers pass `verbose` positionally to the LR-scheduler base constructor; recent
   torch removed that argument ("LRScheduler.__init__() takes from 2 to 3 positional arguments but 4
   were given"), so no CoOp/MaPLe config (they all warm up) could start training.
2. torch>=2.6 loads with weights_only=True by default; Dassl's checkpoints pickle a CosineAnnealingLR
   object, so resume, --eval-only and released weights failed with an UnpicklingError. Dassl's
   load_checkpoint runs vlprompt's safe loader instead (vlprompt.fileio.load_torch_file).
Both are patched in place, in the class and the function themselves, so the fixes hold whatever imported
them and when: a codebase's trainer imported before vlprompt (`from dassl.utils import load_checkpoint`
binds the function under its own name) runs the fixed loader too. Nothing else in Dassl is changed.
"""
import inspect

from vlprompt.fileio import load_torch_file


def _scheduler_takes_verbose():
    try:
        from torch.optim.lr_scheduler import LRScheduler
    except ImportError:
        from torch.optim.lr_scheduler import _LRScheduler as LRScheduler
    return "verbose" in inspect.signature(LRScheduler.__init__).parameters


def _patch_warmup_scheduler():
    from dassl.optim import lr_scheduler as dassl_sched

    base = dassl_sched._BaseWarmupScheduler
    if getattr(base, "_vlprompt_patched", False) or _scheduler_takes_verbose():
        return
    lr_base = base.__mro__[1]

    def __init__(self, optimizer, successor, warmup_epoch, last_epoch=-1, verbose=False):
        self.successor = successor
        self.warmup_epoch = warmup_epoch
        lr_base.__init__(self, optimizer, last_epoch)

    base.__init__ = __init__
    base._vlprompt_patched = True


def _load_checkpoint(fpath):
    if fpath is None:
        raise ValueError("File path is None")
    import torch

    return load_torch_file(fpath, map_location=None if torch.cuda.is_available() else "cpu")


def _calls_vlprompts_loader(fpath):
    # The body Dassl's load_checkpoint gets; it runs among dassl.utils.torchtools' globals, where
    # _patch_load_checkpoint puts the name.
    return _vlprompt_load_checkpoint(fpath)  # noqa: F821


def _patch_load_checkpoint():
    # Rebinding dassl.utils.load_checkpoint would miss every module that imported the function before
    # vlprompt did: the function object itself gets the fixed body, so every name bound to it runs it.
    from dassl.utils import torchtools

    function = torchtools.load_checkpoint
    if getattr(function, "_vlprompt_patched", False):
        return
    params = list(inspect.signature(function).parameters)
    if params != ["fpath"]:
        raise TypeError(f"dassl.utils.load_checkpoint takes {params}, not (fpath)")
    torchtools._vlprompt_load_checkpoint = _load_checkpoint
    function.__code__ = _calls_vlprompts_loader.__code__
    function._vlprompt_patched = True


def apply():
    try:
        _patch_warmup_scheduler()
        _patch_load_checkpoint()
    except Exception as e:  # a Dassl version whose internals differ from the one these fixes target
        raise ImportError(
            f"vlprompt could not adapt the installed Dassl to torch ({type(e).__name__}: {e}). "
            "Set VLPROMPT_ENGINE=builtin to use vlprompt's built-in engine, or install Dassl at commit "
            "c61a1b5 (v0.6.3).") from e

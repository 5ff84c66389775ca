"""dassl.optim: build_optimizer and build_lr_scheduler with Dassl's warmup semantics.

The schedulers are stepped once per epoch by the trainers. With constant warmup of one epoch and a
cosine successor, epoch 0 runs at WARMUP_CONS_LR and epoch e >= 1 at LR * (1 + cos(pi * (e-1) / T)) / 2.

Unlike Dassl's, the warmup wrapper here runs on current PyTorch and keeps only plain data in its
state_dict (the successor's own state_dict, not the pickled successor object), so checkpoints load
with torch.load(weights_only=True). Dassl-format scheduler states still load.
"""
import warnings

import torch
import torch.nn as nn

from ..choices import LR_SCHEDULERS, OPTIMIZERS

try:
    from torch.optim.lr_scheduler import LRScheduler as _LRScheduler
except ImportError:  # torch < 2.0
    from torch.optim.lr_scheduler import _LRScheduler

AVAI_OPTIMS = list(OPTIMIZERS)
AVAI_SCHEDS = list(LR_SCHEDULERS)


def build_optimizer(model, optim_cfg, param_groups=None):
    """Build the optimizer named by OPTIM.NAME over `model` (a Module or an iterable of parameters)."""
    optim = optim_cfg.NAME
    lr = optim_cfg.LR
    weight_decay = optim_cfg.WEIGHT_DECAY
    if optim not in AVAI_OPTIMS:
        raise ValueError(f"OPTIM.NAME must be one of {AVAI_OPTIMS}, but got {optim!r}")

    if param_groups is not None and optim_cfg.STAGED_LR:
        warnings.warn("OPTIM.STAGED_LR will be ignored because param_groups is given")

    if param_groups is None:
        if optim_cfg.STAGED_LR:
            if not isinstance(model, nn.Module):
                raise TypeError("When OPTIM.STAGED_LR is True, the model must be an nn.Module")
            if isinstance(model, nn.DataParallel):
                model = model.module
            new_layers = optim_cfg.NEW_LAYERS
            if isinstance(new_layers, str):
                new_layers = [new_layers]
            if not new_layers:
                warnings.warn("OPTIM.NEW_LAYERS is empty (no layer gets the base learning rate)")
            base_params, new_params = [], []
            for name, module in model.named_children():
                (new_params if name in new_layers else base_params).extend(module.parameters())
            param_groups = [{"params": base_params, "lr": lr * optim_cfg.BASE_LR_MULT}, {"params": new_params}]
        elif isinstance(model, nn.Module):
            param_groups = model.parameters()
        else:
            param_groups = model

    if optim == "adam":
        return torch.optim.Adam(param_groups, lr=lr, weight_decay=weight_decay,
                                betas=(optim_cfg.ADAM_BETA1, optim_cfg.ADAM_BETA2))
    if optim == "amsgrad":
        return torch.optim.Adam(param_groups, lr=lr, weight_decay=weight_decay,
                                betas=(optim_cfg.ADAM_BETA1, optim_cfg.ADAM_BETA2), amsgrad=True)
    if optim == "sgd":
        return torch.optim.SGD(param_groups, lr=lr, momentum=optim_cfg.MOMENTUM, weight_decay=weight_decay,
                               dampening=optim_cfg.SGD_DAMPNING, nesterov=optim_cfg.SGD_NESTEROV)
    if optim == "rmsprop":
        return torch.optim.RMSprop(param_groups, lr=lr, momentum=optim_cfg.MOMENTUM, weight_decay=weight_decay,
                                   alpha=optim_cfg.RMSPROP_ALPHA)
    if optim == "radam":
        return torch.optim.RAdam(param_groups, lr=lr, weight_decay=weight_decay,
                                 betas=(optim_cfg.ADAM_BETA1, optim_cfg.ADAM_BETA2))
    return torch.optim.AdamW(param_groups, lr=lr, weight_decay=weight_decay,
                             betas=(optim_cfg.ADAM_BETA1, optim_cfg.ADAM_BETA2))


class _BaseWarmupScheduler(_LRScheduler):
    """Runs its own rule for `warmup_epoch` steps, then hands over to `successor`."""

    def __init__(self, optimizer, successor, warmup_epoch, last_epoch=-1):
        self.successor = successor
        self.warmup_epoch = warmup_epoch
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        raise NotImplementedError

    def step(self, epoch=None):
        if self.last_epoch >= self.warmup_epoch:
            self.successor.step(epoch)
            self._last_lr = self.successor.get_last_lr()
        else:
            super().step(epoch)

    def state_dict(self):
        state = {k: v for k, v in self.__dict__.items() if k not in ("optimizer", "successor")}
        state["successor"] = self.successor.state_dict()
        return state

    def load_state_dict(self, state_dict):
        state = dict(state_dict)
        successor = state.pop("successor", None)
        if successor is not None:
            # Dassl stored the successor object itself; ours stores its state_dict.
            self.successor.load_state_dict(successor if isinstance(successor, dict) else successor.state_dict())
        self.__dict__.update(state)


class ConstantWarmupScheduler(_BaseWarmupScheduler):
    def __init__(self, optimizer, successor, warmup_epoch, cons_lr, last_epoch=-1):
        self.cons_lr = cons_lr
        super().__init__(optimizer, successor, warmup_epoch, last_epoch)

    def get_lr(self):
        if self.last_epoch >= self.warmup_epoch:
            return self.successor.get_last_lr()
        return [self.cons_lr for _ in self.base_lrs]


class LinearWarmupScheduler(_BaseWarmupScheduler):
    def __init__(self, optimizer, successor, warmup_epoch, min_lr, last_epoch=-1):
        self.min_lr = min_lr
        super().__init__(optimizer, successor, warmup_epoch, last_epoch)

    def get_lr(self):
        if self.last_epoch >= self.warmup_epoch:
            return self.successor.get_last_lr()
        if self.last_epoch == 0:
            return [self.min_lr for _ in self.base_lrs]
        return [lr * self.last_epoch / self.warmup_epoch for lr in self.base_lrs]


def build_lr_scheduler(optimizer, optim_cfg):
    lr_scheduler = optim_cfg.LR_SCHEDULER
    stepsize = optim_cfg.STEPSIZE
    gamma = optim_cfg.GAMMA
    max_epoch = optim_cfg.MAX_EPOCH
    if lr_scheduler not in AVAI_SCHEDS:
        raise ValueError(f"OPTIM.LR_SCHEDULER must be one of {AVAI_SCHEDS}, but got {lr_scheduler!r}")

    if lr_scheduler == "single_step":
        if isinstance(stepsize, (list, tuple)):
            stepsize = stepsize[-1]
        if not isinstance(stepsize, int):
            raise TypeError(f"For single_step lr_scheduler, stepsize must be an integer, but got {type(stepsize)}")
        if stepsize <= 0:
            stepsize = max_epoch
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=stepsize, gamma=gamma)
    elif lr_scheduler == "multi_step":
        if not isinstance(stepsize, (list, tuple)):
            raise TypeError(f"For multi_step lr_scheduler, stepsize must be a list, but got {type(stepsize)}")
        scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=list(stepsize), gamma=gamma)
    else:
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, float(max_epoch))

    if optim_cfg.WARMUP_EPOCH > 0:
        if not optim_cfg.WARMUP_RECOUNT:
            scheduler.last_epoch = optim_cfg.WARMUP_EPOCH
        if optim_cfg.WARMUP_TYPE == "constant":
            scheduler = ConstantWarmupScheduler(optimizer, scheduler, optim_cfg.WARMUP_EPOCH, optim_cfg.WARMUP_CONS_LR)
        elif optim_cfg.WARMUP_TYPE == "linear":
            scheduler = LinearWarmupScheduler(optimizer, scheduler, optim_cfg.WARMUP_EPOCH, optim_cfg.WARMUP_MIN_LR)
        else:
            raise ValueError(f"OPTIM.WARMUP_TYPE must be 'constant' or 'linear', got {optim_cfg.WARMUP_TYPE!r}")
    return scheduler

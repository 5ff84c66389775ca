"""One place that decides how a trainer computes: weight dtype, autocast and loss scaling.

PREC (TRAINER.<NAME>.PREC):
  fp16  the originals' mode: CLIP's weights in half precision (as clip.build_model leaves them) and the
        prompts trained in half precision by plain SGD. Needs a GPU; on a CPU it falls back to fp32.
  fp32  everything in float32.
  amp   float32 weights and prompts, forward under autocast, loss scaling: float16 on CUDA, bfloat16
        on a CPU (which has no float16 autocast worth using).
  bf16  like amp with bfloat16 and no loss scaling (CUDA GPUs with bf16 support, or the CPU).

`Precision.name` is what really runs (recorded in result.json and the run's identity); `requested` is PREC.

For the test suite only: with the environment variable VLPROMPT_TEST_ONLY_CPU_HALF=1, a CPU keeps fp16 as
real float16 (weights and prompts) and amp as float16 autocast with a CPU GradScaler, instead of the
fallbacks above, so that CI runs the code paths users run on a GPU (PyTorch computes float16 on a CPU,
slowly, which the tiny test CLIP does not mind). It is not a user setting: CPU float16 is slow and
nothing is gained by it outside the tests. `cpu_half_for_tests()` sets it for a block.
"""
import contextlib
import os
from dataclasses import dataclass
from typing import Optional

import torch

from .errors import ConfigValueError
PRECISIONS = ("fp16", "fp32", "amp", "bf16")
TEST_ONLY_CPU_HALF = "VLPROMPT_TEST_ONLY_CPU_HALF"  # see the module docstring: tests only, never a user option


@dataclass(frozen=True)
class Precision:
    requested: str
    name: str  # what is actually used
    device_type: str
    weight_dtype: torch.dtype  # dtype of CLIP's converted layers (and of the fp16-mode prompts)
    autocast_dtype: Optional[torch.dtype] = None
    use_grad_scaler: bool = False

    def autocast(self, cache=True):
        """The autocast context (a no-op without autocast). CUDA-graph capture needs cache=False."""
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device_type, dtype=self.autocast_dtype, cache_enabled=cache)

    def grad_scaler(self):
        if not self.use_grad_scaler:
            return None
        try:
            return torch.amp.GradScaler(self.device_type)
        except (AttributeError, TypeError):  # torch < 2.3
            return torch.cuda.amp.GradScaler()


def cpu_half_enabled():
    """Whether the test-only switch (VLPROMPT_TEST_ONLY_CPU_HALF=1) keeps fp16/amp as float16 on a CPU."""
    return os.environ.get(TEST_ONLY_CPU_HALF, "") == "1"


@contextlib.contextmanager
def cpu_half_for_tests(enabled=True):
    """Within this block, a CPU runs PREC fp16 as float16 and amp as float16 autocast (tests only)."""
    previous = os.environ.get(TEST_ONLY_CPU_HALF)
    os.environ[TEST_ONLY_CPU_HALF] = "1" if enabled else "0"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(TEST_ONLY_CPU_HALF, None)
        else:
            os.environ[TEST_ONLY_CPU_HALF] = previous


def resolve_precision(prec, device, verbose=True):
    """The Precision to use for PREC on `device`, printing a notice when it has to fall back.
    The one place that decides: its `name` is what runs."""
    requested = str(prec).lower()
    if requested not in PRECISIONS:
        raise ConfigValueError(f"PREC must be one of {PRECISIONS}, got {prec!r}")
    device_type = torch.device(device).type
    half_here = device_type == "cuda" or (device_type == "cpu" and cpu_half_enabled())

    def notice(text):
        if verbose:
            print(f"Note: {text}")

    if requested == "fp16":
        if half_here:
            if device_type != "cuda":
                notice(f"PREC fp16 runs in float16 on the CPU ({TEST_ONLY_CPU_HALF}=1, for tests only)")
            return Precision(requested, "fp16", device_type, torch.float16)
        notice(f"PREC fp16 needs a GPU; running in fp32 on {device_type}")
        return Precision(requested, "fp32", device_type, torch.float32)
    if requested == "fp32":
        return Precision(requested, "fp32", device_type, torch.float32)
    if requested == "amp":
        if half_here:
            if device_type != "cuda":
                notice(f"PREC amp runs float16 autocast with loss scaling on the CPU ({TEST_ONLY_CPU_HALF}=1, "
                       "for tests only)")
            return Precision(requested, "amp", device_type, torch.float32, torch.float16, use_grad_scaler=True)
        notice(f"PREC amp on {device_type} uses bfloat16 autocast")
        return Precision(requested, "bf16", device_type, torch.float32, torch.bfloat16)
    # bf16
    if device_type == "cuda" and not torch.cuda.is_bf16_supported():
        notice("this GPU has no bfloat16 support; PREC bf16 runs as amp (float16 autocast with loss scaling)")
        return Precision(requested, "amp", device_type, torch.float32, torch.float16, use_grad_scaler=True)
    return Precision(requested, "bf16", device_type, torch.float32, torch.bfloat16)


def apply_to_clip(clip_model, precision):
    """Keep CLIP's fp16 conversion for fp16 mode; make every weight float32 otherwise."""
    if precision.weight_dtype == torch.float32:
        clip_model.float()
    return clip_model

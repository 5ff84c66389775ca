"""The engine seam: the one place that knows whether Dassl is installed.

Trainers, datasets and tools import the Dassl API from here. It is the real `dassl` when that is
importable (unless VLPROMPT_ENGINE=builtin), otherwise vlprompt's built-in engine, which has Dassl's
names, defaults, printed lines and checkpoint layout.

  VLPROMPT_ENGINE=auto     (default) real Dassl if installed, else built-in
  VLPROMPT_ENGINE=builtin  always the built-in engine
  VLPROMPT_ENGINE=dassl    the real Dassl; fail if it is not installed

With the real Dassl on a PyTorch it no longer runs on, two things are fixed at import (see _dassl_compat):
its warmup LR schedulers, and torch.load of its checkpoints (which pickle a scheduler object).
`setup_logger` is vlprompt's in both cases: Dassl's writes a re-run to `log.txt-<time>`, which the
result parsers never read; ours keeps the latest run in `log.txt` and renames the previous log.
"""
import importlib
import importlib.util
import os
import sys

_REQUESTED = os.environ.get("VLPROMPT_ENGINE", "auto").strip().lower() or "auto"
if _REQUESTED not in ("auto", "builtin", "dassl"):
    raise ValueError(f"VLPROMPT_ENGINE must be 'auto', 'builtin' or 'dassl', got {_REQUESTED!r}")


def _dassl_available():
    """An importable `dassl` package. A folder named `dassl` without an __init__.py (a Dassl.pytorch checkout
    in the current directory, which Python would import as an empty namespace package) is not Dassl."""
    spec = importlib.util.find_spec("dassl")
    return spec is not None and spec.origin not in (None, "namespace")


def _import_dassl():
    """Import Dassl (all of its datasets: fails if a requirement is missing) without what its `wilds` import
    does to the process: wilds sets OUTDATED_IGNORE=1 in os.environ and asks PyPI, in a thread, for a newer
    version of itself through the `outdated` package (which asks for its own too when imported). For this
    import only, `outdated` cannot be imported (wilds and ogb then skip the check: they import it under
    try/except ImportError), and OUTDATED_IGNORE is left as it was."""
    saved = os.environ.get("OUTDATED_IGNORE")
    block = "outdated" not in sys.modules
    if block:
        sys.modules["outdated"] = None  # the documented way to make an import fail
    try:
        import dassl.data.datasets  # noqa: F401
    finally:
        if block and "outdated" in sys.modules and sys.modules["outdated"] is None:
            del sys.modules["outdated"]
        if saved is None:
            os.environ.pop("OUTDATED_IGNORE", None)
        else:
            os.environ["OUTDATED_IGNORE"] = saved


# vlprompt's own, whatever the engine (see the module docstring); imported on first use (they need torch).
_LAZY = {"read_image": "data_manager", "close_logger": "utils", "setup_logger": "utils"}

if _REQUESTED == "builtin" or (_REQUESTED == "auto" and not _dassl_available()):
    ENGINE = "builtin"
    # What datasets and configs need comes without torch; the rest is imported on first use.
    from .builtin.config import CfgNode, get_cfg_default
    from .builtin.datasets import DATASET_REGISTRY, DatasetBase, Datum
    from .builtin.registry import TRAINER_REGISTRY
    from .builtin import _WHERE as _BUILTIN_NAMES

    _EXPORTED = {"DatasetWrapper", "build_data_loader", "build_transform", "TrainerX", "build_trainer", "compute_accuracy",
                 "build_optimizer", "build_lr_scheduler", "set_random_seed", "collect_env_info",
                 "load_pretrained_weights", "load_checkpoint", "mkdir_if_missing"}
    _LAZY.update({name: _BUILTIN_NAMES[name] for name in _EXPORTED})
else:
    if not _dassl_available():
        raise ImportError(
            "VLPROMPT_ENGINE=dassl but the `dassl` package is not installed. Install Dassl from its repository "
            "(git clone https://github.com/KaiyangZhou/Dassl.pytorch && cd Dassl.pytorch && "
            "pip install -r requirements.txt && pip install -e .), or unset VLPROMPT_ENGINE to use the built-in engine.")
    try:
        _import_dassl()
    except ImportError as e:
        raise ImportError(
            f"Dassl is installed but cannot be imported ({e}). Install its requirements "
            "(pip install -r requirements.txt in the Dassl checkout), or set VLPROMPT_ENGINE=builtin "
            "to use vlprompt's built-in engine instead.") from e
    ENGINE = "dassl"
    from . import _dassl_compat

    _dassl_compat.apply()

    from yacs.config import CfgNode
    from dassl.config import get_cfg_default
    from dassl.data import DatasetWrapper
    from dassl.data.data_manager import build_data_loader
    from dassl.data.datasets import DATASET_REGISTRY, DatasetBase, Datum
    from dassl.data.transforms import build_transform
    from dassl.engine import TRAINER_REGISTRY, TrainerX, build_trainer
    from dassl.metrics import compute_accuracy
    from dassl.optim import build_lr_scheduler, build_optimizer
    from dassl.utils import (collect_env_info, load_checkpoint, load_pretrained_weights, mkdir_if_missing,
                             set_random_seed)

CN = CfgNode


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(f"{__name__}.builtin.{_LAZY[name]}")
    value = getattr(module, name)
    globals()[name] = value
    return value


# What trainers, datasets, train.py and the library use of Dassl's API (nothing more: the seam stays small).
__all__ = [
    "ENGINE", "CN", "CfgNode", "get_cfg_default", "TRAINER_REGISTRY", "TrainerX", "build_trainer",
    "DATASET_REGISTRY", "Datum", "DatasetBase", "DatasetWrapper", "build_data_loader", "build_transform",
    "compute_accuracy", "build_optimizer", "build_lr_scheduler", "setup_logger", "close_logger", "set_random_seed",
    "collect_env_info", "load_pretrained_weights", "load_checkpoint", "mkdir_if_missing", "read_image",
]

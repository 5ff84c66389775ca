"""dassl.utils: file helpers, seeding, meters, checkpoints and the stdout-to-log.txt tee."""
import json
import os
import os.path as osp
import random
import sys
import time
import warnings
from collections import OrderedDict, defaultdict

import numpy as np
import torch

from vlprompt.fileio import atomic_write, load_torch_file, torch_save_atomic, write_json_atomic


# ----------------------------------------------------------------------------------------------- tools
def mkdir_if_missing(dirname):
    os.makedirs(dirname, exist_ok=True)


def check_isfile(fpath):
    isfile = osp.isfile(fpath)
    if not isfile:
        warnings.warn(f'No file found at "{fpath}"')
    return isfile


def read_json(fpath):
    with open(fpath, "r") as f:
        return json.load(f)


def write_json(obj, fpath):
    write_json_atomic(obj, fpath)


def listdir_nohidden(path, sort=False):
    items = [f for f in os.listdir(path) if not f.startswith(".")]
    if sort:
        items.sort()
    return items


def set_random_seed(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)


def collect_env_info():
    """Versions and devices (a quick summary; torch.utils.collect_env shells out and takes seconds)."""
    import platform

    import PIL
    import torchvision

    lines = [
        f"Python: {platform.python_version()} ({platform.platform()})",
        f"PyTorch: {torch.__version__} (CUDA build {torch.version.cuda})",
        f"torchvision: {torchvision.__version__}",
        f"NumPy: {np.__version__}",
        f"Pillow: {PIL.__version__}",
        f"CUDA available: {torch.cuda.is_available()}",
    ]
    for i in range(torch.cuda.device_count() if torch.cuda.is_available() else 0):
        lines.append(f"GPU {i}: {torch.cuda.get_device_name(i)}")
    return "\n".join(lines)


def count_num_param(model=None, params=None):
    if model is not None:
        return sum(p.numel() for p in model.parameters())
    return sum(p.numel() for p in params)


# ---------------------------------------------------------------------------------------------- meters
class AverageMeter:
    """Running value and average."""

    def __init__(self, ema=False):
        self.ema = ema
        self.reset()

    def reset(self):
        self.val = 0
        self.avg = 0
        self.sum = 0
        self.count = 0

    def update(self, val, n=1):
        if isinstance(val, torch.Tensor):
            val = val.item()
        self.val = val
        self.sum += val * n
        self.count += n
        self.avg = self.sum / self.count


class MetricMeter:
    """A dict of AverageMeters printed as 'name val (avg)'."""

    def __init__(self, delimiter=" "):
        self.meters = defaultdict(AverageMeter)
        self.delimiter = delimiter

    def update(self, input_dict):
        if input_dict is None:
            return
        if not isinstance(input_dict, dict):
            raise TypeError("Input to MetricMeter.update() must be a dictionary")
        for k, v in input_dict.items():
            self.meters[k].update(v)

    def __str__(self):
        return self.delimiter.join(f"{name} {m.val:.4f} ({m.avg:.4f})" for name, m in self.meters.items())


# ------------------------------------------------------------------------------------------ checkpoints
def _strip_module_prefix(state_dict):
    out = OrderedDict()
    for k, v in state_dict.items():
        out[k[7:] if k.startswith("module.") else k] = v
    return out


def save_checkpoint(state, save_dir, is_best=False, remove_module_from_keys=True, model_name=""):
    """Write `save_dir/model.pth.tar-<epoch>` (or `model_name`) and point `save_dir/checkpoint` at it."""
    mkdir_if_missing(save_dir)
    if remove_module_from_keys:
        state["state_dict"] = _strip_module_prefix(state["state_dict"])
    if not model_name:
        model_name = "model.pth.tar-" + str(state["epoch"])
    fpath = osp.join(save_dir, model_name)
    torch_save_atomic(state, fpath)
    print(f"Checkpoint saved to {fpath}")
    with atomic_write(osp.join(save_dir, "checkpoint"), "w") as f:
        f.write(f"{osp.basename(fpath)}\n")
    if is_best:
        torch_save_atomic(state, osp.join(osp.dirname(fpath), "model-best.pth.tar"))


def load_checkpoint(fpath):
    if fpath is None:
        raise ValueError("File path is None")
    return load_torch_file(fpath, map_location=None if torch.cuda.is_available() else "cpu")


def resume_from_checkpoint(fdir, model, optimizer=None, scheduler=None):
    with open(osp.join(fdir, "checkpoint"), "r") as f:
        fname = f.readline().strip("\n")
    fpath = osp.join(fdir, fname)
    print(f'Loading checkpoint from "{fpath}"')
    checkpoint = load_checkpoint(fpath)
    model.load_state_dict(checkpoint["state_dict"])
    print("Loaded model weights")
    if optimizer is not None and checkpoint.get("optimizer") is not None:
        optimizer.load_state_dict(checkpoint["optimizer"])
        print("Loaded optimizer")
    if scheduler is not None and checkpoint.get("scheduler") is not None:
        scheduler.load_state_dict(checkpoint["scheduler"])
        print("Loaded scheduler")
    start_epoch = checkpoint["epoch"]
    print(f"Previous epoch: {start_epoch}")
    return start_epoch


def load_pretrained_weights(model, weight_path):
    """Load the entries of a checkpoint whose names and shapes match the model; report the rest."""
    checkpoint = load_checkpoint(weight_path)
    state_dict = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, dict) else checkpoint
    state_dict = _strip_module_prefix(state_dict)
    model_dict = model.state_dict()
    matched, discarded = OrderedDict(), []
    for k, v in state_dict.items():
        if k in model_dict and model_dict[k].size() == v.size():
            matched[k] = v
        else:
            discarded.append(k)
    model_dict.update(matched)
    model.load_state_dict(model_dict)
    if not matched:
        warnings.warn(f'Cannot load "{weight_path}" (no layer name or shape matches the model)')
    else:
        print(f'Successfully loaded pretrained weights from "{weight_path}"')
        if discarded:
            print(f"Layers discarded due to unmatched keys or size: {discarded}")


# -------------------------------------------------------------------------------------------- logging
class Logger:
    """Tee for sys.stdout: writes to the console and to a log file."""

    def __init__(self, fpath, console):
        self.console = console
        mkdir_if_missing(osp.dirname(osp.abspath(fpath)))
        self.file = open(fpath, "w")
        self.fpath = fpath

    def write(self, msg):
        self.console.write(msg)
        if self.file is not None:
            self.file.write(msg)
            self.file.flush()

    def flush(self):
        self.console.flush()
        if self.file is not None:
            self.file.flush()

    def isatty(self):
        return False

    def close(self):
        if self.file is not None:
            self.file.flush()
            os.fsync(self.file.fileno())
            self.file.close()
            self.file = None

    def __getattr__(self, name):  # encoding, fileno, ... of the console
        return getattr(self.console, name)


LOG_START_MARK = "** vlprompt log started"


def _rotated_name(fpath):
    stamp = time.strftime("-%Y-%m-%d-%H-%M-%S", time.localtime(osp.getmtime(fpath)))
    candidate, n = fpath + stamp, 1
    while osp.exists(candidate):
        candidate, n = f"{fpath}{stamp}.{n}", n + 1
    return candidate


def setup_logger(output=None):
    """Tee stdout to `output/log.txt` (or to `output` itself if it ends in .txt/.log).

    Dassl never overwrites an existing log, writing the new run to `log.txt-<now>`, which the
    parsers (that read `log.txt`) never see. Here the existing file is renamed to
    `log.txt-<its modification time>` instead, so `log.txt` always holds the latest run and no log
    is lost.
    """
    if output is None:
        return None
    fpath = output if output.endswith((".txt", ".log")) else osp.join(output, "log.txt")
    if osp.exists(fpath):
        os.replace(fpath, _rotated_name(fpath))
    close_logger()
    sys.stdout = Logger(fpath, sys.stdout)
    # When this log was started, for the parsers (file times do not survive every copy); the file only.
    sys.stdout.file.write(f"{LOG_START_MARK} {time.strftime('%Y-%m-%d-%H-%M-%S')}\n")
    return fpath


def close_logger():
    """Undo setup_logger: close the log file and restore the console as sys.stdout."""
    out = sys.stdout
    if isinstance(out, Logger):
        out.close()
        sys.stdout = out.console

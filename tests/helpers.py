"""Plain helpers for the tests (fixtures live in conftest.py)."""
import json
import os
import subprocess
import sys

import train as train_module

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def fast_opts(clip_path, epochs=2, **extra):
    """Config options that make a run small: tiny CLIP, 32 px, no loader workers, few epochs, on the CPU
    (the suite tests the CPU behaviour, also on a GPU machine; GPU tests set USE_CUDA True)."""
    opts = ["MODEL.BACKBONE.NAME", str(clip_path), "INPUT.SIZE", "(32, 32)", "DATALOADER.NUM_WORKERS", "0",
            "USE_CUDA", "False",
            "OPTIM.MAX_EPOCH", str(epochs), "TRAIN.PRINT_FREQ", "1000", "DATALOADER.TEST.BATCH_SIZE", "50"]
    for key, value in extra.items():
        opts += [key.replace("__", "."), str(value)]
    return opts


def run_train(argv):
    """train.py in this process (vlprompt.entry.main); returns the trainer it built (None for a skipped run)."""
    return train_module.main([str(a) for a in argv]).trainer


def run_script(script, *args, data, output, env=None, check=True, timeout=600):
    """bash scripts/<script> args... with DATA/OUTPUT set and this interpreter as PYTHON."""
    # VARIANT="": the tests' tiny-CLIP options stay in the originals' output tree (the run identity still
    # guards it); tests of the derived variant directories pass env={"VARIANT": None}.
    full_env = dict(os.environ, DATA=str(data), OUTPUT=str(output), PYTHON=sys.executable, VARIANT="")
    full_env.update(env or {})
    full_env = {k: v for k, v in full_env.items() if v is not None}
    proc = subprocess.run(["bash", os.path.join(REPO_ROOT, "scripts", script), *map(str, args)], env=full_env,
                          cwd="/", capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{script} {args} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


def read_result(run_dir):
    with open(os.path.join(run_dir, "result.json")) as f:
        return json.load(f)


def first_test_logits(trainer):
    """The trainer's logits (float) on the first 6 images of its test loader, as it evaluates them
    (model_inference, in eval mode), and those images' "class/file" names."""
    import torch

    trainer.set_model_mode("eval")
    batch = next(iter(trainer.test_loader))
    with torch.no_grad():
        logits = trainer.model_inference(batch["img"][:6].to(trainer.device)).float()
    return logits, ["/".join(p.split(os.sep)[-2:]) for p in batch["impath"][:6]]


def write_dassl_checkpoint(run_dir, folder, state, epoch):
    """A checkpoint as Dassl's save_model writes it: <folder>/model.pth.tar-<epoch> and the `checkpoint` file
    naming it. Returns epoch."""
    import torch

    os.makedirs(os.path.join(run_dir, folder), exist_ok=True)
    torch.save({"state_dict": state, "epoch": epoch, "optimizer": None, "scheduler": None, "val_result": None},
               os.path.join(run_dir, folder, f"model.pth.tar-{epoch}"))
    with open(os.path.join(run_dir, folder, "checkpoint"), "w") as f:
        f.write(f"model.pth.tar-{epoch}\n")
    return epoch


def checkpoints(run_dir):
    """{relative path: loaded checkpoint} of a run's model.pth.tar-* files."""
    import glob

    import torch

    files = sorted(glob.glob(os.path.join(run_dir, "*", "model.pth.tar-*")))
    assert files, run_dir
    return {os.path.relpath(f, run_dir): torch.load(f, map_location="cpu", weights_only=False) for f in files}


def assert_bit_identical(a, b, where):
    """Every tensor of two (nested) checkpoint dicts equal bit for bit, dtype and shape included."""
    import torch

    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape, where
        assert torch.equal(a, b), where
    elif isinstance(a, dict):
        assert sorted(a) == sorted(b), where
        for key in a:
            assert_bit_identical(a[key], b[key], f"{where}/{key}")


def wait_until(condition, timeout=300, poll=0.2):
    """Poll `condition` until it holds (True) or `timeout` seconds have passed (False): tests wait for states,
    never for a fixed time."""
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(poll)
    return True


def git_head(checkout):
    """(commit, whether tracked files differ from it) of a git checkout: what a run records of its code."""
    def git(*args):
        return subprocess.run(["git", "-C", str(checkout), *args], capture_output=True, text=True,
                              check=True).stdout

    return git("rev-parse", "HEAD").strip(), bool(git("status", "--porcelain", "--untracked-files=no").strip())

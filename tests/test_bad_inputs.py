"""Bad inputs as new users give them: one line naming the key, value or file and what is allowed, exit
status 2, before any work (no run directory claimed), and never a run that goes on to mislead (issue: "No
hostile file runs code, no bad value runs, no start-up hangs").

BAD_VALUES is the table of train.py's bad values: a new key gets its case by adding a row. The other tests
cover what cannot be a row: a crafted TorchScript file, damaged data, output folders that cannot be used,
and what a kill leaves behind.
"""
import errno
import os
import signal
import subprocess
import sys

import pytest

from helpers import REPO_ROOT, fast_opts, read_result
from test_run_identity import argv, cli

PACS = ["--trainer", "Meta_DG", "--config-file", os.path.join(REPO_ROOT, "configs/trainers/Meta_DG/vit_b16.yaml")]
LONG_PHRASE = " ".join(["a photo of a"] * 20)

# (train.py arguments after the usual ones, the error line, dataset): "pacs" runs on the generated PACS.
BAD_VALUES = [
    # ranges and types
    (["DATASET.NUM_SHOTS", "-3"], "DATASET.NUM_SHOTS -3 is not allowed: expected K >= 1 images per class, or -1 for all "
                                  "images"),
    (["DATASET.NUM_SHOTS", "0"], "DATASET.NUM_SHOTS 0 is not allowed"),
    (["DATASET.NUM_SHOTS", "abc"], "DATASET.NUM_SHOTS 'abc' is not allowed: expected an integer"),
    (["DATASET.NUM_SHOTS", "2.5"], "DATASET.NUM_SHOTS 2.5 is not allowed: expected an integer"),
    (["OPTIM.MAX_EPOCH", "0"], "OPTIM.MAX_EPOCH 0 is not allowed: expected an integer >= 1"),
    (["OPTIM.MAX_EPOCH", "abc"], "OPTIM.MAX_EPOCH 'abc' is not allowed: expected an integer"),
    (["OPTIM.LR", "0"], "OPTIM.LR 0.0 is not allowed: expected a learning rate > 0"),  # an int where a float is expected
    (["OPTIM.LR", "1e999"], "OPTIM.LR inf is not allowed: expected a finite number"),
    (["OPTIM.LR", "nan"], "OPTIM.LR 'nan' is not allowed: expected a number"),
    (["OPTIM.WEIGHT_DECAY", "-0.1"], "OPTIM.WEIGHT_DECAY -0.1 is not allowed: expected a weight decay >= 0"),
    (["OPTIM.MOMENTUM", "-0.5"], "OPTIM.MOMENTUM -0.5 is not allowed: expected a momentum >= 0"),
    (["DATALOADER.NUM_WORKERS", "-1"], "DATALOADER.NUM_WORKERS -1 is not allowed: expected an integer >= 0"),
    (["DATALOADER.TRAIN_X.BATCH_SIZE", "0"], "DATALOADER.TRAIN_X.BATCH_SIZE 0 is not allowed: expected an integer >= 1"),
    (["INPUT.SIZE", "abc"], "INPUT.SIZE 'abc' is not allowed: expected a tuple, e.g. (224, 224)"),
    (["INPUT.SIZE", "(32,)"], "INPUT.SIZE (32,) is not allowed: expected (height, width), two integers >= 1"),
    (["INPUT.PIXEL_MEAN", "[0.5]"], "INPUT.PIXEL_MEAN [0.5] is not allowed: expected three numbers, one per RGB channel"),
    (["INPUT.PIXEL_STD", "[0.2, 0.0, 0.2]"], "INPUT.PIXEL_STD [0.2, 0.0, 0.2] is not allowed: expected three numbers > 0"),
    (["OPTIM.NAME", "adam", "OPTIM.ADAM_BETA1", "2.0"], "OPTIM.ADAM_BETA1 2.0 is not allowed: expected a number in [0, 1)"),
    (["TRAINER.COOP.CSC", "maybe"], "TRAINER.COOP.CSC 'maybe' is not allowed: expected True or False"),
    (["TRAINER.COOP.N_CTX", "0"], "TRAINER.COOP.N_CTX 0 is not allowed: expected at least 1 learnable context token"),
    (["TRAINER.COOP.N_CTX", "80"], "TRAINER.COOP.N_CTX 80 is not allowed: expected at most 73 context tokens"),
    (["TRAINER.COOP.CTX_INIT", LONG_PHRASE], "TRAINER.COOP.CTX_INIT 'a photo of a a photo of a a photo of ...' is "
                                             "not allowed: expected a phrase of at most 73 BPE tokens"),
    (["--seed", "-2"], "--seed -2 is not allowed: expected a seed from 0 to 4294967295, or -1 (the default)"),
    (["--seed", "4294967296"], "--seed 4294967296 is not allowed: expected a seed from 0 to 4294967295"),
    # enumerated keys: the engine's, vlprompt's, the method's
    (["TEST.FINAL_MODEL", "best-val"], "TEST.FINAL_MODEL 'best-val' is not allowed: expected one of last_step, best_val"),
    (["TEST.FINAL_MODEL", "foo"], "TEST.FINAL_MODEL 'foo' is not allowed: expected one of last_step, best_val"),
    (["TEST.SPLIT", "foo"], "TEST.SPLIT 'foo' is not allowed: expected one of test, val"),
    (["OPTIM.NAME", "sgdd"], "OPTIM.NAME 'sgdd' is not allowed: expected one of adam, amsgrad, sgd, rmsprop, radam, adamw"),
    (["OPTIM.LR_SCHEDULER", "cosinus"], "OPTIM.LR_SCHEDULER 'cosinus' is not allowed: expected one of single_step,"),
    (["OPTIM.WARMUP_TYPE", "exp"], "OPTIM.WARMUP_TYPE 'exp' is not allowed: expected one of constant, linear"),
    (["INPUT.TRANSFORMS", "['random_flip', 'blur']"], "INPUT.TRANSFORMS 'blur' is not allowed: expected one of "
                                                       "random_flip, random_resized_crop,"),
    (["INPUT.INTERPOLATION", "lanczos"], "INPUT.INTERPOLATION 'lanczos' is not allowed: expected one of bilinear, "
                                         "bicubic, nearest"),
    (["DATALOADER.TRAIN_X.SAMPLER", "Shuffle"], "DATALOADER.TRAIN_X.SAMPLER 'Shuffle' is not allowed: expected one of "
                                                "RandomSampler,"),
    (["DATASET.SUBSAMPLE_CLASSES", "bogus"], "DATASET.SUBSAMPLE_CLASSES 'bogus' is not allowed: expected one of all, "
                                             "base, new"),
    (["TEST.IMAGE_CACHE_DECODER", "gpu"], "TEST.IMAGE_CACHE_DECODER 'gpu' is not allowed: expected one of pil, "
                                          "torchvision"),
    (["TRAINER.COOP.PREC", "fp8"], "TRAINER.COOP.PREC 'fp8' is not allowed: expected one of fp16, fp32, amp, bf16"),
    (["TRAINER.COOP.CLASS_TOKEN_POSITION", "middle-ish"], "TRAINER.COOP.CLASS_TOKEN_POSITION 'middle-ish' is not "
                                                          "allowed: expected one of end, middle, front"),
    (["DATASET.NAME", "Bogus"], 'Dataset (DATASET.NAME, from --dataset-config-file): "Bogus" is not registered.'),
    (["--trainer", "CoOOp"], 'Did you mean "CoOp"?'),
    (["--trainer", ""], "Trainer (--trainer / TRAINER.NAME): none given. The requested one is expected to belong to ["),
    # keys, files and combinations
    (["OPTIM.LRR", "0.1"], "Unknown config key 'OPTIM.LRR' (in command-line options). Did you mean 'OPTIM.LR'?"),
    (["--config-file", "/nonexistent/x.yaml"], "Config file not found: /nonexistent/x.yaml"),
    (["DATASET.NUM_SHOTS"], "Options must be KEY VALUE pairs; got an odd number of items in command-line options"),
    (["--eval-only"], "--eval-only needs --model-dir for CoOp: without trained prompts it would evaluate their random "
                      "initialisation"),
    # leave-one-domain-out DG through train.py
    (PACS + ["--target-domains", "bogus"], "--target-domains / DATASET.TARGET_DOMAINS bogus is not a domain of PACSFS: "
                                           "expected some of art_painting cartoon photo sketch", "pacs"),
    (PACS, "PACSFS: choose the held-out domain with --target-domains (one of art_painting cartoon photo sketch) or "
           "DATASET.ID (its index)", "pacs"),
    (PACS + ["--target-domains", "photo", "--source-domains", "photo", "sketch"],
     "PACSFS: photo is both a source and a target domain", "pacs"),
    (PACS + ["DATASET.ID", "7"], "DATASET.ID 7 is not allowed: expected the index of PACSFS's target domain, "
                                 "0=art_painting 1=cartoon 2=photo 3=sketch", "pacs"),
    (PACS + ["--target-domains", "photo", "DATASET.SUBSAMPLE_CLASSES", "base"],
     "PACSFS is a domain-generalization dataset: DATASET.SUBSAMPLE_CLASSES must be 'all', got 'base'", "pacs"),
]


@pytest.mark.parametrize("row", BAD_VALUES, ids=[" ".join(row[0])[:60] for row in BAD_VALUES])
def test_bad_values_are_refused_before_any_work(tmp_path, caltech_root, pacs_root, tiny_clip_path, capsys, row):
    extra, message, *dataset = row
    out = tmp_path / "run"
    pacs = dataset == ["pacs"]
    code, stdout, err = cli(argv(pacs_root if pacs else caltech_root, out, tiny_clip_path, *extra,
                                 dataset="pacs" if pacs else "caltech101"), capsys)
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1, err
    assert message in err
    assert "Traceback" not in err and "** Config **" not in stdout and not out.exists()


def test_debug_shows_the_traceback(tmp_path, caltech_root, tiny_clip_path, capsys, monkeypatch):
    monkeypatch.setenv("VLPROMPT_DEBUG", "1")
    code, _, err = cli(argv(caltech_root, tmp_path / "run", tiny_clip_path, "DATASET.NUM_SHOTS", "-3"), capsys)
    assert code == 2 and "Traceback (most recent call last)" in err and err.rstrip().endswith("or -1 for all images")


# ----------------------------------------------------------------------- a CLIP file never runs code
def crafted_torchscript(path, marker):
    """A TorchScript archive whose load-time code (its __setstate__) writes `marker`: what a hostile file
    passed as MODEL.BACKBONE.NAME could do to any file (e.g. a .pth in site-packages)."""
    source = path.parent / "crafted_module.py"
    source.write_text(f'''
from typing import Tuple

import torch


class Crafted(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = torch.ones(2)
        self.target = {str(marker)!r}

    def forward(self, x):
        return x * self.weight

    @torch.jit.export
    def __getstate__(self) -> Tuple[torch.Tensor, str, bool]:
        return (self.weight, self.target, self.training)

    @torch.jit.export
    def __setstate__(self, state: Tuple[torch.Tensor, str, bool]):
        self.weight = state[0]
        self.target = state[1]
        self.training = state[2]
        torch.save(state[0], state[1])


torch.jit.script(Crafted()).save({str(path)!r})
''')
    subprocess.run([sys.executable, str(source)], check=True, capture_output=True, timeout=120)
    assert path.is_file() and not marker.exists()


def test_a_torchscript_clip_file_is_loaded_only_if_released_or_trusted(tmp_path, caltech_root, tiny_clip_path,
                                                                       capsys, monkeypatch):
    archive, marker = tmp_path / "ViT-B-16.pt", tmp_path / "written-by-the-archive"
    crafted_torchscript(archive, marker)
    args = argv(caltech_root, tmp_path / "run", tiny_clip_path, "MODEL.BACKBONE.NAME", archive, epochs=1)
    code, _, err = cli(args, capsys)
    assert code == 2 and err.count("\n") == 1 and not marker.exists()
    assert f"error: CLIP weights file {archive} is a TorchScript archive that is not one of OpenAI's released CLIP " \
           "checkpoints" in err and "torch.save(torch.jit.load(" in err and "VLPROMPT_TRUST_CHECKPOINTS" in err
    # Listed as trusted, it is loaded as a TorchScript archive (its code runs: the marker), then found to be no CLIP.
    monkeypatch.setenv("VLPROMPT_TRUST_CHECKPOINTS", str(archive))
    code, _, err = cli(args, capsys)
    assert code == 2 and marker.exists() and f"{archive} is not a CLIP checkpoint" in err


def test_openai_released_torchscript_checkpoints_still_load(tmp_path, monkeypatch):
    """A JIT archive whose SHA-256 is one of OpenAI's (as in their download URLs) loads through torch.jit."""
    from vlprompt import clip_loader

    archive, marker = tmp_path / "released.pt", tmp_path / "marker"
    crafted_torchscript(archive, marker)
    monkeypatch.setattr(clip_loader, "released_sha256s", lambda: {clip_loader.file_sha256(str(archive))})
    state = clip_loader.read_clip_state_dict(str(archive))
    assert list(state) == [] and marker.exists()  # loaded (its code ran): it is trusted by its digest


# ------------------------------------------------------------------------------- data that is damaged
def test_an_empty_custom_csv_is_named(tmp_path, tiny_clip_path, capsys):
    data = tmp_path / "data"
    (data / "mine").mkdir(parents=True)
    (data / "mine/labels.csv").write_text("")
    args = ["--root", data, "--seed", 1, "--trainer", "CoOp", "--config-file",
            os.path.join(REPO_ROOT, "configs/trainers/CoOp/vit_b16_ep50.yaml"), "--output-dir", tmp_path / "run",
            *fast_opts(tiny_clip_path, epochs=1), "DATASET.NAME", "CustomDataset", "DATASET.CUSTOM.DIR", "mine",
            "DATASET.CUSTOM.CSV", "labels.csv"]
    code, _, err = cli(args, capsys)
    assert code == 2 and "Traceback" not in err and err.count("\n") >= 1
    assert f"{data / 'mine/labels.csv'}" in err and "empty" in err


@pytest.mark.parametrize("workers", [0, 2])
def test_a_corrupt_training_image_is_named(tmp_path, tiny_clip_path, capsys, workers):
    from vlprompt.testing.fake_data import make_caltech101

    data = tmp_path / "data"
    make_caltech101(str(data))
    images = sorted((data / "caltech-101/101_ObjectCategories").rglob("*.jpg"))
    for image in images:
        image.write_bytes(b"not a jpeg")
    code, _, err = cli(argv(data, tmp_path / "run", tiny_clip_path, "DATALOADER.NUM_WORKERS", workers,
                            "TEST.IMAGE_CACHE", False, epochs=1), capsys)
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith("error: Cannot read image file ") and "/caltech-101/101_ObjectCategories/" in err
    assert "`vlprompt data check --images decode` lists every unreadable image" in err


# --------------------------------------------------------------------------------- output folders
def test_an_output_folder_that_is_a_file_or_a_system_folder_is_refused(tmp_path, caltech_root, tiny_clip_path, capsys):
    a_file = tmp_path / "output"
    a_file.write_text("")
    code, _, err = cli(argv(caltech_root, a_file, tiny_clip_path, epochs=1), capsys)
    assert (code, err) == (2, f"error: {a_file} is a file, not a folder: choose another --output-dir / OUTPUT\n")
    for system in ("/", "/proc/self", "/etc"):
        code, _, err = cli(argv(caltech_root, system, tiny_clip_path, epochs=1), capsys)
        assert code == 2 and f"error: {system} is a system folder" in err
    assert not os.path.exists("/.vlprompt.lock")


def _chattr(path, flag):
    return subprocess.run(["chattr", flag, str(path)], capture_output=True).returncode == 0


def test_a_read_only_output_folder_is_named(tmp_path, caltech_root, tiny_clip_path, capsys):
    folder = tmp_path / "readonly"
    folder.mkdir()
    if not _chattr(folder, "+i"):
        pytest.skip("chattr +i is not available here (it makes a folder read-only even for root)")
    try:
        code, _, err = cli(argv(caltech_root, folder / "run", tiny_clip_path, epochs=1), capsys)
    finally:
        _chattr(folder, "-i")
    assert code == 2 and err.count("\n") == 1
    assert err.startswith(f"error: Cannot use {folder / 'run'} as a run directory: Operation not permitted")


def test_a_full_disk_while_saving_is_named_and_leaves_nothing_half_written(tmp_path, caltech_root, tiny_clip_path,
                                                                            capsys, monkeypatch):
    import vlprompt.fileio as fileio

    out = tmp_path / "run"
    real_fsync = os.fsync

    def fsync(fd):  # the disk fills up as the first checkpoint is written
        if "model.pth.tar" in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_fsync(fd)

    monkeypatch.setattr(fileio.os, "fsync", fsync)
    code, _, err = cli(argv(caltech_root, out, tiny_clip_path, epochs=1), capsys)
    assert code == 2 and err.count("\n") == 1
    assert err.startswith(f"error: Cannot write {out / 'prompt_learner/model.pth.tar-1'}: No space left on device.")
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp") or p.name.startswith("model.pth")]
    monkeypatch.undo()
    code, _, err = cli(argv(caltech_root, out, tiny_clip_path, epochs=1), capsys)  # space freed: the same command
    assert code == 0, err


def test_a_real_full_file_system_is_named(tmp_path, caltech_root, tiny_clip_path, capsys):
    mount = tmp_path / "small"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], capture_output=True).returncode:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        (mount / "filler").write_bytes(b"\0" * 60 * 1024)
        code, _, err = cli(argv(caltech_root, mount / "run", tiny_clip_path, epochs=1), capsys)
        left = sorted(p.name for p in (mount / "run").iterdir()) if (mount / "run").exists() else []
    finally:
        subprocess.run(["umount", str(mount)], capture_output=True)
    assert code == 2 and err.count("\n") == 1 and "No space left on device" in err and str(mount / "run") in err
    assert not [name for name in left if name.endswith(".tmp")]


# ------------------------------------------------------------------------------ no hangs, no leftovers
def test_start_up_does_not_walk_a_linked_dataset(tmp_path, caltech_root, tiny_clip_path, capsys, monkeypatch):
    import vlprompt.fileio as fileio

    out = tmp_path / "run"
    out.mkdir()
    os.symlink(caltech_root, out / "data-link")  # e.g. a link to the data root kept next to the results
    seen = []
    real_scandir = os.scandir
    monkeypatch.setattr(fileio.os, "scandir", lambda path: seen.append(str(path)) or real_scandir(path))
    assert cli(argv(caltech_root, out, tiny_clip_path, epochs=1), capsys)[0] == 0
    assert str(out) in seen and not [p for p in seen if p.startswith(str(out / "data-link"))]


def test_a_kill_before_the_last_clean_up_is_finished_by_the_re_run(tmp_path, caltech_root, tiny_clip_path):
    out = tmp_path / "run"
    args = [sys.executable, os.path.join(REPO_ROOT, "train.py"), *map(str, argv(caltech_root, out, tiny_clip_path,
                                                                                  epochs=2))]
    killed = subprocess.run(args, env=dict(os.environ, VLPROMPT_KILL_AT="checkpoint-written-2"), capture_output=True,
                            text=True, timeout=600)
    assert killed.returncode == -signal.SIGKILL
    assert sorted(os.listdir(out / "prompt_learner")) == ["checkpoint", "model.pth.tar-1", "model.pth.tar-2"]
    again = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    assert sorted(os.listdir(out / "prompt_learner")) == ["checkpoint", "model.pth.tar-2"]
    assert read_result(out)["resumed_from_epoch"] == 2


def test_a_killed_figure_write_leaves_no_temporary_file(tmp_path):
    from vlprompt.fileio import _temp_prefix
    from test_results import b2n
    from vlprompt.results import build

    b2n(tmp_path, "train_base", "caltech101", "Caltech101", 1, 90.0)
    b2n(tmp_path, "test_new", "caltech101", "Caltech101", 1, 70.0)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    tables = tmp_path / "tables"
    tables.mkdir()
    stem = "base2new_MaPLe_vit_b16_c2_ep5_batch4_2ctx"
    leftover = tables / (_temp_prefix(str(tables / f"{stem}.png")).replace(f".{os.getpid()}.", f".{dead}.")
                         + "abc123.tmp")
    leftover.write_bytes(b"half a png")
    renamed = tables / leftover.name.replace(stem, "base2new_a_table_that_is_gone")  # one no build writes again
    renamed.write_bytes(b"half a pdf")
    build("base2new", str(tmp_path), out=lambda *_: None)
    assert not leftover.exists() and not renamed.exists() and not list(tables.glob("*.tmp"))


HOLDER = """
import os, signal, sys, time
from vlprompt.run_dir import RunLock
lock = RunLock(sys.argv[1]).acquire()  # held (kept referenced) until the kill
child = os.fork()  # as a data-loader worker is forked: it inherits the lock's descriptor
if child == 0:
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1), os.dup2(null, 2)  # not holding the test's output pipes open
    time.sleep(60)  # a worker that outlives its run for a while (they poll for their parent every 5 s)
    os._exit(0)
print(child, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_the_run_lock_dies_with_the_run_not_with_its_forked_workers(tmp_path):
    from vlprompt.run_dir import RunLock

    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-c", HOLDER, str(out)], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, PYTHONPATH=REPO_ROOT))
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    worker = int(proc.stdout.split()[0])
    try:
        assert os.path.exists(f"/proc/{worker}")  # the orphaned child is still alive...
        RunLock(str(out)).acquire(attempts=1).release()  # ...and does not hold the lock
    finally:
        os.kill(worker, signal.SIGKILL)


@pytest.mark.parametrize("command", [["run", "base2new", "nosuchmethod"], ["results", "base2new", "/nonexistent"],
                                     ["run", "base2new", "maple", "--status", "--", "ODD"]])
def test_the_cli_exits_2_on_user_errors(command, capsys):
    from vlprompt.cli import main

    try:
        code = main(command)
    except SystemExit as e:  # argparse's own usage errors exit 2 as well
        code = e.code
    assert code == 2 and capsys.readouterr().err.count("error:") == 1

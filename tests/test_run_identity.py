"""Numbers one can vouch for: run identity, exact resume, one writer per run directory, caches that check
what they claim, and bad values refused before any work (issue: "Numbers you can vouch for")."""
import collections
import json
import os
import signal
import socket
import subprocess
import sys

import pytest
import torch

import train as train_module
from vlprompt.errors import CheckpointError, run_main
from vlprompt.fileio import TRUST_ENV, load_torch_file
from vlprompt.run_dir import RunLock
from vlprompt.run_identity import variant_name

from helpers import REPO_ROOT, fast_opts, read_result, run_script

COOP = ["--trainer", "CoOp", "--config-file", os.path.join(REPO_ROOT, "configs/trainers/CoOp/vit_b16_ep50.yaml")]


VALUE_FLAGS = {"--model-dir", "--load-epoch", "--seed", "--trainer", "--resume", "--config-file"}
LIST_FLAGS = {"--source-domains", "--target-domains"}


def argv(root, out, clip, *extra, epochs=2, seed=1, dataset="caltech101"):
    """train.py's command line: flags (from `extra`) first, then the KEY VALUE options."""
    extra, flags, opts = [str(e) for e in extra], [], []
    while extra:
        item = extra.pop(0)
        if item in LIST_FLAGS:
            flags.append(item)
            while extra and not extra[0].startswith("--") and not extra[0].split(".")[0].isupper():
                flags.append(extra.pop(0))
        elif item.startswith("--"):
            flags += [item, extra.pop(0)] if item in VALUE_FLAGS else [item]
        else:
            opts.append(item)
    if "--seed" not in flags:
        flags += ["--seed", str(seed)]
    trainer = [] if "--trainer" in flags else COOP[:2]
    config = [] if "--config-file" in flags else COOP[2:]
    return ["--root", root, *trainer, *config, *flags,
            "--dataset-config-file", os.path.join(REPO_ROOT, f"configs/datasets/{dataset}.yaml"),
            "--output-dir", str(out), *fast_opts(clip, epochs=epochs), "DATASET.NUM_SHOTS", "2", *opts]


def cli(args, capsys):
    """train.py as the command line runs it: (exit code, stdout, stderr)."""
    code = run_main(train_module.main, [str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def train_subprocess(args, env=None):
    full_env = dict(os.environ, **(env or {}))
    return subprocess.run([sys.executable, os.path.join(REPO_ROOT, "train.py"), *map(str, args)], env=full_env,
                          capture_output=True, text=True, timeout=600)


def final_tensors(out):
    ckpt = load_torch_file(os.path.join(out, "prompt_learner/model.pth.tar-3"))
    return ckpt["state_dict"], ckpt["optimizer"]


# ---------------------------------------------------------------------------------------- identity
def test_a_changed_setting_is_refused_with_the_differing_keys(tmp_path, caltech_root, tiny_clip_path, capsys):
    out = tmp_path / "run"
    assert cli(argv(caltech_root, out, tiny_clip_path, epochs=1), capsys)[0] == 0
    identity = json.load(open(out / "identity.json"))
    result = read_result(out)
    assert result["identity"]["fingerprint"] == identity["fingerprint"] and result["resumed_from_epoch"] is None
    assert identity["overrides"][-2:] == ["DATASET.NUM_SHOTS", "2"] and identity["seed"] == 1
    files = lambda: {p: os.path.getmtime(p) for p in out.rglob("*") if p.is_file() and p.name != ".vlprompt.lock"}  # noqa
    before = files()

    code, _, err = cli(argv(caltech_root, out, tiny_clip_path, "OPTIM.LR", 0.01, epochs=3), capsys)
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert f"error: {out} (--output-dir) holds another run: OPTIM.LR: 0.002 -> 0.01; OPTIM.MAX_EPOCH: 1 -> 3." in err
    assert files() == before  # nothing touched

    # The same identity again: --skip-finished skips it; bookkeeping keys (print frequency) do not matter.
    code, stdout, _ = cli(argv(caltech_root, out, tiny_clip_path, "TRAIN.PRINT_FREQ", 5, "--skip-finished",
                               epochs=1), capsys)
    assert code == 0 and f"The results exist at {out} (so skip this job)" in stdout


def test_eval_only_into_another_models_folder_and_mismatched_model_are_refused(tmp_path, caltech_root, tiny_clip_path,
                                                                             capsys):
    a, b, ev = tmp_path / "a", tmp_path / "b", tmp_path / "eval"
    assert cli(argv(caltech_root, a, tiny_clip_path, epochs=1), capsys)[0] == 0
    assert cli(argv(caltech_root, b, tiny_clip_path, epochs=1, seed=2), capsys)[0] == 0
    evaluate = ["--eval-only", "--load-epoch", 1, "DATASET.SUBSAMPLE_CLASSES", "new"]
    assert cli(argv(caltech_root, ev, tiny_clip_path, "--model-dir", a, *evaluate, epochs=1), capsys)[0] == 0
    assert read_result(ev)["identity"]["model"]["trained"]["fingerprint"] == json.load(open(a / "identity.json"))[
        "fingerprint"]
    code, _, err = cli(argv(caltech_root, ev, tiny_clip_path, "--model-dir", b, *evaluate, epochs=1, seed=2), capsys)
    assert code == 2 and "holds another run" in err and "evaluated model:" in err
    code, _, err = cli(argv(caltech_root, tmp_path / "ev2", tiny_clip_path, "--model-dir", a, *evaluate,
                            "TRAINER.COOP.N_CTX", 4, epochs=1), capsys)
    assert code == 2 and f"The model in {a} was trained with other settings" in err and "TRAINER.COOP.N_CTX: 16 (default) -> 4" in err


def test_scripts_put_a_variant_in_its_own_directory_and_its_test_finds_it(tmp_path, caltech_root, tiny_clip_path):
    out = tmp_path / "output"
    opts = [*fast_opts(tiny_clip_path, epochs=1), "TRAINER.MAPLE.N_CTX", "1"]
    env = {"VARIANT": None, "SHOTS": "2"}
    run_script("maple/base2new_train.sh", "caltech101", 1, *opts, data=caltech_root, output=out, env=env)
    run_script("maple/base2new_test.sh", "caltech101", 1, *opts, data=caltech_root, output=out, env=env)
    [variant] = os.listdir(out / "base2new/train_base/caltech101/shots_2/MaPLe")
    assert variant == "vit_b16_c2_ep5_batch4_2ctx" + variant_name(opts) and "~" in variant  # long: ends in a hash
    assert os.listdir(out / "base2new/test_new/caltech101/shots_2/MaPLe") == [variant]
    new = read_result(out / f"base2new/test_new/caltech101/shots_2/MaPLe/{variant}/seed1")
    assert new["identity"]["config_values"]["TRAINER.MAPLE.N_CTX"] == 1
    proc = run_script("maple/base2new_train.sh", "caltech101", 1, *opts, data=caltech_root, output=out, env=env)
    assert "(so skip this job)" in proc.stdout
    # The test script without the options finds no plain model, and names the variant that exists.
    plain = run_script("maple/base2new_test.sh", "caltech101", 1, *opts[:-2], data=caltech_root, output=out, env=env,
                       check=False)
    assert plain.returncode == 2 and "but variants of it were trained: vit_b16_c2_ep5_batch4_2ctx" in plain.stderr


# ------------------------------------------------------------------------------------- exact resume
def test_variant_names():
    assert variant_name([]) == "" and variant_name(["TRAIN.PRINT_FREQ", "5", "USE_CUDA", "False"]) == ""
    assert variant_name(["TRAINER.COPL.SCORE", "general", "OPTIM.LR", "0.01"]) == \
        "+TRAINER.COPL.SCORE=general+OPTIM.LR=0.01"
    assert variant_name(["INPUT.SIZE", "(32, 32)", "MODEL.BACKBONE.NAME", "/a/b.pt"]) == \
        "+INPUT.SIZE=_32,_32_+MODEL.BACKBONE.NAME=_a_b.pt"
    long = variant_name(["MODEL.BACKBONE.NAME", "/x" * 100])
    assert len(long) == 111 and long.startswith("+MODEL.BACKBONE.NAME=_x_x") and long[100] == "~"


@pytest.mark.parametrize("kill_at, workers", [("train-batch-2-3", 0), ("train-batch-2-3", 2),
                                              ("checkpoint-written-2", 0), ("final-test", 0)])
def test_a_killed_run_resumes_to_the_same_model_and_result(tmp_path, caltech_root, tiny_clip_path, kill_at, workers):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    # Random crops and flips (the config's augmentation) and shuffling both draw from the saved random state;
    # with loader workers, each worker's stream is seeded from it when an epoch starts.
    small_batches = ("DATALOADER.TRAIN_X.BATCH_SIZE", 4, "DATALOADER.NUM_WORKERS", workers)  # 5 batches an epoch
    proc = train_subprocess(argv(caltech_root, whole, tiny_clip_path, *small_batches, epochs=3))
    assert proc.returncode == 0, proc.stderr[-2000:]
    proc = train_subprocess(argv(caltech_root, killed, tiny_clip_path, *small_batches, epochs=3),
                            env={"VLPROMPT_KILL_AT": kill_at})
    assert proc.returncode == -signal.SIGKILL and not (killed / "result.json").exists()
    stale = killed / "prompt_learner/.model.pth.tar-3.somehost.999999.x.tmp"  # left by a killed writer elsewhere
    dead = killed / f"prompt_learner/.model.pth.tar-3.{os.uname().nodename.replace('.', '-')}.99999999.abc.tmp"
    stale.write_bytes(b"x")
    dead.write_bytes(b"partial")
    proc = train_subprocess(argv(caltech_root, killed, tiny_clip_path, *small_batches, epochs=3))
    assert proc.returncode == 0, proc.stderr[-2000:]
    expected_resume = {"train-batch-2-3": 1, "checkpoint-written-2": 2, "final-test": 3}[kill_at]
    assert f"Previous epoch: {expected_resume}" in proc.stdout
    (state_a, optim_a), (state_b, optim_b) = final_tensors(whole), final_tensors(killed)
    assert state_a.keys() == state_b.keys() and all(torch.equal(state_a[k], state_b[k]) for k in state_a)
    assert all(torch.equal(a["momentum_buffer"], b["momentum_buffer"])
               for a, b in zip(optim_a["state"].values(), optim_b["state"].values()))
    a, b = read_result(whole), read_result(killed)
    assert a["metrics"] == b["metrics"] and b["resumed_from_epoch"] == expected_resume
    assert not dead.exists() and stale.exists()  # only temp files of a process known to be gone are removed
    assert sorted(os.listdir(killed / "prompt_learner")) == sorted(os.listdir(whole / "prompt_learner") + [stale.name])


def test_one_writer_per_run_directory(tmp_path, caltech_root, tiny_clip_path, capsys):
    out = tmp_path / "run"
    lock = RunLock(str(out)).acquire()
    try:
        code, _, err = cli(argv(caltech_root, out, tiny_clip_path, epochs=1), capsys)
    finally:
        lock.release()
    assert code == 2 and err == f"error: {out} is in use by another run (PID {os.getpid()} on {socket.gethostname()}): " \
                                "wait for it to finish, or write this run to another output directory\n"
    assert not (out / "log.txt").exists()
    # A holder that dies (SIGKILL) leaves no stuck lock.
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from vlprompt.run_dir import RunLock; "
                               f"lock = RunLock({str(out)!r}).acquire(); print('held', flush=True); time.sleep(600)"],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    assert cli(argv(caltech_root, out, tiny_clip_path, epochs=1), capsys)[0] == 2
    holder.kill()
    holder.wait()
    assert cli(argv(caltech_root, out, tiny_clip_path, epochs=1), capsys)[0] == 0


# ------------------------------------------------------------------------------------- bad values
# (the table of bad values is tests/test_bad_inputs.py)
def test_debug_shows_the_traceback(tmp_path, caltech_root, tiny_clip_path, capsys, monkeypatch):
    monkeypatch.setenv("VLPROMPT_DEBUG", "1")
    code, _, err = cli(argv(caltech_root, tmp_path / "run", tiny_clip_path, "DATASET.NUM_SHOTS", "-3"), capsys)
    assert code == 2 and "Traceback (most recent call last)" in err and err.rstrip().endswith("or -1 for all images")


def test_shots_beyond_a_class_and_ctx_init_rules_are_stated(tmp_path, caltech_root, tiny_clip_path, capsys):
    code, stdout, _ = cli(argv(caltech_root, tmp_path / "run", tiny_clip_path, "DATASET.NUM_SHOTS", 1000,
                               "TRAINER.COOP.CTX_INIT", "a photo of a", epochs=1), capsys)
    assert code == 0
    assert "WARNING: DATASET.NUM_SHOTS 1000 is more than any class has (the largest class, 'face', has 6 " \
           "training images): every class uses all its images, so this is not a 1000-shot run" in stdout
    assert "Note: CTX_INIT 'a photo of a' has 4 words, so the context has 4 vectors and N_CTX 16 is not used" in stdout
    assert read_result(tmp_path / "run")["warnings"][0].startswith("DATASET.NUM_SHOTS 1000 is more than any class has")


@pytest.mark.parametrize("damage", ["empty", "truncated", "not a checkpoint"])
def test_a_broken_clip_file_is_named(tmp_path, caltech_root, tiny_clip_path, capsys, damage):
    broken = tmp_path / "ViT-tiny.pt"
    data = open(tiny_clip_path, "rb").read()
    broken.write_bytes({"empty": b"", "truncated": data[:len(data) // 2], "not a checkpoint": b"hello" * 100}[damage])
    args = argv(caltech_root, tmp_path / "run", tiny_clip_path, "MODEL.BACKBONE.NAME", broken, epochs=1)
    code, _, err = cli(args, capsys)
    assert code == 2 and f"error: CLIP weights file {broken} is " in err and "weights_only" not in err
    assert "Traceback" not in err


class _Marker:
    """Unpickling it creates a file: what a malicious checkpoint would do."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_a_checkpoint_that_would_run_code_is_refused_unless_trusted(tmp_path, monkeypatch):
    marker, path = tmp_path / "marker", tmp_path / "model.pth.tar-5"
    torch.save({"state_dict": {"ctx": torch.zeros(2)}, "evil": _Marker(str(marker))}, path)
    with pytest.raises(Exception) as info:
        load_torch_file(str(path))
    assert not marker.exists()
    assert f"Checkpoint file {path} contains Python objects that loading would have to execute (io.open)" in \
        str(info.value) and TRUST_ENV in str(info.value) and "weights_only" not in str(info.value)
    # Dassl-era checkpoints pickle an SGD optimizer and a cosine scheduler: those load safely, also after
    # training, when the optimizer's state (a defaultdict, which torch's safe mode cannot fill) holds the
    # momentum buffers, as in every released CoOp/MaPLe checkpoint.
    params = [torch.nn.Parameter(torch.zeros(2))]
    optim = torch.optim.SGD(params, lr=0.1, momentum=0.9)
    params[0].sum().backward()
    optim.step()
    torch.save({"state_dict": {"ctx": torch.ones(2)}, "scheduler": {"successor": torch.optim.lr_scheduler.
                CosineAnnealingLR(optim, 5), "optimizer": optim}}, tmp_path / "dassl.pth")
    loaded = load_torch_file(str(tmp_path / "dassl.pth"))
    assert torch.equal(loaded["state_dict"]["ctx"], torch.ones(2))
    [buffer] = [s["momentum_buffer"] for s in loaded["scheduler"]["successor"].optimizer.state.values()]
    assert torch.equal(buffer, torch.ones(2))
    # ... but such a defaultdict cannot bring anything else along
    evil = collections.defaultdict(dict, {"x": _Marker(str(marker))})
    torch.save({"scheduler": {"successor": torch.optim.lr_scheduler.CosineAnnealingLR(optim, 5)}, "evil": evil},
               tmp_path / "evil.pth")
    with pytest.raises(CheckpointError, match=r"contains Python objects that loading would have to execute \(io.open"):
        load_torch_file(str(tmp_path / "evil.pth"))
    assert not marker.exists()
    monkeypatch.setenv(TRUST_ENV, str(path))
    load_torch_file(str(path))
    assert marker.exists()  # trusted explicitly: loaded in full


# --------------------------------------------------------------------------------------- data checks
def test_a_renamed_fewshot_cache_is_rebuilt(tmp_path, caltech_root, tiny_clip_path, capsys):
    import shutil

    root = tmp_path / "data"
    shutil.copytree(caltech_root, root)
    assert cli(argv(str(root), tmp_path / "a", tiny_clip_path, epochs=1, seed=1), capsys)[0] == 0
    cache = root / "caltech-101/split_fewshot"
    os.rename(cache / "shot_2-seed_1.pkl", cache / "shot_1-seed_2.pkl")
    orphan = cache / f".shot_8-seed_1.pkl.{os.uname().nodename.replace('.', '-')}.99999999.abc.tmp"
    orphan.write_bytes(b"a killed writer's leftover")
    code, stdout, _ = cli(argv(str(root), tmp_path / "b", tiny_clip_path, "DATASET.NUM_SHOTS", 1, epochs=1, seed=2),
                          capsys)
    assert code == 0 and "holds 2 shots of seed 1, not 1 shots of seed 2 (a renamed or copied file?); rebuilding" in stdout
    assert read_result(tmp_path / "b")["num_classes"] == 10 and not orphan.exists()


def test_a_split_file_whose_label_and_class_name_disagree_is_refused(tmp_path, caltech_root, tiny_clip_path, capsys):
    import shutil

    root = tmp_path / "data"
    shutil.copytree(caltech_root, root)
    split_path = root / "caltech-101/split_zhou_Caltech101.json"
    split = json.load(open(split_path))
    split["test"][3][2] = "not_" + split["test"][3][2]
    json.dump(split, open(split_path, "w"))
    code, _, err = cli(argv(str(root), tmp_path / "run", tiny_clip_path, epochs=1), capsys)
    assert code == 2 and f"Split file {split_path}: test[3] gives label {split['test'][3][1]} the class name " in err


def test_a_truncated_checkpoint_is_named(tmp_path, caltech_root, tiny_clip_path, capsys):
    trained = tmp_path / "trained"
    assert cli(argv(caltech_root, trained, tiny_clip_path, epochs=1), capsys)[0] == 0
    ckpt = trained / "prompt_learner/model.pth.tar-1"
    ckpt.write_bytes(ckpt.read_bytes()[:300])
    code, _, err = cli(argv(caltech_root, tmp_path / "eval", tiny_clip_path, "--eval-only", "--model-dir", trained,
                            "--load-epoch", 1, epochs=1), capsys)
    assert code == 2 and err.startswith(f"error: Checkpoint file {ckpt} is not a readable PyTorch checkpoint (")
    assert "it may be truncated or corrupt: replace it." in err and "Traceback" not in err


@pytest.mark.parametrize("trainer,config", [("CoOp", "CoOp/vit_b16_ep50.yaml"),
                                            ("MaPLe", "MaPLe/vit_b16_c2_ep5_batch4_2ctx.yaml")])
def test_a_model_trained_at_the_default_fp16_on_a_cpu_is_evaluated_at_fp32(tmp_path, caltech_root, tiny_clip_path,
                                                                           capsys, trainer, config):
    """PREC fp16 on a CPU computes in fp32: evaluating that model with PREC fp32 is the same model evaluated the
    same way, so it is accepted (TRAINER.*.PREC is an evaluation key), and the tables pair its base and new."""
    from vlprompt.results import base2new_tables

    method = ["--trainer", trainer, "--config-file", os.path.join(REPO_ROOT, "configs/trainers", config)]
    base, new = tmp_path / "train_base", tmp_path / "test_new"
    assert cli(argv(caltech_root, base, tiny_clip_path, *method, "DATASET.SUBSAMPLE_CLASSES", "base", epochs=1),
               capsys)[0] == 0
    node = "COOP" if trainer == "CoOp" else "MAPLE"
    code, out, err = cli(argv(caltech_root, new, tiny_clip_path, *method, "--eval-only", "--model-dir", base,
                              "--load-epoch", 1, "DATASET.SUBSAMPLE_CLASSES", "new", f"TRAINER.{node}.PREC", "fp32",
                              epochs=1), capsys)
    assert code == 0, err
    trained, evaluated = read_result(base), read_result(new)
    assert trained["precision"] == {"requested": "fp16", "used": "fp32"}
    assert evaluated["precision"] == {"requested": "fp32", "used": "fp32"}
    assert evaluated["identity"]["model"]["trained"]["fingerprint"] == trained["identity"]["fingerprint"]
    [table] = base2new_tables(str(tmp_path), out=lambda *_: None)
    [row] = table["rows"]
    assert (row["base"], row["new"]) == (trained["metrics"]["accuracy"], evaluated["metrics"]["accuracy"])

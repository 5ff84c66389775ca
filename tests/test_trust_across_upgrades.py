"""Run identity, resume and tables that stay right across upgrades, new methods and shared trees (issue:
"Trust that survives upgrades, new methods and shared clusters").

- An identity covers exactly what can change the run's numbers: the shared keys, its own trainer's and
  dataset's keys (never another method's), the precision and device it really computed with; a release that
  adds options at their old behaviour leaves earlier runs the same run; format-1 identities are still read.
- Typos are refused before the run directory is claimed, and a directory where no work was done is free.
- Files honour the umask, so a group can share output trees and data folders.
- Resuming from another folder compares that folder's identity; status and runner logs are per variant.
"""
import fnmatch
import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys

import pytest

import train as train_module
from helpers import REPO_ROOT, read_result
from test_run_identity import argv, cli
from vlprompt.cli import main as cli_main
from vlprompt.engine import TRAINER_REGISTRY
from vlprompt.launchers.base import OTHER, Run, run_state
from vlprompt.results import base2new_tables
from vlprompt.run_identity import BOOKKEEPING_KEYS, is_bookkeeping
from vlprompt.runner import runner_log_dir
from vlprompt.trainer import PromptTrainer

OTHER_NODES = ("TRAINER.COCOOP.", "TRAINER.COPL.", "TRAINER.IVLP.", "TRAINER.MAPLE.", "TRAINER.META.", "TRAINER.VPT.")


@pytest.fixture(scope="module")
def finished(tmp_path_factory, caltech_root, tiny_clip_path):
    """A finished one-epoch CoOp run (train.py, tiny CLIP): its directory, to be copied by each test."""
    out = tmp_path_factory.mktemp("finished") / "run"
    assert train_module.main([str(a) for a in argv(caltech_root, out, tiny_clip_path, epochs=1)]) is not None
    return out


def copy_of(finished, tmp_path, name="run"):
    target = tmp_path / name
    shutil.copytree(finished, target, ignore=shutil.ignore_patterns(".vlprompt.lock"))
    return target


def load(path):
    with open(path) as f:
        return json.load(f)


def save(obj, path):
    with open(path, "w") as f:
        json.dump(obj, f)


# ------------------------------------------------------------------------ what the identity covers
def test_an_identity_covers_its_own_method_and_what_it_computed_with(finished):
    identity = load(finished / "identity.json")
    settings = identity["settings"]
    assert identity["format"] == 2 and identity["precision"] == "fp32" and identity["device"] == "cpu"
    assert not [k for k in settings if k.startswith(OTHER_NODES)]
    assert not [k for k in settings if k.startswith("DATASET.CUSTOM.") or k == "DATASET.ID"]  # other datasets' keys
    assert "TRAINER.COOP.CSC" not in settings and "TRAINER.COOP.N_CTX" not in settings  # at their defaults
    assert settings["TRAINER.NAME"] == "CoOp" and settings["OPTIM.LR"] == 0.002 and settings["SEED"] == 1
    assert not [k for k in settings if is_bookkeeping(k)]
    # the whole config and the environment are recorded, not fingerprinted
    assert identity["config_values"]["TRAINER.COPL.SCORE"] == "scaled_dot"
    recorded = identity["recorded"]
    assert recorded["engine"] in ("builtin", "dassl") and recorded["vlprompt"] == "0.2.0" and recorded["host"]
    assert recorded["codebase"] == REPO_ROOT and "commit" in recorded and "dirty" in recorded


class FutureMethod(PromptTrainer):
    """A method a later release adds, with its own node."""
    CONFIG_NODE = "FUTURE"
    CONFIG_DEFAULTS = {"N_CTX": 4, "PREC": "fp16", "SHARPNESS": 0.5}


def test_options_a_later_release_adds_leave_earlier_runs_the_same_run(finished, tmp_path, caltech_root,
                                                                      tiny_clip_path, capsys, monkeypatch):
    out = copy_of(finished, tmp_path)
    before = load(out / "identity.json")["fingerprint"]
    coop, copl = TRAINER_REGISTRY.get("CoOp"), TRAINER_REGISTRY.get("CoPL")
    # The release: an option of the run's own method (its default keeps the old behaviour), one of another
    # method, and a new method with a node of its own.
    monkeypatch.setattr(coop, "CONFIG_DEFAULTS", {**coop.CONFIG_DEFAULTS, "ENSEMBLE": False})
    monkeypatch.setattr(copl, "CONFIG_DEFAULTS", {**copl.CONFIG_DEFAULTS, "TEMPERATURE": 1.0})
    monkeypatch.setitem(TRAINER_REGISTRY._obj_map, "FutureMethod", FutureMethod)
    code, stdout, _ = cli(argv(caltech_root, out, tiny_clip_path, "--skip-finished", epochs=1), capsys)
    assert code == 0 and f"The results exist at {out} (so skip this job)" in stdout
    evaluated = tmp_path / "eval"
    code, _, err = cli(argv(caltech_root, evaluated, tiny_clip_path, "--model-dir", out, "--load-epoch", 1,
                            "--eval-only", "DATASET.SUBSAMPLE_CLASSES", "new", epochs=1), capsys)
    assert code == 0, err
    assert read_result(evaluated)["identity"]["model"]["trained"]["fingerprint"] == before
    # The new option away from its default is another run.
    code, _, err = cli(argv(caltech_root, out, tiny_clip_path, "TRAINER.COOP.ENSEMBLE", True, epochs=1), capsys)
    assert code == 2 and "holds another run: TRAINER.COOP.ENSEMBLE: <default> -> true." in err


def format_1(identity):
    """The identity as vlprompt 0.1.0 wrote it (run_identity.py, IDENTITY_FORMAT 1): the same fields less
    settings/precision/device/recorded, the model's training fingerprint as `trained_fingerprint`, and a
    fingerprint over every non-bookkeeping key of the whole config (every registered method's included)."""
    old = {k: v for k, v in identity.items() if k not in ("settings", "precision", "device", "recorded")}
    old["format"] = 1
    if old.get("model"):
        trained = old["model"].pop("trained", None)
        old["model"]["trained_fingerprint"] = trained["fingerprint"] if trained else None
    relevant = {"kind": old["kind"], "clip_sha256": old["clip_sha256"],
                "config": {k: v for k, v in old["config_values"].items()
                           if not any(fnmatch.fnmatchcase(k, p) for p in BOOKKEEPING_KEYS)},
                "model": {"files": old["model"]["files"], "load_epoch": old["model"]["load_epoch"]} if old.get("model")
                else None}
    old["fingerprint"] = hashlib.sha256(json.dumps(relevant, sort_keys=True, separators=(",", ":")).encode()
                                        ).hexdigest()[:16]
    return old


def test_format_1_runs_are_still_read(finished, tmp_path, caltech_root, tiny_clip_path, capsys):
    out = copy_of(finished, tmp_path)
    new = load(out / "identity.json")
    old = format_1(new)
    save(old, out / "identity.json")
    result = load(out / "result.json")
    save(dict(result, identity=old), out / "result.json")
    code, stdout, _ = cli(argv(caltech_root, out, tiny_clip_path, "--skip-finished", epochs=1), capsys)
    assert code == 0 and "(so skip this job)" in stdout
    assert load(out / "identity.json") == old  # a skipped run is left as it is
    # A re-test of the same run (plain train.py, as Dassl does) works and records the current format.
    code, _, err = cli(argv(caltech_root, out, tiny_clip_path, "--eval-only", "--model-dir", out, "--load-epoch", 1,
                            epochs=1), capsys)
    assert code == 2 and "holds another run" in err  # an evaluation is not the training run
    code, _, err = cli(argv(caltech_root, out, tiny_clip_path, epochs=1), capsys)
    assert code == 0, err
    assert load(out / "identity.json")["fingerprint"] == new["fingerprint"] and read_result(out)["identity"]["format"] == 2


def test_format_1_results_share_a_table_with_the_same_setting(finished, tmp_path):
    identity = load(finished / "identity.json")
    result = load(finished / "result.json")
    for seed, ident in ((1, format_1(identity)), (2, identity)):
        folder = tmp_path / f"base2new/train_base/caltech101/seed{seed}"
        folder.mkdir(parents=True)
        values = dict(ident["config_values"], SEED=seed, **{"DATASET.SUBSAMPLE_CLASSES": "base"})
        ident = dict(ident, seed=seed, subsample="base", config_values=values)
        if ident["format"] == 2:
            ident["settings"] = dict(ident["settings"], SEED=seed, **{"DATASET.SUBSAMPLE_CLASSES": "base"})
        save(dict(result, identity=ident, metrics={"accuracy": 50.0 + seed}), folder / "result.json")
    [table] = base2new_tables(str(tmp_path), out=lambda *_: None)
    assert table["rows"][0]["base_per_seed"] == {1: 51.0, 2: 52.0}


def test_a_cpu_run_and_a_gpu_run_are_different_runs(finished, tmp_path, caltech_root, tiny_clip_path, capsys):
    out = copy_of(finished, tmp_path)
    from vlprompt.run_identity import fingerprint

    gpu = load(out / "identity.json")
    gpu.update(precision="fp16", device="cuda")  # what the same command records on a GPU
    gpu["fingerprint"] = fingerprint(gpu)
    save(gpu, out / "identity.json")
    save(dict(load(out / "result.json"), identity=gpu), out / "result.json")
    code, _, err = cli(argv(caltech_root, out, tiny_clip_path, "--skip-finished", epochs=1), capsys)
    assert code == 2 and "precision computed in: fp16 -> fp32; device computed in: cuda -> cpu" in err


def test_evaluating_with_other_loader_workers_is_allowed(finished, tmp_path, caltech_root, tiny_clip_path, capsys):
    """Loader workers decide the training augmentations, not an evaluation's numbers."""
    evaluated = tmp_path / "eval"
    code, _, err = cli(argv(caltech_root, evaluated, tiny_clip_path, "--model-dir", finished, "--load-epoch", 1,
                            "--eval-only", "DATALOADER.NUM_WORKERS", 1, epochs=1), capsys)
    assert code == 0, err
    assert "DATALOADER.NUM_WORKERS" not in read_result(evaluated)["identity"]["settings"]


# ------------------------------------------------------------------------- refused before claiming
def test_a_typo_is_refused_before_the_directory_is_claimed_and_the_corrected_command_runs(
        tmp_path, caltech_root, tiny_clip_path, capsys):
    out = tmp_path / "run"
    code, stdout, err = cli(argv(caltech_root, out, tiny_clip_path, "DATASET.SUBSAMPLE_CLASSES", "bogus", epochs=1),
                            capsys)
    assert (code, err) == (2, "error: DATASET.SUBSAMPLE_CLASSES 'bogus' is not allowed: expected one of all, base, "
                              "new\n")
    assert not out.exists() and "** Config **" not in stdout
    # A directory where another run's identity was recorded but nothing was done (it crashed at once) is free.
    out.mkdir()
    save({"format": 2, "kind": "train", "fingerprint": "0" * 16, "settings": {"OPTIM.LR": 9.0}}, out / "identity.json")
    (out / "log.txt").write_text("crashed\n")
    code, stdout, err = cli(argv(caltech_root, out, tiny_clip_path, epochs=1), capsys)
    assert code == 0, err
    assert "recorded another run's identity but holds no work of it" in stdout
    assert load(out / "identity.json")["fingerprint"] == read_result(out)["identity"]["fingerprint"]


def test_resuming_from_another_folder_compares_its_identity(finished, tmp_path, caltech_root, tiny_clip_path, capsys):
    code, _, err = cli(argv(caltech_root, tmp_path / "new", tiny_clip_path, "--resume", finished, "OPTIM.LR", 0.5,
                            epochs=1), capsys)
    assert code == 2 and f"--resume {finished} holds another run: OPTIM.LR: 0.002 -> 0.5" in err
    assert not (tmp_path / "new").exists()
    code, _, err = cli(argv(caltech_root, tmp_path / "new", tiny_clip_path, "--resume", tmp_path, epochs=1), capsys)
    assert code == 2 and "holds no run identity" in err


# ----------------------------------------------------------------------------- shared trees (umask)
def modes(*roots):
    return {str(p): stat.S_IMODE(p.stat().st_mode) for root in roots for p in root.rglob("*")
            if p.is_file() and not p.is_symlink()}


def test_files_honour_the_umask_so_a_group_can_share_trees(tmp_path, tiny_clip_path, capsys, monkeypatch):
    from vlprompt.testing.fake_data import make_caltech101

    data, out, cache = tmp_path / "data", tmp_path / "output", tmp_path / "cache"
    monkeypatch.setenv("VLPROMPT_CACHE", str(cache))
    previous = os.umask(0o002)
    try:
        make_caltech101(str(data))
        before = set(modes(data))
        run = out / "base2new/train_base/caltech101/seed1"
        assert cli(argv(data, run, tiny_clip_path, "DATASET.SUBSAMPLE_CLASSES", "base", epochs=1), capsys)[0] == 0
        assert cli(argv(data, out / "base2new/test_new/caltech101/seed1", tiny_clip_path, "--model-dir", run,
                        "--load-epoch", 1, "--eval-only", "DATASET.SUBSAMPLE_CLASSES", "new", epochs=1), capsys)[0] == 0
        assert cli_main(["results", "base2new", str(out)]) == 0
    finally:
        os.umask(previous)
    written = {path: mode for path, mode in modes(out, cache, data).items() if path not in before}
    expected = ["identity.json", "result.json", "log.txt", "prompt_learner/model.pth.tar-1", "prompt_learner/checkpoint",
                "split_fewshot/", ".pkl", ".images", "tables/base2new_CoOp_vit_b16_ep50_2shot", ".md", ".csv", ".png",
                ".pdf", ".svg", ".vlprompt.lock"]
    assert all(any(e in p for p in written) for e in expected), sorted(written)
    not_shared = {p: oct(m) for p, m in written.items() if m & 0o660 != 0o660}  # group read and write (umask 002)
    assert not_shared == {}


# -------------------------------------------------------------------------- status and logs per variant
def test_status_and_runner_logs_are_per_variant(tmp_path):
    run_dir = tmp_path / "train"
    run_dir.mkdir()
    identity = {"format": 2, "kind": "train", "trainer": "MaPLe", "config": "cfg", "seed": 1, "fingerprint": "f" * 16,
                "overrides": ["DATASET.NUM_SHOTS", "16", "OPTIM.LR", "0.01"]}
    save(identity, run_dir / "identity.json")
    save({"identity": identity}, run_dir / "result.json")
    head = ["--skip-finished", "--root", "/data", "--seed", "1", "--trainer", "MaPLe", "--dataset-config-file", "d.yaml",
            "--config-file", "/c/cfg.yaml", "--output-dir", str(run_dir)]
    same = Run("x", head + ["DATASET.NUM_SHOTS", "16", "OPTIM.LR", "0.01"], str(run_dir))
    other = Run("x", head + ["DATASET.NUM_SHOTS", "16", "OPTIM.LR", "0.02"], str(run_dir))
    assert run_state(same).state == "done"
    state = run_state(other)
    assert state.state == OTHER and "VARIANT=<name>" in state.describe() and "OUTPUT=" in state.describe()
    assert runner_log_dir("out", "base2new", "maple", ["OPTIM.LR", "0.01"]) != \
        runner_log_dir("out", "base2new", "maple", ["OPTIM.LR", "0.02"])
    assert runner_log_dir("out", "base2new", "maple", [], variant="") == os.path.join("out", "runner-logs",
                                                                                      "base2new-maple")


# ------------------------------------------------------------------------------------- small things
def test_version_and_run_options_before_the_protocol(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["--version"])
    assert exit_info.value.code == 0 and capsys.readouterr().out == "vlprompt 0.2.0\n"
    assert cli_main(["run", "--seeds", "1", "2", "--datasets", "caltech101", "dtd", "base2new", "maple", "--status",
                     "--output", "/nonexistent-output"]) == 0
    out = capsys.readouterr().out
    assert "caltech101-seed2-train" in out and "dtd-seed1-test" in out and "8 pending (of 8 runs)" in out


def test_data_check_reads_a_custom_dataset_config(tmp_path):
    from vlprompt.testing.fake_data import make_dataset

    spec = make_dataset("CustomDataset", tmp_path / "data")
    repo = tmp_path / "repo"
    (repo / "configs/datasets").mkdir(parents=True)
    (repo / "configs/datasets/my_flowers.yaml").write_text(
        f"DATASET:\n  NAME: CustomDataset\n  CUSTOM:\n    DIR: {spec.opts['DATASET.CUSTOM.DIR']}\n")
    os.symlink(os.path.join(REPO_ROOT, "datasets"), repo / "datasets")
    proc = subprocess.run([sys.executable, "-m", "vlprompt", "data", "check", "--root", str(tmp_path / "data"),
                           "--repo", str(repo), "my_flowers"], capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, PYTHONPATH=REPO_ROOT))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "CustomDataset (my_flowers)" in proc.stdout and "1 of 1 usable" in proc.stdout


def test_a_method_that_changes_its_computation_raises_its_revision():
    """IVLP's text tower now runs on the whole context (as the original), which changes its numbers from the
    same settings: its RESULTS_REVISION makes earlier IVLP runs other runs, and leaves every other method's
    fingerprints as they were (revision 0 is not hashed)."""
    from vlprompt.run_identity import build_identity, differences

    cfg = {"SEED": 1, "TRAINER": {"NAME": "IVLP"}, "DATASET": {"NAME": "Caltech101"}}
    before, plain = build_identity(cfg, "train"), build_identity(cfg, "train", revision=0)
    after = build_identity(cfg, "train", revision=TRAINER_REGISTRY.get("IVLP").RESULTS_REVISION)
    assert before["fingerprint"] == plain["fingerprint"] != after["fingerprint"]
    assert differences(before, after) == ["the method's computation (its RESULTS_REVISION): 0 -> 1"]
    assert TRAINER_REGISTRY.get("CoOp").RESULTS_REVISION == 0

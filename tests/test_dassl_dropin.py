"""Drop-in use inside an existing Dassl codebase, and the engine seam's choice and errors.

With the real Dassl importable, vlprompt's trainers and datasets register into Dassl's own
registries and train on Dassl's engine from a codebase's own train.py (a CoOp-style one is written
here). CI has no Dassl, so those tests are skipped there; locally:
    PYTHONPATH=/path/to/dassl-install pytest tests/test_dassl_dropin.py
"""
import importlib.util
import json
import os
import subprocess
import sys
import textwrap

import pytest

from helpers import REPO_ROOT, fast_opts

HAS_DASSL = importlib.util.find_spec("dassl") is not None
needs_dassl = pytest.mark.skipif(not HAS_DASSL, reason="Dassl is not installed")


def python(code, env_engine, cwd=REPO_ROOT, timeout=900):
    env = dict(os.environ, VLPROMPT_ENGINE=env_engine)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_engine_choice_and_errors():
    proc = python("import vlprompt.engine as e; print(e.ENGINE)", "builtin")
    assert proc.returncode == 0 and proc.stdout.strip() == "builtin"
    proc = python("import vlprompt.engine", "dasl")
    assert proc.returncode != 0 and "VLPROMPT_ENGINE must be 'auto', 'builtin' or 'dassl', got 'dasl'" in proc.stderr
    if not HAS_DASSL:
        proc = python("import vlprompt.engine", "dassl")
        assert proc.returncode != 0 and "pip install -e ." in proc.stderr and "VLPROMPT_ENGINE" in proc.stderr


@needs_dassl
def test_trainers_and_datasets_register_into_dasslss_registries():
    # (This test and the train.py below play a user's Dassl codebase, which imports dassl itself; they do
    # it through importlib so the project's check that only vlprompt.engine imports dassl stays exact.)
    proc = python("""
        import importlib
        engine, data = importlib.import_module("dassl.engine"), importlib.import_module("dassl.data.datasets")
        import vlprompt.engine as seam
        import trainers.coop, trainers.cocoop, datasets.caltech101
        assert seam.ENGINE == "dassl" and seam.TRAINER_REGISTRY is engine.TRAINER_REGISTRY
        assert engine.TRAINER_REGISTRY.get("CoCoOp") is trainers.cocoop.CoCoOp
        assert issubclass(trainers.cocoop.CoCoOp, engine.TrainerX)
        assert data.DATASET_REGISTRY.get("Caltech101") is datasets.caltech101.Caltech101
        assert issubclass(datasets.caltech101.Caltech101, data.DatasetBase)
        assert importlib.import_module("dassl.optim.lr_scheduler")._BaseWarmupScheduler._vlprompt_patched
        print("ok")
    """, "dassl")
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-3000:]


USER_TRAIN_PY = """
    # A Dassl codebase's own train.py (CoOp style): Dassl's config, trainer builder and engine.
    import importlib
    import sys
    sys.path.insert(0, {repo!r})
    get_cfg_default = importlib.import_module("dassl.config").get_cfg_default
    build_trainer = importlib.import_module("dassl.engine").build_trainer
    dassl_utils = importlib.import_module("dassl.utils")
    set_random_seed, setup_logger = dassl_utils.set_random_seed, dassl_utils.setup_logger
    import trainers.cocoop  # noqa: F401  (registers CoCoOp into Dassl's TRAINER_REGISTRY)
    import datasets.caltech101  # noqa: F401
    from vlprompt.config import extend_cfg

    cfg = extend_cfg(get_cfg_default())  # adds TRAINER.COCOOP.* and DATASET.SUBSAMPLE_CLASSES
    cfg.merge_from_file({repo!r} + "/configs/datasets/caltech101.yaml")
    cfg.merge_from_file({repo!r} + "/configs/trainers/CoCoOp/vit_b16_c4_ep10_batch1_ctxv1.yaml")
    cfg.merge_from_list(sys.argv[1:])
    cfg.freeze()
    set_random_seed(cfg.SEED)
    setup_logger(cfg.OUTPUT_DIR)
    trainer = build_trainer(cfg)
    trainer.train()
    print("ENGINE-CLASS", type(trainer).__mro__[-3].__module__)
"""


@needs_dassl
def test_cocoop_trains_on_dasslss_engine_from_a_codebases_own_train_py(tmp_path, caltech_root, tiny_clip_path):
    out = tmp_path / "run"
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(USER_TRAIN_PY.format(repo=REPO_ROOT)))
    opts = fast_opts(tiny_clip_path, epochs=2) + ["DATASET.ROOT", caltech_root, "OUTPUT_DIR", str(out), "SEED", "1",
                                                  "TRAINER.NAME", "CoCoOp", "DATASET.NUM_SHOTS", "2",
                                                  "DATASET.SUBSAMPLE_CLASSES", "base"]
    env = dict(os.environ, VLPROMPT_ENGINE="dassl")
    proc = subprocess.run([sys.executable, str(script), *opts], cwd=str(tmp_path), env=env, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "ENGINE-CLASS dassl.engine.trainer" in proc.stdout
    log = (out / "log.txt").read_text()
    assert "Finish training" in log and "* accuracy:" in log
    result = json.loads((out / "result.json").read_text())
    assert result["versions"]["engine"] == "dassl" and result["num_classes"] == 5
    # Re-running into the finished dir resumes at MAX_EPOCH through Dassl's (patched) checkpoint loading.
    again = subprocess.run([sys.executable, str(script), *opts], cwd=str(tmp_path), env=env, capture_output=True,
                           text=True, timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    from vlprompt.parse_logs import parse_log, run_logs

    newest = run_logs(str(out))[0]  # Dassl's own setup_logger wrote the re-run to log.txt-<time>
    rerun_log = open(newest).read()
    assert os.path.basename(newest).startswith("log.txt-") and "Found checkpoint" in rerun_log
    assert "epoch [" not in rerun_log and parse_log(newest) == pytest.approx(result["metrics"]["accuracy"], abs=0.05)

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


# ------------------------------------------------------------------------------- whatever the import order
OWN_TRAINER = """
# A codebase's own trainer module, as the originals' are: Dassl's loader bound under its own name at import.
from DASSL.utils import load_checkpoint  # noqa: F401
""".replace("DASSL", "dassl")


@needs_dassl
@pytest.mark.parametrize("order", ["codebase-first", "vlprompt-first"])
def test_dassls_fixes_hold_whatever_the_import_order(tmp_path, order):
    """An Adam-trained checkpoint with Dassl's warmup schedule (the scheduler state pickles the optimizer) loads
    through the loader a codebase's trainer imported, before or after vlprompt; Dassl's warmup scheduler builds."""
    (tmp_path / "own_trainer.py").write_text(OWN_TRAINER)
    proc = python(f"""
        import importlib, os, sys
        sys.path.insert(0, {str(tmp_path)!r})
        if {order!r} == "codebase-first":
            import own_trainer
            import vlprompt.engine as seam
        else:
            import vlprompt.engine as seam
            import own_trainer
        import torch
        cfg = seam.get_cfg_default()
        cfg.OPTIM.NAME, cfg.OPTIM.LR_SCHEDULER = "adam", "cosine"
        cfg.OPTIM.WARMUP_EPOCH, cfg.OPTIM.WARMUP_TYPE = 1, "constant"
        model = torch.nn.Linear(2, 2)
        optim = seam.build_optimizer(model, cfg.OPTIM)
        sched = seam.build_lr_scheduler(optim, cfg.OPTIM)
        model(torch.ones(1, 2)).sum().backward()
        optim.step()
        sched.step()
        state = dict(state_dict=model.state_dict(), epoch=1, optimizer=optim.state_dict(), scheduler=sched.state_dict(),
                     val_result=None)
        importlib.import_module("dassl.utils").save_checkpoint(state, {str(tmp_path / "ckpt")!r})
        checkpoint = own_trainer.load_checkpoint({str(tmp_path / "ckpt" / "model.pth.tar-1")!r})
        print("HELD", type(checkpoint["scheduler"]["successor"].optimizer).__name__, checkpoint["epoch"])
    """, "dassl")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "HELD Adam 1" in proc.stdout


# ------------------------------------------------------------------------------------ the environment
@needs_dassl
def test_importing_vlprompt_on_dassl_leaves_the_environment_and_asks_pypi_nothing():
    proc = python("""
        import os, sys
        os.environ.pop("OUTDATED_IGNORE", None)
        import vlprompt.engine as seam
        assert seam.ENGINE == "dassl" and "wilds" in sys.modules  # Dassl's datasets import wilds
        print("ENV", os.environ.get("OUTDATED_IGNORE"), "outdated" in sys.modules)
    """, "dassl")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "ENV None False" in proc.stdout  # nothing set, and `outdated` (which asks PyPI) never imported


LIKE_WILDS = {  # what wilds 1.2.2 and outdated 0.2.2 do when imported (read from their files), asking no PyPI here
    "dassl/__init__.py": "",
    "dassl/data/__init__.py": "",
    "dassl/data/datasets/__init__.py": "import wilds  # noqa: F401  (as Dassl's WILDS wrappers)\n",
    "wilds/__init__.py": """
        import os
        os.environ["OUTDATED_IGNORE"] = "1"
        try:
            from outdated import check_outdated
        except ImportError:
            check_outdated = None
        if check_outdated is not None:
            check_outdated("wilds", "1.2.2")  # the real one, in a thread
    """,
    "outdated/__init__.py": """
        ASKED = []


        def check_outdated(package, version):
            ASKED.append(package)  # the real one asks PyPI for the package's latest version


        check_outdated("outdated", "0.2.2")
    """,
}


@pytest.mark.parametrize("before", [None, "yes"])
def test_dassls_import_leaves_outdated_ignore_as_it_was_and_asks_pypi_nothing(tmp_path, before):
    for rel, text in LIKE_WILDS.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(textwrap.dedent(text).lstrip("\n"))
    env = {k: v for k, v in os.environ.items() if k != "OUTDATED_IGNORE"}
    env.update(VLPROMPT_ENGINE="builtin", PYTHONPATH=os.pathsep.join([str(tmp_path), REPO_ROOT]))
    if before is not None:
        env["OUTDATED_IGNORE"] = before
    code = textwrap.dedent("""
        import os, sys
        import vlprompt.engine as seam
        seam._import_dassl()  # what VLPROMPT_ENGINE=dassl runs
        print("AFTER", os.environ.get("OUTDATED_IGNORE"), "wilds" in sys.modules, "outdated" in sys.modules)
        import outdated  # the user's own import still works
        print("ASKED", outdated.ASKED)
    """)
    proc = subprocess.run([sys.executable, "-c", code], cwd=str(tmp_path), env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"AFTER {before} True False" in proc.stdout and "ASKED ['outdated']" in proc.stdout

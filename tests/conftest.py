"""Shared fixtures: a tiny CLIP saved to a file, generated datasets, and runners for train.py and the
bash scripts. Nothing here touches the network.

The suite runs on the built-in engine (VLPROMPT_ENGINE=builtin) so that it tests the same thing with
or without Dassl installed; VLPROMPT_TEST_ENGINE=dassl runs it on the real Dassl instead.
"""
import importlib.util
import os
import sys

TEST_ENGINE = os.environ.get("VLPROMPT_TEST_ENGINE", "builtin")
# Asked to test on the real Dassl but it is not installed: collect on the built-in engine (so that every
# module imports) and skip every test, saying why (pytest_collection_modifyitems below).
DASSL_MISSING = TEST_ENGINE == "dassl" and importlib.util.find_spec("dassl") is None
os.environ["VLPROMPT_ENGINE"] = "builtin" if DASSL_MISSING else TEST_ENGINE
# The tiny models gain nothing from intra-op threads, and scripts run as subprocesses next to this
# process: one thread each avoids oversubscribing the cores.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

from vlprompt.plugins import codebase_package, load_codebase  # noqa: E402

load_codebase(REPO_ROOT)  # registers every trainer and dataset (imported from their files, private names)
# Tests import the plugin modules by their short names (`from trainers.coop import CoOpCLIP`): alias them to the
# modules load_codebase imported, so nothing is executed (and registered) twice. Tests only: the library never
# puts a codebase's packages under these names.
_PRIVATE = codebase_package(REPO_ROOT) + "."
for _name, _module in list(sys.modules.items()):
    if _name.startswith(_PRIVATE):
        sys.modules.setdefault(_name[len(_PRIVATE):], _module)
from slurm_cluster import slurm_cluster  # noqa: E402,F401  (a single-node Slurm cluster fixture)


# Time caps (pytest-timeout; the global one is `timeout` in pytest.ini): a hang fails its test instead of
# eating CI. The end-to-end tests below run train.py, the bash scripts, a wheel build or Slurm jobs and took
# 30 s to 2.5 minutes on the 2-core machine shared with other jobs (load 6-10, two xdist workers; setup
# included: e.g. test_maple_scripts' module fixture runs every MaPLe script); they get a larger cap. Every
# other test took at most 31 s there. Keys: "file.py" (every test in it) or "file.py::name"
# (every parametrisation of it).
SLOW_TEST_TIMEOUT_S = 600
SLOW_TESTS = (
    "test_slurm_launcher.py",  # starts a Slurm cluster (up to 60 s) and runs jobs on it
    "test_maple_scripts.py",
    "test_local_launcher.py",
    "test_runner.py::test_runs_in_parallel_slots_resumes_and_builds_the_table",
    "test_run_identity.py::test_a_killed_run_resumes_to_the_same_model_and_result",
    "test_run_identity.py::test_scripts_put_a_variant_in_its_own_directory_and_its_test_finds_it",
    "test_coop_cocoop.py::test_coop_main_and_zeroshot_scripts",
    "test_packaging.py::test_wheel_builds_installs_into_a_fresh_venv_and_the_cli_runs_from_it",
    "test_dropin_maple_layout.py",
    "test_metaprompt_scripts.py",
    "test_scripts_end_to_end.py",
    "test_copl_scripts.py",
    "test_script_callers.py",
)


def is_slow(item):
    path, _, name = item.nodeid.partition("::")
    key = f"{os.path.basename(path)}::{name.split('[')[0]}"
    return any(key == slow or key.startswith(slow + "::") for slow in SLOW_TESTS)


def pytest_collection_modifyitems(config, items):
    for item in items:
        if is_slow(item) and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(SLOW_TEST_TIMEOUT_S))
    if DASSL_MISSING:
        skip = pytest.mark.skip(reason="VLPROMPT_TEST_ENGINE=dassl, but the dassl package is not installed: install "
                                       "Dassl.pytorch (pip install -e <its checkout>) to run the suite on it")
        for item in items:
            item.add_marker(skip)


@pytest.fixture(scope="session", autouse=True)
def image_cache_dir(tmp_path_factory):
    """Evaluation's test-image cache (vlprompt.data.image_cache) goes to a temporary folder, not ~/.cache;
    the scripts the tests run inherit it."""
    previous = os.environ.get("VLPROMPT_CACHE")
    root = tmp_path_factory.mktemp("vlprompt-cache")
    os.environ["VLPROMPT_CACHE"] = str(root)
    yield root / "test_images"
    if previous is None:
        os.environ.pop("VLPROMPT_CACHE", None)
    else:
        os.environ["VLPROMPT_CACHE"] = previous


@pytest.fixture(scope="session")
def tiny_clip_path(tmp_path_factory):
    """A tiny ViT CLIP (12 layers; text width 64, vision width 128, embed 48; 32 px, patch 8) state dict."""
    from vlprompt.testing.tiny_clip import save_tiny_clip

    return save_tiny_clip(tmp_path_factory.mktemp("clip") / "tiny-vit.pt", arch="vit")


@pytest.fixture(scope="session")
def tiny_rn_clip_path(tmp_path_factory):
    from vlprompt.testing.tiny_clip import save_tiny_clip

    return save_tiny_clip(tmp_path_factory.mktemp("clip") / "tiny-rn.pt", arch="rn")


@pytest.fixture(scope="session")
def tiny_clip(tiny_clip_path):
    """The tiny CLIP loaded through vlprompt's loader, in float32."""
    from vlprompt.clip_loader import load_clip

    return load_clip(tiny_clip_path).float()


@pytest.fixture(scope="session")
def pacs_root(tmp_path_factory):
    """A data root holding a generated PACS (4 domains, leave-one-domain-out layout)."""
    from vlprompt.testing.fake_dg_data import make_pacs

    root = tmp_path_factory.mktemp("pacs")
    make_pacs(str(root))
    return str(root)


@pytest.fixture(scope="session")
def caltech_root(tmp_path_factory):
    """A data root holding a generated Caltech101 (10 classes after the ignored folders, 12 images each)."""
    from vlprompt.testing.fake_data import make_caltech101

    root = tmp_path_factory.mktemp("data")
    make_caltech101(str(root))
    return str(root)

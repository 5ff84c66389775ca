"""A hang cannot eat CI (issue 24): every test has a time cap (pytest-timeout: `timeout` in pytest.ini, a
larger one for the slow end-to-end tests listed in conftest.SLOW_TESTS), and the whole session has one."""
import os
import subprocess
import sys

import pytest

import conftest
from helpers import REPO_ROOT


def test_every_test_has_a_time_cap(request):
    config = request.config
    assert config.pluginmanager.hasplugin("timeout"), "pytest-timeout is part of the test extra: pip install -e .[test]"
    assert float(config.getini("timeout")) == 150 and float(config.getini("session_timeout")) == 1800
    items = request.session.items
    for item in items:
        marker = item.get_closest_marker("timeout")
        if conftest.is_slow(item):
            assert marker is not None and marker.args[0] == conftest.SLOW_TEST_TIMEOUT_S, item.nodeid
    # Every entry of SLOW_TESTS names collected tests (a renamed test would otherwise lose its larger cap and
    # fail at 150 s); checkable only when the whole suite is collected.
    collected = {os.path.basename(item.nodeid.split("::")[0]) for item in items}
    files = {name for name in os.listdir(os.path.join(REPO_ROOT, "tests")) if name.startswith("test_")}
    if not files <= collected:
        pytest.skip("run with the whole suite: only then are all of SLOW_TESTS' files collected")
    for slow in conftest.SLOW_TESTS:
        assert any(conftest.is_slow(item) and item.nodeid.split("/")[-1].startswith(slow) for item in items), slow


def test_a_hanging_test_fails_at_its_cap(tmp_path):
    (tmp_path / "pytest.ini").write_text("[pytest]\ntimeout = 2\n")
    (tmp_path / "test_hang.py").write_text("import time\n\ndef test_hangs():\n    time.sleep(600)\n\n"
                                           "def test_after():\n    pass\n")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_hang.py"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stdout[-2000:]
    assert "Failed: Timeout (>2.0s) from pytest-timeout." in proc.stdout
    assert "1 failed, 1 passed" in proc.stdout  # the run went on after the hanging test


def test_the_readme_ci_and_gpu_check_give_one_test_command():
    from vlprompt.gpu_check import TEST_COMMAND

    readme = open(os.path.join(REPO_ROOT, "README.md")).read()
    ci = open(os.path.join(REPO_ROOT, ".ci", "run")).read()
    assert f'pip install -e ".[test]" && {TEST_COMMAND}   #' in readme
    assert [line for line in ci.splitlines() if line.startswith("python -m pytest")] == [TEST_COMMAND]

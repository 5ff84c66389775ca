"""The `vlprompt` command starts fast: --help, `data check` and `results` import neither torch nor CLIP
(checked in a fresh interpreter, where nothing else has imported them)."""
import json
import os
import socket
import subprocess
import sys

import pytest

from helpers import REPO_ROOT

PROBE = """
import json, sys
import vlprompt.cli as cli
parser = cli.build_parser()
for argv in {parse}:
    parser.parse_args(argv)
for argv in {run}:
    try:
        status = cli.main(argv)
    except SystemExit as e:
        status = e.code
    print("status", argv[:2], status, file=sys.stderr)
print(json.dumps({{m: m in sys.modules for m in ("torch", "clip", "torchvision", "matplotlib", "pooch")}}))
"""


def probe(parse=(), run=(), cwd=None):
    code = PROBE.format(parse=repr([list(a) for a in parse]), run=repr([list(a) for a in run]))
    env = dict(os.environ, PYTHONPATH=REPO_ROOT)
    proc = subprocess.run([sys.executable, "-c", code], cwd=cwd or REPO_ROOT, capture_output=True, text=True,
                          env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1]), proc.stderr


def test_help_data_check_and_results_parse_without_torch_or_clip(tmp_path):
    loaded, err = probe(parse=[["data", "check", "--root", str(tmp_path), "Caltech101"],
                               ["results", "base2new", str(tmp_path), "--trainer", "MaPLe"],
                               ["data", "download", "OxfordPets", "--root", str(tmp_path)],
                               ["run", "base2new", "maple", "--gpus", "cpu"]],
                        run=[["--help"], ["data", "--help"], ["results", "--help"]])
    assert loaded == {"torch": False, "clip": False, "torchvision": False, "matplotlib": False, "pooch": False}
    assert "status ['--help'] 0" in err and "status ['results', '--help'] 0" in err


def test_data_check_of_absent_datasets_runs_without_torch(tmp_path):
    """The readers (and with them the engine and torch) are imported only for a dataset that is present."""
    (tmp_path / "empty").mkdir()
    loaded, err = probe(run=[["data", "check", "--root", str(tmp_path / "empty"), "Caltech101", "EuroSAT"],
                             ["data", "check", "--root", str(tmp_path / "empty")],
                             ["data", "list"]])
    assert not loaded["torch"] and not loaded["clip"]
    assert "status ['data', 'check'] 1" in err  # absent datasets are an error, reported without a traceback


@pytest.mark.skipif(os.environ.get("VLPROMPT_ENGINE") == "dassl", reason="the real Dassl imports torch (and its dependencies' warnings) when the readers are imported")
def test_data_check_of_a_present_dataset_and_a_results_table_run_without_torch(tmp_path):
    """The readers come without torch: the engine imports its torch parts on first use."""
    from vlprompt.testing.fake_data import make_caltech101
    from test_results import b2n

    make_caltech101(str(tmp_path / "data"))
    b2n(tmp_path / "out", "train_base", "caltech101", "Caltech101", 1, 97.0)
    b2n(tmp_path / "out", "test_new", "caltech101", "Caltech101", 1, 94.0)
    loaded, err = probe(run=[["data", "check", "--root", str(tmp_path / "data"), "Caltech101"],
                             ["data", "check", "--root", str(tmp_path / "data"), "caltech101"],  # its config name
                             ["results", "base2new", str(tmp_path / "out")]], cwd=str(tmp_path))
    assert err.count("status ['data', 'check'] 0") == 2 and "status ['results', 'base2new'] 0" in err
    assert not loaded["torch"] and not loaded["clip"] and not loaded["torchvision"]
    assert (tmp_path / "out/tables/base2new_MaPLe_vit_b16_c2_ep5_batch4_2ctx.png").is_file()


def test_import_vlprompt_is_cheap_and_load_clip_is_still_there():
    code = ("import sys, vlprompt\n"
            "assert 'torch' not in sys.modules and 'clip' not in sys.modules\n"
            "load = vlprompt.load_clip\n"
            "from vlprompt.clip_loader import load_clip\n"
            "assert load is load_clip and 'torch' in sys.modules\n"
            "print(vlprompt.__version__)\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    from vlprompt.version import __version__

    assert proc.stdout.strip() == __version__


@pytest.mark.skipif(os.environ.get("VLPROMPT_ENGINE") == "dassl", reason="the real Dassl imports torch (and its dependencies' warnings) when the readers are imported")
def test_data_check_finds_the_readers_in_the_codebase_it_is_given(tmp_path):
    from vlprompt.testing.fake_data import make_caltech101

    make_caltech101(str(tmp_path / "data"))
    env = {k: v for k, v in os.environ.items() if k != "VLPROMPT_REPO"}
    check = [sys.executable, "-m", "vlprompt", "data", "check", "--root", str(tmp_path / "data"), "Caltech101"]
    elsewhere = subprocess.run(check, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    # outside a codebase: vlprompt's own (here the checkout it is imported from; a wheel carries a copy)
    assert elsewhere.returncode == 0 and "1 of 1 usable: Caltech101" in elsewhere.stdout, elsewhere.stderr
    given = subprocess.run(check + ["--repo", REPO_ROOT], cwd=tmp_path, env=env, capture_output=True, text=True,
                           timeout=300)
    assert given.returncode == 0 and "1 of 1 usable: Caltech101" in given.stdout
    wrong = subprocess.run(check + ["--repo", str(tmp_path / "data")], cwd=tmp_path, env=env, capture_output=True,
                           text=True, timeout=300)
    assert wrong.returncode == 2 and wrong.stderr == (
        f"error: Cannot find the dataset readers (datasets/*.py) in --repo ({tmp_path / 'data'}): it has no "
        "datasets/caltech101.py\n")


def test_run_status_reads_the_output_tree_without_torch(tmp_path):
    """done / running / failed (with its log) / pending, from the output tree; the issue's command line."""
    from vlprompt.run_dir import RunLock
    from vlprompt.runner import plan_protocol

    out = tmp_path / "output"
    argv = ["run", "base2new", "maple", "--datasets", "caltech101", "--seeds", "1", "2", "--status", "--output",
            str(out), "--repo", REPO_ROOT, "--", "KEY", "VALUE"]
    train, test = plan_protocol("base2new", "maple", str(out), "", datasets=["caltech101"], seeds=[1, 2],
                                opts=["KEY", "VALUE"], repo=REPO_ROOT, variant=None)
    assert "/vit_b16_c2_ep5_batch4_2ctx+KEY=VALUE/seed1" in train[0].output_dir
    done, failed, running = train[0].output_dir, train[1].output_dir, test[0].output_dir
    for d in (done, failed, running):
        os.makedirs(d)
        with open(os.path.join(d, "identity.json"), "w") as f:
            json.dump({"fingerprint": "abc"}, f)
    with open(os.path.join(done, "result.json"), "w") as f:
        json.dump({"identity": {"fingerprint": "abc"}}, f)
    env = {k: v for k, v in os.environ.items() if k != "VARIANT"}
    with RunLock(running):
        proc = subprocess.run([sys.executable, "-c", PROBE.format(parse="[]", run=repr([argv]))], cwd=tmp_path,
                              capture_output=True, text=True, env=dict(env, PYTHONPATH=REPO_ROOT), timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert json.loads(lines[-1])["torch"] is False
    assert "  done     caltech101-seed1-train" in lines
    assert f"  failed   caltech101-seed2-train  log: {os.path.join(failed, 'log.txt')}" in lines
    assert f"  running  caltech101-seed1-test  (PID {os.getpid()} on {socket.gethostname()})" in lines  # the holder
    assert "  pending  caltech101-seed2-test" in lines
    assert "1 done, 1 running, 1 failed, 0 other, 1 pending (of 4 runs)" in lines
    assert "status ['run', 'base2new'] 1" in proc.stderr  # a failed run: exit status 1

"""The local launcher's long-lived workers give the same results as one fresh `python train.py` per run,
respect the stages' dependencies, isolate failures and retry them when run again."""
import glob
import json
import os
import subprocess
import sys

import torch

from vlprompt.launchers.local import cpu_threads, launch
from vlprompt.protocols import all_runs, plan, resolve_argv

from helpers import REPO_ROOT, fast_opts


def tiny_base2new(root, data, clip, datasets=("caltech101",)):
    return plan("base2new", "maple", data, str(root), datasets=list(datasets), seeds=[1, 2],
                opts=fast_opts(clip, epochs=1), variant="", repo=REPO_ROOT)


def checkpoints(run_dir):
    files = sorted(glob.glob(os.path.join(run_dir, "*", "model.pth.tar-*")))
    assert files, run_dir
    return {os.path.relpath(f, run_dir): torch.load(f, map_location="cpu", weights_only=False) for f in files}


def assert_bit_identical(a, b, where):
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape, where
        assert torch.equal(a, b), where
    elif isinstance(a, dict):
        assert sorted(a) == sorted(b), where
        for key in a:
            assert_bit_identical(a[key], b[key], f"{where}/{key}")


def test_long_lived_workers_give_the_results_of_one_process_per_run(tmp_path, caltech_root, tiny_clip_path):
    workers = tiny_base2new(tmp_path / "workers", caltech_root, tiny_clip_path)
    lines = []
    assert launch(workers, slots=["", ""], log_dir=str(tmp_path / "logs"), repo=REPO_ROOT, out=lines.append) == []
    assert sum(line.startswith("  done") for line in lines) == 4

    fresh = tiny_base2new(tmp_path / "fresh", caltech_root, tiny_clip_path)
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", str(cpu_threads(2))))  # as the workers
    for run in all_runs(fresh):  # stage order: the trainings, then the tests
        subprocess.run([sys.executable, os.path.join(REPO_ROOT, "train.py"), *resolve_argv(run.argv)], check=True,
                       capture_output=True, cwd=tmp_path, env=env)

    for a, b in zip(all_runs(workers), all_runs(fresh)):
        with open(os.path.join(a.output_dir, "result.json")) as f:
            result_a = json.load(f)
        with open(os.path.join(b.output_dir, "result.json")) as f:
            result_b = json.load(f)
        assert result_a["metrics"] == result_b["metrics"], a.name
        assert result_a["identity"]["fingerprint"] == result_b["identity"]["fingerprint"], a.name
        if a.name.endswith("-train"):
            assert_bit_identical(checkpoints(a.output_dir), checkpoints(b.output_dir), a.name)


def test_a_failed_training_fails_its_test_at_once_and_a_rerun_retries_only_the_failures(tmp_path, caltech_root,
                                                                                         tiny_clip_path):
    # dtd has no data under this root: its trainings fail, their tests are not run, caltech101's runs go on
    stages = tiny_base2new(tmp_path / "out", caltech_root, tiny_clip_path, datasets=("dtd", "caltech101"))
    log_dir = str(tmp_path / "logs")
    failures = launch(stages, slots=[""], log_dir=log_dir, repo=REPO_ROOT, out=lambda line: None)
    assert [f.name for f in failures] == ["dtd-seed1-train", "dtd-seed2-train", "dtd-seed1-test", "dtd-seed2-test"]
    assert failures[0].log == os.path.join(log_dir, "dtd-seed1-train.log")
    assert "DescribableTextures: dataset folder not found" in open(failures[0].log).read()
    assert failures[2].message == "not run: dtd-seed1-train failed" and failures[2].log == failures[0].log
    for run in all_runs(stages):
        assert os.path.isfile(os.path.join(run.output_dir, "result.json")) == run.name.startswith("caltech101")

    lines = []
    again = launch(stages, slots=[""], log_dir=log_dir, repo=REPO_ROOT, out=lines.append)
    assert [f.name for f in again] == [f.name for f in failures]  # retried, and failed again
    assert open(os.path.join(log_dir, "caltech101-seed1-train.log")).read().count("so skip this job") == 1

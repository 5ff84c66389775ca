"""A run's state from its output tree (vlprompt/launchers/base.py), and train.py run in this process."""
import json
import os

import pytest

from helpers import read_result, REPO_ROOT, fast_opts
from vlprompt.launchers.base import DONE, FAILED, PENDING, RUNNING, Run, is_finished, run_in_process, run_state
from vlprompt.run_dir import RunLock


def write(path, data):
    with open(path, "w") as f:
        json.dump(data, f)


def test_states_come_from_identity_result_and_lock(tmp_path):
    run = Run("r", [], str(tmp_path / "r"))
    assert run_state(run).state == PENDING
    os.makedirs(run.output_dir)
    write(os.path.join(run.output_dir, "identity.json"), {"fingerprint": "a"})
    state = run_state(run)
    assert (state.state, state.log) == (FAILED, os.path.join(run.output_dir, "log.txt"))
    with RunLock(run.output_dir):  # a live holder (this process, through another open file)
        assert (run_state(run).state, run_state(run).pid) == (RUNNING, str(os.getpid()))
    write(os.path.join(run.output_dir, "result.json"), {"identity": {"fingerprint": "b"}})  # another identity's
    assert run_state(run).state == FAILED and not is_finished(run.output_dir)
    write(os.path.join(run.output_dir, "result.json"), {"identity": {"fingerprint": "a"}})
    assert run_state(run).state == DONE and is_finished(run.output_dir)


def test_run_in_process_runs_train_py(tmp_path, caltech_root, tiny_clip_path):
    out = tmp_path / "run"
    argv = ["--root", caltech_root, "--seed", "1", "--trainer", "CoOp",
            "--config-file", os.path.join(REPO_ROOT, "configs/trainers/CoOp/vit_b16_ep50.yaml"),
            "--dataset-config-file", os.path.join(REPO_ROOT, "configs/datasets/caltech101.yaml"),
            "--output-dir", str(out), *fast_opts(tiny_clip_path, epochs=1), "DATASET.NUM_SHOTS", "1"]
    run = Run("caltech101-seed1", argv, str(out))
    result = run_in_process(run, repo=REPO_ROOT)  # the library's entry point, with the run's RunSpec
    assert result.output_dir == str(out) and result.metrics["accuracy"] == read_result(out)["metrics"]["accuracy"]
    assert run_state(run).state == DONE


def test_a_run_that_failed_before_its_identity_is_failed_not_pending(tmp_path, caltech_root):
    """A run stopped by a bad option before train.py writes identity.json: the local launcher's log makes it
    failed (with that log) in --status; without a launcher log it is pending."""
    from vlprompt.launchers.local import launch
    from vlprompt.runner import status

    out, log_dir = tmp_path / "run", tmp_path / "logs"
    argv = ["--root", caltech_root, "--trainer", "NoSuchTrainer", "--output-dir", str(out),
            "--dataset-config-file", os.path.join(REPO_ROOT, "configs/datasets/caltech101.yaml")]
    run = Run("bad", argv, str(out))
    assert run_state(run, str(log_dir / "bad.log")).state == PENDING
    [failure] = launch([[run]], log_dir=str(log_dir), repo=REPO_ROOT, out=lambda line: None)
    assert failure.name == "bad" and not (out / "identity.json").exists()
    assert "NoSuchTrainer" in (log_dir / "bad.log").read_text()
    lines = []
    counts = status([[run]], log_dir=str(log_dir), out=lines.append)
    assert counts["failed"] == 1 and lines[0] == f"  failed   bad  log: {log_dir / 'bad.log'}"
    assert run_state(run).state == PENDING  # what the output tree alone says


def test_a_slurm_run_whose_job_ended_before_its_identity_is_failed_with_the_task_log(tmp_path):
    from vlprompt.launchers import slurm

    output = tmp_path / "output"
    runs = [Run("a", [], str(output / "a")), Run("b", [], str(output / "b")), Run("c", [], str(output / "c"))]
    os.makedirs(output / "slurm" / "logs" / "41_0")
    (output / "slurm" / "logs" / "41_0" / "41_0_0_log.out").write_text("error: ...\n")
    write(str(output / "slurm" / "submissions.json"), {"a": {"job": "41_0"}, "b": {"job": "41_1"}})
    states = slurm.status([runs], str(output), jobs={"41_1": "PENDING"})  # a's task ended, b's is queued
    assert (states["a"].state, states["a"].log) == (FAILED, str(output / "slurm/logs/41_0/41_0_0_log.out"))
    assert (states["b"].state, states["b"].scheduler) == (PENDING, "PENDING")
    assert states["c"].state == PENDING and states["c"].job is None  # never submitted
    assert slurm.status([runs], str(output), jobs=None)["a"].state == PENDING  # squeue unknown: no guess


def test_the_scheduler_is_squeue_then_sacct_for_the_jobs_that_left_the_queue(monkeypatch):
    from vlprompt.launchers.slurm import scheduler

    outputs, calls = {"squeue": "41_1|RUNNING\n42_[0-3%2]|PENDING\n",
                      "sacct": "41_0|COMPLETED\n41_2|CANCELLED by 0\n40|TIMEOUT\n"}, []

    def query(argv):
        calls.append(argv)
        return outputs[argv[0]]

    monkeypatch.setattr(scheduler, "_query", query)
    monkeypatch.setattr(scheduler, "_sacct_works", [None])
    jobs = scheduler.job_states(["41_0", "41_1", "41_2", "42_3", "40"])
    assert [scheduler.state_of(jobs, job) for job in ("41_0", "41_1", "41_2", "42_3", "42_5", "40")] == [
        "COMPLETED", "RUNNING", "CANCELLED", "PENDING", None, "TIMEOUT"]
    assert calls[1] == ["sacct", "-X", "-n", "-P", "-o", "JobID,State", "-j", "40,41"]  # only what squeue lacks
    outputs["sacct"] = None  # a cluster without accounting: sacct fails once, and is not asked again
    calls.clear()
    assert scheduler.job_states(["40"]) == {"41_1": "RUNNING", "42_[0-3%2]": "PENDING"}
    assert scheduler.job_states(["40"]) == {"41_1": "RUNNING", "42_[0-3%2]": "PENDING"}
    assert [argv[0] for argv in calls] == ["squeue", "sacct", "squeue"]
    outputs["squeue"] = None
    assert scheduler.job_states(["40"]) is None


def submitted_run(output):
    """Run "a" under `output`: its identity written and its Slurm submission recorded as job 41_0."""
    run = Run("a", [], str(output / "a"))
    os.makedirs(run.output_dir)
    write(os.path.join(run.output_dir, "identity.json"), {"fingerprint": "f"})
    os.makedirs(output / "slurm")
    write(str(output / "slurm" / "submissions.json"), {"a": {"job": "41_0"}})
    return run


def test_slurm_status_believes_the_scheduler_where_the_tree_cannot_know(tmp_path):
    """A directory that looks failed from here (its lock invisible: node-local flock) is running while its job
    runs; a record of a holder on another node whose job has ended is not running any more."""
    from vlprompt.launchers import slurm

    output = tmp_path / "output"
    run = submitted_run(output)
    state = lambda jobs: slurm.status([[run]], str(output), jobs=jobs)["a"]  # noqa: E731
    assert (state({}).state, state({}).log) == (FAILED, os.path.join(run.output_dir, "log.txt"))
    assert state({"41_0": "RUNNING"}).state == RUNNING and slurm.in_flight(state({"41_0": "RUNNING"}))
    assert state({"41_0": "PENDING"}).state == PENDING and slurm.in_flight(state({"41_0": "PENDING"}))  # requeued
    (output / "a" / ".vlprompt.lock").write_text("4242 node7\n")  # held on another node, heartbeat fresh
    assert state(None).state == RUNNING and state({"41_0": "RUNNING"}).state == RUNNING
    assert state({}).state == FAILED and not slurm.in_flight(state({}))  # its job has ended


def test_wait_retries_a_failing_squeue_and_announces_each_run_that_ends(tmp_path, monkeypatch):
    from vlprompt.launchers.slurm import watch as following
    from vlprompt.launchers.slurm.options import SlurmLauncherError

    output = tmp_path / "output"
    run = submitted_run(output)
    looks = [None, {"41_0": "RUNNING"}, {"41_0": "RUNNING"}, {}]
    monkeypatch.setattr(following, "submitted_jobs", lambda out: looks.pop(0))
    now, lines = [0.0], []
    states = following.follow([[run]], str(output), poll_s=30, out=lines.append, sleep=lambda s: now.__setitem__(
        0, now[0] + s), clock=lambda: now[0])
    assert states["a"].state == FAILED and looks == [] and now[0] == 90.0  # asked every 30 s
    assert lines == ["WARNING: squeue failed; asking again in 30 s",
                     f"  FAILED a (log: {os.path.join(run.output_dir, 'log.txt')})"]
    monkeypatch.setattr(following, "submitted_jobs", lambda out: None)
    with pytest.raises(SlurmLauncherError, match="^squeue failed 5 times in a row: cannot follow the jobs"):
        following.follow([[run]], str(output), poll_s=1, out=lines.append, sleep=lambda s: None)

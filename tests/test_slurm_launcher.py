"""The Slurm launcher (vlprompt/launchers/slurm.py) against a real single-node Slurm cluster
(tests/slurm_cluster.py: Debian's slurm-wlm and munge, started by the `slurm_cluster` fixture).

Runs are tiny CoOp trainings on the generated Caltech101 (base classes) and their evaluations on the
new classes. Nothing here waits for a fixed time: the run that is cancelled "mid-way" is held there by a
named pipe in place of its few-shot cache file (train.py has claimed its directory, then blocks opening
the pipe), so the cancellation always finds it running; every wait is for a state, bounded generously.
"""
import json
import os
import shutil

import pytest

from helpers import REPO_ROOT, fast_opts
from vlprompt.launchers import slurm
from vlprompt.launchers.base import DONE, FAILED, PENDING, RUNNING, Run, is_finished, run_state

pytestmark = pytest.mark.slurm
submitit = pytest.importorskip("submitit", reason="the Slurm launcher needs submitit: pip install 'vlprompt[slurm]'")

COOP_CONFIG = os.path.join(REPO_ROOT, "configs/trainers/CoOp/vit_b16_ep50.yaml")
CALTECH_CONFIG = os.path.join(REPO_ROOT, "configs/datasets/caltech101.yaml")
WAIT_S = 300  # per submission: far above what the runs need (a few seconds each)


def coop_argv(root, out, clip, seed, *extra):
    return ["--root", str(root), "--seed", str(seed), "--trainer", "CoOp", "--config-file", COOP_CONFIG,
            "--dataset-config-file", CALTECH_CONFIG, "--output-dir", str(out), *map(str, extra),
            *fast_opts(clip, epochs=1), "DATASET.NUM_SHOTS", "2"]


def train_and_test(root, output, clip, seed, data_root=None):
    """(training run on the base classes, its test on the new classes), as a base-to-new protocol has."""
    train_dir, test_dir = output / f"train/seed{seed}", output / f"test/seed{seed}"
    train = Run(f"caltech101-seed{seed}-train", coop_argv(data_root or root, train_dir, clip, seed,
                                                          "DATASET.SUBSAMPLE_CLASSES", "base"), str(train_dir))
    test = Run(f"caltech101-seed{seed}-test",
               coop_argv(root, test_dir, clip, seed, "--eval-only", "--model-dir", train_dir, "--load-epoch", 1,
                         "DATASET.SUBSAMPLE_CLASSES", "new"), str(test_dir), after=[train.name])
    return train, test


def identity(run_dir):
    with open(os.path.join(run_dir, "identity.json")) as f:
        return json.load(f)


def result(run_dir):
    with open(os.path.join(run_dir, "result.json")) as f:
        return json.load(f)


def wait_for(cluster, submission):
    assert slurm.wait(submission.job_ids, timeout=WAIT_S, poll=1), (
        f"jobs {submission.job_ids} still queued after {WAIT_S} s: {cluster.queue()}\n{cluster.diagnostics()}")


def task_logs(output):
    """The array tasks' stdout (submitit's folder), for failure messages."""
    logs = []
    for folder, _, files in os.walk(os.path.join(output, "slurm", "logs")):
        for name in sorted(files):
            if name.endswith(".out"):
                with open(os.path.join(folder, name), errors="replace") as f:
                    logs.append(f"--- {name}\n{f.read()[-3000:]}")
    return "\n".join(logs)


def test_options_are_translated_to_sbatch_parameters():
    assert [slurm.time_minutes(t) for t in (90, "90", "1:30:00", "2-00", "1-01:00:30", "10:30")] == [
        90, 90, 90, 2880, 1501, 11]
    assert slurm.sbatch_parameters(["--qos=high", "#SBATCH --constraint a100", "exclusive"]) == {
        "qos": "high", "constraint": "a100", "exclusive": True}
    params = slurm._executor_parameters(slurm.SlurmOptions(partition="gpu", time="4:00:00", gpus_per_job=1,
                                                           cpus_per_job=8, mem="32G", account="lab",
                                                           array_parallelism=4, sbatch=["--qos=high"],
                                                           setup=["module load cuda"]), "afterany:12")
    assert params == {"job_name": "vlprompt", "time": 240, "nodes": 1, "ntasks_per_node": 1, "stderr_to_stdout": True,
                      "partition": "gpu", "gpus_per_node": 1, "cpus_per_task": 8, "mem": "32G", "account": "lab",
                      "array_parallelism": 4, "setup": ["module load cuda"], "dependency": "afterany:12",
                      "additional_parameters": {"qos": "high"}}
    with pytest.raises(slurm.SlurmLauncherError):
        slurm.time_minutes("soon")


def test_a_protocol_runs_on_slurm_resumes_after_a_cancelled_job_and_reports_status(
        slurm_cluster, tmp_path, caltech_root, tiny_clip_path):
    output = tmp_path / "output"
    options = slurm.SlurmOptions(time=30, cpus_per_job=1, group=2, job_name="vlprompt-test")
    train1, test1 = train_and_test(caltech_root, output, tiny_clip_path, 1)
    train2, test2 = train_and_test(caltech_root, output, tiny_clip_path, 2)
    stages = [[train1, train2], [test1, test2]]

    # 1. Two stages, two runs each, grouped two per array task: one task per stage.
    first = slurm.submit(stages, str(output), options, repo=REPO_ROOT)
    assert [s.groups for s in first.stages] == [[[train1.name, train2.name]], [[test1.name, test2.name]]]
    assert first.stages[0].dependency is None and first.stages[1].dependency == f"afterany:{first.stages[0].array_id}"
    wait_for(slurm_cluster, first)
    states = slurm.status(stages, str(output))
    assert {name: s.state for name, s in states.items()} == dict.fromkeys(states, DONE), task_logs(output)
    for run in (train1, train2, test1, test2):
        recorded = identity(run.output_dir)
        assert result(run.output_dir)["identity"]["fingerprint"] == recorded["fingerprint"]
        assert recorded["seed"] == int(run.name.split("seed")[1].split("-")[0])
        assert recorded["kind"] == ("eval" if run.after else "train")
    for train, test in ((train1, test1), (train2, test2)):
        assert identity(test.output_dir)["model"]["trained"]["fingerprint"] == identity(train.output_dir)["fingerprint"]
        assert result(test.output_dir)["subsample"] == "new" and result(train.output_dir)["subsample"] == "base"
    # The test stage started after the training stage had finished (the dependency): every test claimed its
    # directory (identity.json) after the last training result was written.
    last_training = max(os.stat(os.path.join(r.output_dir, "result.json")).st_mtime_ns for r in (train1, train2))
    assert all(os.stat(os.path.join(r.output_dir, "identity.json")).st_mtime_ns >= last_training for r in (test1, test2))
    # Nothing left to do: a second submission submits nothing.
    again = slurm.submit(stages, str(output), options, repo=REPO_ROOT)
    assert again.stages == [] and set(again.skipped) == {r.name for st in stages for r in st}

    # 2. A third seed, next to a run that fails (its data root does not exist) in the same array task. The
    # seed-3 training reads its data from a copy whose few-shot cache file is a named pipe: it claims its
    # directory, then blocks there until its job is cancelled.
    data3 = tmp_path / "data3"
    shutil.copytree(caltech_root, data3)
    fewshot = data3 / "caltech-101" / "split_fewshot"
    fewshot.mkdir(exist_ok=True)
    (fewshot / "shot_2-seed_3.pkl").unlink(missing_ok=True)
    os.mkfifo(fewshot / "shot_2-seed_3.pkl")
    train3, test3 = train_and_test(caltech_root, output, tiny_clip_path, 3, data_root=data3)
    broken = Run("broken-seed1-train", coop_argv(tmp_path / "no-such-data", output / "broken", tiny_clip_path, 1),
                 str(output / "broken"))
    plan = [[train1, train2, broken, train3], [test1, test2, test3]]
    third = slurm.submit(plan, str(output), options, repo=REPO_ROOT)
    assert [s.groups for s in third.stages] == [[[broken.name, train3.name]], [[test3.name]]]
    [task] = third.stages[0].job_ids
    identity3 = os.path.join(train3.output_dir, "identity.json")
    assert _wait_until(lambda: os.path.exists(identity3) or not slurm_cluster.queue().get(task)), task_logs(output)
    assert os.path.exists(identity3), f"the seed-3 training never started:\n{task_logs(output)}"
    assert run_state(broken).state == FAILED  # the first run of the task failed; the task went on to the next
    # While it is held there: running (its lock is held), its test waits in the queue (pending), and a new
    # submission leaves both alone instead of submitting them twice.
    states = slurm.status(plan, str(output))
    assert (states[train3.name].state, states[train3.name].job, states[train3.name].scheduler) == (RUNNING, task, "RUNNING")
    assert (states[test3.name].state, states[test3.name].scheduler) == (PENDING, "PENDING")
    retry = [[train1, train2, train3], [test1, test2, test3]]  # the plan without the broken run
    during = slurm.submit(retry, str(output), options, repo=REPO_ROOT)
    assert during.stages == [] and set(during.skipped) == {r.name for st in retry for r in st}
    slurm_cluster.run(["scancel", task.split("_")[0]])
    wait_for(slurm_cluster, third)

    states = slurm.status(plan, str(output))
    assert {name: s.state for name, s in states.items()} == {
        train1.name: DONE, train2.name: DONE, broken.name: FAILED, train3.name: FAILED,
        test1.name: DONE, test2.name: DONE, test3.name: FAILED}, task_logs(output)
    assert states[train3.name].log == os.path.join(train3.output_dir, "log.txt") and os.path.isfile(states[train3.name].log)
    assert states[broken.name].log == os.path.join(broken.output_dir, "log.txt")
    assert states[train3.name].job == task and states[train3.name].scheduler is None  # no longer queued
    assert not os.path.exists(os.path.join(test3.output_dir, "identity.json"))  # it refused to start without its model
    logs = task_logs(output)
    assert "caltech101-seed3-test: not run, it needs caltech101-seed3-train, which did not finish" in logs
    assert "1 of 1 runs of this task failed" in logs  # that task ended with an error, which Slurm records
    [test_task] = third.stages[1].job_ids
    assert "JobState=FAILED" in slurm_cluster.run(["scontrol", "show", "job", test_task]).stdout
    # test3 never wrote its identity, but its job ran and ended: failed, with the task's log that says why
    assert states[test3.name].log == slurm.task_log(str(output), test_task)
    assert "it needs caltech101-seed3-train, which did not finish" in open(states[test3.name].log).read()

    # 3. Re-running the launcher (the broken run left out of the plan) submits only the unfinished runs, and
    # the cancelled training resumes and completes.
    (fewshot / "shot_2-seed_3.pkl").unlink()
    plan = retry
    fourth = slurm.submit(plan, str(output), options, repo=REPO_ROOT)
    assert [s.groups for s in fourth.stages] == [[[train3.name]], [[test3.name]]]
    assert set(fourth.skipped) == {train1.name, train2.name, test1.name, test2.name}
    wait_for(slurm_cluster, fourth)
    states = slurm.status(plan, str(output))
    assert {name: s.state for name, s in states.items()} == dict.fromkeys(states, DONE), task_logs(output)
    assert is_finished(test3.output_dir)
    assert identity(test3.output_dir)["model"]["trained"]["fingerprint"] == identity(train3.output_dir)["fingerprint"]
    # The finished runs of the first submission were not run again.
    assert result(train1.output_dir)["finished_at"] <= result(train3.output_dir)["finished_at"]
    assert len(slurm.read_submissions(str(output))) == 7


def _wait_until(condition, timeout=WAIT_S, poll=0.2):
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(poll)
    return True

"""The Slurm launcher (vlprompt/launchers/slurm/) against a real single-node Slurm cluster
(tests/slurm_cluster.py: Debian's slurm-wlm and munge, started by the `slurm_cluster` fixture).

Runs are tiny CoOp trainings on the generated Caltech101 (base classes) and their evaluations on the
new classes. Nothing here waits for a fixed time: a run that must be interrupted "mid-way" is held there by a
named pipe it blocks on (in place of its few-shot cache file: train.py has claimed its directory; or the
PausingCoOp of tests/launcher_codebase, at the first batch of its second epoch), so the cancellation or the
preemption signal always finds it running; every wait is for a state, bounded generously.
"""
import json
import os
import shlex
import shutil
import subprocess
import sys

import pytest

from helpers import REPO_ROOT, assert_bit_identical, checkpoints, fast_opts, git_head, wait_until
from vlprompt.launchers import base, slurm
from vlprompt.launchers.base import DONE, FAILED, PENDING, RUNNING, Run, is_finished, run_state

pytestmark = pytest.mark.slurm
submitit = pytest.importorskip("submitit", reason="the Slurm launcher needs submitit: pip install 'vlprompt[slurm]'")

COOP_CONFIG = os.path.join(REPO_ROOT, "configs/trainers/CoOp/vit_b16_ep50.yaml")
CALTECH_CONFIG = os.path.join(REPO_ROOT, "configs/datasets/caltech101.yaml")
LAUNCHER_CODEBASE = os.path.join(REPO_ROOT, "tests", "launcher_codebase")  # CoOp and trainers that misbehave
WAIT_S = 300  # per submission: far above what the runs need (a few seconds each)
CPU = dict(time=30, cpus_per_job=1, gpus_per_job=0)  # the test cluster has no GPUs: say so (the default is 1)


def coop_argv(root, out, clip, seed, *extra, trainer="CoOp", epochs=1):
    return ["--root", str(root), "--seed", str(seed), "--trainer", trainer, "--config-file", COOP_CONFIG,
            "--dataset-config-file", CALTECH_CONFIG, "--output-dir", str(out), *map(str, extra),
            *fast_opts(clip, epochs=epochs), "DATASET.NUM_SHOTS", "2"]


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


def task_logs(output, tail=3000):
    """The array tasks' stdout (submitit's folder), their last `tail` characters each (None: all)."""
    logs = []
    for folder, _, files in os.walk(os.path.join(output, "slurm", "logs")):
        for name in sorted(files):
            if name.endswith(".out"):
                with open(os.path.join(folder, name), errors="replace") as f:
                    logs.append(f"--- {name}\n{f.read()[-tail if tail else 0:]}")
    return "\n".join(logs)


def test_options_are_translated_to_sbatch_parameters():
    assert [slurm.time_minutes(t) for t in (90, "90", "1:30:00", "2-00", "1-01:00:30", "10:30")] == [
        90, 90, 90, 2880, 1501, 11]
    assert slurm.sbatch_parameters(["--qos=high", "#SBATCH --constraint a100", "exclusive"]) == {
        "qos": "high", "constraint": "a100", "exclusive": True}
    params = slurm.executor_parameters(slurm.SlurmOptions(partition="gpu", time="4:00:00", gpus_per_job=1,
                                                           cpus_per_job=8, mem="32G", account="lab",
                                                           array_parallelism=4, sbatch=["--qos=high"],
                                                           setup=["module load cuda"]), "afterany:12")
    assert params == {"job_name": "vlprompt", "time": 240, "nodes": 1, "ntasks_per_node": 1, "stderr_to_stdout": True,
                      "partition": "gpu", "gpus_per_node": 1, "cpus_per_task": 8, "mem": "32G", "account": "lab",
                      "array_parallelism": 4, "setup": ["module load cuda"], "dependency": "afterany:12",
                      "additional_parameters": {"qos": "high"}}
    with pytest.raises(slurm.SlurmLauncherError, match="^--time 'soon': use minutes, MM:SS, HH:MM:SS"):
        slurm.time_minutes("soon")
    with pytest.raises(slurm.SlurmLauncherError, match="give one option per line"):
        slurm.sbatch_parameters(["--comment=two words"])
    # The GPU request is never silently 0: one per job unless --gpus-per-job 0 says CPU.
    assert slurm.SlurmOptions().gpus_per_job == 1
    assert slurm.executor_parameters(slurm.SlurmOptions(), None)["gpus_per_node"] == 1
    assert "gpus_per_node" not in slurm.executor_parameters(slurm.SlurmOptions(gpus_per_job=0), None)
    assert slurm.options.describe_resources(slurm.SlurmOptions(gpus_per_job=0)) == \
        "CPU jobs (--gpus-per-job 0), time limit 120 min"
    assert slurm.options.describe_resources(slurm.SlurmOptions(gpus_per_job=2, time="1:00:00", partition="gpu")) == \
        "2 GPUs per job, time limit 60 min, partition gpu"


def test_the_documented_slurm_example_parses_as_written():
    """The Slurm example of docs/PROTOCOLS.md (the README's `--launcher slurm` line links there):
    `--sbatch "--qos=normal"` (a value that starts with "-") and its other options."""
    from vlprompt.cli import parse_args

    with open(os.path.join(REPO_ROOT, "docs", "PROTOCOLS.md")) as f:
        readme = f.read()
    start = readme.index("vlprompt run base2new maple --launcher slurm")
    command = readme[start:readme.index("```", start)].replace("\\\n", " ")
    args = parse_args(shlex.split(command)[1:])
    assert args.sbatch == ["--qos=normal"] and args.setup == ["module load cuda"]
    options = slurm.options_from_args(args)
    params = slurm.executor_parameters(options, None)
    assert params["additional_parameters"] == {"qos": "normal"} and params["gpus_per_node"] == 1
    assert (params["time"], params["partition"], params["mem"], options.group) == (240, "gpu", "32G", 3)
    args = parse_args(["run", "base2new", "maple", "--sbatch", "--qos=high", "--sbatch", "--exclusive", "--setup",
                       "-x", "--launcher", "slurm", "--", "--sbatch", "--qos=low"])
    assert (args.sbatch, args.setup, args.opts) == (["--qos=high", "--exclusive"], ["-x"], ["--sbatch", "--qos=low"])


def test_a_protocol_runs_on_slurm_resumes_after_a_cancelled_job_and_reports_status(
        slurm_cluster, tmp_path, caltech_root, tiny_clip_path):
    output = tmp_path / "output"
    options = slurm.SlurmOptions(**CPU, group=2, job_name="vlprompt-test")
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
    assert wait_until(lambda: os.path.exists(identity3) or not slurm_cluster.queue().get(task)), task_logs(output)
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


def test_a_preempted_job_is_requeued_and_its_run_resumes_bit_identical_and_is_never_submitted_twice(
        slurm_cluster, tmp_path, caltech_root, tiny_clip_path, monkeypatch):
    """Two identical 3-epoch runs in one array: one left alone, one held at the first batch of its second epoch
    (PausingCoOp, tests/launcher_codebase) and sent Slurm's preemption notice (SIGUSR2, as `--signal USR2@90`
    and preemption send it). submitit calls GroupTask.checkpoint and requeues the task; on its next start the
    run resumes from its epoch-1 checkpoint and ends bit-identical to the uninterrupted one."""
    output = tmp_path / "output"
    plain, requeued = output / "uninterrupted", output / "requeued"
    runs = [Run(name, coop_argv(caltech_root, folder, tiny_clip_path, 1, trainer="PausingCoOp", epochs=3), str(folder))
            for name, folder in (("uninterrupted", plain), ("requeued", requeued))]
    output.mkdir()
    pause = f"{requeued}.pause"
    os.mkfifo(pause)
    options = slurm.SlurmOptions(**CPU, job_name="vlprompt-requeue")
    submission = slurm.submit([runs], str(output), options, repo=LAUNCHER_CODEBASE)
    [_, task] = submission.stages[0].job_ids
    reached = f"{pause}.reached"
    assert wait_until(lambda: os.path.exists(reached) or task not in slurm_cluster.queue()), task_logs(output)
    assert os.path.exists(reached), f"the run never reached its pause:\n{task_logs(output)}"

    # Held mid-training. Where the run directory's lock is not visible from this host (node-local flock), its
    # directory looks failed (identity.json, no result, no holder): its job, running, says otherwise, and a new
    # submission leaves it alone.
    monkeypatch.setattr(base, "lock_holder", lambda directory: None)
    state = slurm.status([runs], str(output))["requeued"]
    assert (state.state, state.job, state.scheduler) == (RUNNING, task, "RUNNING")
    again = slurm.submit([runs], str(output), options, repo=LAUNCHER_CODEBASE)
    assert again.stages == [] and again.skipped["requeued"] == f"running (job {task}: RUNNING)"
    monkeypatch.undo()

    os.unlink(pause)  # the resumed run goes on at its next start
    slurm_cluster.run(["scancel", "--signal=USR2", task])
    wait_for(slurm_cluster, submission)
    states = slurm.status([runs], str(output))
    assert {name: s.state for name, s in states.items()} == {"uninterrupted": DONE, "requeued": DONE}, task_logs(output)
    assert "Restarts=1" in slurm_cluster.run(["scontrol", "show", "job", task]).stdout  # requeued once
    with open(slurm.task_log(str(output), task)) as f:
        log = f.read()
    assert log.index("this task is requeued") < log.index("requeued: interrupted for the requeue") < log.index(
        f"job {task} (restart 1)") < log.index("will resume training")
    assert result(requeued)["resumed_from_epoch"] == 1 and not result(plain).get("resumed_from_epoch")
    assert result(requeued)["metrics"] == result(plain)["metrics"]
    a, b = checkpoints(str(plain)), checkpoints(str(requeued))
    assert sorted(a) == sorted(b) == ["prompt_learner/model.pth.tar-3"]
    assert_bit_identical(a, b, "requeued")


def vlprompt_run(*args, cwd, env=None, timeout=600):
    """`python -m vlprompt run ...` as a user types it."""
    return subprocess.run([sys.executable, "-m", "vlprompt", "run", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, env=dict(os.environ, VARIANT="", **(env or {})))


def test_wait_follows_the_jobs_then_prints_the_table_and_fails_if_a_run_failed(slurm_cluster, tmp_path, caltech_root,
                                                                                tiny_clip_path):
    """`--wait` blocks until every stage has ended (a line per run that ends), prints the table and exits 1
    because dtd (no data under this root) failed. The README's `--sbatch "--qos=normal"` goes to sbatch; each run
    records the codebase's commit and whether it was dirty."""
    output = tmp_path / "output"
    proc = vlprompt_run("base2new", "maple", "--datasets", "caltech101", "dtd", "--seeds", "1", "--launcher", "slurm",
                        "--wait", "--poll-interval", "1", "--gpus-per-job", "0", "--cpus-per-job", "1", "--time", "30",
                        "--sbatch", "--qos=normal", "--root", caltech_root, "--output", output, "--repo", REPO_ROOT,
                        "--", *fast_opts(tiny_clip_path, epochs=1), cwd=REPO_ROOT, env={"PYTHONPATH": REPO_ROOT})
    text = proc.stdout + proc.stderr
    assert proc.returncode == 1, text
    lines = proc.stdout.splitlines()
    assert "each job: CPU jobs (--gpus-per-job 0), time limit 30 min" in lines
    assert any(line.startswith("  done   caltech101-seed1-train [job ") for line in lines), text
    assert any(line.startswith("  done   caltech101-seed1-test [job ") for line in lines), text
    assert any(line.startswith("  FAILED dtd-seed1-train ") for line in lines), text
    assert "| Caltech101 |" in proc.stdout and "2 runs failed:" in proc.stdout
    scripts = [os.path.join(folder, f) for folder, _, files in os.walk(output / "slurm" / "logs") for f in files
               if f.endswith("_submission.sh")]
    assert scripts and all("#SBATCH --qos=normal" in open(path).read() for path in scripts)
    head, dirty = git_head(REPO_ROOT)
    [train_dir] = [os.path.dirname(p) for p in _results(output) if "/train_base/caltech101/" in p]
    recorded = identity(train_dir)["recorded"]
    assert (recorded["commit"], recorded["dirty"], recorded["codebase"]) == (head, dirty, REPO_ROOT)


def _results(output):
    return [os.path.join(folder, "result.json") for folder, _, files in os.walk(output) if "result.json" in files]


CODE_PARTS = ("train.py", "trainers", "datasets", "configs", "vlprompt")


def test_frozen_code_is_what_queued_jobs_run_whatever_the_checkout_becomes(slurm_cluster, tmp_path, caltech_root,
                                                                            tiny_clip_path):
    """`--freeze-code`: a checkout (a git repository, one file edited) submits held jobs, then its library, trainer
    and config are broken; the released jobs run the copy made at submission, and record its commit and dirt."""
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    for part in CODE_PARTS:
        source = os.path.join(REPO_ROOT, part)
        if os.path.isdir(source):
            shutil.copytree(source, checkout / part, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, checkout / part)
    git = ["git", "-C", str(checkout), "-c", "user.name=vlprompt-test", "-c", "user.email=test@example.invalid"]
    for argv in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "the code"]):
        subprocess.run(git + argv, check=True, capture_output=True)
    with open(checkout / "train.py", "a") as f:
        f.write("# edited before the submission\n")
    head, dirty = git_head(checkout)
    assert dirty

    output = tmp_path / "output"
    proc = vlprompt_run("base2new", "maple", "--datasets", "caltech101", "--seeds", "1", "--launcher", "slurm",
                        "--freeze-code", "--sbatch", "--hold", "--gpus-per-job", "0", "--cpus-per-job", "1", "--time",
                        "30", "--root", caltech_root, "--output", output, "--repo", checkout, "--",
                        *fast_opts(tiny_clip_path, epochs=1), cwd=checkout, env={"PYTHONPATH": str(checkout)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "the jobs run from a frozen copy of the codebase: " in proc.stdout
    for path in ("vlprompt/launchers/slurm/job.py", "vlprompt/entry.py", "trainers/maple.py"):
        (checkout / path).write_text("raise RuntimeError('edited after the submission')\n")
    (checkout / "configs/trainers/MaPLe/vit_b16_c2_ep5_batch4_2ctx.yaml").write_text("OPTIM: [broken\n")

    jobs = sorted({entry["job"] for entry in slurm.read_submissions(str(output)).values()})
    [snapshot] = {entry["snapshot"] for entry in slurm.read_submissions(str(output)).values()}
    assert len(jobs) == 2 and all(slurm_cluster.queue()[job] == "PENDING" for job in jobs)
    slurm_cluster.run(["scontrol", "release", ",".join(job.split("_")[0] for job in jobs)])
    assert slurm.wait(jobs, timeout=WAIT_S, poll=1), slurm_cluster.queue()
    results = _results(output)
    assert len(results) == 2, task_logs(output)
    for path in results:
        recorded = identity(os.path.dirname(path))["recorded"]
        assert (recorded["codebase"], recorded["commit"], recorded["dirty"]) == (
            os.path.join(snapshot, "codebase"), head, True)
    logs = task_logs(output, tail=None)
    assert f"from {os.path.join(snapshot, 'lib', 'vlprompt')}, codebase {os.path.join(snapshot, 'codebase')}" in logs
    assert "edited after the submission" not in logs

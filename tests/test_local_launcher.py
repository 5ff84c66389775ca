"""The local launcher's long-lived workers give the same results as one fresh `python train.py` per run,
respect the stages' dependencies, isolate failures and retry them when run again; a worker is replaced after an
error that may have broken it, a hung run is stopped, the workers die with the launcher, and two launchers on
one output wait for each other's runs. Every wait is for a state (a lock held, a process gone), bounded."""
import json
import os
import re
import socket
import subprocess
import sys

from vlprompt.launchers.base import DONE, FAILED, RUNNING, Run, is_finished, run_state
from vlprompt.launchers.local import cpu_threads, launch
from vlprompt.protocols import all_runs, plan, resolve_argv

from helpers import REPO_ROOT, assert_bit_identical, checkpoints, fast_opts, git_head, wait_until


def tiny_base2new(root, data, clip, datasets=("caltech101",)):
    return plan("base2new", "maple", data, str(root), datasets=list(datasets), seeds=[1, 2],
                opts=fast_opts(clip, epochs=1), variant="", repo=REPO_ROOT)


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
        with open(os.path.join(a.output_dir, "identity.json")) as f:
            recorded = json.load(f)["recorded"]  # the code a worker ran: the checkout's commit, and its dirt
        assert (recorded["codebase"], recorded["commit"], recorded["dirty"]) == (REPO_ROOT, *git_head(REPO_ROOT)), a.name
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


# ------------------------------------------------------------------------------- faults, hangs, kills
# tests/launcher_codebase: the repository's codebase plus trainers that raise, segfault, hang or pause on purpose
LAUNCHER_CODEBASE = os.path.join(REPO_ROOT, "tests", "launcher_codebase")
COOP_CONFIG = os.path.join(REPO_ROOT, "configs/trainers/CoOp/vit_b16_ep50.yaml")
CALTECH_CONFIG = os.path.join(REPO_ROOT, "configs/datasets/caltech101.yaml")
HOST = socket.gethostname()


def coop_run(name, root, out, clip, trainer="CoOp"):
    argv = ["--root", str(root), "--seed", "1", "--trainer", trainer, "--config-file", COOP_CONFIG,
            "--dataset-config-file", CALTECH_CONFIG, "--output-dir", str(out), *fast_opts(clip, epochs=1),
            "DATASET.NUM_SHOTS", "1"]
    return Run(name, argv, str(out))


def worker_pid(log_dir, name):
    """The PID of the worker that ran `name` (its run log's first line names it)."""
    with open(os.path.join(log_dir, f"{name}.log")) as f:
        return int(re.search(r"\[worker PID (\d+),", f.read()).group(1))


def is_alive(pid):
    """A process with a thread still running (not gone, not a zombie left for a parent that does not reap it).
    Every thread counts: a killed process's main thread shows as a zombie while its other threads are still
    exiting, and they hold its open files (its lock) until the last one is done."""
    try:
        threads = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return False
    for tid in threads:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X"):
                    return True
        except OSError:
            pass  # that thread is gone
    return False


def test_a_worker_is_replaced_after_an_error_that_is_not_the_users_and_after_a_crash(tmp_path, caltech_root,
                                                                                     tiny_clip_path):
    runs = [coop_run("user-error", caltech_root, tmp_path / "user-error", tiny_clip_path, "NoSuchTrainer"),
            coop_run("raises", caltech_root, tmp_path / "raises", tiny_clip_path, "RaisingCoOp"),
            coop_run("segfaults", caltech_root, tmp_path / "segfaults", tiny_clip_path, "SegfaultingCoOp"),
            coop_run("ok", caltech_root, tmp_path / "ok", tiny_clip_path)]
    log_dir = str(tmp_path / "logs")
    lines = []
    failures = launch([runs], slots=[""], log_dir=log_dir, repo=LAUNCHER_CODEBASE, out=lines.append)
    assert [f.name for f in failures] == ["user-error", "raises", "segfaults"], lines
    assert failures[0].message.startswith("ConfigValueError: Trainer (--trainer / TRAINER.NAME): ")
    assert failures[1].message == "RuntimeError: RaisingCoOp: an error that is not the user's"
    assert failures[2].message == f"its worker died (killed by SIGSEGV); see {os.path.join(log_dir, 'worker-0.log')}"
    assert run_state(runs[3]).state == DONE and run_state(runs[2]).state == FAILED  # the crash left no lock behind
    pids = [worker_pid(log_dir, run.name) for run in runs]
    assert pids[0] == pids[1]  # after a user error the worker goes on...
    assert len(set(pids[1:])) == 3  # ...after an exception or a crash the next run gets a fresh process
    assert "RaisingCoOp: an error that is not the user's" in open(os.path.join(log_dir, "raises.log")).read()


def test_a_run_over_its_time_limit_is_stopped_with_its_worker_and_reported(tmp_path, caltech_root, tiny_clip_path):
    hang = coop_run("hangs", caltech_root, tmp_path / "hangs", tiny_clip_path, "HangingCoOp")
    timings = {}
    [failure] = launch([[hang]], slots=[""], log_dir=str(tmp_path / "logs"), repo=LAUNCHER_CODEBASE,
                       out=lambda line: None, run_timeout=2, timings=timings)
    assert (failure.name, failure.message) == ("hangs", "timed out after 2 s (--run-timeout): stopped with its worker")
    assert run_state(hang).state != RUNNING and not any(is_alive(pid) for pid in timings["workers"])


DRIVER = """
import json, sys
from vlprompt.launchers.base import Run
from vlprompt.launchers.local import launch
argv, out, log_dir, repo = json.loads(sys.argv[1])
launch([[Run("hangs", argv, out)]], slots=[""], log_dir=log_dir, repo=repo)
"""


def test_workers_die_with_their_launcher_even_when_it_is_killed(tmp_path, caltech_root, tiny_clip_path):
    hang = coop_run("hangs", caltech_root, tmp_path / "hangs", tiny_clip_path, "HangingCoOp")
    spec = json.dumps([hang.argv, hang.output_dir, str(tmp_path / "logs"), LAUNCHER_CODEBASE])
    driver = subprocess.Popen([sys.executable, "-c", DRIVER, spec], env=dict(os.environ, PYTHONPATH=REPO_ROOT),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        log = os.path.join(hang.output_dir, "log.txt")
        reached = lambda: os.path.isfile(log) and "HangingCoOp: hanging" in open(log).read()  # noqa: E731
        # running, and past claiming its directory (the hang is in its first training step)
        assert wait_until(lambda: (run_state(hang).state == RUNNING and reached()) or driver.poll() is not None)
        holder = run_state(hang).holder
        assert holder is not None and holder.host == HOST, "the hanging run never started"
        driver.kill()  # SIGKILL: the launcher cannot clean anything up
        driver.wait()
        assert wait_until(lambda: not is_alive(int(holder.pid)), timeout=60), "the worker outlived its launcher"
        # its lock went with it (the kernel drops an flock as the last thread closes its files): a re-run may take
        # the directory at once
        assert wait_until(lambda: run_state(hang).state == FAILED, timeout=10), run_state(hang)
    finally:
        if driver.poll() is None:
            driver.kill()


def test_two_launchers_on_one_output_wait_for_each_other_and_both_succeed(tmp_path, caltech_root, tiny_clip_path):
    """A run held by another live process is reported as held there and waited for, not failed."""
    from vlprompt.run_dir import RunLock
    from vlprompt.runner import plan_protocol

    out, opts = tmp_path / "output", fast_opts(tiny_clip_path, epochs=1)
    [train], [test] = plan_protocol("base2new", "maple", str(out), caltech_root, datasets=["caltech101"], seeds=[1],
                                    opts=opts, repo=REPO_ROOT, variant="")
    command = [sys.executable, "-m", "vlprompt", "run", "base2new", "maple", "--datasets", "caltech101", "--seeds", "1",
               "--gpus", "cpu", "--root", caltech_root, "--output", str(out), "--repo", REPO_ROOT, "--", *opts]
    env = dict(os.environ, VARIANT="", PYTHONPATH=REPO_ROOT)
    logs = [tmp_path / "launcher-a.out", tmp_path / "launcher-b.out"]
    launchers = []
    held = f"  held   {train.name}: running in PID {os.getpid()} on {HOST} (another launcher or script); waiting for it"
    lock = RunLock(train.output_dir).acquire()  # as if a third process ran the training
    try:
        for log in logs:
            with open(log, "w") as f:
                launchers.append(subprocess.Popen(command, stdout=f, stderr=subprocess.STDOUT, env=env, cwd=tmp_path))
            assert wait_until(lambda: held in log.read_text() or launchers[-1].poll() is not None), log.read_text()
            assert held in log.read_text().splitlines(), log.read_text()
    finally:
        lock.release()
    codes = [launcher.wait(timeout=600) for launcher in launchers]
    texts = [log.read_text() for log in logs]
    assert codes == [0, 0], texts
    assert all("FAILED" not in text and "in use by another run" not in text for text in texts), texts
    assert is_finished(train.output_dir) and is_finished(test.output_dir)

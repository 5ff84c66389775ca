"""A run's state from its output tree (vlprompt/launchers/base.py), and train.py run in this process."""
import json
import os

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

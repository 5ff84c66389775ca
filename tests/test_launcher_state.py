"""A run's state from its output tree (vlprompt/launchers/base.py), and train.py run in this process."""
import json
import os

from helpers import REPO_ROOT, fast_opts
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
    assert run_in_process(run, repo=REPO_ROOT) == 0
    assert run_state(run).state == DONE

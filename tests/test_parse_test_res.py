"""parse_test_res.py reads the originals' logs and ours, picks the latest run's log, and names runs
without a result instead of silently averaging fewer seeds."""
import io
import os
import time
from contextlib import redirect_stderr, redirect_stdout

import numpy as np
import pytest

import parse_test_res

NEW_DASSL = """epoch [5/5] batch [20/20] time 0.100 (0.110) data 0.000 (0.010) loss 0.1234 (0.2345) lr 1.2092e-03 eta 0:00:00
Checkpoint saved to output/x/MultiModalPromptLearner/model.pth.tar-5
Finish training
Deploy the last-epoch model
Evaluate on the *test* set
=> result
* total: 1,549
* correct: 1,500
* accuracy: {acc}%
* error: 3.2%
* macro_f1: {f1}%
Elapsed: 0:02:01
"""
OLD_DASSL = """epoch [5/5][20/20]\ttime 0.100 (0.110)\tdata 0.000 (0.010)\teta 0:00:00\tloss 0.1234 (0.2345)\tlr 1.209220e-03
Finished training
Do evaluation on test set
=> result
* total: 1,549
* correct: 1,500
* accuracy: {acc}%
* error: 3.17%
* macro_f1: {f1}%
"""
TEST_ONLY = """Loading weights to prompt_learner from "x/prompt_learner/model.pth.tar-10" (epoch = 10)
Evaluate on the *test* set
=> result
* total: 1,549
* correct: 1,500
* accuracy: {acc}%
* error: 3.2%
* macro_f1: {f1}%
"""


def write(path, text, age=0.0):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    stamp = time.time() - age
    os.utime(path, (stamp, stamp))


def parse(*args):
    """parse_test_res.py's main() with its command line; returns (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = parse_test_res.main([str(a) for a in args])
    return code, out.getvalue(), err.getvalue()


def test_reads_current_and_old_dassl_logs_with_both_end_signals(tmp_path):
    write(tmp_path / "seed1/log.txt", NEW_DASSL.format(acc="97.1", f1="96.0"))
    write(tmp_path / "seed2/log.txt", OLD_DASSL.format(acc="96.85", f1="95.10"))
    write(tmp_path / "seed3/log.txt", NEW_DASSL.format(acc="97.4", f1="96.3"))
    code, out, _ = parse(tmp_path)
    assert code == 0
    values = [97.1, 96.85, 97.4]
    assert f"file: {tmp_path / 'seed2/log.txt'}. accuracy: 96.85%. " in out
    assert f"* accuracy: {np.mean(values):.2f}% +- {np.std(values):.2f}%" in out
    code, out, _ = parse(tmp_path, "--ci95", "--keyword", "macro_f1")
    ci = 1.96 * np.std([96.0, 95.1, 96.3]) / np.sqrt(3)
    assert f"* macro_f1: {np.mean([96.0, 95.1, 96.3]):.2f}% +- {ci:.2f}%" in out


def test_test_only_logs_need_test_log(tmp_path):
    for seed, acc in ((1, "75.2"), (2, "74.8")):
        write(tmp_path / f"seed{seed}/log.txt", TEST_ONLY.format(acc=acc, f1="70.0"))
    code, _, err = parse(tmp_path)
    assert code == 2 and "Nothing found" in err and "use --test-log" in err
    code, out, _ = parse(tmp_path, "--test-log")
    assert code == 0 and "* accuracy: 75.00% +- 0.20%" in out


def test_the_newest_log_of_a_rerun_is_read_from_names_and_content_not_mtimes(tmp_path):
    # Dassl's scheme: the first run in log.txt, the re-run in log.txt-<time>.
    write(tmp_path / "seed1/log.txt", NEW_DASSL.format(acc="50.0", f1="1"))
    write(tmp_path / "seed1/log.txt-2023-07-24-13-16-38", NEW_DASSL.format(acc="80.0", f1="1"), age=100)
    # vlprompt's scheme: the previous log renamed to its time, the re-run in log.txt, which says when it started.
    write(tmp_path / "seed2/log.txt-2023-07-24-13-16-38", NEW_DASSL.format(acc="50.0", f1="1"))
    write(tmp_path / "seed2/log.txt", "** vlprompt log started 2023-07-24-13-20-01\n" +
          NEW_DASSL.format(acc="90.0", f1="1"), age=100)
    # A plain copy of a tree gives every file the same modification time: the same answer.
    for log in tmp_path.glob("seed*/log.txt*"):
        os.utime(log, (1_000_000_000, 1_000_000_000))
    code, out, _ = parse(tmp_path)
    assert code == 0 and "* accuracy: 85.00% +- 5.00%" in out


def test_a_run_without_a_result_and_a_missing_seed_folder_are_named(tmp_path):
    write(tmp_path / "seed1/log.txt", NEW_DASSL.format(acc="80.0", f1="1"))
    write(tmp_path / "seed2/log.txt", NEW_DASSL.format(acc="70.0", f1="1"))
    crashed = tmp_path / "seed2/log.txt-2026-01-01-00-00-00"  # the newest, a crashed re-run (Dassl's naming)
    write(crashed, "epoch [1/5] batch [1/20] ...\nKilled\n")
    (tmp_path / "seed3").mkdir()
    write(tmp_path / "seed5/log.txt", NEW_DASSL.format(acc="80.0", f1="1"))
    code, out, _ = parse(tmp_path)
    assert code == 0
    assert f"WARNING: {crashed}: no '* accuracy: X%' after 'Finish training'" in out
    assert "the latest run did not finish" in out
    assert f"WARNING: {tmp_path / 'seed3'}: no log.txt" in out
    assert f"WARNING: {tmp_path / 'seed4'}: no such seed folder" in out
    assert "* accuracy: 80.00% +- 0.00%" in out and "3 of 5 runs have no result" in out


def test_multi_exp_averages_the_experiment_means(tmp_path):
    for exp, accs in (("caltech101", ("90.0", "92.0")), ("dtd", ("60.0", "62.0"))):
        for seed, acc in enumerate(accs, 1):
            write(tmp_path / exp / f"seed{seed}/log.txt", TEST_ONLY.format(acc=acc, f1="1"))
    code, out, _ = parse(tmp_path, "--multi-exp", "--test-log")
    assert code == 0 and out.rstrip().endswith("Average performance\n* accuracy: 76.00%")


@pytest.mark.parametrize("bad", ["missing", "empty"])
def test_nothing_found_is_an_error(tmp_path, bad):
    target = tmp_path / "none"
    if bad == "empty":
        target.mkdir()
    code, _, err = parse(target)
    assert code == 2 and ("Nothing found" in err or "Not a directory" in err)


def identity_json(path, seed, **values):
    """identity.json as vlprompt writes it, for a run with these config values."""
    import json

    from vlprompt.run_identity import build_identity

    cfg = {"SEED": seed, "TRAINER": {"NAME": "CoOp"}, "OPTIM": {"MAX_EPOCH": 50}, "DATASET": {"NAME": "Caltech101",
           "NUM_SHOTS": 16}, "MODEL": {"BACKBONE": {"NAME": "RN50"}}}
    for key, value in values.items():
        node = cfg
        *parents, leaf = key.split("__")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    path.mkdir(parents=True, exist_ok=True)
    (path / "identity.json").write_text(json.dumps(build_identity(cfg, "train", precision=values.get("prec", "fp32"),
                                                                  device="cpu")))


def test_runs_of_different_settings_are_refused_naming_what_differs(tmp_path):
    for seed, acc in ((1, "50.0"), (2, "60.0"), (3, "70.0")):
        write(tmp_path / f"seed{seed}/log.txt", NEW_DASSL.format(acc=acc, f1="1"))
        identity_json(tmp_path / f"seed{seed}", seed, OPTIM__MAX_EPOCH=50 if seed < 3 else 5)
    code, out, err = parse(tmp_path)
    assert code == 2 and "* accuracy" not in out
    assert err.count("\n") == 1 and "are 2 different settings" in err and "seed3: OPTIM.MAX_EPOCH: 50 -> 5" in err
    identity_json(tmp_path / "seed3", 3)  # the same setting again: averaged
    code, out, _ = parse(tmp_path)
    assert code == 0 and "* accuracy: 60.00% +- 8.16%" in out
    (tmp_path / "seed2/identity.json").unlink()  # a run without an identity next to identified ones
    code, _, err = parse(tmp_path)
    assert code == 2 and "seed1, seed3 record their run identity and seed2 do not" in err


def test_shot_counts_are_not_averaged_across_experiments(tmp_path):
    for exp, shots in (("caltech101", 16), ("dtd", 2)):
        write(tmp_path / exp / "seed1/log.txt", TEST_ONLY.format(acc="70.0", f1="1"))
        identity_json(tmp_path / exp / "seed1", 1, DATASET__NUM_SHOTS=shots)
    code, _, err = parse(tmp_path, "--multi-exp", "--test-log")
    assert code == 2 and "shots: 16 -> 2" in err

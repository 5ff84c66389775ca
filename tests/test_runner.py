"""`vlprompt run`: a protocol's jobs through the scripts, in parallel slots, resumable, ending with the table."""
import os

import pytest

from vlprompt.protocols import ProtocolError
from vlprompt.runner import gpu_slots, plan_protocol, run_protocol

from helpers import REPO_ROOT, fast_opts


def test_plans_come_from_the_protocol_definitions():
    train, test = plan_protocol("base2new", "maple", "output", "/data", seeds=(1, 2), repo=REPO_ROOT, variant="")
    assert len(train) == len(test) == 11 * 2 and test[0].after == [train[0].name]
    train, test = plan_protocol("xd", "cocoop", "output", "/data", seeds=(1,), repo=REPO_ROOT, variant="")
    assert [r.name for r in train] == ["imagenet-seed1-train"] and len(test) == 10
    assert len(plan_protocol("imagenet_dg", "maple", "output", "/data", seeds=(1,), repo=REPO_ROOT)[1]) == 4
    [dg] = plan_protocol("dg", "metaprompt", "output", "/data", datasets=["pacs"], seeds=(1,), shots=[1],
                         repo=REPO_ROOT)
    assert sorted(r.name for r in dg) == ["pacs-art_painting-seed1", "pacs-cartoon-seed1", "pacs-photo-seed1",
                                         "pacs-sketch-seed1"]
    assert gpu_slots("0,1", 2) == ["0", "0", "1", "1"] and gpu_slots("cpu", 4) == [""]


def test_runs_in_parallel_slots_resumes_and_builds_the_table(tmp_path, caltech_root, tiny_clip_path, monkeypatch):
    monkeypatch.setenv("VARIANT", "")  # the tiny-CLIP options stay in the plain output tree
    out, lines = tmp_path / "output", []
    opts = fast_opts(tiny_clip_path, epochs=1)
    # Two "GPU" slots (on a CPU machine the runs just run on the CPU, CUDA_VISIBLE_DEVICES set per worker).
    failed = run_protocol("base2new", "cocoop", str(out), caltech_root, datasets=["caltech101", "dtd"], seeds=(1, 2),
                          gpus="0,1", opts=opts, out=lines.append, repo=REPO_ROOT)
    # no dtd under this data root: reported (its tests not run), the others ran
    assert failed == ["dtd-seed1-train", "dtd-seed2-train", "dtd-seed1-test", "dtd-seed2-test"]
    logs = out / "runner-logs/base2new-cocoop"
    assert any("FAILED dtd-seed1-train" in line and str(logs / "dtd-seed1-train.log") in line for line in lines)
    assert any("dtd-seed1-test: not run: dtd-seed1-train failed" in line for line in lines)
    for seed in (1, 2):
        for phase in ("train_base", "test_new"):
            assert (out / f"base2new/{phase}/caltech101/shots_16/CoCoOp/vit_b16_c4_ep10_batch1_ctxv1/seed{seed}/"
                    "result.json").is_file()
    # The tiny-CLIP options make a variant: its table is named by the variant's fingerprint.
    [table] = (out / "tables").glob("base2new_CoCoOp_vit_b16_c4_ep10_batch1_ctxv1_variant-*.md")
    assert "| Caltech101 |" in table.read_text() and "| 1,2 |" in table.read_text()
    assert "DescribableTextures: dataset folder not found" in (logs / "dtd-seed1-train.log").read_text()

    again = []
    assert run_protocol("base2new", "cocoop", str(out), caltech_root, datasets=["caltech101"], seeds=(1, 2),
                        gpus="cpu", opts=opts, out=again.append, repo=REPO_ROOT) == []
    for name in ("caltech101-seed1-train", "caltech101-seed1-test"):  # the second run skipped the finished runs
        assert (logs / f"{name}.log").read_text().count("so skip this job") == 1


def test_the_codebase_is_found_from_the_repo_option_the_environment_or_the_current_directory(tmp_path, monkeypatch):
    from vlprompt.plugins import CodebaseNotFound

    from vlprompt import plugins

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("VLPROMPT_REPO", raising=False)
    [train, _] = plan_protocol("base2new", "maple", "output", "/data", seeds=(1,), repo=REPO_ROOT)
    assert train[0].argv[train[0].argv.index("--config-file") + 1] == os.path.join(
        REPO_ROOT, "configs/trainers/MaPLe/vit_b16_c2_ep5_batch4_2ctx.yaml")
    # elsewhere: the checkout vlprompt is imported from (a wheel: the copy it carries, tests/test_packaging.py)
    assert plan_protocol("base2new", "maple", "output", "/data", seeds=(1,))[0] == train
    monkeypatch.setenv("VLPROMPT_REPO", REPO_ROOT)
    assert plan_protocol("base2new", "maple", "output", "/data", seeds=(1,))[0] == train
    other = tmp_path / "other"
    (other / "configs" / "datasets").mkdir(parents=True)
    (other / "configs" / "datasets" / "caltech101.yaml").write_text("")
    (other / "train.py").write_text("")
    monkeypatch.delenv("VLPROMPT_REPO")
    monkeypatch.chdir(other)  # a codebase in the current directory comes first
    with pytest.raises(ProtocolError, match="no config .*/other/configs/trainers/MaPLe/vit_b16_c2_ep5_batch4_2ctx.yaml"):
        plan_protocol("base2new", "maple", "output", "/data", datasets=["caltech101"], seeds=(1,))
    with pytest.raises(CodebaseNotFound, match=r"Cannot find vlprompt's codebase .* in --repo \(.*nowhere\): it has no "
                                               r"train.py"):
        plan_protocol("base2new", "maple", "output", "/data", seeds=(1,), repo=str(tmp_path / "nowhere"))
    monkeypatch.setattr(plugins, "own_codebases", lambda: [("the checkout", str(tmp_path / "none"))])
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CodebaseNotFound, match=r"\(no train.py in the current directory .*, the checkout .*\): run "
                                               r"from the repository root, pass --repo DIR"):
        plan_protocol("base2new", "maple", "output", "/data", seeds=(1,))


def test_the_issue_example_parses_options_around_the_positionals_and_after_the_double_dash():
    from vlprompt.cli import parse_args

    args = parse_args(["run", "base2new", "maple", "--datasets", "caltech101", "--seeds", "1", "2", "--", "KEY", "VALUE"])
    assert (args.protocol, args.method, args.datasets, args.seeds, args.opts) == (
        "base2new", "maple", ["caltech101"], [1, 2], ["KEY", "VALUE"])
    args = parse_args(["run", "--gpus", "cpu", "base2new", "--jobs-per-gpu", "2", "maple", "--seeds", "3", "--",
                       "OPTIM.LR", "0.1", "--seeds", "4"])
    assert (args.gpus, args.jobs_per_gpu, args.seeds, args.opts) == ("cpu", 2, [3], ["OPTIM.LR", "0.1", "--seeds", "4"])
    assert parse_args(["run", "xd", "maple"]).opts == []


def test_an_unavailable_launcher_is_one_clear_line(tmp_path, monkeypatch, capsys):
    import sys

    import vlprompt.launchers
    from vlprompt.cli import main

    monkeypatch.delattr(vlprompt.launchers, "slurm", raising=False)
    monkeypatch.setitem(sys.modules, "vlprompt.launchers.slurm", None)  # as if the module were not there
    assert main(["run", "base2new", "maple", "--launcher", "slurm", "--root", str(tmp_path), "--output", str(tmp_path),
                 "--repo", REPO_ROOT]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: the slurm launcher is not available") and err.count("\n") == 1


def test_launcher_options_are_checked_before_anything_runs(tmp_path, capsys):
    from vlprompt.cli import main

    base = ["run", "base2new", "maple", "--root", str(tmp_path), "--output", str(tmp_path / "out"), "--repo",
            REPO_ROOT]
    for extra, message in (
            (["--run-timeout", "soon"], "--run-timeout 'soon': use minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM, "
                                        "D-HH:MM:SS, or a number with a unit (45s, 30m, 4h, 1d)"),
            (["--run-timeout", "0"], "--run-timeout '0': must be positive"),
            (["--wait"], "--wait is for --launcher slurm (the local launcher always waits for its runs)"),
            (["--launcher", "slurm", "--run-timeout", "1h"],
             "--run-timeout is for the local launcher (a Slurm job's limit is --time)"),
            (["--launcher", "slurm", "--poll-interval", "0"],
             "--poll-interval 0.0: give a positive number of seconds (default 30; real clusters: 30 or more)"),
            (["--launcher", "slurm", "--group", "0"], "--group 0: must be at least 1"),
            (["--launcher", "slurm", "--sbatch", "--comment=two words"],
             "--sbatch '--comment=two words': give one option per line, e.g. --sbatch '--qos=high'")):
        assert main(base + extra) == 2, extra
        assert capsys.readouterr().err == f"error: {message}\n"
    assert not (tmp_path / "out").exists()  # nothing was planned into the output, nothing submitted


def test_durations_take_slurms_formats():
    from vlprompt.launchers.durations import duration_seconds, format_duration

    assert [duration_seconds(v) for v in (90, "90", "1:30:00", "10:30", "2-00", "1-01:00:30", "45s", "1.5h")] == [
        5400, 5400, 5400, 630, 172800, 90030, 45, 5400]
    assert [format_duration(s) for s in (2, 119, 3600, 9000)] == ["2 s", "119 s", "60 min", "2 h 30 min"]

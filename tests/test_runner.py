"""`vlprompt run`: a protocol's jobs through the scripts, in parallel slots, resumable, ending with the table."""
import os

import pytest

from vlprompt.runner import gpu_slots, plan, run_protocol

from helpers import fast_opts


def test_plans_follow_each_protocols_scripts():
    [b2n] = plan("base2new", "maple", seeds=(1, 2))
    assert len(b2n) == 11 * 2 and [os.path.basename(s) for s, _ in b2n[0].steps] == ["base2new_train.sh",
                                                                                       "base2new_test.sh"]
    train, test = plan("xd", "cocoop", seeds=(1,))
    assert train[0].steps[0][1] == [1] and len(test) == 14  # CoCoOp's xd_train.sh takes SEED only
    assert plan("xd", "maple", seeds=(1,))[0][0].steps[0][1] == ["imagenet", 1]
    [dg] = plan("dg", "metaprompt", datasets=["pacs"], seeds=(1,), shots=1)
    assert sorted(j.name for j in dg) == ["pacs-art_painting-seed1", "pacs-cartoon-seed1", "pacs-photo-seed1",
                                         "pacs-sketch-seed1"]
    assert gpu_slots("0,1", 2) == ["0", "0", "1", "1"] and gpu_slots("cpu", 4) == [""]


def test_runs_jobs_in_parallel_slots_resumes_and_builds_the_table(tmp_path, caltech_root, tiny_clip_path, monkeypatch):
    monkeypatch.setenv("VARIANT", "")  # the tiny-CLIP options stay in the plain output tree
    out, lines = tmp_path / "output", []
    opts = fast_opts(tiny_clip_path, epochs=1)
    # Two "GPU" slots (on a CPU machine the jobs just run on the CPU, CUDA_VISIBLE_DEVICES set per job).
    failed = run_protocol("base2new", "cocoop", str(out), caltech_root, datasets=["caltech101", "dtd"], seeds=(1, 2),
                          gpus="0,1", opts=opts, out=lines.append)
    assert failed == ["dtd-seed1", "dtd-seed2"]  # no dtd under this data root: reported, the others ran
    assert any("FAILED dtd-seed1" in line for line in lines)
    for seed in (1, 2):
        for phase in ("train_base", "test_new"):
            assert (out / f"base2new/{phase}/caltech101/shots_16/CoCoOp/vit_b16_c4_ep10_batch1_ctxv1/seed{seed}/"
                    "result.json").is_file()
    # The tiny-CLIP options make a variant: its table is named by the variant's fingerprint.
    [table] = (out / "tables").glob("base2new_CoCoOp_vit_b16_c4_ep10_batch1_ctxv1_variant-*.md")
    assert "| Caltech101 |" in table.read_text() and "| 1,2 |" in table.read_text()
    assert "DescribableTextures: dataset folder not found" in (out / "runner-logs/dtd-seed1.log").read_text()

    again = []
    assert run_protocol("base2new", "cocoop", str(out), caltech_root, datasets=["caltech101"], seeds=(1, 2),
                        gpus="cpu", opts=opts, out=again.append) == []
    log = (out / "runner-logs/caltech101-seed1.log").read_text()
    assert log.count("so skip this job") == 2  # the second run skipped both finished scripts


def test_the_scripts_are_found_in_the_codebase_never_next_to_the_installed_package(tmp_path, monkeypatch):
    from helpers import REPO_ROOT
    from vlprompt.plugins import CodebaseNotFound

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("VLPROMPT_REPO", raising=False)
    with pytest.raises(CodebaseNotFound, match=r"Cannot find vlprompt's scripts/ folder \(no scripts/maple in the "
                                               r"current directory .*\): run from the repository root, pass --repo DIR"):
        plan("base2new", "maple", seeds=(1,))
    [jobs] = plan("base2new", "maple", seeds=(1,), repo=REPO_ROOT)
    assert jobs[0].steps[0][0] == os.path.join(REPO_ROOT, "scripts", "maple", "base2new_train.sh")
    monkeypatch.setenv("VLPROMPT_REPO", REPO_ROOT)
    assert plan("base2new", "maple", seeds=(1,))[0][0].steps == jobs[0].steps

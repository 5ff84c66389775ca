"""vlprompt.protocols plans exactly the train.py command lines and output directories the scripts run (the
scripts with DRY_RUN=1 print them; tests/test_script_callers.py checks they are what the scripts' bash
implementation ran)."""
import os
import shlex
import subprocess
import sys

import pytest

from vlprompt.protocols import (IMAGENET_VARIANTS, TRAINED_EPOCH, XD_TARGETS, ProtocolError, all_runs, coop_config,
                                plan, resolve_argv)

from helpers import REPO_ROOT

OPTS = ["OPTIM.LR", "0.01", "TRAIN.PRINT_FREQ", "5", "INPUT.SIZE", "(32, 32)"]  # a variant, a bookkeeping key


@pytest.fixture
def recorder(tmp_path):
    """Runs scripts with DRY_RUN=1 and records the train.py command lines they print."""
    out, data = tmp_path / "output", tmp_path / "data"
    data.mkdir()
    calls = []

    def run(script, *args, **env):
        full = dict(os.environ, DATA=str(data), OUTPUT=str(out), PYTHON=sys.executable, DRY_RUN="1")
        full.pop("VARIANT", None)
        full.update({k: str(v) for k, v in env.items()})
        proc = subprocess.run(["bash", os.path.join(REPO_ROOT, "scripts", script), *map(str, args)], env=full,
                              cwd="/", capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        for line in proc.stdout.splitlines():
            words = shlex.split(line)
            assert words[:2] == [sys.executable, os.path.join(REPO_ROOT, "train.py")], line
            calls.append(words[2:])

    def recorded():
        lines = list(calls)
        calls.clear()
        return lines

    run.recorded, run.out, run.data = recorded, str(out), str(data)
    return run


def finish_training(runs, epoch):
    """Make the training runs look finished, as the test scripts (and resolve_argv) see them."""
    for run in runs:
        os.makedirs(os.path.join(run.output_dir, "prompt_learner"), exist_ok=True)
        with open(os.path.join(run.output_dir, "prompt_learner", "checkpoint"), "w") as f:
            f.write(f"model.pth.tar-{epoch}\n")
        with open(os.path.join(run.output_dir, "result.json"), "w") as f:
            f.write("{}")


def check_stages(stages, recorded, epoch=7):
    for i, stage in enumerate(stages):
        expected = [resolve_argv(run.argv) for run in stage]
        assert recorded[:len(stage)] == expected
        for run, argv in zip(stage, expected):
            assert argv[argv.index("--output-dir") + 1] == run.output_dir
            if "--load-epoch" in argv:
                assert argv[argv.index("--load-epoch") + 1] == str(epoch)
        recorded = recorded[len(stage):]
        if i == 0 and len(stages) > 1:
            finish_training(stage, epoch)
    assert recorded == []


B2N_METHODS = ["cocoop", "maple", "independent-vlp", "language-prompting", "vpt", "metaprompt", "copl", "kgcoop",
               "prograd", "promptsrc", "coop_dept", "cocoop_dept", "maple_dept"]


@pytest.mark.parametrize("method", B2N_METHODS)
def test_base2new_plans_what_the_scripts_run(method, recorder):
    stages = plan("base2new", method, recorder.data, recorder.out, datasets=["caltech101", "dtd"], seeds=[1, 2],
                  opts=OPTS, repo=REPO_ROOT)
    train, test = stages
    assert [r.name for r in train] == ["caltech101-seed1-train", "caltech101-seed2-train", "dtd-seed1-train",
                                       "dtd-seed2-train"]
    assert test[0].after == ["caltech101-seed1-train"] and TRAINED_EPOCH in test[0].argv
    assert "+OPTIM.LR=0.01+INPUT.SIZE=_32,_32_/seed1" in train[0].output_dir  # the scripts' variant folder
    for stage, script in zip(stages, ("base2new_train.sh", "base2new_test.sh")):
        for d in ("caltech101", "dtd"):
            for s in (1, 2):
                if script == "base2new_test.sh" and d == "caltech101" and s == 1:
                    finish_training(train, 7)
                recorder(f"{method}/{script}", d, s, *OPTS)
    recorded = recorder.recorded()
    expected = [resolve_argv(r.argv) for r in train + test]
    assert recorded == expected


@pytest.mark.parametrize("method", ["cocoop", "maple", "independent-vlp", "language-prompting", "vpt", "copl", "coop",
                                    "kgcoop", "prograd", "promptsrc", "coop_dept", "maple_dept"])
def test_cross_dataset_and_imagenet_dg_plan_what_the_scripts_run(method, recorder):
    for protocol, targets in (("xd", XD_TARGETS), ("imagenet_dg", IMAGENET_VARIANTS)):
        stages = plan(protocol, method, recorder.data, recorder.out, seeds=[1], opts=OPTS, repo=REPO_ROOT)
        assert [r.name for r in stages[1]] == [f"{t}-seed1-test" for t in targets]
        if method == "coop":
            recorder("coop/main.sh", "imagenet", "rn50_ep50", "end", 16, 16, "False", *OPTS, SEEDS="1")
        elif method in ("cocoop", "copl", "kgcoop", "prograd"):
            recorder(f"{method}/xd_train.sh", 1, *OPTS)  # their originals' arguments: SEED only
        else:
            recorder(f"{method}/xd_train.sh", "imagenet", 1, *OPTS)
        finish_training(stages[0], 3)
        for t in targets:
            if method == "coop":
                recorder("coop/eval.sh", t, "rn50_ep50", *OPTS, SEEDS="1")
            else:
                recorder(f"{method}/xd_test.sh", t, 1, *OPTS)
        check_stages(stages, recorder.recorded(), epoch=3)


def test_leave_one_domain_out_dg_plans_what_the_scripts_run(recorder):
    stages = plan("dg", "metaprompt", recorder.data, recorder.out, datasets=["pacs"], seeds=[1, 2], shots=[3],
                  opts=OPTS, repo=REPO_ROOT)
    assert len(stages) == 1 and len(stages[0]) == 8 and stages[0][0].name == "pacs-art_painting-seed1"
    recorder("metaprompt/dg_all.sh", "pacs", 3, *OPTS, SEEDS="1 2")
    check_stages(stages, recorder.recorded())


def test_coop_few_shot_uses_the_originals_config_per_shot_count(recorder):
    assert [coop_config("rn50", k, "caltech101") for k in (1, 2, 4, 8, 16)] == [
        "rn50_ep50", "rn50_ep100", "rn50_ep100", "rn50", "rn50"]
    assert {coop_config("vit_b16", k, "imagenet") for k in (1, 2, 4, 8, 16)} == {"vit_b16_ep50"}
    stages = plan("fewshot", "coop", recorder.data, recorder.out, datasets=["caltech101", "imagenet"], seeds=[1, 2],
                  opts=OPTS, backbone="vit_b16", repo=REPO_ROOT)
    assert len(stages[0]) == 2 * 5 * 2 and stages[0][0].name == "caltech101-1shots-seed1"
    for d in ("caltech101", "imagenet"):
        for k in (1, 2, 4, 8, 16):
            recorder("coop/main.sh", d, coop_config("vit_b16", k, d), "end", 16, k, "False", *OPTS, SEEDS="1 2")
    check_stages(stages, recorder.recorded())


def test_prograd_few_shot_is_coops_protocol_with_its_trainer(recorder):
    stages = plan("fewshot", "prograd", recorder.data, recorder.out, datasets=["dtd"], seeds=[1], shots=[1, 8],
                  opts=OPTS, repo=REPO_ROOT)
    assert [r.name for r in stages[0]] == ["dtd-1shots-seed1", "dtd-8shots-seed1"]
    assert all("/dtd/ProGrad/" in r.output_dir and "--trainer" in r.argv and
               r.argv[r.argv.index("--trainer") + 1] == "ProGrad" for r in stages[0])
    for k in (1, 8):
        recorder("prograd/main.sh", "dtd", coop_config("rn50", k, "dtd"), "end", 16, k, "False", *OPTS, SEEDS="1")
    check_stages(stages, recorder.recorded())
    with pytest.raises(ProtocolError, match="the few-shot protocol has scripts for coop and prograd only"):
        plan("fewshot", "kgcoop", recorder.data, recorder.out, repo=REPO_ROOT)


def test_promptsrc_few_shot_uses_its_config_and_its_per_dataset_gpa(recorder):
    stages = plan("fewshot", "promptsrc", recorder.data, recorder.out, datasets=["caltech101", "dtd"], seeds=[1, 2],
                  shots=[1, 16], opts=OPTS, repo=REPO_ROOT)
    runs = stages[0]
    assert len(stages) == 1 and len(runs) == 2 * 2 * 2
    assert all("vit_b16_c2_ep50_batch4_4+4ctx_few_shot.yaml" in r.argv[r.argv.index("--config-file") + 1] for r in runs)
    gpa = ["TRAINER.PROMPTSRC.GPA_MEAN", "45", "TRAINER.PROMPTSRC.GPA_STD", "5"]
    for r in runs:  # the config's comment: 45 / 5 for DTD (and four others), its 30 / 30 for Caltech101
        has = any(r.argv[i:i + 4] == gpa for i in range(len(r.argv)))
        assert has == ("/dtd.yaml" in r.argv[r.argv.index("--dataset-config-file") + 1]), r.argv
        assert r.argv[-len(OPTS):] == OPTS  # the user's options last: they win
    for d in ("caltech101", "dtd"):
        for k in (1, 16):
            recorder("promptsrc/few_shot.sh", d, k, *OPTS, SEEDS="1 2")
    check_stages(stages, recorder.recorded())


def test_dept_writes_its_runners_output_tree(recorder):
    train, test = plan("base2new", "maple_dept", recorder.data, recorder.out, datasets=["dtd"], seeds=[2],
                       repo=REPO_ROOT, variant="")
    tail = "ExtrasLinearProbeMaPLe/dtd/shots16/vit_b16_c2_ep10_batch4_2ctx/seed2"
    assert train[0].output_dir == f"{recorder.out}/base2new/maple_dept/train_base/{tail}"
    assert test[0].output_dir == f"{recorder.out}/base2new/maple_dept/test_new/{tail}"
    source, targets = plan("xd", "coop_dept", recorder.data, recorder.out, datasets=["imagenet_a"], seeds=[1],
                           repo=REPO_ROOT, variant="")
    assert source[0].output_dir.endswith("/imagenet/coop_dept/ExtrasLinearProbeCoOp/imagenet/shots16/"
                                         "vit_b16_ep10_bs4_lr35/seed1")
    assert targets[0].output_dir.endswith("/evaluation/coop_dept/ExtrasLinearProbeCoOp/imagenet_a/shots16/"
                                          "vit_b16_ep10_bs4_lr35/seed1")
    for run in source + targets:  # DePT's runner passes SUBSAMPLE_CLASSES all in both
        assert run.argv[-2:] == ["DATASET.SUBSAMPLE_CLASSES", "all"]


def test_zero_shot_plans_what_the_script_runs(recorder):
    stages = plan("zeroshot", "zsclip", recorder.data, recorder.out, datasets=["caltech101", "imagenet_a"],
                  opts=OPTS, repo=REPO_ROOT)
    for d in ("caltech101", "imagenet_a"):
        recorder("zsclip/zeroshot.sh", d, "vit_b16", *OPTS)
    check_stages(stages, recorder.recorded())


def test_variant_load_epoch_argv_equal_the_scripts(recorder):
    kw = dict(datasets=["caltech101"], seeds=[1], opts=OPTS, variant="mine", trainer="CoOp", cfg="vit_b16_ctxv1",
              shots=8, load_epoch=2, repo=REPO_ROOT)
    stages = plan("base2new", "cocoop", recorder.data, recorder.out, **kw)
    env = dict(VARIANT="mine", TRAINER="CoOp", CFG="vit_b16_ctxv1", SHOTS=8, LOADEP=2)
    recorder("cocoop/base2new_train.sh", "caltech101", 1, *OPTS, **env)
    os.makedirs(stages[0][0].output_dir)
    recorder("cocoop/base2new_test.sh", "caltech101", 1, *OPTS, **env)
    assert recorder.recorded() == [run.argv for run in all_runs(stages)]
    assert stages[0][0].output_dir.endswith("caltech101/shots_8/CoOp/vit_b16_ctxv1+mine/seed1")
    plain = plan("base2new", "maple", recorder.data, recorder.out, datasets=["caltech101"], seeds=[1], opts=OPTS,
                 variant="", repo=REPO_ROOT)
    assert plain[0][0].output_dir.endswith("MaPLe/vit_b16_c2_ep5_batch4_2ctx/seed1")


def test_a_test_whose_training_has_not_finished_is_explained(tmp_path):
    [_, [test]] = plan("base2new", "maple", str(tmp_path), str(tmp_path / "out"), datasets=["dtd"], seeds=[1],
                       repo=REPO_ROOT)
    with pytest.raises(ProtocolError, match="no trained model at .*: run the training script first"):
        resolve_argv(test.argv)
    os.makedirs(tmp_path / "out/base2new/train_base/dtd/shots_16/MaPLe/vit_b16_c2_ep5_batch4_2ctx/seed1")
    with pytest.raises(ProtocolError, match="has not finished"):
        resolve_argv(test.argv)
    with pytest.raises(ProtocolError, match="unknown protocol 'b2n'"):
        plan("b2n", "maple", "", "", repo=REPO_ROOT)
    with pytest.raises(ProtocolError, match="unknown dataset 'caltech'"):
        plan("base2new", "maple", "", "", datasets=["caltech"], repo=REPO_ROOT)

"""scripts/{maple,independent-vlp,language-prompting,vpt}/*.sh end to end on the generated Caltech101
with the tiny CLIP, run from / : the originals' output tree, the load epoch taken from what was
trained, finished jobs skipped, released weights evaluated on base and new classes.

The script jobs are independent and mostly Python start-up, so the module runs them concurrently
(`script_jobs`) and the tests check what each left behind.
"""
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from helpers import REPO_ROOT, fast_opts, read_result, run_script
from test_maple_checkpoints import write_original_checkpoint
from vlprompt.clip_loader import load_clip
from vlprompt.fileio import load_torch_file

ONE_THREAD = {"OMP_NUM_THREADS": "1"}  # the runs are tiny; more threads only contend for the CPU
FOLDERS = ["maple", "independent-vlp", "language-prompting", "vpt"]
SCRIPTS = ["base2new_train.sh", "base2new_test.sh", "xd_train.sh", "xd_test.sh", "reproduce.sh", "reproduce_xd.sh"]
BASE2NEW = {  # script folder -> (trainer, config, checkpoint folder)
    "maple": ("MaPLe", "vit_b16_c2_ep5_batch4_2ctx", "MultiModalPromptLearner"),
    "independent-vlp": ("IVLP", "vit_b16_c2_ep5_batch4_2+2ctx", "VLPromptLearner"),
    "vpt": ("VPT", "vit_b16_c2_ep5_batch4_4", "prompt_learner"),
}
LP_CFG = "vit_b16_c2_ep5_batch4_4ctx_language_only"


def run(script, *args, data, output, check=True, env=None):
    return run_script(script, *args, data=data, output=output, env={**ONE_THREAD, **(env or {})}, check=check)


def fake_finished_run(run_dir, method, clip_model, epoch):
    """What a finished training run leaves (our checkpoint at `epoch`, its pointer, result.json)."""
    from test_maple_methods import build

    learner = build(method, clip_model).prompt_learner
    name = {"MaPLe": "MultiModalPromptLearner", "VPT": "prompt_learner"}.get(method, "VLPromptLearner")
    folder = os.path.join(run_dir, name)
    os.makedirs(folder)
    torch.save({"state_dict": learner.state_dict(), "epoch": epoch, "optimizer": None, "scheduler": None,
                "val_result": None}, os.path.join(folder, f"model.pth.tar-{epoch}"))
    with open(os.path.join(folder, "checkpoint"), "w") as f:
        f.write(f"model.pth.tar-{epoch}\n")
    with open(os.path.join(run_dir, "result.json"), "w") as f:
        json.dump({"mode": "train", "epochs_trained": epoch}, f)


def base2new_job(folder, root, data, clip_path):
    out = root / "output"
    opts = fast_opts(clip_path, epochs=2)  # the test script must load epoch 2, not the config's 5
    run(f"{folder}/base2new_train.sh", "caltech101", 1, *opts, data=data, output=out)
    run(f"{folder}/base2new_test.sh", "caltech101", 1, *opts, data=data, output=out)
    again = run(f"{folder}/base2new_train.sh", "caltech101", 1, *opts, data=data, output=out)
    return out, again


def reproduce_job(root, data, clip_path):
    weights = root / "released" / "caltech101"
    model_dir = weights / "base" / "seed1"
    write_original_checkpoint(str(model_dir), "MaPLe", load_clip(clip_path), epoch=5)
    os.remove(model_dir / "MultiModalPromptLearner" / "checkpoint")  # not in every zip: the highest N then
    out = root / "output"
    run("maple/reproduce.sh", "caltech101", 1, weights, *fast_opts(clip_path), data=data, output=out)
    return weights, out


def xd_job(root, data, clip_path, clip_model):
    """A source run trained for 3 epochs (its config says 5) where xd_train.sh imagenet 2 trains, then
    xd_test.sh, which must load epoch 3."""
    out = root / "output"
    source_dir = out / f"imagenet/IVLP/{LP_CFG}_16shots/seed2"
    train = [sys.executable, os.path.join(REPO_ROOT, "train.py"), "--root", str(data), "--seed", "2", "--trainer", "IVLP",
             "--dataset-config-file", os.path.join(REPO_ROOT, "configs/datasets/caltech101.yaml"),
             "--config-file", os.path.join(REPO_ROOT, f"configs/trainers/IVLP/{LP_CFG}.yaml"),
             "--output-dir", str(source_dir), *fast_opts(clip_path, epochs=3), "DATASET.NUM_SHOTS", "2"]
    proc = subprocess.run(train, capture_output=True, text=True, env=dict(os.environ, **ONE_THREAD), timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run("language-prompting/xd_test.sh", "caltech101", 2, *fast_opts(clip_path, epochs=3), data=data, output=out)
    return source_dir, out


@pytest.fixture(scope="module")
def script_jobs(tmp_path_factory, caltech_root, tiny_clip_path, tiny_clip):
    """{name: future} of every script job of this module, all finished."""
    root = tmp_path_factory.mktemp("scripts")
    jobs = {f"base2new-{folder}": (base2new_job, folder, root / folder, caltech_root, tiny_clip_path)
            for folder in BASE2NEW}
    jobs["reproduce"] = (reproduce_job, root / "reproduce", caltech_root, tiny_clip_path)
    jobs["xd"] = (xd_job, root / "xd", caltech_root, tiny_clip_path, tiny_clip)
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        futures = {name: pool.submit(*job) for name, job in jobs.items()}
    return futures


@pytest.mark.parametrize("folder", list(BASE2NEW))
def test_base2new_train_then_test(folder, script_jobs):
    trainer, cfg, checkpoint_folder = BASE2NEW[folder]
    out, again = script_jobs[f"base2new-{folder}"].result()
    tail = f"caltech101/shots_16/{trainer}/{cfg}/seed1"
    train_dir = out / "base2new/train_base" / tail
    base = read_result(train_dir)
    assert (base["method"], base["config"], base["subsample"], base["num_classes"]) == (trainer, cfg, "base", 5)
    assert base["mode"] == "train" and base["epochs_trained"] == 2
    assert sorted(os.listdir(train_dir / checkpoint_folder)) == ["checkpoint", "model.pth.tar-2"]
    saved = load_torch_file(str(train_dir / checkpoint_folder / "model.pth.tar-2"))
    frozen = ("image_encoder", "text_encoder", "transformer", "visual")
    assert not any(k.startswith(frozen) or k.endswith(("token_prefix", "token_suffix")) for k in saved["state_dict"])

    new = read_result(out / "base2new/test_new" / tail)
    assert new["subsample"] == "new" and new["mode"] == "eval-only" and new["load_epoch"] == 2
    assert new["checkpoint"] == {"path": str(train_dir / checkpoint_folder / "model.pth.tar-2"), "epoch": 2}
    assert new["num_test_images"] == 5 * 4
    assert "so skip this job" in again.stdout


def test_cross_dataset_test_loads_the_epoch_that_was_trained(script_jobs):
    """The originals' IVLP/LP/VPT xd_test loaded epoch 2 of their 5-epoch xd_train runs (FileNotFoundError)."""
    source_dir, out = script_jobs["xd"].result()
    target = read_result(out / f"evaluation/IVLP/{LP_CFG}_16shots/caltech101/seed2")
    assert target["load_epoch"] == 3 and target["mode"] == "eval-only" and target["num_classes"] == 10
    assert target["model_dir"] == str(source_dir)


def test_reproduce_evaluates_released_weights_on_base_and_new(script_jobs, caltech_root, tiny_clip_path):
    weights, out = script_jobs["reproduce"].result()
    model_dir = weights / "base" / "seed1"
    tail = "caltech101/shots_16/MaPLe/vit_b16_c2_ep5_batch4_2ctx/seed1"
    for sub in ("base", "new"):
        result = read_result(out / f"released/base2new/test_{sub}" / tail)  # a tree of its own
        assert result["subsample"] == sub and result["load_epoch"] == 5 and result["model_dir"] == str(model_dir)
        assert result["checkpoint"] == {"path": str(model_dir / "MultiModalPromptLearner/model.pth.tar-5"), "epoch": 5}
        assert result["num_classes"] == 5 and result["mode"] == "eval-only"
        log = (out / f"released/base2new/test_{sub}" / tail / "log.txt").read_text()
        assert "Loading weights to MultiModalPromptLearner" in log

    again = run("maple/reproduce.sh", "caltech101", 1, weights, *fast_opts(tiny_clip_path), data=caltech_root,
                output=out)
    assert again.stdout.count("so skip this job") == 2

    # Other weights in the same folder (a re-downloaded or another release): their evaluation is not passed
    # off as these results, nor does it overwrite them.
    ckpt_path = model_dir / "MultiModalPromptLearner/model.pth.tar-5"
    ckpt = load_torch_file(str(ckpt_path))  # the original's layout pickles its scheduler: the allowed classes
    ckpt["state_dict"]["prompt_learner.ctx"] = ckpt["state_dict"]["prompt_learner.ctx"] + 1
    torch.save(ckpt, ckpt_path)
    clash = run("maple/reproduce.sh", "caltech101", 1, weights, *fast_opts(tiny_clip_path), data=caltech_root,
                output=out, check=False)
    assert clash.returncode == 2 and "holds another run: evaluated model:" in clash.stderr


DRY_RUN = {"DRY_RUN": "1"}  # the scripts print the train.py command lines they would run


def output_dirs(proc):
    lines = [line for line in proc.stdout.splitlines() if "--output-dir " in line]
    return [line.split("--output-dir ")[1].split(" ")[0] for line in lines]


def test_reproduce_xd_evaluates_the_highest_epoch_of_a_folder_without_pointer(tmp_path, caltech_root):
    weights = tmp_path / "released" / "imagenet"
    os.makedirs(weights / "seed1" / "prompt_learner")
    for n in (1, 2):
        (weights / "seed1" / "prompt_learner" / f"model.pth.tar-{n}").write_text("")  # no pointer: the highest N
    proc = run("vpt/reproduce_xd.sh", "imagenet_a", 1, weights, data=caltech_root, output=tmp_path / "output",
               env=DRY_RUN)
    [line] = [line for line in proc.stdout.splitlines() if "train.py" in line]
    assert "--load-epoch 2 --eval-only" in line and f"--model-dir {weights / 'seed1'} " in line


def test_scripts_exist_and_explain_missing_inputs(tmp_path):
    for folder in FOLDERS:
        for script in SCRIPTS:
            path = os.path.join(os.path.dirname(__file__), "..", "scripts", folder, script)
            assert os.access(path, os.X_OK), path
    missing_data = run_script("maple/base2new_train.sh", "caltech101", 1, data="", output=tmp_path, check=False)
    assert missing_data.returncode != 0 and "set DATA" in missing_data.stderr
    usage = run("vpt/reproduce.sh", "caltech101", 1, data=tmp_path, output=tmp_path, check=False)
    assert usage.returncode != 0 and "DATASET SEED WEIGHTSPATH" in usage.stderr
    no_weights = run("independent-vlp/reproduce.sh", "caltech101", 1, tmp_path, data=tmp_path, output=tmp_path,
                     check=False)
    assert no_weights.returncode != 0 and "base/seed1" in no_weights.stderr
    untrained = run("language-prompting/base2new_test.sh", "caltech101", 1, data=tmp_path, output=tmp_path, check=False)
    assert untrained.returncode != 0 and "run the training script first" in untrained.stderr


@pytest.mark.parametrize("folder, trainer, cfg, xd_cfg", [
    ("maple", "MaPLe", "vit_b16_c2_ep5_batch4_2ctx", "vit_b16_c2_ep5_batch4_2ctx_cross_datasets"),
    ("independent-vlp", "IVLP", "vit_b16_c2_ep5_batch4_2+2ctx", "vit_b16_c2_ep5_batch4_2+2ctx"),
    ("language-prompting", "IVLP", LP_CFG, LP_CFG),
    ("vpt", "VPT", "vit_b16_c2_ep5_batch4_4", "vit_b16_c2_ep5_batch4_4"),
])
def test_every_script_writes_the_originals_output_tree(folder, trainer, cfg, xd_cfg, tmp_path):
    """Each script writes the originals' output tree (python replaced by a recorder of train.py's command lines;
    what is skipped or refused is decided by train.py from the run identity: tests/test_run_identity.py)."""
    assert os.path.isfile(os.path.join(os.path.dirname(__file__), "..", "configs/trainers", trainer, f"{cfg}.yaml"))
    assert os.path.isfile(os.path.join(os.path.dirname(__file__), "..", "configs/trainers", trainer, f"{xd_cfg}.yaml"))
    out, weights = tmp_path / "output", tmp_path / "weights"
    for model_dir in (weights / "base/seed1", weights / "seed1"):
        os.makedirs(model_dir / "checkpoint_folder")
        (model_dir / "checkpoint_folder/model.pth.tar-5").write_text("")
    b2n = f"caltech101/shots_16/{trainer}/{cfg}/seed1"
    expected = {
        ("base2new_train.sh", "caltech101", 1): [f"base2new/train_base/{b2n}"],
        ("base2new_test.sh", "caltech101", 1): [f"base2new/test_new/{b2n}"],
        ("xd_train.sh", "imagenet", 1): [f"imagenet/{trainer}/{xd_cfg}_16shots/seed1"],
        ("xd_test.sh", "caltech101", 1): [f"evaluation/{trainer}/{xd_cfg}_16shots/caltech101/seed1"],
        ("reproduce.sh", "caltech101", 1, weights): [f"released/base2new/test_base/{b2n}",
                                                     f"released/base2new/test_new/{b2n}"],
        ("reproduce_xd.sh", "caltech101", 1, weights): [
            f"released/evaluation/{trainer}/{xd_cfg}_16shots/caltech101/seed1"],
    }
    for trained in (f"base2new/train_base/{b2n}", f"imagenet/{trainer}/{xd_cfg}_16shots/seed1"):
        os.makedirs(out / trained / "checkpoint_folder")  # a finished training run, as the test scripts see it
        (out / trained / "checkpoint_folder/checkpoint").write_text("model.pth.tar-5\n")
        (out / trained / "result.json").write_text("{}")
    for (script, *args), dirs in expected.items():
        proc = run(f"{folder}/{script}", *args, data=tmp_path, output=out, env=DRY_RUN)
        assert output_dirs(proc) == [str(out / d) for d in dirs], script
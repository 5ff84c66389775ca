"""CoPL's scripts end to end on a generated Caltech101 with the tiny CLIP: base-to-new train then test;
cross-dataset test of a source model that xd_train.sh and few_shot.sh both locate, with non-default
TRAINER.COPL options so that their extra tensors go through a checkpoint."""
import os

from helpers import REPO_ROOT, fast_opts, read_result, run_script, run_train
from vlprompt.engine import load_checkpoint

CFG = "vit_b16_c4_ep10_batch1_ctxv1"


def checkpoint_keys(run_dir, epoch):
    state = load_checkpoint(os.path.join(run_dir, "prompt_learner", f"model.pth.tar-{epoch}"))["state_dict"]
    return set(state)


def test_copl_base2new_train_then_test(tmp_path, caltech_root, tiny_clip_path):
    out = tmp_path / "output"
    opts = fast_opts(tiny_clip_path, epochs=1)
    run_script("copl/base2new_train.sh", "caltech101", 1, *opts, data=caltech_root, output=out)
    train_dir = out / "base2new/train_base/caltech101/shots_16/CoPL" / CFG / "seed1"
    base = read_result(train_dir)
    assert base["method"] == "CoPL" and base["config"] == CFG and base["subsample"] == "base"
    assert base["num_classes"] == 5 and base["shots"] == 16 and base["mode"] == "train"
    assert checkpoint_keys(train_dir, 1) == {"ctx", "meta_net.linear1.weight", "meta_net.linear1.bias",
                                             "meta_net.linear2.weight", "meta_net.linear2.bias"}
    log = (train_dir / "log.txt").read_text()
    assert "Finish training" in log and "* accuracy:" in log
    assert "patch features into a 48-d Meta-Net, score scaled_dot, weighting none, combine add" in log

    run_script("copl/base2new_test.sh", "caltech101", 1, *opts, data=caltech_root, output=out)
    new = read_result(out / "base2new/test_new/caltech101/shots_16/CoPL" / CFG / "seed1")
    assert new["subsample"] == "new" and new["mode"] == "eval-only" and new["load_epoch"] == 1
    assert new["checkpoint"]["path"] == str(train_dir / "prompt_learner/model.pth.tar-1")
    assert new["num_test_images"] == 5 * 4

    again = run_script("copl/base2new_test.sh", "caltech101", 1, *opts, data=caltech_root, output=out)
    assert "so skip this job" in again.stdout


def test_copl_cross_dataset_and_few_shot_scripts(tmp_path, caltech_root, tiny_clip_path):
    out = tmp_path / "output"
    env = dict(SOURCE_DATASET="caltech101", SHOTS="2")
    opts = fast_opts(tiny_clip_path, epochs=1, TRAINER__COPL__PATCH_FEATURES="before_proj",
                     TRAINER__COPL__SCORE="general", TRAINER__COPL__COMBINE="tanh")
    # The source model (Caltech101 standing in for ImageNet) is trained in this process to save a
    # start-up; xd_train.sh and few_shot.sh must then find it finished at the path they compute.
    source_dir = out / "caltech101/CoPL" / f"{CFG}_2shots" / "seed1"
    run_train(["--root", caltech_root, "--seed", 1, "--trainer", "CoPL",
               "--dataset-config-file", os.path.join(REPO_ROOT, "configs/datasets/caltech101.yaml"),
               "--config-file", os.path.join(REPO_ROOT, "configs/trainers/CoPL", f"{CFG}.yaml"),
               "--output-dir", source_dir, "DATASET.NUM_SHOTS", 2, *opts])
    source = read_result(source_dir)
    assert source["num_classes"] == 10 and source["shots"] == 2 and source["subsample"] == "all"
    assert {"align.weight", "combine.weight", "combine.bias"} <= checkpoint_keys(source_dir, 1)
    assert "patch features into a 128-d Meta-Net, score general, weighting none, combine tanh" in (
        source_dir / "log.txt").read_text()

    trained = run_script("copl/xd_train.sh", 1, *opts, data=caltech_root, output=out, env=env)
    assert f"The results exist at {source_dir} (so skip this job)" in trained.stdout
    few = run_script("copl/few_shot.sh", "caltech101", 2, *opts, data=caltech_root, output=out,
                     env=dict(env, SEEDS="1"))
    assert f"The results exist at {source_dir} (so skip this job)" in few.stdout

    run_script("copl/xd_test.sh", "caltech101", 1, *opts, data=caltech_root, output=out, env=env)
    target = read_result(out / "evaluation/CoPL" / f"{CFG}_2shots" / "caltech101/seed1")
    assert target["mode"] == "eval-only" and target["num_classes"] == 10 and target["load_epoch"] == 1
    assert target["checkpoint"]["path"] == str(source_dir / "prompt_learner/model.pth.tar-1")
    assert target["num_test_images"] == 10 * 4

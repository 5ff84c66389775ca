"""The bash scripts, end to end, on a generated Caltech101 with the tiny CLIP (CoCoOp base-to-new,
CoOp few-shot, zero-shot CLIP): output tree, result files, skipping and resuming."""
import os

import torch

from helpers import fast_opts, read_result, run_script
from vlprompt.fileio import load_torch_file

B2N_TAIL = "caltech101/shots_16/CoCoOp/vit_b16_c4_ep10_batch1_ctxv1/seed1"


def test_cocoop_base2new_train_then_test(tmp_path, caltech_root, tiny_clip_path):
    out = tmp_path / "output"
    opts = fast_opts(tiny_clip_path, epochs=2)
    run_script("cocoop/base2new_train.sh", "caltech101", 1, *opts, data=caltech_root, output=out)
    train_dir = out / "base2new/train_base" / B2N_TAIL
    base = read_result(train_dir)
    assert base["subsample"] == "base" and base["num_classes"] == 5 and base["shots"] == 16
    assert base["mode"] == "train" and base["seed"] == 1 and base["config"] == "vit_b16_c4_ep10_batch1_ctxv1"
    assert os.path.isfile(train_dir / "prompt_learner/model.pth.tar-2")
    assert not os.path.exists(train_dir / "prompt_learner/model.pth.tar-1")  # resume point replaced
    log = (train_dir / "log.txt").read_text()
    assert "Finish training" in log and "=> result" in log and "* accuracy:" in log

    run_script("cocoop/base2new_test.sh", "caltech101", 1, *opts, data=caltech_root, output=out)
    test_dir = out / "base2new/test_new" / B2N_TAIL
    new = read_result(test_dir)
    assert new["subsample"] == "new" and new["mode"] == "eval-only" and new["load_epoch"] == 2
    assert new["checkpoint"]["path"].endswith("prompt_learner/model.pth.tar-2")
    assert new["num_test_images"] == 5 * 4  # 4 test images for each of the 5 new classes

    again = run_script("cocoop/base2new_train.sh", "caltech101", 1, *opts, data=caltech_root, output=out)
    assert "so skip this job" in again.stdout

    # The model changes (here: its checkpoint edited; in practice another training or released weights): the
    # test_new folder holds the results of the old one, so the script stops instead of skipping or overwriting.
    ckpt_path = train_dir / "prompt_learner/model.pth.tar-2"
    ckpt = load_torch_file(str(ckpt_path))
    ckpt["state_dict"]["ctx"] += 1
    torch.save(ckpt, ckpt_path)
    clash = run_script("cocoop/base2new_test.sh", "caltech101", 1, *opts, data=caltech_root, output=out, check=False)
    assert clash.returncode == 2 and "holds another run: evaluated model:" in clash.stderr
    assert read_result(test_dir)["metrics"] == new["metrics"]
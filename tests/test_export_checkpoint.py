"""`vlprompt export-checkpoint RUN_DIR --format original` writes what the originals' --eval-only loads.

The originals load a full-model state dict with strict=False, so an exported key that is not one of the
original model's keys would be silently ignored: the test checks every exported key against the
original's key set (recorded in test_maple_checkpoints.original_prompt_tensors), then reads the export
back through vlprompt's reader of the originals' layout (--eval-only --model-dir), which refuses missing
or unexpected prompts, and compares logits with the trained model's.
"""
import os

import pytest
import torch

from helpers import fast_opts, run_train
from test_maple_checkpoints import CONFIGS, original_prompt_tensors
from vlprompt.cli import main as cli
from vlprompt.fileio import load_torch_file


def train_tiny(method, out, caltech_root, tiny_clip_path, extra=()):
    trainer_name, config, _ = CONFIGS[method]
    return run_train(["--root", caltech_root, "--seed", 1, "--trainer", trainer_name,
                      "--dataset-config-file", "configs/datasets/caltech101.yaml",
                      "--config-file", f"configs/trainers/{config}.yaml", "--output-dir", out,
                      *extra, *fast_opts(tiny_clip_path, epochs=1), "DATASET.NUM_SHOTS", 1])


@pytest.mark.parametrize("method", ["MaPLe", "IVLP", "VPT"])
def test_exported_checkpoint_holds_the_originals_keys_and_gives_the_same_logits(method, tmp_path, caltech_root,
                                                                               tiny_clip_path, capsys):
    run = tmp_path / "run"
    trained = train_tiny(method, run, caltech_root, tiny_clip_path)
    export = tmp_path / "model_dir"
    assert cli(["export-checkpoint", str(run), "--format", "original", "--out", str(export)]) == 0
    folder = CONFIGS[method][2]
    assert f"--eval-only --model-dir {export} --load-epoch 1" in capsys.readouterr().out
    assert (export / folder / "checkpoint").read_text() == "model.pth.tar-1\n"
    checkpoint = load_torch_file(str(export / folder / "model.pth.tar-1"))
    assert set(checkpoint) == {"state_dict", "epoch", "optimizer", "scheduler", "val_result"}
    assert checkpoint["epoch"] == 1

    c = trained.method_cfg
    depth = c.PROMPT_DEPTH if method == "MaPLe" else c.PROMPT_DEPTH_VISION
    original_keys, _ = original_prompt_tensors(method, depth=depth)
    trainable = {k for k in original_keys if not k.endswith(("token_prefix", "token_suffix"))}
    assert set(checkpoint["state_dict"]) == trainable  # all of the original's prompts, under its names
    for key, value in trained.model.prompt_learner.state_dict().items():
        assert any(torch.equal(value, v) for v in checkpoint["state_dict"].values()), key

    reloaded = train_tiny(method, tmp_path / "eval", caltech_root, tiny_clip_path,
                          ["--model-dir", export, "--load-epoch", 1, "--eval-only"])
    images = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    trained.model.eval()
    with torch.no_grad():
        torch.testing.assert_close(reloaded.model(images), trained.model(images), rtol=0, atol=0)


def test_export_refuses_a_run_without_checkpoint_or_of_another_trainer(tmp_path, caltech_root, tiny_clip_path,
                                                                       capsys):
    empty = tmp_path / "empty"
    os.makedirs(empty / "MultiModalPromptLearner")
    assert cli(["export-checkpoint", str(empty), "--format", "original"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "holds no checkpoint" in err
    assert cli(["export-checkpoint", str(tmp_path / "absent"), "--format", "original"]) == 2
    assert "no run directory" in capsys.readouterr().err
    coop = tmp_path / "coop"
    run_train(["--root", caltech_root, "--seed", 1, "--trainer", "CoOp",
               "--dataset-config-file", "configs/datasets/caltech101.yaml",
               "--config-file", "configs/trainers/CoOp/vit_b16_ep50.yaml", "--output-dir", coop,
               *fast_opts(tiny_clip_path, epochs=1), "DATASET.NUM_SHOTS", 1, "TRAINER.COOP.N_CTX", 4])
    capsys.readouterr()  # the training's own output (Dassl's progress bars go to stderr)
    assert cli(["export-checkpoint", str(coop), "--format", "original"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "trainer CoOp has no original checkpoint layout" in err
    assert not os.path.exists(str(coop) + "-original")

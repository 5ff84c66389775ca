"""The originals' released checkpoints load with --eval-only --model-dir ... --load-epoch N.

The files are written here in the originals' exact layout for the tiny CLIP: Dassl's checkpoint dict
(state_dict / epoch / optimizer / scheduler / val_result) whose state_dict is the whole original
CustomCLIP (frozen CLIP under image_encoder.* / text_encoder.*, logit_scale, the prompt learner's
tensors with token_prefix/token_suffix for the training classes, and for IVLP/VPT the prompts that
lived inside CLIP's modules as VPT / VPT_shallow), with a pickled CosineAnnealingLR in "scheduler"
as Dassl stores it.
"""
import os
import pickle
import types

import pytest
import torch

from helpers import fast_opts, read_result, run_train
from trainers.independentVL import IVLP
from trainers.maple import MaPLe
from trainers.vpt import VPT
from vlprompt.clip_loader import load_clip
from vlprompt.trainer import CheckpointMismatch, PromptTrainer

TEXT_WIDTH, VISION_WIDTH, LAYERS = 64, 128, 12  # the tiny CLIP's
TRAINED_CLASSES = 7  # the released model's class count (its token_prefix/suffix rows), not ours

# method -> (registered trainer, config, checkpoint folder of the original's release)
CONFIGS = {
    "MaPLe": ("MaPLe", "MaPLe/vit_b16_c2_ep5_batch4_2ctx", "MultiModalPromptLearner"),
    "IVLP": ("IVLP", "IVLP/vit_b16_c2_ep5_batch4_2+2ctx", "VLPromptLearner"),
    "LanguageOnly": ("IVLP", "IVLP/vit_b16_c2_ep5_batch4_4ctx_language_only", "VLPromptLearner"),
    "VPT": ("VPT", "VPT/vit_b16_c2_ep5_batch4_4", "prompt_learner"),
}



def original_prompt_tensors(method, seed=0, depth=None):
    """{original key: tensor} for the prompts of a released checkpoint (dtypes as the originals'
    fp16 runs save them), and {our prompt-learner key: the same tensor}."""
    g = torch.Generator().manual_seed(seed)

    def rand(*shape, dtype=torch.float32):
        return (torch.randn(*shape, generator=g) * 0.1).to(dtype)

    original, ours = {}, {}

    def put(original_key, our_key, tensor):
        original[original_key] = tensor
        ours[our_key] = tensor

    if method == "MaPLe":
        depth = depth or 9
        put("prompt_learner.ctx", "ctx", rand(2, TEXT_WIDTH, dtype=torch.float16))
        put("prompt_learner.proj.weight", "proj.weight", rand(VISION_WIDTH, TEXT_WIDTH, dtype=torch.float16))
        put("prompt_learner.proj.bias", "proj.bias", rand(VISION_WIDTH, dtype=torch.float16))
        for j in range(depth - 1):
            put(f"prompt_learner.compound_prompts_text.{j}", f"compound_prompts_text.{j}", rand(2, TEXT_WIDTH))
            for w, shape in (("weight", (VISION_WIDTH, TEXT_WIDTH)), ("bias", (VISION_WIDTH,))):
                put(f"prompt_learner.compound_prompt_projections.{j}.{w}", f"compound_prompt_projections.{j}.{w}",
                    rand(*shape))
    if method in ("IVLP", "LanguageOnly"):
        depth = depth or 12
        n_text = 2 if method == "IVLP" else 4
        put("prompt_learner.ctx", "ctx", rand(n_text, TEXT_WIDTH, dtype=torch.float16))
        for i in range(1, depth):
            put(f"text_encoder.transformer.resblocks.{i}.VPT_shallow", f"text_layer_prompts.{i}",
                rand(n_text, TEXT_WIDTH))
    if method in ("IVLP", "VPT"):
        depth = depth or 12
        n_vision, prefix = (2, "vision.") if method == "IVLP" else (8, "")
        put("image_encoder.VPT", prefix + "input_prompts", rand(n_vision, VISION_WIDTH))
        for i in range(1, depth):
            put(f"image_encoder.transformer.resblocks.{i}.VPT_shallow", f"{prefix}layer_prompts.{i}",
                rand(n_vision, VISION_WIDTH))
    if method != "VPT":  # the prompt learner's buffers, for the classes it was trained on
        n_ctx = original["prompt_learner.ctx"].shape[0]
        original["prompt_learner.token_prefix"] = rand(TRAINED_CLASSES, 1, TEXT_WIDTH, dtype=torch.float16)
        original["prompt_learner.token_suffix"] = rand(TRAINED_CLASSES, 76 - n_ctx, TEXT_WIDTH, dtype=torch.float16)
    return original, ours


def original_clip_tensors(clip_model):
    """The frozen CLIP inside the original CustomCLIP: image_encoder = clip.visual; text_encoder holds
    transformer, positional_embedding, ln_final and text_projection (not token_embedding)."""
    state = {}
    for key, value in clip_model.state_dict().items():
        if key.startswith("visual."):
            state["image_encoder." + key[len("visual."):]] = value
        elif key.startswith(("transformer.", "ln_final.")) or key in ("positional_embedding", "text_projection"):
            state["text_encoder." + key] = value
        elif key == "logit_scale":
            state[key] = value
    return state


def dassl_scheduler_state(lr=0.0035, max_epoch=5):
    """Dassl's ConstantWarmupScheduler.state_dict() after training: the cosine successor is pickled
    as an object (which torch.load(weights_only=True) refuses)."""
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=lr, momentum=0.9)
    param.sum().backward()
    optimizer.step()  # trained: the pickled optimizer's state holds momentum buffers (a defaultdict)
    successor = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, float(max_epoch))
    return {"successor": successor, "warmup_epoch": 1, "cons_lr": 1e-5, "base_lrs": [lr], "last_epoch": max_epoch,
            "_step_count": max_epoch + 1, "verbose": False, "_get_lr_called_within_step": False,
            "_last_lr": [lr * 0.3]}


def write_original_checkpoint(run_dir, method, clip_model, epoch=5, seed=0, drop=(), depth=None):
    """<run_dir>/<Name>/model.pth.tar-<epoch> + <Name>/checkpoint, as the originals' training wrote them.
    Returns {our prompt-learner key: value written}."""
    folder = os.path.join(run_dir, CONFIGS[method][2])
    os.makedirs(folder, exist_ok=True)
    prompts, ours = original_prompt_tensors(method, seed, depth)
    state = original_clip_tensors(clip_model)
    state.update({k: v for k, v in prompts.items() if k not in drop})
    momentum = {i: {"momentum_buffer": torch.zeros_like(v)} for i, v in enumerate(prompts.values())}
    checkpoint = {"state_dict": state, "epoch": epoch,
                  "optimizer": {"state": momentum, "param_groups": [{"lr": 0.001, "params": list(momentum)}]},
                  "scheduler": dassl_scheduler_state(), "val_result": None}
    torch.save(checkpoint, os.path.join(folder, f"model.pth.tar-{epoch}"))
    with open(os.path.join(folder, "checkpoint"), "w") as f:
        f.write(f"model.pth.tar-{epoch}\n")
    return ours


@pytest.fixture(scope="module")
def half_clip(tiny_clip_path):
    return load_clip(tiny_clip_path)  # fp16 weights, as in the originals' fp16 checkpoints


@pytest.mark.parametrize("method", list(CONFIGS))
def test_released_checkpoint_loads_with_eval_only(method, tmp_path, caltech_root, tiny_clip_path, half_clip, capsys):
    trainer_name, config, folder = CONFIGS[method]
    weights = tmp_path / "weights" / "base" / "seed1"
    expected = write_original_checkpoint(str(weights), method, half_clip)
    path = weights / folder / "model.pth.tar-5"
    with pytest.raises(pickle.UnpicklingError):  # the file really holds a pickled scheduler object
        torch.load(path, map_location="cpu", weights_only=True)
    out = tmp_path / "test_new"
    trainer = run_train(["--root", caltech_root, "--seed", 1, "--trainer", trainer_name,
                         "--dataset-config-file", "configs/datasets/caltech101.yaml",
                         "--config-file", f"configs/trainers/{config}.yaml", "--output-dir", out,
                         "--model-dir", weights, "--load-epoch", 5, "--eval-only",
                         *fast_opts(tiny_clip_path), "DATASET.NUM_SHOTS", 16, "DATASET.SUBSAMPLE_CLASSES", "new"])
    learner = trainer.model.prompt_learner
    loaded = learner.state_dict()
    assert set(loaded) == set(expected)
    for key, value in expected.items():
        torch.testing.assert_close(loaded[key], value.to(loaded[key].dtype), rtol=0, atol=0, msg=key)
    # token_prefix/suffix are rebuilt for the 5 new classes, not taken from the 7 trained ones.
    if method != "VPT":
        assert learner.class_prompts.token_prefix.shape[0] == 5
        assert learner.class_prompts.prompt_texts[0].startswith("a photo of a ")
    result = read_result(out)
    assert result["mode"] == "eval-only" and result["subsample"] == "new" and result["load_epoch"] == 5
    assert result["checkpoint"] == {"path": str(path), "epoch": 5}
    assert "Loading weights to " + folder in capsys.readouterr().out


def adapt_and_load(trainer_class, model, state):
    """trainer_class's checkpoint adaptation and strict loading, on `model` (no data needed)."""
    adapted = trainer_class.adapt_checkpoint_state(types.SimpleNamespace(model=model), state)
    PromptTrainer.load_trainable_state(model.prompt_learner, adapted, "released.pth")
    return adapted


TRAINERS = {"MaPLe": MaPLe, "IVLP": IVLP, "LanguageOnly": IVLP, "VPT": VPT}


@pytest.mark.parametrize("method", list(CONFIGS))
def test_missing_or_foreign_prompts_fail_loudly(method, tiny_clip):
    from test_maple_methods import build

    model = build(method, tiny_clip)
    clip_state = original_clip_tensors(tiny_clip)
    prompts, ours = original_prompt_tensors(method)
    adapted = adapt_and_load(TRAINERS[method], model, {**clip_state, **prompts})
    assert set(adapted) == set(ours)  # frozen CLIP, logit_scale, token_prefix/suffix dropped
    dropped = next(k for k in sorted(prompts, reverse=True) if not k.endswith(("token_prefix", "token_suffix")))
    with pytest.raises(CheckpointMismatch, match="missing"):
        adapt_and_load(TRAINERS[method], model, {k: v for k, v in {**clip_state, **prompts}.items() if k != dropped})
    with pytest.raises(CheckpointMismatch, match="unexpected"):
        foreign = {"prompt_learner.meta_net.weight": torch.zeros(1)}
        adapt_and_load(TRAINERS[method], model, {**clip_state, **prompts, **foreign})


def test_other_depth_other_method_and_other_backbone_are_refused(tiny_clip):
    from test_maple_methods import build

    clip_state = original_clip_tensors(tiny_clip)
    maple, ivlp = build("MaPLe", tiny_clip), build("IVLP", tiny_clip)
    shallower, _ = original_prompt_tensors("MaPLe", depth=3)  # the cross-dataset config's depth
    with pytest.raises(CheckpointMismatch, match="compound_prompts_text.7"):
        adapt_and_load(MaPLe, maple, {**clip_state, **shallower})
    maple_prompts, _ = original_prompt_tensors("MaPLe")
    with pytest.raises(CheckpointMismatch, match="proj.weight"):
        adapt_and_load(IVLP, ivlp, {**clip_state, **maple_prompts})
    ivlp_prompts, _ = original_prompt_tensors("IVLP")
    other_backbone = dict(clip_state)
    other_backbone["image_encoder.conv1.weight"] = torch.zeros(VISION_WIDTH, 3, 16, 16)  # patch 16, not 8
    with pytest.raises(CheckpointMismatch, match="another CLIP backbone"):
        adapt_and_load(IVLP, ivlp, {**other_backbone, **ivlp_prompts})


@torch.no_grad()
def test_our_checkpoints_load_into_another_model_with_identical_logits(tiny_clip):
    """Our checkpoints hold the prompt learner's own keys: adapting them changes nothing, and loading them
    into a model with other prompts gives exactly the saved model's logits."""
    from test_maple_methods import build

    images = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    for method, trainer_class in TRAINERS.items():
        model, other = build(method, tiny_clip).eval(), build(method, tiny_clip).eval()
        g = torch.Generator().manual_seed(1)
        for p in model.prompt_learner.parameters():  # saved prompts unlike the other model's
            p.add_(torch.randn(p.shape, generator=g) * 0.5)
        saved = {k: v.clone() for k, v in model.prompt_learner.state_dict().items()}
        assert not torch.equal(other(images), model(images)), method
        adapted = adapt_and_load(trainer_class, other, saved)
        assert set(adapted) == set(saved) and all(torch.equal(adapted[k], v) for k, v in saved.items()), method
        assert torch.equal(other(images), model(images)), method

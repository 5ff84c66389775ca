"""What the benchmark scripts share: random-weight CLIP models of the released architectures, each method's
model as its trainer builds it, and small timing helpers."""
import contextlib
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # trainers/ of this checkout

from vlprompt.clip_loader import clip  # noqa: E402
from vlprompt.precision import apply_to_clip  # noqa: E402

# ViT-B/16 as released (random weights time the same as trained ones).
VIT_B16 = dict(embed_dim=512, image_resolution=224, vision_layers=12, vision_width=768, vision_patch_size=16,
               context_length=77, vocab_size=49408, transformer_width=512, transformer_heads=8, transformer_layers=12)


def random_clip(architecture, precision, device):
    """A frozen CLIP of `architecture` (clip.model.CLIP's arguments) with seed-0 random weights, in the
    released checkpoints' dtypes, then `precision` applied."""
    torch.manual_seed(0)
    model = clip.model.CLIP(**architecture)
    clip.model.convert_weights(model)
    apply_to_clip(model, precision)
    for p in model.parameters():
        p.requires_grad_(False)
    return model.eval().to(device)


def method_model(method, clip_model, names):
    """The method's model, as its trainer builds it with the protocol config's values."""
    if method == "coop":
        from trainers.coop import CoOpCLIP
        return CoOpCLIP(clip_model, names, n_ctx=16, ctx_init="", csc=False, class_token_position="end")
    if method == "cocoop":
        from trainers.cocoop import CoCoOpCLIP
        return CoCoOpCLIP(clip_model, names, n_ctx=4, ctx_init="a photo of a")
    if method == "maple":
        from trainers.maple import MaPLeCLIP
        return MaPLeCLIP(clip_model, names, n_ctx=2, ctx_init="a photo of a", prompt_depth=9)
    raise ValueError(method)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def quiet(fn, *args, **kwargs):
    with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
        return fn(*args, **kwargs)

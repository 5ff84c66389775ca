"""A tiny randomly initialised CLIP, saved like a real checkpoint and loaded through the same path.

Tests and the offline demo cannot download CLIP. They build `clip.model.CLIP` with small widths but
the real tokenizer (vocabulary 49408, context 77), so prompts, token positions and EOT handling are
exactly those of the real models. Text and vision widths differ (64 vs 128) and the embedding width
is a third value (48), so a hard-coded dimension anywhere fails the tests.
"""
import torch

from vlprompt.clip_loader import clip

TINY_VIT = dict(embed_dim=48, image_resolution=32, vision_layers=12, vision_width=128, vision_patch_size=8,
                context_length=77, vocab_size=49408, transformer_width=64, transformer_heads=1,
                transformer_layers=12)
# ModifiedResNet: 32 px input -> 1x1 output map; attention-pool width = vision_width * 32.
TINY_RN = dict(embed_dim=48, image_resolution=32, vision_layers=(1, 1, 1, 1), vision_width=8,
               vision_patch_size=None, context_length=77, vocab_size=49408, transformer_width=64,
               transformer_heads=1, transformer_layers=12)


def build_tiny_clip(arch="vit", seed=0, **overrides):
    """A float32 CLIP with random weights. `arch` is "vit" or "rn"."""
    spec = dict(TINY_VIT if arch == "vit" else TINY_RN)
    spec.update(overrides)
    gen_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        model = clip.model.CLIP(**spec)
    finally:
        torch.random.set_rng_state(gen_state)
    return model.eval()


def save_tiny_clip(path, arch="vit", seed=0, jit=False, **overrides):
    """Write a tiny CLIP checkpoint: a state dict (default) or a traced JIT archive like OpenAI's."""
    model = build_tiny_clip(arch, seed, **overrides)
    if jit:
        res = model.visual.input_resolution
        image = torch.zeros(1, 3, res, res)
        text = clip.tokenize(["a photo"])
        traced = torch.jit.trace(model, (image, text), check_trace=False)
        traced.save(str(path))
    else:
        torch.save(model.state_dict(), str(path))
    return str(path)

"""Where MaPLe, IVLP (also language-only) and VPT put their prompts inside CLIP, checked against a
forward pass written here by hand: plain tensor ops around CLIP's own blocks, run the way CLIP runs
them (all 77 text tokens with the causal mask, block(x)), with the prompts placed as the papers and
the original code say:
- text: input prompts at positions 1..n after SOT (with positional embedding, like the word they
  replace); before block i (1 <= i < depth) positions 1..n are overwritten by that layer's prompts;
- vision: input prompts appended after the patch tokens, after the positional embedding (they get
  none), before ln_pre; before block i (1 <= i < depth) the last n tokens are overwritten.
The prompts are set to large random values so that a misplaced or missing prompt changes the output.
"""
import pytest
import torch

from trainers.independentVL import IVLPCLIP
from trainers.maple import MaPLeCLIP
from trainers.vpt import VPTCLIP
from vlprompt.clip_loader import tokenize

CLASSNAMES = ["face", "leopard", "motorbike", "grand_piano"]



@torch.no_grad()
def reference_text_features(clip_model, texts, ctx, deep):
    """CLIP's encode_text on `texts` with token rows 1..n replaced by ctx at the input and by deep[i]
    before block i."""
    tokens = tokenize(texts)
    n = ctx.shape[0]
    x = clip_model.token_embedding(tokens).clone()
    x[:, 1:1 + n] = ctx
    x = (x + clip_model.positional_embedding).permute(1, 0, 2)
    for i, block in enumerate(clip_model.transformer.resblocks):
        if i in deep:
            x = x.clone()
            x[1:1 + n] = deep[i].unsqueeze(1)
        x = block(x)
    x = clip_model.ln_final(x.permute(1, 0, 2))
    return x[torch.arange(len(texts)), tokens.argmax(dim=-1)] @ clip_model.text_projection


@torch.no_grad()
def reference_image_features(visual, images, prompts, deep):
    """CLIP's image tower with `prompts` appended after the patch tokens and the last n tokens
    replaced by deep[i] before block i."""
    x = visual.conv1(images)
    x = x.reshape(x.shape[0], x.shape[1], -1).permute(0, 2, 1)
    cls = visual.class_embedding + torch.zeros(x.shape[0], 1, x.shape[-1])
    x = torch.cat([cls, x], dim=1) + visual.positional_embedding
    if prompts is not None:
        x = torch.cat([x, prompts.unsqueeze(0).expand(x.shape[0], -1, -1)], dim=1)
    x = visual.ln_pre(x).permute(1, 0, 2)
    for i, block in enumerate(visual.transformer.resblocks):
        if i in deep:
            n = deep[i].shape[0]
            x = x.clone()
            x[-n:] = deep[i].unsqueeze(1)
        x = block(x)
    return visual.ln_post(x[0]) @ visual.proj


def linear(layer, x):
    return x @ layer.weight.t() + layer.bias


def scramble(module, scale=1.0, seed=0):
    """Large random values in every trainable tensor (so each prompt matters in the output)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * scale)


def logits_from(clip_model, image_features, text_features):
    image_features = image_features / image_features.norm(dim=-1, keepdim=True)
    text_features = text_features / text_features.norm(dim=-1, keepdim=True)
    return clip_model.logit_scale.exp() * image_features @ text_features.t()


@pytest.fixture
def images():
    return torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))


def assert_prompts_matter(clip_model, images, texts, text_features, image_features):
    """The prompted features differ clearly from plain CLIP's (so the comparisons above can fail)."""
    with torch.no_grad():
        if text_features is not None:
            plain = clip_model.encode_text(tokenize(texts))
            assert (plain - text_features).abs().max() > 1e-2
        if image_features is not None:
            assert (clip_model.encode_image(images) - image_features).abs().max() > 1e-2


@pytest.mark.parametrize("depth", [1, 5, 12])
def test_maple_matches_hand_written_forward(tiny_clip, images, depth):
    model = MaPLeCLIP(tiny_clip, CLASSNAMES, n_ctx=2, ctx_init="a photo of a", prompt_depth=depth).eval()
    learner = model.prompt_learner
    scramble(learner, scale=0.5)
    texts = [f"a photo of a {name.replace('_', ' ')}." for name in CLASSNAMES]
    deep_text = {i: learner.compound_prompts_text[i - 1] for i in range(1, depth)}
    deep_vision = {i: linear(learner.compound_prompt_projections[i - 1], learner.compound_prompts_text[i - 1])
                   for i in range(1, depth)}
    text = reference_text_features(tiny_clip, texts, learner.ctx, deep_text)
    image = reference_image_features(tiny_clip.visual, images, linear(learner.proj, learner.ctx), deep_vision)
    with torch.no_grad():
        static = model.static_inputs()
        torch.testing.assert_close(static[0], text, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(model.image_encoder(images, static[1], static[2]), image, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(model(images), logits_from(tiny_clip, image, text), rtol=1e-4, atol=1e-4)
    assert_prompts_matter(tiny_clip, images, texts, text, image)


@pytest.mark.parametrize("n_text, n_vision, depth_text, depth_vision", [(2, 2, 12, 12), (3, 4, 4, 7), (4, 0, 12, 0)])
def test_ivlp_matches_hand_written_forward(tiny_clip, images, n_text, n_vision, depth_text, depth_vision):
    model = IVLPCLIP(tiny_clip, CLASSNAMES, n_text, n_vision, "a photo of a", depth_text, depth_vision).eval()
    learner = model.prompt_learner
    scramble(learner, scale=0.5)
    texts = [f"a photo of a {name.replace('_', ' ')}." for name in CLASSNAMES]
    deep_text = {i: learner.text_layer_prompts[str(i)] for i in range(1, depth_text)}
    text = reference_text_features(tiny_clip, texts, learner.ctx, deep_text)
    if n_vision:
        deep_vision = {i: learner.vision.layer_prompts[str(i)] for i in range(1, depth_vision)}
        image = reference_image_features(tiny_clip.visual, images, learner.vision.input_prompts, deep_vision)
    else:  # deep language prompting: CLIP's own image tower
        assert learner.vision is None
        with torch.no_grad():
            image = tiny_clip.encode_image(images)
    with torch.no_grad():
        static = model.static_inputs()
        torch.testing.assert_close(static[0], text, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(model(images), logits_from(tiny_clip, image, text), rtol=1e-4, atol=1e-4)
    assert_prompts_matter(tiny_clip, images, texts, text, image if n_vision else None)


@pytest.mark.parametrize("n_ctx, depth", [(8, 12), (3, 1), (2, 6)])
def test_vpt_matches_hand_written_forward(tiny_clip, images, n_ctx, depth):
    model = VPTCLIP(tiny_clip, CLASSNAMES, n_ctx, depth).eval()
    learner = model.prompt_learner
    scramble(learner, scale=0.5)
    deep_vision = {i: learner.layer_prompts[str(i)] for i in range(1, depth)}
    image = reference_image_features(tiny_clip.visual, images, learner.input_prompts, deep_vision)
    texts = [f"a photo of a {name.replace('_', ' ')}." for name in CLASSNAMES]
    with torch.no_grad():
        text = tiny_clip.encode_text(tokenize(texts))  # fixed hand-crafted prompts
        torch.testing.assert_close(model(images), logits_from(tiny_clip, image, text), rtol=1e-4, atol=1e-4)
    assert_prompts_matter(tiny_clip, images, None, None, image)


def block_inputs(blocks):
    """Record each block's input (what its ln_1 sees) during the next forward passes."""
    seen, handles = {}, []
    for i, block in enumerate(blocks):
        handles.append(block.ln_1.register_forward_pre_hook(lambda m, args, i=i: seen.__setitem__(i, args[0].detach())))
    return seen, handles


def test_maple_hidden_states_hold_the_prompts_before_each_block(tiny_clip, images):
    depth, n = 4, 2
    model = MaPLeCLIP(tiny_clip, CLASSNAMES, n_ctx=n, ctx_init="a photo of a", prompt_depth=depth).eval()
    learner = model.prompt_learner
    scramble(learner, scale=0.5)
    text_seen, text_hooks = block_inputs(tiny_clip.transformer.resblocks)
    vision_seen, vision_hooks = block_inputs(tiny_clip.visual.transformer.resblocks)
    try:
        with torch.no_grad():
            model(images)
    finally:
        for handle in text_hooks + vision_hooks:
            handle.remove()
    with torch.no_grad():
        pos = tiny_clip.positional_embedding
        # Text, block 0: the learnable context at positions 1..n, with its positional embedding.
        torch.testing.assert_close(text_seen[0][1:1 + n], (learner.ctx + pos[1:1 + n]).unsqueeze(1).expand(-1, 4, -1))
        n_patches = (32 // 8) ** 2
        assert vision_seen[0].shape[0] == 1 + n_patches + n  # [CLS, patches, prompts]
        # Vision, block 0: F_0(P) appended last, without positional embedding (ln_pre applies to every token).
        expected = tiny_clip.visual.ln_pre(linear(learner.proj, learner.ctx))
        torch.testing.assert_close(vision_seen[0][-n:], expected.unsqueeze(1).expand(-1, 3, -1), rtol=1e-4, atol=1e-5)
        for i in range(1, depth):
            deep_text = learner.compound_prompts_text[i - 1]
            torch.testing.assert_close(text_seen[i][1:1 + n], deep_text.unsqueeze(1).expand(-1, 4, -1))
            deep_vision = linear(learner.compound_prompt_projections[i - 1], deep_text)
            torch.testing.assert_close(vision_seen[i][-n:], deep_vision.unsqueeze(1).expand(-1, 3, -1),
                                       rtol=1e-5, atol=1e-6)
        # From block `depth` on nothing is injected: the previous block's outputs are carried forward.
        last = learner.compound_prompts_text[-1]
        assert (text_seen[depth][1:1 + n] - last.unsqueeze(1)).abs().max() > 1e-3


def test_text_tower_refuses_deep_prompts_longer_than_the_context_slots(tiny_clip):
    """As the vision tower refuses deep prompts that do not match its input prompts, the text tower refuses
    deep prompts longer than the context they replace: they would overwrite class-name tokens."""
    from vlprompt.prompted_clip import PromptedTextEncoder
    from vlprompt.prompts import ClassPrompts

    tower = PromptedTextEncoder(tiny_clip)
    n = 2
    class_prompts = ClassPrompts(tower, CLASSNAMES, "a photo of a", n)
    g = torch.Generator().manual_seed(0)
    ctx = torch.randn(n, 64, generator=g)
    prompts, eot = class_prompts(ctx), class_prompts.eot_indices
    fitting = [None, None, None, torch.randn(n, 64, generator=g)]
    too_long = [None, None, None, torch.randn(n + 1, 64, generator=g)]

    texts = [f"a photo of a {name.replace('_', ' ')}." for name in CLASSNAMES]
    with torch.no_grad():  # deep prompts of the context's length replace exactly the context
        torch.testing.assert_close(tower(prompts, eot, fitting, n_ctx=n),
                                   reference_text_features(tiny_clip, texts, ctx, {3: fitting[3]}),
                                   rtol=1e-4, atol=1e-5)
        with pytest.raises(ValueError, match=r"deep text prompts at layer 3 have 3 tokens; the prompts have 2 "
                                             r"context slots after SOT"):
            tower(prompts, eot, too_long, n_ctx=n)
        # Per-sequence deep prompts [N, n, width] are measured the same way.
        with pytest.raises(ValueError, match="layer 3 have 3 tokens; the prompts have 2 context slots"):
            tower(prompts, eot, [None, None, None, too_long[3].expand(len(CLASSNAMES), -1, -1)], n_ctx=n)
        # Without n_ctx the tower still refuses a deep prompt that would reach the sequences' last (EOT) token.
        length = prompts.shape[1]
        tower(prompts, eot, [None, torch.zeros(length - 2, 64)])
        with pytest.raises(ValueError, match=f"layer 1 have {length - 1} tokens; the prompts have {length - 2} "):
            tower(prompts, eot, [None, torch.zeros(length - 1, 64)])

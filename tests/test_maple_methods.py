"""MaPLe, IVLP (also language-only) and VPT as the originals build them: initialisation, coupling,
PROMPT_DEPTH semantics, trainable parameter sets and counts (on a ViT-B/16-shaped CLIP), dtypes in
each precision, and evaluation with the image-independent inputs computed once."""
import pytest
import torch
import torch.nn.functional as F

from trainers.independentVL import IVLPCLIP
from trainers.maple import MaPLeCLIP
from trainers.vpt import VPTCLIP
from vlprompt.clip_loader import clip, tokenize

CLASSNAMES = ["face", "leopard", "motorbike", "grand_piano", "ant"]



def build(method, clip_model, classnames=CLASSNAMES):
    """The four configurations of the MaPLe paper (reference C.7), at their config values."""
    if method == "MaPLe":
        return MaPLeCLIP(clip_model, classnames, n_ctx=2, ctx_init="a photo of a", prompt_depth=9)
    if method == "IVLP":
        return IVLPCLIP(clip_model, classnames, n_ctx_text=2, n_ctx_vision=2, ctx_init="a photo of a",
                        depth_text=12, depth_vision=12)
    if method == "LanguageOnly":
        return IVLPCLIP(clip_model, classnames, n_ctx_text=4, n_ctx_vision=0, ctx_init="a photo of a",
                        depth_text=12, depth_vision=0)
    assert method == "VPT"
    return VPTCLIP(clip_model, classnames, n_ctx=8, prompt_depth=12)


METHODS = ["MaPLe", "IVLP", "LanguageOnly", "VPT"]


# ------------------------------------------------------------------------------- initialisation
def test_maple_context_is_the_first_words_and_the_whole_phrase_stays(tiny_clip):
    model = MaPLeCLIP(tiny_clip, CLASSNAMES, n_ctx=2, ctx_init="a photo of a", prompt_depth=9)
    learner = model.prompt_learner
    words = tiny_clip.token_embedding(tokenize("a photo of a"))[0]
    torch.testing.assert_close(learner.ctx.detach(), words[1:3])  # "a", "photo"
    prompts = learner.class_prompts
    assert prompts.prompt_texts[3] == "a photo of a grand piano."
    # The fixed part after the 2 learnable vectors starts with "of a" and then the class name.
    full = tiny_clip.token_embedding(tokenize("a photo of a grand piano."))[0]
    n_suffix = prompts.token_suffix.shape[1]
    torch.testing.assert_close(prompts.token_suffix[3], full[3:3 + n_suffix])
    torch.testing.assert_close(prompts.token_prefix[3, 0], full[0])  # SOT


def test_maple_coupling_and_depth(tiny_clip):
    depth = 9
    learner = MaPLeCLIP(tiny_clip, CLASSNAMES, 2, "a photo of a", depth).prompt_learner
    text_width, vision_width = tiny_clip.ln_final.weight.shape[0], tiny_clip.visual.conv1.weight.shape[0]
    assert (text_width, vision_width) == (64, 128)
    assert tuple(learner.proj.weight.shape) == (vision_width, text_width)
    assert len(learner.compound_prompts_text) == depth - 1 == len(learner.compound_prompt_projections)
    assert all(tuple(p.shape) == (2, text_width) for p in learner.compound_prompts_text)
    deep = torch.stack([p.detach() for p in learner.compound_prompts_text])
    assert 0.01 < deep.std().item() < 0.03 and abs(deep.mean().item()) < 0.01  # N(0, 0.02^2)
    assert not torch.equal(learner.compound_prompts_text[0], learner.compound_prompts_text[1])
    first = learner.compound_prompt_projections[0]
    for layer in learner.compound_prompt_projections[1:]:  # identical copies of one initialised Linear...
        assert torch.equal(layer.weight, first.weight) and torch.equal(layer.bias, first.bias)
        assert layer.weight.data_ptr() != first.weight.data_ptr()  # ...that are trained separately
    assert not torch.equal(learner.proj.weight, first.weight)  # F_0 is initialised on its own
    _, deep_text, vision_prompts, deep_vision = learner()
    assert len(deep_text) == len(deep_vision) == depth and deep_text[0] is None and deep_vision[0] is None
    assert tuple(vision_prompts.shape) == (2, vision_width)
    couple = learner.compound_prompt_projections[2]
    torch.testing.assert_close(deep_vision[3], learner.compound_prompts_text[2] @ couple.weight.t() + couple.bias)


def test_maple_shallow_and_bad_depths(tiny_clip):
    shallow = MaPLeCLIP(tiny_clip, CLASSNAMES, 2, "a photo of a", 1).prompt_learner
    assert len(shallow.compound_prompts_text) == 0
    assert sum(p.numel() for p in shallow.parameters()) == 2 * 64 + 64 * 128 + 128  # ctx and F_0 only
    for depth in (0, 13):
        with pytest.raises(ValueError, match="PROMPT_DEPTH"):
            MaPLeCLIP(tiny_clip, CLASSNAMES, 2, "a photo of a", depth)


def test_random_context_when_no_words_or_more_than_four(tiny_clip):
    learner = MaPLeCLIP(tiny_clip, CLASSNAMES, 5, "a photo of a", 3).prompt_learner
    assert learner.class_prompts.prompt_texts[0] == "X X X X X face."
    assert 0.01 < learner.ctx.detach().std().item() < 0.03
    learner = IVLPCLIP(tiny_clip, CLASSNAMES, 2, 2, "", 3, 3).prompt_learner
    assert learner.class_prompts.prompt_texts[0] == "X X face."
    with pytest.raises(ValueError, match="fewer than"):
        MaPLeCLIP(tiny_clip, CLASSNAMES, 3, "a photo", 3)


def test_ivlp_prompts_are_independent_and_per_layer(tiny_clip):
    learner = IVLPCLIP(tiny_clip, CLASSNAMES, 2, 3, "a photo of a", 5, 7).prompt_learner
    torch.testing.assert_close(learner.ctx.detach(), tiny_clip.token_embedding(tokenize("a photo of a"))[0, 1:3])
    assert sorted(learner.text_layer_prompts.keys(), key=int) == [str(i) for i in range(1, 5)]
    assert sorted(learner.vision.layer_prompts.keys(), key=int) == [str(i) for i in range(1, 7)]
    assert tuple(learner.vision.input_prompts.shape) == (3, 128)
    assert tuple(learner.text_layer_prompts["4"].shape) == (2, 64)
    _, deep_text, vision_prompts, deep_vision = learner()
    assert len(deep_text) == 5 and len(deep_vision) == 7
    assert deep_text[4] is learner.text_layer_prompts["4"] and deep_vision[6] is learner.vision.layer_prompts["6"]
    with pytest.raises(ValueError, match="PROMPT_DEPTH_TEXT must be >= 1"):
        IVLPCLIP(tiny_clip, CLASSNAMES, 2, 2, "a photo of a", 0, 12)


def test_language_only_has_no_vision_prompts(tiny_clip):
    model = build("LanguageOnly", tiny_clip)
    assert model.prompt_learner.vision is None
    assert all(not name.startswith("vision") for name, _ in model.prompt_learner.named_parameters())
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        text_features, vision_prompts, deep_vision = model.static_inputs()
        assert vision_prompts is None and deep_vision is None
        expected = F.normalize(tiny_clip.encode_image(images), dim=-1) @ F.normalize(text_features, dim=-1).t()
        torch.testing.assert_close(model(images), tiny_clip.logit_scale.exp() * expected)


def test_vision_prompts_need_a_vit_and_language_only_runs_on_resnet(tiny_rn_clip_path):
    from vlprompt.clip_loader import load_clip

    resnet = load_clip(tiny_rn_clip_path).float()
    for method in ("MaPLe", "IVLP", "VPT"):
        with pytest.raises(ValueError, match="need a ViT backbone"):
            build(method, resnet)
    logits = build("LanguageOnly", resnet)(torch.randn(2, 3, 32, 32))
    assert logits.shape == (2, len(CLASSNAMES))


def test_vpt_uses_fixed_hand_crafted_text_features(tiny_clip):
    model = build("VPT", tiny_clip)
    texts = [f"a photo of a {name.replace('_', ' ')}." for name in CLASSNAMES]
    with torch.no_grad():
        expected = F.normalize(tiny_clip.encode_text(tokenize(texts)), dim=-1)
        text_features, _, _ = model.static_inputs()
    torch.testing.assert_close(text_features, expected, rtol=1e-4, atol=1e-5)
    assert not text_features.requires_grad
    names = {n for n, _ in model.prompt_learner.named_parameters()}
    assert names == {"input_prompts"} | {f"layer_prompts.{i}" for i in range(1, 12)}  # no text parameters


# -------------------------------------------------------------- ViT-B/16 trainable parameter counts
@pytest.fixture(scope="module")
def vit_b16_shaped_clip():
    """clip.model.CLIP with ViT-B/16's dimensions and random weights (nothing downloaded)."""
    torch.manual_seed(0)
    return clip.model.CLIP(embed_dim=512, image_resolution=224, vision_layers=12, vision_width=768,
                           vision_patch_size=16, context_length=77, vocab_size=49408, transformer_width=512,
                           transformer_heads=8, transformer_layers=12).eval()


def test_trainable_parameter_counts_equal_the_originals_on_vit_b16(vit_b16_shaped_clip):
    counts = {m: sum(p.numel() for p in build(m, vit_b16_shaped_clip, ["cat", "dog"]).prompt_learner.parameters())
              for m in METHODS}
    assert counts == {"MaPLe": 3_555_072, "IVLP": 30_720, "LanguageOnly": 12 * 4 * 512, "VPT": 73_728}


def test_maple_trainable_names_are_the_originals(vit_b16_shaped_clip):
    learner = build("MaPLe", vit_b16_shaped_clip, ["cat"]).prompt_learner
    original = {"ctx", "proj.weight", "proj.bias"}
    original |= {f"compound_prompts_text.{i}" for i in range(8)}
    original |= {f"compound_prompt_projections.{i}.{w}" for i in range(8) for w in ("weight", "bias")}
    assert {n for n, _ in learner.named_parameters()} == original
    assert set(learner.state_dict()) == original  # no frozen CLIP and no token_prefix/suffix in checkpoints
    sizes = {"ctx": 1_024, "proj": 393_984, "deep prompts": 8_192, "deep projections": 3_151_872}
    assert learner.ctx.numel() == sizes["ctx"]
    assert sum(p.numel() for p in learner.proj.parameters()) == sizes["proj"]
    assert sum(p.numel() for p in learner.compound_prompts_text) == sizes["deep prompts"]
    assert sum(p.numel() for p in learner.compound_prompt_projections.parameters()) == sizes["deep projections"]


# ------------------------------------------------------------------------------------ precision
@pytest.fixture(scope="module")
def half_clip(tiny_clip_path):
    """The tiny CLIP as clip.build_model leaves it (fp16 weights): PREC fp16's model."""
    from vlprompt.clip_loader import load_clip

    model = load_clip(tiny_clip_path)
    assert model.visual.conv1.weight.dtype == torch.float16
    return model


@pytest.mark.parametrize("method", METHODS)
def test_fp16_mode_has_the_originals_dtypes_and_matches_fp32(method, half_clip, tiny_clip):
    torch.manual_seed(0)
    model = build(method, half_clip)
    dtypes = {name: p.dtype for name, p in model.prompt_learner.named_parameters()}
    half = {n for n, d in dtypes.items() if d == torch.float16}
    if method == "MaPLe":  # ctx and proj in half (as the original's explicit .half()); deep ones in float32
        assert half == {"ctx", "proj.weight", "proj.bias"}
    elif method in ("IVLP", "LanguageOnly"):
        assert half == {"ctx"}
    else:
        assert half == set()
    reference = build(method, tiny_clip)  # the fp32 model with the same prompt values
    reference.prompt_learner.load_state_dict({k: v.float() for k, v in model.prompt_learner.state_dict().items()})
    assert all(p.dtype == torch.float32 for p in reference.prompt_learner.parameters())
    images = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    logits = model(images)
    assert logits.dtype == torch.float16
    logits.float().logsumexp(dim=-1).sum().backward()  # half-precision training step works
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.prompt_learner.parameters())
    with torch.no_grad():
        torch.testing.assert_close(logits.detach().float(), reference(images), rtol=0, atol=0.03)  # logits spread ~1


# ---------------------------------------------------------------------- static inputs computed once
@pytest.mark.parametrize("method", METHODS)
def test_cached_static_inputs_equal_per_batch_recomputation(method, tiny_clip):
    torch.manual_seed(0)
    model = build(method, tiny_clip).eval()
    with torch.no_grad():
        for p in model.prompt_learner.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    batches = [torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(i)) for i in range(3)]
    with torch.no_grad():
        per_batch = [model(images) for images in batches]
    calls = []
    static_inputs = model.static_inputs
    model.static_inputs = lambda: calls.append(1) or static_inputs()
    try:
        with model.cached_static_inputs():
            cached = [model(images) for images in batches]
    finally:
        del model.static_inputs
    assert len(calls) == 1
    for a, b in zip(per_batch, cached):
        torch.testing.assert_close(a, b, rtol=0, atol=0)

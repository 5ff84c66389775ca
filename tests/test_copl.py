"""CoPL (trainers/copl.py) on the tiny CLIP: the equations of the reconstruction, the uniform-attention
limit (a CoCoOp-like model), the relevance weights of the prompts (a prompt no patch matches weighs less),
batched text encoding against a per-image loop, every option combination, option errors, and learning an
easy synthetic task."""
import itertools
import math
import os

import pytest
import torch
import torch.nn.functional as F

from trainers.cocoop import PromptLearner as CoCoOpPromptLearner
from trainers.copl import COMBINES, PATCH_FEATURES, SCORES, WEIGHTINGS, CoPLCLIP, PromptLearner
from vlprompt.config import build_config
from vlprompt.engine import build_trainer
from vlprompt.testing.fake_data import class_colour

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLASSNAMES = ["accordion", "anchor", "barrel"]
N_PATCHES = 16  # 32 px images, patch 8



def build(clip_model, patch_features="after_proj", score="scaled_dot", combine="add", ctx_init="a photo of a",
          n_ctx=4, classnames=CLASSNAMES, prompt_batch=8192, seed=0, weighting="none"):
    torch.manual_seed(seed)
    return CoPLCLIP(clip_model, classnames, n_ctx, ctx_init, patch_features, score, combine, prompt_batch,
                    weighting=weighting)


def images(n, seed=1):
    return torch.randn(n, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def meta_net_by_hand(learner, z):
    """h(z) = W2 relu(W1 z + b1) + b2, written out."""
    net = learner.meta_net
    hidden = torch.relu(z @ net.linear1.weight.t() + net.linear1.bias)
    return hidden @ net.linear2.weight.t() + net.linear2.bias


def randomise(learner, seed=2, ctx_scale=1.0):
    """Move the learner away from its initialisation so that the attention is far from uniform."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        learner.ctx.copy_(ctx_scale * torch.randn(learner.ctx.shape, generator=g))
        for linear in (learner.meta_net.linear1, learner.meta_net.linear2):
            linear.weight.copy_(torch.randn(linear.weight.shape, generator=g) / linear.in_features ** 0.5)
        if hasattr(learner, "align"):
            learner.align.weight.copy_(torch.randn(learner.align.weight.shape, generator=g))


# ------------------------------------------------------------------------------------ the equations
@torch.no_grad()
@pytest.mark.parametrize("score", SCORES)
def test_alignment_is_a_distribution_over_patches_for_each_context_token(tiny_clip, score):
    model = build(tiny_clip, score=score)
    learner = model.prompt_learner
    randomise(learner)
    _, patches = model.encode_image(images(3))
    z = F.normalize(patches, dim=-1)
    context, alpha = learner.conditioned_context(z)

    assert alpha.shape == (3, 4, N_PATCHES)
    assert (alpha >= 0).all()
    torch.testing.assert_close(alpha.sum(dim=-1), torch.ones(3, 4), atol=1e-6, rtol=0)
    # each context token weighs the patches its own way, and the weights depend on the image
    assert (alpha[:, 0] - alpha[:, 1]).abs().max() > 1e-3
    assert (alpha[0] - alpha[1]).abs().max() > 1e-3
    assert (alpha - 1 / N_PATCHES).abs().max() > 1e-2

    # the reconstruction's equations, written out independently
    v = learner.ctx.detach()
    pi = meta_net_by_hand(learner, z)
    if score == "general":
        scores = torch.einsum("md,bnd->bmn", v, z @ learner.align.weight.t())
    else:
        scores = torch.einsum("md,bnd->bmn", v, pi)
        if score == "scaled_dot":
            scores = scores / math.sqrt(v.shape[-1])
    expected_alpha = torch.softmax(scores, dim=-1)
    torch.testing.assert_close(alpha, expected_alpha, atol=1e-6, rtol=1e-5)
    expected_context = v.unsqueeze(0) + torch.einsum("bmn,bnd->bmd", expected_alpha, pi)  # v_m + sum_j alpha_mj pi_j
    torch.testing.assert_close(context, expected_context, atol=1e-6, rtol=1e-5)


def _uniform_shift_check(learner, z):
    """With uniform attention, every context token receives the same shift: the mean of h(z_j)."""
    context, alpha = learner.conditioned_context(z)
    assert torch.equal(alpha, torch.full_like(alpha, 1 / N_PATCHES))
    shift = context - learner.ctx.unsqueeze(0)
    per_patch = torch.stack([learner.meta_net(z[:, j]) for j in range(z.shape[1])], dim=1)  # one patch at a time
    mean = per_patch.mean(dim=1)
    for m in range(shift.shape[1]):
        torch.testing.assert_close(shift[:, m], mean, atol=1e-12, rtol=1e-12)
    # and that is not the Meta-Net of the mean patch (ReLU): the patches really are averaged after h
    assert (learner.meta_net(z.mean(dim=1)) - mean).abs().max() > 1e-6


@torch.no_grad()
def test_uniform_attention_gives_every_context_token_the_mean_patch_token(tiny_clip, monkeypatch):
    # "general" starts with W_a = 0: exactly uniform attention, whatever the context vectors are
    model = build(tiny_clip, score="general")
    learner = model.prompt_learner.double()
    _, patches = model.encode_image(images(3))
    z = F.normalize(patches.double(), dim=-1)
    _uniform_shift_check(learner, z)

    # the same limit for the default score, forced by scores that are constant over the patches
    model = build(tiny_clip)
    learner = model.prompt_learner.double()
    randomise(learner)
    def constant_over_patches(z, tokens):
        return torch.arange(4, dtype=z.dtype).view(1, 4, 1).expand(z.shape[0], 4, z.shape[1])

    monkeypatch.setattr(learner, "scores", constant_over_patches)
    _uniform_shift_check(learner, z)


@torch.no_grad()
@pytest.mark.parametrize("score", SCORES)
def test_an_image_whose_patches_agree_gets_the_cocoop_context(tiny_clip, score):
    """If every patch equals the global feature, CoPL's dynamic tokens are CoCoOp's v_m + h(g)
    (same context, same Meta-Net weights) whatever the attention."""
    model = build(tiny_clip, score=score)
    learner = model.prompt_learner
    randomise(learner)
    torch.manual_seed(0)
    cocoop = CoCoOpPromptLearner(model.text_encoder, CLASSNAMES, model.image_encoder.output_dim, 4, "a photo of a")
    cocoop.ctx.copy_(learner.ctx)
    cocoop.meta_net.load_state_dict(learner.meta_net.state_dict())
    g = F.normalize(model.image_encoder(images(2)), dim=-1)
    context, _ = learner.conditioned_context(g.unsqueeze(1).expand(-1, N_PATCHES, -1))
    torch.testing.assert_close(context, cocoop.conditioned_context(g), atol=1e-6, rtol=1e-5)


@torch.no_grad()
def test_concat_and_tanh_start_from_the_additive_tokens(tiny_clip):
    x = images(2)
    add = build(tiny_clip)
    _, patches = add.encode_image(x)
    z = F.normalize(patches, dim=-1)
    expected, _ = add.prompt_learner.conditioned_context(z)
    concat = build(tiny_clip, combine="concat")
    tanh = build(tiny_clip, combine="tanh")
    torch.testing.assert_close(concat.prompt_learner.conditioned_context(z)[0], expected, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(tanh.prompt_learner.conditioned_context(z)[0], torch.tanh(expected),
                               atol=1e-6, rtol=1e-5)


@torch.no_grad()
def test_patch_features_before_and_after_proj(tiny_clip):
    x = images(2)
    after = build(tiny_clip, patch_features="after_proj")
    before = build(tiny_clip, patch_features="before_proj")
    g_after, z_after = after.encode_image(x)
    g_before, z_before = before.encode_image(x)
    assert z_after.shape == (2, N_PATCHES, 48) and z_before.shape == (2, N_PATCHES, 128)
    torch.testing.assert_close(g_before, g_after)
    torch.testing.assert_close(z_before @ tiny_clip.visual.proj, z_after, atol=1e-5, rtol=1e-5)
    # ln_post ran on them: every token has zero mean over its features
    assert z_before.mean(dim=-1).abs().max() < 1e-4
    # the Meta-Net's input width comes from the model: embed dim after proj, vision width before
    assert after.prompt_learner.meta_net.linear1.in_features == 48
    assert before.prompt_learner.meta_net.linear1.in_features == 128
    assert before.prompt_learner.meta_net.linear1.out_features == 128 // 16
    assert before.prompt_learner.meta_net.linear2.out_features == 64  # text width
    assert before.prompt_learner.ctx.shape == (4, 64)


# ------------------------------------------------------------------------------- prompt weighting
def test_relevance_weights_by_hand():
    scores = torch.tensor([[[0.0, 0.0, 0.0], [5.0, -1.0, 0.0], [-2.0, -2.0, -2.0]]])  # 3 tokens, 3 patches
    relevance = torch.tensor([0.0, math.log((math.exp(5) + math.exp(-1) + 1) / 3), -2.0])
    expected = 3 * torch.softmax(relevance, dim=0)
    torch.testing.assert_close(PromptLearner.relevance_weights(scores)[0], expected, rtol=1e-6, atol=1e-7)


@torch.no_grad()
def test_a_prompt_irrelevant_to_every_patch_gets_less_weight_than_a_relevant_one(tiny_clip):
    """The Meta-Net is set so that every patch token pi_j lies in the span of the first 8 text dimensions
    (and differs from patch to patch). Context token 0 points along the mean patch token: relevant to the
    patches. Token 1 lives in the other dimensions: orthogonal to every pi_j, so all its scores are 0."""
    model = build(tiny_clip, n_ctx=2, ctx_init="", weighting="relevance")
    learner = model.prompt_learner
    g = torch.Generator().manual_seed(3)
    width = learner.ctx.shape[-1]
    net = learner.meta_net
    net.linear1.weight.copy_(torch.randn(net.linear1.weight.shape, generator=g))
    w2 = torch.zeros(net.linear2.weight.shape)
    w2[:8] = torch.randn(8, w2.shape[1], generator=g)
    net.linear2.weight.copy_(w2)
    net.linear2.bias.zero_()
    net.linear2.bias[:8] = torch.randn(8, generator=g)
    _, patches = model.encode_image(images(2))
    z = F.normalize(patches, dim=-1)
    pi = learner.patch_tokens(z)
    assert pi[..., 8:].abs().max() == 0 and pi.std(dim=1).max() > 1e-2  # in the subspace, varying over patches
    relevant = pi.mean(dim=(0, 1))
    irrelevant = torch.zeros(width)
    irrelevant[8:] = torch.randn(width - 8, generator=g)
    irrelevant *= relevant.norm() / irrelevant.norm()  # same length: only the direction differs
    learner.ctx.copy_(torch.stack([relevant, irrelevant]))

    context, alpha, weights = learner.dynamic_tokens(z)
    scores = learner.scores(z, pi)
    assert scores[:, 1].abs().max() < 1e-6 and (scores[:, 0].mean(dim=-1) > 0).all()
    assert (weights[:, 0] > 1).all() and (weights[:, 1] < 1).all() and (weights[:, 0] > weights[:, 1]).all()
    torch.testing.assert_close(weights.sum(dim=-1), torch.full((2,), 2.0))
    # v_m(x) = v_m + w_m c_m, with c_m the alignment-weighted patch tokens
    c = torch.einsum("bmn,bnd->bmd", alpha, pi)
    torch.testing.assert_close(context, learner.ctx + weights.unsqueeze(-1) * c, rtol=1e-5, atol=1e-6)

    # Without weighting (the default) the same inputs give every token weight 1: v_m + c_m.
    learner.weighting = "none"
    unweighted, _, ones = learner.dynamic_tokens(z)
    assert torch.equal(ones, torch.ones(2, 2))
    torch.testing.assert_close(unweighted, learner.ctx + c, rtol=1e-5, atol=1e-6)


@torch.no_grad()
def test_equal_relevance_gives_the_unweighted_model(tiny_clip):
    """SCORE general starts with W_a = 0: every token's scores are 0, so the weights are all 1 and the
    relevance-weighted model starts exactly where the unweighted one does."""
    x = images(3)
    weighted = build(tiny_clip, score="general", weighting="relevance")
    plain = build(tiny_clip, score="general")
    assert torch.equal(weighted(x), plain(x))
    _, patches = weighted.encode_image(x)
    assert torch.equal(weighted.prompt_learner.dynamic_tokens(F.normalize(patches, dim=-1))[2], torch.ones(3, 4))


def test_weighting_is_a_trainer_option(tmp_path, caltech_root, tiny_clip_path):
    from helpers import fast_opts

    assert build_config().TRAINER.COPL.WEIGHTING == "none"
    cfg = build_config(os.path.join(REPO_ROOT, "configs/datasets/caltech101.yaml"),
                       os.path.join(REPO_ROOT, "configs/trainers/CoPL/vit_b16_c4_ep10_batch1_ctxv1.yaml"),
                       opts=["TRAINER.NAME", "CoPL", "TRAINER.COPL.WEIGHTING", "relevance", "DATASET.ROOT", caltech_root,
                             "OUTPUT_DIR", str(tmp_path), "DATASET.NUM_SHOTS", "1", *fast_opts(tiny_clip_path)])
    trainer = build_trainer(cfg)
    assert trainer.model.prompt_learner.weighting == "relevance"
    # No new tensors: checkpoints are the same with either weighting.
    assert set(trainer.model.prompt_learner.state_dict()) == {"ctx", "meta_net.linear1.weight", "meta_net.linear1.bias",
                                                             "meta_net.linear2.weight", "meta_net.linear2.bias"}


# ----------------------------------------------------------------------------- batched text encoding
@torch.no_grad()
@pytest.mark.parametrize("options", [("after_proj", "scaled_dot", "add"), ("before_proj", "general", "tanh")])
def test_batched_logits_equal_a_per_image_loop(tiny_clip, options, monkeypatch):
    model = build(tiny_clip, *options, prompt_batch=7)  # 3 classes: 2 images per text-tower call
    randomise(model.prompt_learner, ctx_scale=0.05)
    x = images(5)
    calls = []
    encode = model.text_encoder.forward

    def counting_forward(prompts, eot):
        calls.append(prompts.shape[0])
        return encode(prompts, eot)

    monkeypatch.setattr(model.text_encoder, "forward", counting_forward)
    batched = model(x)
    assert calls == [6, 6, 3]  # chunks of whole images, never one call per image

    learner = model.prompt_learner
    rows = []
    for i in range(5):
        g, patches = model.encode_image(x[i:i + 1])
        context, _ = learner.conditioned_context(F.normalize(patches, dim=-1))
        prompts = learner.class_prompts(context[0])  # [n_cls, L, width]: the static CoOp path
        text = encode(prompts, learner.eot_indices)
        rows.append(model.logit_scale.exp() * F.normalize(g, dim=-1) @ F.normalize(text, dim=-1).t())
    looped = torch.cat(rows)
    torch.testing.assert_close(batched, looped, atol=1e-5, rtol=1e-5)
    assert looped.std(dim=0).max() > 1e-3  # the images get different logits

    calls.clear()
    model.prompt_batch = 8192
    torch.testing.assert_close(model(x), looped, atol=1e-5, rtol=1e-5)
    assert calls == [15]


# ------------------------------------------------------------------------------------------ options
@pytest.mark.parametrize("weighting", WEIGHTINGS)
@pytest.mark.parametrize("patch_features,score,combine", list(itertools.product(PATCH_FEATURES, SCORES, COMBINES)))
def test_every_option_combination_runs_forward_and_backward(tiny_clip, patch_features, score, combine, weighting):
    model = build(tiny_clip, patch_features, score, combine, weighting=weighting)
    learner = model.prompt_learner
    names = [n for n, _ in learner.named_parameters()]
    assert ("align.weight" in names) == (score == "general")
    assert ({"combine.weight", "combine.bias"} <= set(names)) == (combine != "add")
    logits = model(images(2))
    assert logits.shape == (2, 3) and torch.isfinite(logits).all()
    loss = F.cross_entropy(logits, torch.tensor([0, 2]))
    grads = torch.autograd.grad(loss, list(learner.parameters()))
    for name, grad in zip(names, grads):
        assert torch.isfinite(grad).all(), name
        assert grad.abs().sum() > 0, f"{name} gets no gradient"


def test_half_precision_towers_keep_the_prompt_learner_in_their_dtype(tiny_clip_path):
    from vlprompt.clip_loader import load_clip

    clip_fp16 = load_clip(tiny_clip_path)  # CLIP's own fp16 conversion, as PREC fp16 keeps it
    model = build(clip_fp16, "before_proj", "general", "tanh")
    assert {p.dtype for p in model.prompt_learner.parameters()} == {torch.float16}
    logits = model(images(2))
    assert logits.dtype == torch.float16 and torch.isfinite(logits).all()


@pytest.mark.parametrize("key,value", [("PATCH_FEATURES", "cls"), ("SCORE", "cosine"), ("COMBINE", "mul"),
                                       ("WEIGHTING", "max")])
def test_unknown_option_values_fail_naming_the_key_and_the_choices(key, value):
    cfg = build_config(overrides={"TRAINER.NAME": "CoPL", f"TRAINER.COPL.{key}": value})
    allowed = {"PATCH_FEATURES": PATCH_FEATURES, "SCORE": SCORES, "COMBINE": COMBINES, "WEIGHTING": WEIGHTINGS}[key]
    with pytest.raises(ValueError, match=f"TRAINER.COPL.{key} '{value}' is not allowed: expected one of") as error:
        build_trainer(cfg)
    assert all(choice in str(error.value) for choice in allowed) and repr(value) in str(error.value)


def test_plain_arguments_are_checked_too(tiny_clip):
    with pytest.raises(ValueError, match="score 'cosine' is not allowed: expected one of"):
        build(tiny_clip, score="cosine")
    with pytest.raises(ValueError, match="patch_features 'cls' is not allowed: expected one of"):
        build(tiny_clip, patch_features="cls")


def test_a_resnet_backbone_is_refused_with_a_clear_error(tiny_rn_clip_path):
    from vlprompt.clip_loader import load_clip

    with pytest.raises(ValueError, match="needs a ViT backbone"):
        build(load_clip(tiny_rn_clip_path).float())


# ----------------------------------------------------------------------------------------- learning
def colour_images(n_classes, per_class, seed=0):
    """One colour per class (fake_data's palette) plus noise, normalised roughly as CLIP does."""
    g = torch.Generator().manual_seed(seed)
    xs, ys = [], []
    for k in range(n_classes):
        colour = torch.tensor(class_colour(k, n_classes), dtype=torch.float32).view(3, 1, 1) / 255
        for _ in range(per_class):
            xs.append((colour + 0.05 * torch.randn(3, 32, 32, generator=g) - 0.45) / 0.27)
            ys.append(k)
    return torch.stack(xs), torch.tensor(ys)


def test_learns_an_easy_synthetic_task(tiny_clip):
    names = ["accordion", "anchor", "barrel", "beaver"]
    x, y = colour_images(len(names), 8)
    model = build(tiny_clip, classnames=names)
    params = list(model.prompt_learner.parameters())
    optim = torch.optim.SGD(params, lr=0.05, momentum=0.9)

    def accuracy_and_loss():
        with torch.no_grad():
            logits = model(x)
        return (logits.argmax(dim=-1) == y).float().mean().item(), F.cross_entropy(logits, y).item()

    acc_before, loss_before = accuracy_and_loss()
    order = torch.Generator().manual_seed(0)
    for _ in range(40):
        batch = torch.randperm(len(x), generator=order)[:8]
        loss = F.cross_entropy(model(x[batch]), y[batch])
        optim.zero_grad()
        loss.backward(inputs=params)  # CLIP stays frozen (and the shared fixture untouched)
        optim.step()
    acc_after, loss_after = accuracy_and_loss()
    assert acc_before <= 0.5
    assert acc_after >= 0.75, (acc_before, acc_after)  # chance is 0.25
    assert loss_after < 0.6 * loss_before

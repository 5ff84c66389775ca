"""MetaPrompt on the tiny CLIP: prompt shapes and placement against a re-statement of the official encoders,
the frozen classifier, the three logits and the loss; which prompts each step of a batch updates; the
meta update against hand-written references (the clean first-order formula, and the official code's
procedure with its restore aliasing and, optionally, torch<2 zero_grad); the class and domain splits;
the official names and checkpoints; and learning an easy task."""
import copy
import os
import random

import pytest
import torch
import torch.nn.functional as F

from helpers import fast_opts
from trainers.metaprompt import (IMAGENET_TEMPLATES, MetaPromptCLIP, class_split_episodes, domain_split_episodes,
                                 frozen_classifier_templates)
from vlprompt.clip_loader import clip
from vlprompt.config import build_config
from vlprompt.engine import build_trainer

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
B2N_CONFIG = "MetaPrompt/vit_b16_c2_ep8_batch16_2+2ctx"


def make_trainer(root, clip_path, out, dataset, config, trainer="MetaPrompt", **opts):
    options = fast_opts(clip_path, **opts) + ["DATASET.ROOT", root, "OUTPUT_DIR", out, "TRAINER.NAME", trainer,
                                              "TRAINER.META.PREC", "fp32", "SEED", "1"]
    cfg = build_config(os.path.join(REPO_ROOT, "configs", "datasets", f"{dataset}.yaml"),
                       os.path.join(REPO_ROOT, "configs", "trainers", f"{config}.yaml"), opts=options)
    random.seed(1)
    torch.manual_seed(1)
    trainer = build_trainer(cfg)
    trainer.initial_prompts = {k: v.clone() for k, v in trainer.model.prompt_learner.state_dict().items()}
    trainer.batch_idx, trainer.num_batches = 0, 10
    return trainer


@pytest.fixture(scope="module")
def b2n(caltech_root, tiny_clip_path, tmp_path_factory):
    """MetaPrompt (class split) on the 5 base classes of the generated Caltech101."""
    return make_trainer(caltech_root, tiny_clip_path, str(tmp_path_factory.mktemp("b2n")), "caltech101", B2N_CONFIG,
                        DATASET__NUM_SHOTS=4, DATASET__SUBSAMPLE_CLASSES="base")


@pytest.fixture(scope="module")
def dg(pacs_root, tiny_clip_path, tmp_path_factory):
    """The official name Meta_DG with the official config path, on generated PACS (sketch held out)."""
    return make_trainer(pacs_root, tiny_clip_path, str(tmp_path_factory.mktemp("dg")), "pacs", "Meta_DG/vit_b16",
                        trainer="Meta_DG", DATASET__NUM_SHOTS=2, DATASET__TARGET_DOMAINS="['sketch']")


def reset(trainer, lr, meta_update="released", legacy_zero_grad=False):
    """Initial prompts, no optimizer state, learning rate `lr`, the given meta-update options."""
    learner = trainer.model.prompt_learner
    with torch.no_grad():
        for name, value in trainer.initial_prompts.items():
            getattr(learner, name).copy_(value)
    for p in learner.parameters():
        p.grad = None
    trainer.optim.state.clear()
    for group in trainer.optim.param_groups:
        group["lr"] = lr
    trainer.cfg.TRAINER.META.META_UPDATE = meta_update
    trainer.cfg.TRAINER.META.LEGACY_ZERO_GRAD = legacy_zero_grad
    return learner


def batch_for(trainer):
    """Random images; B2N: every class twice (one domain); DG: 3 classes x 3 source domains."""
    g = torch.Generator().manual_seed(0)
    if trainer.split == "class":
        label = torch.arange(trainer.num_classes).repeat(2)
        domain = torch.zeros_like(label)
    else:
        label = torch.arange(3).repeat(3)
        domain = torch.arange(3).repeat_interleave(3)
    image = torch.randn(len(label), 3, 32, 32, generator=g)
    return image.to(trainer.device), label.to(trainer.device), domain.to(trainer.device)


def prompts_of(trainer):
    learner = trainer.model.prompt_learner
    return learner.text_ctx.detach().clone(), learner.vision_ctx.detach().clone()


# --------------------------------------------------------------------------------------------- model
def official_text_features(clip_model, classnames, ctx, layers):
    """The official TextEncoder re-stated: full 77-token sequences, CLIP's own blocks."""
    n_ctx = ctx.shape[1]
    tokens = clip.tokenize([f"{' '.join(['X'] * n_ctx)} {name.replace('_', ' ')}." for name in classnames])
    x = clip_model.token_embedding(tokens)
    x = torch.cat([x[:, :1], ctx[0].expand(len(classnames), -1, -1), x[:, 1 + n_ctx:]], dim=1)
    x = (x + clip_model.positional_embedding).permute(1, 0, 2)
    for i, block in enumerate(clip_model.transformer.resblocks):
        if 1 <= i < layers:
            x = torch.cat([x[:1], ctx[i].unsqueeze(1).expand(-1, x.shape[1], -1), x[1 + n_ctx:]], dim=0)
        x = block(x)
    x = clip_model.ln_final(x.permute(1, 0, 2))
    return x[torch.arange(len(classnames)), tokens.argmax(dim=-1)] @ clip_model.text_projection


def official_image_features(clip_model, image, ctx, layers):
    """The official VisionPromptLearner + VisionEncoder re-stated."""
    v, n_pro, batch = clip_model.visual, ctx.shape[1], image.shape[0]
    x = v.conv1(image).reshape(batch, v.conv1.out_channels, -1).permute(0, 2, 1)
    x = torch.cat([v.class_embedding + torch.zeros(batch, 1, x.shape[-1]), x], dim=1) + v.positional_embedding
    x = v.ln_pre(torch.cat([x, ctx[0].expand(batch, -1, -1)], dim=1)).permute(1, 0, 2)
    for i, block in enumerate(v.transformer.resblocks):
        if 1 <= i < layers:
            x = torch.cat([x[:-n_pro], ctx[i].unsqueeze(1).expand(-1, batch, -1)], dim=0)
        x = block(x)
    return v.ln_post(x.permute(1, 0, 2)[:, 0]) @ v.proj


def test_prompts_placement_logits_and_frozen_classifier(tiny_clip):
    names = ["golden_retriever", "tabby cat", "sports_car"]
    torch.manual_seed(0)
    model = MetaPromptCLIP(tiny_clip, names, ["a photo of a {}"], n_ctx=2, n_pro=3, layers=5)
    learner = model.prompt_learner
    # shapes from the model (text width 64, vision width 128), N(0, 0.02^2)
    assert learner.text_ctx.shape == (5, 2, 64) and learner.vision_ctx.shape == (5, 3, 128)
    assert 0.015 < learner.vision_ctx.std().item() < 0.025 and 0.01 < learner.text_ctx.std().item() < 0.03
    with torch.no_grad():
        learner.text_ctx.normal_(std=0.5)  # large prompts, so that a misplaced prompt shows
        learner.vision_ctx.normal_(std=0.5)
    image = torch.randn(4, 3, 32, 32)
    frozen_text, text = model.static_inputs()
    ref_text = F.normalize(official_text_features(tiny_clip, names, learner.text_ctx, 5), dim=-1)
    torch.testing.assert_close(text, ref_text, atol=2e-5, rtol=1e-4)
    ref_image = F.normalize(official_image_features(tiny_clip, image, learner.vision_ctx, 5), dim=-1)
    torch.testing.assert_close(model.prompted_image_features(image), ref_image, atol=2e-5, rtol=1e-4)

    # frozen classifier: CLIP's encode_text on the template with the names as given (underscores kept)
    raw = F.normalize(tiny_clip.encode_text(clip.tokenize([f"a photo of a {n}" for n in names])), dim=-1)
    cleaned = F.normalize(tiny_clip.encode_text(clip.tokenize([f"a photo of a {n.replace('_', ' ')}" for n in names])),
                          dim=-1)
    torch.testing.assert_close(frozen_text, raw, atol=1e-5, rtol=1e-4)
    assert (frozen_text - cleaned).abs().max() > 1e-3

    s = tiny_clip.logit_scale.exp()
    frozen_image = F.normalize(tiny_clip.encode_image(image), dim=-1)
    mix, logits_i, logits_t = model.pair_logits(image, (frozen_text, text))
    torch.testing.assert_close(logits_i, s * ref_image @ raw.t(), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(logits_t, s * frozen_image @ ref_text.t(), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(mix, (logits_i + logits_t) / 2)
    with torch.no_grad():
        plain = model(image)
        with model.cached_static_inputs():
            cached = model(image)
    torch.testing.assert_close(cached, plain)
    torch.testing.assert_close(plain, mix.detach())

    # l_i reaches only the vision prompts, l_t only the text prompts
    F.cross_entropy(logits_i, torch.tensor([0, 1, 2, 0])).backward(retain_graph=True)
    assert learner.text_ctx.grad is None and learner.vision_ctx.grad.abs().sum() > 0
    learner.vision_ctx.grad = None
    F.cross_entropy(logits_t, torch.tensor([0, 1, 2, 0])).backward()
    assert learner.vision_ctx.grad is None and learner.text_ctx.grad.abs().sum() > 0


def test_frozen_classifier_templates(tiny_clip):
    assert frozen_classifier_templates("Food101") == ["a photo of a {}, a type of food"]
    assert frozen_classifier_templates("DescribableTextures") == ["{} texture"]
    assert frozen_classifier_templates("PACSFS") == ["a photo of a {}"]
    assert frozen_classifier_templates("ImageNetV2") == IMAGENET_TEMPLATES and len(IMAGENET_TEMPLATES) == 8
    model = MetaPromptCLIP(tiny_clip, ["goldfish", "great_white_shark"], IMAGENET_TEMPLATES)
    per_template = [F.normalize(tiny_clip.encode_text(clip.tokenize([t.format(n) for n in model.classnames])), dim=-1)
                    for t in IMAGENET_TEMPLATES]
    expected = F.normalize(torch.stack(per_template).mean(0), dim=-1)
    torch.testing.assert_close(model.frozen_text_features(), expected, atol=1e-5, rtol=1e-4)


# ----------------------------------------------------------------------------------- one batch
@pytest.mark.parametrize("which", ["b2n", "dg"])
def test_one_batch_updates_exactly_the_right_prompts(which, request):
    trainer = request.getfixturevalue(which)
    assert trainer.split == ("class" if which == "b2n" else "domain")
    assert trainer.cfg.TRAINER.META.SPLIT == "class"  # Meta_DG decides by its name
    trainable = sorted(n for n, p in trainer.model.named_parameters() if p.requires_grad)
    assert trainable == ["prompt_learner.text_ctx", "prompt_learner.vision_ctx"]
    image, label, domain = batch_for(trainer)
    reset(trainer, lr=0.05)
    text0, vision0 = prompts_of(trainer)
    random.seed(3)
    loss, logits, frozen_image = trainer.in_domain_update(image, label)
    text1, vision1 = prompts_of(trainer)
    assert not torch.equal(text1, text0) and not torch.equal(vision1, vision0)  # in-domain: both
    meta_loss = trainer.domain_split_update(image, label, domain, frozen_image)
    assert meta_loss is not None
    text2, vision2 = prompts_of(trainer)
    if which == "b2n":  # class split: the text prompts only
        assert torch.equal(vision2, vision1) and not torch.equal(text2, text1)
    else:  # domain split: the vision prompts only
        assert torch.equal(text2, text1) and not torch.equal(vision2, vision1)

    reset(trainer, lr=0.05)
    random.seed(3)
    summary = trainer.forward_backward({"img": image, "label": label, "domain": domain})
    text3, vision3 = prompts_of(trainer)
    torch.testing.assert_close((text3, vision3), (text2, vision2), rtol=0, atol=1e-7)
    assert summary["loss"] == pytest.approx(loss.item(), rel=1e-5) and summary["loss_meta"] == pytest.approx(meta_loss)
    # the in-domain loss is the sum of the three cross-entropies
    mix, logits_i, logits_t = trainer.model.pair_logits(image, trainer.model.static_inputs())
    total, _ = trainer.compute_loss(image, label)
    torch.testing.assert_close(total, sum(F.cross_entropy(x, label) for x in (mix, logits_i, logits_t)))


# -------------------------------------------------------------------------- meta update vs references
def restated_episodes(trainer, label, domain, seed):
    """The splits re-stated: (train rows, train classes, test rows, test classes) per episode."""
    rows = lambda keep: [k for k, y in enumerate(label.tolist()) if keep(k, y)]  # noqa: E731
    if trainer.split == "class":
        order = list(range(trainer.num_classes))
        random.seed(seed)
        random.shuffle(order)
        half = (len(order) + 1) // 2
        groups = [order[:half], order[half:]]
        return [(rows(lambda k, y, c=groups[1 - i]: y in c), groups[1 - i], rows(lambda k, y, c=groups[i]: y in c),
                 groups[i]) for i in (0, 1)]
    doms = domain.tolist()
    return [(rows(lambda k, y, d=d: doms[k] != d), None, rows(lambda k, y, d=d: doms[k] == d), None) for d in (0, 1, 2)]


def episode_loss(trainer, image, label, frozen_image, rows, classes):
    """CE(l_t) on a class subset (class split) or CE(l_i) over all classes (domain split)."""
    model, rows = trainer.model, torch.tensor(rows, device=label.device)
    s = model.logit_scale.exp()
    if trainer.split == "class":
        targets = torch.tensor([classes.index(y) for y in label[rows].tolist()], device=label.device)
        return F.cross_entropy(s * frozen_image[rows] @ model.prompted_text_features(classes).t(), targets)
    logits = s * model.prompted_image_features(image[rows]) @ model.frozen_text_features().t()
    return F.cross_entropy(logits, label[rows])


def first_order_reference(trainer, param, theta, episodes, loss, lr, beta):
    """theta - lr * beta * sum_i grad L_test,i(theta - lr * grad L_train,i(theta))."""
    def grad_at(value, rows, classes):
        with torch.no_grad():
            param.copy_(value)
        return torch.autograd.grad(loss(rows, classes), param)[0]

    total = torch.zeros_like(theta)
    for train_rows, train_classes, test_rows, test_classes in episodes:
        inner = theta - lr * grad_at(theta, train_rows, train_classes)
        total += grad_at(inner, test_rows, test_classes)
    return theta - lr * beta * total


def released_reference(trainer, param, episodes, loss, lr, beta, set_to_none):
    """The official code's meta step, re-stated with its deepcopy / `.data =` restore."""
    optim = trainer.optim
    snapshot = copy.deepcopy(param)
    grads = []
    for train_rows, train_classes, test_rows, test_classes in episodes:
        optim.zero_grad(set_to_none=set_to_none)
        loss(train_rows, train_classes).backward()
        optim.step()
        grads.append(torch.autograd.grad(loss(test_rows, test_classes), param)[0])
        param.data = snapshot
    for grad in grads:
        param.data -= lr * grad * beta


@pytest.mark.parametrize("which", ["b2n", "dg"])
def test_meta_update_equals_hand_references_and_the_quirk_changes_it(which, request):
    trainer = request.getfixturevalue(which)
    image, label, domain = batch_for(trainer)
    lr, beta = 0.5, trainer.cfg.TRAINER.META.META_STEP
    learner = trainer.model.prompt_learner
    param, fixed = (learner.text_ctx, learner.vision_ctx) if which == "b2n" else (learner.vision_ctx, learner.text_ctx)
    results = {}
    for mode, legacy in (("released", False), ("first_order", False), ("released", True)):
        reset(trainer, lr=lr, meta_update=mode, legacy_zero_grad=legacy)
        random.seed(5)
        _, _, frozen_image = trainer.in_domain_update(image, label)
        theta, fixed0 = param.detach().clone(), fixed.detach().clone()
        optim_state = copy.deepcopy(trainer.optim.state_dict())
        random.seed(11)
        trainer.domain_split_update(image, label, domain, frozen_image)
        got = (param.detach().clone(), fixed.detach().clone())
        results[(mode, legacy)] = got

        # the reference, from the same state
        with torch.no_grad():
            param.copy_(theta)
            fixed.copy_(fixed0)
        trainer.optim.load_state_dict(optim_state)
        episodes = restated_episodes(trainer, label, domain, seed=11)
        assert len(episodes) == (2 if which == "b2n" else 3)
        loss = lambda rows, classes: episode_loss(trainer, image, label, frozen_image, rows, classes)  # noqa: E731
        if mode == "first_order":
            expected = (first_order_reference(trainer, param, theta, episodes, loss, lr, beta), fixed0)
        else:
            released_reference(trainer, param, episodes, loss, lr, beta, set_to_none=not legacy)
            expected = (param.detach().clone(), fixed.detach().clone())
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)

    released, clean, legacy = results[("released", False)], results[("first_order", False)], results[("released", True)]
    assert (released[0] - clean[0]).abs().max() > 1e-3  # the restore aliasing changes the result
    assert torch.equal(released[1], clean[1])  # neither moves the fixed prompt ...
    assert (legacy[1] - released[1]).abs().max() > 1e-6  # ... unless torch<2 zero_grad is emulated


def test_released_restore_keeps_the_later_inner_steps(b2n):
    """Released = first-order with the inner steps of all episodes but the first left in place."""
    image, label, domain = batch_for(b2n)
    lr, beta = 0.5, b2n.cfg.TRAINER.META.META_STEP
    learner = reset(b2n, lr=lr, meta_update="released")
    for group in b2n.optim.param_groups:  # the inner step is the optimizer's: take momentum and decay out
        group["momentum"], group["weight_decay"] = 0.0, 0.0
    try:
        random.seed(5)
        _, _, frozen_image = b2n.in_domain_update(image, label)
        theta = learner.text_ctx.detach().clone()
        random.seed(11)
        b2n.domain_split_update(image, label, domain, frozen_image)
        got = learner.text_ctx.detach().clone()
        (tr0, trc0, te0, tec0), (tr1, trc1, te1, tec1) = restated_episodes(b2n, label, domain, seed=11)
        param = learner.text_ctx

        def grad_at(value, rows, classes):
            with torch.no_grad():
                param.copy_(value)
            return torch.autograd.grad(episode_loss(b2n, image, label, frozen_image, rows, classes), param)[0]

        g0 = grad_at(theta - lr * grad_at(theta, tr0, trc0), te0, tec0)
        theta1 = theta - lr * grad_at(theta, tr1, trc1)  # the second inner step persists
        g1 = grad_at(theta1, te1, tec1)
        torch.testing.assert_close(got, theta1 - lr * beta * (g0 + g1), rtol=1e-5, atol=1e-6)
    finally:
        for group in b2n.optim.param_groups:
            group["momentum"], group["weight_decay"] = b2n.cfg.OPTIM.MOMENTUM, b2n.cfg.OPTIM.WEIGHT_DECAY


# ------------------------------------------------------------------------------------------ splits
def test_class_split_episodes():
    labels = torch.tensor([4, 0, 3, 1, 2, 4, 0])
    order = list(range(5))
    random.Random(0).shuffle(order)
    groups = [order[:3], order[3:]]  # ceil(5 / 2) = 3
    episodes = class_split_episodes(labels, 5, 2, rng=random.Random(0))
    assert len(episodes) == 2
    for i, (train, test) in enumerate(episodes):
        assert test.classes == groups[i] and train.classes == groups[1 - i]
        assert test.index.tolist() == [k for k, y in enumerate(labels.tolist()) if y in groups[i]]
        assert [test.classes[j] for j in test.labels.tolist()] == labels[test.index].tolist()
        assert [train.classes[j] for j in train.labels.tolist()] == labels[train.index].tolist()
    # 3 classes: halves of 2 and 1; a 1-class group is never meta-tested
    episodes = class_split_episodes(torch.tensor([0, 1, 2]), 3, 2, rng=random.Random(0))
    assert [len(test.classes) for _, test in episodes] == [2]
    # a group without images in the batch is skipped
    order = list(range(4))
    random.Random(1).shuffle(order)
    only_first = torch.tensor([order[0], order[1]])
    episodes = class_split_episodes(only_first, 4, 2, rng=random.Random(1))
    assert episodes == []  # the test group has images but the other group (meta-train) has none


def test_domain_split_episodes_and_the_released_id_assumption():
    labels = torch.tensor([0, 1, 2, 3, 4, 5])
    episodes = domain_split_episodes(labels, torch.tensor([0, 1, 2, 0, 1, 2]))
    assert [(train.index.tolist(), test.index.tolist()) for train, test in episodes] == [
        ([1, 2, 4, 5], [0, 3]), ([0, 2, 3, 5], [1, 4]), ([0, 1, 3, 4], [2, 5])]
    assert episodes[0][1].labels.tolist() == [0, 3] and episodes[0][1].classes is None
    gap = torch.tensor([0, 2, 2, 0])  # domain 1 absent from the batch
    assert domain_split_episodes(labels[:4], gap, contiguous_ids=True) == []  # the code looks for ids 0 and 1
    clean = domain_split_episodes(labels[:4], gap, contiguous_ids=False)
    assert [test.index.tolist() for _, test in clean] == [[0, 3], [1, 2]]


# ------------------------------------------------------------------------------ names, checkpoints
def test_official_checkpoint_keys_load(b2n):
    learner = b2n.model.prompt_learner
    text, vision = torch.randn_like(learner.text_ctx), torch.randn_like(learner.vision_ctx)
    official = {"prompt_learner.ctx": text.half(), "vision_prompt_learner.ctx": vision.half(),
                "image_encoder.ln_post.weight": torch.ones(3), "logit_scale": torch.tensor(4.6)}
    state = b2n.adapt_checkpoint_state(official)
    assert sorted(state) == ["text_ctx", "vision_ctx"]
    b2n.load_trainable_state(learner, state, "official.pth.tar")
    torch.testing.assert_close(learner.text_ctx.detach(), text.half().float())
    torch.testing.assert_close(learner.vision_ctx.detach(), vision.half().float())
    assert sorted(learner.state_dict()) == ["text_ctx", "vision_ctx"]  # our checkpoints: the prompts only


def test_domain_split_needs_several_domains(caltech_root, tiny_clip_path, tmp_path):
    with pytest.raises(ValueError, match="at least 2"):
        make_trainer(caltech_root, tiny_clip_path, str(tmp_path), "caltech101", "Meta_DG/vit_b16", trainer="Meta_DG",
                     DATASET__NUM_SHOTS=2)


# ------------------------------------------------------------------------------------------ learning
def test_learns_an_easy_task(caltech_root, tiny_clip_path, tmp_path):
    """Base classes of the generated Caltech101 (one colour per class): chance level before, near 100% after."""
    trainer = make_trainer(caltech_root, tiny_clip_path, str(tmp_path), "caltech101", B2N_CONFIG, epochs=6,
                           DATASET__NUM_SHOTS=16, DATASET__SUBSAMPLE_CLASSES="base", OPTIM__LR=0.2,
                           DATALOADER__TRAIN_X__BATCH_SIZE=8, OPTIM__WARMUP_EPOCH=0)
    before = trainer.test()
    losses = []
    forward_backward = trainer.forward_backward
    trainer.forward_backward = lambda batch: losses.append(forward_backward(batch)) or losses[-1]
    trainer.train()
    after = trainer.last_results["accuracy"]
    first, last = losses[:3], losses[-3:]
    assert sum(x["loss"] for x in last) < 0.85 * sum(x["loss"] for x in first)
    assert before <= 40 and after >= 90

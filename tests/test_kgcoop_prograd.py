"""KgCoOp's and ProGrad's own behaviour: each update against its formula written out here, ProGrad's
projection where it fires and where it does not, the hand-crafted / zero-shot features (their precision,
computed once), the context initialisations, and the config keys and their errors.

Seed-exactness against the official code is tests/test_original_parity_kgcoop_prograd.py.
"""
import os

import pytest
import torch
import torch.nn.functional as F

import trainers.kgcoop as kgcoop
import trainers.prograd as prograd
from helpers import REPO_ROOT, fast_opts, run_train
from vlprompt.clip_loader import load_clip, tokenize
from vlprompt.config import build_config
from vlprompt.errors import ConfigValueError
from vlprompt.precision import Precision
from vlprompt.prompted_clip import PromptedTextEncoder

CONFIGS = {"KgCoOp": "KgCoOp/vit_b16_ep100_ctxv1.yaml", "ProGrad": "ProGrad/rn50_ep100.yaml"}


def build(name, data, out, clip_path, *opts, flags=("--no-train",), dataset="caltech101"):
    """A trainer built by train.py (not trained): fp32, no warmup, no weight decay, LR 0.1."""
    argv = ["--root", data, "--seed", 1, "--trainer", name,
            "--dataset-config-file", os.path.join(REPO_ROOT, "configs", "datasets", f"{dataset}.yaml"),
            "--config-file", os.path.join(REPO_ROOT, "configs", "trainers", CONFIGS[name]), "--output-dir", out,
            *flags, *fast_opts(clip_path, epochs=1), "TRAINER.COOP.PREC", "fp32", "OPTIM.WARMUP_EPOCH", 0,
            "OPTIM.WEIGHT_DECAY", 0.0, "OPTIM.LR", 0.1, "DATASET.NUM_SHOTS", 4, "DATASET.SUBSAMPLE_CLASSES", "base",
            *opts]
    return run_train(argv)


def batch_of(seed, n_cls, n=8):
    g = torch.Generator().manual_seed(seed)
    return {"img": torch.randn(n, 3, 32, 32, generator=g), "label": torch.randint(0, n_cls, (n,), generator=g)}


def one_step(trainer, batch):
    """The trainer's own update on one batch (no end-of-epoch LR step); returns (ctx before, ctx after)."""
    trainer.set_model_mode("train")
    trainer.epoch, trainer.batch_idx, trainer.num_batches = 0, 0, 10 ** 6
    before = trainer.model.prompt_learner.ctx.detach().clone()
    summary = trainer.forward_backward(batch)
    return before, trainer.model.prompt_learner.ctx.detach().clone(), summary


def gradients(model, batch, *losses):
    """d loss / d ctx for each loss function of (logits, teacher-or-None, label), from one forward."""
    ctx = model.prompt_learner.ctx
    text = model.static_inputs()
    logits = model.logits(batch["img"], text)
    values = [f(logits, text, batch["label"]) for f in losses]
    return [torch.autograd.grad(v, ctx, retain_graph=True)[0].double() for v in values]


# ---------------------------------------------------------------------------------------------- ProGrad
def test_projection_where_the_gradients_conflict_follows_the_formula():
    g = torch.Generator().manual_seed(0)
    general = torch.randn(4, 6, generator=g)
    domain = -0.7 * general + 0.3 * torch.randn(4, 6, generator=g)  # cosine < 0
    assert F.cosine_similarity(domain.flatten(), general.flatten(), dim=0) < 0
    unit = general / general.norm()
    for lam in (1.0, 0.8, 0.0):
        expected = domain - lam * (domain * unit).sum() * unit  # g_a - lam (g_a . g_b^) g_b^
        torch.testing.assert_close(prograd.project_conflicting(domain, general, lam), expected, rtol=1e-6, atol=1e-6)
    # lam 1 removes the conflicting component entirely: what is left is orthogonal to G_g.
    assert abs(float((prograd.project_conflicting(domain, general, 1.0) * unit).sum())) < 1e-5


def test_projection_keeps_the_gradient_where_it_does_not_conflict():
    g = torch.Generator().manual_seed(1)
    general = torch.randn(16, 8, generator=g)
    domain = 0.5 * general + torch.randn(16, 8, generator=g)  # cosine > 0
    assert F.cosine_similarity(domain.flatten(), general.flatten(), dim=0) > 0
    assert torch.equal(prograd.project_conflicting(domain, general, 1.0), domain)
    # A zero G_g (or G_d): the fork's cosine is NaN, which is not < 0, so G_d is kept (no NaN in the update).
    assert torch.equal(prograd.project_conflicting(domain, torch.zeros_like(domain), 1.0), domain)
    zero = torch.zeros_like(domain)
    assert torch.equal(prograd.project_conflicting(zero, general, 1.0), zero)


def test_prograds_kl_is_a_soft_target_cross_entropy():
    """The original's "kl_loss": KL(p_zs || p) plus the teacher's entropy (so the same gradient), times T^2."""
    g = torch.Generator().manual_seed(2)
    student, teacher = torch.randn(5, 7, generator=g), torch.randn(5, 7, generator=g)
    for t in (1.0, 2.0):
        p_zs = F.softmax(teacher / t, -1)
        kl = F.kl_div(F.log_softmax(student / t, -1), p_zs, reduction="batchmean")
        entropy = -(p_zs * p_zs.log()).sum(1).mean()
        torch.testing.assert_close(prograd.soft_target_kl(student, teacher, t), (kl + entropy) * t * t)


def conflicting_and_agreeing_batches(trainer):
    """Two batches of random images and labels: one whose CE and KL gradients conflict (cosine < 0), one
    whose do not, with the two gradients of each (float64, from this test's own forward)."""
    model, n_cls = trainer.model, trainer.num_classes
    found = {}

    def xe(logits, text, label):
        return F.cross_entropy(logits, label)

    for seed in range(40):
        batch = batch_of(seed, n_cls)
        with torch.no_grad():  # the teacher: zero-shot CLIP written out on CLIP's own modules
            image = F.normalize(model.image_encoder.visual(batch["img"]), dim=-1)
            teacher = model.logit_scale.exp() * image @ model.zero_shot_text.t()

        def kl(logits, text, label, teacher=teacher):
            p_zs = F.softmax(teacher, -1)
            return (-(p_zs * F.log_softmax(logits, -1))).sum(1).mean()

        g_a, g_b = gradients(model, batch, xe, kl)
        cosine = float(g_a.flatten() @ g_b.flatten() / (g_a.norm() * g_b.norm()))
        key = "conflict" if cosine < -0.01 else "agree" if cosine > 0.01 else None
        if key and key not in found:
            found[key] = (batch, g_a, g_b)
        if len(found) == 2:
            return found
    raise AssertionError(f"no {'conflicting' if 'conflict' not in found else 'agreeing'} batch among 40")


def test_a_prograd_step_projects_where_the_gradients_conflict_and_is_plain_ce_where_not(
        caltech_root, tiny_clip_path, tmp_path):
    """The update of a whole training step (first SGD step: no momentum history, no weight decay, so the
    context moves by -LR * G): where cos(G_d, G_g) < 0, G = G_d - lambda (G_d . u) u with u = G_g / |G_g|;
    elsewhere G = G_d, the plain cross-entropy step (the KL gradient is not added, as in the fork)."""
    for lam in (1.0, 0.8):
        trainer = build("ProGrad", caltech_root, tmp_path / f"p{lam}", tiny_clip_path, "LOSS.LAMBDA", lam)
        batches = conflicting_and_agreeing_batches(trainer)
        state = {k: v.clone() for k, v in trainer.model.prompt_learner.state_dict().items()}
        for key, (batch, g_a, g_b) in batches.items():
            trainer.model.prompt_learner.load_state_dict(state)
            trainer.optim.state.clear()  # a first step again
            before, after, summary = one_step(trainer, batch)
            if key == "conflict":
                unit = g_b / g_b.norm()
                expected = g_a - lam * (g_a.flatten() @ unit.flatten()) * unit
            else:
                expected = g_a
            torch.testing.assert_close((after - before).double(), -0.1 * expected, rtol=1e-4, atol=1e-7)
            assert set(summary) == {"xe_loss", "kl_loss", "acc"}  # the original's meters
        if lam == 1.0:  # the projection changes the step: it is neither G_d nor G_d + lambda G_g
            batch, g_a, g_b = batches["conflict"]
            unit = g_b / g_b.norm()
            projected = g_a - (g_a.flatten() @ unit.flatten()) * unit
            assert (projected - g_a).norm() > 0.05 * g_a.norm() and (projected - (g_a + g_b)).norm() > 0.05 * g_a.norm()


def test_the_teacher_is_zero_shot_clip_in_fp32_and_reuses_fp32_image_features(caltech_root, tiny_clip_path,
                                                                               tmp_path, monkeypatch):
    trainer = build("ProGrad", caltech_root, tmp_path / "fp32", tiny_clip_path)
    model = trainer.model.eval()
    images = batch_of(0, trainer.num_classes)["img"]
    clip_model = load_clip(tiny_clip_path).float()
    names = [f"a photo of a {c}." for c in trainer.dm.dataset.classnames]  # Caltech101's template
    with torch.no_grad():
        text = F.normalize(clip_model.encode_text(tokenize(names)), dim=-1)
        expected = clip_model.logit_scale.exp() * F.normalize(clip_model.encode_image(images), dim=-1) @ text.t()
        teacher = model.zero_shot_logits(images)
        _, reused = model.training_outputs(images)
    assert teacher.dtype == torch.float32 and torch.equal(teacher, expected)
    assert model.zero_shot_image_encoder is None and torch.equal(reused, teacher)  # the student's own f(x)

    # fp16 CLIP: the teacher keeps a float32 image tower of its own and gives the same float32 logits.
    real_fp16 = Precision("fp16", "fp16", "cpu", torch.float16)
    monkeypatch.setattr(prograd.ProGrad, "build_precision", lambda self: real_fp16)
    half = build("ProGrad", caltech_root, tmp_path / "fp16", tiny_clip_path, "TRAINER.COOP.PREC", "fp16")
    assert half.model.image_encoder.dtype == torch.float16
    assert half.model.zero_shot_image_encoder.dtype == torch.float32
    with torch.no_grad():
        assert torch.equal(half.model.zero_shot_logits(images), expected)
        logits, teacher_logits = half.model.training_outputs(images)
    assert logits.dtype == torch.float16 and torch.equal(teacher_logits, expected)


def test_prograd_context_starts_from_the_datasets_hand_crafted_prompt(tiny_clip):
    text_encoder = PromptedTextEncoder(tiny_clip)
    template = prograd.hand_crafted_template("OxfordPets")
    assert template == "a type of pet, a photo of a {}."
    phrase = prograd.context_phrase(template)
    ctx, prefix = prograd.prograd_context(text_encoder, 16, phrase)
    assert prefix == "X X X X X X X X a type of pet, a photo of a"  # 8 words; "pet," is two tokens
    assert torch.count_nonzero(ctx[:8]) == 0
    tokens = tokenize(phrase)[0]
    with torch.no_grad():
        words = text_encoder.token_embedding(tokens[1:9])
    assert torch.equal(ctx[8:], words)  # the phrase's first 8 tokens ("a type of pet , a photo of")
    assert prograd.context_phrase(prograd.hand_crafted_template("Caltech101")) == "a photo of a"
    assert prograd.hand_crafted_template("MyOwnData") == "a photo of a {}."
    with pytest.raises(ConfigValueError, match="N_CTX 4 is not allowed: the context must hold the 8 words"):
        prograd.prograd_context(text_encoder, 4, phrase)


def test_prograd_config_keys_and_their_errors(caltech_root, tiny_clip_path, tmp_path):
    cfg = build_config(config_file=os.path.join(REPO_ROOT, "configs", "trainers", CONFIGS["ProGrad"]))
    assert dict(cfg.LOSS) == {"GM": False, "NAME": "prograd", "ALPHA": 0.0, "T": 1.0, "LAMBDA": 1.0}
    assert cfg.TRAINER.COOP.CTX_INIT == "a photo of a" and cfg.TRAINER.COOP.N_CTX == 16
    for opts, message in ((["LOSS.NAME", "kl"], "LOSS.NAME 'kl' is not allowed for ProGrad: expected 'prograd'"),
                          (["LOSS.T", 0.0], "LOSS.T 0.0 is not allowed: expected a number > 0"),
                          (["LOSS.LAMBDA", -1.0], "LOSS.LAMBDA -1.0 is not allowed: expected a number >= 0")):
        with pytest.raises(ConfigValueError, match=message):
            build("ProGrad", caltech_root, tmp_path / "bad", tiny_clip_path, *opts)
        assert not os.path.exists(tmp_path / "bad")  # refused before the run directory was claimed


# ----------------------------------------------------------------------------------------------- KgCoOp
def test_a_kgcoop_step_is_ce_plus_w_times_the_pull_towards_the_hand_crafted_features(caltech_root, tiny_clip_path,
                                                                                       tmp_path):
    """L = CE + W (1 - mean_k cos(w_k, w_k^clip)), its first SGD step written out; W 0 is CoOp's step."""
    for w in (8.0, 0.0):
        trainer = build("KgCoOp", caltech_root, tmp_path / f"w{w}", tiny_clip_path, "TRAINER.COOP.W", w,
                        "TRAINER.COOP.CTX_INIT", "", "TRAINER.COOP.N_CTX", 16)
        model = trainer.model
        batch = batch_of(0, trainer.num_classes)
        anchor = model.hand_crafted  # float16, as the original's (cosine_similarity then mixes float32 and float16)

        def loss(logits, text, label):
            text = text / text.norm(dim=-1, keepdim=True)
            kg = 1 - torch.nn.CosineSimilarity(dim=1, eps=1e-7)(text, anchor).mean()
            return F.cross_entropy(logits, label) + w * kg

        (expected,) = gradients(model, batch, loss)
        before, after, summary = one_step(trainer, batch)
        torch.testing.assert_close((after - before).double(), -0.1 * expected, rtol=1e-4, atol=1e-7)
        assert set(summary) == {"loss", "acc"}
        if w:  # the pull matters: the CE gradient alone is another step
            (ce,) = gradients(model, batch, lambda logits, text, label: F.cross_entropy(logits, label))
            assert (ce - expected).norm() > 0.05 * expected.norm()


def test_hand_crafted_features_fp16_as_the_original_or_in_the_runs_precision(caltech_root, tiny_clip_path,
                                                                             tmp_path):
    names = [f"a photo of a {c}." for c in ("face", "leopard", "motorbike", "accordion", "airplane")]
    trainer = build("KgCoOp", caltech_root, tmp_path / "mirror", tiny_clip_path)
    assert trainer.dm.dataset.classnames == [n[len("a photo of a "):-1] for n in names]
    model = trainer.model
    # The original's second CLIP stays float16 under PREC fp32: its encode_text, normalised twice.
    half = load_clip(tiny_clip_path)
    with torch.no_grad():
        f = half.encode_text(tokenize(names))
        f = f / f.norm(dim=-1, keepdim=True)
        expected = f / f.norm(dim=-1, keepdim=True)
    assert model.hand_crafted.dtype == torch.float16 and torch.equal(model.hand_crafted, expected)
    assert "hand_crafted" not in model.state_dict()  # never saved: rebuilt for the class set at hand
    # With CTX_INIT the prompt is the hand-crafted one ("a photo of a" + Caltech101's template): the pull
    # starts near 0, up to the anchor's float16 rounding (which can make it slightly negative).
    with torch.no_grad():
        kg = kgcoop.knowledge_guidance_loss(model.static_inputs(), model.hand_crafted)
    assert abs(float(kg)) < 1e-3

    fixed = build("KgCoOp", caltech_root, tmp_path / "fix", tiny_clip_path, "TRAINER.COOP.HAND_CRAFTED_FP16", False)
    assert fixed.model.hand_crafted.dtype == torch.float32
    with torch.no_grad():
        kg = kgcoop.knowledge_guidance_loss(fixed.model.static_inputs(), fixed.model.hand_crafted)
    assert abs(float(kg)) < 1e-6


def test_kgcoop_keeps_no_second_clip_and_encodes_text_once_per_step(caltech_root, tiny_clip_path, tmp_path):
    trainer = build("KgCoOp", caltech_root, tmp_path / "run", tiny_clip_path)
    model = trainer.model
    clip_params = sum(p.numel() for p in load_clip(tiny_clip_path).parameters())
    assert sum(p.numel() for p in model.parameters()) == clip_params + model.prompt_learner.ctx.numel()
    calls = []
    hook = model.text_encoder.register_forward_hook(lambda *args: calls.append(1))
    try:
        one_step(trainer, batch_of(0, trainer.num_classes))
    finally:
        hook.remove()
    assert len(calls) == 1  # the class prompts only; the hand-crafted features are not re-encoded


def test_kgcoop_templates_and_config_errors(caltech_root, tiny_clip_path, tmp_path):
    assert kgcoop.hand_crafted_template("DescribableTextures") == "a photo of a {}, a type of texture."
    assert kgcoop.hand_crafted_template("OxfordPets") == "a photo of a {}, a type of pet."
    assert kgcoop.hand_crafted_template("MyOwnData") == "a photo of a {}."
    cfg = build_config(config_file=os.path.join(REPO_ROOT, "configs", "trainers", CONFIGS["KgCoOp"]))
    assert (cfg.TRAINER.COOP.W, cfg.TRAINER.COOP.N_CTX, cfg.TRAINER.COOP.CTX_INIT) == (8.0, 4, "a photo of a")
    for opts, message in ((["TRAINER.COOP.W", -1.0], r"TRAINER.COOP.W -1.0 is not allowed: expected a weight >= 0"),
                          (["TRAINER.COOP.CLASS_TOKEN_POSITION", "middle"],
                           "CLASS_TOKEN_POSITION 'middle' is not allowed for KgCoOp: expected 'end'")):
        with pytest.raises(ConfigValueError, match=message):
            build("KgCoOp", caltech_root, tmp_path / "bad", tiny_clip_path, *opts)
        assert not os.path.exists(tmp_path / "bad")


# --------------------------------------------------------------------------------------------- both
@pytest.mark.parametrize("name", ["KgCoOp", "ProGrad"])
def test_the_training_log_reads_with_the_originals_parse_test_res(name, caltech_root, tiny_clip_path, tmp_path):
    """The originals' parse_test_res.py (KgCoOp's and ProGrad's are the same file) reads the `* accuracy: X%`
    lines that follow a line equal to "Finished training" (their fork's) in a training log, or "=> result"
    with --test-log; CoOp's and vlprompt's parsers wait for "Finish training" (which Dassl >= 0.6.1 and the
    built-in engine print, the fork does not). A training log holds both where the engine prints both."""
    out = tmp_path / "run"
    build(name, caltech_root, out, tiny_clip_path, flags=())
    lines = [line.strip() for line in open(out / "log.txt")]
    assert lines.index("Finished training") < lines.index("=> result")
    if "Finish training" in lines:  # Dassl >= 0.6.1 and the built-in engine print it; the fork prints ours
        assert lines.index("Finished training") < lines.index("Finish training") < lines.index("=> result")
    after = lines[lines.index("Finished training"):]
    accuracy = [line for line in after if line.startswith("* accuracy: ") and line.endswith("%")]
    assert len(accuracy) == 1
    from vlprompt.parse_logs import parse_log

    assert parse_log(str(out / "log.txt")) == float(accuracy[0][len("* accuracy: "):-1])


def test_the_papers_averages_compare_only_with_their_vit_b16_configs():
    from vlprompt.paper_numbers import BASE2NEW, default_paper_entry, harmonic_mean

    for name in ("KgCoOp", "ProGrad"):
        assert default_paper_entry(name, "vit_b16_ep100_ctxv1") == name
        base, new, hm = BASE2NEW[name]["average"]
        assert harmonic_mean(base, new) == pytest.approx(hm, abs=0.01)
    assert default_paper_entry("ProGrad", "rn50_ep100") is None  # the official RN50 configs: no ViT-B/16 row
    assert default_paper_entry("KgCoOp", "rn50_ep100") is None

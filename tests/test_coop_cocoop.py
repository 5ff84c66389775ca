"""CoOp, CoCoOp and zero-shot CLIP: prompt assembly, fast paths equal to reference paths, checkpoint
compatibility with the originals, precision fallbacks and learning an easy task."""
import os
import re

import pytest
import torch
import torch.nn.functional as F

from vlprompt.clip_loader import clip
from vlprompt.trainer import CheckpointMismatch

from helpers import REPO_ROOT, fast_opts, read_result, run_script, run_train
from trainers.cocoop import CoCoOpCLIP
from trainers.coop import CoOpCLIP

NAMES = ["face", "leopard", "motor_bike", "accordion", "airplane"]


def coop_model(tiny_clip, **kw):
    args = dict(n_ctx=4, ctx_init="", csc=False, class_token_position="end")
    args.update(kw)
    torch.manual_seed(0)
    return CoOpCLIP(tiny_clip, NAMES, **args)


# ------------------------------------------------------------------------------------ CoOp prompts
def reference_prompt(model, k, ctx):
    """CoOp's per-class assembly, written out: [SOT] + ctx/name in the configured order + rest."""
    cp = model.prompt_learner.class_prompts
    prefix, suffix = cp.token_prefix[k], cp.token_suffix[k]
    name_len = cp.name_lens[k]
    name, rest = suffix[:name_len], suffix[name_len:]
    ctx_k = ctx if ctx.dim() == 2 else ctx[k]
    if cp.class_token_position == "end":
        return torch.cat([prefix, ctx_k, suffix])
    if cp.class_token_position == "front":
        return torch.cat([prefix, name, ctx_k, rest])
    half = ctx_k.shape[0] // 2
    return torch.cat([prefix, ctx_k[:half], name, ctx_k[half:], rest])


@pytest.mark.parametrize("position", ["end", "middle", "front"])
@pytest.mark.parametrize("csc", [False, True])
def test_coop_prompts_place_context_and_class_tokens_like_the_original(tiny_clip, position, csc):
    model = coop_model(tiny_clip, n_ctx=5, csc=csc, class_token_position=position)
    ctx = model.prompt_learner.ctx
    assert tuple(ctx.shape) == ((len(NAMES), 5, 64) if csc else (5, 64))
    prompts = model.prompt_learner()
    for k in range(len(NAMES)):
        assert torch.equal(prompts[k], reference_prompt(model, k, ctx))
    assert model.prompt_learner.class_prompts.name_lens == [len(clip.clip._tokenizer.encode(n.replace("_", " ")))
                                                            for n in NAMES]


def test_prompt_tokens_are_clips_own_tokens_and_the_text_features_match_encode_text(tiny_clip):
    """With the X placeholders' own embeddings as context, CoOp's text features are CLIP's encode_text of
    'X X X X <name>.' — i.e. the assembly and the shortened causal tower are exact."""
    model = coop_model(tiny_clip)
    texts = [f"X X X X {n.replace('_', ' ')}." for n in NAMES]
    with torch.no_grad():
        x_embedding = tiny_clip.token_embedding(clip.tokenize("X"))[0, 1]
        model.prompt_learner.ctx.copy_(x_embedding.expand(4, -1))
        ours = model.static_inputs()
        theirs = tiny_clip.encode_text(clip.tokenize(texts))
    assert torch.allclose(ours, theirs, atol=1e-5)
    assert model.prompt_learner.class_prompts.prompt_texts == texts


def test_ctx_init_uses_the_phrase_embeddings_and_word_count(tiny_clip):
    model = coop_model(tiny_clip, n_ctx=16, ctx_init="a_photo of a", csc=True)  # CSC is ignored with CTX_INIT
    tokens = clip.tokenize("a photo of a")
    with torch.no_grad():
        expected = tiny_clip.token_embedding(tokens)[0, 1:5]
    assert torch.equal(model.prompt_learner.ctx, expected)
    assert model.prompt_learner.class_prompts.prompt_texts[0] == "a photo of a face."


def test_cached_evaluation_equals_per_batch_recomputation(tiny_clip):
    model = coop_model(tiny_clip).eval()
    images = torch.randn(6, 3, 32, 32)
    with torch.no_grad():
        direct = torch.cat([model(images[:3]), model(images[3:])])
        with model.cached_static_inputs():
            cached = torch.cat([model(images[:3]), model(images[3:])])
            assert model._static_cache is not None
    assert torch.equal(direct, cached)
    assert model._static_cache is None


# -------------------------------------------------------------------------------- CoCoOp batching
def cocoop_per_image_loop(model, images):
    """The original CoCoOp forward: one text-encoder pass over all classes per image."""
    image_features = F.normalize(model.image_encoder(images), dim=-1)
    context = model.prompt_learner.conditioned_context(image_features)
    cp = model.prompt_learner.class_prompts
    rows = []
    for i in range(images.shape[0]):
        prompts = cp(context[i])
        text = F.normalize(model.text_encoder(prompts, cp.eot_indices), dim=-1)
        rows.append(model.logit_scale.exp() * image_features[i] @ text.t())
    return torch.stack(rows)


@pytest.mark.parametrize("prompt_batch", [5, 12, 8192])  # 1 image per call, 2 (with a remainder), all at once
def test_cocoop_batched_logits_equal_the_per_image_loop(tiny_clip, prompt_batch):
    torch.manual_seed(0)
    model = CoCoOpCLIP(tiny_clip, NAMES, n_ctx=4, ctx_init="a photo of a", prompt_batch=prompt_batch)
    with torch.no_grad():
        for p in model.prompt_learner.meta_net.parameters():
            p.normal_(std=0.5)  # a real shift per image
    images = torch.randn(5, 3, 32, 32)
    with torch.no_grad():
        batched = model(images)
        loop = cocoop_per_image_loop(model, images)
    assert batched.shape == (5, len(NAMES))
    assert torch.allclose(batched, loop, atol=1e-5)
    assert (batched[0] - batched[1]).abs().max() > 1e-3  # the prompts really differ per image


def test_cocoop_gradients_reach_context_and_meta_net(tiny_clip):
    torch.manual_seed(0)
    model = CoCoOpCLIP(tiny_clip, NAMES, n_ctx=4, ctx_init="", prompt_batch=7)
    loss = F.cross_entropy(model(torch.randn(3, 3, 32, 32)), torch.tensor([0, 1, 2]))
    loss.backward()
    pl = model.prompt_learner
    assert pl.ctx.grad.abs().sum() > 0
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in pl.meta_net.parameters())
    trainable = {n for n, _ in pl.named_parameters()}
    assert trainable == {"ctx", "meta_net.linear1.weight", "meta_net.linear1.bias", "meta_net.linear2.weight",
                         "meta_net.linear2.bias"}
    assert tuple(pl.meta_net.linear1.weight.shape) == (48 // 16, 48)  # vis_dim // 16, from the model


# ------------------------------------------------------------------------------ trainer behaviour
def train_argv(trainer, config, data, out, clip_path, *opts, epochs=2, flags=()):
    """train.py arguments; `flags` (e.g. --eval-only) must precede the KEY VALUE options."""
    return ["--root", data, "--seed", 1, "--trainer", trainer,
            "--dataset-config-file", os.path.join(REPO_ROOT, "configs/datasets/caltech101.yaml"),
            "--config-file", os.path.join(REPO_ROOT, "configs/trainers", config),
            "--output-dir", out, *flags, *fast_opts(clip_path, epochs=epochs), *opts]


def record_batches(trainer_cls, monkeypatch):
    seen = []
    original = trainer_cls.forward_backward

    def wrapped(self, batch):
        summary = original(self, batch)
        seen.append((self.epoch, summary))
        return summary

    monkeypatch.setattr(trainer_cls, "forward_backward", wrapped)
    return seen


def epoch_means(seen, key):
    epochs = sorted({e for e, _ in seen})
    return [sum(s[key] for e, s in seen if e == ep) / sum(1 for e, _ in seen if e == ep) for ep in epochs]


@pytest.mark.parametrize("trainer,config,opts,epochs", [
    ("CoOp", "CoOp/vit_b16_ep50.yaml", ["TRAINER.COOP.N_CTX", 4, "DATALOADER.TRAIN_X.BATCH_SIZE", 8], 6),
    ("CoCoOp", "CoCoOp/vit_b16_c4_ep10_batch1_ctxv1.yaml", ["DATALOADER.TRAIN_X.BATCH_SIZE", 4], 4),
])
def test_learns_an_easy_task(tmp_path, caltech_root, tiny_clip_path, monkeypatch, trainer, config, opts, epochs):
    """Classes have distinct colours; random-weight CLIP needs Adam (SGD's step suits pretrained CLIP)."""
    import trainers.cocoop
    import trainers.coop

    cls = {"CoOp": trainers.coop.CoOp, "CoCoOp": trainers.cocoop.CoCoOp}[trainer]
    seen = record_batches(cls, monkeypatch)
    run_train(train_argv(trainer, config, caltech_root, tmp_path / "run", tiny_clip_path, "OPTIM.NAME", "adam",
                         "OPTIM.LR", 0.01, "OPTIM.WARMUP_EPOCH", 0, *opts, epochs=epochs))
    accs, losses = epoch_means(seen, "acc"), epoch_means(seen, "loss")
    assert accs[-1] >= 35.0, accs  # chance is 10% (10 classes)
    assert losses[-1] < losses[0] - 0.3, losses


def test_coop_resumes_an_interrupted_run(tmp_path, caltech_root, tiny_clip_path, monkeypatch):
    import trainers.coop

    out = tmp_path / "run"
    argv = train_argv("CoOp", "CoOp/vit_b16_ep50.yaml", caltech_root, out, tiny_clip_path, epochs=3)
    original = trainers.coop.CoOp.forward_backward

    def crash_in_epoch_2(self, batch):
        if self.epoch == 1:
            raise KeyboardInterrupt("simulated interruption")
        return original(self, batch)

    monkeypatch.setattr(trainers.coop.CoOp, "forward_backward", crash_in_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        run_train(argv)
    assert sorted(os.listdir(out / "prompt_learner")) == ["checkpoint", "model.pth.tar-1"]
    assert not (out / "result.json").exists()
    monkeypatch.setattr(trainers.coop.CoOp, "forward_backward", original)

    run_train(argv)
    log = (out / "log.txt").read_text()
    assert "Previous epoch: 1" in log and "epoch [1/3]" not in log and "epoch [3/3]" in log
    assert sorted(os.listdir(out / "prompt_learner")) == ["checkpoint", "model.pth.tar-3"]
    assert read_result(out)["mode"] == "train"


def write_original_coop_checkpoint(model_dir, ctx, epoch=50):
    """A checkpoint as CoOp's Dassl writes it: ctx + token buffers, and a pickled scheduler object."""
    folder = model_dir / "prompt_learner"
    folder.mkdir(parents=True)
    param = torch.nn.Parameter(ctx.clone())
    optim = torch.optim.SGD([param], lr=0.002, momentum=0.9)
    param.sum().backward()
    optim.step()  # trained: the pickled optimizer's state holds momentum buffers (a defaultdict)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(optim, 50.0)
    state = {"ctx": ctx, "token_prefix": torch.zeros(100, 1, ctx.shape[-1]),
             "token_suffix": torch.zeros(100, 60, ctx.shape[-1])}
    torch.save({"state_dict": state, "epoch": epoch, "optimizer": optim.state_dict(),
                "scheduler": {"successor": sched, "last_epoch": epoch}, "val_result": None},
               folder / f"model.pth.tar-{epoch}")
    (folder / "checkpoint").write_text(f"model.pth.tar-{epoch}\n")


def test_original_coop_checkpoint_loads_for_eval_only(tmp_path, caltech_root, tiny_clip_path):
    torch.manual_seed(3)
    ctx = torch.randn(16, 64)
    write_original_coop_checkpoint(tmp_path / "released", ctx)
    out = tmp_path / "eval"
    released = ["--eval-only", "--model-dir", tmp_path / "released", "--load-epoch", 50]
    trainer = run_train(train_argv("CoOp", "CoOp/vit_b16_ep50.yaml", caltech_root, out, tiny_clip_path, flags=released))
    assert torch.equal(trainer.model.prompt_learner.ctx.detach().cpu(), ctx)
    result = read_result(out)
    assert result["mode"] == "eval-only" and result["checkpoint"]["epoch"] == 50

    with pytest.raises(CheckpointMismatch, match=r"ctx: checkpoint \(16, 64\) vs model \(4, 64\)"):
        run_train(train_argv("CoOp", "CoOp/vit_b16_ep50.yaml", caltech_root, tmp_path / "e2", tiny_clip_path,
                             "TRAINER.COOP.N_CTX", 4, flags=released))
    with pytest.raises(FileNotFoundError, match=r"model.pth.tar-5 .*check --load-epoch"):
        run_train(train_argv("CoOp", "CoOp/vit_b16_ep50.yaml", caltech_root, tmp_path / "e3", tiny_clip_path,
                             flags=released[:-1] + [5]))


def test_our_checkpoints_hold_only_the_trainable_tensors(tmp_path, caltech_root, tiny_clip_path):
    out = tmp_path / "run"
    run_train(train_argv("CoCoOp", "CoCoOp/vit_b16_c4_ep10_batch1_ctxv1.yaml", caltech_root, out, tiny_clip_path,
                         "DATASET.NUM_SHOTS", 1, epochs=1))
    from vlprompt.engine import ENGINE
    from vlprompt.fileio import load_torch_file

    path = out / "prompt_learner/model.pth.tar-1"
    # The built-in engine's scheduler state is plain data; Dassl's pickles its successor scheduler.
    ckpt = torch.load(path, weights_only=True) if ENGINE == "builtin" else load_torch_file(str(path))
    assert set(ckpt["state_dict"]) == {"ctx", "meta_net.linear1.weight", "meta_net.linear1.bias",
                                       "meta_net.linear2.weight", "meta_net.linear2.bias"}
    # Dassl's keys, plus what an exact resume needs (random states, GradScaler, best validation result).
    assert set(ckpt) == {"state_dict", "epoch", "optimizer", "scheduler", "val_result", "resume"}
    assert set(ckpt["resume"]) == {"rng", "scaler", "best_result"} and {"python", "numpy", "torch"} <= set(
        ckpt["resume"]["rng"])


def test_precision_fallbacks_on_cpu(tmp_path, caltech_root, tiny_clip_path, capsys):
    trainer = run_train(train_argv("CoOp", "CoOp/vit_b16_ep50.yaml", caltech_root, tmp_path / "fp16", tiny_clip_path,
                                   "TRAINER.COOP.PREC", "fp16", "DATASET.NUM_SHOTS", 1, epochs=1))
    assert trainer.precision.name == "fp32" and trainer.model.prompt_learner.ctx.dtype == torch.float32
    assert "PREC fp16 needs a GPU; running in fp32 on cpu" in capsys.readouterr().out
    trainer = run_train(train_argv("CoOp", "CoOp/vit_b16_ep50.yaml", caltech_root, tmp_path / "amp", tiny_clip_path,
                                   "TRAINER.COOP.PREC", "amp", "DATASET.NUM_SHOTS", 1, epochs=1))
    assert trainer.precision.autocast_dtype == torch.bfloat16 and trainer.model.prompt_learner.ctx.dtype == torch.float32
    assert read_result(tmp_path / "amp")["precision"] == {"requested": "amp", "used": "bf16"}


def test_a_nan_loss_stops_the_run_naming_precision(tmp_path, caltech_root, tiny_clip_path, monkeypatch):
    import trainers.coop

    def nan_loss(self, image, label):
        logits = self.model(image)
        return logits.sum() * float("nan"), logits

    monkeypatch.setattr(trainers.coop.CoOp, "compute_loss", nan_loss)
    with pytest.raises(FloatingPointError, match=r"Loss is nan at epoch 1, batch 1 \(PREC fp16.*TRAINER.COOP.PREC amp"):
        run_train(train_argv("CoOp", "CoOp/vit_b16_ep50.yaml", caltech_root, tmp_path / "run", tiny_clip_path))


@torch.no_grad()
def plain_coop_logits(clip_model, classnames, ctx, images):
    """CoOp written out on CLIP's own modules: 'X X .. X <name>.' tokenised to 77, the X rows replaced by
    the context, CLIP's full text transformer and encode_image, exp(s) * cosine."""
    n_ctx = ctx.shape[0]
    tokens = clip.tokenize([" ".join(["X"] * n_ctx) + f" {name.replace('_', ' ')}." for name in classnames])
    x = clip_model.token_embedding(tokens).clone()
    x[:, 1:1 + n_ctx] = ctx
    x = clip_model.transformer((x + clip_model.positional_embedding).permute(1, 0, 2)).permute(1, 0, 2)
    text = clip_model.ln_final(x)[torch.arange(len(classnames)), tokens.argmax(dim=-1)] @ clip_model.text_projection
    image = clip_model.encode_image(images)
    return clip_model.logit_scale.exp() * F.normalize(image, dim=-1) @ F.normalize(text, dim=-1).t()


def test_coop_trains_on_a_resnet_backbone(tmp_path, caltech_root, tiny_rn_clip_path):
    """On a ResNet CLIP, training moves the context, and the logits are those of CoOp written out on CLIP's
    own modules with that context."""
    from vlprompt.clip_loader import load_clip

    out = tmp_path / "rn"
    trainer = run_train(train_argv("CoOp", "CoOp/rn50_ep50.yaml", caltech_root, out, tiny_rn_clip_path,
                                   "DATASET.NUM_SHOTS", 2, "OPTIM.LR", 0.1, "OPTIM.WARMUP_EPOCH", 0, epochs=1,
                                   flags=["--no-train"]))
    assert not trainer.model.image_encoder.is_vit
    initial = trainer.model.prompt_learner.ctx.detach().clone()
    trainer.train()
    ctx = trainer.model.prompt_learner.ctx.detach()
    assert (ctx - initial).abs().max() > 1e-4  # it trained
    images = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    trainer.model.eval()
    with torch.no_grad():
        ours = trainer.model(images)
    clip_model = load_clip(str(tiny_rn_clip_path)).float().eval()
    expected = plain_coop_logits(clip_model, trainer.dm.dataset.classnames, ctx, images)
    torch.testing.assert_close(ours, expected, rtol=1e-4, atol=1e-4)
    assert expected.std(dim=1).min() > 1e-3  # the classes get different logits, so the comparison can fail
    result = read_result(out)
    assert result["backbone"] == str(tiny_rn_clip_path) and result["epochs_trained"] == 1


def test_seed_zero_is_honoured(tmp_path, caltech_root, tiny_clip_path, capsys):
    argv = train_argv("CoOp", "CoOp/vit_b16_ep50.yaml", caltech_root, tmp_path / "a", tiny_clip_path, epochs=1)
    argv[argv.index("--seed") + 1] = 0
    argv.insert(argv.index("MODEL.BACKBONE.NAME"), "--no-train")
    first = run_train(argv)
    assert first.cfg.SEED == 0 and "Setting fixed seed: 0" in capsys.readouterr().out
    argv[argv.index("--output-dir") + 1] = tmp_path / "b"
    second = run_train(argv)
    assert torch.equal(first.model.prompt_learner.ctx, second.model.prompt_learner.ctx)  # same seeded init


# ----------------------------------------------------------------------------------- zero-shot CLIP
def test_zeroshot_text_features_are_the_template_prompts(tmp_path, caltech_root, tiny_clip_path, tiny_clip):
    trainer = run_train(train_argv("ZeroshotCLIP", "CoOp/vit_b16.yaml", caltech_root, tmp_path / "zs", tiny_clip_path,
                                   flags=["--eval-only"]))
    names = trainer.dm.dataset.classnames
    with torch.no_grad():
        expected = F.normalize(tiny_clip.encode_text(clip.tokenize([f"a photo of a {n}." for n in names])), dim=-1)
    assert torch.allclose(trainer.model.static_inputs(), expected, atol=1e-5)
    assert read_result(tmp_path / "zs")["mode"] == "eval-only"

    ens = run_train(train_argv("ZeroshotCLIP2", "CoOp/vit_b16.yaml", caltech_root, tmp_path / "zs2", tiny_clip_path,
                               flags=["--eval-only"]))
    assert len(ens.model.templates) == 8 and ens.model.templates[-1] == "a photo of a {}."
    with torch.no_grad():
        per_template = [F.normalize(tiny_clip.encode_text(clip.tokenize([t.format(n) for n in names])), dim=-1)
                        for t in ens.model.templates]
    assert torch.allclose(ens.model.static_inputs(), F.normalize(sum(per_template) / 8, dim=-1), atol=1e-5)


def test_coop_main_and_zeroshot_scripts(tmp_path, caltech_root, tiny_clip_path):
    out = tmp_path / "output"
    opts = fast_opts(tiny_clip_path, epochs=1)
    run_script("coop/main.sh", "caltech101", "vit_b16_ep50", "middle", 4, 2, "False", *opts, data=caltech_root,
               output=out, env={"SEEDS": "1 2"})
    for seed in (1, 2):
        run_dir = out / f"caltech101/CoOp/vit_b16_ep50_2shots/nctx4_cscFalse_ctpmiddle/seed{seed}"
        result = read_result(run_dir)
        assert result["shots"] == 2 and result["seed"] == seed
        assert re.search(r"CLASS_TOKEN_POSITION: middle", (run_dir / "log.txt").read_text())
    run_script("zsclip/zeroshot.sh", "caltech101", "vit_b16", *opts, data=caltech_root, output=out)
    assert read_result(out / "ZeroshotCLIP/vit_b16/caltech101")["method"] == "ZeroshotCLIP"


def test_scripts_refuse_to_run_without_data(tmp_path):
    proc = run_script("cocoop/base2new_train.sh", "caltech101", 1, data="", output=tmp_path, check=False)
    assert proc.returncode == 2 and "set DATA" in proc.stderr
    proc = run_script("cocoop/base2new_train.sh", "caltech_101", 1, data=tmp_path, output=tmp_path, check=False)
    assert proc.returncode == 2 and "unknown dataset 'caltech_101'" in proc.stderr
    proc = run_script("cocoop/base2new_test.sh", "caltech101", 1, data=tmp_path, output=tmp_path, check=False)
    assert proc.returncode == 2 and "no trained model" in proc.stderr

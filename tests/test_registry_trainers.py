"""Every registered trainer is tested because it is registered (timm's habit, SPEC §8).

The list below is TRAINER_REGISTRY itself (the trainers/*.py plugins; classes that tests register, such
as test_engine's ToyLinear, are left out by the module they come from). For each one, on the tiny CLIP
through train.py: it builds; one training step in fp32 and one under amp (bfloat16 autocast on the CPU)
changes every trainable tensor; a few dozen steps of its own update learn the colour classes of the
generated data (loss falls, accuracy rises); evaluation with the image-independent inputs computed once
gives exactly the logits of the plain forward; a checkpoint loaded into a fresh trainer gives identical
logits; the original repository's checkpoint layout loads where one exists; result.json records the run.
Trainers with nothing to train (zero-shot CLIP) are checked for exactly that instead.

Per-method knowledge is kept to the table `SETTINGS` (config file, dataset, learning rate); a trainer
missing from it runs with its first config file on Caltech101 and the default learning settings.
"""
import glob
import os
import random
import shutil

import pytest
import torch
import torch.nn.functional as F

from helpers import REPO_ROOT, fast_opts, read_result, run_train, write_dassl_checkpoint
from vlprompt.classifier import PromptedCLIP
from vlprompt.engine import TRAINER_REGISTRY, build_data_loader, build_transform
from vlprompt.plugins import is_codebase_module

def is_plugin(cls):
    """A trainer of the repository's trainers/ (imported by vlprompt.plugins.load_codebase)."""
    return is_codebase_module(cls.__module__, REPO_ROOT, "trainers")


TRAINERS = sorted(name for name in TRAINER_REGISTRY.registered_names() if is_plugin(TRAINER_REGISTRY.get(name)))


def trainer_class(name):
    return TRAINER_REGISTRY.get(name)


def has_prompts(name):
    return trainer_class(name).HAS_TRAINABLE_PROMPTS


TRAINABLE = [n for n in TRAINERS if has_prompts(n)]
NOTHING_TO_TRAIN = [n for n in TRAINERS if not has_prompts(n)]

# Per method: the config it runs with, the dataset ("caltech": 5 base classes of the generated Caltech101,
# 4 shots; "pacs": generated PACS, 3 classes, 3 source domains, 2 shots per class and domain), and the
# learning settings of test_learns_an_easy_task (the configs' rates are for ViT-B/16 and real images; the
# random tiny CLIP needs larger ones, as the methods' own learning tests found), and "opts": KEY VALUE
# options for every build of that trainer.
DEFAULT_LEARNING = {"lr": 0.1, "steps": 30, "batch": 8}
SETTINGS = {
    "CoOp": {"config": "CoOp/vit_b16_ep50.yaml"},
    "CoCoOp": {"config": "CoCoOp/vit_b16_c4_ep10_batch1_ctxv1.yaml", "optim": "adam", "lr": 0.01},
    "CoPL": {"config": "CoPL/vit_b16_c4_ep10_batch1_ctxv1.yaml", "optim": "adam", "lr": 0.01},
    "MaPLe": {"config": "MaPLe/vit_b16_c2_ep5_batch4_2ctx.yaml"},
    "IVLP": {"config": "IVLP/vit_b16_c2_ep5_batch4_2+2ctx.yaml", "seed": 3},  # see test_maple_training
    "VPT": {"config": "VPT/vit_b16_c2_ep5_batch4_4.yaml"},
    "MetaPrompt": {"config": "MetaPrompt/vit_b16_c2_ep8_batch16_2+2ctx.yaml", "lr": 0.2},
    "Meta_B2N": {"config": "Meta_B2N/vit_b16.yaml", "lr": 0.2},
    "Meta_DG": {"config": "Meta_DG/vit_b16.yaml", "dataset": "pacs", "lr": 0.2, "steps": 15},
    # Both hold the prompts near the zero-shot prompt by design, and the random tiny CLIP's zero-shot prompt is
    # at chance: learn from CoOp's random 16-token context, KgCoOp with a weak pull (W 0.1; 8.0 and 1.0 hold
    # the loss within 10% of the start), over 60 steps.
    "KgCoOp": {"config": "KgCoOp/vit_b16_ep100_ctxv1.yaml", "lr": 0.2, "steps": 60,
               "opts": ["TRAINER.COOP.W", 0.1, "TRAINER.COOP.CTX_INIT", "", "TRAINER.COOP.N_CTX", 16]},
    "ProGrad": {"config": "ProGrad/rn50_ep100.yaml", "lr": 0.2, "steps": 60, "opts": ["TRAINER.COOP.CTX_INIT", ""]},
    # The self-regulation pulls towards the random tiny CLIP's zero-shot predictions: Adam moves the prompts further.
    "PromptSRC": {"optim": "adam", "lr": 0.01},
    "ExtrasLinearProbeMaPLe": {"lr": 0.05},
    "ZeroshotCLIP": {"config": "CoOp/vit_b16.yaml"},
    "ZeroshotCLIP2": {"config": "CoOp/vit_b16.yaml"},
}


def settings(name):
    found = sorted(glob.glob(os.path.join(REPO_ROOT, "configs", "trainers", name, "*.yaml")))
    default = {"config": os.path.relpath(found[0], os.path.join(REPO_ROOT, "configs", "trainers")) if found else None,
               "dataset": "caltech", "optim": "sgd", "seed": 1, **DEFAULT_LEARNING}
    return {**default, **SETTINGS.get(name, {})}


def run_inputs(name, prec, caltech_root, pacs_root):
    """(data arguments, dataset options, config arguments, precision options) that train.py needs to run `name`
    on its generated dataset: Caltech101 base classes at 4 shots, or PACS at 2 shots for the DG trainers."""
    s = settings(name)
    if s["dataset"] == "pacs":
        data = ["--root", pacs_root, "--dataset-config-file", os.path.join(REPO_ROOT, "configs/datasets/pacs.yaml"),
                "--target-domains", "sketch"]
        dataset_opts = ["DATASET.NUM_SHOTS", 2]
    else:
        data = ["--root", caltech_root, "--dataset-config-file",
                os.path.join(REPO_ROOT, "configs/datasets/caltech101.yaml")]
        dataset_opts = ["DATASET.NUM_SHOTS", 4, "DATASET.SUBSAMPLE_CLASSES", "base"]
    config = ["--config-file", os.path.join(REPO_ROOT, "configs", "trainers", s["config"])] if s["config"] else []
    node = trainer_class(name).CONFIG_NODE
    prec_opts = [f"TRAINER.{node}.PREC", prec] if node else []
    return data, dataset_opts, config, prec_opts


# ------------------------------------------------------------------------------------------ building
@pytest.fixture(scope="module")
def build(tiny_clip_path, caltech_root, pacs_root, tmp_path_factory):
    """build(name, prec, *flags_and_opts, out=None, seed=None) -> the trainer train.py builds (not trained)."""

    def _build(name, prec="fp32", *extra, out=None, seed=None, flags=("--no-train",), epochs=1):
        s = settings(name)
        out = out or tmp_path_factory.mktemp(f"{name}-{prec}")
        data, dataset_opts, config, prec_opts = run_inputs(name, prec, caltech_root, pacs_root)
        argv = ["--seed", s["seed"] if seed is None else seed, "--trainer", name, *data, *config, "--output-dir", out,
                *flags, *fast_opts(tiny_clip_path, epochs=epochs), "OPTIM.WARMUP_EPOCH", 0, "OPTIM.WEIGHT_DECAY", 0.0,
                "OPTIM.NAME", s["optim"], "OPTIM.LR", s["lr"], "DATALOADER.TRAIN_X.BATCH_SIZE", s["batch"],
                *dataset_opts, *prec_opts, *s.get("opts", ()), *extra]
        return run_train(argv)

    return _build


@pytest.fixture(scope="module")
def trained_runs(build, tmp_path_factory):
    """train.py for one epoch (zero-shot: --eval-only), once per trainer: {name: (trainer, output dir)}."""
    runs = {}

    def _run(name):
        if name not in runs:
            out = tmp_path_factory.mktemp(f"{name}-run")
            flags = () if has_prompts(name) else ("--eval-only",)
            runs[name] = (build(name, "fp32", out=out, flags=flags), out)
        return runs[name]

    return _run


def training_images(trainer):
    """The training set with the deterministic test-time transform, as one batch dict of tensors."""
    loader = build_data_loader(trainer.cfg, "SequentialSampler", data_source=trainer.dm.dataset.train_x,
                               batch_size=1000, tfm=build_transform(trainer.cfg, is_train=False), is_train=False)
    batches = list(loader)
    return {key: torch.cat([b[key] for b in batches]) for key in ("img", "label", "domain")}


def subset(data, index):
    return {key: value[index] for key, value in data.items()}


def trainable_state(trainer):
    return {k: v.detach().clone() for k, v in trainer.trainable_module().state_dict().items()}


def trainable_names(trainer):
    return {n for n, p in trainer.model.named_parameters() if p.requires_grad}


def step(trainer, batch):
    """One training step of the trainer's own update, without the end-of-epoch LR step."""
    trainer.set_model_mode("train")
    trainer.epoch, trainer.batch_idx, trainer.num_batches = 0, 0, 10 ** 6
    return trainer.forward_backward(batch)


@torch.no_grad()
def loss_and_accuracy(trainer, data):
    trainer.set_model_mode("eval")
    with trainer.precision.autocast():
        logits = trainer.model(data["img"]).float()
    return F.cross_entropy(logits, data["label"]).item(), 100.0 * (logits.argmax(-1) == data["label"]).float().mean().item()


@torch.no_grad()
def logits_of(trainer, images):
    trainer.set_model_mode("eval")
    return trainer.model(images)


def fixed_images(n=6, seed=0):
    return torch.randn(n, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


# --------------------------------------------------------------------------------------------- tests
def test_the_registry_holds_every_plugin_module_and_only_plugins():
    """Every trainers/*.py module registers at least one trainer, and each registered name is its class name."""
    modules = {os.path.splitext(os.path.basename(p))[0] for p in glob.glob(os.path.join(REPO_ROOT, "trainers", "*.py"))}
    modules.discard("__init__")
    registered_from = {trainer_class(n).__module__.rsplit(".", 1)[1] for n in TRAINERS}  # <codebase>.trainers.<module>
    assert registered_from == modules
    assert all(trainer_class(n).__name__ == n for n in TRAINERS)
    assert "ToyLinear" not in TRAINERS  # test_engine's registration is not a plugin
    assert {"CoOp", "CoCoOp", "MaPLe", "IVLP", "VPT", "MetaPrompt", "CoPL", "ZeroshotCLIP"} <= set(TRAINERS)


@pytest.mark.parametrize("name", TRAINERS)
def test_builds_on_the_tiny_clip(name, build):
    trainer = build(name)
    assert type(trainer) is trainer_class(name) and trainer.cfg.TRAINER.NAME == name
    assert isinstance(trainer.model, PromptedCLIP)
    logits = logits_of(trainer, fixed_images(2))
    assert logits.shape == (2, trainer.num_classes) and torch.isfinite(logits).all()
    trainable = {id(p) for p in trainer.trainable_module().parameters()} if has_prompts(name) else set()
    # Exactly the prompt learner trains; frozen CLIP stays frozen.
    assert {id(p) for p in trainer.model.parameters() if p.requires_grad} == trainable
    assert bool(trainable) == has_prompts(name)


@pytest.mark.parametrize("name", NOTHING_TO_TRAIN)
def test_a_trainer_with_nothing_to_train_says_so(name, build):
    trainer = build(name)
    assert trainer.trainable_module() is None and trainer.get_model_names() == []
    assert not any(p.requires_grad for p in trainer.model.parameters())
    with pytest.raises(RuntimeError, match="has nothing to train; run it with --eval-only"):
        trainer.train()


@pytest.mark.parametrize("prec,compute_dtype", [("fp32", torch.float32), ("amp", torch.bfloat16)])
@pytest.mark.parametrize("name", TRAINABLE)
def test_one_training_step_changes_every_trainable_tensor(name, prec, compute_dtype, build):
    trainer = build(name, prec)
    assert trainer.precision.name == ("fp32" if prec == "fp32" else "bf16")
    data = training_images(trainer)
    before = trainable_state(trainer)
    random.seed(0)
    torch.manual_seed(0)
    summary = step(trainer, subset(data, torch.arange(min(8, len(data["label"])))))
    losses = [v for k, v in summary.items() if k.endswith("loss")]  # "loss"; ProGrad's "xe_loss", "kl_loss"
    assert losses and torch.isfinite(torch.tensor(losses)).all()
    after = trainable_state(trainer)
    unchanged = [k for k in before if torch.equal(before[k], after[k])]
    assert not unchanged, f"not updated (no weight decay, so no gradient reached them): {unchanged}"
    assert all(p.dtype == torch.float32 for p in trainer.trainable_module().parameters())  # fp32 prompts
    with torch.no_grad(), trainer.precision.autocast():
        assert trainer.model(data["img"][:2]).dtype == compute_dtype


@pytest.mark.parametrize("name", TRAINABLE)
def test_learns_an_easy_task(name, build):
    """The generated classes differ by colour: a few dozen steps of the trainer's own update learn them."""
    s = settings(name)
    trainer = build(name)
    data = training_images(trainer)
    n = len(data["label"])
    loss_before, acc_before = loss_and_accuracy(trainer, data)
    order = torch.Generator().manual_seed(0)
    random.seed(0)
    for _ in range(s["steps"]):
        step(trainer, subset(data, torch.randperm(n, generator=order)[:s["batch"]]))
    loss_after, acc_after = loss_and_accuracy(trainer, data)
    chance = 100.0 / trainer.num_classes
    print(f"{name}: loss {loss_before:.3f} -> {loss_after:.3f}, accuracy {acc_before:.0f}% -> {acc_after:.0f}%")
    assert loss_after < 0.7 * loss_before, (loss_before, loss_after)
    # From about chance (20% on Caltech's 5 base classes, 33% on PACS's 3) to 60-100%.
    assert acc_after >= 60.0 and acc_after >= acc_before + 30.0, (chance, acc_before, acc_after)


@pytest.mark.parametrize("name", TRAINERS)
def test_cached_evaluation_equals_the_plain_forward(name, build):
    trainer = build(name)
    if has_prompts(name):  # away from the initialisation, so that every prompt shapes the logits
        data = training_images(trainer)
        random.seed(0)
        step(trainer, subset(data, torch.arange(min(8, len(data["label"])))))
    model = trainer.model.eval()
    images = fixed_images(6)
    plain = torch.cat([logits_of(trainer, images[:4]), logits_of(trainer, images[4:])])  # the same batches
    calls = []
    static_inputs = model.static_inputs
    model.static_inputs = lambda: calls.append(1) or static_inputs()
    try:
        with torch.no_grad(), model.cached_static_inputs():
            cached = torch.cat([model(images[:4]), model(images[4:])])
    finally:
        del model.static_inputs
    image_independent = static_inputs() is not None  # CoCoOp, CoPL: every input depends on the image
    assert len(calls) == (1 if image_independent else 3)  # once for the whole evaluation, not per batch
    assert torch.equal(plain, cached)

    # trainer.test() (cached, as every evaluation) gives the accuracy of the plain per-batch forward.
    correct = total = 0
    for batch in trainer.test_loader:
        correct += (logits_of(trainer, batch["img"]).argmax(-1) == batch["label"]).sum().item()
        total += len(batch["label"])
    assert trainer.test() == pytest.approx(100.0 * correct / total, abs=1e-9)


@pytest.mark.parametrize("name", TRAINABLE)
def test_a_checkpoint_loads_into_a_fresh_trainer_with_identical_logits(name, build, trained_runs, tmp_path):
    trained, out = trained_runs(name)
    folder = out / trained.CHECKPOINT_NAME
    assert sorted(os.listdir(folder)) == ["checkpoint", "model.pth.tar-1"]
    saved = torch.load(folder / "model.pth.tar-1", map_location="cpu", weights_only=False)["state_dict"]
    # Only what is trainable: no frozen CLIP, no rebuilt token buffers.
    assert set(saved) == {n for n, _ in trained.trainable_module().named_parameters()}
    # The checkpoint alone (as it is shared), and another seed: the fresh trainer starts from other prompts,
    # so only loading can make the logits equal.
    shutil.copytree(folder, tmp_path / "shared" / trained.CHECKPOINT_NAME)
    fresh = build(name, seed=settings(name)["seed"] + 1, out=tmp_path / "eval",
                  flags=("--eval-only", "--model-dir", tmp_path / "shared", "--load-epoch", 1))
    assert fresh is not trained and fresh.loaded_checkpoint["epoch"] == 1
    images = fixed_images(6)
    assert torch.equal(logits_of(fresh, images), logits_of(trained, images))
    unloaded = build(name, "fp32", seed=settings(name)["seed"] + 1, out=tmp_path / "unloaded")
    assert not torch.equal(logits_of(unloaded, images), logits_of(trained, images))


@pytest.mark.parametrize("name", TRAINERS)
def test_result_json_records_the_run(name, trained_runs):
    trainer, out = trained_runs(name)
    result = read_result(out)
    s = settings(name)
    assert result["method"] == name
    assert result["dataset"] == trainer.cfg.DATASET.NAME == ("PACSFS" if s["dataset"] == "pacs" else "Caltech101")
    assert result["shots"] == (2 if s["dataset"] == "pacs" else 4) and result["seed"] == s["seed"]
    assert result["num_classes"] == trainer.num_classes
    assert result["metrics"]["accuracy"] == pytest.approx(trainer.test())  # what evaluating the model gives
    assert result["identity"]["fingerprint"] and result["resumed_from_epoch"] is None
    node = trainer_class(name).CONFIG_NODE  # zero-shot CLIP has no PREC key: fp16 as the original, fp32 on a CPU
    assert result["precision"] == {"requested": "fp32" if node else "fp16", "used": "fp32"}
    assert result["mode"] == ("train" if has_prompts(name) else "eval-only")
    assert result["epochs_trained"] == (1 if has_prompts(name) else None)
    assert result["output_dir"] == os.path.abspath(out) and result["versions"]["engine"]
    assert os.path.basename(result["config_file"]) == os.path.basename(s["config"])


# ------------------------------------------------------------------------- the originals' checkpoints
def write_coop_family_original(run_dir, trainer):
    """CoOp / CoCoOp release: prompt_learner/ holding the learner's tensors plus token_prefix/token_suffix
    (for the classes it was trained on, here 7)."""
    g = torch.Generator().manual_seed(5)
    ours = {k: torch.randn(v.shape, generator=g) for k, v in trainer.trainable_module().state_dict().items()}
    width = trainer.model.text_encoder.width
    state = dict(ours, token_prefix=torch.zeros(7, 1, width), token_suffix=torch.zeros(7, 60, width))
    return write_dassl_checkpoint(run_dir, "prompt_learner", state, epoch=10), ours


def write_kgcoop_original(run_dir, trainer):
    """KgCoOp release: CoOp's layout plus its unused bias_vectors [1, 512] and float16 meta_net (dropped)."""
    epoch, ours = write_coop_family_original(run_dir, trainer)
    path = os.path.join(run_dir, "prompt_learner", f"model.pth.tar-{epoch}")
    checkpoint = torch.load(path, weights_only=False)
    del checkpoint["val_result"]  # the fork's checkpoints have none
    checkpoint["state_dict"].update({"bias_vectors": torch.randn(1, 512), "meta_net.linear1.weight":
                                     torch.randn(512, 512).half(), "meta_net.linear1.bias": torch.randn(512).half()})
    torch.save(checkpoint, path)
    return epoch, ours


def write_maple_family_original(run_dir, trainer):
    """MaPLe / IVLP / VPT release: the whole CustomCLIP (tests/test_maple_checkpoints.py writes it)."""
    from test_maple_checkpoints import write_original_checkpoint
    from vlprompt.clip_loader import load_clip

    method = trainer.cfg.TRAINER.NAME
    ours = write_original_checkpoint(str(run_dir), method, load_clip(trainer.cfg.MODEL.BACKBONE.NAME), epoch=10)
    return 10, ours


def write_metaprompt_original(run_dir, trainer):
    """MetaPrompt release: model/ holding the whole model; the prompts under prompt_learner.ctx and
    vision_prompt_learner.ctx (fp16, as its fp16 runs saved them)."""
    g = torch.Generator().manual_seed(5)
    learner = trainer.trainable_module()
    text = torch.randn(learner.text_ctx.shape, generator=g).half()
    vision = torch.randn(learner.vision_ctx.shape, generator=g).half()
    state = {"prompt_learner.ctx": text, "vision_prompt_learner.ctx": vision, "logit_scale": torch.tensor(4.6),
             "image_encoder.ln_post.weight": torch.ones(trainer.model.image_encoder.width)}
    return write_dassl_checkpoint(run_dir, "model", state, epoch=10), {"text_ctx": text.float(), "vision_ctx": vision.float()}


def write_successor_original(run_dir, trainer):
    """PromptSRC / DePT release: the whole CustomCLIP (tests/test_original_parity_promptsrc_dept.py writes it)."""
    from test_original_parity_promptsrc_dept import write_official_layout

    return write_official_layout(run_dir, trainer)


ORIGINAL_LAYOUTS = {"CoOp": write_coop_family_original, "CoCoOp": write_coop_family_original,
                    "KgCoOp": write_kgcoop_original, "ProGrad": write_coop_family_original,
                    "PromptSRC": write_successor_original, "ExtrasLinearProbeCoOp": write_successor_original,
                    "ExtrasLinearProbeCoCoOp": write_successor_original,
                    "ExtrasLinearProbeMaPLe": write_successor_original, "ExtrasLinearProbeKgCoOp": write_successor_original,
                    "MaPLe": write_maple_family_original, "IVLP": write_maple_family_original,
                    "VPT": write_maple_family_original, "MetaPrompt": write_metaprompt_original,
                    "Meta_B2N": write_metaprompt_original, "Meta_DG": write_metaprompt_original}
NO_ORIGINAL_RELEASE = {"CoPL"}  # no public code (docs/COPL.md)


def test_every_trainable_trainer_states_whether_an_original_layout_exists():
    assert set(TRAINABLE) == set(ORIGINAL_LAYOUTS) | NO_ORIGINAL_RELEASE
    assert not set(ORIGINAL_LAYOUTS) & NO_ORIGINAL_RELEASE


@pytest.mark.parametrize("name", [n for n in TRAINABLE if n in ORIGINAL_LAYOUTS])
def test_the_original_repositorys_checkpoint_layout_loads(name, build, tmp_path):
    template = build(name)
    weights = tmp_path / "released"
    epoch, expected = ORIGINAL_LAYOUTS[name](weights, template)
    trainer = build(name, out=tmp_path / "eval", flags=("--eval-only", "--model-dir", weights, "--load-epoch", epoch))
    loaded = trainer.trainable_module().state_dict()
    assert set(loaded) == set(expected)
    for key, value in expected.items():
        assert torch.equal(loaded[key], value.to(loaded[key].dtype)), key
    assert read_result(tmp_path / "eval")["checkpoint"]["epoch"] == epoch

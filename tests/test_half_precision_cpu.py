"""PREC fp16 and amp as users run them on a GPU, run on the CPU (issue 24).

Every method's default is PREC fp16, and on a GPU users also run amp. A CPU would fall back (fp16 -> fp32,
amp -> bfloat16 autocast), so these tests turn on the test-only switch VLPROMPT_TEST_ONLY_CPU_HALF=1
(vlprompt/precision.py): the CPU then computes PREC fp16 in real float16 and amp under float16 autocast
with a CPU GradScaler, the code users run on a GPU.

For every registered trainer (the registry itself, as tests/test_registry_trainers.py), through train.py
on the tiny CLIP, in fp16 and in amp:
- the run trains (2 epochs, 2 steps each) and evaluates, and result.json records the precision that ran;
- dtypes are the originals' fp16 reality (reference dassl_coop_maple.md §B.4-B.5, §C.3-C.6,
  metaprompt_copl.md §1; table HALF_PARAMETERS): CLIP's converted layers and the named prompt tensors in
  float16, the others float32; the checkpoints store them so (e.g. CoOp's fp16 ctx), and amp's store the
  GradScaler's state;
- a run killed right after its first checkpoint and run again ends bit-identical to the uninterrupted run;
- the checkpoint loaded into a fresh trainer (another seed) gives the trained model's logits exactly, and
  loaded into an fp32 trainer gives logits within LOGIT_TOLERANCE of the half-precision ones (see there);
- a loss that is not finite stops the run with the message that names the precision.
"""
import os
import shutil

import pytest
import torch

from helpers import fast_opts, read_result, run_train
from test_registry_trainers import TRAINERS, fixed_images, has_prompts, run_inputs, settings, trainer_class
from vlprompt.precision import TEST_ONLY_CPU_HALF, cpu_half_for_tests, resolve_precision

TRAINABLE = [n for n in TRAINERS if has_prompts(n)]
HALF_PRECISIONS = ("fp16", "amp")

# The trainable tensors each original keeps in float16 under PREC fp16 (name prefixes in our trainable
# module); every other trainable tensor stays float32, as there. Under amp every trainable tensor is float32.
HALF_PARAMETERS = {
    "CoOp": ("ctx",),  # ref B.4: ctx in the CLIP dtype, trained by SGD with no master copy
    "CoCoOp": ("ctx", "meta_net."),  # ref B.5: the Meta-Net is converted to fp16
    "CoPL": ("ctx", "meta_net."),  # a reconstruction of CoCoOp's successor: CoCoOp's rule
    "MaPLe": ("ctx", "proj."),  # ref C.4: ctx and proj fp16; deep prompts and their projections fp32
    "IVLP": ("ctx",),  # ref C.5: text ctx in the CLIP dtype; the VPT / VPT_shallow prompts fp32
    "VPT": (),  # ref C.6: its CLIP loader returns model.float(): everything fp32 (TRUE_FP16 False)
    "MetaPrompt": ("text_ctx", "vision_ctx"),  # metaprompt_copl §1: CLIP and both prompts in half precision
    "Meta_B2N": ("text_ctx", "vision_ctx"),
    "Meta_DG": ("text_ctx", "vision_ctx"),
    "KgCoOp": ("ctx",),  # successors §1.2: CoOp's learner, ctx in fp16 (its unused meta_net is not kept)
    "ProGrad": ("ctx",),  # successors §1.2: the learner in fp16 (the zero-shot teacher, frozen, stays fp32)
    "PromptSRC": ("ctx",),  # successors §1.2: IVLP's (text ctx fp16, the VPT prompts fp32)
    # successors §1.2, §5.3: DePT keeps its prompt method's dtypes, the probe `.type(dtype)` (fp16), FiLM fp32
    "ExtrasLinearProbeCoOp": ("prompt_learner.ctx", "linear_probe_proj."),
    "ExtrasLinearProbeCoCoOp": ("prompt_learner.ctx", "prompt_learner.meta_net.", "linear_probe_proj."),
    "ExtrasLinearProbeKgCoOp": ("prompt_learner.ctx", "linear_probe_proj."),
    "ExtrasLinearProbeMaPLe": ("prompt_learner.ctx", "prompt_learner.proj.", "linear_probe_proj."),
}
# What runs (Precision.name, recorded in result.json) for PREC fp16 / amp: VPT's fp16 ran in fp32 in the
# original (TRAINER.VPT.TRUE_FP16 False).
RUNS_AS = {"VPT": {"fp16": "fp32"}}

# fp16 / amp vs fp32 logits of the same trained checkpoint: the largest difference over the images, relative
# to the largest |logit| (the tiny CLIP's logit scale is CLIP's initial 1/0.07 and its random towers give
# logits up to about 3.3). Measured on this CPU: at most 0.44% (fp16) and 0.58% (amp) over all trainers.
# float16 keeps 11 significant bits (0.05% per rounding) and twelve layers round repeatedly, so 2% is the
# stated tolerance. Predictions agree wherever the fp32 model's top-2 margin is larger than twice that.
LOGIT_TOLERANCE = 0.02


@pytest.fixture(autouse=True)
def cpu_half(monkeypatch):
    monkeypatch.setenv(TEST_ONLY_CPU_HALF, "1")


def node(name):
    return trainer_class(name).CONFIG_NODE


def argv(name, prec, out, data_roots, clip_path, flags=(), opts=(), seed=None, epochs=2):
    """train.py's arguments for `name` on its generated dataset: 2 epochs of 2 steps (batch 8), plain SGD as
    the originals (Adam's eps of 1e-8 is 0 in float16: fp16 prompts with OPTIM.NAME adam give a NaN loss)."""
    s = settings(name)
    data, dataset_opts, config, prec_opts = run_inputs(name, prec, *data_roots)
    return ["--seed", s["seed"] if seed is None else seed, "--trainer", name, *data, *config, "--output-dir", out,
            *flags, *fast_opts(clip_path, epochs=epochs), "OPTIM.WARMUP_EPOCH", 0, "OPTIM.NAME", "sgd",
            "OPTIM.LR", s["lr"], "DATALOADER.TRAIN_X.BATCH_SIZE", 8, *dataset_opts, *prec_opts, *opts]


class Killed(BaseException):
    """A crash at a kill point (vlprompt.resume.kill_point), in this process."""


def crash_at(monkeypatch, point):
    import vlprompt.trainer

    def kill_point(name):
        if name == point:
            raise Killed(name)

    monkeypatch.setattr(vlprompt.trainer, "kill_point", kill_point)


@pytest.fixture(scope="module")
def runs(tiny_clip_path, caltech_root, pacs_root, tmp_path_factory):
    """The uninterrupted run of (name, prec), once per module: {(name, prec): (trainer, output dir)}."""
    done = {}

    def _run(name, prec):
        if (name, prec) not in done:
            out = tmp_path_factory.mktemp(f"{name}-{prec}")
            flags = () if has_prompts(name) else ("--eval-only",)
            with cpu_half_for_tests():
                trainer = run_train(argv(name, prec, out, (caltech_root, pacs_root), tiny_clip_path, flags))
            done[name, prec] = (trainer, out)
        return done[name, prec]

    return _run


def checkpoint_file(trainer, out, epoch=2):
    return out / trainer.CHECKPOINT_NAME / f"model.pth.tar-{epoch}"


@torch.no_grad()
def logits(trainer, images):
    trainer.set_model_mode("eval")
    with trainer.precision.autocast():
        return trainer.model(images).float()


# ------------------------------------------------------------------------------------------- the switch
def test_the_test_switch_keeps_fp16_and_amp_as_float16_on_the_cpu(monkeypatch, capsys):
    monkeypatch.delenv(TEST_ONLY_CPU_HALF)
    fp16, amp = resolve_precision("fp16", "cpu"), resolve_precision("amp", "cpu")
    assert (fp16.name, fp16.weight_dtype, fp16.autocast_dtype) == ("fp32", torch.float32, None)
    assert (amp.name, amp.autocast_dtype, amp.grad_scaler()) == ("bf16", torch.bfloat16, None)
    assert capsys.readouterr().out == ("Note: PREC fp16 needs a GPU; running in fp32 on cpu\n"
                                       "Note: PREC amp on cpu uses bfloat16 autocast\n")
    for off in ("0", ""):
        monkeypatch.setenv(TEST_ONLY_CPU_HALF, off)
        assert resolve_precision("fp16", "cpu", verbose=False).name == "fp32"

    monkeypatch.setenv(TEST_ONLY_CPU_HALF, "1")
    fp16, amp = resolve_precision("fp16", "cpu"), resolve_precision("amp", "cpu")
    assert (fp16.name, fp16.weight_dtype, fp16.autocast_dtype, fp16.use_grad_scaler) == \
        ("fp16", torch.float16, None, False)
    assert (amp.name, amp.weight_dtype, amp.autocast_dtype, amp.device_type) == \
        ("amp", torch.float32, torch.float16, "cpu")
    scaler = amp.grad_scaler()
    assert isinstance(scaler, torch.amp.GradScaler) and scaler.is_enabled() and scaler._device == "cpu"
    assert capsys.readouterr().out == (
        "Note: PREC fp16 runs in float16 on the CPU (VLPROMPT_TEST_ONLY_CPU_HALF=1, for tests only)\n"
        "Note: PREC amp runs float16 autocast with loss scaling on the CPU (VLPROMPT_TEST_ONLY_CPU_HALF=1, "
        "for tests only)\n")
    # fp32 and bf16 are what they were; the context manager restores the environment.
    assert resolve_precision("fp32", "cpu").name == "fp32" and resolve_precision("bf16", "cpu").name == "bf16"
    with cpu_half_for_tests(False):
        assert resolve_precision("fp16", "cpu", verbose=False).name == "fp32"
    assert os.environ[TEST_ONLY_CPU_HALF] == "1"
    monkeypatch.delenv(TEST_ONLY_CPU_HALF)
    with cpu_half_for_tests():
        assert resolve_precision("amp", "cpu", verbose=False).name == "amp"
    assert TEST_ONLY_CPU_HALF not in os.environ


# ------------------------------------------------------------------------------------ every trainer
@pytest.mark.parametrize("prec", HALF_PRECISIONS)
@pytest.mark.parametrize("name", TRAINERS)
def test_trains_and_evaluates_in_the_precision_users_run(name, prec, runs):
    trainer, out = runs(name, prec)
    used = RUNS_AS.get(name, {}).get(prec, prec) if node(name) else "fp16"  # zero-shot CLIP: fp16, no PREC key
    assert trainer.precision.name == used
    result = read_result(out)
    assert result["precision"] == {"requested": prec if node(name) else "fp16", "used": used}
    assert result["num_test_images"] > 0 and 0.0 <= result["metrics"]["accuracy"] <= 100.0
    clip_dtype = torch.float16 if used == "fp16" else torch.float32
    assert trainer.model.text_encoder.dtype == trainer.model.image_encoder.dtype == clip_dtype
    # clip.build_model's fp16 conversion (ref A, convert_weights): linear/conv/attention weights and the
    # projections in float16; LayerNorms, embeddings and the logit scale stay float32.
    text, visual = trainer.model.text_encoder, trainer.model.image_encoder.visual
    assert text.text_projection.dtype == visual.proj.dtype == text.transformer.resblocks[0].attn.in_proj_weight.dtype \
        == clip_dtype
    assert {text.ln_final.weight.dtype, text.positional_embedding.dtype, text.token_embedding.weight.dtype,
            visual.class_embedding.dtype, trainer.model.logit_scale.dtype} == {torch.float32}
    out_dtype = {"fp16": torch.float16, "amp": torch.float16, "fp32": torch.float32}[used]
    trainer.set_model_mode("eval")
    with torch.no_grad(), trainer.precision.autocast():
        assert trainer.model(fixed_images(2)).dtype == out_dtype
    assert (trainer.scaler is not None) == (used == "amp")
    if not has_prompts(name):
        return
    half = HALF_PARAMETERS[name] if used == "fp16" else ()
    for key, param in trainer.trainable_module().named_parameters():
        assert param.dtype == (torch.float16 if key.startswith(half) else torch.float32), key
        assert torch.isfinite(param).all(), key
    # Checkpoints store the tensors as they are (CoOp's fp16 ctx as the original's), and amp's the scaler.
    saved = torch.load(checkpoint_file(trainer, out), map_location="cpu", weights_only=False)
    state = trainer.trainable_module().state_dict()
    assert {k: v.dtype for k, v in saved["state_dict"].items()} == {k: v.dtype for k, v in state.items()}
    assert all(torch.equal(saved["state_dict"][k], v) for k, v in state.items())
    scaler = saved["resume"]["scaler"]
    if used == "amp":
        assert scaler["scale"] > 0 and scaler == trainer.scaler.state_dict()
    else:
        assert scaler is None


@pytest.mark.parametrize("prec", HALF_PRECISIONS)
@pytest.mark.parametrize("name", TRAINABLE)
def test_a_run_killed_after_its_first_checkpoint_resumes_to_the_same_model(
        name, prec, runs, tiny_clip_path, caltech_root, pacs_root, tmp_path, monkeypatch):
    whole, whole_out = runs(name, prec)
    killed = tmp_path / "killed"
    args = argv(name, prec, killed, (caltech_root, pacs_root), tiny_clip_path)
    crash_at(monkeypatch, "checkpoint-written-1")
    with pytest.raises(Killed):
        run_train(args)
    assert not (killed / "result.json").exists()
    monkeypatch.undo()
    monkeypatch.setenv(TEST_ONLY_CPU_HALF, "1")
    resumed = run_train(args)
    assert resumed.resumed_from == 1
    a = torch.load(checkpoint_file(whole, whole_out), map_location="cpu", weights_only=False)
    b = torch.load(checkpoint_file(resumed, killed), map_location="cpu", weights_only=False)
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for key in a["state_dict"]:
        assert a["state_dict"][key].dtype == b["state_dict"][key].dtype
        assert torch.equal(a["state_dict"][key], b["state_dict"][key]), key
    momentum = [(x.get("momentum_buffer"), y.get("momentum_buffer"))
                for x, y in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values())]
    assert all((x is None and y is None) or torch.equal(x, y) for x, y in momentum)
    assert a["resume"]["scaler"] == b["resume"]["scaler"]
    assert read_result(whole_out)["metrics"] == read_result(killed)["metrics"]


@pytest.mark.parametrize("prec", HALF_PRECISIONS)
@pytest.mark.parametrize("name", TRAINABLE)
def test_the_checkpoint_gives_the_same_logits_and_agrees_with_fp32(
        name, prec, runs, tiny_clip_path, caltech_root, pacs_root, tmp_path):
    trained, out = runs(name, prec)
    shared = tmp_path / "shared"
    shutil.copytree(out / trained.CHECKPOINT_NAME, shared / trained.CHECKPOINT_NAME)
    roots = (caltech_root, pacs_root)
    seed = settings(name)["seed"] + 1  # another seed: only loading can give the trained prompts
    load = ("--eval-only", "--model-dir", shared, "--load-epoch", 2)
    fresh = run_train(argv(name, prec, tmp_path / "fresh", roots, tiny_clip_path, load, seed=seed))
    images = fixed_images(6)
    assert torch.equal(logits(fresh, images), logits(trained, images))

    in_fp32 = run_train(argv(name, "fp32", tmp_path / "fp32", roots, tiny_clip_path, load, seed=seed))
    assert in_fp32.precision.name == "fp32"
    half, full = logits(trained, images), logits(in_fp32, images)
    scale = full.abs().max()
    difference = (half - full).abs().max() / scale
    print(f"{name} {prec}: largest |logit| {scale:.2f}, largest difference {difference:.2%} of it")
    assert difference <= LOGIT_TOLERANCE
    top2 = full.topk(2, dim=-1).values
    clear = (top2[:, 0] - top2[:, 1]) > 2 * LOGIT_TOLERANCE * scale
    assert torch.equal(half.argmax(-1)[clear], full.argmax(-1)[clear])
    if RUNS_AS.get(name, {}).get(prec) == "fp32":  # VPT's fp16 is the original's fp32 computation
        assert torch.equal(half, full)


@pytest.mark.parametrize("name", ["ZeroshotCLIP", "ZeroshotCLIP2"])
def test_zero_shot_clip_in_fp16_agrees_with_fp32(name, runs, tiny_clip_path, caltech_root, pacs_root, tmp_path,
                                                 monkeypatch):
    half, _ = runs(name, "fp16")
    monkeypatch.setenv(TEST_ONLY_CPU_HALF, "0")  # zero-shot CLIP has no PREC key: the CPU fallback is its fp32
    full = run_train(argv(name, "fp16", tmp_path / "fp32", (caltech_root, pacs_root), tiny_clip_path,
                           ("--eval-only",)))
    assert full.precision.name == "fp32"
    images = fixed_images(6)
    a, b = logits(half, images), logits(full, images)
    assert (a - b).abs().max() <= LOGIT_TOLERANCE * b.abs().max()
    assert not torch.equal(a, b)  # really computed in float16


# ------------------------------------------------------------------------------------- non-finite loss
def poisoned_weights(trainer, path, value):
    """The trainer's initial trainable tensors, every floating entry set to `value` (MODEL.INIT_WEIGHTS)."""
    state = {k: torch.full_like(v.float(), value) for k, v in trainer.trainable_module().state_dict().items()}
    torch.save({"state_dict": state}, path)
    return path


@pytest.mark.parametrize("name", TRAINABLE)
def test_a_value_float16_cannot_hold_stops_the_run_naming_the_precision(
        name, runs, tiny_clip_path, caltech_root, pacs_root, tmp_path):
    """Prompts of 1e5 (float32 holds them; float16's largest value is 65504) become inf in float16, the loss
    is not finite, and the first step stops with the message about precision, before any update."""
    template, _ = runs(name, "fp16")
    weights = poisoned_weights(template, tmp_path / "init.pth", 1e5)
    extra = ("TRAINER.VPT.TRUE_FP16", True) if name == "VPT" else ()  # VPT's fp16 is fp32 by default
    args = argv(name, "fp16", tmp_path / "run", (caltech_root, pacs_root), tiny_clip_path,
                opts=("MODEL.INIT_WEIGHTS", weights, *extra))
    with pytest.raises(FloatingPointError) as error:
        run_train(args)
    assert f"at epoch 1, batch 1 (PREC fp16, running as fp16). Half precision is the usual cause: try " \
           f"TRAINER.{node(name)}.PREC amp or fp32, or a lower OPTIM.LR." in str(error.value)
    assert not (tmp_path / "run" / template.CHECKPOINT_NAME).exists()


@pytest.mark.parametrize("name", ["CoOp", "MaPLe", "MetaPrompt"])
def test_a_nan_loss_under_amp_stops_the_run_naming_the_precision(name, runs, tiny_clip_path, caltech_root, pacs_root,
                                                                 tmp_path):
    template, _ = runs(name, "amp")
    weights = poisoned_weights(template, tmp_path / "init.pth", float("nan"))
    args = argv(name, "amp", tmp_path / "run", (caltech_root, pacs_root), tiny_clip_path,
                opts=("MODEL.INIT_WEIGHTS", weights))
    with pytest.raises(FloatingPointError, match=r"Loss is nan at epoch 1, batch 1 \(PREC amp, running as amp\)\. "
                                                 r"Half precision is the usual cause"):
        run_train(args)

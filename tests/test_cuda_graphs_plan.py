"""The CUDA-graph replay logic that needs no GPU, on the CPU (vlprompt/cuda_graphs.py; issue 24).

GraphedForward is a plan (when to replay, one capture per input shape and dtype, autocast with its cache
off, falling back to eager execution when a capture fails) around a capture function. On a GPU the capture
is torch.cuda.make_graphed_callables (tests/test_cuda_graphs.py checks it there). Here the plan runs with
`replaying_capture`, a capture of the same contract that replays eagerly: the sample becomes the static
input buffer and each call copies its input into it, each call's output is one static buffer overwritten by
the next call, the backward returns the gradients of the static input surface (the input and every module
parameter) to autograd, three warm-up iterations run forward and backward without touching .grad, and a
capture under autocast with its cache on, or of a module with hooks, is refused as make_graphed_callables
refuses it. Training steps through it must then give bit for bit the prompts of eager steps, in fp32, fp16
and amp (the test-only CPU half switch, vlprompt/precision.py).
"""
import os

import pytest
import torch

from helpers import REPO_ROOT, fast_opts, run_train
from vlprompt.cuda_graphs import GraphedForward, capture_cuda_graphs
from vlprompt.precision import TEST_ONLY_CPU_HALF, resolve_precision


class CaptureRefused(RuntimeError):
    pass


def replaying_capture(module, sample, warmup_iters=3):
    """make_graphed_callables(module, (sample,)) with eager "replays" (see the module docstring)."""
    if torch.is_autocast_enabled("cpu") and torch.is_autocast_cache_enabled():
        raise CaptureRefused("make_graphed_callables does not support the autocast caching")
    if module._forward_hooks or module._forward_pre_hooks or module._backward_hooks:
        raise CaptureRefused("Modules must not have hooks registered at the time they are passed")
    replaying_capture.calls.append(tuple(sample.shape))
    params = tuple(module.parameters())
    surface = (sample,) + params

    def grads_of(output, grad_output):
        wanted = [t for t in surface if t.requires_grad]
        found = iter(torch.autograd.grad(output, wanted, grad_output, allow_unused=True))
        return tuple(next(found) if t.requires_grad else None for t in surface)

    for _ in range(warmup_iters):
        out = module(sample)
        grads_of(out, torch.ones_like(out))
    static_output = module(sample).detach().clone()
    last = {}

    class Replay(torch.autograd.Function):
        @staticmethod
        def forward(ctx, image, *module_params):
            if image.data_ptr() != sample.data_ptr():
                sample.copy_(image)
            with torch.enable_grad():
                last["output"] = module(sample)
            static_output.copy_(last["output"].detach())
            return static_output.detach()

        @staticmethod
        @torch.autograd.function.once_differentiable
        def backward(ctx, grad_output):
            return grads_of(last["output"], grad_output)

    return lambda image: Replay.apply(image, *params)


replaying_capture.device_type = "cpu"
replaying_capture.calls = []


@pytest.fixture(autouse=True)
def fresh_capture_log():
    replaying_capture.calls = []


# ------------------------------------------------------------------------------------------ the plan
class Toy(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.frozen = torch.nn.Linear(6, 4).requires_grad_(False)
        self.prompt = torch.nn.Parameter(torch.randn(4))

    def forward(self, x):
        return self.frozen(x.flatten(1)) + self.prompt


def precision(prec="fp32"):
    return resolve_precision(prec, "cpu", verbose=False)


def test_one_capture_per_input_shape_and_dtype_and_replays_equal_eager():
    model = Toy()
    graphed = GraphedForward(model, precision(), capture=replaying_capture)
    batches = [torch.randn(3, 6), torch.randn(3, 6), torch.randn(2, 6), torch.randn(3, 6)]
    outputs = []
    for x in batches:
        out = graphed(x)
        assert torch.equal(out, model(x))
        outputs.append(out)
    assert replaying_capture.calls == [(3, 6), (2, 6)] and len(graphed.graphs) == 2
    assert set(graphed.graphs) == {((3, 6), torch.float32), ((2, 6), torch.float32)}
    # A replay's output is the graph's static buffer: the next replay of that shape overwrites it.
    assert torch.equal(outputs[0], outputs[3]) and not torch.equal(outputs[0], model(batches[0]))
    # The input is copied into the static buffer, never kept: changing it afterwards changes nothing.
    x = torch.randn(3, 6)
    expected = model(x)
    out = graphed(x)
    x.zero_()
    assert torch.equal(out, expected)


def test_gradients_flow_to_the_parameters_as_in_eager_training():
    eager_model, graphed_model = Toy(), Toy()
    graphed = GraphedForward(graphed_model, precision(), capture=replaying_capture)
    for seed in range(3):
        x = torch.randn(3, 6, generator=torch.Generator().manual_seed(seed))
        for model, forward in ((eager_model, eager_model), (graphed_model, graphed)):
            model.prompt.grad = None
            forward(x).square().sum().backward()
            with torch.no_grad():
                model.prompt -= 0.1 * model.prompt.grad
    assert torch.equal(eager_model.prompt, graphed_model.prompt)
    assert graphed_model.frozen.weight.grad is None  # the frozen weights get no gradient, as in eager


def test_no_graph_when_disabled_on_another_device_or_without_gradients():
    model = Toy()
    x = torch.randn(3, 6)
    for graphed in (GraphedForward(model, precision(), enabled=False, capture=replaying_capture),
                    GraphedForward(model, precision(), capture=capture_cuda_graphs)):  # CUDA graphs, CPU input
        assert not graphed.replays(x) and torch.equal(graphed(x), model(x)) and not graphed.graphs
    graphed = GraphedForward(model, precision(), capture=replaying_capture)
    with torch.no_grad():  # an evaluation: no capture, and graphs stay available for training
        assert torch.equal(graphed(x), model(x))
    assert not graphed.graphs and not graphed.failed and replaying_capture.calls == []
    graphed(x)
    assert len(graphed.graphs) == 1


def test_a_failed_capture_falls_back_to_eager_for_good(capsys):
    calls = []

    def capture(module, sample):  # what a host synchronisation inside the captured step gives on a GPU
        calls.append(tuple(sample.shape))
        raise RuntimeError("operation not permitted when stream is capturing")

    capture.device_type = "cpu"
    model = Toy()
    graphed = GraphedForward(model, precision(), capture=capture)
    x = torch.randn(3, 6)
    assert torch.equal(graphed(x), model(x))
    assert graphed.failed and not graphed.graphs
    assert capsys.readouterr().out == ("Note: CUDA-graph capture of the training step failed (RuntimeError: operation "
                                       "not permitted when stream is capturing); training without CUDA graphs\n")
    for y in (torch.randn(2, 6), x):
        assert torch.equal(graphed(y), model(y))
    assert calls == [(3, 6)] and capsys.readouterr().out == ""  # never tried again, no second note


def test_the_real_capture_on_a_cpu_falls_back_with_a_note(capsys):
    """torch.cuda.make_graphed_callables itself, offered a CPU tensor, fails; the plan falls back."""
    capture = lambda module, sample: capture_cuda_graphs(module, sample)  # noqa: E731
    capture.device_type = "cpu"
    model = Toy()
    graphed = GraphedForward(model, precision(), capture=capture)
    x = torch.randn(3, 6)
    assert torch.equal(graphed(x), model(x)) and graphed.failed
    assert capsys.readouterr().out.startswith("Note: CUDA-graph capture of the training step failed (")


def test_capture_and_replay_run_under_autocast_with_its_cache_off(monkeypatch):
    monkeypatch.setenv(TEST_ONLY_CPU_HALF, "1")
    amp = precision("amp")
    seen = []

    class Probe(Toy):
        def forward(self, x):
            seen.append((torch.is_autocast_enabled("cpu"), torch.is_autocast_cache_enabled(),
                         self.frozen(x.flatten(1)).dtype))
            return super().forward(x)

    model = Probe()
    graphed = GraphedForward(model, amp, capture=replaying_capture)
    with amp.autocast():  # the training step's own autocast has the cache on, as PromptTrainer's
        graphed(torch.randn(3, 6))
    assert not graphed.failed and len(graphed.graphs) == 1
    # 3 warm-up forwards, the captured one, the replay: all under float16 autocast without its cache.
    assert seen == [(True, False, torch.float16)] * 5


# ----------------------------------------------------------------------------- every graphed trainer
METHODS = [  # the trainers whose training step is model(image) (PromptTrainer.train_forward)
    ("CoOp", "CoOp/vit_b16_ep50.yaml"),
    ("CoCoOp", "CoCoOp/vit_b16_c4_ep10_batch1_ctxv1.yaml"),
    ("MaPLe", "MaPLe/vit_b16_c2_ep5_batch4_2ctx.yaml"),
    ("IVLP", "IVLP/vit_b16_c2_ep5_batch4_2+2ctx.yaml"),
    ("VPT", "VPT/vit_b16_c2_ep5_batch4_4.yaml"),
    ("CoPL", "CoPL/vit_b16_c4_ep10_batch1_ctxv1.yaml"),
]


def build(name, config, prec, out, caltech_root, clip_path):
    argv = ["--root", caltech_root, "--seed", 1, "--trainer", name,
            "--dataset-config-file", os.path.join(REPO_ROOT, "configs/datasets/caltech101.yaml"),
            "--config-file", os.path.join(REPO_ROOT, "configs/trainers", config), "--output-dir", out, "--no-train",
            *fast_opts(clip_path, epochs=1), "DATASET.NUM_SHOTS", 2, "DATASET.SUBSAMPLE_CLASSES", "base",
            "OPTIM.WARMUP_EPOCH", 0, "OPTIM.LR", 0.05, f"TRAINER.{name.upper()}.PREC", prec]
    return run_train(argv)


def train_steps(trainer, batches):
    trainer.set_model_mode("train")
    trainer.epoch, trainer.num_batches = 0, 10 ** 6
    summaries = []
    for i, batch in enumerate(batches):
        trainer.batch_idx = i
        summaries.append(trainer.forward_backward(batch))
    return summaries, {k: v.detach().clone() for k, v in trainer.trainable_module().state_dict().items()}


@pytest.mark.parametrize("prec", ["fp32", "fp16", "amp"])
@pytest.mark.parametrize("name,config", METHODS, ids=[m[0] for m in METHODS])
def test_training_through_the_replaying_capture_equals_eager_training(name, config, prec, caltech_root, tiny_clip_path,
                                                                       tmp_path, monkeypatch):
    monkeypatch.setenv(TEST_ONLY_CPU_HALF, "1")
    g = torch.Generator().manual_seed(0)
    images = torch.rand(12, 3, 32, 32, generator=g)
    labels = torch.randint(0, 5, (12,), generator=g)
    sizes = [4, 4, 2, 4]  # a second shape (a short last batch) needs a capture of its own
    starts = [0, 4, 8, 10]
    batches = [{"img": images[s:s + n], "label": labels[s:s + n]} for s, n in zip(starts, sizes)]
    eager = build(name, config, prec, tmp_path / "eager", caltech_root, tiny_clip_path)
    graphed = build(name, config, prec, tmp_path / "graphed", caltech_root, tiny_clip_path)
    assert graphed.precision.name == ("fp32" if name == "VPT" and prec == "fp16" else prec)
    assert isinstance(graphed.graphed_forward, GraphedForward)
    graphed.graphed_forward = GraphedForward(graphed.model, graphed.precision, capture=replaying_capture)
    eager_summaries, eager_state = train_steps(eager, batches)
    graphed_summaries, graphed_state = train_steps(graphed, batches)
    assert replaying_capture.calls == [(4, 3, 32, 32), (2, 3, 32, 32)] and not graphed.graphed_forward.failed
    assert not eager.graphed_forward.graphs  # on the CPU, the trainer's own plan never captures
    assert graphed_summaries == eager_summaries
    for key in eager_state:
        assert torch.equal(eager_state[key], graphed_state[key]), key
    assert any(not torch.equal(v, graphed.trainable_module().state_dict()[k]) for k, v in
               build(name, config, prec, tmp_path / "init", caltech_root, tiny_clip_path)
               .trainable_module().state_dict().items())  # the steps did move the prompts

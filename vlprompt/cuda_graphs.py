"""Training steps replayed from CUDA graphs.

Small-batch prompt-learning steps (CoCoOp's 1 image, MaPLe's 4) are bound by kernel launches: on an
H100 a CoCoOp step took 40 ms of wall time for 3 ms of GPU work, launching ~900 kernels one by one
from Python. `GraphedForward` captures a model's forward and backward once per input shape and replays
them: the same kernels on the same data, so the same numbers, without the launch overhead. The optimizer
and the LR schedule stay eager.

Two parts, so that the CPU can test the first:
- the plan (`GraphedForward`): which calls replay a graph (CUDA_GRAPHS on, an input on the capture's
  device, gradients enabled, i.e. a training step, no failed capture), one capture per input shape
  and dtype, the capture and every replay under the precision's autocast with its weight cache off (graph
  capture requires it), and a capture that fails falls back to eager execution for good, with a note;
- the capture (`capture_cuda_graphs`): torch.cuda.make_graphed_callables, whose contract is that the
  sample becomes the static input buffer (each replay copies its input there), the outputs are static
  buffers overwritten by the next replay, and the backward replays into static gradient buffers.
  The tests run the plan on the CPU with a capture of the same contract that replays eagerly
  (tests/test_cuda_graphs_plan.py).
"""
import torch
import torch.nn as nn


class _Forward(nn.Module):
    """model(image) as a module of its own, so graphing it leaves model.forward (used to evaluate) as is.
    Built without .train()/.eval(): the frozen CLIP's modules keep their own mode."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, image):
        return self.model(image)


def capture_cuda_graphs(module, sample):
    """module(sample)'s forward and backward captured as CUDA graphs; returns the graphed callable."""
    return torch.cuda.make_graphed_callables(module, (sample,), allow_unused_input=True)


capture_cuda_graphs.device_type = "cuda"


class GraphedForward:
    """Call it like the model in a training step; where the plan allows it, it replays captured graphs,
    elsewhere it runs the model eagerly.

    capture: a function (module, sample) -> callable with make_graphed_callables' contract, and a
    `device_type` attribute (the device its graphs run on).
    """

    def __init__(self, model, precision, enabled=True, capture=capture_cuda_graphs):
        self.model = model
        self.precision = precision
        self.enabled = enabled
        self.capture = capture
        self.graphs = {}  # (shape, dtype) -> graphed callable
        self.failed = False

    @staticmethod
    def key(image):
        return tuple(image.shape), image.dtype

    def replays(self, image):
        """Whether this call replays a graph (capturing one first if its shape is new)."""
        # Without gradients (an evaluation) the capture's backward would fail and turn graphs off for good.
        return (self.enabled and not self.failed and image.device.type == self.capture.device_type
                and torch.is_grad_enabled())

    def __call__(self, image):
        if not self.replays(image):
            return self.model(image)
        key = self.key(image)
        graphed = self.graphs.get(key)
        if graphed is None:
            try:
                with self.precision.autocast(cache=False):  # graph capture needs autocast's cache off
                    # The sample becomes the graph's static input buffer: a copy, never the loader's tensor.
                    graphed = self.capture(_Forward(self.model), image.detach().clone())
            except Exception as e:
                print(f"Note: CUDA-graph capture of the training step failed ({type(e).__name__}: {e}); "
                      "training without CUDA graphs")
                self.failed = True
                return self.model(image)
            self.graphs[key] = graphed
        with self.precision.autocast(cache=False):
            return graphed(image)

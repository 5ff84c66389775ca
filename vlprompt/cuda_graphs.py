"""Training steps replayed from CUDA graphs.

Small-batch prompt-learning steps (CoCoOp's 1 image, MaPLe's 4) are bound by kernel launches: on an
H100 a CoCoOp step took 40 ms of wall time for 3 ms of GPU work, launching ~900 kernels one by one
from Python. `GraphedForward` captures a model's forward and backward once per input shape
(torch.cuda.make_graphed_callables) and replays them: the same kernels on the same data, so the same
numbers, without the launch overhead. The optimizer and the LR schedule stay eager.
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


class GraphedForward:
    """Call it like the model in a training step; on CUDA it replays graphs, elsewhere it runs eagerly.

    A capture that fails (an operation that cannot be captured, e.g. a host sync) prints a note and
    falls back to eager execution for good.
    """

    def __init__(self, model, precision, enabled=True):
        self.model = model
        self.precision = precision
        self.enabled = enabled
        self.graphs = {}  # (shape, dtype) -> graphed callable
        self.failed = False

    def __call__(self, image):
        if not self.enabled or self.failed or image.device.type != "cuda":
            return self.model(image)
        key = (tuple(image.shape), image.dtype)
        graphed = self.graphs.get(key)
        if graphed is None:
            try:
                with self.precision.autocast(cache=False):  # graph capture needs autocast's cache off
                    graphed = torch.cuda.make_graphed_callables(_Forward(self.model), (image.detach().clone(),),
                                                                allow_unused_input=True)
            except Exception as e:
                print(f"Note: CUDA-graph capture of the training step failed ({type(e).__name__}: {e}); "
                      "training without CUDA graphs")
                self.failed = True
                return self.model(image)
            self.graphs[key] = graphed
        with self.precision.autocast(cache=False):
            return graphed(image)

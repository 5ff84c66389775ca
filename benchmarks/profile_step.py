"""Where a small-batch training step spends its time: wall time, GPU-busy time, kernel launches and
the top CPU-side operators, for one method on a random-weight ViT-B/16.

    python benchmarks/profile_step.py --method cocoop --classes 50
"""
import argparse
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_methods import TRAIN_BATCH, build_clip, classnames, method_model, quiet, sync  # noqa: E402
from vlprompt.precision import resolve_precision  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--method", default="cocoop")
    parser.add_argument("--classes", type=int, default=50)
    parser.add_argument("--prec", default="fp16")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--tiny", action="store_true")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    precision = quiet(resolve_precision, args.prec, device)
    clip_model = build_clip(args.tiny, precision, device)
    model = quiet(method_model, args.method, clip_model, classnames(args.classes)).to(device)
    params = list(model.prompt_learner.parameters())
    for p in params:
        p.requires_grad_(True)
    optim = torch.optim.SGD(params, lr=1e-4, momentum=0.9)
    res = clip_model.visual.input_resolution
    batch = TRAIN_BATCH[args.method]
    images = torch.randn(batch, 3, res, res, device=device)
    labels = torch.randint(0, args.classes, (batch,), device=device)

    def step():
        with precision.autocast():
            loss = F.cross_entropy(model(images), labels)
        optim.zero_grad()
        loss.backward()
        optim.step()

    for _ in range(5):
        step()
    sync(device)
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    sync(device)
    wall = (time.perf_counter() - start) / args.steps

    activities = [torch.profiler.ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.profiler.profile(activities=activities) as prof:
        for _ in range(args.steps):
            step()
        sync(device)
    events = prof.key_averages()
    gpu_us = sum(e.self_device_time_total for e in events if e.device_type == torch.autograd.DeviceType.CUDA) \
        if device.type == "cuda" else 0
    kernels = sum(e.count for e in events if e.device_type == torch.autograd.DeviceType.CUDA) \
        if device.type == "cuda" else 0
    print(f"{args.method}, {args.classes} classes, batch {batch}, {args.prec}: wall {wall * 1e3:.1f} ms/step, "
          f"GPU busy {gpu_us / args.steps / 1e3:.1f} ms/step, {kernels / args.steps:.0f} kernels/step")
    print(events.table(sort_by="self_cpu_time_total", row_limit=18))


if __name__ == "__main__":
    main()

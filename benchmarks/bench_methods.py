"""Throughput and peak memory of training steps and evaluation, on a full-size random-weight ViT-B/16.

Random weights time the same as trained ones. Everything is measured in one run, next to the floors
(the image encoder alone at batch 100, the text encoder alone on 1000 prompts), so the figures are
comparable with each other:

  train   forward + backward + SGD step at the protocol's batch size (CoOp 32, CoCoOp 1, MaPLe 4),
          on GPU-resident images
  eval    batch 100 of GPU-resident images, image-independent inputs computed once per evaluation
          (the cost of that one computation is included, spread over --eval-images images)
  loader  decoding + resizing synthetic 400x300 JPEGs with the test transform (8 workers), and the
          full evaluation loop of CoOp reading them

    python benchmarks/bench_methods.py                       # CUDA, fp16, all methods
    python benchmarks/bench_methods.py --methods maple --classes 100 1000
    python benchmarks/bench_methods.py --tiny --device cpu   # smoke test with the tiny CLIP

Prints a table and writes it as JSON (--json).
"""
import argparse
import contextlib
import json
import os
import sys
import tempfile
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from common import VIT_B16, method_model, quiet, random_clip, sync  # noqa: E402
from names import classnames  # noqa: E402
from vlprompt.clip_loader import clip  # noqa: E402
from vlprompt.cuda_graphs import GraphedForward  # noqa: E402
from vlprompt.precision import apply_to_clip, resolve_precision  # noqa: E402
from vlprompt.prompted_clip import PromptedTextEncoder, PromptedVisionEncoder  # noqa: E402


def build_clip(tiny, precision, device):
    if not tiny:
        return random_clip(VIT_B16, precision, device)
    from vlprompt.testing.tiny_clip import build_tiny_clip

    model = build_tiny_clip()
    clip.model.convert_weights(model)
    apply_to_clip(model, precision)
    for p in model.parameters():
        p.requires_grad_(False)
    return model.eval().to(device)


TRAIN_BATCH = {"coop": 32, "cocoop": 1, "maple": 4}


@contextlib.contextmanager
def peak_memory(device, out):
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    yield
    out["peak_mem_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 2) if device.type == "cuda" else None


def timed(fn, device, iters, warmup):
    for _ in range(warmup):
        fn()
    sync(device)
    start = time.perf_counter()
    for _ in range(iters):
        fn()
    sync(device)
    return (time.perf_counter() - start) / iters


def bench_train(method, clip_model, n_cls, precision, device, res, steps, warmup, graphs):
    model = quiet(method_model, method, clip_model, classnames(n_cls)).to(device)
    forward = GraphedForward(model, precision, enabled=graphs)  # what PromptTrainer.train_forward does
    params = [p for p in model.prompt_learner.parameters()]
    for p in params:
        p.requires_grad_(True)
    optim = torch.optim.SGD(params, lr=1e-4, momentum=0.9, weight_decay=5e-4)
    scaler = precision.grad_scaler()
    batch = TRAIN_BATCH[method]
    images = torch.randn(batch, 3, res, res, device=device)
    labels = torch.randint(0, n_cls, (batch,), device=device)

    def step():
        with precision.autocast():
            loss = F.cross_entropy(forward(images), labels)
        optim.zero_grad()
        if scaler is None:
            loss.backward()
            optim.step()
        else:
            scaler.scale(loss).backward()
            scaler.step(optim)
            scaler.update()

    row = {"what": f"{method} train{' (CUDA graphs)' if graphs and device.type == 'cuda' else ''}",
           "classes": n_cls, "batch": batch}
    with peak_memory(device, row):
        seconds = timed(step, device, steps, warmup)
    row["images_per_s"] = round(batch / seconds, 1)
    return row


@torch.no_grad()
def bench_eval(method, clip_model, n_cls, precision, device, res, eval_images, batch=100):
    model = quiet(method_model, method, clip_model, classnames(n_cls)).to(device).eval()
    images = torch.randn(batch, 3, res, res, device=device)
    n_batches = max(1, eval_images // batch)

    def evaluation():  # what trainer.test() does: static inputs once, then every batch
        with precision.autocast(), model.cached_static_inputs():
            for _ in range(n_batches):
                model(images).argmax(dim=1)

    row = {"what": f"{method} eval", "classes": n_cls, "batch": batch}
    with peak_memory(device, row):
        seconds = timed(evaluation, device, 1, 1)
    row["images_per_s"] = round(n_batches * batch / seconds, 1)
    return row


@torch.no_grad()
def bench_floors(clip_model, precision, device, res, iters):
    rows = []
    vision = PromptedVisionEncoder(clip_model)
    images = torch.randn(100, 3, res, res, device=device)
    row = {"what": "floor: image encoder", "classes": None, "batch": 100}
    with peak_memory(device, row), precision.autocast():
        seconds = timed(lambda: vision(images), device, iters, 2)
    row["images_per_s"] = round(100 / seconds, 1)
    rows.append(row)

    text = PromptedTextEncoder(clip_model)
    tokens = clip.tokenize([f"a photo of a {n.replace('_', ' ')}." for n in classnames(1000)]).to(device)
    for label, fn in (("floor: text encoder, 1000 prompts (cut at EOT)", lambda: text.encode_token_ids(tokens)),
                      ("floor: text encoder, 1000 prompts (77 tokens, clip)", lambda: clip_model.encode_text(tokens))):
        row = {"what": label, "classes": 1000, "batch": 1000}
        with peak_memory(device, row), precision.autocast():
            seconds = timed(fn, device, iters, 2)
        row["prompts_per_s"] = round(1000 / seconds, 1)
        rows.append(row)
    return rows


def write_jpegs(folder, n, size=(400, 300)):
    from vlprompt.testing.fake_data import write_jpeg

    paths = []
    for i in range(n):
        paths.append(write_jpeg(os.path.join(folder, f"{i:05d}.jpg"), (i * 37 % 256, i * 91 % 256, i * 53 % 256),
                                size=size, noise=40, seed=i))
    return paths


def bench_loader(clip_model, precision, device, res, n_images, workers):
    """The test-time input pipeline alone, and CoOp's whole evaluation loop reading JPEGs (50 classes)."""
    from vlprompt.config import build_config
    from vlprompt.engine import Datum, build_data_loader, build_transform

    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    cfg = build_config(config_file=os.path.join(repo, "configs/trainers/CoOp/vit_b16_ep50.yaml"),
                       opts=["INPUT.SIZE", f"({res}, {res})", "DATALOADER.NUM_WORKERS", str(workers)])
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        data = [Datum(p, label=i % 50, classname=f"c{i % 50}") for i, p in enumerate(write_jpegs(tmp, n_images))]
        tfm = quiet(build_transform, cfg, is_train=False)
        loader = build_data_loader(cfg, "SequentialSampler", data, batch_size=100, tfm=tfm, is_train=False)
        next(iter(loader))  # start the workers once
        start = time.perf_counter()
        for batch in loader:
            batch["img"].to(device, non_blocking=True)
        sync(device)
        rows.append({"what": f"loader: decode+resize 400x300 JPEGs ({workers} workers)", "classes": None, "batch": 100,
                     "images_per_s": round(n_images / (time.perf_counter() - start), 1)})
        model = quiet(method_model, "coop", clip_model, classnames(50)).to(device).eval()
        start = time.perf_counter()
        with torch.no_grad(), precision.autocast(), model.cached_static_inputs():
            for batch in loader:
                model(batch["img"].to(device, non_blocking=True)).argmax(1).cpu()
        sync(device)
        rows.append({"what": "coop eval from JPEGs (loader + model)", "classes": 50, "batch": 100,
                     "images_per_s": round(n_images / (time.perf_counter() - start), 1)})
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--methods", nargs="+", default=["coop", "cocoop", "maple"])
    parser.add_argument("--train-classes", nargs="*", type=int, default=[50, 1000])
    parser.add_argument("--eval-classes", nargs="*", type=int, default=[50, 100, 1000])
    parser.add_argument("--prec", default="fp16", choices=["fp16", "fp32", "amp", "bf16"])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=30, help="timed training steps")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--eval-images", type=int, default=2000, help="images per timed evaluation")
    parser.add_argument("--jpegs", type=int, default=2000, help="synthetic JPEGs for the loader benchmark (0: skip)")
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--graphs", default="both", choices=["on", "off", "both"],
                        help="training steps with CUDA graphs (as the trainers run them), without, or both")
    parser.add_argument("--tiny", action="store_true", help="tiny CLIP (a smoke test, not a measurement)")
    parser.add_argument("--json", default="", help="write the rows here")
    args = parser.parse_args(argv)

    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    precision = quiet(resolve_precision, args.prec, device)
    clip_model = build_clip(args.tiny, precision, device)
    res = clip_model.visual.input_resolution
    rows = bench_floors(clip_model, precision, device, res, iters=max(3, args.steps // 3))
    for method in args.methods:
        try:
            for n_cls in args.train_classes:
                for graphs in {"on": [True], "off": [False], "both": [False, True]}[args.graphs]:
                    rows.append(bench_train(method, clip_model, n_cls, precision, device, res, args.steps,
                                            args.warmup, graphs))
            for n_cls in args.eval_classes:
                rows.append(bench_eval(method, clip_model, n_cls, precision, device, res, args.eval_images))
        except Exception as e:  # report and go on with the other methods
            rows.append({"what": f"{method}: FAILED ({type(e).__name__}: {e})"[:52], "classes": None, "batch": ""})
    if args.jpegs:
        rows += bench_loader(clip_model, precision, device, res, args.jpegs, args.workers)

    gpu = torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu"
    print(f"\n{gpu}, PREC {args.prec} (running as {precision.name}), torch {torch.__version__}"
          f"{' [tiny CLIP: smoke test only]' if args.tiny else ', random-weight ViT-B/16'}")
    print(f"{'what':<52} {'classes':>7} {'batch':>5} {'images/s':>10} {'prompts/s':>10} {'peak GB':>8}")
    for r in rows:
        print(f"{r['what']:<52} {str(r['classes'] or ''):>7} {r['batch']:>5} {str(r.get('images_per_s', '')):>10} "
              f"{str(r.get('prompts_per_s', '')):>10} {str(r.get('peak_mem_gb') or ''):>8}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": gpu, "prec": args.prec, "torch": torch.__version__, "rows": rows}, f, indent=2)
    return rows


if __name__ == "__main__":
    main()

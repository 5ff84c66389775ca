"""Evaluation end to end from JPEG files: reading the files, a cold test-image cache, a warm one, and the
image-encoder floor, all in one run (vlprompt.data.image_cache).

For CoOp and MaPLe at 100 and 1000 classes, on synthetic 400x300 JPEGs:

  jpeg   the loader decodes and resizes every file (DataLoader, min(--workers, CPUs) workers)
  cold   the cache is built from the files (same PIL path, same workers), then read
  warm   the cache exists: validated, then read (no decoding); what every later evaluation pays
  model  the method's evaluation on device-resident images (no files at all)
  floor  CLIP's image encoder alone on device-resident images at the same batch size

Each row is one whole evaluation (class-prompt encoding once, every batch, argmax on the host), as
PromptTrainer.test runs it. Also printed: the cache build rate, and for the opt-in torchvision decoder
its build rate and how far its logits are from the PIL path's (largest difference, changed predictions).

    python benchmarks/bench_eval.py                              # small ViT on the CPU (a few minutes)
    python benchmarks/bench_eval.py --full --device cuda         # random-weight ViT-B/16, fp16, 5000 JPEGs
    python benchmarks/bench_eval.py --full --device cuda --decoder torchvision   # GPU-decoding figures too
"""
import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from common import VIT_B16, method_model, quiet, random_clip, sync  # noqa: E402
from vlprompt.precision import resolve_precision  # noqa: E402

SMALL_VIT = dict(embed_dim=128, image_resolution=224, vision_layers=9, vision_width=128, vision_patch_size=32,
                 context_length=77, vocab_size=49408, transformer_width=64, transformer_heads=2, transformer_layers=9)
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def write_jpegs(folder, n, size=(400, 300)):
    from vlprompt.testing.fake_data import write_jpeg

    return [write_jpeg(os.path.join(folder, f"{i:05d}.jpg"), (i * 37 % 256, i * 91 % 256, i * 53 % 256), size=size,
                       noise=40, seed=i) for i in range(n)]


def make_loader(paths, res, workers, batch):
    from vlprompt.config import build_config
    from vlprompt.engine import Datum, build_data_loader, build_transform

    cfg = build_config(config_file=os.path.join(REPO, "configs/trainers/CoOp/vit_b16_ep50.yaml"),
                       opts=["INPUT.SIZE", f"({res}, {res})", "DATALOADER.NUM_WORKERS", str(workers)])
    data = [Datum(p, label=i % 100, classname=f"c{i % 100}") for i, p in enumerate(paths)]
    tfm = quiet(build_transform, cfg, is_train=False)
    return quiet(build_data_loader, cfg, "SequentialSampler", data, batch_size=batch, tfm=tfm, is_train=False)


@torch.no_grad()
def evaluate(model, batches, precision, device):
    """PromptTrainer.test's work: static inputs once, then every batch; logits kept on the host."""
    out = []
    with precision.autocast(), model.cached_static_inputs():
        for batch in batches:
            out.append(model(batch["img"].to(device, non_blocking=True)).float().cpu())
    return torch.cat(out)


def timed(fn, device, repeats=1, before=None):
    """The best of `repeats` timings of fn() (a shared machine adds noise, never speed); `before` runs
    untimed before each, e.g. to remove a cache for a cold run."""
    best = float("inf")
    for _ in range(repeats):
        if before is not None:
            before()
        sync(device)
        start = time.perf_counter()
        result = fn()
        sync(device)
        best = min(best, time.perf_counter() - start)
    return best, result


def remover(path):
    return lambda: os.path.exists(path) and os.remove(path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--full", action="store_true", help="random-weight ViT-B/16 (else a small 224 px ViT)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--prec", default=None, help="default fp16 on a GPU, fp32 on the CPU")
    parser.add_argument("--methods", nargs="+", default=["coop", "maple"], choices=["coop", "maple"])
    parser.add_argument("--classes", nargs="+", type=int, default=[100, 1000])
    parser.add_argument("--jpegs", type=int, default=None, help="synthetic 400x300 JPEGs (default 5000 GPU / 500 CPU)")
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--workers", type=int, default=8, help="loader / cache-build workers (capped at the CPUs)")
    parser.add_argument("--decoder", default="pil", choices=["pil", "torchvision"],
                        help="torchvision: also build a cache with the opt-in torchvision decoder and compare")
    parser.add_argument("--repeats", type=int, default=2, help="best of this many timings per row")
    parser.add_argument("--json", default="", help="write the rows here")
    args = parser.parse_args(argv)

    from vlprompt.data import image_cache
    from vlprompt.engine.loaders import available_cpus

    device = torch.device(args.device)
    precision = quiet(resolve_precision, args.prec or ("fp16" if device.type == "cuda" else "fp32"), device)
    n_images = args.jpegs or (5000 if device.type == "cuda" else 500)
    clip_model = random_clip(VIT_B16 if args.full else SMALL_VIT, precision, device)
    res = clip_model.visual.input_resolution
    workers = min(args.workers, available_cpus())
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_jpegs(os.path.join(tmp, "jpegs"), n_images)
        loader = make_loader(paths, res, workers, args.batch)
        next(iter(loader))  # page the files in once, as a dataset read before would be

        images = torch.randn(args.batch, 3, res, res, device=device)
        n_batches = -(-n_images // args.batch)

        def floor():
            with torch.no_grad(), precision.autocast():
                for _ in range(n_batches):
                    clip_model.encode_image(images)

        floor()  # warm-up
        seconds, _ = timed(floor, device, args.repeats)
        rows.append({"what": "floor: CLIP image encoder", "classes": None, "images_per_s": round(n_images / seconds, 1)})

        for method in args.methods:
            for n_cls in args.classes:
                model = quiet(method_model, method, clip_model, [f"class_{i}" for i in range(n_cls)]).to(device).eval()
                evaluate(model, [{"img": images}], precision, device)  # warm-up
                seconds, _ = timed(lambda: evaluate(model, [{"img": images}] * n_batches, precision, device), device,
                                   args.repeats)
                rows.append({"what": f"{method} eval: model only (tensors)", "classes": n_cls,
                             "images_per_s": round(n_batches * args.batch / seconds, 1)})
                seconds, jpeg_logits = timed(lambda: evaluate(model, loader, precision, device), device, args.repeats)
                rows.append({"what": f"{method} eval: jpeg", "classes": n_cls, "images_per_s": round(n_images / seconds, 1)})

                cache_dir = tempfile.mkdtemp(dir=tmp)

                def from_cache():
                    cache, reason = quiet(image_cache.prepare_cache, loader, cache_dir, "bench_test", device=device,
                                          num_workers=workers)
                    assert cache is not None, reason
                    return cache, evaluate(model, cache.batches(args.batch, device), precision, device)

                for label, before in (("cold", remover(os.path.join(cache_dir, "bench_test.images"))), ("warm", None)):
                    seconds, (cache, logits) = timed(from_cache, device, args.repeats, before)
                    assert cache.status == ("built" if label == "cold" else "reused")
                    same = torch.equal(logits, jpeg_logits)
                    rows.append({"what": f"{method} eval: {label} cache", "classes": n_cls,
                                 "images_per_s": round(n_images / seconds, 1), "logits_equal_jpeg": same})
                os.remove(cache.path)

        cache_dir = tempfile.mkdtemp(dir=tmp)  # the build alone, from the files
        seconds, _ = timed(lambda: quiet(image_cache.prepare_cache, loader, cache_dir, "bench_test",
                                         num_workers=workers), device, args.repeats,
                           remover(os.path.join(cache_dir, "bench_test.images")))
        rows.append({"what": "cache build (PIL)", "classes": None, "images_per_s": round(n_images / seconds, 1)})

        if args.decoder == "torchvision":
            cache_dir = tempfile.mkdtemp(dir=tmp)
            seconds, (pil, _) = timed(lambda: quiet(image_cache.prepare_cache, loader, cache_dir, "pil",
                                                    num_workers=workers), device)
            seconds, (tv, _) = timed(lambda: quiet(image_cache.prepare_cache, loader, cache_dir, "tv", device=device,
                                                   decoder="torchvision", num_workers=workers), device, args.repeats,
                                     remover(os.path.join(cache_dir, "tv.images")))
            rows.append({"what": f"cache build (torchvision, {device.type})", "classes": None,
                         "images_per_s": round(n_images / seconds, 1)})
            pixels = np.abs(np.asarray(tv.images, dtype=np.int16) - np.asarray(pil.images, dtype=np.int16))
            for method in args.methods:
                n_cls = max(args.classes)
                model = quiet(method_model, method, clip_model, [f"class_{i}" for i in range(n_cls)]).to(device).eval()
                a = evaluate(model, pil.batches(args.batch, device), precision, device)
                b = evaluate(model, tv.batches(args.batch, device), precision, device)
                rows.append({"what": f"{method}: torchvision vs PIL decoder", "classes": n_cls,
                             "max_logit_diff": float((a - b).abs().max()), "max_logit": float(a.abs().max()),
                             "changed_predictions": int((a.argmax(1) != b.argmax(1)).sum()), "images": n_images,
                             "max_pixel_diff": int(pixels.max()), "mean_pixel_diff": round(float(pixels.mean()), 3)})

    where = torch.cuda.get_device_name(0) if device.type == "cuda" else f"cpu ({available_cpus()} cores)"
    print(f"\n{where}, {precision.name}, torch {torch.__version__}, "
          f"{'random-weight ViT-B/16' if args.full else 'small random ViT (224 px, patch 32, width 128, 9 layers)'}, "
          f"{n_images} synthetic 400x300 JPEGs, batch {args.batch}, {workers} loader workers")
    print(f"{'what':<40} {'classes':>7} {'images/s':>10}  notes")
    for r in rows:
        notes = {k: v for k, v in r.items() if k not in ("what", "classes", "images_per_s")}
        print(f"{r['what']:<40} {str(r['classes'] or ''):>7} {str(r.get('images_per_s', '')):>10}  "
              f"{json.dumps(notes) if notes else ''}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": where, "prec": precision.name, "torch": torch.__version__, "full": args.full,
                       "jpegs": n_images, "workers": workers, "rows": rows}, f, indent=2)
    return rows


if __name__ == "__main__":
    main()

"""The original code's training steps and evaluation, timed on bench_methods.py's model-only settings, so that
`python -m vlprompt.gpu_check --original CHECKOUT` puts both side by side from one run.

    python benchmarks/bench_original.py --original CHECKOUT [--dassl DASSL_CHECKOUT] [--json out.json]

CHECKOUT is a checkout of multimodal-prompt-learning (the MaPLe repository: its trainers/coop.py, cocoop.py
and maple.py, and its own `clip` package). Dassl must be importable: installed, or --dassl pointing at a
Dassl.pytorch checkout. This script imports nothing from vlprompt and runs the original code as it is:
the trainers are the original classes with their own build_model and forward_backward (Dassl's
model_backward_and_update included) and their own model_inference. What it changes at run time, without
touching either checkout:
- Dassl's data loading is skipped: the trainer gets the class names only, and the images are random tensors
  already on the device (as bench_methods' model-only rows);
- clip._download returns a random-weight ViT-B/16 (seed 0) saved by this script, built by the original's
  own clip.model.CLIP;
- OPTIM.WARMUP_EPOCH 0: Dassl's warmup scheduler no longer constructs on torch 2.x, and the timed steps
  never reach the end of an epoch where it would act;
- stand-ins for modules Dassl imports but the timed code never uses (tensorboard's SummaryWriter, wilds,
  ...) when they are not installed.

Rows: "<method> train" (steps of forward_backward at the configs' batch sizes: CoOp 32, CoCoOp 1, MaPLe 4)
and "<method> eval" (model_inference on batches of 100 in eval mode, argmax per batch, as Dassl's test loop).
"""
import argparse
import importlib
import importlib.machinery
import json
import os
import sys
import tempfile
import time
import types

HERE = os.path.dirname(os.path.abspath(__file__))
METHODS = {  # trainer module, class, config file (relative to the checkout), config node, train batch
    "coop": ("trainers.coop", "CoOp", "configs/trainers/CoOp/vit_b16_ep50.yaml", "COOP", 32),
    "cocoop": ("trainers.cocoop", "CoCoOp", "configs/trainers/CoCoOp/vit_b16_c4_ep10_batch1_ctxv1.yaml", "COCOOP", 1),
    "maple": ("trainers.maple", "MaPLe", "configs/trainers/MaPLe/vit_b16_c2_ep5_batch4_2ctx.yaml", "MAPLE", 4),
}
VIT_B16 = dict(embed_dim=512, image_resolution=224, vision_layers=12, vision_width=768, vision_patch_size=16,
               context_length=77, vocab_size=49408, transformer_width=512, transformer_heads=8, transformer_layers=12)
# The tiny CLIP of vlprompt's tests (vlprompt/testing/tiny_clip.py), for a smoke test on the CPU.
TINY_VIT = dict(embed_dim=48, image_resolution=32, vision_layers=12, vision_width=128, vision_patch_size=8,
                context_length=77, vocab_size=49408, transformer_width=64, transformer_heads=1, transformer_layers=12)


def _stub(name, **attributes):
    """A module whose every public attribute is a placeholder class (a package, so submodules import)."""
    module = types.ModuleType(name)
    module.__spec__ = importlib.machinery.ModuleSpec(name, None, is_package=True)
    module.__path__ = []
    module.__dict__.update(attributes)
    module.__getattr__ = lambda attr: type(attr, (), {"__init__": lambda self, *a, **k: None}) \
        if not attr.startswith("__") else (_ for _ in ()).throw(AttributeError(attr))
    return module


# Modules Dassl imports at module level that the timed code never calls: (import tried, stand-ins to install).
OPTIONAL = [("torch.utils.tensorboard", ["torch.utils.tensorboard"]), ("wilds", ["wilds"]),
            ("pandas", ["pandas"]), ("sklearn.metrics", ["sklearn", "sklearn.metrics"])]


def stand_in_missing_modules():
    """Stand-ins for OPTIONAL modules that are not installed."""
    for probe, names in OPTIONAL:
        try:
            importlib.import_module(probe)
        except ImportError:
            for name in names:
                sys.modules[name] = _stub(name)


def setup_imports(original, dassl):
    """The checkout first on sys.path (its `clip` and `trainers`), then Dassl's checkout if given."""
    for path in filter(None, (dassl, original)):
        sys.path.insert(0, os.path.abspath(path))
    stand_in_missing_modules()
    import dassl  # noqa: F401  (fails here, clearly, when Dassl is not importable)


def random_clip_file(folder, architecture):
    import torch
    from clip import model as clip_model

    torch.manual_seed(0)
    model = clip_model.CLIP(**architecture, design_details={"trainer": "CoOp", "vision_depth": 0,
                                                            "language_depth": 0, "vision_ctx": 0, "language_ctx": 0})
    path = os.path.join(folder, "random-vit.pt")
    torch.save(model.state_dict(), path)
    return path


def build_trainer(method, original, names, device, prec, weights, res):
    """The original trainer class, built by its own build_model on `names` (no data loading)."""
    import torch
    from clip import clip
    from dassl.config import get_cfg_default
    from dassl.engine.trainer import TrainerBase

    train = importlib.import_module("train")  # the checkout's train.py: its extend_cfg adds the trainers' keys
    module_name, class_name, config, node, _ = METHODS[method]
    module = importlib.import_module(module_name)
    cfg = get_cfg_default()
    train.extend_cfg(cfg)
    cfg.merge_from_file(os.path.join(original, config))
    cfg.TRAINER[node].PREC = prec
    cfg.OPTIM.WARMUP_EPOCH = 0
    cfg.INPUT.SIZE = (res, res)
    cfg.MODEL.BACKBONE.NAME = "random"
    clip._MODELS["random"] = weights
    clip._download = lambda url, root=None: url
    trainer = getattr(module, class_name).__new__(getattr(module, class_name))
    TrainerBase.__init__(trainer)
    trainer.cfg, trainer.device = cfg, torch.device(device)
    trainer.dm = types.SimpleNamespace(dataset=types.SimpleNamespace(classnames=names))
    trainer.epoch, trainer.batch_idx, trainer.num_batches, trainer.max_epoch = 0, 0, 10 ** 6, cfg.OPTIM.MAX_EPOCH
    trainer.check_cfg(cfg)
    trainer.build_model()
    return trainer


def sync(device):
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def peak_gb(device):
    import torch

    return round(torch.cuda.max_memory_allocated() / 2 ** 30, 2) if device == "cuda" else None


def reset_peak(device):
    import torch

    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def bench(method, original, names, device, prec, weights, res, steps, warmup, eval_images, train):
    import torch

    trainer = build_trainer(method, original, names, device, prec, weights, res)
    batch = METHODS[method][4] if train else 100
    images = torch.randn(batch, 3, res, res, device=device)
    labels = torch.randint(0, len(names), (batch,), device=device)
    row = {"what": f"{method} {'train' if train else 'eval'} (original)", "classes": len(names), "batch": batch}
    reset_peak(device)
    if train:
        trainer.set_model_mode("train")
        step = lambda: trainer.forward_backward({"img": images, "label": labels})  # noqa: E731
        n = steps
    else:
        trainer.set_model_mode("eval")
        n = max(1, eval_images // batch)

        def step():
            with torch.no_grad():
                trainer.model_inference(images).argmax(dim=1).cpu()

    for _ in range(warmup if train else 1):
        step()
    sync(device)
    start = time.perf_counter()
    for _ in range(n):
        step()
    sync(device)
    row["images_per_s"] = round(n * batch / (time.perf_counter() - start), 1)
    row["peak_mem_gb"] = peak_gb(device)
    return row


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--original", required=True, help="a checkout of multimodal-prompt-learning")
    parser.add_argument("--dassl", default=None, help="a Dassl.pytorch checkout (if Dassl is not installed)")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--train-classes", nargs="*", type=int, default=[50, 1000])
    parser.add_argument("--eval-classes", nargs="*", type=int, default=[50, 1000])
    parser.add_argument("--prec", default="fp16", choices=["fp16", "fp32", "amp"])
    parser.add_argument("--device", default=None, help="default: cuda if available")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--eval-images", type=int, default=1000)
    parser.add_argument("--tiny", action="store_true", help="the tests' tiny CLIP (a smoke test, not a measurement)")
    parser.add_argument("--json", default="")
    args = parser.parse_args(argv)
    original = os.path.abspath(args.original)
    json_path = os.path.abspath(args.json) if args.json else ""
    sys.path.insert(0, HERE)
    from names import classnames

    setup_imports(original, args.dassl)
    os.chdir(original)  # the original code reads paths relative to its root
    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    architecture = TINY_VIT if args.tiny else VIT_B16
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        weights = random_clip_file(tmp, architecture)
        for method in args.methods:
            for train, counts in ((True, args.train_classes), (False, args.eval_classes)):
                for n_cls in counts:
                    try:
                        rows.append(bench(method, original, classnames(n_cls), device, args.prec, weights,
                                          architecture["image_resolution"], args.steps, args.warmup,
                                          args.eval_images, train))
                    except Exception as e:  # report and go on
                        rows.append({"what": f"{method} {'train' if train else 'eval'} (original): FAILED "
                                             f"({type(e).__name__}: {e})"[:200], "classes": n_cls})
                    print(json.dumps(rows[-1]), flush=True)
    gpu = torch.cuda.get_device_name(0) if device == "cuda" else "cpu"
    if json_path:
        with open(json_path, "w") as f:
            json.dump({"device": gpu, "prec": args.prec, "torch": torch.__version__, "original": original,
                       "tiny": args.tiny, "rows": rows}, f, indent=2)
    return rows


if __name__ == "__main__":
    main()

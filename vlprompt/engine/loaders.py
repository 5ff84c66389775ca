"""Loader facts that hold whichever engine built the loaders: the CPUs a process may use, how many loader
workers fit them, and whether a test transform is the deterministic resize + crop that the test-image cache
(vlprompt.data.image_cache) may store the output of."""
import os


def available_cpus():
    """CPUs this process may run on (its affinity mask, e.g. a Slurm allocation), not the machine's count."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


_NOTED_WORKERS = set()


def fit_num_workers(requested):
    """min(requested, available CPUs), with a one-line note (once per value) instead of torch's warning."""
    requested = int(requested)
    cpus = available_cpus()
    if requested <= cpus:
        return requested
    if (requested, cpus) not in _NOTED_WORKERS:
        _NOTED_WORKERS.add((requested, cpus))
        print(f"Note: DATALOADER.NUM_WORKERS {requested} > the {cpus} CPUs available; using {cpus} loader workers")
    return cpus


def fit_evaluation_workers(trainer):
    """Fit the workers of a trainer's evaluation loaders to the CPUs (Dassl's loaders keep the configured 8).
    Evaluation loaders only: how many workers a training loader has decides which random augmentation each
    image gets (each worker has its own random stream), so changing it would change the trained model."""
    from torch.utils.data import DataLoader

    for name in ("val_loader", "test_loader"):
        loader = getattr(trainer, name, None)
        if isinstance(loader, DataLoader) and loader.num_workers > 0:
            loader.num_workers = fit_num_workers(loader.num_workers)


def describe_deterministic_test_transform(tfm):
    """Split a deterministic test transform into its PIL part and its tensor part, or say why not.

    Returns (geometry, to_tensor, settings, None) when `tfm` is exactly Dassl's test pipeline,
    Compose([Resize(int), CenterCrop, ToTensor, Normalize?]) built from torchvision's own classes:
    `geometry` (resize + crop) maps a PIL image to a PIL image, `to_tensor` (ToTensor [+ Normalize])
    maps that to the float tensor the model receives, and `settings` is a JSON-able description of
    everything that decides the pixels. Otherwise (None, None, None, reason).
    The test-image cache (vlprompt.data.image_cache) stores what `geometry` produces.
    """
    from torchvision.transforms import CenterCrop, Compose, InterpolationMode, Normalize, Resize, ToTensor

    steps = getattr(tfm, "transforms", None)
    if type(tfm) is not Compose or not steps:
        return None, None, None, f"the test transform is {type(tfm).__name__}, not a torchvision Compose"
    kinds = [type(t) for t in steps]
    if kinds not in ([Resize, CenterCrop, ToTensor], [Resize, CenterCrop, ToTensor, Normalize]):
        names = ", ".join(k.__name__ for k in kinds)
        return None, None, None, f"the test transform is [{names}], not resize + center crop + to-tensor (+ normalize)"
    resize, crop = steps[0], steps[1]
    size = resize.size
    if not isinstance(size, int) and len(size) != 1:
        return None, None, None, f"the test transform resizes to {tuple(size)}, not the shorter edge to one size"
    settings = {
        "resize": {"size": int(size if isinstance(size, int) else size[0]),
                   "interpolation": InterpolationMode(resize.interpolation).value,
                   "max_size": resize.max_size, "antialias": resize.antialias},
        "center_crop": [int(s) for s in crop.size],
    }
    return Compose(steps[:2]), Compose(steps[2:]), settings, None

"""ImageNet and its test-only variants (V2, Sketch, A, R)."""
import os

from .common import _Painter, _spec, register_generator


# classnames.txt (wnid, name): written in this (unsorted) order; labels follow the sorted wnid folders.
IMAGENET_CLASSES = [("n02085620", "Chihuahua"), ("n01440764", "tench"), ("n04376876", "syringe"),
                    ("n01484850", "great white shark"), ("n01443537", "goldfish"), ("n02086240", "Shih-Tzu"),
                    ("n03000134", "chain-link fence"), ("n02988304", "CD player")]


def _write_classnames(dataset_dir, classes=IMAGENET_CLASSES):
    os.makedirs(dataset_dir, exist_ok=True)
    with open(os.path.join(dataset_dir, "classnames.txt"), "w") as f:
        f.write("".join(f"{wnid} {name}\n" for wnid, name in classes))


def _wnid_tree(image_dir, wnids, per_class, paint, pattern):
    """image_dir/<wnid>/<files>; returns the expected (path, label, name) list (sorted wnids and files)."""
    names = dict(IMAGENET_CLASSES)
    items = []
    for label, wnid in enumerate(sorted(wnids)):
        files = sorted(pattern.format(wnid=wnid, j=j) for j in range(per_class))
        for f in files:
            paint(os.path.join(image_dir, wnid, f), label)
            items.append((os.path.join(image_dir, wnid, f), label, names[wnid]))
    return items


@register_generator("ImageNet")
def fake_imagenet(root, wnids=None, train_per_class=6, val_per_class=3, seed=0):
    """imagenet/images/{train,val}/<wnid>/*.JPEG and classnames.txt (more lines than folders, unsorted)."""
    wnids = wnids or [w for w, _ in IMAGENET_CLASSES[:6]]
    dataset_dir = os.path.join(root, "imagenet")
    _write_classnames(dataset_dir)
    paint = _Painter(len(wnids), seed)
    train = _wnid_tree(os.path.join(dataset_dir, "images", "train"), wnids, train_per_class, paint,
                       "{wnid}_{j}0026.JPEG")
    test = _wnid_tree(os.path.join(dataset_dir, "images", "val"), wnids, val_per_class, paint,
                      "ILSVRC2012_val_{j}{wnid}.JPEG")
    names = dict(IMAGENET_CLASSES)
    return _spec("ImageNet", root, dataset_dir, [names[w] for w in sorted(wnids)],
                 {"train": train, "val": test, "test": test}, image_dir=os.path.join(dataset_dir, "images"))


@register_generator("ImageNetV2")
def fake_imagenetv2(root, per_class=2, seed=0):
    """imagenetv2/imagenetv2-matched-frequency-format-val/<0..N-1>/*.jpeg, N = the lines of classnames.txt
    (8 here; with 1000 lines, folders 0..999). Folder i is class i, whatever the sort order of "10" vs "2"."""
    classes = IMAGENET_CLASSES + [(f"n0999{i:04d}", f"extra class {i}") for i in range(4)]  # 12 lines
    dataset_dir = os.path.join(root, "imagenetv2")
    image_dir = os.path.join(dataset_dir, "imagenetv2-matched-frequency-format-val")
    _write_classnames(dataset_dir, classes)
    paint = _Painter(len(classes), seed)
    items = []
    for label, (_, name) in enumerate(classes):
        for f in sorted(f"{label:x}{j}e2b4c.jpeg" for j in range(per_class)):
            items.append((paint(os.path.join(image_dir, str(label), f), label), label, name))
    return _spec("ImageNetV2", root, dataset_dir, [n for _, n in classes], {"train": items, "val": None, "test": items},
                 test_only=True, image_dir=image_dir)


def _variant(name, root, folder, image_folder, wnids, per_class, seed, readme=False):
    dataset_dir = os.path.join(root, folder)
    image_dir = os.path.join(dataset_dir, image_folder)
    _write_classnames(dataset_dir)
    items = _wnid_tree(image_dir, wnids, per_class, _Painter(len(wnids), seed), "{wnid}_{j}.JPEG")
    if readme:
        with open(os.path.join(image_dir, "README.txt"), "w") as f:
            f.write("not a class\n")
    names = dict(IMAGENET_CLASSES)
    return _spec(name, root, dataset_dir, [names[w] for w in sorted(wnids)],
                 {"train": items, "val": None, "test": items}, test_only=True, image_dir=image_dir)


@register_generator("ImageNetSketch")
def fake_imagenet_sketch(root, per_class=2, seed=0):
    wnids = [w for w, _ in IMAGENET_CLASSES[:5]]
    return _variant("ImageNetSketch", root, "imagenet-sketch", "images", wnids, per_class, seed)


@register_generator("ImageNetA")
def fake_imagenet_a(root, per_class=2, seed=0):
    """A subset of the classes (like the real 200 of 1000), labels 0..n-1 by sorted wnid, plus README.txt."""
    wnids = ["n04376876", "n01484850", "n03000134", "n01443537"]
    return _variant("ImageNetA", root, "imagenet-adversarial", "imagenet-a", wnids, per_class, seed, readme=True)


@register_generator("ImageNetR")
def fake_imagenet_r(root, per_class=2, seed=0):
    wnids = ["n02085620", "n01440764", "n02086240", "n02988304", "n01443537"]
    return _variant("ImageNetR", root, "imagenet-rendition", "imagenet-r", wnids, per_class, seed, readme=True)

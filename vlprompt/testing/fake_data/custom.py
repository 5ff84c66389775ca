"""Users' own data: the CustomDataset layouts (split folders, class folders, CSV)."""
import csv
import os

from .common import _Painter, _spec, register_generator


CUSTOM_CLASSES = ["bolt", "nut", "screw", "washer", "wing_nut"]


@register_generator("CustomDataset")
def fake_custom(root, layout="splits", folder="my_parts", per_split=(4, 2, 3), seed=0):
    """Users' own data under <root>/<folder>, in one of the layouts CustomDataset reads:

    "splits": train/<class>/, val/<class>/, test/<class>/ image folders;
    "csv": images/<class>_<n>.jpg and labels.csv ("path,label,classname" with a header, integer labels);
    "pool": <class>/ folders only (expected lists left empty: the split is generated).
    """
    dataset_dir = os.path.join(root, folder)
    paint = _Painter(len(CUSTOM_CLASSES), seed)
    expected = {"train": [], "val": [], "test": []}
    opts = {"DATASET.CUSTOM.DIR": folder}
    if layout == "splits":
        for split, n in zip(("train", "val", "test"), per_split):
            for label, cls in enumerate(CUSTOM_CLASSES):
                for j in range(n):
                    path = paint(os.path.join(dataset_dir, split, cls, f"IMG_{j:03d}.jpg"), label)
                    expected[split].append((path, label, cls))
        with open(os.path.join(dataset_dir, "train", "notes.txt"), "w") as f:  # not an image: skipped
            f.write("collected in 2024\n")
    elif layout == "csv":
        rows = []
        for split, n in zip(("train", "val", "test"), per_split):
            for label, cls in enumerate(CUSTOM_CLASSES):
                for j in range(n):
                    rel = f"images/{split}_{cls}_{j}.jpg"
                    path = paint(os.path.join(dataset_dir, rel), label)
                    rows.append((split, rel, label, cls))
                    expected[split].append((path, label, cls.replace("_", " ")))
        for split in ("train", "val", "test"):
            with open(os.path.join(dataset_dir, f"{split}.csv"), "w", newline="") as f:
                writer = csv.writer(f)
                writer.writerow(["path", "label", "classname"])
                writer.writerows([rel, label, cls.replace("_", " ")] for s, rel, label, cls in rows if s == split)
        opts["DATASET.CUSTOM.CSV"] = "{split}.csv"
    elif layout == "pool":
        for label, cls in enumerate(CUSTOM_CLASSES):
            for j in range(sum(per_split)):
                paint(os.path.join(dataset_dir, cls, f"{cls}{j}.JPG" if j % 2 else f"{cls}{j}.jpg"), label)
        expected = {}
    else:
        raise ValueError(f"layout must be 'splits', 'csv' or 'pool', got {layout!r}")
    names = CUSTOM_CLASSES if layout != "csv" else [c.replace("_", " ") for c in CUSTOM_CLASSES]
    return _spec("CustomDataset", root, dataset_dir, names, expected, opts=opts, image_dir=dataset_dir,
                 listed_images=layout == "csv")

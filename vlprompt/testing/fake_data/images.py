"""JPEG files coloured by class (plus per-image noise), and the simple Caltech101 tree the suite's
fixtures use."""
import colorsys
import json
import os
import random

import numpy as np
from PIL import Image


def class_colour(index, n_classes):
    r, g, b = colorsys.hsv_to_rgb((index / max(1, n_classes)) % 1.0, 0.9, 0.9)
    return int(r * 255), int(g * 255), int(b * 255)


def write_jpeg(path, colour, size=(40, 30), noise=12, seed=0):
    """A JPEG of one colour with a little uniform noise (size is width x height)."""
    rng = np.random.default_rng(seed)
    w, h = size
    pixels = np.empty((h, w, 3), dtype=np.int16)
    pixels[:] = colour
    pixels += rng.integers(-noise, noise + 1, size=pixels.shape, dtype=np.int16)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(path, format="JPEG", quality=90)
    return path


CALTECH_FOLDERS = ["BACKGROUND_Google", "Faces", "Faces_easy", "Leopards", "Motorbikes", "accordion", "airplanes",
                   "anchor", "ant", "barrel", "bass", "beaver"]


def make_caltech101(root, folders=CALTECH_FOLDERS, images_per_class=12, with_split=True, seed=0):
    """<root>/caltech-101/101_ObjectCategories/<folder>/image_%04d.jpg (+ split_zhou_Caltech101.json).

    The split mimics CoOp's: per class (sorted folders, the two ignored ones left out, four renamed)
    50% train / 20% val / 30% test. Returns (dataset_dir, class names in label order).
    """
    # Stated here independently of the reader (reference facts), so tests compare two statements.
    ignored = {"BACKGROUND_Google", "Faces_easy"}
    renamed = {"airplanes": "airplane", "Faces": "face", "Leopards": "leopard", "Motorbikes": "motorbike"}
    dataset_dir = os.path.join(root, "caltech-101")
    image_dir = os.path.join(dataset_dir, "101_ObjectCategories")
    for i, folder in enumerate(sorted(folders)):
        for j in range(images_per_class):
            write_jpeg(os.path.join(image_dir, folder, f"image_{j + 1:04d}.jpg"), class_colour(i, len(folders)),
                       seed=seed * 100003 + i * 1009 + j)
    classes = [f for f in sorted(folders) if f not in ignored]
    names = [renamed.get(f, f) for f in classes]
    if with_split:
        rng = random.Random(seed)
        split = {"train": [], "val": [], "test": []}
        for label, (folder, name) in enumerate(zip(classes, names)):
            files = [f"{folder}/image_{j + 1:04d}.jpg" for j in range(images_per_class)]
            rng.shuffle(files)
            n_train, n_val = round(len(files) * 0.5), round(len(files) * 0.2)
            for key, part in (("train", files[:n_train]), ("val", files[n_train:n_train + n_val]),
                              ("test", files[n_train + n_val:])):
                split[key].extend([f, label, name] for f in part)
        with open(os.path.join(dataset_dir, "split_zhou_Caltech101.json"), "w") as f:
            json.dump(split, f, indent=4)
    return dataset_dir, names
